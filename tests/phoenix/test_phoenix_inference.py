"""Phoenix request inference: the defined behaviour for over-long histories, unknown ids,
empty histories and duplicate candidates (phoenix/inference.py)."""
import pathlib
import subprocess
import sys
import warnings

import jax
import numpy as np
import pytest

from phoenix import batching
from phoenix import inference
from phoenix.embeddings import EmbeddingConfig
from phoenix.ranking.config import RankingConfig
from phoenix.ranking.task import RankingTask
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.task import RetrievalTask
from recsys_core.data.sequences import SequenceData
from recsys_core.data.synthetic import synthetic_sequences

HISTORY_LEN = 5
NUM_ITEMS = 30
ITEM_IDS = np.arange(NUM_ITEMS) * 10 + 1000        # original ids 1000, 1010, ...


def _emb():
  return EmbeddingConfig(emb_size=16, user_table_size=64, item_table_size=128,
                         author_table_size=16)


def _data():
  x = synthetic_sequences(6, NUM_ITEMS, 4, 9, seed=3)
  return SequenceData.from_interactions(x)


@pytest.fixture(scope="module")
def retriever():
  cfg = RetrievalConfig(emb=_emb(), num_layers=1, num_q_heads=2, num_kv_heads=1,
                        key_size=8, history_len=HISTORY_LEN, pooling="last")
  data = _data()
  # Training code makes the params; serving needs only the config, params and vocabulary.
  task = RetrievalTask(cfg, data, data.lengths(), None, batch_size=2)
  params = task.fns.init(jax.random.PRNGKey(0), task.example_batch()["batch"])
  return inference.PhoenixRetriever(cfg, params, inference.ItemVocabulary(ITEM_IDS))


@pytest.fixture(scope="module")
def ranker():
  cfg = RankingConfig(emb=_emb(), num_layers=1, num_q_heads=2, num_kv_heads=1,
                      key_size=8, history_len=HISTORY_LEN, num_positives=2,
                      num_negatives=3)
  task = RankingTask(cfg, _data(), None, batch_size=2)
  params = task.init(jax.random.PRNGKey(1))
  return inference.PhoenixRanker(cfg, params, inference.ItemVocabulary(ITEM_IDS))


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


def test_vocabulary_rejects_duplicate_ids_and_mismatched_authors(retriever, ranker):
  with pytest.raises(ValueError, match="duplicates"):
    inference.ItemVocabulary(np.array([1, 2, 2]))
  authors = np.arange(NUM_ITEMS) % 4
  with pytest.raises(ValueError, match=f"vocabulary has 3 items, item_authors {NUM_ITEMS}"):
    inference.PhoenixRetriever(retriever.cfg, retriever.scorer.params,
                               inference.ItemVocabulary(np.array([1, 2, 3])), authors)
  with pytest.raises(ValueError, match=f"vocabulary has 3 items, item_authors {NUM_ITEMS}"):
    inference.PhoenixRanker(ranker.cfg, ranker.params,
                            inference.ItemVocabulary(np.array([1, 2, 3])), item_authors=authors)


def test_serving_matches_the_training_scorer_with_authors():
  """The retriever built from config + params scores as the task's evaluation scorer."""
  cfg = RetrievalConfig(emb=_emb(), num_layers=1, num_q_heads=2, num_kv_heads=1, key_size=8,
                        history_len=HISTORY_LEN)
  data = _data()
  authors = np.arange(NUM_ITEMS) % 4
  task = RetrievalTask(cfg, data, data.lengths(), authors, batch_size=2)
  params = task.fns.init(jax.random.PRNGKey(2), task.example_batch()["batch"])
  retriever = inference.PhoenixRetriever(cfg, params, inference.ItemVocabulary(ITEM_IDS),
                                         item_authors=authors)
  np.testing.assert_array_equal(retriever.scorer.corpus, task.scorer(params).corpus)
  history = ITEM_IDS[data.sequences[0][-HISTORY_LEN:]]
  ids, scores = _no_warnings(retriever.recommend, history, k=NUM_ITEMS, exclude_seen=False)
  scorer = task.scorer(params)
  want = scorer.user_representations(data)[0] @ scorer.corpus.T                  # [I]
  np.testing.assert_allclose(scores, want[np.searchsorted(ITEM_IDS, ids)], rtol=1e-5,
                             atol=1e-6)


def test_inference_imports_no_training_code():
  code = ("import sys, phoenix.inference; "
          "print(sorted(m for m in sys.modules if m.startswith('phoenix.') and "
          "m.endswith('.task')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True, cwd=pathlib.Path(__file__).resolve().parents[2]).stdout
  assert out.strip() == "[]", out
