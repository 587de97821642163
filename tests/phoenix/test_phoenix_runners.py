"""Tests of phoenix.runners: jitted ranking/retrieval runners, weights, checkpoints."""
import functools

import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import grok
from phoenix import runners
from phoenix.recsys_model import PhoenixModelConfig
from phoenix.recsys_retrieval_model import PhoenixRetrievalModelConfig
from recsys_core.train import CheckpointMismatchError, save_params

D, S, C, A = 16, 4, 5, len(runners.ACTIONS)


def _transformer(num_layers=1):
  return grok.TransformerConfig(emb_size=D, key_size=8, num_q_heads=2, num_kv_heads=1,
                                num_layers=num_layers, widening_factor=2.0)


def _ranking_config(num_layers=1):
  return PhoenixModelConfig(model=_transformer(num_layers), emb_size=D, num_actions=A,
                            history_seq_len=S, candidate_seq_len=C, fprop_dtype=jnp.float32)


@functools.lru_cache(maxsize=None)
def _ranker():
  return runners.RecsysInferenceRunner(runners.ModelRunner(_ranking_config(), 1.0),
                                       "test").initialize()


def test_actions_in_release_order():
  assert runners.ACTIONS[:3] == ["favorite", "reply", "repost"]
  assert runners.ACTIONS[-5:] == ["not_interested", "block_author", "mute_author", "report",
                                  "dwell_time"]
  assert len(runners.ACTIONS) == 19
  for a in ("not_interested", "block_author", "mute_author", "report"):
    assert runners.DEFAULT_ACTION_WEIGHTS[a] < 0
  fields = runners.RankingOutput._fields
  assert fields[:2] == ("scores", "ranked_indices")
  assert [f"p_{a}" for a in runners.ACTIONS] == list(fields[2:2 + A])


def test_example_batch_shapes():
  batch, emb = runners.create_example_batch(2, D, S, C, A, num_item_hashes=3)
  assert batch.candidate_post_hashes.shape == (2, C, 3) and batch.history_actions.shape == (
      2, S, A)
  assert np.all(batch.history_post_hashes > 0) and np.all(batch.history_actions.sum(-1) >= 1)
  assert emb.history_post_embeddings.shape == (2, S, 3, D)
  assert batch.candidate_product_surface.max() < 16


def test_rank_orders_by_the_weighted_sum():
  ranker = _ranker()
  batch, emb = runners.create_example_batch(3, D, S, C, A, seed=1)
  batch.candidate_post_hashes[1, 2] = 0  # a padded candidate
  out = ranker.rank(batch, emb)
  probs = np.asarray(out.scores)
  assert probs.shape == (3, C, A) and np.all((probs > 0) & (probs < 1))
  for i, a in enumerate(runners.ACTIONS):
    np.testing.assert_array_equal(getattr(out, f"p_{a}"), probs[..., i])
  by_hand = sum(runners.DEFAULT_ACTION_WEIGHTS[a] * probs[..., i]
                for i, a in enumerate(runners.ACTIONS))
  np.testing.assert_allclose(out.weighted_scores, by_hand, rtol=1e-5, atol=1e-6)
  by_hand[1, 2] = -np.inf
  np.testing.assert_array_equal(out.ranked_indices, np.argsort(-by_hand, axis=1, kind="stable"))
  assert int(out.ranked_indices[1, -1]) == 2  # padding ranks last
  # Other weights, same parameters and compiled function: ordered by -P(report) alone.
  ranker.set_action_weights({"report": -1.0})
  try:
    out2 = ranker.rank(batch, emb)
  finally:
    ranker.set_action_weights(None)
  expected = -probs[..., runners.ACTIONS.index("report")]
  expected[1, 2] = -np.inf
  np.testing.assert_array_equal(out2.ranked_indices,
                                np.argsort(-expected, axis=1, kind="stable"))
  with pytest.raises(ValueError, match="unknown actions"):
    runners.action_weight_vector({"like": 1.0})


def test_checkpoint_round_trip_and_mismatch(tmp_path):
  ranker = _ranker()
  path = save_params(str(tmp_path / "params.npz"), ranker.params, {"model": "phoenix"})
  loaded = runners.RecsysInferenceRunner(
      runners.ModelRunner(_ranking_config(), 1.0, rng_seed=7, checkpoint_path=path),
      "loaded").initialize()
  assert loaded.metadata == {"model": "phoenix"}
  batch, emb = runners.create_example_batch(2, D, S, C, A, seed=3)
  a, b = ranker.rank(batch, emb), loaded.rank(batch, emb)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  other = runners.ModelRunner(_ranking_config(num_layers=2), checkpoint_path=path)
  with pytest.raises(CheckpointMismatchError, match="decoder_layer_1"):
    other.load_or_init()


def test_runner_requires_all_actions():
  cfg = _ranking_config()
  cfg.num_actions = 3
  with pytest.raises(ValueError, match="actions"):
    runners.RecsysInferenceRunner(runners.ModelRunner(cfg), "x").initialize()


def test_retrieval_runner_encode_set_corpus_retrieve():
  cfg = PhoenixRetrievalModelConfig(model=_transformer(), emb_size=D, history_seq_len=S,
                                    candidate_seq_len=C, fprop_dtype=jnp.float32)
  runner = runners.RecsysRetrievalInferenceRunner(
      runners.RetrievalModelRunner(cfg, 1.0, 42), "retrieval").initialize()
  batch, emb = runners.create_example_batch(2, D, S, C, A, seed=2)
  user = runner.encode_user(batch, emb)
  np.testing.assert_allclose(np.linalg.norm(user, axis=-1), 1.0, rtol=1e-5)
  cand, mask = runner.encode_candidates(batch, emb)
  assert cand.shape == (2, C, D) and bool(mask.all())
  with pytest.raises(ValueError, match="no corpus"):
    runner.retrieve(batch, emb, top_k=3)
  corpus = np.asarray(cand).reshape(2 * C, D)
  ids = np.arange(100, 100 + 2 * C)
  keep = np.ones(2 * C, bool)
  keep[[0, 5]] = False
  runner.set_corpus(corpus, ids, keep)
  out = runner.retrieve(batch, emb, top_k=4)
  idx = np.asarray(out.top_k_indices)
  assert idx.shape == (2, 4) and np.all((idx >= 0) & (idx < 2 * C)) and np.all(keep[idx])
  assert np.all(np.diff(np.asarray(out.top_k_scores), axis=1) <= 0)
  np.testing.assert_allclose(out.top_k_scores, np.take_along_axis(
      np.asarray(user) @ corpus.T, idx, 1), rtol=1e-5)
  np.testing.assert_array_equal(runner.post_ids(idx), ids[idx])
  example, _ = runners.create_example_corpus(2 * C, D)  # same shapes: no recompilation
  out2 = runner.retrieve(batch, emb, top_k=4, corpus_embeddings=example)
  np.testing.assert_array_equal(out2.top_k_indices, np.argsort(
      -(np.asarray(user) @ example.T), axis=1)[:, :4])
