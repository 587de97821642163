"""EASE (Steck 2019) with its L2 weight λ selected on validation from a grid."""
from __future__ import annotations

import dataclasses

from recsys_core import baselines
from recsys_core.config import check
from recsys_core.models.base import FitContext, Fitted


@dataclasses.dataclass(frozen=True)
class Config:
  # λ candidates; the selected one is in the record (a warning when it is at an end).
  l2_grid: tuple[float, ...] = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)

  def __post_init__(self):
    check(len(self.l2_grid) >= 1 and all(float(v) > 0 for v in self.l2_grid),
          "model.l2_grid", self.l2_grid, "a non-empty list of values > 0")


def fit(config: Config, ctx: FitContext) -> Fitted:
  model, info = baselines.select_ease(ctx.train, config.l2_grid, ctx.validate,
                                      ctx.selection_metric)
  return Fitted(model, info)
