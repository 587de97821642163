"""Explicit-rating baselines: biased matrix factorisation (ALS) and the user mean.

Both predict stars for new users (strong generalisation): `fit` on the training users'
ratings, then `predict_stars(inputs)` for users that were not in training, from their
fold-in ratings, over the training item index space.

Shape glossary:
  N: number of (user, item, rating) rows.
  U: number of training users (dense indices 0..U-1); U_in: number of input (fold-in) users.
  I: number of items (the index space shared by training and inputs).
  F: number of latent factors; K = F + 1 (a bias plus the factors, solved jointly).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import sparse

from recsys_core.data.types import Interactions

# Rows of the per-user (per-item) normal equations built at a time: bounds the [rows, K(K+1)/2]
# float64 block (4096 x 561 x 8 B = 18 MB for F = 32).
_BLOCK_ROWS = 4096


@dataclasses.dataclass(frozen=True)
class BiasedMFConfig:
  """Hyper-parameters of `BiasedMF`.

  Attributes:
    factors: F, the number of latent factors per user and item.
    l2: ridge penalty λ on the factors and the biases (not on the global mean).
    iterations: ALS sweeps (each solves all users, then all items).
    seed: seed of the random initial item factors.
  """

  factors: int = 32
  l2: float = 10.0
  iterations: int = 15
  seed: int = 0

  def __post_init__(self):
    if int(self.factors) != self.factors or self.factors < 1:
      raise ValueError(f"BiasedMFConfig.factors must be an integer >= 1, got {self.factors!r}")
    if not np.isfinite(self.l2) or self.l2 <= 0:
      raise ValueError(f"BiasedMFConfig.l2 must be > 0, got {self.l2!r}")
    if int(self.iterations) != self.iterations or self.iterations < 1:
      raise ValueError(f"BiasedMFConfig.iterations must be an integer >= 1, "
                       f"got {self.iterations!r}")


def _finite_ratings(x: Interactions, name: str, require: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The (users [M] int64, items [M] int64, ratings [M] float64) rows with a finite rating.

  Raises:
    ValueError: `x` has no ratings array, or (if `require`) no finite rating.
  """
  if x.ratings is None:
    raise ValueError(f"{name}: {x.source or 'the data'} has no ratings (explicit ratings needed)")
  r = np.asarray(x.ratings, np.float64)
  ok = np.isfinite(r)
  if require and not ok.any():
    raise ValueError(f"{name}: {x.source or 'the data'} has no finite rating")
  return (np.asarray(x.users, np.int64)[ok], np.asarray(x.items, np.int64)[ok], r[ok])


def _check_items(inputs: Interactions, num_items: int, name: str) -> None:
  if inputs.num_items != num_items:
    raise ValueError(f"{name}: inputs have {inputs.num_items} items, the model was fitted on "
                     f"{num_items} ({inputs.source})")


def ridge_half_step(rows: np.ndarray, cols: np.ndarray, targets: np.ndarray, num_rows: int,
                    fixed: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
  """One ALS half-step: per row r, the ridge regression of its targets on [1, fixed[col]].

  For every row r (a user, or an item) with observations {(c, t)}, solves
    argmin_x  Σ (t − [1, fixed[c]] · x)² + l2 |x|²,   x = [bias, factors]  (K = F + 1),
  i.e. (YᵣᵀYᵣ + l2·I) x = Yᵣᵀt. The normal equations of all rows are built at once with
  sparse products (the [rows, cols] count matrix times the per-column outer products
  Y[c]Y[c]ᵀ, upper triangle only) and solved as one batch. A row without observations gets
  x = 0; duplicated (r, c) pairs count as repeated observations.

  Args:
    rows: [M] int row index in [0, num_rows) of each observation.
    cols: [M] int column index in [0, len(fixed)).
    targets: [M] float target (the rating less the mean and the other side's bias).
    num_rows: number of rows to solve.
    fixed: [C, F] the other side's factors, held fixed.
    l2: ridge penalty (> 0).

  Returns:
    (bias [num_rows] float64, factors [num_rows, F] float64).
  """
  num_cols, f = fixed.shape
  k = f + 1
  y = np.empty((num_cols, k), np.float64)
  y[:, 0] = 1.0
  y[:, 1:] = fixed
  shape = (num_rows, num_cols)
  counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape, dtype=np.float64)
  counts.sum_duplicates()
  t = sparse.csr_matrix((np.asarray(targets, np.float64), (rows, cols)), shape=shape,
                        dtype=np.float64)
  rhs = np.asarray(t @ y)                                         # [num_rows, K]
  iu, ju = np.triu_indices(k)
  outer = y[:, iu] * y[:, ju]                                     # [C, K(K+1)/2]
  x = np.empty((num_rows, k), np.float64)
  ridge = l2 * np.eye(k)
  for start in range(0, num_rows, _BLOCK_ROWS):
    stop = min(start + _BLOCK_ROWS, num_rows)
    upper = np.asarray(counts[start:stop] @ outer)                # [B, K(K+1)/2]
    gram = np.empty((stop - start, k, k), np.float64)
    gram[:, iu, ju] = upper
    gram[:, ju, iu] = upper
    gram += ridge
    x[start:stop] = np.linalg.solve(gram, rhs[start:stop, :, None])[:, :, 0]
  return x[:, 0], x[:, 1:]


