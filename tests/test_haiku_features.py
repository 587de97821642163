"""Smoke tests of every dm-haiku feature this project uses (haiku is in maintenance mode).

Each test asserts behaviour the project relies on (parameter names, shapes, dtypes, values),
so a jax/haiku upgrade that changes one fails here first, with the feature in the test name.
Users: phoenix/ (hk.Module subclasses with hk.get_parameter + initializers, hk.name_like,
hk.LayerNorm), anime_ae/ (hk.transform, hk.Linear with names, hk.next_rng_key, scalar
parameters), recsys_core.precision (hk.mixed_precision, jmp), tests (hk.without_apply_rng,
hk.intercept_methods, hk.dropout, hk.initializers.RandomNormal), checkpoints and optimizer
masks (hk.data_structures).
"""
import haiku as hk
import jax
import jax.numpy as jnp
import jmp
import numpy as np
import pytest

X = np.linspace(-1.0, 1.0, 24, dtype=np.float32).reshape(4, 6)


def _shapes(params):
  return {m: {k: tuple(v.shape) for k, v in p.items()} for m, p in params.items()}


class Tower(hk.Module):
  """Submodules built in __init__ (names with '~') and in __call__ (plain, numbered)."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.proj = hk.Linear(3)

  def __call__(self, x):
    h = self.proj(x)
    h = hk.Linear(5, name="encoder")(h)
    h = hk.Linear(5)(h)
    return hk.Linear(2)(h)


def test_module_naming_and_linear_shapes():
  net = hk.without_apply_rng(hk.transform(lambda x: (Tower()(x), Tower()(x), Tower("named")(x))))
  params = jax.eval_shape(net.init, jax.random.key(0), X)  # names and shapes; nothing compiled
  assert _shapes(params) == {
      **{f"{t}{s}": shapes for t in ("tower", "tower_1", "named") for s, shapes in {
          "/~/linear": {"w": (6, 3), "b": (3,)},
          "/encoder": {"w": (3, 5), "b": (5,)},
          "/linear": {"w": (5, 5), "b": (5,)},
          "/linear_1": {"w": (5, 2), "b": (2,)}}.items()}}


def test_linear_computes_affine_map_with_zero_bias_init():
  net = hk.without_apply_rng(hk.transform(lambda x: hk.Linear(3)(x)))
  params = jax.jit(net.init)(jax.random.key(0), X)
  np.testing.assert_array_equal(params["linear"]["b"], np.zeros(3))
  params = jax.tree.map(lambda p: p + 0.5, params)
  np.testing.assert_allclose(jax.jit(net.apply)(params, X), X @ params["linear"]["w"] + 0.5,
                             rtol=1e-6)


def test_transform_rng_and_next_rng_key():
  def f(x):
    return x + jax.random.normal(hk.next_rng_key(), x.shape), jax.random.bits(hk.next_rng_key())

  net = hk.transform(f)
  params = net.init(jax.random.key(0), X)
  assert params == {}
  a, k1 = net.apply(params, jax.random.key(1), X)
  b, k2 = net.apply(params, jax.random.key(1), X)
  np.testing.assert_array_equal(a, b)  # same key, same draws
  assert not np.array_equal(a, net.apply(params, jax.random.key(2), X)[0])
  assert k1 == k2
  with pytest.raises(ValueError, match="PRNGKey"):
    net.apply(params, None, X)  # next_rng_key without a key is an error, not silent
  assert isinstance(net, hk.Transformed)


def test_dropout():
  net = hk.transform(lambda x: hk.dropout(hk.next_rng_key(), 0.5, x))
  out = np.asarray(net.apply({}, jax.random.key(0), np.ones((1000,), np.float32)))
  assert set(np.unique(out)) <= {0.0, 2.0} and 0.4 < (out == 0).mean() < 0.6


def test_without_apply_rng():
  net = hk.without_apply_rng(hk.transform(lambda x: hk.Linear(2)(x)))
  params = net.init(jax.random.key(0), X)
  assert net.apply(params, X).shape == (4, 2)  # no rng argument


class Scaled(hk.Module):
  """hk.get_parameter with explicit dtype and each initializer the project uses."""

  def __call__(self, x):
    ones = hk.get_parameter("ones", [x.shape[-1]], jnp.float32, init=jnp.ones)
    zeros = hk.get_parameter("zeros", [], jnp.float32, init=jnp.zeros)
    const = hk.get_parameter("const", [], jnp.float32, init=hk.initializers.Constant(0.25))
    vs = hk.get_parameter("vs", [400, 300], jnp.float32,
                          init=hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal"))
    tn = hk.get_parameter("tn", [1000, 8], jnp.float32, init=hk.initializers.TruncatedNormal(1.0))
    rn = hk.get_parameter("rn", [1000, 8], init=hk.initializers.RandomNormal(2.0))
    del vs, tn, rn
    return x * ones + zeros + const


def test_get_parameter_and_initializers():
  net = hk.without_apply_rng(hk.transform(lambda x: Scaled()(x)))
  init = jax.jit(net.init)
  params = init(jax.random.key(0), X)["scaled"]
  assert {k: (v.shape, v.dtype) for k, v in params.items()} == {
      "ones": ((6,), jnp.float32), "zeros": ((), jnp.float32), "const": ((), jnp.float32),
      "vs": ((400, 300), jnp.float32), "tn": ((1000, 8), jnp.float32),
      "rn": ((1000, 8), jnp.float32)}
  assert float(params["const"]) == 0.25 and float(params["zeros"]) == 0.0
  vs, tn, rn = (np.asarray(params[k]) for k in ("vs", "tn", "rn"))
  # VarianceScaling(1, fan_in, truncated_normal): std 1/sqrt(fan_in), cut at 2 "stddevs"
  # of the underlying normal (rescaled by 0.8796 so the truncated std is exact).
  assert abs(vs.std() * np.sqrt(400) - 1.0) < 0.02
  assert np.abs(vs).max() <= 2.0 / 0.87962566 / np.sqrt(400) + 1e-6
  assert np.abs(tn).max() <= 2.0 and abs(tn.std() - 0.88) < 0.03  # TruncatedNormal: not rescaled
  assert abs(rn.std() - 2.0) < 0.1
  np.testing.assert_allclose(net.apply(init(jax.random.key(0), X), X), X + 0.25)


def test_get_parameter_shape_mismatch_raises():
  def f():
    a = hk.get_parameter("p", [2], init=jnp.zeros)
    b = hk.get_parameter("p", [3], init=jnp.zeros)
    return a, b

  with pytest.raises(ValueError, match="p"):
    hk.transform(f).init(jax.random.key(0))


class TwoEntry(hk.Module):
  """A method decorated with hk.name_like('__call__') shares __call__'s parameters."""

  def __call__(self, x):
    return hk.Linear(2, name="shared")(x)

  @hk.name_like("__call__")
  def other_entry(self, x):
    return 2.0 * hk.Linear(2, name="shared")(x)


