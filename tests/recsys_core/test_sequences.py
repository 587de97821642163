"""Per-user sequences (recsys_core/data/sequences.py): order, padding, windows, counts."""
import numpy as np
import pytest

from recsys_core.data import sequences
from recsys_core.data.types import Interactions


def test_sequence_data_from_interactions():
  x = Interactions(users=np.array([1, 0, 0, 1], np.int32), items=np.array([2, 1, 0, 3], np.int32),
                   ratings=np.array([1, 2, 3, 4], np.float32), order=np.array([5, 9, 1, 2]),
                   user_ids=np.array([10, 11]), item_ids=np.arange(4))
  d = sequences.SequenceData.from_interactions(x)
  assert [s.tolist() for s in d.sequences] == [[0, 1], [3, 2]]
  assert [r.tolist() for r in d.ratings] == [[3, 2], [4, 1]]
  assert d.num_users == 2 and d.lengths().tolist() == [2, 2]


def test_truncate_pad_keeps_the_most_recent():
  assert sequences.truncate_pad(np.array([1, 2, 3]), 5).tolist() == [1, 2, 3, -1, -1]
  assert sequences.truncate_pad(np.array([1, 2, 3]), 2).tolist() == [2, 3]


def test_next_item_window():
  rng = np.random.default_rng(0)
  assert sequences.next_item_window(10, 3, rng) == (6, 10)          # the last L+1 items
  assert sequences.next_item_window(2, 3, rng) == (0, 2)            # shorter: all of it
  assert sequences.next_item_window(4, 3, rng, "random") == (0, 4)  # n = L+1: no draw
  starts = {sequences.next_item_window(10, 3, rng, "random")[0] for _ in range(200)}
  assert starts == set(range(7))
  with pytest.raises(ValueError, match="window must be"):
    sequences.next_item_window(10, 3, rng, "first")


def test_item_popularity_counts_the_training_part():
  d = sequences.SequenceData([np.array([0, 1, 2]), np.array([2, 3])], None, np.array([1, 2]), 5)
  np.testing.assert_array_equal(sequences.item_popularity(d), [1, 1, 2, 1, 0])
  np.testing.assert_array_equal(sequences.item_popularity(d, np.array([1, 2])), [1, 0, 1, 1, 0])