class BiasedMF:
  """Biased matrix factorisation fitted by alternating least squares on explicit ratings.

    r̂(u, i) = μ + b_u + b_i + p_u · q_i

  μ is the mean of the finite training ratings (fixed); every half-step solves, per user
  (per item), the ridge regression for [b, p] with the other side's [1, q] fixed (target:
  rating − μ − the other side's bias). NaN ratings (unrated rows) are ignored.

  New users are folded in (`predict_stars`): the same user ridge regression from their
  fold-in ratings with the trained item biases and factors fixed.

  Attributes (after fit):
    mu: float global mean μ.
    user_bias: [U] float64 b_u of the training users.
    user_factors: [U, F] float64 p_u.
    item_bias: [I] float64 b_i (0 for an item without training ratings).
    item_factors: [I, F] float64 q_i (0 for an item without training ratings).
    rating_range: (min, max) of the finite training ratings; predictions are clipped to it.
  """

  name = "biased_mf"

  def __init__(self, config: BiasedMFConfig | None = None):
    self.config = config if config is not None else BiasedMFConfig()
    self.mu: float | None = None
    self.user_bias: np.ndarray | None = None
    self.user_factors: np.ndarray | None = None
    self.item_bias: np.ndarray | None = None
    self.item_factors: np.ndarray | None = None
    self.rating_range: tuple[float, float] | None = None

  def fit(self, train: Interactions) -> "BiasedMF":
    """Fits μ, the biases and the factors on the finite ratings of `train`.

    Raises:
      ValueError: `train` has no ratings or no finite rating (the message names its source).
    """
    cfg = self.config
    u, i, r = _finite_ratings(train, self.name, require=True)
    num_users, num_items = train.num_users, train.num_items
    self.mu = float(r.mean())
    self.rating_range = (float(r.min()), float(r.max()))
    rng = np.random.default_rng(cfg.seed)
    q = rng.normal(0.0, 0.1, (num_items, cfg.factors))
    bi = np.zeros(num_items)
    centred = r - self.mu
    for _ in range(cfg.iterations):
      bu, p = ridge_half_step(u, i, centred - bi[i], num_users, q, cfg.l2)
      bi, q = ridge_half_step(i, u, centred - bu[u], num_items, p, cfg.l2)
    self.user_bias, self.user_factors = bu, p
    self.item_bias, self.item_factors = bi, q
    return self

  def fold_in(self, inputs: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """(b_u [U_in], p_u [U_in, F]) of the input users from their finite ratings, the trained
    item side fixed; a user without any finite rating gets b_u = 0, p_u = 0."""
    if self.item_factors is None:
      raise RuntimeError("BiasedMF used before fit")
    _check_items(inputs, len(self.item_bias), self.name)
    u, i, r = _finite_ratings(inputs, self.name, require=False)
    return ridge_half_step(u, i, r - self.mu - self.item_bias[i], inputs.num_users,
                           self.item_factors, self.config.l2)

  def predict_stars(self, inputs: Interactions) -> np.ndarray:
    """[U_in, I] float32 predicted stars of every item for each input (new) user, clipped to
    the training rating range; a user without finite input ratings gets μ + b_i."""
    bu, p = self.fold_in(inputs)
    pred = self.mu + bu[:, None] + self.item_bias[None, :] + p @ self.item_factors.T
    lo, hi = self.rating_range
    return np.clip(pred, lo, hi).astype(np.float32)


class UserMean:
  """Predicts every item at the user's mean finite input rating (the training global mean
  for a user without any) — the rule of experiments/eval_anime_ae.py's user-mean baseline.

  Attributes (after fit):
    global_mean: float mean of the finite training ratings.
    num_items: I, the training item index space.
  """

  name = "user_mean"

  def __init__(self):
    self.global_mean: float | None = None
    self.num_items: int | None = None

  def fit(self, train: Interactions) -> "UserMean":
    """Stores the global mean of the finite ratings of `train`.

    Raises:
      ValueError: `train` has no ratings or no finite rating (the message names its source).
    """
    _, _, r = _finite_ratings(train, self.name, require=True)
    self.global_mean = float(r.mean())
    self.num_items = train.num_items
    return self

  def predict_stars(self, inputs: Interactions) -> np.ndarray:
    """[U_in, I] float32: row u is the mean of user u's finite input ratings (else the
    global mean)."""
    if self.global_mean is None:
      raise RuntimeError("UserMean used before fit")
    _check_items(inputs, self.num_items, self.name)
    u, _, r = _finite_ratings(inputs, self.name, require=False)
    n = inputs.num_users
    count = np.bincount(u, minlength=n)
    total = np.bincount(u, weights=r, minlength=n)
    mean = np.full(n, self.global_mean)
    has = count > 0
    mean[has] = total[has] / count[has]
    return np.broadcast_to(mean[:, None], (n, self.num_items)).astype(np.float32)
