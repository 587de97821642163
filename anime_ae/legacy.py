"""The seed's OLD architecture, as a baseline for the two-head autoencoder (issue #6, ablation 4).

The seed (lines 1-12 of shared/seeds/000_*.txt) describes the previous deployed model:
a denoising autoencoder WITHOUT a bottleneck, two tanh hidden layers all of the same size, one
output, mean-squared error weighted much more heavily on the items of the full (pre-dropout)
profile and additionally on less popular items, and "popularity attenuation" at ranking time.
Here, with its sizes configurable (`LegacyConfig`):

  input   x [B, I]: the rating of each input item on the seed's old manual scale (1-10 -> [-1, 1],
          0 at 6.5 stars; = `RatingTransform.absolute`, i.e. the hybrid transform with mix weight
          w_u = 0, tau -> infinity), 0 for items not in the (dropped-out) input. No presence flags.
  model   h1 = tanh(Dense(H)(x)); h2 = tanh(Dense(H)(h1)); y = Dense(I)(h2)     (linear output)
  target  t [B, I]: the full profile's values, 0 elsewhere.
  weights w_bi = q_i * (profile_weight if i is in profile b else 1),
          q_i = (c_i + 1)^-popularity_alpha / mean_j (c_j + 1)^-popularity_alpha,
          c_i = number of training profiles containing item i (q has mean 1 over the items).
  loss    L = sum_bi w_bi (y_bi - t_bi)^2 / sum_bi w_bi          (weighted mean squared error)
  ranking score_i = y_i - attenuation * log p_i,   p_i = (c_i + 1) / (U + 1)
          (U training profiles); attenuation = 0 is the identity, larger values push popular
          items down relative to rare ones.

Input dropout, the optimiser, batches and the training loop are the two-head model's
(`AEConfig.data`, `AEConfig.train`, `anime_ae.training.SparseProfileBatches`,
`recsys_core.train.fit`), so only the architecture, loss and ranking differ.
`LegacyScorer` implements `recsys_core.scoring.Scorer` (presence-style ranking scores), so it is
evaluated by the same evaluator on the same splits as `AutoencoderScorer`.

Shape glossary: B batch (profiles), I items (corpus), H hidden, U training profiles.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from anime_ae.config import AEConfig
from anime_ae.profiles import SparseProfiles, build_profiles, dense_batch, filter_profiles
from anime_ae.ratings import RatingTransform
from anime_ae.training import SparseProfileBatches, TrainResult, densify, fit_for_steps
from recsys_core.data.types import Interactions
from recsys_core.train import init_train_state, make_optimizer, make_update_fn

log = logging.getLogger(__name__)

# A mix weight var / (var + tau^2) of 0 to float precision: the hybrid transform reduces to
# the absolute (old manual) mapping.
_ABSOLUTE_TAU = 1e9


@dataclasses.dataclass(frozen=True)
class LegacyConfig:
  """The old model's architecture, loss weights and ranking attenuation."""
  hidden_dim: int = 256
  num_layers: int = 2            # tanh hidden layers, all hidden_dim wide
  profile_weight: float = 10.0   # loss weight of full-profile entries relative to the rest
  popularity_alpha: float = 0.5  # per-item loss weight (count + 1)^-alpha, mean 1; 0 = off
  attenuation: float = 0.0       # ranking: score - attenuation * log popularity; 0 = identity

  def __post_init__(self):
    if self.hidden_dim < 1 or self.num_layers < 1:
      raise ValueError(f"hidden_dim and num_layers must be >= 1, got {self.hidden_dim}, "
                       f"{self.num_layers}")
    if self.profile_weight <= 0 or self.popularity_alpha < 0:
      raise ValueError("profile_weight must be > 0 and popularity_alpha >= 0")

  def make(self, num_items: int) -> hk.Transformed:
    """haiku-transformed forward fn(x [B, I]) -> y [B, I] (deterministic; no rng needed)."""
    cfg = self

    def forward(x):
      h = x
      for k in range(cfg.num_layers):
        h = jnp.tanh(hk.Linear(cfg.hidden_dim, name=f"hidden_{k}")(h))   # [B, H]
      return hk.Linear(num_items, name="output")(h)                     # [B, I]

    return hk.without_apply_rng(hk.transform(forward))


