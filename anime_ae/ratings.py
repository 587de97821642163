"""The hybrid rating transform: per-user z-score mixed with an absolute scale.

Users rate very differently (some give everything 8-10, some use the whole scale). A plain
per-user z-score would turn a 9/10 from a user who rates everything 9-10 into a *negative*
number; a plain absolute scale ignores that a 6 from a harsh user is a good rating. The seed's
transform mixes the two by the user's rating variance. The exact formula, for a rating r on
the scale [lo, hi] of a user u with explicit-rating mean mu_u and (population) standard
deviation sigma_u:

  absolute   a(r)  = (r - c) / (hi - c)   if r >= c
                     (r - c) / (c - lo)   if r <  c          (c = neutral point; a in [-1, 1])
  relative   z(r)  = clip((r - mu_u) / max(sigma_u, s_min), -z_clip, z_clip) / z_clip   (in [-1, 1])
  mix        w_u   = sigma_u^2 / (sigma_u^2 + tau^2)
  hybrid     n(r)  = w_u * z(r) + (1 - w_u) * a(r)

Defaults (1-10 scale): c = 6.5 (the seed's old manual mapping had 0 at ~6.5 stars; on other
scales c = lo + 5.5/9 * (hi - lo)), tau = (hi - lo) / 6 (= 1.5 stars), z_clip = 2,
s_min = (hi - lo) / 18. A user with a small spread gets w_u near 0, so the absolute scale
dominates and their high ratings stay positive; a user who uses the whole scale gets w_u near 1
and is normalised relative to their own mean. Worked examples (1-10 scale):

  user rates 9 and 10 only (mu 9.5, sigma 0.5): w = 0.10; n(9) = 0.10*(-0.5) + 0.90*0.714 = +0.59
      (a pure z-score would give -1.0)
  harsh user, ratings 3..6 (mu 4.5, sigma ~1.1): w ~ 0.36; n(6) = +0.18 (their best is positive)
  whole-scale user (mu 6, sigma 2.5): w = 0.74; n(8) = +0.41, n(3) = -0.61

n is strictly increasing in r (both parts are non-decreasing, a strictly), so predictions are
mapped back to stars by inverting n on a fine grid per user (`denormalize`).

Items without an explicit rating:
  * watched / watching but unrated ("inferred"): the user's mean rating mu_u (n = (1-w)a(mu_u)),
    masked out of the rating loss;
  * dropped without a rating: `dropped_mode="fixed"` -> `dropped_rating` stars (seed: 2 on the
    1-10 scale), or `"user_relative"` -> mu_u - dropped_k * sigma_u (clipped to the scale), a
    low score relative to the user's own distribution. Whether these enter the rating loss is
    `dropped_in_loss`.
The anime subsample has no watch status, so nothing is marked dropped there; callers that have
a status column pass the `dropped` mask.

Shape glossary: N interaction rows, U users, K predictions per user, G inversion grid points.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

NEUTRAL_FRACTION = 5.5 / 9.0  # 6.5 on the 1-10 scale
DROPPED_MODES = ("fixed", "user_relative")


@dataclasses.dataclass(frozen=True)
class UserStats:
  """Per-user explicit-rating statistics: mean [U], std [U], count [U] (float32/int32)."""
  mean: np.ndarray
  std: np.ndarray
  count: np.ndarray


@dataclasses.dataclass(frozen=True)
class RatingTransform:
  """The hybrid transform on the rating scale [lo, hi] (see the module docstring)."""
  lo: float = 1.0
  hi: float = 10.0
  neutral: Optional[float] = None
  tau: Optional[float] = None
  z_clip: float = 2.0
  std_floor: Optional[float] = None
  dropped_mode: str = "fixed"
  dropped_rating: float = 2.0
  dropped_k: float = 1.5
  dropped_in_loss: bool = True

  def __post_init__(self):
    if not self.hi > self.lo:
      raise ValueError(f"rating scale needs hi > lo, got [{self.lo}, {self.hi}]")
    if self.dropped_mode not in DROPPED_MODES:
      raise ValueError(f"dropped_mode must be one of {DROPPED_MODES}, got {self.dropped_mode!r}")
    c = self.c
    if not self.lo < c < self.hi:
      raise ValueError(f"neutral point {c} must lie strictly inside [{self.lo}, {self.hi}]")

  @property
  def c(self) -> float:
    return (self.neutral if self.neutral is not None
            else self.lo + NEUTRAL_FRACTION * (self.hi - self.lo))

  @property
  def tau_value(self) -> float:
    return self.tau if self.tau is not None else (self.hi - self.lo) / 6.0

  @property
  def std_floor_value(self) -> float:
    return self.std_floor if self.std_floor is not None else (self.hi - self.lo) / 18.0

  # --- statistics -----------------------------------------------------------------------
  def user_stats(self, users: np.ndarray, ratings: Optional[np.ndarray],
                 num_users: int) -> UserStats:
    """Mean/std/count of each user's explicit ratings (NaN = unrated is ignored).

    Users without any explicit rating get mean = neutral point and std = 0 (w_u = 0).
    """
    count = np.zeros(num_users, np.int64)
    mean = np.full(num_users, self.c, np.float64)
    std = np.zeros(num_users, np.float64)
    if ratings is not None:
      r = np.asarray(ratings, np.float64)
      ok = ~np.isnan(r)
      u = users[ok]
      r = r[ok]
      count = np.bincount(u, minlength=num_users)
      s1 = np.bincount(u, weights=r, minlength=num_users)
      s2 = np.bincount(u, weights=r * r, minlength=num_users)
      has = count > 0
      mean[has] = s1[has] / count[has]
      var = np.zeros(num_users)
      var[has] = np.maximum(s2[has] / count[has] - mean[has] ** 2, 0.0)
      std = np.sqrt(var)
    return UserStats(mean.astype(np.float32), std.astype(np.float32), count.astype(np.int32))

  # --- the transform ----------------------------------------------------------------------
  def absolute(self, r):
    c = self.c
    r = np.asarray(r, np.float64)
    return np.where(r >= c, (r - c) / (self.hi - c), (r - c) / (c - self.lo))

  def mix_weight(self, std):
    var = np.asarray(std, np.float64) ** 2
    return var / (var + self.tau_value ** 2)

  def normalize(self, r, mean, std) -> np.ndarray:
    """n(r) for ratings r of users with the given mean/std (all broadcastable)."""
    r = np.asarray(r, np.float64)
    mean = np.asarray(mean, np.float64)
    std = np.asarray(std, np.float64)
    z = np.clip((r - mean) / np.maximum(std, self.std_floor_value), -self.z_clip, self.z_clip)
    w = self.mix_weight(std)
    return (w * z / self.z_clip + (1.0 - w) * self.absolute(r)).astype(np.float32)

  def denormalize(self, n, mean, std, grid_size: int = 721) -> np.ndarray:
    """Inverse of `normalize`: normalised predictions [U, K] (or [K]) -> stars, per user.

    `mean`/`std` are [U] (or scalars). Values outside n's range map to the scale ends.
    """
    n = np.asarray(n, np.float64)
    squeeze = n.ndim == 1
    n2 = n[None] if squeeze else n
    mean = np.broadcast_to(np.asarray(mean, np.float64), (n2.shape[0],))
    std = np.broadcast_to(np.asarray(std, np.float64), (n2.shape[0],))
    grid = np.linspace(self.lo, self.hi, grid_size)
    vals = self.normalize(grid[None, :], mean[:, None], std[:, None]).astype(np.float64)  # [U, G]
    out = np.empty_like(n2)
    for u in range(n2.shape[0]):
      out[u] = np.interp(n2[u], vals[u], grid)
    return (out[0] if squeeze else out).astype(np.float32)

  def fill_unrated(self, users: np.ndarray, ratings: Optional[np.ndarray], stats: UserStats,
                   dropped: Optional[np.ndarray] = None):
    """Returns (stars [N] float32, in_loss [N] bool) with the unrated rows filled.

    Explicit ratings are kept and enter the loss; dropped-unrated rows get the dropped score
    (entering the loss per `dropped_in_loss`); other unrated rows get the user's mean and are
    masked out of the loss.
    """
    n = len(users)
    r = (np.full(n, np.nan, np.float64) if ratings is None
         else np.asarray(ratings, np.float64).copy())
    explicit = ~np.isnan(r)
    in_loss = explicit.copy()
    dropped_rows = np.zeros(n, bool) if dropped is None else (np.asarray(dropped, bool) & ~explicit)
    if dropped_rows.any():
      if self.dropped_mode == "fixed":
        r[dropped_rows] = self.dropped_rating
      else:
        du = users[dropped_rows]
        r[dropped_rows] = np.clip(stats.mean[du] - self.dropped_k * stats.std[du], self.lo, self.hi)
      in_loss |= dropped_rows & self.dropped_in_loss
    inferred = ~explicit & ~dropped_rows
    r[inferred] = stats.mean[users[inferred]]
    return r.astype(np.float32), in_loss

  def transform(self, users: np.ndarray, ratings: Optional[np.ndarray], num_users: int,
                dropped: Optional[np.ndarray] = None, stats: Optional[UserStats] = None):
    """Full transform of N interaction rows -> (normalised [N] float32, in_loss [N] bool, stats)."""
    if stats is None:
      stats = self.user_stats(users, ratings, num_users)
    stars, in_loss = self.fill_unrated(users, ratings, stats, dropped)
    values = self.normalize(stars, stats.mean[users], stats.std[users])
    return values, in_loss, stats


def infer_scale(ratings: Optional[np.ndarray]) -> tuple[float, float]:
  """The rating scale to use when the config leaves it open: 1-10 data -> (1, 10), else 1-5 style.

  Uses the observed min/max, widened to the usual scale ends (1, 5 or 10).
  """
  if ratings is None or np.all(np.isnan(ratings)):
    return 1.0, 10.0
  lo = float(np.nanmin(ratings))
  hi = float(np.nanmax(ratings))
  if hi > 5.0:
    return min(lo, 1.0), max(hi, 10.0)
  return min(lo, 1.0), 5.0
