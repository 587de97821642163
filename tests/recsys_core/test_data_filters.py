"""Filters: rating threshold, minimum counts (one pass and fixed point), reindex."""
import numpy as np
import pytest

from recsys_core import data
from recsys_core.data import filters


def _x(users, items, ratings=None):
  users = np.asarray(users)
  items = np.asarray(items)
  return data.Interactions(
      users=users.astype(np.int32), items=items.astype(np.int32),
      ratings=None if ratings is None else np.asarray(ratings, np.float32),
      order=np.arange(len(users), dtype=np.int64),
      user_ids=np.arange(users.max() + 1) + 100, item_ids=np.arange(items.max() + 1) + 200,
      source="toy")


def test_rating_threshold_is_strict_and_drops_nan():
  x = _x([0, 0, 1, 1, 1], [0, 1, 0, 1, 2], [3.5, 4.0, np.nan, 5.0, 3.0])
  y = filters.filter_by_rating(x, 3.5)
  assert y.ratings.tolist() == [4.0, 5.0]
  assert y.order.tolist() == [1, 3]
  assert y.num_users == 2 and y.num_items == 3  # index spaces kept
  with pytest.raises(ValueError, match="no ratings"):
    filters.filter_by_rating(_x([0], [0]), 3.5)


def test_min_interactions_one_pass_and_fixed_point():
  # item 2 has 1 row; user 1 has rows on items 0, 2 -> after dropping item 2 it has 1 row.
  # user 2 has 1 row on item 0.
  x = _x([0, 0, 1, 1, 2], [0, 1, 0, 2, 0])
  one = filters.filter_min_interactions(x, min_user_interactions=2, min_item_interactions=2)
  # items first: item 2 (1 row) and item 1 (1 row) dropped; then users with < 2: all.
  assert len(one) == 0
  x = _x([0, 0, 0, 1, 1, 2, 2, 3], [0, 1, 2, 0, 1, 0, 3, 0])
  one = filters.filter_min_interactions(x, min_user_interactions=2, min_item_interactions=2)
  # item 2, 3 dropped (1 row each) -> user 2 left with 1 row -> dropped, user 3 (1 row) too.
  assert sorted(zip(one.users.tolist(), one.items.tolist())) == [(0, 0), (0, 1), (1, 0),
                                                                 (1, 1)]
  x = _x([0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 0, 2, 0, 1, 1, 3])
  one = filters.filter_min_interactions(x, min_user_interactions=2, min_item_interactions=2)
  # pass 1: items 2, 3 dropped; users 1 and 3 now have 1 row -> dropped. Item 1 still has
  # rows from users 0, 2; item 0 from users 0, 2: stable, nothing more to do.
  fixed = filters.filter_min_interactions(x, 2, 2, iterate=True)
  assert len(one) == len(fixed) == 4
  x = _x([0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 3])
  one = filters.filter_min_interactions(x, 2, 2)
  fixed = filters.filter_min_interactions(x, 2, 2, iterate=True)
  # pass 1: items 0, 3 dropped -> users 0, 2 have 1 row -> dropped; item 1, 2 now 1 row each.
  assert len(one) == 2 and len(fixed) == 0


def test_fixed_point_is_a_k_core():
  rng = np.random.default_rng(0)
  x = _x(rng.integers(0, 60, 400), rng.integers(0, 40, 400))
  y = filters.filter_min_interactions(x, 4, 3, iterate=True)
  assert (np.bincount(y.users)[np.unique(y.users)] >= 4).all()
  assert (np.bincount(y.items)[np.unique(y.items)] >= 3).all()
  assert 0 < len(y) < len(x)


def test_reindex_keeps_order_and_ids():
  x = _x([3, 3, 1], [5, 2, 5], [1, 2, 3])
  y = filters.reindex(x)
  assert y.user_ids.tolist() == [101, 103] and y.item_ids.tolist() == [202, 205]
  assert y.users.tolist() == [1, 1, 0] and y.items.tolist() == [1, 0, 1]
  assert y.ratings.tolist() == [1, 2, 3] and y.order.tolist() == [0, 1, 2]
  assert filters.reindex(y) is y
