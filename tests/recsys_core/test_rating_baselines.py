"""Biased matrix factorisation (ALS) and user-mean rating baselines."""
from __future__ import annotations

import numpy as np
import pytest

from recsys_core import rating_baselines as rb
from recsys_core.data.types import Interactions


def _interactions(users, items, ratings, num_users: int, num_items: int,
                  source: str = "test") -> Interactions:
  return Interactions(users=np.asarray(users, np.int32), items=np.asarray(items, np.int32),
                      ratings=None if ratings is None else np.asarray(ratings, np.float32),
                      order=None, user_ids=np.arange(num_users), item_ids=np.arange(num_items),
                      source=source)


def _from_matrix(full: np.ndarray, mask: np.ndarray, rows: np.ndarray) -> Interactions:
  """Interactions of the users `rows` [U_sub] (re-indexed 0..U_sub-1) of the [U, I] matrix
  `full`, at the entries where mask [U, I] is True."""
  u, i = np.nonzero(mask[rows])
  return _interactions(u, i, full[rows][u, i], len(rows), full.shape[1])


def _mae_on(pred: np.ndarray, full: np.ndarray, mask: np.ndarray) -> float:
  """Mean |pred − full| over the [U_sub, I] entries where mask is True."""
  return float(np.mean(np.abs(pred[mask] - full[mask])))


def _low_rank_data(seed: int, num_users: int = 200, num_items: int = 50, rank: int = 2,
                   noise: float = 0.01, density: float = 0.6):
  """([U, I] ratings μ + b_u + b_i + p_u·q_i + noise, [U, I] observed mask)."""
  rng = np.random.default_rng(seed)
  bu = rng.normal(0.0, 0.5, num_users)
  bi = rng.normal(0.0, 0.5, num_items)
  p = rng.normal(0.0, 1.0, (num_users, rank))
  q = rng.normal(0.0, 1.0, (num_items, rank))
  full = 3.5 + bu[:, None] + bi[None, :] + p @ q.T
  full += rng.normal(0.0, noise, full.shape)
  return full, rng.random(full.shape) < density


def test_ridge_half_step_matches_per_row_solves():
  rng = np.random.default_rng(0)
  rows = rng.integers(0, 6, 40)
  rows[rows == 5] = 4                                  # row 5 has no observations
  cols = rng.integers(0, 7, 40)
  cols[:3] = cols[3]                                   # duplicated (row, col) pairs
  rows[:3] = rows[3]
  targets = rng.normal(size=40)
  fixed = rng.normal(size=(7, 3))
  bias, factors = rb.ridge_half_step(rows, cols, targets, 6, fixed, l2=0.7)
  assert bias.shape == (6,) and factors.shape == (6, 3)
  for r in range(6):
    sel = rows == r
    y = np.hstack([np.ones((sel.sum(), 1)), fixed[cols[sel]]])
    want = np.linalg.solve(y.T @ y + 0.7 * np.eye(4), y.T @ targets[sel])
    np.testing.assert_allclose(np.r_[bias[r], factors[r]], want, rtol=1e-9, atol=1e-12)
  np.testing.assert_array_equal(factors[5], 0.0)
  assert bias[5] == 0.0


def test_biased_mf_recovers_low_rank_ratings_of_new_users_far_better_than_user_mean():
  full, mask = _low_rank_data(seed=1)
  train_users, test_users = np.arange(150), np.arange(150, 200)
  train = _from_matrix(full, mask, train_users)
  rng = np.random.default_rng(2)
  test_mask = mask[test_users]
  fold = test_mask & (rng.random(test_mask.shape) < 0.5)
  held = test_mask & ~fold
  inputs = _from_matrix(full[test_users], fold, np.arange(50))
  truth = full[test_users]

  mf = rb.BiasedMF(rb.BiasedMFConfig(factors=2, l2=0.1, iterations=20, seed=0)).fit(train)
  mf_pred = mf.predict_stars(inputs)
  um_pred = rb.UserMean().fit(train).predict_stars(inputs)
  assert mf_pred.shape == um_pred.shape == (50, 50)
  assert mf_pred.dtype == um_pred.dtype == np.float32
  mf_mae, um_mae = _mae_on(mf_pred, truth, held), _mae_on(um_pred, truth, held)
  print(f"held-out MAE: biased_mf {mf_mae:.4f}, user_mean {um_mae:.4f}")
  assert um_mae > 0.5
  # Observed ratio ~0.03-0.045 over data/init seeds; a fold-in that ignores the item
  # biases in its targets gives ~0.16, so the bound is tighter than a loose 0.3.
  assert mf_mae < 0.1 * um_mae
  # The fit itself: training entries are reproduced almost exactly.
  fit_pred = mf.mu + mf.user_bias[:, None] + mf.item_bias + mf.user_factors @ mf.item_factors.T
  assert _mae_on(fit_pred, full[train_users], mask[train_users]) < 0.05


