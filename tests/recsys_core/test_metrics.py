"""Metrics against hand-computed cases, a slow reference implementation and properties."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from recsys_core import metrics

# One user, five items. Ranking by score: item 0 (0.9), 2 (0.8), 4 (0.5), 3 (0.3), 1 (0.1).
# Targets: items 2 and 3, i.e. at ranks 2 and 4.
SCORES = np.array([[0.9, 0.1, 0.8, 0.3, 0.5]])
TARGETS = np.array([[False, False, True, True, False]])


def test_recall_hand_computed():
  # top-1 = {0}: 0 hits / min(1, 2); top-2 = {0, 2}: 1 / min(2, 2); top-4 has both.
  assert metrics.recall_at_k(SCORES, TARGETS, 1)[0] == 0.0
  assert metrics.recall_at_k(SCORES, TARGETS, 2)[0] == 0.5
  assert metrics.recall_at_k(SCORES, TARGETS, 3)[0] == 0.5
  assert metrics.recall_at_k(SCORES, TARGETS, 4)[0] == 1.0


def test_recall_uses_liang_denominator():
  # Three targets, both of the top-2 are targets: 2 / min(2, 3) = 1 (plain recall: 2/3).
  scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
  targets = np.array([[True, True, False, True, False]])
  assert metrics.recall_at_k(scores, targets, 2)[0] == 1.0
  # At K=5: 3 hits / min(5, 3) = 1.
  assert metrics.recall_at_k(scores, targets, 5)[0] == 1.0
  # At K=3: hits {0, 1} = 2 / min(3, 3).
  assert metrics.recall_at_k(scores, targets, 3)[0] == pytest.approx(2 / 3)


def test_hit_rate_hand_computed():
  assert metrics.hit_rate_at_k(SCORES, TARGETS, 1)[0] == 0.0
  assert metrics.hit_rate_at_k(SCORES, TARGETS, 2)[0] == 1.0


def test_ndcg_hand_computed():
  # NDCG@3: one hit at rank 2 -> DCG = 1/log2(3); ideal: 2 targets at ranks 1, 2.
  dcg3 = 1 / math.log2(3)
  idcg = 1 / math.log2(2) + 1 / math.log2(3)
  assert metrics.ndcg_at_k(SCORES, TARGETS, 3)[0] == pytest.approx(dcg3 / idcg)
  assert metrics.ndcg_at_k(SCORES, TARGETS, 3)[0] == pytest.approx(0.386853, abs=1e-6)
  # NDCG@5: hits at ranks 2 and 4.
  dcg5 = 1 / math.log2(3) + 1 / math.log2(5)
  assert metrics.ndcg_at_k(SCORES, TARGETS, 5)[0] == pytest.approx(dcg5 / idcg)
  assert metrics.ndcg_at_k(SCORES, TARGETS, 5)[0] == pytest.approx(0.650921, abs=1e-6)
  # NDCG@1: no hit.
  assert metrics.ndcg_at_k(SCORES, TARGETS, 1)[0] == 0.0


def test_ndcg_ideal_uses_min_of_targets_and_k():
  # One target ranked first -> 1 regardless of K (ideal DCG over min(1, K) = 1 position).
  scores = np.array([[3.0, 2.0, 1.0]])
  targets = np.array([[True, False, False]])
  assert metrics.ndcg_at_k(scores, targets, 3)[0] == 1.0
  # Three targets, K=1, top item a target: 1 / 1.
  assert metrics.ndcg_at_k(scores, np.ones((1, 3), bool), 1)[0] == 1.0


def test_mrr_and_auc_hand_computed():
  # Best target (item 2) at rank 2.
  assert metrics.mrr(SCORES, TARGETS)[0] == 0.5
  # Pairs (target, non-target): (2,0) lose, (2,1) win, (2,4) win, (3,0) lose, (3,1) win,
  # (3,4) lose -> 3/6.
  assert metrics.row_auc(SCORES, TARGETS)[0] == 0.5


def test_exclusion_removes_items_from_ranking():
  exclude = np.array([[True, False, False, False, False]])  # item 0 seen
  # Ranking becomes 2, 4, 3, 1.
  assert metrics.recall_at_k(SCORES, TARGETS, 1, exclude)[0] == 1.0
  assert metrics.ndcg_at_k(SCORES, TARGETS, 2, exclude)[0] == pytest.approx(
      1.0 / (1 + 1 / math.log2(3)))
  assert metrics.mrr(SCORES, TARGETS, exclude)[0] == 1.0
  # Non-targets left: items 1 and 4. (2,1) win, (2,4) win, (3,1) win, (3,4) lose -> 3/4.
  assert metrics.row_auc(SCORES, TARGETS, exclude)[0] == 0.75
  # Sparse exclusion gives the same.
  assert metrics.row_auc(SCORES, TARGETS, sparse.csr_matrix(exclude))[0] == 0.75


def test_excluded_items_never_count_as_hits():
  # Only 2 items left after excluding 3; K=5 shows excluded items at the bottom, and an
  # excluded target is not a hit.
  scores = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
  targets = np.array([[True, False, False, False, True]])
  exclude = np.array([[True, True, False, True, False]])
  assert metrics.recall_at_k(scores, targets, 5, exclude)[0] == 0.5


def test_ties_are_symmetric():
  scores = np.array([[1.0, 1.0, 0.0]])
  targets = np.array([[True, False, False]])
  # Target tied with one non-target: rank 1 + 0 + 1/2.
  assert metrics.mrr(scores, targets)[0] == pytest.approx(1 / 1.5)
  # vs item 1: tie (1/2), vs item 2: win -> 1.5 / 2.
  assert metrics.row_auc(scores, targets)[0] == 0.75
  constant = np.zeros((1, 6))
  assert metrics.row_auc(constant, np.array([[1, 0, 1, 0, 0, 0]], bool))[0] == 0.5


def test_target_index_form_and_missing_targets():
  scores = np.array([[0.9, 0.1, 0.8], [0.1, 0.2, 0.3]])
  out = metrics.ranking_metrics(scores, np.array([2, -1]), ks=[1, 2])
  assert out["hr@1"][0] == 0.0 and out["hr@2"][0] == 1.0
  assert out["ndcg@2"][0] == pytest.approx(1 / math.log2(3))
  assert out["mrr"][0] == 0.5
  for key in out:
    assert np.isnan(out[key][1])
  dense = np.array([[False, False, True], [False, False, False]])
  for tgt in (dense, sparse.csr_matrix(dense)):
    again = metrics.ranking_metrics(scores, tgt, ks=[1, 2])
    for key in out:
      np.testing.assert_array_equal(out[key], again[key])


def test_mean_over_users_skips_users_without_targets():
  assert metrics.mean_over_users({"x": np.array([0.5, np.nan, 1.0])}) == {"x": 0.75}


def test_top_k_order_and_exclusion():
  np.testing.assert_array_equal(metrics.top_k(SCORES, 3), [[0, 2, 4]])
  np.testing.assert_array_equal(metrics.top_k(SCORES, 2, SCORES < 0.6), [[0, 2]])
  np.testing.assert_array_equal(metrics.top_k(SCORES, 10), [[0, 2, 4, 3, 1]])


def test_bad_inputs():
  with pytest.raises(ValueError, match="NaN"):
    metrics.recall_at_k(np.array([[np.nan, 1.0]]), np.array([[True, False]]), 1)
  with pytest.raises(ValueError, match="shape"):
    metrics.recall_at_k(SCORES, np.ones((1, 4), bool), 1)
  with pytest.raises(ValueError, match="unknown"):
    metrics.ranking_metrics(SCORES, TARGETS, [1], metrics=["precision"])


# ----------------------------------------------------------------------------------------
# Binary-label metrics.

def test_global_auc_hand_computed():
  # Positives 0.8, 0.4; negatives 0.4, 0.2: win, win, tie (1/2), win -> 3.5 / 4.
  assert metrics.auc([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.2]) == 0.875
  assert metrics.auc([1, 1, 0], [0.1, 0.2, 0.9]) == 0.0
  assert np.isnan(metrics.auc([1, 1], [0.1, 0.2]))


def test_rce_hand_computed():
  labels, probs = [1, 0, 0, 0], [0.5, 0.2, 0.2, 0.2]
  h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))          # 0.562335
  ce = -(math.log(0.5) + 3 * math.log(0.8)) / 4                  # 0.340645
  assert metrics.rce(labels, probs) == pytest.approx(100 * (h - ce) / h)
  assert metrics.rce(labels, probs) == pytest.approx(39.4232, abs=1e-3)
  # Predicting the base rate gives 0; a perfect predictor approaches 100.
  assert metrics.rce(labels, [0.25] * 4) == pytest.approx(0.0, abs=1e-9)
  assert metrics.rce(labels, [1, 0, 0, 0]) == pytest.approx(100.0, abs=1e-3)


def test_calibration_and_mae():
  assert metrics.calibration([1, 0, 0, 0], [0.5, 0.2, 0.2, 0.2]) == pytest.approx(1.1)
  assert metrics.mae([1, 2, 3], [2, 2, 5]) == 1.0
  assert metrics.mae([1, 2, 3], [2, 2, 5], mask=[True, False, True]) == 1.5
  assert np.isnan(metrics.mae([1.0], [2.0], mask=[False]))


# ----------------------------------------------------------------------------------------
# Properties against a slow pure-Python reference (no ties).

def _reference(scores, targets, exclude, k):
  """Per-user metrics by sorting each user's list in plain Python."""
  rows = []
  for s, t, e in zip(scores.tolist(), targets.tolist(), exclude.tolist()):
    items = sorted((i for i in range(len(s)) if not e[i]), key=lambda i: -s[i])
    tset = {i for i in range(len(s)) if t[i]}
    n_t = len(tset)
    if n_t == 0:
      rows.append(None)
      continue
    top = items[:k]
    hits = [i in tset for i in top]
    recall = sum(hits) / min(k, n_t)
    hr = float(any(hits))
    dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(n_t, k)))
    first = next((r for r, i in enumerate(items) if i in tset), None)
    mrr = 0.0 if first is None else 1 / (first + 1)
    pos = [s[i] for i in items if i in tset]
    neg = [s[i] for i in items if i not in tset]
    auc = (sum(p > n for p in pos for n in neg) / (len(pos) * len(neg))
           if pos and neg else None)
    rows.append(dict(recall=recall, hr=hr, ndcg=dcg / idcg, mrr=mrr if first is not None else None,
                     auc=auc))
  return rows


