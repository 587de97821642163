"""Evaluation through the Scorer interface, on synthetic interactions."""
import math

import numpy as np
import pytest

from recsys_core import evaluation
from recsys_core import metrics
from recsys_core.data.types import Interactions


def _interactions(users, items, num_users, num_items, user_ids=None):
  n = len(users)
  return Interactions(users=np.asarray(users, np.int32), items=np.asarray(items, np.int32),
                      ratings=np.arange(n, dtype=np.float32), order=np.arange(n, dtype=np.int64),
                      user_ids=np.arange(100, 100 + num_users) if user_ids is None else user_ids,
                      item_ids=np.arange(num_items), source="test")


class TableScorer:
  """Scores from a fixed [U, I] table, looked up by the original user id (100 + u)."""

  name = "table"

  def __init__(self, table):
    self.table = np.asarray(table, np.float32)
    self.batch_sizes = []
    self.inputs = []

  def fit(self, train):
    return self

  def score(self, inputs):
    self.batch_sizes.append(inputs.num_users)
    self.inputs.append(inputs)
    return self.table[np.asarray(inputs.user_ids) - 100]


def _random_split(seed, num_users=23, num_items=17):
  rng = np.random.default_rng(seed)
  m = rng.random((num_users, num_items))
  fold_in = m < 0.25
  target = (m >= 0.25) & (m < 0.4)
  target[::5] = False  # some users without targets
  u, i = np.nonzero(fold_in)
  inputs = _interactions(u, i, num_users, num_items)
  u, i = np.nonzero(target)
  targets = _interactions(u, i, num_users, num_items)
  table = rng.permutation(num_users * num_items).reshape(num_users, num_items)
  return inputs, targets, fold_in, target, table


def test_user_batcher_reindexes_and_keeps_columns():
  x = _interactions([2, 0, 2, 1, 0], [4, 1, 3, 0, 2], 3, 5)
  sub = evaluation.UserBatcher(x).subset(np.array([2, 0]))
  assert sub.num_users == 2 and sub.num_items == 5
  np.testing.assert_array_equal(sub.user_ids, [102, 100])
  np.testing.assert_array_equal(sub.users, [0, 0, 1, 1])
  np.testing.assert_array_equal(sub.items, [4, 3, 1, 2])
  np.testing.assert_array_equal(sub.ratings, [0, 2, 1, 4])
  np.testing.assert_array_equal(sub.order, [0, 2, 1, 4])
  empty = evaluation.UserBatcher(x).subset(np.array([], np.int64))
  assert len(empty) == 0 and empty.num_users == 0


@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_strong_generalization_equals_direct_metrics(batch_size):
  inputs, targets, fold_in, target, table = _random_split(0)
  scorer = TableScorer(table)
  got = evaluation.evaluate_strong_generalization(scorer, inputs, targets, ks=(3, 5),
                                                  batch_size=batch_size)
  direct = metrics.mean_over_users(metrics.ranking_metrics(
      table, target, ks=(3, 5), exclude=fold_in, metrics=("recall", "ndcg")))
  assert set(got) == {"recall@3", "recall@5", "ndcg@3", "ndcg@5", "num_users"}
  for key, value in direct.items():
    assert got[key] == pytest.approx(value)
  has = target.any(axis=1)
  assert got["num_users"] == has.sum()
  assert max(scorer.batch_sizes) <= batch_size
  assert sum(scorer.batch_sizes) == has.sum()  # users without targets are never scored
  # Every batch holds exactly the fold-in items of its users.
  for sub in scorer.inputs:
    dense = sub.to_csr().toarray() > 0
    np.testing.assert_array_equal(dense, fold_in[np.asarray(sub.user_ids) - 100])


def test_fold_in_items_are_excluded():
  # User 0 folds in items 0 and 1, which the scorer puts on top; target item 2 is next.
  inputs = _interactions([0, 0], [0, 1], 1, 4)
  targets = _interactions([0], [2], 1, 4)
  scorer = TableScorer([[9.0, 8.0, 7.0, 6.0]])
  got = evaluation.evaluate_strong_generalization(scorer, inputs, targets, ks=(1,))
  assert got["recall@1"] == 1.0 and got["ndcg@1"] == 1.0


