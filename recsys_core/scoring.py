"""The one scorer interface through which every model and baseline is evaluated.

A scorer is fitted on training interactions and then, given some users' input
interactions (fold-in items for protocol A, the history for protocol B), returns a score
for every item. Evaluation code (`recsys_core.evaluation`) never looks inside a model.

Shape glossary: U_in = users in the input, I = items (the training item space).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from recsys_core.data.types import Interactions


@runtime_checkable
class Scorer(Protocol):
  """Anything that can be fitted and can score all items for a set of users."""

  name: str

  def fit(self, train: Interactions) -> "Scorer":
    """Fits on training interactions (item space = train.num_items). Returns self."""

  def score(self, inputs: Interactions) -> np.ndarray:
    """Returns [U_in, I] float32 scores, higher = more recommended.

    `inputs` shares the item index space of the training data; its users are the users
    to score (row u of the result belongs to inputs user u). Seen-item exclusion is done
    by the evaluator, not by the scorer.
    """
