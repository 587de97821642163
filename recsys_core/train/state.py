"""The training state every model trains with: a NamedTuple pytree (dm-haiku examples style)."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class TrainState(NamedTuple):
  """Everything a training step reads and writes; saved whole in every checkpoint.

  Attributes:
    params: the model parameters (a haiku params dict, or any pytree of arrays).
    opt_state: the optax state of `make_optimizer(...)` for these params.
    step: [] int32, the number of updates applied so far (= index of the next batch).
    rng: the PRNG key the next update splits its step key from (`jax.random.PRNGKey`,
      uint32[2], or a typed `jax.random.key`).
  """
  params: Any
  opt_state: Any
  step: jax.Array
  rng: jax.Array


def init_train_state(params: Any, optimizer: optax.GradientTransformation,
                     rng: jax.Array) -> TrainState:
  """Returns the state at step 0: `optimizer.init(params)` (jitted), step 0 and `rng`."""
  return TrainState(params=params, opt_state=jax.jit(optimizer.init)(params),
                    step=jnp.zeros((), jnp.int32), rng=rng)
