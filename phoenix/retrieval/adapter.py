"""Phoenix retrieval as a pipeline model (`--config.model.name=phoenix_retrieval`).

The user tower (causal transformer over the history) and the candidate tower are trained on
next-item prediction at every prefix of each user's training sequence, validated every
`train.eval_every_epochs` with the pipeline's selection metric, and the best evaluated
params (their parameter average with `optimizer.ema_decay > 0`) are tested.

Schedules are in epochs and become steps from the data: steps_per_epoch = training users //
batch size (every batch full; the batch is capped at the number of training users); the
warm-up is round(warmup_epochs * steps_per_epoch) steps (at least 1 when warmup_epochs > 0);
the cosine spans the rest of the run (decay_epochs 0) or decay_epochs; evaluation and
checkpoint intervals likewise; `min_steps` lengthens short runs on small data, `num_evals`
spreads a fixed number of evaluations over the run, and `ema_fraction` sizes the parameter
average to a fraction of the run. So a recipe runs unchanged on data of any size.

Shape glossary: B batch, S history length, I items, D embedding size.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import numpy as np

from phoenix import losses
from phoenix.authors import item_authors_for
from phoenix.embeddings import EmbeddingConfig
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.task import RetrievalTask
from recsys_core import train as train_lib
from recsys_core.config import check
from recsys_core.data import tables
from recsys_core.data.sequences import SequenceData
from recsys_core.models.base import FitContext, Fitted, fit_selecting

# Budgets and logging: they change how long a run goes, not what it computes.
RUN_ONLY = ("train.max_seconds", "train.log_every", "train.checkpoint_every_epochs",
            "train.eval_online_params")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The training schedule, in epochs (converted to steps from the data)."""
  batch_size: int = 128
  num_epochs: float = 50.0
  min_steps: int = 0                  # at least this many steps (small datasets: more epochs)
  warmup_epochs: float = 0.0
  decay_epochs: float = 0.0           # cosine length after warm-up; 0: the rest of the run
  eval_every_epochs: float = 1.0
  num_evals: int = 0                  # > 0: this many evaluations spread over the run instead
  ema_fraction: float = 0.0           # > 0: parameter average over this fraction of the run
                                      # (ema_decay = 1 - 1 / (fraction * steps))
  checkpoint_every_epochs: float = 1.0
  patience: int = 0                   # evaluations without a gain before stopping (0: never)
  max_seconds: Optional[float] = None  # wall-clock budget of one call, checked per evaluation
  log_every: int = 20                 # steps
  eval_online_params: bool = False    # with ema_decay > 0, also evaluate the online params

  def __post_init__(self):
    check(self.batch_size >= 1, "model.train.batch_size", self.batch_size, ">= 1")
    check(self.num_epochs > 0, "model.train.num_epochs", self.num_epochs, "> 0")
    for name in ("warmup_epochs", "decay_epochs"):
      check(getattr(self, name) >= 0, f"model.train.{name}", getattr(self, name), ">= 0")
    for name in ("eval_every_epochs", "checkpoint_every_epochs"):
      check(getattr(self, name) > 0, f"model.train.{name}", getattr(self, name), "> 0")
    check(self.min_steps >= 0, "model.train.min_steps", self.min_steps, ">= 0")
    check(self.num_evals >= 0, "model.train.num_evals", self.num_evals, ">= 0 (0: by epochs)")
    check(0.0 <= self.ema_fraction < 1.0, "model.train.ema_fraction", self.ema_fraction,
          "in [0, 1) (0: optimizer.ema_decay as given)")
    check(self.patience >= 0, "model.train.patience", self.patience, ">= 0 (0: never)")
    check(self.max_seconds is None or self.max_seconds >= 0, "model.train.max_seconds",
          self.max_seconds, ">= 0 or None")
    check(self.log_every >= 1, "model.train.log_every", self.log_every, ">= 1")


@dataclasses.dataclass(frozen=True)
class Config:
  """net: the model and loss (phoenix.retrieval.config.RetrievalConfig); optimizer: its
  warmup_steps / decay_steps stay 0 (derived from train.*_epochs); author: the item
  attribute(s) used as the release's author feature ("none", or see item_authors_for)."""
  # The release's model sizes with the training defaults of every committed run: small
  # table init (1.0 barely moves under Adam), a 2^15-row item table, SASRec's read-out.
  net: RetrievalConfig = RetrievalConfig(
      emb=EmbeddingConfig(item_table_size=1 << 15, init_stddev=0.05), pooling="last")
  optimizer: train_lib.OptimizerConfig = train_lib.OptimizerConfig(b2=0.98)
  train: TrainConfig = TrainConfig()
  author: str = "none"

  def __post_init__(self):
    for name in ("warmup_steps", "decay_steps"):
      value = getattr(self.optimizer, name)
      check(value == 0, f"model.optimizer.{name}", value,
            "0: set model.train.warmup_epochs / decay_epochs instead (steps follow the data)")
    if self.train.ema_fraction:
      check(self.optimizer.ema_decay == 0, "model.optimizer.ema_decay", self.optimizer.ema_decay,
            "0 when model.train.ema_fraction sets the average from the run length")
    check(self.net.loss in ("full", "sampled"), "model.net.loss", self.net.loss,
          "'full' or 'sampled'")
    check(self.net.history_len >= 1, "model.net.history_len", self.net.history_len, ">= 1")
    fields = 1 if self.author == "none" else len(self.author.split("+"))
    check(self.net.emb.num_author_hashes % fields == 0, "model.net.emb.num_author_hashes",
          self.net.emb.num_author_hashes, f"a multiple of the {fields} author field(s)")


