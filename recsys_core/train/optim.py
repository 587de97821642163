"""Optimizer construction: Adam/AdamW, global-norm clipping, warm-up, decay, reduce-on-plateau.

The optimizer is always an `optax.GradientTransformationExtraArgs`, updated as
`optimizer.update(grads, opt_state, params, value=loss)`: `value` feeds
`optax.contrib.reduce_on_plateau` when enabled and is ignored otherwise
(`make_update_fn` always passes it).

Learning rate at update number t (0-based), with W = warmup_steps, D = decay_steps:
  warm(t)  = min(1, (t + 1) / W)            (1 when W = 0; the first update already moves)
  decay(t) = 1                               for decay="constant"
           = f + (1 - f) * (1 + cos(pi * clip((t - W) / D, 0, 1))) / 2   for decay="cosine"
  lr(t)    = learning_rate * warm(t) * decay(t) * plateau_scale
where f = final_lr_factor and plateau_scale (1 without plateau) is reduce_on_plateau's scale,
multiplied by plateau_factor after plateau_patience updates without improvement of the
(accumulated) training loss.

With ema_decay = d > 0 the optimizer also keeps an exponential moving average of the
parameters after each update (`params_ema`, last in the chain, so it sees the final
updates): ema_t = d * ema_{t-1} + (1 - d) * params_t from ema_0 = 0, read debiased as
ema_t / (1 - d^t). It lives in opt_state, so checkpoints and resumption carry it;
`eval_params(state)` returns it (or state.params without one), and `fit` evaluates and
exports those params.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """What `make_optimizer` builds. JSON-serialisable (stored in checkpoint metadata)."""
  name: Literal["adam", "adamw"] = "adam"
  learning_rate: float = 1e-3
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0             # AdamW only (decoupled); must be 0 for "adam"
  decay_matrices_only: bool = False     # AdamW: decay only parameters with ndim >= 2 (weight
                                        # matrices, embedding tables), not biases, norm
                                        # scales or scalar temperatures
  clip_norm: Optional[float] = 1.0      # global-norm clipping; None = off
  warmup_steps: int = 0                 # linear warm-up over this many updates
  decay: Literal["constant", "cosine"] = "constant"
  decay_steps: int = 0                  # cosine: length of the decay after warm-up;
                                        # 0 = the whole run (resolved by `for_run`)
  final_lr_factor: float = 0.0          # cosine: lr at the end = learning_rate * this
  plateau: bool = False                 # optax.contrib.reduce_on_plateau on the train loss
  plateau_factor: float = 0.5
  plateau_patience: int = 10            # updates (of accumulated loss) without improvement
  plateau_cooldown: int = 0
  plateau_rtol: float = 1e-4
  plateau_atol: float = 0.0
  plateau_accumulation_size: int = 1    # the loss is averaged over this many updates
  plateau_min_scale: float = 0.0
  ema_decay: float = 0.0                # > 0: keep an EMA of the params (`params_ema`) and
                                        # evaluate / export it; 0 = off

  def __post_init__(self):
    if self.name not in ("adam", "adamw"):
      raise ValueError(f"OptimizerConfig.name must be 'adam' or 'adamw', got {self.name!r}")
    if self.name == "adam" and self.weight_decay:
      raise ValueError("weight_decay needs name='adamw' (Adam has no decoupled weight decay)")
    if self.name == "adam" and self.decay_matrices_only:
      raise ValueError("decay_matrices_only needs name='adamw' (Adam has no weight decay)")
    if self.decay not in ("constant", "cosine"):
      raise ValueError(f"OptimizerConfig.decay must be 'constant' or 'cosine', got {self.decay!r}")
    if self.decay_steps < 0:
      raise ValueError(f"decay_steps must be >= 0, got {self.decay_steps}")
    if self.warmup_steps < 0:
      raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
    if not 0.0 <= self.ema_decay < 1.0:
      raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
    if not self.learning_rate > 0:
      raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
    for name in ("b1", "b2"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
    if self.clip_norm is not None and not self.clip_norm > 0:
      raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm}")
    if not 0.0 <= self.final_lr_factor <= 1.0:
      raise ValueError(f"final_lr_factor must be in [0, 1], got {self.final_lr_factor}")
    if self.weight_decay < 0:
      raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")

  def for_run(self, num_steps: int) -> "OptimizerConfig":
    """This config for a run of `num_steps` updates: a cosine decay with decay_steps 0
    spans every update after the warm-up; anything else is returned unchanged."""
    if self.decay != "cosine" or self.decay_steps:
      return self
    return dataclasses.replace(self, decay_steps=max(1, int(num_steps) - self.warmup_steps))


def make_schedule(cfg: OptimizerConfig) -> Callable[[jax.Array], jax.Array]:
  """The learning rate as a function of the update count (without the plateau scale)."""
  lr, warmup, steps, final = (cfg.learning_rate, cfg.warmup_steps, cfg.decay_steps,
                              cfg.final_lr_factor)
  if cfg.decay == "cosine" and steps <= 0:
    raise ValueError("decay='cosine' needs decay_steps > 0; for decay_steps 0 (the whole "
                     "run) build the optimizer from cfg.for_run(num_steps)")

  def schedule(count):
    count = jnp.asarray(count, jnp.float32)
    value = jnp.asarray(lr, jnp.float32)
    if warmup > 0:
      value = value * jnp.minimum(1.0, (count + 1.0) / warmup)
    if cfg.decay == "cosine":
      t = jnp.clip((count - warmup) / steps, 0.0, 1.0)
      value = value * (final + (1.0 - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * t)))
    return value

  return schedule


def matrices_only_mask(params: Any) -> Any:
  """True for the parameters with ndim >= 2: the weight-decay mask of
  `OptimizerConfig.decay_matrices_only`."""
  return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def make_optimizer(cfg: OptimizerConfig,
                   weight_decay_mask: Any = None) -> optax.GradientTransformationExtraArgs:
  """clip_by_global_norm -> adam(w) with the schedule -> reduce_on_plateau (if enabled)
  -> params_ema (if cfg.ema_decay > 0).

  `weight_decay_mask` (AdamW only) is optax's `mask`: a pytree of bools or a callable
  params -> bools selecting the parameters that decay (e.g. not biases).
  `cfg.decay_matrices_only` is the common case of it, `matrices_only_mask`; giving both
  is an error.
  """
  if cfg.decay_matrices_only:
    if weight_decay_mask is not None:
      raise ValueError("give either weight_decay_mask or cfg.decay_matrices_only, not both")
    weight_decay_mask = matrices_only_mask
  schedule = make_schedule(cfg)
  parts = []
  if cfg.clip_norm is not None:
    parts.append(optax.clip_by_global_norm(cfg.clip_norm))
  if cfg.name == "adamw":
    parts.append(optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                             weight_decay=cfg.weight_decay, mask=weight_decay_mask))
  else:
    parts.append(optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps))
  if cfg.plateau:
    parts.append(optax.contrib.reduce_on_plateau(
        factor=cfg.plateau_factor, patience=cfg.plateau_patience, rtol=cfg.plateau_rtol,
        atol=cfg.plateau_atol, cooldown=cfg.plateau_cooldown,
        accumulation_size=cfg.plateau_accumulation_size, min_scale=cfg.plateau_min_scale))
  if cfg.ema_decay:
    parts.append(params_ema(cfg.ema_decay))
  return optax.chain(*parts)


class ParamsEmaState(NamedTuple):
  """optax state of `params_ema`.

  Attributes:
    weight: [] float32, 1 - decay^t after t updates: the total weight in `ema`, which it is
      divided by on reading (the debiasing; 0 before the first update).
    ema: float32 pytree shaped like the params, zero-initialised.
  """
  weight: jax.Array
  ema: Any


def params_ema(decay: float) -> optax.GradientTransformation:
  """Keeps an exponential moving average of the params as they are after each update.

  The updates pass through unchanged, so this must come last in a chain: it computes the
  new params as params + updates. Read the average with `ema_params(opt_state)`.
  """
  if not 0.0 < decay < 1.0:
    raise ValueError(f"params_ema: decay must be in (0, 1), got {decay}")

  def init_fn(params):
    return ParamsEmaState(weight=jnp.zeros((), jnp.float32),
                          ema=jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("params_ema needs the params: call optimizer.update(grads, state, params)")
    # An optax transformation never sees the applied params, so the sum is redone here: one
    # elementwise add per parameter, next to Adam's several.
    new_params = optax.apply_updates(params, updates)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p.astype(jnp.float32),
                       state.ema, new_params)
    return updates, ParamsEmaState(weight=decay * state.weight + (1.0 - decay), ema=ema)

  return optax.GradientTransformation(init_fn, update_fn)


def ema_params(opt_state: Any, like: Any) -> Optional[Any]:
  """The debiased parameter average kept in `opt_state`, cast to the dtypes of `like` (the
  params); None when the optimizer keeps none or has not updated yet."""
  state = _find_state(opt_state, ParamsEmaState)
  if state is None or float(state.weight) == 0.0:
    return None
  return jax.tree.map(lambda e, p: (e / state.weight).astype(jnp.result_type(p)), state.ema, like)


def eval_params(state: Any) -> Any:
  """The params to evaluate and export from a TrainState: the optimizer's parameter average
  (`OptimizerConfig.ema_decay` > 0) once it has one, else `state.params` (the online params)."""
  averaged = ema_params(state.opt_state, state.params)
  return state.params if averaged is None else averaged


def plateau_scale(opt_state: Any) -> Optional[jax.Array]:
  """reduce_on_plateau's current LR multiplier in `opt_state`, or None without plateau.

  Matches the ReduceLROnPlateauState node itself, not any key named "scale" (LayerNorm and
  RMSNorm params are called "scale", and Adam's moments mirror the params).
  """
  state = _find_state(opt_state, optax.contrib.ReduceLROnPlateauState)
  return None if state is None else state.scale


def _find_state(opt_state: Any, cls: type) -> Any:
  """The last node of type `cls` in an optax state tree (matched by type, not by key), or
  None."""
  is_cls = lambda x: isinstance(x, cls)
  states = [x for x in jax.tree.leaves(opt_state, is_leaf=is_cls) if is_cls(x)]
  return states[-1] if states else None
