"""recsys_core.protocols: ProtocolConfig checks, make_split, Split.with_validation_users.

Tested: `ProtocolConfig.validate` names the offending field (selection metric not among the
cut-offs or not of the protocol, empty or non-positive ks, negative eval_users);
`with_validation_users(n)` keeps exactly n validation users (with their original targets)
under both protocols, leaves the test part alone and draws the same users for the same seed;
`make_split` refuses leave-one-out data where no user has 3 items.
"""
import numpy as np
import pytest

from recsys_core import protocols
from recsys_core import splits
from recsys_core.data import loaders
from recsys_core.protocols import ProtocolConfig


def _interactions(num_users, items_per_user, num_items, seed=0):
  rng = np.random.default_rng(seed)
  users, items, order = [], [], []
  for u in range(num_users):
    chosen = rng.choice(num_items, size=items_per_user, replace=False)
    users += [1000 + u] * items_per_user
    items += [int(i) + 1 for i in chosen]
    order += list(range(items_per_user))
  return loaders.interactions_from_ids(np.array(users), np.array(items), order=np.array(order),
                                       source="test-data")


class RecordingScorer:
  """Scores items by index (a fixed ranking) and records the user ids it was asked for."""

  name = "recording"

  def __init__(self):
    self.user_ids = []

  def fit(self, train):
    return self

  def score(self, inputs):
    self.user_ids += inputs.user_ids.tolist()
    return np.tile(np.arange(inputs.num_items, dtype=np.float32), (inputs.num_users, 1))


# ----------------------------------------------------------------------------------------
# ProtocolConfig.validate


def test_defaults_validate():
  ProtocolConfig().validate()
  ProtocolConfig(name="strong_generalization", ks=(20, 50), selection_metric="recall@50"
                 ).validate()


def test_selection_metric_not_among_ks():
  cfg = ProtocolConfig(ks=(5, 10), selection_metric="ndcg@20")
  with pytest.raises(ValueError) as e:
    cfg.validate()
  msg = str(e.value)
  assert msg.startswith("protocol.selection_metric='ndcg@20': must be one of")
  assert "'ndcg@10'" in msg and "'hr@5'" in msg and "'mrr'" in msg


def test_selection_metric_of_the_other_protocol():
  with pytest.raises(ValueError, match=r"protocol\.selection_metric='hr@10'"):
    ProtocolConfig(name="strong_generalization", ks=(10,), selection_metric="hr@10").validate()
  with pytest.raises(ValueError, match=r"protocol\.selection_metric='mrr'"):
    ProtocolConfig(name="strong_generalization", ks=(10,), selection_metric="mrr").validate()
  with pytest.raises(ValueError, match=r"protocol\.selection_metric='recall@10'"):
    ProtocolConfig(ks=(10,), selection_metric="recall@10").validate()


@pytest.mark.parametrize("ks", [(), (0,), (10, -1)])
def test_bad_ks(ks):
  with pytest.raises(ValueError, match=r"^protocol\.ks="):
    ProtocolConfig(ks=ks).validate()


def test_negative_eval_users():
  with pytest.raises(ValueError, match=r"^protocol\.eval_users=-1: must be >= 0"):
    ProtocolConfig(eval_users=-1).validate()


def test_unknown_protocol_name():
  with pytest.raises(ValueError, match=r"^protocol\.name='loo'"):
    ProtocolConfig(name="loo").validate()


def test_make_split_validates_the_config():
  with pytest.raises(ValueError, match=r"protocol\.eval_users"):
    protocols.make_split(_interactions(10, 4, 20), ProtocolConfig(eval_users=-2))


# ----------------------------------------------------------------------------------------
# with_validation_users


def _loo_split():
  return protocols.make_split(_interactions(40, 5, 30), ProtocolConfig(ks=(5, 10)))


