"""Tests of the Phoenix ranking model: parameter tree, candidate isolation, gradients, flags."""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import grok
from phoenix import recsys_model as rm

B, S, C, D, A = 2, 5, 4, 16, 6


def _config(normalize=False, temperature=False, dtype=jnp.float32):
  return rm.PhoenixModelConfig(
      model=grok.TransformerConfig(emb_size=D, key_size=8, num_q_heads=2, num_kv_heads=1,
                                   num_layers=2, widening_factor=2.0,
                                   learnable_temperature=temperature),
      emb_size=D, num_actions=A, fprop_dtype=dtype, normalize_before_projection=normalize)


# Tiny models: compile without LLVM optimisation (compilation, not running, dominates here).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _logits_fn(cfg):
  return hk.without_apply_rng(hk.transform(lambda b, e: cfg.make()(b, e).logits))


@functools.lru_cache(maxsize=None)
def _model():
  """(params, jitted apply) of the tiny ranking model with both improvements on; the plain
  model's parameters are a subset of these."""
  f = _logits_fn(_config(True, True))
  return _jit(f.init)(jax.random.PRNGKey(0), *_example()), _jit(f.apply)


def _example(c=C, seed=0):
  return rm.create_example_batch(B, D, S, c, A, seed=seed)


def _param_names(params):
  return {f"{k}/{n}" for k, d in params.items() for n in d}


def _release_names(num_layers=2):
  names = {"phoenix_model/" + n for n in ("proj_mat_1", "proj_mat_2", "proj_mat_3",
                                          "action_projection", "unembeddings",
                                          "product_surface_embedding_table")}
  names.add("phoenix_model/rms_norm/scale")
  for i in range(num_layers):
    p = f"transformer/decoder_layer_{i}"
    names |= {f"{p}/multi_head_attention/{n}/w" for n in ("query", "key", "value", "linear")}
    names |= {f"{p}/{n}/scale" for n in ("rms_norm", "rms_norm_1", "rms_norm_2", "rms_norm_3")}
    names |= {f"{p}/{n}/w" for n in ("linear", "linear_v", "linear_1")}
  return names


def test_parameter_tree_flags_off_is_the_release_tree_and_flags_add_only_their_params():
  for normalize, temperature in [(False, False), (True, True)]:
    cfg = _config(normalize, temperature)
    f = hk.transform(lambda b, e, cfg=cfg: cfg.make()(b, e))
    shapes = jax.eval_shape(f.init, jax.random.PRNGKey(0), *_example())
    names = _param_names(shapes)
    if not normalize:
      assert names == _release_names()
    else:
      assert names - _release_names() == {
          "phoenix_model/history_layer_norm/scale", "phoenix_model/history_layer_norm/offset",
          "phoenix_model/candidate_layer_norm/scale", "phoenix_model/candidate_layer_norm/offset",
          "transformer/decoder_layer_0/multi_head_attention/attention_temperature_raw",
          "transformer/decoder_layer_1/multi_head_attention/attention_temperature_raw"}
      assert _release_names() <= names
  assert shapes["phoenix_model"]["proj_mat_1"].shape == (2 * D, D)
  # hashes, action emb, surface emb
  assert shapes["phoenix_model"]["proj_mat_3"].shape == (4 * D + D + D, D)
  assert shapes["phoenix_model"]["proj_mat_2"].shape == (4 * D + D, D)
  assert shapes["phoenix_model"]["unembeddings"].shape == (D, A)


@pytest.mark.parametrize("normalize", [False, True])
def test_input_reduction_matches_the_formula(normalize):
  """Plain: concat @ proj_mat; with the flag: LayerNorm(concat) @ proj_mat, LN scale 1 offset 0."""
  cfg = _config(normalize)
  f = hk.without_apply_rng(hk.transform(lambda b, e: cfg.make().build_inputs(b, e)[:2]))
  batch, emb = _example()
  params = _model()[0]
  (x, mask) = _jit(f.apply)(params, batch, emb)
  p = params["phoenix_model"]
  ln = (lambda v: (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-5)
        ) if normalize else (lambda v: v)
  if normalize:
    np.testing.assert_array_equal(params["phoenix_model/history_layer_norm"]["scale"], 1.0)
    np.testing.assert_array_equal(params["phoenix_model/candidate_layer_norm"]["offset"], 0.0)
  table = np.asarray(p["product_surface_embedding_table"])
  actions = batch.history_actions
  act = (2 * actions - 1) @ np.asarray(p["action_projection"])
  user = emb.user_embeddings.reshape(B, 1, -1) @ np.asarray(p["proj_mat_1"])
  hist = np.concatenate([emb.history_post_embeddings.reshape(B, S, -1),
                         emb.history_author_embeddings.reshape(B, S, -1), act,
                         table[batch.history_product_surface]], -1)
  cand = np.concatenate([emb.candidate_post_embeddings.reshape(B, C, -1),
                         emb.candidate_author_embeddings.reshape(B, C, -1),
                         table[batch.candidate_product_surface]], -1)
  expected = np.concatenate([user, ln(hist) @ np.asarray(p["proj_mat_3"]),
                             ln(cand) @ np.asarray(p["proj_mat_2"])], 1)
  np.testing.assert_allclose(x, expected, rtol=1e-4, atol=1e-4)
  assert mask.shape == (B, 1 + S + C) and bool(mask.all())


