"""What the pipeline hands a model's `fit`, and what it gets back."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

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
  """
  train: Interactions
  validate: Callable[[Scorer], Mapping[str, float]]
  selection_metric: str
  protocol: str
  run_dir: str
  seed: int
  data: DataConfig


class Fitted(NamedTuple):
  """A trained model: the scorer to test, and what the result record should say of it
  (selected hyper-parameters, best step, training seconds, ...; JSON-ready values)."""
  scorer: Scorer
  info: Mapping[str, Any]
