"""Tests of phoenix.grok: the isolation mask, the transformer and the learnable temperature."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import grok

D = 16


def _config(**kw):
  return grok.TransformerConfig(emb_size=D, key_size=8, num_q_heads=4, num_kv_heads=2,
                                num_layers=2, widening_factor=2.0, **kw)


def _transform(cfg, offset):
  """Jitted (init, apply) of the transformer's output embeddings."""
  f = hk.without_apply_rng(hk.transform(lambda x, m: cfg.make()(x, m, offset).embeddings))
  return hk.Transformed(jax.jit(f.init), jax.jit(f.apply))


def _inputs(b=2, t=7, seed=0):
  x = jax.random.normal(jax.random.PRNGKey(seed), (b, t, D))
  return x, jnp.ones((b, t), jnp.float32)


def test_ffn_size_rounds_up_to_multiple_of_8():
  assert grok.ffn_size(128, 2.0) == 176  # int(256) * 2 // 3 = 170 -> 176
  assert grok.ffn_size(16, 2.0) == 24    # 21 -> 24
  assert grok.ffn_size(48, 4.0) == 128   # already a multiple of 8


def test_mask_exact_small_matrix():
  # T=6, offset=3: three causal prefix rows, then candidates see the prefix and themselves.
  expected = np.array([
      [1, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0],
      [1, 1, 1, 0, 0, 0],
      [1, 1, 1, 1, 0, 0],
      [1, 1, 1, 0, 1, 0],
      [1, 1, 1, 0, 0, 1],
  ], np.float32)
  mask = grok.make_recsys_attn_mask(6, 3)
  assert mask.shape == (1, 1, 6, 6) and mask.dtype == jnp.float32
  np.testing.assert_array_equal(mask[0, 0], expected)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.bool_])
def test_mask_dtype_honoured(dtype):
  assert grok.make_recsys_attn_mask(5, 2, dtype).dtype == dtype


def test_mask_edge_cases():
  t = 5
  causal = np.tril(np.ones((t, t), np.float32))
  # One candidate (the last position): the same as a causal mask.
  np.testing.assert_array_equal(grok.make_recsys_attn_mask(t, t - 1)[0, 0], causal)
  # All positions are candidates (offset 0): each sees only itself.
  np.testing.assert_array_equal(grok.make_recsys_attn_mask(t, 0)[0, 0], np.eye(t))
  # No candidate (offset T): plain causal.
  np.testing.assert_array_equal(grok.make_recsys_attn_mask(t, t)[0, 0], causal)


def test_parameter_names_follow_the_release():
  x, m = _inputs()
  params = _transform(_config(), 4).init(jax.random.PRNGKey(0), x, m)
  expected = set()
  for i in range(2):
    p = f"transformer/decoder_layer_{i}"
    expected |= {f"{p}/multi_head_attention/{n}" for n in ("query", "key", "value", "linear")}
    expected |= {f"{p}/rms_norm", f"{p}/rms_norm_1", f"{p}/rms_norm_2", f"{p}/rms_norm_3",
                 f"{p}/linear", f"{p}/linear_v", f"{p}/linear_1"}
  assert set(params) == expected
  assert params["transformer/decoder_layer_0/multi_head_attention/query"]["w"].shape == (D, 32)
  assert params["transformer/decoder_layer_0/multi_head_attention/key"]["w"].shape == (D, 16)
  assert params["transformer/decoder_layer_0/linear_v"]["w"].shape == (D, 24)
  np.testing.assert_array_equal(params["transformer/decoder_layer_0/rms_norm"]["scale"], 1.0)


def test_plain_causal_without_offset():
  x, m = _inputs()
  f = _transform(_config(), None)
  params = f.init(jax.random.PRNGKey(0), x, m)
  out = f.apply(params, x, m)
  out2 = f.apply(params, x.at[:, 4:].add(1.0), m)  # change the future
  np.testing.assert_allclose(out[:, :4], out2[:, :4], atol=1e-6)
  assert not np.allclose(out[:, 4:], out2[:, 4:])


def test_zero_init_reproduces_the_release_defect():
  """The release's init: the transformer is the identity and gets exactly zero gradient."""
  x, m = _inputs()
  f = _transform(_config(zero_init=True), 4)
  params = f.init(jax.random.PRNGKey(0), x, m)
  np.testing.assert_array_equal(f.apply(params, x, m), x)
  grads = jax.jit(jax.grad(lambda p: jnp.sum(f.apply(p, x, m) ** 2)))(params)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree_util.tree_leaves(grads))


def test_temperature_flag_adds_one_parameter_per_layer_and_starts_neutral():
  x, m = _inputs()
  plain, temp = _transform(_config(), 4), _transform(_config(learnable_temperature=True), 4)
  p_plain = plain.init(jax.random.PRNGKey(0), x, m)
  p_temp = temp.init(jax.random.PRNGKey(0), x, m)
  extra = {(k, n) for k, d in p_temp.items() for n in d} - {
      (k, n) for k, d in p_plain.items() for n in d}
  assert extra == {(f"transformer/decoder_layer_{i}/multi_head_attention",
                    "attention_temperature_raw") for i in range(2)}
  raw = p_temp["transformer/decoder_layer_0/multi_head_attention"]["attention_temperature_raw"]
  np.testing.assert_allclose(grok.effective_temperature(raw), 1.0, rtol=1e-6)
  # Same shared parameters + temperature 1 -> the plain model's outputs.
  merged = {**p_plain, **{k: v for k, v in p_temp.items() if k not in p_plain}}
  np.testing.assert_allclose(temp.apply(merged, x, m), plain.apply(p_plain, x, m), atol=1e-5)


def test_temperature_gets_gradient_and_stays_above_floor():
  x, m = _inputs()
  f = _transform(_config(learnable_temperature=True), 4)
  params = f.init(jax.random.PRNGKey(0), x, m)
  key = "transformer/decoder_layer_0/multi_head_attention"
  grads = jax.jit(jax.grad(lambda p: jnp.sum(f.apply(p, x, m)[:, -1] ** 2)))(params)
  g = grads[key]["attention_temperature_raw"]
  assert float(jnp.abs(g).max()) > 0
  # A huge step that drives the temperature down: it stays at or above the floor.
  for step in (1e4, -1e4):
    raw = params[key]["attention_temperature_raw"] - step * jnp.sign(g)
    assert float(grok.effective_temperature(raw)) >= grok.MIN_TEMPERATURE
    stepped = {**params, key: {"attention_temperature_raw": raw}}
    assert np.isfinite(np.asarray(f.apply(stepped, x, m))).all()


def test_temperature_applies_before_the_soft_cap():
  """With temperature 0.1 and huge logits the cap still bounds them to +-30."""
  mha = lambda: grok.MultiHeadAttention(1, 1, 4, model_size=4, attn_output_multiplier=1.0,
                                        learnable_temperature=True)
  f = hk.without_apply_rng(hk.transform(
      lambda l, m: mha()._attention_weights(l, m, jnp.float32)))
  logits = jnp.array([[1000.0, -1000.0]])
  mask = jnp.ones_like(logits, bool)
  params = f.init(jax.random.PRNGKey(0), logits, mask)
  params = jax.tree_util.tree_map(lambda r: r - 1e4, params)  # temperature -> 0.1
  w = f.apply(params, logits, mask)
  ratio = np.log(w[0, 0]) - np.log(w[0, 1])
  np.testing.assert_allclose(ratio, 2 * grok.ATTN_LOGIT_CAP, rtol=1e-4)