def test_name_like_shares_parameters():
  main = hk.without_apply_rng(hk.transform(lambda x: TwoEntry()(x)))
  other = hk.without_apply_rng(hk.transform(lambda x: TwoEntry().other_entry(x)))
  params = main.init(jax.random.key(0), X)
  assert list(params) == ["two_entry/shared"]
  assert list(other.init(jax.random.key(0), X)) == ["two_entry/shared"]
  np.testing.assert_allclose(other.apply(params, X), 2.0 * main.apply(params, X), rtol=1e-6)


def test_layer_norm_and_rms_norm():
  def f(x):
    return (hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name="ln")(x),
            hk.RMSNorm(axis=-1, name="rms")(x))

  net = hk.without_apply_rng(hk.transform(f))
  params = jax.jit(net.init)(jax.random.key(0), X)
  assert _shapes(params) == {"ln": {"scale": (6,), "offset": (6,)}, "rms": {"scale": (6,)}}
  ln, rms = jax.jit(net.apply)(params, X)
  np.testing.assert_allclose(ln.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(ln.var(-1), 1.0, rtol=1e-3)  # eps=1e-5 default
  np.testing.assert_allclose(np.sqrt((np.asarray(rms) ** 2).mean(-1)), 1.0, rtol=1e-3)


def test_transform_with_state_batch_norm():
  net = hk.transform_with_state(
      lambda x, t: hk.BatchNorm(True, True, decay_rate=0.5, name="bn")(x, is_training=t))
  params, state = jax.jit(net.init, static_argnums=2)(jax.random.key(0), X, True)
  apply = jax.jit(net.apply, static_argnums=4)
  assert set(state["bn/~/mean_ema"]) == {"counter", "hidden", "average"}
  out, new_state = apply(params, state, None, X, True)
  np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(new_state["bn/~/mean_ema"]["average"][0], X.mean(0), rtol=1e-5)
  _, same_state = apply(params, new_state, None, X, False)  # eval: state unchanged
  np.testing.assert_array_equal(same_state["bn/~/mean_ema"]["average"],
                                new_state["bn/~/mean_ema"]["average"])


def test_mixed_precision_policy_api():
  policy = jmp.get_policy("params=float32,compute=bfloat16,output=float32")
  assert (policy.param_dtype, policy.compute_dtype, policy.output_dtype) == (
      jnp.float32, jnp.bfloat16, jnp.float32)
  assert hk.mixed_precision.get_policy(Tower) is None
  try:
    hk.mixed_precision.set_policy(Tower, policy)
    assert hk.mixed_precision.get_policy(Tower) is policy
    net = hk.without_apply_rng(hk.transform(lambda x: Tower()(x)))
    params = jax.eval_shape(net.init, jax.random.key(0), X)
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    assert jax.eval_shape(net.apply, params, X).dtype == jnp.float32
    with hk.mixed_precision.push_policy(Tower, jmp.get_policy("float32")):
      assert hk.mixed_precision.get_policy(Tower).compute_dtype == jnp.float32
    assert hk.mixed_precision.get_policy(Tower) is policy
  finally:
    hk.mixed_precision.clear_policy(Tower)
  assert hk.mixed_precision.get_policy(Tower) is None


def test_intercept_methods():
  calls = []

  def record(next_f, args, kwargs, context):
    if context.method_name == "__call__":
      calls.append((context.module.module_name, context.method_name))
    return next_f(*args, **kwargs)

  def f(x):
    with hk.intercept_methods(record):
      return hk.Linear(2)(x)

  hk.without_apply_rng(hk.transform(f)).init(jax.random.key(0), X)
  assert calls == [("linear", "__call__")]


def test_data_structures():
  net = hk.without_apply_rng(hk.transform(lambda x: Tower()(x)))
  params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                        jax.eval_shape(net.init, jax.random.key(0), X))
  enc, rest = hk.data_structures.partition(lambda m, n, v: "encoder" in m, params)
  assert list(enc) == ["tower/encoder"] and "tower/encoder" not in rest
  merged = hk.data_structures.merge(rest, enc)
  assert jax.tree.structure(merged) == jax.tree.structure(params)
  assert hk.data_structures.tree_size(params) == 6 * 3 + 3 + 3 * 5 + 5 + 5 * 5 + 5 + 5 * 2 + 2
  only_w = hk.data_structures.filter(lambda m, n, v: n == "w", params)
  assert all(set(p) == {"w"} for p in only_w.values())
  plain = {"a/b": {"w": np.zeros(2)}}
  hd = hk.data_structures.to_haiku_dict(plain)
  assert dict(hd) == plain or list(hd) == ["a/b"]
  mapped = hk.data_structures.map(lambda m, n, v: v + 1, plain)
  np.testing.assert_array_equal(mapped["a/b"]["w"], np.ones(2))
