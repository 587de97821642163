"""The public release's example end to end (shared/docs/phoenix.md §1).

Builds what the release's run_ranker.py / run_retrieval.py build (their model sizes and the
release's default bfloat16 fprop): create_example_batch -> PhoenixModelConfig(...).make() /
PhoenixRetrievalModelConfig(...).make() -> forward, and checks the release's documented output
shapes and dtypes. Retrieval: the user and candidate representations are float32 with unit L2
norm whatever the fprop dtype (the release normalises both in float32). Also a direct port of
the release's test_recsys_retrieval_model.py::test_candidate_representation_normalized.
The tiny-model tests (tests/phoenix/test_phoenix_*.py) run in float32; these cover the
bfloat16 default.
"""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix import grok
from phoenix import runners
from phoenix.recsys_model import HashConfig, PhoenixModelConfig, RecsysModelOutput
from phoenix.recsys_retrieval_model import PhoenixRetrievalModelConfig, RetrievalOutput

# run_ranker.py / run_retrieval.py: emb 128, history 32, 8 candidates, all 19 actions.
D, S, C, A = 128, 32, 8, len(runners.ACTIONS)
B = 2  # run_retrieval.py's batch (two users)
N, K = 1000, 10  # run_retrieval.py's corpus size and top_k
NORM_TOL = 1e-5
# Compile without LLVM optimisation (compilation, not running, dominates here).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _transformer(emb_size=D, key_size=64, num_layers=2):
  return grok.TransformerConfig(emb_size=emb_size, widening_factor=2, key_size=key_size,
                                num_q_heads=2, num_kv_heads=2, num_layers=num_layers,
                                attn_output_multiplier=0.125)


def _hash_config():
  return HashConfig(num_user_hashes=2, num_item_hashes=2, num_author_hashes=2)


def _example(batch_size=B, emb_size=D, history_len=S, num_candidates=C):
  hc = _hash_config()
  return runners.create_example_batch(
      batch_size=batch_size, emb_size=emb_size, history_len=history_len,
      num_candidates=num_candidates, num_actions=A, num_user_hashes=hc.num_user_hashes,
      num_item_hashes=hc.num_item_hashes, num_author_hashes=hc.num_author_hashes,
      product_surface_vocab_size=16)


def _assert_unit_float32(x, shape):
  assert x.shape == shape and x.dtype == jnp.float32, (x.shape, x.dtype)
  norms = np.linalg.norm(np.asarray(x, np.float64), axis=-1)
  np.testing.assert_allclose(norms, 1.0, rtol=0, atol=NORM_TOL)


def test_release_ranking_example_forward_bfloat16():
  cfg = PhoenixModelConfig(emb_size=D, num_actions=A, history_seq_len=S, candidate_seq_len=C,
                           hash_config=_hash_config(), product_surface_vocab_size=16,
                           model=_transformer())
  assert cfg.fprop_dtype == jnp.bfloat16  # the release's default, left as is
  f = hk.without_apply_rng(hk.transform(lambda b, e: cfg.make()(b, e)))
  batch, emb = _example()
  params = _jit(f.init)(jax.random.PRNGKey(0), batch, emb)
  out = _jit(f.apply)(params, batch, emb)
  assert isinstance(out, RecsysModelOutput)
  assert out.logits.shape == (B, C, A) and out.logits.dtype == jnp.bfloat16
  logits = np.asarray(out.logits, np.float32)
  assert np.all(np.isfinite(logits))
  assert np.std(logits) > 0  # trainable init (phoenix.md §2.1): not the release's all-zero


def _retrieval_config(**kwargs):
  return PhoenixRetrievalModelConfig(
      emb_size=D, history_seq_len=S, candidate_seq_len=C, hash_config=_hash_config(),
      product_surface_vocab_size=16, model=_transformer(), **kwargs)


