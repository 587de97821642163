"""Mixed-precision switch: float32 everywhere, or bfloat16 compute with float32 params.

`Precision.BFLOAT16` applies the jmp policy `params=float32,compute=bfloat16,output=float32`
to a model's top-level haiku module class through `hk.mixed_precision`:

  * parameters are created and stored in float32 (the optimizer, its moments and the
    checkpoints stay float32; gradients come back float32 through the casts);
  * inside the module, inputs and parameters are cast to bfloat16, so matmuls, embedding
    lookups and activations are bfloat16;
  * the module's outputs are cast back to float32, so losses, softmax/cross-entropy and
    metric reductions computed on them run in float32;
  * normalisation layers (`norm_classes`, default hk.LayerNorm, hk.RMSNorm, hk.BatchNorm;
    pass a model's own norm classes too) compute in float32 (mean/variance reductions)
    and hand bfloat16 back to the next layer.

No loss scaling is needed: bfloat16 has float32's exponent range. Reductions *inside* the
model other than normalisation (e.g. an attention softmax) run in bfloat16 unless the
model casts them up itself.

Usage (once, at program start, before anything is traced)::

    precision.set_precision(config.precision, PhoenixModel)      # "float32" | "bfloat16"

or, scoped (tests)::

    with precision.precision_scope("bfloat16", MyModel):
      params = model.init(...); out = model.apply(...)            # trace inside the scope

Policies are per class and global: a normalisation layer used outside the model class also
hands bfloat16 on while the switch is on. The policy is read while haiku traces the module,
not when a jitted function runs: a function jitted and traced under one precision keeps it.
Choose the precision before tracing (build a fresh jit per precision).
"""
from __future__ import annotations

import contextlib
import enum
from typing import Iterator, Sequence

import haiku as hk
import jax.numpy as jnp
import jmp

NORM_CLASSES: tuple[type[hk.Module], ...] = (hk.LayerNorm, hk.RMSNorm, hk.BatchNorm)


class Precision(str, enum.Enum):
  """Compute precision of a model: "float32" or "bfloat16" (params are float32 in both)."""
  FLOAT32 = "float32"
  BFLOAT16 = "bfloat16"

  @property
  def compute_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.value)

  def model_policy(self) -> jmp.Policy:
    """Policy for the model's top-level module: float32 params and outputs."""
    return jmp.get_policy(f"params=float32,compute={self.value},output=float32")

  def norm_policy(self) -> jmp.Policy:
    """Policy for normalisation layers: float32 statistics, output in the compute dtype."""
    return jmp.get_policy(f"params=float32,compute=float32,output={self.value}")


ModuleClasses = type[hk.Module] | Sequence[type[hk.Module]]


def _classes(module_classes: ModuleClasses) -> Sequence[type[hk.Module]]:
  return (module_classes,) if isinstance(module_classes, type) else tuple(module_classes)


def set_precision(precision: Precision | str, module_classes: ModuleClasses,
                  norm_classes: ModuleClasses = NORM_CLASSES) -> None:
  """Globally sets the policies for these model classes and normalisation classes."""
  precision = Precision(precision)
  for cls in _classes(module_classes):
    hk.mixed_precision.set_policy(cls, precision.model_policy())
  for cls in _classes(norm_classes):
    hk.mixed_precision.set_policy(cls, precision.norm_policy())


@contextlib.contextmanager
def precision_scope(precision: Precision | str, module_classes: ModuleClasses,
                    norm_classes: ModuleClasses = NORM_CLASSES) -> Iterator[Precision]:
  """Like `set_precision`, restoring the previous policies on exit."""
  precision = Precision(precision)
  with contextlib.ExitStack() as stack:
    for cls in _classes(module_classes):
      stack.enter_context(hk.mixed_precision.push_policy(cls, precision.model_policy()))
    for cls in _classes(norm_classes):
      stack.enter_context(hk.mixed_precision.push_policy(cls, precision.norm_policy()))
    yield precision