def item_counts(profiles: SparseProfiles) -> np.ndarray:
  """[I] number of profiles containing each item."""
  return np.bincount(profiles.items.astype(np.int64), minlength=profiles.num_items)


def popularity_weights(counts: np.ndarray, alpha: float) -> np.ndarray:
  """[I] float32 q_i = (c_i + 1)^-alpha normalised to mean 1 (all ones for alpha = 0)."""
  q = (np.asarray(counts, np.float64) + 1.0) ** -float(alpha)
  return (q / q.mean()).astype(np.float32)


def log_popularity(counts: np.ndarray, num_profiles: int) -> np.ndarray:
  """[I] float32 log p_i, p_i = (c_i + 1) / (U + 1)."""
  return np.log((np.asarray(counts, np.float64) + 1.0) / (num_profiles + 1.0)).astype(np.float32)


def weighted_mse(pred: jax.Array, target: jax.Array, presence: jax.Array,
                 item_weight: jax.Array, profile_weight: float) -> jax.Array:
  """sum w (pred - target)^2 / sum w with w = item_weight[i] * (profile_weight on profile
  entries, 1 elsewhere). pred, target, presence [B, I]; item_weight [I] -> []."""
  w = item_weight[None, :] * (1.0 + (profile_weight - 1.0) * presence)   # [B, I]
  return (w * (pred - target) ** 2).sum() / jnp.maximum(w.sum(), 1e-12)


def attenuate(scores: np.ndarray, log_pop: np.ndarray, attenuation: float) -> np.ndarray:
  """Ranking scores [..., I] minus attenuation * log popularity [I] (identity for 0)."""
  if attenuation == 0:
    return scores
  return scores - attenuation * np.asarray(log_pop, scores.dtype)


def absolute_transform(ae_config: AEConfig, ratings: Optional[np.ndarray]) -> RatingTransform:
  """The seed's old manual mapping as a RatingTransform (scale as configured / inferred)."""
  return dataclasses.replace(ae_config.ratings, tau=_ABSOLUTE_TAU).make(ratings)


def make_loss_fn(transformed: hk.Transformed, config: LegacyConfig, item_weight: np.ndarray,
                 sparse_shape: tuple[int, int]):
  """loss_fn(params, rng, sparse batch) -> (loss, aux) for recsys_core.train.make_update_fn."""
  q = jnp.asarray(item_weight)

  def loss_fn(params, rng, batch):
    del rng  # the old model has no noise; input dropout is in the batch
    batch = densify(batch, *sparse_shape)
    y = transformed.apply(params, batch["x_rating"])
    loss = weighted_mse(y, batch["rating"], batch["presence"], q, config.profile_weight)
    return loss, {"loss_mse": loss}

  return loss_fn


LegacyResult = TrainResult     # (params, history, seconds, best_step)


def train_legacy(profiles: SparseProfiles, ae_config: AEConfig, config: LegacyConfig,
                 workdir: Optional[str] = None,
                 eval_fn: Optional[Callable[[Any], dict]] = None,
                 best_metric: Optional[str] = None) -> LegacyResult:
  """Trains the old model on `profiles` with the loop, batches and optimiser of `ae_config`."""
  tc = ae_config.train
  num_items = profiles.num_items
  transformed = config.make(num_items)
  params = transformed.init(jax.random.PRNGKey(tc.seed), jnp.zeros((1, num_items), jnp.float32))
  optimizer = make_optimizer(tc.make())
  state = init_train_state(params, optimizer, jax.random.PRNGKey(tc.seed + 1))
  batch_fn = SparseProfileBatches(profiles, ae_config)
  q = popularity_weights(item_counts(profiles), config.popularity_alpha)
  loss_fn = make_loss_fn(transformed, config, q, (batch_fn.batch_size, num_items))
  return fit_for_steps(make_update_fn(loss_fn, optimizer), state, batch_fn, tc, workdir,
                       eval_fn, best_metric,
                       {"ae": ae_config.to_dict(), "legacy": dataclasses.asdict(config)},
                       tmp_prefix="anime_ae_legacy_")


