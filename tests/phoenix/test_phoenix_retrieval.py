"""Tests of the Phoenix retrieval model: normalised towers, exact top-k, corpus mask, gradients."""
import dataclasses
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import grok
from phoenix import recsys_model as rm
from phoenix import recsys_retrieval_model as rrm

B, S, C, D, A, N = 3, 5, 4, 16, 6, 50
# Tiny models: compile without LLVM optimisation (compilation, not running, dominates here).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _config():
  return rrm.PhoenixRetrievalModelConfig(
      model=grok.TransformerConfig(emb_size=D, key_size=8, num_q_heads=2, num_kv_heads=2,
                                   num_layers=2, widening_factor=2.0,
                                   learnable_temperature=True),
      emb_size=D, fprop_dtype=jnp.float32)


def _towers(batch, emb):
  model = _config().make()
  return model.build_user_representation(batch, emb), model.build_candidate_representation(
      batch, emb)


@functools.lru_cache(maxsize=None)
def _model():
  f = hk.without_apply_rng(hk.transform(_towers))
  batch, emb = rm.create_example_batch(B, D, S, C, A)
  return _jit(f.init)(jax.random.PRNGKey(0), batch, emb), _jit(f.apply), batch, emb


def test_parameter_names():
  params = _model()[0]
  names = {f"{k}/{n}" for k, d in params.items() for n in d if not k.startswith("transformer/")}
  assert names == {
      "phoenix_retrieval_model/proj_mat_1", "phoenix_retrieval_model/proj_mat_3",
      "phoenix_retrieval_model/action_projection",
      "phoenix_retrieval_model/product_surface_embedding_table",
      "phoenix_retrieval_model/history_layer_norm/scale",
      "phoenix_retrieval_model/history_layer_norm/offset",
      "phoenix_retrieval_model/candidate_tower/linear/w",
      "phoenix_retrieval_model/candidate_tower/linear_1/w"}
  assert params["phoenix_retrieval_model/candidate_tower/linear"]["w"].shape == (4 * D, 2 * D)


def test_representations_are_normalised_and_masked():
  params, apply, batch, emb = _model()
  batch = batch._replace(candidate_post_hashes=batch.candidate_post_hashes.copy())
  batch.candidate_post_hashes[0, 1] = 0
  (user, norm), (cand, mask) = apply(params, batch, emb)
  assert user.shape == (B, D) and norm.shape == (B, 1) and cand.shape == (B, C, D)
  np.testing.assert_allclose(np.linalg.norm(user, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(cand, axis=-1), 1.0, rtol=1e-5)
  assert np.all(np.asarray(norm) > 0)
  expected_mask = np.ones((B, C), bool)
  expected_mask[0, 1] = False
  np.testing.assert_array_equal(mask, expected_mask)


def test_top_k_is_exact_descending_and_respects_the_corpus_mask():
  params, apply, batch, emb = _model()
  (user, _), _ = apply(params, batch, emb)
  corpus, ids = rrm.create_example_corpus(N, D)
  assert corpus.shape == (N, D) and ids.shape == (N,) and len(set(ids)) == N
  np.testing.assert_allclose(np.linalg.norm(corpus, axis=-1), 1.0, rtol=1e-5)
  retrieve = jax.jit(rrm.top_k_retrieval, static_argnums=2)
  idx, scores = retrieve(user, corpus, 10)
  exact = np.asarray(user) @ corpus.T
  np.testing.assert_array_equal(idx, np.argsort(-exact, axis=1)[:, :10])
  assert np.all(np.diff(np.asarray(scores), axis=1) <= 0)
  np.testing.assert_allclose(scores, np.take_along_axis(exact, np.asarray(idx), 1), rtol=1e-5)
  # Mask out the true best items and half the corpus: none of them is ever returned.
  mask = np.arange(N) % 2 == 0
  mask[np.asarray(idx)[:, 0]] = False
  idx_m, scores_m = retrieve(user, corpus, 10, mask)
  assert np.all(mask[np.asarray(idx_m)]) and np.all((np.asarray(idx_m) >= 0)
                                                    & (np.asarray(idx_m) < N))
  assert np.all(np.diff(np.asarray(scores_m), axis=1) <= 0)
  # More slots than unmasked items: the rest are -1 / -inf, never a masked item.
  few = np.zeros(N, bool)
  few[[3, 17]] = True
  idx_f, scores_f = retrieve(user, corpus, 5, few)
  assert set(np.asarray(idx_f)[:, :2].ravel()) <= {3, 17}
  np.testing.assert_array_equal(np.asarray(idx_f)[:, 2:], -1)
  assert np.all(np.isneginf(np.asarray(scores_f)[:, 2:]))


def test_call_returns_retrieval_output():
  params, _, batch, emb = _model()
  corpus, _ = rrm.create_example_corpus(N, D)
  f = hk.without_apply_rng(hk.transform(lambda b, e, c: _config().make()(b, e, c, top_k=7)))
  out = _jit(f.apply)(params, batch, emb, corpus)
  assert isinstance(out, rrm.RetrievalOutput)
  assert out.top_k_indices.shape == (B, 7) and out.top_k_scores.shape == (B, 7)
  assert out.user_representation.shape == (B, D)


def test_every_parameter_gets_gradient_at_init():
  params, _, batch, emb = _model()
  apply = hk.without_apply_rng(hk.transform(_towers)).apply

  def loss(p):  # in-batch softmax: user b's positive is its first candidate
    (user, _), (cand, _) = apply(p, batch, emb)
    logits = user @ cand[:, 0, :].T / 0.1
    return -jnp.mean(jnp.diag(jax.nn.log_softmax(logits, axis=-1)))

  grads = _jit(jax.grad(loss))(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert float(jnp.abs(g).max()) > 0, jax.tree_util.keystr(path)


def test_last_pooling_reads_the_last_valid_position_and_bad_pooling_is_rejected():
  params, _, batch, emb = _model()
  # Same parameters, read-out "last": with a history truncated after position 2 the user
  # representation must not depend on anything after it (causal + last valid position).

  def last_user(b, e):
    cfg = dataclasses.replace(_config(), pooling="last")
    return cfg.make().build_user_representation(b, e)[0]

  f = _jit(hk.without_apply_rng(hk.transform(last_user)).apply)
  keep = np.arange(S) <= 2
  cut = batch._replace(
      history_post_hashes=np.where(keep[None, :, None], batch.history_post_hashes, 0))
  changed = cut._replace(history_actions=np.where(keep[None, :, None], batch.history_actions,
                                                  1 - batch.history_actions))
  np.testing.assert_allclose(f(params, cut, emb), f(params, changed, emb), rtol=1e-5,
                             atol=1e-6)
  mean = _model()[1](params, cut, emb)[0][0]
  assert not np.allclose(f(params, cut, emb), mean, atol=1e-3)
  with pytest.raises(ValueError, match="pooling must be one of"):
    dataclasses.replace(_config(), pooling="max")