def test_biased_mf_biases_alone_reproduce_additive_ratings():
  rng = np.random.default_rng(3)
  bu, bi = rng.normal(0.0, 0.5, 120), rng.normal(0.0, 0.5, 40)
  full = 3.0 + bu[:, None] + bi[None, :]
  mask = rng.random(full.shape) < 0.6
  train = _from_matrix(full, mask, np.arange(120))
  mf = rb.BiasedMF(rb.BiasedMFConfig(factors=2, l2=0.05, iterations=10)).fit(train)
  biases_only = mf.mu + mf.user_bias[:, None] + mf.item_bias[None, :]
  assert np.max(np.abs(biases_only - full)) < 0.05
  # Up to the split of the constant between μ, b_u and b_i, the biases are the true ones.
  np.testing.assert_allclose(mf.item_bias - mf.item_bias.mean(), bi - bi.mean(), atol=0.05)
  np.testing.assert_allclose(mf.user_bias - mf.user_bias.mean(), bu - bu.mean(), atol=0.05)
  assert np.max(np.abs(mf.user_factors @ mf.item_factors.T)) < 0.05


def test_fold_in_of_a_user_without_ratings_is_mu_plus_item_bias():
  full, mask = _low_rank_data(seed=4, num_users=60, num_items=12)
  mf = rb.BiasedMF(rb.BiasedMFConfig(factors=2, l2=1.0, iterations=5)).fit(
      _from_matrix(full, mask, np.arange(60)))
  # User 0 has ratings, user 1 no rows, user 2 only NaN ratings ("watched, not rated").
  inputs = _interactions([0, 0, 2, 2], [1, 5, 3, 4], [4.0, 2.0, np.nan, np.nan], 3, 12)
  pred = mf.predict_stars(inputs)
  want = np.clip(mf.mu + mf.item_bias, *mf.rating_range).astype(np.float32)
  np.testing.assert_allclose(pred[1], want, rtol=1e-6)
  np.testing.assert_allclose(pred[2], want, rtol=1e-6)
  assert np.max(np.abs(pred[0] - want)) > 1e-3
  bu, p = mf.fold_in(inputs)
  assert bu[1] == bu[2] == 0.0 and not p[1:].any()
  lo, hi = mf.rating_range
  assert pred.min() >= lo and pred.max() <= hi


def test_user_mean_by_hand():
  train = _interactions([0, 0, 1, 1], [0, 1, 0, 2], [4.0, 2.0, np.nan, 3.0], 2, 3)
  um = rb.UserMean().fit(train)
  assert um.global_mean == pytest.approx(3.0)
  # User 0: mean(5, 3) = 4; user 1: only NaN -> 3; user 2: no rows -> 3; user 3: 1.
  inputs = _interactions([0, 0, 1, 3], [0, 2, 1, 1], [5.0, 3.0, np.nan, 1.0], 4, 3)
  pred = um.predict_stars(inputs)
  assert pred.shape == (4, 3) and pred.dtype == np.float32
  np.testing.assert_allclose(pred, [[4.0] * 3, [3.0] * 3, [3.0] * 3, [1.0] * 3])
  assert um.name == "user_mean" and rb.BiasedMF().name == "biased_mf"


@pytest.mark.parametrize("kwargs, field", [
    ({"factors": 0}, "factors"), ({"factors": 2.5}, "factors"), ({"l2": 0.0}, "l2"),
    ({"l2": -1.0}, "l2"), ({"iterations": 0}, "iterations")])
def test_config_errors_name_the_field(kwargs, field):
  with pytest.raises(ValueError, match=f"BiasedMFConfig.{field} "):
    rb.BiasedMFConfig(**kwargs)


def test_data_without_ratings_raises_naming_the_source():
  no_ratings = _interactions([0, 1], [0, 1], None, 2, 2, source="toy-no-ratings")
  all_nan = _interactions([0, 1], [0, 1], [np.nan, np.nan], 2, 2, source="toy-all-nan")
  for model in (rb.BiasedMF(), rb.UserMean()):
    with pytest.raises(ValueError, match="toy-no-ratings"):
      model.fit(no_ratings)
    with pytest.raises(ValueError, match="toy-all-nan"):
      model.fit(all_nan)


def test_inputs_with_another_item_space_are_rejected():
  train = _interactions([0, 1], [0, 1], [1.0, 2.0], 2, 2)
  inputs = _interactions([0], [0], [1.0], 1, 3, source="wide-inputs")
  for model in (rb.BiasedMF(rb.BiasedMFConfig(factors=1, iterations=1)), rb.UserMean()):
    with pytest.raises(ValueError, match="wide-inputs"):
      model.fit(train).predict_stars(inputs)