class LegacyScorer:
  """`recsys_core.scoring.Scorer` for the old model: fit on training interactions, score inputs.

  score = the model output on the seed's old rating scale, minus `attenuation` x log item
  popularity (training profiles). `attenuation` is an attribute so that a caller can pick it
  on validation after fitting.
  """

  def __init__(self, ae_config: AEConfig, config: LegacyConfig = LegacyConfig(),
               name: str = "anime_ae_legacy", workdir: Optional[str] = None):
    self.ae_config = ae_config
    self.config = config
    self.attenuation = config.attenuation
    self.name = name
    self.workdir = workdir
    self.params = None
    self.transform: Optional[RatingTransform] = None
    self.log_popularity: Optional[np.ndarray] = None
    self.history: list[dict] = []
    self.best_step: Optional[int] = None
    self._forward = None

  def fit(self, train: Interactions,
          validate: Optional[Callable[["LegacyScorer"], dict]] = None,
          best_metric: Optional[str] = None) -> "LegacyScorer":
    """Trains on `train`; with `validate(scorer) -> metrics` and `best_metric` (maximised),
    keeps the params of the best evaluation (every ae_config.train.eval_every steps)."""
    transform = absolute_transform(self.ae_config, train.ratings)
    profiles = build_profiles(train, transform)
    keep = filter_profiles(train, self.ae_config.data.min_ratings)
    keep = keep[profiles.lengths()[keep] > 0]
    if len(keep) == 0:
      raise ValueError(f"{train.source}: no profile has >= {self.ae_config.data.min_ratings} "
                       "ratings")
    profiles = profiles.subset(keep)
    log.info("%s: training on %d profiles x %d items", self.name, profiles.num_profiles,
             profiles.num_items)
    log_pop = log_popularity(item_counts(profiles), profiles.num_profiles)
    eval_fn = None
    if validate is not None:
      eval_fn = lambda params: validate(self._with(params, transform, log_pop))
    result = train_legacy(profiles, self.ae_config, self.config, self.workdir, eval_fn,
                          best_metric)
    self.history, self.best_step = result.history, result.best_step
    self.params, self.transform, self.log_popularity = result.params, transform, log_pop
    return self

  def _with(self, params, transform, log_pop) -> "LegacyScorer":
    other = LegacyScorer(self.ae_config, self.config, self.name)
    other.params, other.transform, other.log_popularity = params, transform, log_pop
    other.attenuation = self.attenuation
    other._forward = self._forward = self._forward or _jitted(self.config, len(log_pop))
    return other

  def with_attenuation(self, attenuation: float) -> "LegacyScorer":
    """A copy sharing the fitted params, ranking with another attenuation factor."""
    other = self._with(self.params, self.transform, self.log_popularity)
    other.attenuation = float(attenuation)
    return other

  def outputs(self, inputs: Interactions, batch_size: int = 512) -> np.ndarray:
    """[U_in, I] raw model outputs (no attenuation) for each input user's profile."""
    if self.params is None:
      raise RuntimeError(f"{self.name}: fit before scoring")
    num_items = len(self.log_popularity)
    if inputs.num_items != num_items:
      raise ValueError(f"{inputs.source}: {inputs.num_items} items, the model has {num_items}")
    if self._forward is None:
      self._forward = _jitted(self.config, num_items)
    profiles = build_profiles(inputs, self.transform)
    outs = []
    for s in range(0, profiles.num_profiles, batch_size):
      idx = np.arange(s, min(s + batch_size, profiles.num_profiles))
      x = dense_batch(profiles, idx)["x_rating"]
      padded = max(8, 1 << max(len(idx) - 1, 0).bit_length())  # few compiled shapes
      x = np.pad(x, ((0, padded - len(idx)), (0, 0)))
      outs.append(np.asarray(self._forward(self.params, x))[:len(idx)])
    if not outs:
      return np.zeros((0, num_items), np.float32)
    return np.concatenate(outs).astype(np.float32)

  def score(self, inputs: Interactions) -> np.ndarray:
    return attenuate(self.outputs(inputs), self.log_popularity, self.attenuation)


def _jitted(config: LegacyConfig, num_items: int):
  tf = config.make(num_items)
  return jax.jit(tf.apply)
