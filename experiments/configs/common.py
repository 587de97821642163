"""Config pieces shared by the Phoenix configs (imported by them; not a `--config` file).

`optimizer(**overrides)` is the one place that lists the optimizer keys the binaries expose
on the command line (`--config.optimizer.<key>=...`). Each key is a field of
recsys_core.train.OptimizerConfig, with that dataclass's default except β2; the binaries
build it back with `OptimizerConfig(**cfg.optimizer.to_dict())`.
"""
from ml_collections import config_dict

from recsys_core.train import OptimizerConfig

# The fields a Phoenix config records and takes on the command line (the plateau schedule
# and eps are left at OptimizerConfig's defaults). A key added here must also go into
# report.ADDED_CONFIG_FIELDS with its default, so that report.recipe_key still pools new
# runs with the older result files of the same recipe, which lack it.
_KEYS = ("name", "learning_rate", "b1", "b2", "weight_decay", "decay_matrices_only",
         "clip_norm", "warmup_steps", "decay", "decay_steps", "final_lr_factor", "ema_decay")
# β2 0.98, the transformer setting, where OptimizerConfig's own default is Adam's 0.999.
_DEFAULTS = OptimizerConfig(b2=0.98)


def optimizer(**overrides) -> config_dict.ConfigDict:
  """The default optimizer block with `overrides` applied; unknown keys raise KeyError."""
  unknown = sorted(set(overrides) - set(_KEYS))
  if unknown:
    raise KeyError(f"unknown optimizer key(s) {unknown}; known: {sorted(_KEYS)}")
  return config_dict.ConfigDict({**{k: getattr(_DEFAULTS, k) for k in _KEYS}, **overrides})
