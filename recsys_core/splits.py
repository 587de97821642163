"""Evaluation splits (shared/docs/protocols.md).

Protocol A, strong generalisation (Liang et al. 2018, the Mult-VAE reference code):
  1. Preprocessing is the caller's (see `recsys_core.data.filters`): e.g. ratings > 3.5,
     then users with >= 5 items (`filter_by_rating`, `filter_min_interactions`).
  2. The users that have rows, in increasing index order (= increasing original id), are
     permuted with `np.random.RandomState(seed).permutation`; with n = n_heldout_users, the
     first U - 2n are training users, the next n validation users, the last n test users.
     Default n = floor(10% of U) (`int(0.1 * U)`; Liang et al. used a fixed 10,000 for
     ML-20M).
  3. The item space is the items of the training users' rows. Held-out users' rows on other
     items are dropped.
  4. For each held-out group (validation, then test) a fresh `RandomState(seed)` is made,
     as the reference code re-seeds inside `split_train_test_proportion`. Users are visited
     in increasing index order; a user with n_u >= 5 remaining items gets
     `rng.choice(n_u, size=int(0.2 * n_u), replace=False)` of them (positions in the user's
     rows in data order) as targets and the rest as fold-in inputs; a user with fewer has
     all n_u as fold-in inputs and no targets (evaluators skip users without targets).
  With seed 98765 and the same input rows in the same order this reproduces the
  reference split exactly.

Protocol B, leave-one-out next item (SASRec line): per user, rows sorted by `order` (ties
kept in row order), the last item is the test target, the second-to-last the validation
target, the rest the training input; the test input is everything before the last item.
Users with fewer than 3 rows have no targets and all rows in training (SASRec's
`data_partition`).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from recsys_core.data.types import Interactions

LIANG_SEED = 98765


@dataclasses.dataclass(frozen=True)
class StrongGeneralizationSplit:
  """Protocol A. All parts share one item space: the items of the training users.

  Attributes:
    train: the training users' rows; user space = the training users (in increasing
      index of the input data).
    val_inputs, val_targets: validation users' fold-in rows and target rows, in one user
      space (the validation users with at least one row on a training item).
    test_inputs, test_targets: the same for the test users.
    seed: the split seed.
    n_heldout_users: users drawn for validation and for test (each).
  """

  train: Interactions
  val_inputs: Interactions
  val_targets: Interactions
  test_inputs: Interactions
  test_targets: Interactions
  seed: int
  n_heldout_users: int


def _subset(x: Interactions, rows: np.ndarray, users: np.ndarray,
            item_map: np.ndarray, item_ids: np.ndarray) -> Interactions:
  """Rows `rows` of x, with users re-indexed to positions in `users` (sorted) and items
  mapped through `item_map` (x item -> new item)."""
  user_map = np.full(x.num_users, -1, np.int64)
  user_map[users] = np.arange(len(users))
  return Interactions(
      users=user_map[x.users[rows]].astype(np.int32),
      items=item_map[x.items[rows]].astype(np.int32),
      ratings=None if x.ratings is None else x.ratings[rows],
      order=None if x.order is None else x.order[rows],
      user_ids=x.user_ids[users], item_ids=item_ids, source=x.source)


def _fold_in_and_targets(x: Interactions, users: np.ndarray, item_map: np.ndarray,
                         item_ids: np.ndarray, seed: int, target_fraction: float,
                         min_items_for_targets: int) -> tuple[Interactions, Interactions]:
  in_group = np.zeros(x.num_users, bool)
  in_group[users] = True
  rows = np.flatnonzero(in_group[x.users] & (item_map[x.items] >= 0))
  rows = rows[np.argsort(x.users[rows], kind="stable")]  # by user, data order within user
  group_users, starts, counts = np.unique(x.users[rows], return_index=True, return_counts=True)
  is_target = np.zeros(len(rows), bool)
  rng = np.random.RandomState(seed)
  for start, n_u in zip(starts.tolist(), counts.tolist()):
    if n_u >= min_items_for_targets:
      chosen = rng.choice(n_u, size=int(target_fraction * n_u), replace=False)
      is_target[start + chosen.astype(np.int64)] = True
  # Keep data order in the outputs (rows sorted back).
  fold_in = np.sort(rows[~is_target])
  targets = np.sort(rows[is_target])
  return (_subset(x, fold_in, group_users, item_map, item_ids),
          _subset(x, targets, group_users, item_map, item_ids))


def strong_generalization_split(x: Interactions, seed: int = LIANG_SEED,
                                n_heldout_users: Optional[int] = None,
                                target_fraction: float = 0.2,
                                min_items_for_targets: int = 5) -> StrongGeneralizationSplit:
  """Protocol A split (see the module docstring for the exact procedure).

  Args:
    x: preprocessed interactions (only presence is used; ratings and order are carried).
    seed: permutation and target-sampling seed (the reference code's is 98765).
    n_heldout_users: validation users = test users = this many; None = int(0.1 * U),
      U = number of users with rows.
    target_fraction: fraction of a held-out user's items sampled as targets (floored).
    min_items_for_targets: held-out users with fewer items get no targets.

  Raises:
    ValueError: too few users for the requested held-out sizes.
  """
  active = np.unique(x.users)
  n_users = len(active)
  n = int(0.1 * n_users) if n_heldout_users is None else int(n_heldout_users)
  if n < 1 or 2 * n >= n_users:
    raise ValueError(f"{x.source}: cannot hold out 2 x {n} users of {n_users} and keep "
                     "training users")
  rng = np.random.RandomState(seed)
  permuted = active[rng.permutation(n_users)]
  train_users = np.sort(permuted[:n_users - 2 * n])
  val_users = np.sort(permuted[n_users - 2 * n:n_users - n])
  test_users = np.sort(permuted[n_users - n:])

  is_train_user = np.zeros(x.num_users, bool)
  is_train_user[train_users] = True
  train_rows = np.flatnonzero(is_train_user[x.users])
  train_items = np.unique(x.items[train_rows])
  item_map = np.full(x.num_items, -1, np.int64)
  item_map[train_items] = np.arange(len(train_items))
  item_ids = x.item_ids[train_items]

  train = _subset(x, train_rows, train_users, item_map, item_ids)
  val_inputs, val_targets = _fold_in_and_targets(
      x, val_users, item_map, item_ids, seed, target_fraction, min_items_for_targets)
  test_inputs, test_targets = _fold_in_and_targets(
      x, test_users, item_map, item_ids, seed, target_fraction, min_items_for_targets)
  return StrongGeneralizationSplit(train=train, val_inputs=val_inputs, val_targets=val_targets,
                                   test_inputs=test_inputs, test_targets=test_targets,
                                   seed=seed, n_heldout_users=n)


@dataclasses.dataclass(frozen=True)
class LeaveOneOutSplit:
  """Protocol B. Every part keeps the input's user and item index spaces.

  Attributes:
    train: per user all rows but the last two (users with < 3 rows: all rows). This is
      also the validation input.
    val_targets: [U] int item index of each user's second-to-last item, -1 if none.
    test_inputs: per user all rows but the last (train plus the validation target).
    test_targets: [U] int item index of each user's last item, -1 if none.
  """

  train: Interactions
  val_targets: np.ndarray
  test_inputs: Interactions
  test_targets: np.ndarray

  @property
  def val_inputs(self) -> Interactions:
    """The validation input: the history before the second-to-last item (= train)."""
    return self.train


def leave_one_out_split(x: Interactions, min_length: int = 3) -> LeaveOneOutSplit:
  """Protocol B split (see the module docstring).

  Args:
    x: interactions with `order` (None: row order is used as time).
    min_length: users with fewer rows get no targets (SASRec: 3).
  """
  order = x.order if x.order is not None else np.arange(len(x))
  rows = np.lexsort((np.arange(len(x)), order, x.users))  # by user, time, then row
  users = x.users[rows]
  counts = np.bincount(x.users, minlength=x.num_users)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  position = np.arange(len(x)) - starts[users]
  from_end = counts[users] - 1 - position  # 0 = last item
  eligible = counts[users] >= min_length
  test_rows = rows[eligible & (from_end == 0)]
  val_rows = rows[eligible & (from_end == 1)]
  val_targets = np.full(x.num_users, -1, np.int64)
  val_targets[x.users[val_rows]] = x.items[val_rows]
  test_targets = np.full(x.num_users, -1, np.int64)
  test_targets[x.users[test_rows]] = x.items[test_rows]
  not_test = np.ones(len(x), bool)
  not_test[test_rows] = False
  in_train = not_test.copy()
  in_train[val_rows] = False
  return LeaveOneOutSplit(train=x.select(in_train), val_targets=val_targets,
                          test_inputs=x.select(not_test), test_targets=test_targets)
