"""Sparse in-memory profiles and dense batches built on the fly, with input dropout.

The whole training population is held as CSR-like arrays: `items` uint16 item indices and
`values` float16 normalised ratings, with `offsets` [U+1] delimiting each profile. Shuffling
is shuffling profile indices; a dense [B, I] batch is scattered only when a step needs it.

Input dropout (denoising): each profile drops a fraction p_u of its items from the *input*
(the targets keep the full profile), with p_u = rate * (1 + U(-spread, spread)); the seed's
rate 0.4 and spread 0.4 give p_u uniform in [0.24, 0.56]. Exactly round(p_u * n_u) items are
dropped (chosen uniformly), so the per-profile dropped fraction stays within the bounds up to
rounding, and at least one item is always kept.

Shape glossary: U profiles, I items (corpus), N stored (profile, item) entries, B batch.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from anime_ae.ratings import RatingTransform, UserStats
from recsys_core.data.types import Interactions

MAX_ITEMS = np.iinfo(np.uint16).max + 1


@dataclasses.dataclass(frozen=True)
class SparseProfiles:
  """U profiles over I items, stored sparse.

  Attributes:
    offsets: [U+1] int64; profile u is entries offsets[u]:offsets[u+1].
    items: [N] uint16 item indices.
    values: [N] float16 normalised ratings (hybrid transform; inferred for unrated rows).
    in_loss: [N] bool, True where the rating enters the rating loss (explicit ratings).
    stats: per-user rating statistics used by the transform (for mapping back to stars).
    num_items: I.
  """
  offsets: np.ndarray
  items: np.ndarray
  values: np.ndarray
  in_loss: np.ndarray
  stats: UserStats
  num_items: int

  @property
  def num_profiles(self) -> int:
    return len(self.offsets) - 1

  def lengths(self) -> np.ndarray:
    return np.diff(self.offsets)

  def profile(self, u: int):
    """(items int64 [n_u], values float32 [n_u], in_loss bool [n_u]) of profile u."""
    s, e = self.offsets[u], self.offsets[u + 1]
    return self.items[s:e].astype(np.int64), self.values[s:e].astype(np.float32), self.in_loss[s:e]

  def subset(self, idx: np.ndarray) -> "SparseProfiles":
    """The profiles idx, in that order."""
    idx = np.asarray(idx, np.int64)
    lens = self.lengths()[idx]
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    rows = _ranges(self.offsets[idx], lens)
    stats = UserStats(self.stats.mean[idx], self.stats.std[idx], self.stats.count[idx])
    return SparseProfiles(offsets, self.items[rows], self.values[rows], self.in_loss[rows], stats,
                          self.num_items)


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
  """Concatenation of arange(s, s+l) for each (s, l), vectorised."""
  total = int(lens.sum())
  if total == 0:
    return np.zeros(0, np.int64)
  rep_starts = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
  return rep_starts + np.arange(total)


def build_profiles(data: Interactions, transform: RatingTransform,
                   dropped: Optional[np.ndarray] = None) -> SparseProfiles:
  """Builds sparse profiles (one per user of `data`) with the hybrid rating transform.

  Args:
    data: interactions (ratings NaN where unrated; ratings None for implicit data, in which
      case every value is the neutral 0 and nothing enters the rating loss).
    transform: the rating transform.
    dropped: optional [N] bool, rows the user dropped (watch status); the anime subsample has
      no status, so callers pass None there.
  """
  if data.num_items > MAX_ITEMS:
    raise ValueError(f"{data.source}: {data.num_items} items do not fit uint16 indices")
  values, in_loss, stats = transform.transform(data.users, data.ratings, data.num_users, dropped)
  order = np.lexsort((data.items, data.users))
  users = data.users[order]
  items = data.items[order]
  values = values[order]
  in_loss = in_loss[order]
  # De-duplicate (user, item): keep the last row (sorted stable, so the latest in file order).
  keep = np.ones(len(users), bool)
  if len(users) > 1:
    keep[:-1] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
  users, items, values, in_loss = users[keep], items[keep], values[keep], in_loss[keep]
  offsets = np.searchsorted(users, np.arange(data.num_users + 1)).astype(np.int64)
  return SparseProfiles(offsets, items.astype(np.uint16), values.astype(np.float16), in_loss,
                        stats, data.num_items)


def filter_profiles(data: Interactions, min_ratings: int = 30,
                    statuses: Optional[np.ndarray] = None,
                    keep_statuses: Optional[tuple] = None) -> np.ndarray:
  """Returns the dense user indices that pass the seed's profile filters.

  * `min_ratings`: at least this many explicit (non-NaN) ratings (seed: 30). For data with no
    ratings at all, the count of interactions is used instead.
  * watch status: rows whose status is not in `keep_statuses` are ignored. The anime subsample
    has no status column, so this filter is a documented no-op there (statuses=None).
  """
  rows = np.ones(len(data), bool)
  if statuses is not None and keep_statuses is not None:
    rows &= np.isin(statuses, np.asarray(keep_statuses))
  if data.ratings is not None:
    rows &= ~np.isnan(data.ratings)
  counts = np.bincount(data.users[rows], minlength=data.num_users)
  return np.flatnonzero(counts >= min_ratings)


@dataclasses.dataclass(frozen=True)
class InputDropout:
  """Input dropout. kind "profile" (the seed's): a fraction rate * (1 + U(-spread, spread))
  of each profile, at least one entry kept; kind "bernoulli" (Mult-DAE's): each entry
  dropped independently with probability rate (spread unused)."""
  rate: float = 0.4
  spread: float = 0.4
  kind: str = "profile"

  def __post_init__(self):
    if self.kind not in ("profile", "bernoulli"):
      raise ValueError(f"data.dropout_kind must be 'profile' or 'bernoulli', got {self.kind!r}")
    lo, hi = self.bounds
    if not (0.0 <= lo <= hi < 1.0):
      raise ValueError(f"dropout fractions must lie in [0, 1), got [{lo}, {hi}]")

  @property
  def bounds(self) -> tuple[float, float]:
    return self.rate * (1 - self.spread), self.rate * (1 + self.spread)

  def sample_fractions(self, rng: np.random.Generator, n: int) -> np.ndarray:
    return self.rate * (1.0 + rng.uniform(-self.spread, self.spread, size=n))

  def keep_mask(self, rng: np.random.Generator, lengths: np.ndarray) -> np.ndarray:
    """[sum(lengths)] bool: which entries of each profile stay in the input."""
    lengths = np.asarray(lengths, np.int64)
    if self.kind == "bernoulli":
      return rng.random(int(lengths.sum())) >= self.rate
    fr = self.sample_fractions(rng, len(lengths))
    n_drop = np.minimum(np.round(fr * lengths).astype(np.int64), np.maximum(lengths - 1, 0))
    # Rank entries within each profile by a random key; drop the n_drop smallest ranks.
    total = int(lengths.sum())
    seg = np.repeat(np.arange(len(lengths)), lengths)
    keys = rng.random(total)
    order = np.lexsort((keys, seg))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rank = np.empty(total, np.int64)
    rank[order] = np.arange(total) - np.repeat(starts, lengths)
    return rank >= np.repeat(n_drop, lengths)


def dense_batch(profiles: SparseProfiles, idx: np.ndarray,
                dropout: Optional[InputDropout] = None,
                rng: Optional[np.random.Generator] = None) -> dict[str, np.ndarray]:
  """Scatters profiles idx into dense float32 [B, I] arrays.

  Returns a dict with
    x_rating, x_presence: the model input (after input dropout when `dropout` is given);
    presence: [B, I] 1 for every item of the full profile (presence target);
    rating, rating_mask: [B, I] normalised rating target and 1 where it enters the loss.
  """
  idx = np.asarray(idx, np.int64)
  b, i = len(idx), profiles.num_items
  lens = profiles.lengths()[idx]
  rows = _ranges(profiles.offsets[idx], lens)
  r = np.repeat(np.arange(b), lens)
  c = profiles.items[rows].astype(np.int64)
  v = profiles.values[rows].astype(np.float32)
  presence = np.zeros((b, i), np.float32)
  rating = np.zeros((b, i), np.float32)
  mask = np.zeros((b, i), np.float32)
  presence[r, c] = 1.0
  rating[r, c] = v
  mask[r, c] = profiles.in_loss[rows]
  if dropout is None:
    x_presence, x_rating = presence, rating
  else:
    keep = dropout.keep_mask(rng if rng is not None else np.random.default_rng(), lens)
    x_presence = np.zeros((b, i), np.float32)
    x_rating = np.zeros((b, i), np.float32)
    x_presence[r[keep], c[keep]] = 1.0
    x_rating[r[keep], c[keep]] = v[keep]
  return {"x_rating": x_rating, "x_presence": x_presence, "presence": presence,
          "rating": rating, "rating_mask": mask}
