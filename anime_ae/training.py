"""Training the autoencoder on sparse profiles.

The batch of step t is a pure function of (seed, t): profile indices from
`recsys_core.train.data.EpochBatcher`, input dropout drawn from `default_rng([seed, 1, t])`,
so a resumed run sees exactly the batches of an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from anime_ae.config import AEConfig
from anime_ae.profiles import SparseProfiles, dense_batch
from recsys_core.train.data import EpochBatcher
from recsys_core.train.optim import make_optimizer
from recsys_core.train.state import TrainState, init_train_state
from recsys_core.train.update import check_finite, make_update_fn

log = logging.getLogger(__name__)


def make_loss_fn(transformed: hk.Transformed, config: AEConfig):
  """loss_fn(params, rng, batch) -> (loss, aux) in training mode (noise on)."""
  loss = config.loss.make()

  def loss_fn(params, rng, batch):
    out = transformed.apply(params, rng, batch["x_rating"], batch["x_presence"], True)
    return loss(out, batch)

  return loss_fn


class ProfileBatches:
  """batch_fn(step) -> dense training batch of `profiles` (deterministic in (seed, step))."""

  def __init__(self, profiles: SparseProfiles, config: AEConfig):
    self.profiles = profiles
    self.dropout = config.data.make()
    self.seed = config.train.seed
    bs = min(config.train.batch_size, profiles.num_profiles)
    self.batcher = EpochBatcher(profiles.num_profiles, bs, self.seed)

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    idx = self.batcher.indices(step)
    rng = np.random.default_rng([self.seed, 1, int(step)])
    return dense_batch(self.profiles, idx, self.dropout, rng)


def init_params(transformed: hk.Transformed, num_items: int, seed: int):
  x = jnp.zeros((1, num_items), jnp.float32)
  return transformed.init(jax.random.PRNGKey(seed), x, x, True)


@dataclasses.dataclass
class TrainResult:
  params: Any
  history: list[dict]
  seconds: float


def train(profiles: SparseProfiles, config: AEConfig,
          on_log: Optional[Callable[[int, dict], None]] = None,
          validate: Optional[Callable[[Any], dict]] = None) -> TrainResult:
  """Trains for config.train.steps; returns the final params and the logged metrics.

  on_log(step, metrics) is called every `log_every` steps (and at the end) with the averaged
  training metrics (raw losses, learned weights, lr scale) and, when `validate` is given and
  eval_every divides the step, its metrics prefixed "valid/".
  """
  tc = config.train
  transformed = config.model.make(profiles.num_items)
  optimizer = make_optimizer(tc.make())
  params = init_params(transformed, profiles.num_items, tc.seed)
  state: TrainState = init_train_state(params, optimizer, jax.random.PRNGKey(tc.seed + 1))
  update = make_update_fn(make_loss_fn(transformed, config), optimizer)
  batch_fn = ProfileBatches(profiles, config)
  history, acc = [], {}
  start = time.perf_counter()
  for step in range(tc.steps):
    state, metrics = update(state, batch_fn(step))
    acc.setdefault("_n", 0)
    acc["_n"] += 1
    for k, v in metrics.items():
      acc[k] = acc.get(k, 0.0) + v
    last = step + 1 == tc.steps
    if (tc.log_every and (step + 1) % tc.log_every == 0) or last:
      check_finite(metrics, step)
      n = acc.pop("_n")
      row = {k: float(np.asarray(v)) / n for k, v in acc.items()}
      row["step"] = step + 1
      row["seconds"] = time.perf_counter() - start
      if validate is not None and ((tc.eval_every and (step + 1) % tc.eval_every == 0) or last):
        row.update({f"valid/{k}": v for k, v in validate(state.params).items()})
      history.append(row)
      if on_log is not None:
        on_log(step + 1, row)
      acc = {}
  return TrainResult(state.params, history, time.perf_counter() - start)
