"""Filters over `Interactions`: rating threshold, minimum counts, re-indexing.

The filters keep the user and item index spaces (rows are dropped, ids stay); call
`reindex` to drop users and items left without rows and make the indices dense again.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from recsys_core.data.types import Interactions


def filter_by_rating(x: Interactions, threshold: float) -> Interactions:
  """Keeps rows whose rating is strictly greater than `threshold` (NaN ratings dropped).

  Protocol A on 5-star data uses threshold 3.5 (keeps 4 and 5, and 4.5 on half-star
  scales).

  Raises:
    ValueError: the data has no ratings.
  """
  if x.ratings is None:
    raise ValueError(f"{x.source}: has no ratings to threshold")
  with np.errstate(invalid="ignore"):
    return x.select(x.ratings > threshold)


def _count_mask(index: np.ndarray, size: int, minimum: int, rows: np.ndarray) -> np.ndarray:
  counts = np.bincount(index[rows], minlength=size)
  return counts[index] >= minimum


def filter_min_interactions(x: Interactions, min_user_interactions: int = 0,
                            min_item_interactions: int = 0, iterate: bool = False
                            ) -> Interactions:
  """Drops items with fewer than `min_item_interactions` rows, then users with fewer than
  `min_user_interactions` rows (the order of Liang et al.'s `filter_triplets`).

  Args:
    x: the interactions.
    min_user_interactions: minimum rows per user (0 or 1: no user filter).
    min_item_interactions: minimum rows per item.
    iterate: repeat both filters until nothing changes (a k-core: afterwards every user
      and every item meets its minimum); False = one pass, as in Liang et al.
  """
  keep = np.ones(len(x), bool)
  while True:
    before = int(keep.sum())
    if min_item_interactions > 1:
      keep &= _count_mask(x.items, x.num_items, min_item_interactions, keep)
    if min_user_interactions > 1:
      keep &= _count_mask(x.users, x.num_users, min_user_interactions, keep)
    if not iterate or int(keep.sum()) == before:
      break
  return x if keep.all() else x.select(keep)


def reindex(x: Interactions) -> Interactions:
  """Drops users and items without rows; indices become dense again (order preserved)."""
  used_users = np.unique(x.users)
  used_items = np.unique(x.items)
  if len(used_users) == x.num_users and len(used_items) == x.num_items:
    return x
  user_map = np.full(x.num_users, -1, np.int64)
  user_map[used_users] = np.arange(len(used_users))
  item_map = np.full(x.num_items, -1, np.int64)
  item_map[used_items] = np.arange(len(used_items))
  return dataclasses.replace(
      x, users=user_map[x.users].astype(np.int32), items=item_map[x.items].astype(np.int32),
      user_ids=x.user_ids[used_users], item_ids=x.item_ids[used_items])