@st.composite
def _problem(draw):
  b = draw(st.integers(1, 6))
  n = draw(st.integers(2, 30))
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  scores = np.stack([rng.permutation(n) for _ in range(b)]).astype(np.float64)  # no ties
  targets = rng.random((b, n)) < draw(st.floats(0.0, 0.6))
  exclude = (rng.random((b, n)) < draw(st.floats(0.0, 0.5))) & ~targets
  k = draw(st.integers(1, n + 2))
  return scores, targets, exclude, k


@settings(max_examples=60, deadline=None)
@given(_problem())
def test_agrees_with_slow_reference(problem):
  scores, targets, exclude, k = problem
  fast = metrics.ranking_metrics(scores, targets, [k], exclude,
                                 metrics=["recall", "hr", "ndcg", "mrr", "auc"])
  ref = _reference(scores, targets, exclude, k)
  for u, r in enumerate(ref):
    if r is None:
      assert all(np.isnan(fast[key][u]) for key in fast)
      continue
    assert fast[f"recall@{k}"][u] == pytest.approx(r["recall"])
    assert fast[f"hr@{k}"][u] == pytest.approx(r["hr"])
    assert fast[f"ndcg@{k}"][u] == pytest.approx(r["ndcg"])
    assert fast["mrr"][u] == pytest.approx(r["mrr"])
    if r["auc"] is None:
      assert np.isnan(fast["auc"][u])
    else:
      assert fast["auc"][u] == pytest.approx(r["auc"])


