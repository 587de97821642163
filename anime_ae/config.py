"""Typed configuration of the autoencoder, filled from the ml_collections experiment config.

`AEConfig` is the model Config of the pipeline (`config.model` of
experiments/configs/anime_ae.py, less its `name`; the pipeline builds it with
`recsys_core.config.from_dict`). `AEConfig.from_config_dict(cfg)` reads the sections `model`,
`loss`, `ratings`, `data`, `train` and `recommend` of an `ml_collections.ConfigDict` such as
`get_config("recipe=default").model`; each section becomes a frozen dataclass whose
`.make(...)` builds the piece it configures. Unknown keys are errors, so a typo in
`--config.model.model.hiden_dim` fails loudly. The defaults are the seed's values, except
`train.steps` (the seed trained 3000 steps: recipe=seed).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import numpy as np

from anime_ae.losses import LossConfig
from anime_ae.model import ModelConfig
from anime_ae.profiles import InputDropout
from anime_ae.ratings import RatingTransform, infer_scale
from anime_ae.recommend import RecommendConfig
from recsys_core.config import check
from recsys_core.train.optim import OptimizerConfig


@dataclasses.dataclass(frozen=True)
class RatingsConfig:
  """The hybrid rating transform (anime_ae.ratings); lo/hi None = inferred from the data."""
  lo: Optional[float] = None
  hi: Optional[float] = None
  neutral: Optional[float] = None
  tau: Optional[float] = None
  z_clip: float = 2.0
  std_floor: Optional[float] = None
  dropped_mode: str = "fixed"
  dropped_rating: float = 2.0
  dropped_k: float = 1.5
  dropped_in_loss: bool = True

  def make(self, ratings: Optional[np.ndarray] = None) -> RatingTransform:
    lo, hi = self.lo, self.hi
    if lo is None or hi is None:
      dlo, dhi = infer_scale(ratings)
      lo = dlo if lo is None else lo
      hi = dhi if hi is None else hi
    # Same field names as RatingTransform: a field added to one and not the other fails here.
    return RatingTransform(**{**dataclasses.asdict(self), "lo": lo, "hi": hi})


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Profile filters and input dropout.

  min_ratings: keep profiles with at least this many explicit ratings (seed: 30).
  keep_statuses: watch statuses to keep; a no-op for data without a status column (the anime
    subsample and MovieLens have none).
  dropout_rate / dropout_spread: input dropout fraction rate * (1 + U(-spread, spread)).
  treat_unrated_as_dropped: mark every "watched, not rated" row as dropped, so that it gets
    the `ratings.dropped_mode` score (and enters the rating loss per `dropped_in_loss`)
    instead of the user's mean. An ablation device for data without a watch-status column
    (the anime subsample), where nothing is marked dropped and `dropped_mode` is otherwise a
    no-op (experiments/ablate_anime_ae.py, ablation "dropped"). Used by `AutoencoderScorer`
    for training and scored inputs alike. Default False: the seed's behaviour.
  """
  min_ratings: int = 30
  keep_statuses: Optional[tuple] = None
  dropout_rate: float = 0.4
  dropout_spread: float = 0.4
  dropout_kind: str = "profile"      # "profile" (the seed's) | "bernoulli" (Mult-DAE's)
  treat_unrated_as_dropped: bool = False

  def make(self) -> InputDropout:
    return InputDropout(self.dropout_rate, self.dropout_spread, self.dropout_kind)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Adam with a low learning rate and reduce-on-plateau, for a fixed number of steps."""
  steps: int = 2000
  batch_size: int = 256
  learning_rate: float = 5e-4
  weight_decay: float = 0.0    # > 0: AdamW (decoupled weight decay; not in the seed)
  clip_norm: Optional[float] = None
  # > 0: validate, select and return an exponential moving average of the params (kept in
  # the optimizer state; see recsys_core.train.optim.params_ema). Not in the seed.
  ema_decay: float = 0.0
  plateau: bool = True
  plateau_factor: float = 0.5
  plateau_patience: int = 10
  plateau_cooldown: int = 0
  plateau_accumulation_size: int = 25
  plateau_min_scale: float = 0.01
  seed: int = 0
  log_every: int = 100
  eval_every: int = 0          # 0 = validate only at the end
  checkpoint_every: int = 0    # 0 = only the final checkpoint
  # "sparse": the host sends each batch's profile entries (padded to a fixed capacity) and
  # the [B, I] arrays are scattered inside the jitted step (13x fewer bytes per batch at the
  # full config; experiments/results/bench_input_pipeline_cpu.json). "dense": the host
  # builds the [B, I] arrays in numpy. Both give bit-identical batches.
  input_pipeline: str = "sparse"

  def __post_init__(self):
    if self.input_pipeline not in ("sparse", "dense"):
      raise ValueError(f"train.input_pipeline must be 'sparse' or 'dense', "
                       f"got {self.input_pipeline!r}")
    for name in ("steps", "batch_size", "log_every"):
      check(getattr(self, name) >= 1, f"train.{name}", getattr(self, name), ">= 1")
    for name in ("eval_every", "checkpoint_every"):
      check(getattr(self, name) >= 0, f"train.{name}", getattr(self, name), ">= 0 (0: at the end)")
    check(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "> 0")
    check(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, ">= 0")

  def make(self) -> OptimizerConfig:
    return OptimizerConfig(name="adamw" if self.weight_decay else "adam",
                           learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                           clip_norm=self.clip_norm, ema_decay=self.ema_decay,
                           plateau=self.plateau, plateau_factor=self.plateau_factor,
                           plateau_patience=self.plateau_patience,
                           plateau_cooldown=self.plateau_cooldown,
                           plateau_accumulation_size=self.plateau_accumulation_size,
                           plateau_min_scale=self.plateau_min_scale)


@dataclasses.dataclass(frozen=True)
class AEConfig:
  model: ModelConfig = ModelConfig()
  loss: LossConfig = LossConfig()
  ratings: RatingsConfig = RatingsConfig()
  data: DataConfig = DataConfig()
  train: TrainConfig = TrainConfig()
  recommend: RecommendConfig = RecommendConfig()

  @classmethod
  def from_config_dict(cls, cfg: Any) -> "AEConfig":
    """Builds the typed config from a ConfigDict / mapping with the six sections."""
    sections = {}
    for field in dataclasses.fields(cls):
      section = _get(cfg, field.name)
      sections[field.name] = _build(type(field.default), section, field.name)
    return cls(**sections)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _get(cfg: Any, key: str):
  if cfg is None:
    return None
  if isinstance(cfg, Mapping):
    return cfg.get(key)
  return getattr(cfg, key, None) if key in cfg else None


def _build(dc_type, section: Any, where: str):
  if section is None:
    return dc_type()
  values = section.to_dict() if hasattr(section, "to_dict") else dict(section)
  names = {f.name for f in dataclasses.fields(dc_type)}
  unknown = sorted(set(values) - names)
  if unknown:
    raise ValueError(f"config.{where}: unknown keys {unknown}; known: {sorted(names)}")
  values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
  return dc_type(**values)
