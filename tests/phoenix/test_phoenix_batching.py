"""Batching rules: truncation, padding, actions, authors, prefix targets, ranking lists."""
import numpy as np
import pytest

from phoenix import batching
from recsys_core.data.sequences import SequenceData


def _data(seqs, ratings=None):
  return SequenceData([np.asarray(s, np.int32) for s in seqs],
                      None if ratings is None else [np.asarray(r, np.float32) for r in ratings],
                      np.arange(1, len(seqs) + 1), num_items=20)


def test_actions_match_runners_order():
  runners = pytest.importorskip("phoenix.runners")
  assert tuple(runners.ACTIONS) == batching.ACTIONS


def test_truncation_keeps_most_recent_and_pads_with_zeros():
  cfg = batching.BatchingConfig(history_len=3)
  data = _data([[1, 2, 3, 4, 5], [7]])
  ids = batching.history_batch(data, np.array([0, 1]), cfg)
  np.testing.assert_array_equal(ids.history_items, [[3, 4, 5], [7, -1, -1]])
  np.testing.assert_array_equal(ids.history_surface, [[1, 1, 1], [1, 0, 0]])
  assert ids.history_actions[1, 1:].sum() == 0
  left = batching.history_batch(data, np.array([0, 1]),
                                batching.BatchingConfig(history_len=3, pad_side="left"))
  np.testing.assert_array_equal(left.history_items, [[3, 4, 5], [-1, -1, 7]])
  np.testing.assert_array_equal(left.history_surface, [[1, 1, 1], [0, 0, 1]])
  # Post ids: item + 1, padding 0.
  feat = batching.Featurizer(None, lambda ids, n: np.repeat(ids[..., None], n, -1))
  np.testing.assert_array_equal(feat.post_ids(ids.history_items), [[4, 5, 6], [8, 0, 0]])


