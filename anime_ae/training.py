"""Training the autoencoder on sparse profiles.

The batch of step t is a pure function of (seed, t): profile indices from
`recsys_core.train.data.EpochBatcher`, input dropout drawn from `default_rng([seed, 1, t])`,
so a resumed run sees exactly the batches of an uninterrupted one. By default
(train.input_pipeline="sparse") the host sends only the batch's profile entries and the
dense [B, I] arrays are built inside the jitted step (`densify`).

Shape glossary: B batch, I items, C entry capacity of a sparse batch. The loop, checkpoints and
metrics.jsonl are `recsys_core.train.fit`'s.
"""
from __future__ import annotations

import contextlib
import dataclasses
import tempfile
from typing import Any, Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from anime_ae.config import AEConfig
from anime_ae.profiles import SparseProfiles, dense_batch
from recsys_core.train import EpochBatcher, LoopConfig, fit, init_train_state, make_optimizer
from recsys_core.train import make_update_fn


def make_loss_fn(transformed: hk.Transformed, config: AEConfig,
                 sparse_shape: Optional[tuple[int, int]] = None):
  """loss_fn(params, rng, batch) -> (loss, aux) in training mode (noise on).

  sparse_shape=(B, I): `batch` is a `SparseProfileBatches` batch, densified in the step.
  """
  loss = config.loss.make()

  def loss_fn(params, rng, batch):
    if sparse_shape is not None:
      batch = densify(batch, *sparse_shape)
    out = transformed.apply(params, rng, batch["x_rating"], batch["x_presence"], True)
    return loss(out, batch)

  return loss_fn


class ProfileBatches:
  """batch_fn(step) -> dense training batch of `profiles` (deterministic in (seed, step))."""

  def __init__(self, profiles: SparseProfiles, config: AEConfig):
    self.profiles = profiles
    self.dropout = config.data.make()
    self.seed = config.train.seed
    self.batch_size = min(config.train.batch_size, profiles.num_profiles)
    self.batcher = EpochBatcher(profiles.num_profiles, self.batch_size, self.seed)

  def __call__(self, step: int):
    idx = self.batcher.indices(step)
    rng = np.random.default_rng([self.seed, 1, int(step)])
    return dense_batch(self.profiles, idx, self.dropout, rng)


class SparseProfileBatches(ProfileBatches):
  """batch_fn(step) -> the entries of ProfileBatches(step), padded to a fixed capacity C.

  Returns rows [C] int32 (B where padding), items [C] int32, values [C] float32,
  in_loss [C] float32, kept [C] float32 (1 where the entry survives input dropout).
  `densify(batch, B, I)` rebuilds ProfileBatches(step) exactly; C is the entry count of
  the B longest profiles, so no batch overflows and the jitted shapes never change.
  """

  def __init__(self, profiles: SparseProfiles, config: AEConfig):
    super().__init__(profiles, config)
    lens = np.sort(profiles.lengths())[::-1]
    self.capacity = int(lens[:self.batch_size].sum())

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    p = self.profiles
    idx = self.batcher.indices(step)
    rng = np.random.default_rng([self.seed, 1, int(step)])   # as ProfileBatches
    lens = p.lengths()[idx]
    total = int(lens.sum())
    starts = np.repeat(p.offsets[idx] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    rows = starts + np.arange(total)                            # entry positions in p
    keep = self.dropout.keep_mask(rng, lens)
    c = self.capacity
    out = {"rows": np.full(c, len(idx), np.int32), "items": np.zeros(c, np.int32),
           "values": np.zeros(c, np.float32), "in_loss": np.zeros(c, np.float32),
           "kept": np.zeros(c, np.float32)}
    out["rows"][:total] = np.repeat(np.arange(len(idx), dtype=np.int32), lens)
    out["items"][:total] = p.items[rows]
    out["values"][:total] = p.values[rows]
    out["in_loss"][:total] = p.in_loss[rows]
    out["kept"][:total] = keep
    return out


def densify(sparse: dict, batch: int, num_items: int) -> dict[str, jax.Array]:
  """SparseProfileBatches entries [C] -> the dense batch of `dense_batch` ([B, I] each).

  Padding entries carry row index B and are dropped by the scatter.
  """
  r, c = sparse["rows"], sparse["items"]

  def scatter(v):
    return jnp.zeros((batch, num_items), jnp.float32).at[r, c].set(v, mode="drop")

  kept = sparse["kept"]
  return {"x_rating": scatter(sparse["values"] * kept), "x_presence": scatter(kept),
          "presence": scatter(jnp.ones_like(sparse["values"])),
          "rating": scatter(sparse["values"]), "rating_mask": scatter(sparse["in_loss"])}


def init_params(transformed: hk.Transformed, num_items: int, seed: int):
  x = jnp.zeros((1, num_items), jnp.float32)
  return transformed.init(jax.random.PRNGKey(seed), x, x, True)


@dataclasses.dataclass
class TrainResult:
  params: Any              # the best params (by the validation metric) or the final ones
  history: list[dict]      # the metrics.jsonl records ("train", "eval", "end" events)
  seconds: float           # training wall time, summed over resumed fit calls
  best_step: Optional[int] = None


def train(profiles: SparseProfiles, config: AEConfig, workdir: Optional[str] = None,
          eval_fn: Optional[Callable[[Any], dict]] = None,
          best_metric: Optional[str] = None) -> TrainResult:
  """Trains with `recsys_core.train.fit` for config.train.steps.

  Checkpoints (orbax, resumable) and metrics.jsonl (raw losses, learned uncertainty weights,
  lr scale, eval metrics) go to `workdir` (a temporary folder when None). With `eval_fn` and
  `best_metric` (a key of eval_fn's dict, maximised), the best evaluated params are returned.
  """
  tc = config.train
  transformed = config.model.make(profiles.num_items)
  optimizer = make_optimizer(tc.make())
  params = init_params(transformed, profiles.num_items, tc.seed)
  state = init_train_state(params, optimizer, jax.random.PRNGKey(tc.seed + 1))
  if tc.input_pipeline == "sparse":
    batch_fn = SparseProfileBatches(profiles, config)
    loss_fn = make_loss_fn(transformed, config, (batch_fn.batch_size, profiles.num_items))
  else:
    batch_fn = ProfileBatches(profiles, config)
    loss_fn = make_loss_fn(transformed, config)
  return fit_for_steps(make_update_fn(loss_fn, optimizer), state, batch_fn, tc, workdir,
                       eval_fn, best_metric, config.to_dict())


def fit_for_steps(update, state, batch_fn, tc, workdir: Optional[str],
                  eval_fn: Optional[Callable[[Any], dict]], best_metric: Optional[str],
                  config: dict, tmp_prefix: str = "anime_ae_") -> TrainResult:
  """`recsys_core.train.fit` for tc.steps (a TrainConfig) with the autoencoders' loop
  settings; a temporary workdir when None; the best params when eval_fn/best_metric.

  Two checkpoints are kept, so a damaged newest one leaves one to fall back to (`fit`
  refuses to restart from step 0 when none is intact)."""
  loop = LoopConfig(num_steps=tc.steps, log_every=max(1, min(tc.log_every, tc.steps)),
                    eval_every=tc.eval_every, checkpoint_every=tc.checkpoint_every or tc.steps,
                    keep_checkpoints=2, best_metric=best_metric if eval_fn else None,
                    progress_bar=False)
  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix=tmp_prefix))
    res = fit(update, state, batch_fn, loop, workdir, eval_fn=eval_fn, config=config)
  params = res.selected_params
  return TrainResult(params, res.history, res.train_seconds, res.best_step)
