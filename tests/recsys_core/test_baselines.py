"""Popularity and EASE baselines."""
import numpy as np
import pytest

from recsys_core import baselines
from recsys_core.data.types import Interactions
from recsys_core.scoring import Scorer


def _interactions(users, items, num_users, num_items):
  return Interactions(users=np.asarray(users, np.int32), items=np.asarray(items, np.int32),
                      ratings=None, order=None, user_ids=np.arange(num_users),
                      item_ids=np.arange(num_items), source="test")


def _random(seed, num_users=40, num_items=15, density=0.3):
  rng = np.random.default_rng(seed)
  m = rng.random((num_users, num_items)) < density
  u, i = np.nonzero(m)
  return _interactions(u, i, num_users, num_items), m.astype(np.float64)


def test_both_implement_the_scorer_protocol():
  assert isinstance(baselines.Popularity(), Scorer)
  assert isinstance(baselines.EASE(l2=10.0), Scorer)
  assert baselines.Popularity().name == "popularity"
  assert baselines.EASE().name == "ease"


def test_popularity_counts_users_once_and_orders_items():
  # Item 2: users 0, 1, 2 (user 0 twice, counted once); item 0: users 0, 1; item 1: none.
  train = _interactions([0, 0, 0, 1, 1, 2], [2, 2, 0, 0, 2, 2], 3, 3)
  pop = baselines.Popularity().fit(train)
  np.testing.assert_array_equal(pop.counts, [2, 0, 3])
  scores = pop.score(_interactions([0], [1], 2, 3))
  assert scores.shape == (2, 3) and scores.dtype == np.float32
  np.testing.assert_array_equal(np.argsort(-scores[0]), [2, 0, 1])
  np.testing.assert_array_equal(scores[0], scores[1])


def test_ease_hand_solvable_two_items():
  # Two items, both seen by all 3 users: XᵀX = [[3, 3], [3, 3]]; λ = 1:
  # P = inv([[4, 3], [3, 4]]) = [[4, -3], [-3, 4]] / 7, so B_01 = -P_01 / P_11 = 3/4.
  train = _interactions([0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], 3, 2)
  ease = baselines.EASE(l2=1.0).fit(train)
  np.testing.assert_allclose(ease.weights, [[0.0, 0.75], [0.75, 0.0]], rtol=1e-6)
  # A user with item 0 only: scores = x·B = [0, 0.75].
  np.testing.assert_allclose(ease.score(_interactions([0], [0], 1, 2)), [[0.0, 0.75]])


@pytest.mark.parametrize("l2", [0.5, 10.0, 200.0])
def test_ease_matches_float64_reference(l2):
  train, x = _random(0)
  ease = baselines.EASE(l2=l2).fit(train)
  p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
  ref = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
  assert ease.weights.dtype == np.float32
  np.testing.assert_allclose(ease.weights, ref, atol=2e-5, rtol=1e-4)
  np.testing.assert_array_equal(np.diag(ease.weights), 0.0)
  inputs, x_in = _random(1, num_users=5)
  scores = ease.score(inputs)
  assert scores.shape == (5, 15) and scores.dtype == np.float32
  np.testing.assert_allclose(scores, x_in @ ref, atol=1e-4, rtol=1e-4)


def test_ease_weights_solve_the_constrained_least_squares():
  # Stationarity of ||X - XB||² + λ||B||² with diag(B) = 0: for every off-diagonal (i, j),
  # (XᵀX (B - I) + λB)_ij = 0.
  train, x = _random(3, num_users=60, num_items=12)
  l2 = 5.0
  b = baselines.EASE(l2=l2).fit(train).weights.astype(np.float64)
  grad = x.T @ x @ (b - np.eye(12)) + l2 * b
  off = ~np.eye(12, dtype=bool)
  np.testing.assert_allclose(grad[off], 0.0, atol=1e-3)


def test_errors():
  train, _ = _random(0)
  with pytest.raises(RuntimeError, match="before fit"):
    baselines.EASE().score(train)
  with pytest.raises(ValueError, match="items"):
    baselines.Popularity().fit(train).score(_interactions([0], [0], 1, 3))
  with pytest.raises(ValueError, match="l2"):
    baselines.EASE(l2=0.0)


def test_eval_baselines_binary_writes_result_files(tmp_path):
  """The absl binary end to end on a small synthetic MovieLens-100K-format file."""
  import json
  import os
  import subprocess
  import sys
  rng = np.random.default_rng(0)
  folder = tmp_path / "data" / "movielens_100k"
  folder.mkdir(parents=True)
  rows = []
  for user in range(1, 61):
    for item in rng.choice(np.arange(1, 41), size=rng.integers(8, 20), replace=False):
      rows.append(f"{user}\t{item}\t{rng.integers(1, 6)}\t{880000000 + len(rows)}")
  (folder / "u.data").write_text("\n".join(rows) + "\n")
  out = tmp_path / "results"
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.eval_baselines",
       "--config", os.path.join(root, "experiments/configs/baselines.py") + ":ml100k",
       "--config.ease_l2_grid=(1.0,10.0)", "--data_dir", str(tmp_path / "data"),
       "--seeds", "0,1", "--out_dir", str(out)],
      cwd=root, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for model in ("popularity", "ease"):
    rec = json.load(open(out / f"baseline_{model}_ml100k_strong_generalization.json"))
    assert rec["seeds"] == [0, 1] and rec["config"]["rating_threshold"] == 3.5
    for key in ("recall@20", "recall@50", "ndcg@100"):
      assert len(rec["metrics"][key]["values"]) == 2
      assert 0.0 <= rec["metrics"][key]["mean"] <= 1.0
  ease = json.load(open(out / "baseline_ease_ml100k_strong_generalization.json"))
  assert all(l2 in (1.0, 10.0) for l2 in ease["config"]["lambda_per_seed"])