def test_loo_keeps_exactly_n_validation_users():
  split = _loo_split()
  assert np.sum(split.val_targets >= 0) == 40
  sub = split.with_validation_users(7, seed=0)
  kept = np.flatnonzero(sub.val_targets >= 0)
  assert len(kept) == 7
  np.testing.assert_array_equal(sub.val_targets[kept], split.val_targets[kept])
  scorer = RecordingScorer()
  metrics = sub.evaluate(scorer, "val")
  assert metrics["num_users"] == 7
  assert sorted(scorer.user_ids) == sorted(split.val_inputs.user_ids[kept].tolist())
  # The test part is the whole test part.
  assert sub.test_targets is split.test_targets
  assert sub.evaluate(RecordingScorer(), "test")["num_users"] == 40
  # The original split is unchanged.
  assert np.sum(split.val_targets >= 0) == 40


def test_loo_subset_is_deterministic_in_the_seed():
  split = _loo_split()
  kept = lambda seed: np.flatnonzero(split.with_validation_users(7, seed).val_targets >= 0)
  np.testing.assert_array_equal(kept(3), kept(3))
  assert any(not np.array_equal(kept(3), kept(s)) for s in range(4, 9))


def test_zero_or_too_many_users_keep_all():
  split = _loo_split()
  assert split.with_validation_users(0, seed=0) is split
  assert split.with_validation_users(40, seed=0) is split
  assert split.with_validation_users(1000, seed=0) is split


def _strong_split():
  cfg = ProtocolConfig(name="strong_generalization", ks=(5, 10), selection_metric="ndcg@10",
                       n_heldout_users=15, seed=4)
  return protocols.make_split(_interactions(60, 8, 25), cfg)


def _targets_by_user(inputs, targets):
  out = {}
  for u, i in zip(targets.users.tolist(), targets.items.tolist()):
    out.setdefault(inputs.user_ids[u], set()).add(int(i))
  return out


def test_strong_keeps_exactly_n_validation_users():
  split = _strong_split()
  full = _targets_by_user(split.val_inputs, split.val_targets)
  assert len(full) == 15
  sub = split.with_validation_users(4, seed=0)
  got = _targets_by_user(sub.val_inputs, sub.val_targets)
  assert len(got) == 4
  assert sub.val_inputs.num_users == sub.val_targets.num_users == 4
  for user_id, items in got.items():
    assert items == full[user_id]
  # Each kept user keeps all of its fold-in rows.
  for u in range(4):
    uid = sub.val_inputs.user_ids[u]
    orig = int(np.flatnonzero(split.val_inputs.user_ids == uid)[0])
    assert (sorted(sub.val_inputs.items[sub.val_inputs.users == u].tolist())
            == sorted(split.val_inputs.items[split.val_inputs.users == orig].tolist()))
  scorer = RecordingScorer()
  assert sub.evaluate(scorer, "val")["num_users"] == 4
  assert sorted(scorer.user_ids) == sorted(got)
  assert sub.test_inputs is split.test_inputs and sub.test_targets is split.test_targets


def test_strong_subset_is_deterministic_in_the_seed():
  split = _strong_split()
  kept = lambda seed: sorted(split.with_validation_users(4, seed).val_inputs.user_ids.tolist())
  assert kept(1) == kept(1)
  assert any(kept(1) != kept(s) for s in range(2, 7))


# ----------------------------------------------------------------------------------------
# make_split


def test_leave_one_out_without_long_users_is_refused():
  x = _interactions(10, 2, 20)
  with pytest.raises(ValueError) as e:
    protocols.make_split(x, ProtocolConfig())
  assert "test-data" in str(e.value) and ">= 3 interactions" in str(e.value)


def test_make_split_matches_splits_module():
  x = _interactions(30, 6, 20)
  split = protocols.make_split(x, ProtocolConfig(ks=(5,), selection_metric="hr@5",
                                                 batch_size=7))
  ref = splits.leave_one_out_split(x)
  np.testing.assert_array_equal(split.val_targets, ref.val_targets)
  np.testing.assert_array_equal(split.test_targets, ref.test_targets)
  assert len(split.train) == len(ref.train) == 30 * 4
  assert split.ks == (5,) and split.batch_size == 7
  assert protocols.metric_keys(split) == ["hr@5", "ndcg@5", "mrr"]
