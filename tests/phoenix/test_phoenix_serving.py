"""Tests of phoenix.serving: the prefix-cached scorer equals the full-sequence model."""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import grok
from phoenix import recsys_model as rm
from phoenix import serving

B, S, C, D, A = 2, 6, 10, 16, 5


@functools.lru_cache(maxsize=None)
def _setup():
  """Config with both improvements on, params, and the full model's logits on padded data."""
  cfg = rm.PhoenixModelConfig(
      model=grok.TransformerConfig(emb_size=D, key_size=8, num_q_heads=4, num_kv_heads=2,
                                   num_layers=2, widening_factor=2.0,
                                   learnable_temperature=True),
      emb_size=D, num_actions=A, fprop_dtype=jnp.float32)
  batch, emb = rm.create_example_batch(B, D, S, C, A, seed=4)
  batch.history_post_hashes[0, -2:] = 0   # padded history
  batch.candidate_post_hashes[1, 3] = 0   # a padded candidate
  f = hk.without_apply_rng(hk.transform(lambda b, e: cfg.make()(b, e).logits))
  params = jax.jit(f.init, compiler_options={"xla_backend_optimization_level": 0})(
      jax.random.PRNGKey(0), batch, emb)
  # Non-trivial temperatures, so the cached path must read the same parameters.
  params = jax.tree_util.tree_map_with_path(
      lambda p, x: x + 0.7 if "temperature" in jax.tree_util.keystr(p) else x, params)
  return cfg, params, batch, emb, np.asarray(jax.jit(f.apply)(params, batch, emb))


@pytest.mark.parametrize("block_size", [3, 16])  # 3 does not divide C=10; 16 > C (5 below)
def test_cached_scorer_equals_full_model(block_size):
  cfg, params, batch, emb, full = _setup()
  out = serving.CachedScorer(cfg, block_size=block_size).score(params, batch, emb)
  assert out.logits.shape == (B, C, A)
  np.testing.assert_allclose(out.logits, full, atol=1e-5, rtol=1e-5)


def test_prefix_cache_is_reusable_for_other_candidates():
  cfg, params, batch, emb, full = _setup()
  scorer = serving.CachedScorer(cfg, block_size=5)
  cache = scorer.encode_prefix(params, batch, emb)
  assert len(cache) == 2 and cache[0].keys.shape == (B, 1 + S, 2, 8)
  np.testing.assert_array_equal(cache[0].mask[0], [True] * (S - 1) + [False] * 2)
  # A subset of the candidates, in another order: the same rows of the full logits.
  idx = np.array([7, 2, 9, 0, 4])
  sub_batch = batch._replace(**{f: getattr(batch, f)[:, idx]
                                for f in serving._CANDIDATE_BATCH_FIELDS})
  sub_emb = rm.RecsysEmbeddings(emb.user_embeddings, emb.history_post_embeddings,
                                emb.candidate_post_embeddings[:, idx],
                                emb.history_author_embeddings,
                                emb.candidate_author_embeddings[:, idx])
  out = scorer.score_with_prefix(params, cache, sub_batch, sub_emb)
  np.testing.assert_allclose(out.logits, full[:, idx], atol=1e-5, rtol=1e-5)


def test_block_size_must_be_positive():
  with pytest.raises(ValueError):
    serving.CachedScorer(_setup()[0], block_size=0)
