"""Config pieces shared by the Phoenix configs (imported by them; not a `--config` file).

`optimizer(**overrides)` is the one place that lists the optimizer keys the binaries expose
on the command line (`--config.optimizer.<key>=...`). Each key maps 1:1 onto a field of
recsys_core.train.OptimizerConfig; the binaries build it with
`OptimizerConfig(**cfg.optimizer.to_dict())`.
"""
from ml_collections import config_dict

# Adam with β2 0.98 (the transformer setting; OptimizerConfig's own default is 0.999),
# global-norm clipping at 1, constant learning rate, no weight decay.
_OPTIMIZER_DEFAULTS = dict(
    name="adam", learning_rate=1e-3, b1=0.9, b2=0.98, weight_decay=0.0,
    decay_matrices_only=False, clip_norm=1.0, warmup_steps=0, decay="constant",
    decay_steps=0, final_lr_factor=0.0)


def optimizer(**overrides) -> config_dict.ConfigDict:
  """The default optimizer block with `overrides` applied; unknown keys raise KeyError."""
  unknown = sorted(set(overrides) - set(_OPTIMIZER_DEFAULTS))
  if unknown:
    raise KeyError(f"unknown optimizer key(s) {unknown}; known: {sorted(_OPTIMIZER_DEFAULTS)}")
  return config_dict.ConfigDict({**_OPTIMIZER_DEFAULTS, **overrides})
