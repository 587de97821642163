"""Splits: protocol A (strong generalisation) and protocol B (leave-one-out)."""
import collections
import os

import numpy as np
import pytest

from recsys_core import data
from recsys_core import splits
from recsys_core.data import filters


def _random_interactions(seed, num_users=60, num_items=40, density=0.2, with_order=True):
  rng = np.random.default_rng(seed)
  mask = rng.random((num_users, num_items)) < density
  users, items = np.nonzero(mask)
  perm = rng.permutation(len(users))  # rows in a random file order
  users, items = users[perm], items[perm]
  return data.Interactions(
      users=users.astype(np.int32), items=items.astype(np.int32),
      ratings=rng.integers(1, 6, len(users)).astype(np.float32),
      order=rng.integers(0, 10**6, len(users)) if with_order else None,
      user_ids=np.arange(num_users) * 7 + 3, item_ids=np.arange(num_items) * 11 + 5,
      source="random")


def _pairs(x):
  """Set of (original user id, original item id)."""
  return set(zip(x.user_ids[x.users].tolist(), x.item_ids[x.items].tolist()))


# ----------------------------------------------------------------------------------------
# Protocol A.


def _liang_reference(x, seed, n_heldout):
  """A literal, loop-based transcription of the Mult-VAE notebook's split (pandas-free)."""
  np.random.seed(seed)
  unique_uid = np.unique(x.users)
  idx_perm = np.random.permutation(unique_uid.size)
  unique_uid = unique_uid[idx_perm]
  n_users = unique_uid.size
  tr_users = unique_uid[:(n_users - n_heldout * 2)]
  vd_users = unique_uid[(n_users - n_heldout * 2):(n_users - n_heldout)]
  te_users = unique_uid[(n_users - n_heldout):]
  rows = list(zip(x.users.tolist(), x.items.tolist()))
  train_plays = [r for r in rows if r[0] in set(tr_users.tolist())]
  unique_sid = set(i for _, i in train_plays)

  def split_train_test_proportion(plays, test_prop=0.2):
    groups = collections.defaultdict(list)
    for u, i in plays:
      groups[u].append((u, i))
    tr_list, te_list = [], []
    np.random.seed(seed)
    for u in sorted(groups):
      group = groups[u]
      n_items_u = len(group)
      if n_items_u >= 5:
        idx = np.zeros(n_items_u, dtype="bool")
        idx[np.random.choice(n_items_u, size=int(test_prop * n_items_u),
                             replace=False).astype("int64")] = True
        tr_list += [g for g, t in zip(group, idx) if not t]
        te_list += [g for g, t in zip(group, idx) if t]
      else:
        tr_list += group
    return tr_list, te_list

  out = {"train": train_plays}
  for name, users in (("val", vd_users), ("test", te_users)):
    plays = [r for r in rows if r[0] in set(users.tolist()) and r[1] in unique_sid]
    out[name + "_inputs"], out[name + "_targets"] = split_train_test_proportion(plays)
  return out


def _dense_pairs(x, base):
  """(user, item) in the index space of `base` (the unsplit data), as a sorted list."""
  u = np.searchsorted(base.user_ids, x.user_ids[x.users])
  i = np.searchsorted(base.item_ids, x.item_ids[x.items])
  return sorted(zip(u.tolist(), i.tolist()))


@pytest.mark.parametrize("seed", [98765, 0, 3])
def test_strong_generalization_matches_reference_transcription(seed):
  x = _random_interactions(1)
  s = splits.strong_generalization_split(x, seed=seed)
  ref = _liang_reference(x, seed, s.n_heldout_users)
  assert s.n_heldout_users == 6  # int(0.1 * 60)
  assert _dense_pairs(s.train, x) == sorted(ref["train"])
  for name in ("val_inputs", "val_targets", "test_inputs", "test_targets"):
    assert _dense_pairs(getattr(s, name), x) == sorted(ref[name]), name


