"""Tests of phoenix.grok: the isolation mask, the transformer and the learnable temperature."""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import grok

D = 16
# Tiny models: compile without LLVM optimisation (compilation, not running, dominates here).
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


def _config(**kw):
  return grok.TransformerConfig(emb_size=D, key_size=8, num_q_heads=4, num_kv_heads=2,
                                num_layers=2, widening_factor=2.0, **kw)


def _transform(cfg, offset, jitted=True):
  """(init, apply) of the transformer's output embeddings, jitted unless `jitted=False`."""
  f = hk.without_apply_rng(hk.transform(lambda x, m: cfg.make()(x, m, offset).embeddings))
  return hk.Transformed(_jit(f.init), _jit(f.apply)) if jitted else f


def _inputs(b=2, t=7, seed=0):
  x = np.random.default_rng(seed).standard_normal((b, t, D)).astype(np.float32)
  return jnp.asarray(x), jnp.ones((b, t), jnp.float32)


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
  f = hk.transform(lambda x, m: _config().make()(x, m, 4))
  params = jax.eval_shape(f.init, jax.random.PRNGKey(0), x, m)
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


@functools.lru_cache(maxsize=None)
def _temperature_params():
  """Init of the model with learnable temperature (the plain model's params are a subset)."""
  x, m = _inputs()
  return _transform(_config(learnable_temperature=True), 4).init(jax.random.PRNGKey(0), x, m)


def _plain(params):
  return {k: v for k, v in params.items() if not k.endswith("multi_head_attention")}


def test_init_is_trainable():
  params = _temperature_params()
  np.testing.assert_array_equal(params["transformer/decoder_layer_1/rms_norm_3"]["scale"], 1.0)
  w = np.asarray(params["transformer/decoder_layer_0/linear_v"]["w"])
  assert 0.5 / np.sqrt(D) < w.std() < 1.5 / np.sqrt(D)  # variance scaling (fan-in)


def test_plain_causal_without_offset():
  x, m = _inputs()
  f = _transform(_config(), None)
  params = _plain(_temperature_params())
  out = f.apply(params, x, m)
  out2 = f.apply(params, x.at[:, 4:].add(1.0), m)  # change the future
  np.testing.assert_allclose(out[:, :4], out2[:, :4], atol=1e-6)
  assert not np.allclose(out[:, 4:], out2[:, 4:])


def test_zero_init_reproduces_the_release_defect():
  """The release's init: every weight and norm scale is 0, so the transformer is the identity
  (and, its post-norm scales being 0, no weight gets a gradient)."""
  x, m = _inputs()
  f = _transform(_config(zero_init=True), 4)
  params = f.init(jax.random.PRNGKey(0), x, m)
  assert all(float(jnp.abs(p).max()) == 0.0 for p in jax.tree_util.tree_leaves(params))
  np.testing.assert_array_equal(f.apply(params, x, m), x)


def test_temperature_flag_adds_one_parameter_per_layer_and_starts_neutral():
  x, m = _inputs()
  shapes = lambda cfg: jax.eval_shape(hk.transform(lambda x, m: cfg.make()(x, m, 4)).init,
                                      jax.random.PRNGKey(0), x, m)
  names = lambda tree: {(k, n) for k, d in tree.items() for n in d}
  extra = names(shapes(_config(learnable_temperature=True))) - names(shapes(_config()))
  assert extra == {(f"transformer/decoder_layer_{i}/multi_head_attention",
                    "attention_temperature_raw") for i in range(2)}
  params = _temperature_params()
  raw = params["transformer/decoder_layer_0/multi_head_attention"]["attention_temperature_raw"]
  np.testing.assert_allclose(grok.effective_temperature(raw), 1.0, rtol=1e-6)
  # Same shared parameters + temperature 1 -> the plain model's outputs.
  temp, plain = _transform(_config(learnable_temperature=True), 4), _transform(_config(), 4)
  np.testing.assert_allclose(temp.apply(params, x, m), plain.apply(_plain(params), x, m),
                             atol=1e-5)


def test_temperature_gets_gradient_and_stays_above_floor():
  x, m = _inputs()
  f = _transform(_config(learnable_temperature=True), 4)
  params = _temperature_params()
  key = "transformer/decoder_layer_0/multi_head_attention"
  raw = _transform(_config(learnable_temperature=True), 4, jitted=False)
  grads = _jit(jax.grad(lambda p: jnp.sum(raw.apply(p, x, m)[:, -1] ** 2)))(params)
  g = grads[key]["attention_temperature_raw"]
  assert float(jnp.abs(g).max()) > 0
  # A huge step either way (one of them drives the temperature down): it stays >= 0.1.
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


def test_block_dropout_only_in_training_and_keeps_causality():
  """dropout_rate changes nothing at inference; in training it is on (rng-dependent), adds
  no parameter, and a position's output still does not depend on later positions."""
  x, m = _inputs(t=6)
  plain, dropped = _config(), _config(dropout_rate=0.5)

  def fwd(cfg, is_training):
    return hk.transform(lambda x, m: cfg.make()(x, m, None, is_training=is_training).embeddings)

  params = fwd(plain, False).init(jax.random.PRNGKey(0), x, m)
  assert jax.tree.structure(fwd(dropped, True).init(jax.random.PRNGKey(0), x, m)) == \
      jax.tree.structure(params)
  ref = fwd(plain, False).apply(params, None, x, m)
  np.testing.assert_allclose(np.asarray(fwd(dropped, False).apply(params, None, x, m)),
                             np.asarray(ref), atol=1e-6)
  train = fwd(dropped, True).apply
  a = train(params, jax.random.PRNGKey(1), x, m)
  b = train(params, jax.random.PRNGKey(2), x, m)
  assert float(jnp.max(jnp.abs(a - ref))) > 1e-2 and float(jnp.max(jnp.abs(a - b))) > 1e-2
  np.testing.assert_allclose(np.asarray(train(params, jax.random.PRNGKey(1), x, m)),
                             np.asarray(a), atol=1e-6)
  x2 = x.at[:, 4:].set(0.0)   # change the last two positions only
  c = train(params, jax.random.PRNGKey(1), x2, m)
  np.testing.assert_allclose(np.asarray(c[:, :4]), np.asarray(a[:, :4]), atol=1e-5)
