"""Config pieces shared by the config files (imported by them; not a `--config` file).

`parse_arg` reads the "key=value,..." argument of a config file, `section` turns a typed
dataclass's defaults into a command-line-settable section, `apply` sets a recipe's dotted keys.

`optimizer(**overrides)` is the one place that lists the optimizer keys the binaries expose
on the command line (`--config.optimizer.<key>=...`). Each key is a field of
recsys_core.train.OptimizerConfig, with that dataclass's default except β2; the binaries
build it back with `OptimizerConfig(**cfg.optimizer.to_dict())`.
"""
import dataclasses
import typing

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


def parse_arg(arg: str | None, **defaults) -> config_dict.ConfigDict:
  """`"dataset=beauty,recipe=best"` -> ConfigDict(dataset="beauty", recipe="best") over
  `defaults`; a key not in `defaults` raises ValueError naming the keys allowed."""
  out = dict(defaults)
  for part in filter(None, (arg or "").split(",")):
    key, sep, value = part.partition("=")
    key = key.strip()
    if not sep or key not in defaults:
      raise ValueError(f"config argument {part!r}: expected key=value with key one of "
                       f"{sorted(defaults)}")
    out[key] = value.strip()
  return config_dict.ConfigDict(out)


def section(defaults) -> config_dict.ConfigDict:
  """A config section holding every field of a (default) dataclass instance, so that each
  field can be set on the command line and its default is the dataclass's own. A field
  that defaults to None becomes a typed placeholder (settable as its Optional[...] type)."""
  hints = typing.get_type_hints(type(defaults))
  out = {}
  for field in dataclasses.fields(defaults):
    value = getattr(defaults, field.name)
    if dataclasses.is_dataclass(value):
      out[field.name] = section(value)
    elif value is None:
      kinds = [t for t in typing.get_args(hints[field.name]) if t is not type(None)]
      out[field.name] = config_dict.placeholder(kinds[0] if kinds else object)
    else:
      out[field.name] = value
  return config_dict.ConfigDict(out)


def apply(cfg: config_dict.ConfigDict, overrides: dict) -> config_dict.ConfigDict:
  """Sets dotted keys ("model.train.num_epochs": 30) of `overrides` on `cfg`; a key that
  does not exist raises KeyError (a recipe cannot add a field by mistake)."""
  for dotted, value in overrides.items():
    node = cfg
    *parents, leaf = dotted.split(".")
    for key in parents:
      node = node[key]
    if leaf not in node:
      raise KeyError(f"recipe key {dotted!r}: no such config field")
    node[leaf] = value
  return cfg


def model_config(model: str, model_defaults, arg: str | None, recipes: dict,
                 dataset_recipes: dict | None = None, default_dataset: str = "anime"
                 ) -> config_dict.ConfigDict:
  """The pipeline config of `model` for the argument "dataset=...,recipe=...,protocol=...".

  Sections: name ("<model>_<dataset>_<recipe>", the run folder's name), seed, data and
  protocol (experiments/configs/datasets.py's row), model (name + every field of
  `model_defaults`, a default instance of the model's Config). Then the recipe's dotted
  overrides: `dataset_recipes[(dataset, recipe)]` when there is one, else
  `recipes[recipe]`; each recipe is complete on its own (no recipe builds on another).
  """
  from experiments.configs import datasets  # pylint: disable=g-import-not-at-top
  arg = parse_arg(arg, dataset=default_dataset, recipe="default", protocol="")
  overrides = (dataset_recipes or {}).get((arg.dataset, arg.recipe), recipes.get(arg.recipe))
  if overrides is None:
    known = sorted(set(recipes) | {f"{r} (dataset={d})" for d, r in dataset_recipes or {}})
    raise ValueError(f"unknown recipe {arg.recipe!r} for dataset {arg.dataset!r}; known: "
                     f"{known}")
  cfg = config_dict.ConfigDict()
  cfg.name = f"{model}_{arg.dataset}_{arg.recipe}"
  cfg.seed = 0
  cfg.data, cfg.protocol = datasets.sections(arg.dataset, arg.protocol)
  cfg.model = section(model_defaults)
  cfg.model.name = model
  return apply(cfg, overrides)


def with_seed(cfg: config_dict.ConfigDict, seed: int) -> config_dict.ConfigDict:
  """`cfg` for one seed: the run seed, the name suffixed "_seed<seed>", and under strong
  generalisation the split seed too (leave-one-out splits have none)."""
  cfg.seed = seed
  cfg.name = f"{cfg.name}_seed{seed}"
  if cfg.protocol.name == "strong_generalization":
    cfg.protocol.seed = seed
  return cfg

