"""recsys_core.precision: the float32 / bfloat16 switch on a small haiku MLP.

Tolerance of "bfloat16 close to float32": bfloat16 keeps 8 significant bits (relative
rounding 2^-9 ~ 0.002 per op); through three matmuls of width <= 64 and a LayerNorm the
output error stays below 3% of the output's scale (measured: 0.6%): max|out_bf16 - out_f32|
<= 0.03 * max|out_f32|.
"""
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recsys_core import precision
from recsys_core.precision import Precision


class MLP(hk.Module):

  def __call__(self, x):
    h = jax.nn.gelu(hk.LayerNorm(-1, True, True)(hk.Linear(64)(x)))
    h = jax.nn.gelu(hk.Linear(64)(h))
    return hk.Linear(8)(h)


def _forward(x):
  return MLP(name="mlp")(x)


@functools.lru_cache(maxsize=None)
def _run(prec: Precision):
  """(params, output, dtypes seen at trace time, grads, matmul operand dtypes) under `prec`."""
  net = hk.transform(_forward)
  x = jax.random.normal(jax.random.key(1), (16, 32))
  seen = {}

  def record(next_f, args, kwargs, context):
    if context.method_name == "__call__":  # inside the policy's casts: what the layer computes on
      seen[context.module.module_name + ":in"] = args[0].dtype
    return next_f(*args, **kwargs)

  def apply(params):
    with hk.intercept_methods(record):
      return net.apply(params, None, x)

  with precision.precision_scope(prec, MLP):
    params = jax.jit(net.init)(jax.random.key(0), x)
    out, grads = jax.jit(lambda p: (apply(p), jax.grad(lambda q: jnp.sum(apply(q) ** 2))(p)))(
        params)
    jaxpr = jax.make_jaxpr(apply)(params)
  dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
  dot_dtypes = {str(v.aval.dtype) for e in dots for v in e.invars}
  return params, out, seen, grads, dot_dtypes


def test_float32_is_float32_throughout():
  params, out, seen, grads, dot_dtypes = _run(Precision.FLOAT32)
  assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype("float32")}
  assert set(seen.values()) == {jnp.dtype("float32")} and len(seen) == 5
  assert out.dtype == jnp.float32 and dot_dtypes == {"float32"}


def test_bfloat16_compute_with_float32_params_and_outputs():
  params, out, seen, grads, dot_dtypes = _run(Precision.BFLOAT16)
  assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype("float32")}
  assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype("float32")}
  assert seen["mlp:in"] == jnp.bfloat16  # the model's inputs are cast to bfloat16
  assert seen["mlp/layer_norm:in"] == jnp.float32  # LayerNorm statistics in float32 ...
  assert seen["mlp/linear_1:in"] == jnp.bfloat16  # ... and it hands bfloat16 on
  assert out.dtype == jnp.float32  # outputs back in float32 for the loss
  assert dot_dtypes == {"bfloat16"}  # every matmul runs on bfloat16 operands


def test_bfloat16_close_to_float32():
  _, out32, *_ = _run(Precision.FLOAT32)
  _, out16, *_ = _run(Precision.BFLOAT16)
  scale = float(jnp.max(jnp.abs(out32)))
  err = float(jnp.max(jnp.abs(out16 - out32)))
  assert 0 < err <= 0.03 * scale, (err, scale)  # > 0: bf16 really was used


def test_scope_restores_policies_and_switch_parses():
  assert hk.mixed_precision.get_policy(MLP) is None
  with precision.precision_scope("bfloat16", MLP):
    assert hk.mixed_precision.get_policy(MLP).compute_dtype == jnp.bfloat16
    assert hk.mixed_precision.get_policy(hk.LayerNorm).compute_dtype == jnp.float32
  assert hk.mixed_precision.get_policy(MLP) is None
  assert hk.mixed_precision.get_policy(hk.LayerNorm) is None
  assert Precision("bfloat16").compute_dtype == jnp.bfloat16
  with pytest.raises(ValueError):
    Precision("float16")


def test_set_precision_is_global_until_reset():
  try:
    precision.set_precision("bfloat16", MLP)
    net, x = hk.transform(_forward), np.ones((2, 32), np.float32)
    params = jax.eval_shape(net.init, jax.random.key(0), x)  # shapes only, nothing compiled
    assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype("float32")}
    out = jax.eval_shape(net.apply, params, None, x)
    assert out.dtype == jnp.float32
    jaxpr = jax.make_jaxpr(lambda p: net.apply(p, None, x))(params)
    dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert {str(v.aval.dtype) for e in dots for v in e.invars} == {"bfloat16"}
    assert hk.mixed_precision.get_policy(MLP).compute_dtype == jnp.bfloat16
  finally:
    for cls in (MLP, *precision.NORM_CLASSES):
      hk.mixed_precision.clear_policy(cls)