def test_release_retrieval_example_forward_bfloat16():
  cfg = _retrieval_config()
  assert cfg.fprop_dtype == jnp.bfloat16

  def forward(batch, emb, corpus):
    model = cfg.make()
    out = model(batch, emb, corpus, K)
    return (out, model.build_user_representation(batch, emb),
            model.build_candidate_representation(batch, emb))

  f = hk.without_apply_rng(hk.transform(forward))
  batch, emb = _example()
  corpus, _ = runners.create_example_corpus(corpus_size=N, emb_size=D, seed=456)
  params = _jit(f.init)(jax.random.PRNGKey(0), batch, emb, corpus)
  out, (user, user_norm), (cand, cand_mask) = _jit(f.apply)(params, batch, emb, corpus)

  assert isinstance(out, RetrievalOutput)
  _assert_unit_float32(out.user_representation, (B, D))
  _assert_unit_float32(user, (B, D))
  np.testing.assert_array_equal(user, out.user_representation)
  assert user_norm.shape == (B, 1) and user_norm.dtype == jnp.float32
  assert np.all(np.asarray(user_norm) > 0)
  _assert_unit_float32(cand, (B, C, D))
  assert cand_mask.shape == (B, C) and cand_mask.dtype == jnp.bool_ and bool(cand_mask.all())

  idx, scores = np.asarray(out.top_k_indices), np.asarray(out.top_k_scores)
  assert idx.shape == (B, K) and np.issubdtype(idx.dtype, np.integer)
  assert np.all((idx >= 0) & (idx < N))
  assert all(len(set(row)) == K for row in idx.tolist())
  assert scores.shape == (B, K) and scores.dtype == np.float32
  assert np.all(np.diff(scores, axis=1) <= 0)
  all_scores = np.asarray(user, np.float64) @ corpus.T.astype(np.float64)
  np.testing.assert_allclose(scores, np.take_along_axis(all_scores, idx, 1), atol=1e-5)
  np.testing.assert_allclose(scores, -np.sort(-all_scores, axis=1)[:, :K], atol=1e-5)


def test_release_retrieval_runner_demo_bfloat16():
  """run_retrieval.py through the jitted runner; encode_* return what the model returns."""
  runner = runners.RecsysRetrievalInferenceRunner(
      runner=runners.RetrievalModelRunner(model=_retrieval_config(), bs_per_device=0.125,
                                          rng_seed=42),
      name="retrieval_local").initialize()
  batch, emb = _example()
  corpus, ids = runners.create_example_corpus(corpus_size=N, emb_size=D, seed=456)
  runner.set_corpus(corpus, ids)
  out = runner.retrieve(batch, emb, top_k=K)
  _assert_unit_float32(out.user_representation, (B, D))
  idx = np.asarray(out.top_k_indices)
  assert idx.shape == (B, K) and np.all((idx >= 0) & (idx < N))
  assert out.top_k_scores.shape == (B, K)
  _assert_unit_float32(runner.encode_user(batch, emb), (B, D))
  cand, mask = runner.encode_candidates(batch, emb)
  _assert_unit_float32(cand, (B, C, D))
  assert mask.shape == (B, C)


def test_candidate_representation_normalized():
  """Port of the release's TestPhoenixRetrievalModel.test_candidate_representation_normalized
  (its setUp config: no fprop_dtype given, so bfloat16)."""
  emb_size, history_seq_len, candidate_seq_len, batch_size = 64, 16, 8, 2
  config = PhoenixRetrievalModelConfig(
      emb_size=emb_size, history_seq_len=history_seq_len, candidate_seq_len=candidate_seq_len,
      hash_config=_hash_config(), product_surface_vocab_size=16,
      model=_transformer(emb_size=emb_size, key_size=32, num_layers=1))

  def forward(batch, embeddings):
    model = config.make()
    cand_rep, _ = model.build_candidate_representation(batch, embeddings)
    return cand_rep

  forward_fn = hk.without_apply_rng(hk.transform(forward))
  batch, embeddings = _example(batch_size, emb_size, history_seq_len, candidate_seq_len)
  rng = jax.random.PRNGKey(0)
  params = forward_fn.init(rng, batch, embeddings)
  cand_rep = forward_fn.apply(params, batch, embeddings)

  norms = jnp.sqrt(jnp.sum(cand_rep**2, axis=-1))
  np.testing.assert_array_almost_equal(
      norms, jnp.ones((batch_size, candidate_seq_len)), decimal=5)