@dataclasses.dataclass(frozen=True)
class Schedule:
  """The epoch schedule in steps for a dataset."""
  steps_per_epoch: int
  num_steps: int
  warmup_steps: int
  decay_steps: int
  eval_every: int
  checkpoint_every: int
  ema_decay: Optional[float]          # from ema_fraction; None: the optimizer's own


def schedule(tc: TrainConfig, per_epoch: int) -> Schedule:
  """Steps from epochs (see the module docstring) at `per_epoch` steps per epoch."""
  steps = lambda epochs: max(1, int(round(epochs * per_epoch)))
  num_steps = max(steps(tc.num_epochs), tc.min_steps)
  warmup = steps(tc.warmup_epochs) if tc.warmup_epochs else 0
  decay = steps(tc.decay_epochs) if tc.decay_epochs else max(1, num_steps - warmup)
  eval_every = (max(1, num_steps // tc.num_evals) if tc.num_evals
                else steps(tc.eval_every_epochs))
  ema = (1.0 - 1.0 / max(1.0, tc.ema_fraction * num_steps)) if tc.ema_fraction else None
  return Schedule(per_epoch, num_steps, warmup, decay, eval_every,
                  steps(tc.checkpoint_every_epochs), ema)


def scheduled_optimizer(opt: train_lib.OptimizerConfig, sched: Schedule):
  """The optimizer of `opt` with the schedule's warm-up, cosine length (decay="cosine") and,
  when the schedule sizes it, parameter average."""
  opt = dataclasses.replace(opt, warmup_steps=sched.warmup_steps,
                            decay_steps=sched.decay_steps if opt.decay == "cosine" else 0)
  if sched.ema_decay is not None:
    opt = dataclasses.replace(opt, ema_decay=sched.ema_decay)
  return train_lib.make_optimizer(opt)


def item_authors(author: str, ctx: FitContext) -> tuple[Optional[np.ndarray], dict]:
  """[I] (or [I, F]) author ids per item for `author`, from the dataset's attribute file:
  a named dataset's own, or for a user's file (data.name="file") the columns of
  data.attributes_path that `author` names ("brand", or several joined with "+")."""
  if author == "none":
    return None, {"author": "shared (one author)"}
  if ctx.data.name == "file":
    if ctx.data.attributes_path is None:
      raise ValueError(f"model.author={author!r} needs data.attributes_path (a table of item "
                       "attributes) for a user's own file")
    columns = author.split("+")
    attr = tables.load_item_attribute_table(ctx.data.attributes_path, ctx.train.item_ids,
                                            columns, item_col=ctx.data.item_col)
    info = {"author": author, "unknown_fraction": float(np.mean(attr == 0))}
    return (attr[:, 0] if len(columns) == 1 else attr), info
  return item_authors_for(ctx.data.name, author, ctx.train.item_ids, ctx.data.dir)


def fit(config: Config, ctx: FitContext) -> Fitted:
  """Trains on ctx.train (resumable in ctx.run_dir) and returns the selected model."""
  tc = config.train
  data = SequenceData.from_interactions(ctx.train)
  authors, author_info = item_authors(config.author, ctx)
  task = RetrievalTask(config.net, data, data.lengths(), authors, tc.batch_size, ctx.seed)
  if not len(task.train_users):
    raise ValueError(f"{ctx.train.source}: no user has 2 or more training items")
  batch_size = min(tc.batch_size, len(task.train_users))
  batcher = train_lib.EpochBatcher(len(task.train_users), batch_size, ctx.seed)
  sched = schedule(tc, batcher.steps_per_epoch)
  optimizer = scheduled_optimizer(config.optimizer, sched)
  params = task.fns.init(jax.random.PRNGKey(ctx.seed), task.example_batch()["batch"])
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(ctx.seed + 1))
  update = train_lib.make_update_fn(task.loss_fn, optimizer, nan_policy="raise")

  def eval_fn(p) -> dict[str, float]:
    out = dict(ctx.validate(task.scorer(p)))
    out["temperature"] = float(losses.temperature_from_log(p["loss"]["log_temperature"]))
    return out

  result = fit_selecting(
      update, state, task.batch_fn(batcher), ctx, eval_fn, num_steps=sched.num_steps,
      eval_every=sched.eval_every, checkpoint_every=sched.checkpoint_every,
      log_every=tc.log_every, patience=tc.patience, max_seconds=tc.max_seconds,
      eval_online_params=tc.eval_online_params, config=dataclasses.asdict(config))
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  reason = result.end_reason
  info: dict[str, Any] = {
      "val": {k: v for k, v in (result.best_metrics or {}).items()},
      "best_step": result.best_step, "final_step": int(result.state.step),
      "steps_per_epoch": sched.steps_per_epoch,
      "epochs": int(result.state.step) / sched.steps_per_epoch,
      "best_epoch": (result.best_step or 0) / sched.steps_per_epoch,
      "schedule": dataclasses.asdict(sched), "batch_size": batch_size, "params": n_params,
      "train_seconds": round(result.train_seconds, 1),
      "stopped": "num_epochs" if reason in (None, "num_steps") else reason,
      "author_info": author_info,
      "eval_history": [{k: r[k] for k in r if k in ("step", ctx.selection_metric, "hr@10",
                                                     "ndcg@10", "temperature")}
                       for r in result.history if r["event"] == "eval"]}
  return Fitted(task.scorer(result.selected_params), info)