def test_leave_one_out_hand_computed():
  # Items 0..4. User 0 saw item 0; target 3. User 1 saw 1; target -1 (skipped).
  # User 2 saw 4, target 1.
  inputs = _interactions([0, 1, 2], [0, 1, 4], 3, 5)
  table = np.array([[5, 4, 3, 2, 1],      # ranking without item 0: 1, 2, 3 -> target rank 3
                    [5, 4, 3, 2, 1],
                    [1, 5, 2, 3, 9]],     # without item 4: 1 first -> target rank 1
                   np.float32)
  scorer = TableScorer(table)
  got = evaluation.evaluate_leave_one_out(scorer, inputs, np.array([3, -1, 1]), ks=(1, 2, 3),
                                          batch_size=2)
  assert got["num_users"] == 2
  assert got["hr@1"] == 0.5 and got["hr@2"] == 0.5 and got["hr@3"] == 1.0
  assert got["ndcg@3"] == pytest.approx((1 / math.log2(4) + 1.0) / 2)
  assert got["mrr"] == pytest.approx((1 / 3 + 1) / 2)
  assert sum(scorer.batch_sizes) == 2


def test_errors():
  inputs, targets, *_ , table = _random_split(1)
  with pytest.raises(ValueError, match="expected"):
    evaluation.evaluate_leave_one_out(TableScorer(table), inputs, np.zeros(3, int))
  with pytest.raises(ValueError, match="items"):
    evaluation.evaluate_leave_one_out(TableScorer(table), inputs,
                                      np.full(inputs.num_users, 99))
  with pytest.raises(ValueError, match="shape"):
    evaluation.evaluate_strong_generalization(TableScorer(table[:, :3]), inputs, targets)
  no_targets = targets.select(np.zeros(len(targets), bool))
  with pytest.raises(ValueError, match="no user"):
    evaluation.evaluate_strong_generalization(TableScorer(table), inputs, no_targets)


def test_evaluate_dispatches_on_protocol():
  inputs, targets, _, _, table = _random_split(2)
  a = evaluation.evaluate(TableScorer(table), "strong_generalization", inputs, targets, ks=(5,))
  b = evaluation.evaluate_strong_generalization(TableScorer(table), inputs, targets, ks=(5,))
  assert a == b
  loo_targets = np.arange(inputs.num_users) % inputs.num_items
  a = evaluation.evaluate(TableScorer(table), "leave_one_out", inputs, loo_targets)
  assert set(a) == {"hr@5", "hr@10", "hr@20", "hr@50", "ndcg@5", "ndcg@10", "ndcg@20",
                    "ndcg@50", "mrr", "num_users"}
  with pytest.raises(ValueError, match="protocol"):
    evaluation.evaluate(TableScorer(table), "sampled", inputs, targets)


@pytest.mark.parametrize("kwargs,message", [
    (dict(batch_size=-1), "batch_size=-1: must be >= 1"),
    (dict(batch_size=0), "batch_size=0: must be >= 1"),
    (dict(ks=(0, 10)), r"ks=\(0, 10\): must be one or more cut-offs >= 1"),
])
def test_bad_batch_size_or_cutoffs_are_errors_not_empty_metrics(kwargs, message):
  """batch_size=-1 used to return no metrics at all (the loop never ran)."""
  from recsys_core import baselines
  x = Interactions(users=np.array([0, 0, 1, 1], np.int32),
                   items=np.array([0, 1, 1, 2], np.int32), ratings=None, order=None,
                   user_ids=np.arange(2), item_ids=np.arange(3))
  pop = baselines.Popularity().fit(x)
  with pytest.raises(ValueError, match=message):
    evaluation.evaluate_leave_one_out(pop, x, np.array([2, 0]), **kwargs)
  with pytest.raises(ValueError, match=message):
    evaluation.evaluate_strong_generalization(pop, x, x, **kwargs)