def test_action_rules_on_a_hand_example():
  rules = batching.ActionRules(high_threshold=4.0, low_threshold=2.0)
  bits = batching.action_bits(np.array([5.0, 4.0, 3.0, 2.0, 1.0, np.nan]), 6, rules)
  fav, click, ni = batching.FAVORITE, batching.CLICK, batching.NOT_INTERESTED
  np.testing.assert_array_equal(bits[:, click], 1)
  np.testing.assert_array_equal(bits[:, fav], [1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(bits[:, ni], [0, 0, 0, 1, 1, 0])
  others = np.delete(bits, [fav, click, ni], axis=1)
  assert others.sum() == 0
  # Pure sequences: click only.
  seq_bits = batching.action_bits(None, 3, rules)
  np.testing.assert_array_equal(seq_bits.sum(1), 1)
  np.testing.assert_array_equal(seq_bits[:, click], 1)
  # The history block uses the rule with ratings aligned to the kept items.
  cfg = batching.BatchingConfig(history_len=2, rules=rules)
  data = _data([[1, 2, 3]], [[5.0, 1.0, 4.5]])
  ids = batching.history_batch(data, np.array([0]), cfg)
  np.testing.assert_array_equal(ids.history_actions[0, :, fav], [0, 1])
  np.testing.assert_array_equal(ids.history_actions[0, :, ni], [1, 0])


def test_label_masks_unknown_ratings():
  rules = batching.ActionRules()
  m = batching.label_masks(np.array([np.nan, 5.0, 0.0]), 3, rules, np.array([1, 1, 0], bool))
  fav, click, ni = batching.FAVORITE, batching.CLICK, batching.NOT_INTERESTED
  np.testing.assert_array_equal(m[:, click], 1)
  np.testing.assert_array_equal(m[:, fav], [0, 1, 1])
  np.testing.assert_array_equal(m[:, ni], [0, 1, 1])
  assert m.sum() == 3 + 2 + 2
  m2 = batching.label_masks(None, 2, rules, np.array([1, 0], bool))
  assert m2.sum() == 2 and m2[:, click].sum() == 2


def test_author_mapping():
  authors = np.array([0, 3, 3, 1])  # item 0 has an unknown attribute
  feat = batching.Featurizer(authors, lambda ids, n: np.repeat(ids[..., None], n, -1))
  items = np.array([[0, 1, 2, 3, -1]])
  np.testing.assert_array_equal(feat.author_ids(items)[..., 0], [[1, 4, 4, 2, 0]])
  shared = batching.Featurizer(None, lambda ids, n: np.repeat(ids[..., None], n, -1))
  np.testing.assert_array_equal(shared.author_ids(items)[..., 0], [[1, 1, 1, 1, 0]])


def test_author_fields_split_the_hash_slots():
  # Two attribute fields (e.g. brand, category) with 4 author hash slots: slots 0-1 hash
  # the first field's id, slots 2-3 the second's (offset by FIELD_ID_STRIDE).
  authors = np.array([[0, 2], [5, 2], [5, 0]])
  hash_fn = lambda ids, n: np.stack([np.where(ids > 0, ids * 10 + k, 0) for k in range(n)], -1)
  feat = batching.Featurizer(authors, hash_fn, num_author_hashes=4)
  items = np.array([[2, 0, -1]])
  stride = batching.FIELD_ID_STRIDE
  np.testing.assert_array_equal(feat.author_ids(items),
                                [[[6, 1 + stride], [1, 3 + stride], [0, 0]]])
  got = feat.author_hashes(items)                                            # [1, 3, 4]
  np.testing.assert_array_equal(got[0, 0], [60, 61, (1 + stride) * 10, (1 + stride) * 10 + 1])
  np.testing.assert_array_equal(got[0, 2], 0)                               # padding
  # Equal values in different fields are different ids, so they never share hashes.
  same = batching.Featurizer(np.array([[4, 4]]), hash_fn, num_author_hashes=2)
  ids = same.author_ids(np.array([0]))[0]
  assert ids[0] != ids[1]
  assert same.author_hashes(np.array([0]))[0].tolist() == [50, (5 + stride) * 10]
  with pytest.raises(ValueError, match="multiple of the number of author fields"):
    batching.Featurizer(np.zeros((3, 3), np.int64), hash_fn, num_author_hashes=4)
  with pytest.raises(ValueError, match="int array"):
    batching.Featurizer(np.zeros((3,), np.float32), hash_fn)


def test_retrieval_windows_and_prefix_targets():
  cfg = batching.BatchingConfig(history_len=3)
  data = _data([[1, 2, 3, 4, 5, 6], [7, 8]])
  ex = batching.retrieval_training_batch(data, np.array([0, 1]), cfg,
                                         np.random.default_rng(0))
  np.testing.assert_array_equal(ex.ids.history_items, [[3, 4, 5], [7, -1, -1]])
  np.testing.assert_array_equal(ex.targets, [[4, 5, 6], [8, -1, -1]])
  # `ends` cuts the training sequence (validation / test targets are never targets).
  ex = batching.retrieval_training_batch(data, np.array([0]), cfg, np.random.default_rng(0),
                                         ends=np.array([4]))
  np.testing.assert_array_equal(ex.ids.history_items, [[1, 2, 3]])
  np.testing.assert_array_equal(ex.targets, [[2, 3, 4]])
  # Random windows stay consistent: target t = history t+1.
  rng = np.random.default_rng(1)
  for _ in range(10):
    ex = batching.retrieval_training_batch(data, np.array([0]), cfg, rng, window="random")
    h, t = ex.ids.history_items[0], ex.targets[0]
    np.testing.assert_array_equal(h[1:], t[:-1])
    np.testing.assert_array_equal(t, h + 1)


def test_ranking_lists():
  rules = batching.ActionRules()
  cfg = batching.BatchingConfig(history_len=4, rules=rules, pad_side="left")
  data = _data([[1, 2, 3, 4, 5, 6]], [[5, 5, 5, 5, 1.0, np.nan]])
  ex = batching.ranking_batch(data, np.array([0]), np.array([4]), cfg, num_positives=3,
                              num_negatives=4, rng=np.random.default_rng(0))
  cand = ex.ids.candidate_items[0]
  assert (cand == -1).sum() == 1  # only 2 next engagements: one padded slot
  pos = {5: (1.0, 0.0), 6: (None, None)}
  negs = [c for c in cand if c >= 0 and c not in pos]
  assert len(negs) == 4 and not set(negs) & {1, 2, 3, 4, 5, 6}
  fav, click, ni = batching.FAVORITE, batching.CLICK, batching.NOT_INTERESTED
  for j, c in enumerate(cand):
    if c == 5:
      assert ex.labels[0, j, click] == 1 and ex.labels[0, j, ni] == 1
      assert ex.labels[0, j, fav] == 0 and ex.mask[0, j, fav] == 1
    elif c == 6:  # unrated: favorite / not_interested unknown
      assert ex.labels[0, j, click] == 1 and ex.mask[0, j, fav] == 0
    elif c == -1:
      assert ex.mask[0, j].sum() == 0
    else:
      assert ex.labels[0, j].sum() == 0 and ex.mask[0, j, click] == 1
  np.testing.assert_array_equal(ex.ids.history_items, [[1, 2, 3, 4]])
