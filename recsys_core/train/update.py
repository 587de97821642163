"""The jitted training step, with non-finite guarding.

`loss_fn(params, rng, batch) -> (loss, metrics)` is differentiated w.r.t. params; the step
splits a fresh key from `state.rng` for it. A step is *bad* when the loss or any gradient
element is not finite. A bad step never changes params or opt_state (they are selected with
`jnp.where` inside the jitted step), still advances `step` and `rng`, and reports
`skipped = 1`. What happens next depends on `nan_policy`:
  "raise": `fit` (or the caller, via `check_finite`) raises `NonFiniteError` naming the step,
           before anything else is evaluated or saved, so the last checkpoint stays the last
           good one.
  "skip":  training continues; the bad batch is simply not applied.
A loss that stays finite but runs away (a negative or far too large learning rate) is `fit`'s
divergence guard's (LoopConfig.divergence_factor): it raises `DivergenceError`, a subclass of
NonFiniteError, so `except NonFiniteError` catches both ways a run blows up.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from recsys_core.train.optim import plateau_scale
from recsys_core.train.state import TrainState

NAN_POLICIES = ("raise", "skip")

LossFn = Callable[[Any, jax.Array, Any], tuple[jax.Array, Mapping[str, jax.Array]]]
UpdateFn = Callable[[TrainState, Any], tuple[TrainState, dict[str, jax.Array]]]


class NonFiniteError(FloatingPointError):
  """The loss or gradients of a training step were NaN/inf (nan_policy="raise")."""

  def __init__(self, step: int, metrics: Mapping[str, Any] | None = None):
    self.step = int(step)
    self.metrics = dict(metrics or {})
    shown = {k: v for k, v in self.metrics.items() if k in ("loss", "grad_norm")}
    super().__init__(f"non-finite loss or gradients at step {self.step} (the update on "
                     f"batch_fn({self.step})); {shown}. Params were not updated; nothing "
                     f"was saved after the last good checkpoint.")


class DivergenceError(NonFiniteError):
  """The training loss ran away (LoopConfig.divergence_factor) or stopped being finite.

  `step` is the state's step when it was noticed (after the update on batch_fn(step - 1));
  `loss` the mean train loss over the steps since the previous train record (or the single
  loss of the first update after a checkpoint, which judges that checkpoint's params);
  `best` the lowest train-record loss of the run before it (None before the first record);
  `last_checkpoint` the newest checkpoint step left on disk (None: none).
  """

  def __init__(self, step: int, loss: float, best: float | None, reason: str = "",
               metrics: Mapping[str, Any] | None = None,
               last_checkpoint: int | None = None):
    # FloatingPointError.__init__ only, not NonFiniteError's (its message is about NaNs).
    self.step, self.loss, self.best = int(step), float(loss), best
    self.metrics = dict(metrics or {})
    self.last_checkpoint = last_checkpoint
    self._reason = reason
    best_txt = "none yet" if best is None else f"{best:.6g}"
    kept = ("there is no checkpoint to resume from" if last_checkpoint is None else
            f"the newest checkpoint left is the last good one, step {last_checkpoint}")
    FloatingPointError.__init__(
        self, f"training diverged at step {self.step}: train loss {self.loss:.6g} "
              f"{reason or 'ran away'} (lowest train loss so far: {best_txt}). Stopped before "
              f"anything of step {self.step} was evaluated or saved; {kept}. Check the learning "
              f"rate; LoopConfig.divergence_factor=None disables this guard.")

  def __reduce__(self):
    return (type(self), (self.step, self.loss, self.best, self._reason, self.metrics,
                         self.last_checkpoint))


def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def make_update_fn(loss_fn: LossFn, optimizer: optax.GradientTransformation,
                   nan_policy: str = "raise", donate: bool = False) -> UpdateFn:
  """Returns a jitted `update(state, batch) -> (state, metrics)`.

  metrics = loss_fn's metrics plus `loss`, `grad_norm` (global norm before clipping),
  `skipped` (int32 0/1) and `lr_scale` (reduce_on_plateau's scale, when enabled).
  The returned function has attribute `nan_policy`, which `fit` obeys.
  `donate=True` donates the input state's buffers (saves device memory; the state passed
  in must not be used afterwards).
  """
  if nan_policy not in NAN_POLICIES:
    raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, got {nan_policy!r}")
  optimizer = optax.with_extra_args_support(optimizer)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def _update(state: TrainState, batch):
    rng, step_rng = jax.random.split(state.rng)
    (loss, aux), grads = grad_fn(state.params, step_rng, batch)
    updates, new_opt_state = optimizer.update(grads, state.opt_state, state.params, value=loss)
    new_params = optax.apply_updates(state.params, updates)
    good = jnp.isfinite(loss) & _all_finite(grads)
    keep = lambda new, old: jnp.where(good, new, old)
    params = jax.tree.map(keep, new_params, state.params)
    opt_state = jax.tree.map(keep, new_opt_state, state.opt_state)
    metrics = dict(aux)
    metrics.update(loss=loss, grad_norm=optax.global_norm(grads),
                   skipped=jnp.logical_not(good).astype(jnp.int32))
    scale = plateau_scale(opt_state)
    if scale is not None:
      metrics["lr_scale"] = scale
    return TrainState(params, opt_state, state.step + 1, rng), metrics

  jitted = jax.jit(_update, donate_argnums=(0,) if donate else ())

  def update(state: TrainState, batch):
    return jitted(state, batch)

  update.nan_policy = nan_policy
  update.jitted = jitted
  return update


def check_finite(metrics: Mapping[str, Any], step: int) -> None:
  """Raises NonFiniteError(step) if `metrics` (of the update on batch `step`) says skipped."""
  if int(np.asarray(metrics["skipped"])):
    raise NonFiniteError(step, {k: float(np.asarray(v)) for k, v in metrics.items()
                                if np.ndim(v) == 0})
