"""Per-user item sequences for sequence models (next-item prediction), in host-side numpy.

Holds what any sequence model needs and nothing model-specific (no hashes, actions or batch
layout of a particular model):
  * `SequenceData`: each user's items (and ratings) oldest first, from `Interactions`;
  * `truncate_pad`: the most recent entries of a sequence, padded to a fixed length;
  * `next_item_window`: which items of a training sequence form the history window with a
    next-item target at every position (the last one, as SASRec does, or a random one);
  * `item_popularity`: interaction counts per item in the training part of the sequences.

Under leave-one-out (recsys_core.splits) a user's training part is `sequences[u][:ends[u]]`
with ends[u] = len - 2: the last two items are the validation and test targets.

Shape glossary: U users, I items, L history window length.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from recsys_core.data.types import Interactions


@dataclasses.dataclass
class SequenceData:
  """Per-user chronological item sequences (and ratings), the input of sequence batching.

  Attributes:
    sequences: U arrays of dense item indices (int32), oldest first.
    ratings: U arrays of ratings aligned with `sequences` (NaN = unrated), or None.
    user_ids: [U] original user ids.
    num_items: I.
  """
  sequences: list
  ratings: Optional[list]
  user_ids: np.ndarray
  num_items: int

  @property
  def num_users(self) -> int:
    return len(self.sequences)

  @classmethod
  def from_interactions(cls, x: Interactions) -> "SequenceData":
    """Sequences in `x.order` (stable; file order when the data has no order)."""
    key = x.order if x.order is not None else np.arange(len(x))
    idx = np.lexsort((key, x.users))
    bounds = np.searchsorted(x.users[idx], np.arange(x.num_users + 1))
    items = x.items[idx].astype(np.int32)
    seqs = [items[bounds[u]:bounds[u + 1]] for u in range(x.num_users)]
    ratings = None
    if x.ratings is not None:
      r = x.ratings[idx].astype(np.float32)
      ratings = [r[bounds[u]:bounds[u + 1]] for u in range(x.num_users)]
    return cls(seqs, ratings, np.asarray(x.user_ids), x.num_items)

  def lengths(self) -> np.ndarray:
    return np.array([len(s) for s in self.sequences], np.int64)


def truncate_pad(seq: np.ndarray, length: int, pad: int = -1) -> np.ndarray:
  """The most recent `length` entries of seq, right-padded with `pad` to [length]."""
  seq = np.asarray(seq)
  tail = seq[max(0, len(seq) - length):]
  out = np.full((length,) + seq.shape[1:], pad, dtype=seq.dtype if seq.size else np.int32)
  out[:len(tail)] = tail
  return out


def next_item_window(n: int, length: int, rng: np.random.Generator, window: str = "last"
                     ) -> tuple[int, int]:
  """(start, stop): the window seq[start:stop] of up to L+1 = length+1 consecutive items of
  a training sequence of n items, whose first L items are the history and last L items the
  next-item targets.

  window="last": the last L+1 items. window="random": when n > L+1, the L+1 items ending at
  a uniformly random position (one draw from `rng`), else the whole sequence.
  """
  stop = n
  if window == "random" and n > length + 1:
    stop = int(rng.integers(length + 1, n + 1))
  elif window not in ("last", "random"):
    raise ValueError(f"window must be 'last' or 'random', got {window!r}")
  return max(0, stop - length - 1), stop


def item_popularity(data: SequenceData, ends: Optional[np.ndarray] = None) -> np.ndarray:
  """[I] interaction counts in the users' training sequences (s[:ends[u]]; default all)."""
  counts = np.zeros(data.num_items, np.float64)
  for u, seq in enumerate(data.sequences):
    s = seq if ends is None else seq[:int(ends[u])]
    np.add.at(counts, s, 1.0)
  return counts
