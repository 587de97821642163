"""What the pipeline hands a model's `fit`, and what it gets back."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping, NamedTuple, Optional

from recsys_core.data.source import DataConfig
from recsys_core.data.types import Interactions
from recsys_core.scoring import Scorer


@dataclasses.dataclass(frozen=True)
class FitContext:
  """Everything a model may use to train; test data is never in it.

  Attributes:
    train: the training interactions (the item space every score must cover).
    validate: validation metrics of a fitted scorer ({"ndcg@10": ..., ...}); the model
      selects on `validate(scorer)[selection_metric]` (maximised).
    selection_metric: the key to select on.
    protocol: "leave_one_out" or "strong_generalization".
    run_dir: a folder of the model's own (checkpoints, metrics.jsonl): resumable runs
      continue from it.
    seed: the run's seed.
    data: the data section (for side information such as item attributes).
    split_fingerprint: the split's fingerprint (runs.check_data), so a model that reuses
      another run's model can check that it was trained on the same split.
  """
  train: Interactions
  validate: Callable[[Scorer], Mapping[str, float]]
  selection_metric: str
  protocol: str
  run_dir: str
  seed: int
  data: DataConfig
  split_fingerprint: str = ""


class Fitted(NamedTuple):
  """A trained model: the scorer to test, and what the result record should say of it
  (selected hyper-parameters, best step, training seconds, ...; JSON-ready values).
  companions: scorers the model is built on (a two-stage model's retrieval stage), tested on
  the same users and recorded as "<name>/<metric>", so the record pairs the model with them."""
  scorer: Scorer
  info: Mapping[str, Any]
  companions: Mapping[str, Scorer] = {}


def fit_selecting(update: Callable, state: Any, batch_fn: Callable[[int], Any],
                  ctx: FitContext, eval_fn: Callable[[Any], Mapping[str, float]], *,
                  num_steps: int, eval_every: int, checkpoint_every: int, log_every: int,
                  patience: int = 0, max_seconds: Optional[float] = None,
                  eval_online_params: bool = False, config: Any = None) -> Any:
  """`recsys_core.train.fit` as the gradient models use it: resumable in ctx.run_dir, the
  params of the best ctx.selection_metric (maximised) kept, early stop after `patience`
  evaluations without a gain (0: never), a wall-clock budget per call; each evaluation's
  record gets its "eval_seconds". Returns FitResult."""
  from recsys_core import train  # pylint: disable=g-import-not-at-top

  def timed_eval(params) -> dict[str, float]:
    start = time.perf_counter()
    out = dict(eval_fn(params))
    out["eval_seconds"] = time.perf_counter() - start
    return out

  loop = train.LoopConfig(
      num_steps=num_steps, log_every=log_every, eval_every=eval_every,
      checkpoint_every=checkpoint_every, best_metric=ctx.selection_metric, best_mode="max",
      patience=patience or None, progress_bar=False, max_seconds=max_seconds,
      eval_online_params=eval_online_params)
  return train.fit(update, state, batch_fn, loop, ctx.run_dir, eval_fn=timed_eval,
                   config=config)