@pytest.mark.parametrize("seed", [0, 1])
def test_strong_generalization_invariants(seed):
  x = _random_interactions(seed + 10, num_users=80, num_items=120, density=0.06)
  s = splits.strong_generalization_split(x, seed=seed, n_heldout_users=10)
  train_users = set(s.train.user_ids.tolist())
  val_users = set(s.val_inputs.user_ids.tolist())
  test_users = set(s.test_inputs.user_ids.tolist())
  assert not (train_users & val_users) and not (train_users & test_users)
  assert not (val_users & test_users)
  assert len(train_users) == 60 and len(val_users) <= 10 and len(test_users) <= 10
  # One item space: the training users' items.
  train_items = set(x.item_ids[np.unique(x.items[np.isin(x.user_ids[x.users],
                                                          list(train_users))])].tolist())
  assert set(s.train.item_ids.tolist()) == train_items
  for part in (s.val_inputs, s.val_targets, s.test_inputs, s.test_targets):
    assert part.item_ids is s.train.item_ids or (part.item_ids == s.train.item_ids).all()
    assert part.num_items == s.train.num_items
  assert s.val_targets.user_ids.tolist() == s.val_inputs.user_ids.tolist()
  assert s.test_targets.num_users == s.test_inputs.num_users
  everything = _pairs(x)
  for inputs, targets, users in ((s.val_inputs, s.val_targets, val_users),
                                 (s.test_inputs, s.test_targets, test_users)):
    fold_in, held = _pairs(inputs), _pairs(targets)
    assert not fold_in & held
    # inputs + targets = the held-out users' rows on training items, nothing else.
    expected = {(u, i) for u, i in everything if u in users and i in train_items}
    assert fold_in | held == expected
    # 80/20 per user (targets = floor(0.2 n) for n >= 5, none below).
    n_in = np.bincount(inputs.users, minlength=inputs.num_users)
    n_t = np.bincount(targets.users, minlength=targets.num_users)
    n = n_in + n_t
    np.testing.assert_array_equal(n_t, np.where(n >= 5, (0.2 * n).astype(int), 0))
    assert (n > 0).all()
  assert _pairs(s.train) == {(u, i) for u, i in everything if u in train_users}
  # Ratings and order are carried along.
  lookup = dict(zip(zip(x.users.tolist(), x.items.tolist()), x.ratings.tolist()))
  u = np.searchsorted(x.user_ids, s.val_targets.user_ids[s.val_targets.users])
  i = np.searchsorted(x.item_ids, s.val_targets.item_ids[s.val_targets.items])
  assert s.val_targets.ratings.tolist() == [lookup[k] for k in zip(u.tolist(), i.tolist())]


def test_strong_generalization_determinism_and_seeds_differ():
  x = _random_interactions(2, num_users=100)
  a = splits.strong_generalization_split(x, seed=5)
  b = splits.strong_generalization_split(x, seed=5)
  c = splits.strong_generalization_split(x, seed=6)
  for name in ("train", "val_inputs", "val_targets", "test_inputs", "test_targets"):
    pa, pb = getattr(a, name), getattr(b, name)
    np.testing.assert_array_equal(pa.users, pb.users)
    np.testing.assert_array_equal(pa.items, pb.items)
    np.testing.assert_array_equal(pa.user_ids, pb.user_ids)
  assert a.test_inputs.user_ids.tolist() != c.test_inputs.user_ids.tolist()
  assert _pairs(a.val_targets) != _pairs(c.val_targets)


def test_strong_generalization_drops_items_unseen_in_training():
  # 10 users with items 0-4 and 9. The user permutation depends only on the set of users,
  # so after removing item 9 from the training users' rows the roles stay the same and
  # item 9 is held-out-only.
  users = np.repeat(np.arange(10), 6)
  items = np.tile(np.array([0, 1, 2, 3, 4, 9]), 10)
  x = data.Interactions(users=users.astype(np.int32), items=items.astype(np.int32),
                        ratings=None, order=None, user_ids=np.arange(10),
                        item_ids=np.arange(10), source="t")
  roles = splits.strong_generalization_split(x, seed=0, n_heldout_users=1)
  x = x.select(~((x.items == 9) & np.isin(x.users, roles.train.user_ids)))
  s = splits.strong_generalization_split(x, seed=0, n_heldout_users=1)
  assert s.train.user_ids.tolist() == roles.train.user_ids.tolist()
  assert s.train.item_ids.tolist() == [0, 1, 2, 3, 4]
  for part in (s.val_inputs, s.val_targets, s.test_inputs, s.test_targets):
    assert 9 not in part.item_ids[part.items].tolist()
  # 5 remaining items each -> int(0.2 * 5) = 1 target, 4 fold-in.
  assert len(s.val_targets) == 1 and len(s.val_inputs) == 4