@settings(max_examples=60, deadline=None)
@given(_problem(), st.integers(0, 2**32 - 1))
def test_bounds_and_item_permutation_invariance(problem, perm_seed):
  scores, targets, exclude, k = problem
  ks = [1, k]
  keys = ["recall", "hr", "ndcg", "mrr", "auc"]
  base = metrics.ranking_metrics(scores, targets, ks, exclude, metrics=keys)
  perm = np.random.default_rng(perm_seed).permutation(scores.shape[1])
  permuted = metrics.ranking_metrics(scores[:, perm], targets[:, perm], ks, exclude[:, perm],
                                     metrics=keys)
  for key, value in base.items():
    finite = value[np.isfinite(value)]
    assert np.all((finite >= 0.0) & (finite <= 1.0 + 1e-12)), key
    np.testing.assert_allclose(permuted[key], value, err_msg=key)
  # HR is non-decreasing in K.
  a, b = base["hr@1"], base[f"hr@{k}"]
  ok = np.isfinite(a)
  assert np.all(a[ok] <= b[ok])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 200))
def test_global_auc_agrees_with_pairwise_count(seed, n):
  rng = np.random.default_rng(seed)
  y = rng.random(n) < 0.4
  p = np.round(rng.random(n), 1)  # ties on purpose
  pos, neg = p[y], p[~y]
  if len(pos) == 0 or len(neg) == 0:
    assert np.isnan(metrics.auc(y, p))
    return
  pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
  assert metrics.auc(y, p) == pytest.approx(pairs / (len(pos) * len(neg)))
  assert metrics.auc(y, 1 - p) == pytest.approx(1 - pairs / (len(pos) * len(neg)))
