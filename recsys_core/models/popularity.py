"""Popularity: every item scored by its number of training users (no parameters)."""
from __future__ import annotations

import dataclasses

from recsys_core import baselines
from recsys_core.models.base import FitContext, Fitted


@dataclasses.dataclass(frozen=True)
class Config:
  """No fields: popularity has nothing to tune."""


def fit(config: Config, ctx: FitContext) -> Fitted:
  del config
  scorer = baselines.Popularity().fit(ctx.train)
  return Fitted(scorer, {"val": dict(ctx.validate(scorer))})