def test_strong_generalization_rejects_too_few_users():
  x = _random_interactions(3, num_users=5)
  with pytest.raises(ValueError, match="hold out"):
    splits.strong_generalization_split(x)  # int(0.1 * 5) = 0
  with pytest.raises(ValueError, match="hold out"):
    splits.strong_generalization_split(x, n_heldout_users=3)


# ----------------------------------------------------------------------------------------
# Protocol B.


def test_leave_one_out_hand_checked():
  # user 0: items (by time) 4, 2, 3, 1 ; user 1: 0, 1 (too short); user 2: 3, 4, 0 with a
  # tie at time 5 broken by row order (item 4's row comes before item 0's).
  users = [0, 0, 2, 0, 1, 2, 0, 1, 2]
  items = [3, 2, 4, 1, 1, 0, 4, 0, 3]
  order = [30, 20, 5, 40, 2, 5, 10, 1, 1]
  x = data.Interactions(users=np.array(users, np.int32), items=np.array(items, np.int32),
                        ratings=None, order=np.array(order), user_ids=np.arange(3),
                        item_ids=np.arange(5), source="t")
  s = splits.leave_one_out_split(x)
  assert s.test_targets.tolist() == [1, -1, 0]
  assert s.val_targets.tolist() == [3, -1, 4]
  assert [q.tolist() for q in s.train.sequences()] == [[4, 2], [0, 1], [3]]
  assert [q.tolist() for q in s.test_inputs.sequences()] == [[4, 2, 3], [0, 1], [3, 4]]
  assert s.val_inputs is s.train
  assert s.train.num_users == 3 and s.train.num_items == 5


@pytest.mark.parametrize("with_order", [True, False])
def test_leave_one_out_invariants(with_order):
  x = _random_interactions(4, num_users=50, num_items=30, density=0.15, with_order=with_order)
  s = splits.leave_one_out_split(x)
  seqs = x.sequences()
  for u, seq in enumerate(seqs):
    if len(seq) >= 3:
      assert s.test_targets[u] == seq[-1] and s.val_targets[u] == seq[-2]
      assert s.train.sequences()[u].tolist() == seq[:-2].tolist()
      assert s.test_inputs.sequences()[u].tolist() == seq[:-1].tolist()
    else:
      assert s.test_targets[u] == s.val_targets[u] == -1
  assert len(s.train) + (s.val_targets >= 0).sum() + (s.test_targets >= 0).sum() == len(x)
  assert len(s.test_inputs) == len(x) - (s.test_targets >= 0).sum()


# ----------------------------------------------------------------------------------------
# Real data (shared/data), if present.


def _real_dir():
  env = os.environ.get("RECSYS_DATA_DIR")
  if env:
    return env
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  sibling = os.path.join(os.path.dirname(repo), "shared", "data")
  return sibling if os.path.isdir(sibling) else None


@pytest.mark.skipif(_real_dir() is None, reason="RECSYS_DATA_DIR not set (real data)")
def test_real_splits():
  x = data.load_dataset("ml-100k", _real_dir())
  x = filters.reindex(filters.filter_min_interactions(filters.filter_by_rating(x, 3.5), 5))
  s = splits.strong_generalization_split(x, seed=0)
  assert s.n_heldout_users == int(0.1 * x.num_users)
  assert s.train.num_users == x.num_users - 2 * s.n_heldout_users
  assert len(s.val_targets) > 0.15 * (len(s.val_targets) + len(s.val_inputs))
  y = data.load_dataset("ml-1m", _real_dir())
  b = splits.leave_one_out_split(y)
  last = np.array([q[-1] for q in y.sequences()])
  np.testing.assert_array_equal(b.test_targets, last)
  assert (b.val_targets >= 0).all()