def test_output_shape_and_default_bfloat16():
  cfg = rm.PhoenixModelConfig(model=_config(temperature=True).model, emb_size=D, num_actions=A)
  assert cfg.fprop_dtype == jnp.bfloat16 and cfg.hash_config == rm.HashConfig()
  assert cfg.normalize_before_projection  # on by default (phoenix.md §3)
  f = hk.without_apply_rng(hk.transform(lambda b, e: cfg.make()(b, e)))
  out = jax.eval_shape(f.apply, _model()[0], *_example())  # traced, not compiled
  assert isinstance(out, rm.RecsysModelOutput)
  assert out.logits.shape == (B, C, A) and out.logits.dtype == jnp.bfloat16


def _take(batch, emb, idx):
  """The batch restricted to candidates `idx` (in that order)."""
  cand = lambda x: np.asarray(x)[:, idx]
  return (batch._replace(candidate_post_hashes=cand(batch.candidate_post_hashes),
                         candidate_author_hashes=cand(batch.candidate_author_hashes),
                         candidate_product_surface=cand(batch.candidate_product_surface)),
          rm.RecsysEmbeddings(emb.user_embeddings, emb.history_post_embeddings,
                              cand(emb.candidate_post_embeddings),
                              emb.history_author_embeddings,
                              cand(emb.candidate_author_embeddings)))


def test_candidates_are_isolated_in_float32():
  params, apply = _model()
  batch, emb = _example()
  logits = np.asarray(apply(params, batch, emb))
  # Reordering permutes the outputs exactly.
  perm = np.array([2, 0, 3, 1])
  np.testing.assert_array_equal(apply(params, *_take(batch, emb, perm)), logits[:, perm])
  # Removing candidates leaves the others unchanged.
  np.testing.assert_allclose(apply(params, *_take(batch, emb, np.array([3, 1]))),
                             logits[:, [3, 1]], atol=1e-5)
  # Changing the other candidates (ids, embeddings, surfaces) leaves candidate 0 unchanged.
  other_batch, other_emb = _example(seed=7)
  mixed_batch = batch._replace(**{
      f: np.concatenate([getattr(batch, f)[:, :1], getattr(other_batch, f)[:, 1:]], 1)
      for f in ("candidate_post_hashes", "candidate_author_hashes",
                "candidate_product_surface")})
  mixed_emb = rm.RecsysEmbeddings(
      emb.user_embeddings, emb.history_post_embeddings,
      np.concatenate([emb.candidate_post_embeddings[:, :1],
                      other_emb.candidate_post_embeddings[:, 1:]], 1),
      emb.history_author_embeddings,
      np.concatenate([emb.candidate_author_embeddings[:, :1],
                      other_emb.candidate_author_embeddings[:, 1:]], 1))
  mixed = np.asarray(apply(params, mixed_batch, mixed_emb))
  np.testing.assert_allclose(mixed[:, 0], logits[:, 0], atol=1e-5)
  assert np.abs(mixed[:, 1:] - logits[:, 1:]).max() > 1e-3
  # Padded candidates (post hash 0) do not change the others either.
  padded = batch._replace(candidate_post_hashes=batch.candidate_post_hashes.copy())
  padded.candidate_post_hashes[:, 2:] = 0
  np.testing.assert_allclose(np.asarray(apply(params, padded, emb))[:, :2], logits[:, :2],
                             atol=1e-5)


def test_padded_history_is_ignored():
  params, apply = _model()
  batch, emb = _example()
  batch = batch._replace(history_post_hashes=batch.history_post_hashes.copy())
  batch.history_post_hashes[:, 3:] = 0  # the last two history items are padding
  logits = apply(params, batch, emb)
  noisy = rm.RecsysEmbeddings(
      emb.user_embeddings, emb.history_post_embeddings.copy(), emb.candidate_post_embeddings,
      emb.history_author_embeddings, emb.candidate_author_embeddings)
  noisy.history_post_embeddings[:, 3:] += 5.0
  np.testing.assert_allclose(apply(params, batch, noisy), logits, atol=1e-5)


def test_every_parameter_gets_gradient_at_init():
  params, _ = _model()
  apply = _logits_fn(_config(True, True)).apply
  batch, emb = _example()
  labels = (np.random.default_rng(0).random((B, C, A)) < 0.3).astype(np.float32)

  def loss(p):
    logits = apply(p, batch, emb)
    return jnp.mean(jnp.logaddexp(0.0, logits) - labels * logits)  # sigmoid cross-entropy

  grads = _jit(jax.grad(loss))(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    assert float(jnp.abs(g).max()) > 0, jax.tree_util.keystr(path)
