"""Phoenix request inference: the defined behaviour for over-long histories, unknown ids,
empty histories and duplicate candidates (phoenix/inference.py)."""
import warnings

import jax
import numpy as np
import pytest

from phoenix import batching
from phoenix import inference
from phoenix import training

HISTORY_LEN = 5
NUM_ITEMS = 30
ITEM_IDS = np.arange(NUM_ITEMS) * 10 + 1000        # original ids 1000, 1010, ...


def _emb():
  return training.EmbeddingConfig(emb_size=16, user_table_size=64, item_table_size=128,
                                  author_table_size=16)


def _data():
  x = training.synthetic_sequences(6, NUM_ITEMS, 4, 9, seed=3)
  return batching.SequenceData.from_interactions(x)


@pytest.fixture(scope="module")
def retriever():
  cfg = training.RetrievalConfig(emb=_emb(), num_layers=1, num_q_heads=2, num_kv_heads=1,
                                 key_size=8, history_len=HISTORY_LEN, pooling="last")
  data = _data()
  task = training.RetrievalTask(cfg, data, data.lengths(), None, batch_size=2)
  params = task.fns.init(jax.random.PRNGKey(0), task.example_batch()["batch"])
  return inference.PhoenixRetriever(task, params, inference.ItemVocabulary(ITEM_IDS))


@pytest.fixture(scope="module")
def ranker():
  cfg = training.RankingConfig(emb=_emb(), num_layers=1, num_q_heads=2, num_kv_heads=1,
                               key_size=8, history_len=HISTORY_LEN, num_positives=2,
                               num_negatives=3)
  task = training.RankingTask(cfg, _data(), None, batch_size=2)
  params = task.init(jax.random.PRNGKey(1))
  return inference.PhoenixRanker(task, params, inference.ItemVocabulary(ITEM_IDS))


def _no_warnings(fn, *args, **kw):
  with warnings.catch_warnings():
    warnings.simplefilter("error", inference.PhoenixInputWarning)
    return fn(*args, **kw)


def test_long_history_is_truncated_to_the_most_recent_items_with_a_warning(retriever):
  history = ITEM_IDS[[3, 1, 4, 15, 9, 2, 6, 5]]                 # 8 > HISTORY_LEN
  with pytest.warns(inference.PhoenixInputWarning, match="oldest 3 were dropped"):
    long_ids, long_scores = retriever.recommend(history, k=5, exclude_seen=False)
  recent_ids, recent_scores = _no_warnings(retriever.recommend, history[-HISTORY_LEN:], k=5,
                                           exclude_seen=False)
  np.testing.assert_array_equal(long_ids, recent_ids)
  np.testing.assert_allclose(long_scores, recent_scores, rtol=1e-6)


def test_seen_items_are_excluded_including_the_truncated_part(retriever):
  history = ITEM_IDS[:12]
  with pytest.warns(inference.PhoenixInputWarning):
    ids, scores = retriever.recommend(history, k=NUM_ITEMS)
  assert len(ids) == NUM_ITEMS - 12
  assert not set(ids.tolist()) & set(history.tolist())
  assert np.all(np.diff(scores) <= 0)


def test_unknown_ids_drop_with_warning_or_raise(retriever):
  history = [ITEM_IDS[2], 7, ITEM_IDS[4]]
  with pytest.warns(inference.PhoenixInputWarning, match=r"history: 1 of 3 .*\[7\]"):
    got = retriever.recommend(history, k=4)
  want = _no_warnings(retriever.recommend, [ITEM_IDS[2], ITEM_IDS[4]], k=4)
  np.testing.assert_array_equal(got[0], want[0])
  with pytest.raises(inference.UnknownItemError, match=r"history: 1 of 3 item ids .*\[7\]"):
    retriever.recommend(history, on_unknown="raise")


def test_empty_and_all_unknown_histories_give_the_cold_start_ranking(retriever):
  with pytest.warns(inference.PhoenixInputWarning, match="empty"):
    empty_ids, empty_scores = retriever.recommend([], k=NUM_ITEMS)
  assert len(empty_ids) == NUM_ITEMS and np.all(np.isfinite(empty_scores))
  # Two warnings: the unknown ids are dropped (named), then the history is empty.
  with pytest.warns(inference.PhoenixInputWarning) as caught:
    unknown_ids, unknown_scores = retriever.recommend([1, 2, 3], k=NUM_ITEMS)
  messages = [str(w.message) for w in caught]
  assert len(messages) == 2, messages
  assert "3 of 3 item ids are not in the model's vocabulary" in messages[0]
  assert "[1, 2, 3] (dropped)" in messages[0] and "empty" in messages[1]
  np.testing.assert_array_equal(empty_ids, unknown_ids)
  np.testing.assert_allclose(empty_scores, unknown_scores, rtol=1e-6)
  # ... and it differs from a real history's ranking (the user tower does see the history).
  other, _ = _no_warnings(retriever.recommend, ITEM_IDS[[1, 2]], k=NUM_ITEMS,
                          exclude_seen=False)
  assert not np.array_equal(other, empty_ids)


def test_duplicate_candidates_score_equally_and_rank_once(ranker):
  history = ITEM_IDS[[1, 2, 3]]
  cands = ITEM_IDS[[7, 8, 7, 9, 8]]
  ids, probs = _no_warnings(ranker.score, history, cands)
  np.testing.assert_array_equal(ids, cands)
  assert probs.shape == (5, batching.NUM_ACTIONS)
  np.testing.assert_array_equal(probs[0], probs[2])
  np.testing.assert_array_equal(probs[1], probs[4])
  # Same scores as the de-duplicated request (candidate isolation).
  _, unique_probs = _no_warnings(ranker.score, history, ITEM_IDS[[7, 8, 9]])
  np.testing.assert_allclose(probs[[0, 1, 3]], unique_probs, rtol=1e-5, atol=1e-6)
  with pytest.warns(inference.PhoenixInputWarning, match="2 duplicates"):
    ranked, scores = ranker.rank(history, cands)
  assert sorted(ranked.tolist()) == sorted(ITEM_IDS[[7, 8, 9]].tolist())
  assert np.all(np.diff(scores) <= 0)


def test_ranking_truncates_long_history_and_rejects_bad_candidates(ranker):
  history = ITEM_IDS[:9]
  with pytest.warns(inference.PhoenixInputWarning, match="oldest 4"):
    _, long_probs = ranker.score(history, ITEM_IDS[[20, 21]])
  _, recent_probs = _no_warnings(ranker.score, history[-HISTORY_LEN:], ITEM_IDS[[20, 21]])
  np.testing.assert_allclose(long_probs, recent_probs, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="candidates: empty"):
    ranker.score(history[:2], [])
  with pytest.raises(ValueError, match="none of the ids"), \
      pytest.warns(inference.PhoenixInputWarning):
    ranker.score(history[:2], [5, 6])
  with pytest.raises(inference.UnknownItemError, match="candidates: 1 of 2"):
    ranker.score(history[:2], [ITEM_IDS[0], 6], on_unknown="raise")


def test_vocabulary_rejects_duplicate_ids_and_mismatched_models(retriever):
  with pytest.raises(ValueError, match="duplicates"):
    inference.ItemVocabulary(np.array([1, 2, 2]))
  with pytest.raises(ValueError, match="vocabulary has 3 items"):
    inference.PhoenixRetriever(retriever.task, retriever.scorer.params,
                               inference.ItemVocabulary(np.array([1, 2, 3])))
