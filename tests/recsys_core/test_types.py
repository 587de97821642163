"""Tests of the shared Interactions type and result files."""
import json

import numpy as np
import pytest

from recsys_core import results
from recsys_core.data.types import Interactions


def _toy():
  return Interactions(
      users=np.array([0, 0, 1, 1, 1], np.int32), items=np.array([2, 0, 1, 2, 0], np.int32),
      ratings=np.array([5.0, np.nan, 3.0, 4.0, 1.0], np.float32),
      order=np.array([20, 10, 3, 1, 2], np.int64),
      user_ids=np.array([10, 11]), item_ids=np.array([100, 101, 102]), source="toy")


def test_to_csr_binary_and_rating():
  x = _toy()
  np.testing.assert_array_equal(x.to_csr().toarray(), [[1, 0, 1], [1, 1, 1]])
  np.testing.assert_array_equal(x.to_csr("rating").toarray(), [[0, 0, 5], [1, 3, 4]])


def test_sequences_follow_order():
  seqs = _toy().sequences()
  assert seqs[0].tolist() == [0, 2]
  assert seqs[1].tolist() == [2, 0, 1]


def test_length_mismatch_is_rejected():
  with pytest.raises(ValueError, match="toy"):
    Interactions(users=np.zeros(2, np.int32), items=np.zeros(3, np.int32), ratings=None,
                 order=None, user_ids=np.arange(1), item_ids=np.arange(1), source="toy")


def test_write_result_schema(tmp_path):
  path = results.write_result(
      name="x", dataset="d", protocol="p", model="m", config={"a": 1},
      metrics={"recall@20": [0.1, 0.3], "mae": 0.5}, seeds=[0, 1], wall_seconds=1.0,
      results_dir=str(tmp_path))
  rec = json.load(open(path))
  assert rec["metrics"]["recall@20"]["mean"] == pytest.approx(0.2)
  assert rec["metrics"]["recall@20"]["std"] == pytest.approx(0.1)
  assert rec["metrics"]["mae"]["values"] == [0.5]
  for key in ("command", "commit", "date", "machine", "wall_seconds", "seeds", "config"):
    assert key in rec
