"""The two-head autoencoder as a pipeline model (`--config.model.name=anime_ae`).

Config: the `AEConfig` sections (model, loss, ratings, data, train, recommend), typed and
typo-checked. The run's seed replaces `train.seed`. Validation (the pipeline's selection
metric) runs every `train.eval_every` steps (0: at the end only) and the best evaluated
params are tested; checkpoints and metrics.jsonl go to the run folder, so a rerun resumes.
"""
from __future__ import annotations

import dataclasses

from anime_ae.config import AEConfig as Config
from anime_ae.scorer import AutoencoderScorer
from recsys_core.models.base import FitContext, Fitted

RUN_ONLY = ("train.log_every", "train.checkpoint_every")


def fit(config: Config, ctx: FitContext) -> Fitted:
  config = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=ctx.seed))
  scorer = AutoencoderScorer(config, workdir=ctx.run_dir)
  scorer.fit(ctx.train, validate=ctx.validate, best_metric=ctx.selection_metric)
  evals = [r for r in scorer.history if r.get("event") == "eval"]
  best = next((r for r in evals if r["step"] == scorer.best_step), None)
  last = [r for r in scorer.history if r.get("event") == "train"]
  info = {"best_step": scorer.best_step, "steps": config.train.steps,
          "val": {k: v for k, v in (best or {}).items()
                  if k not in ("event", "step", "wall_time", "is_best", "best_step")},
          "final_train": {k: v for k, v in (last[-1] if last else {}).items()
                          if k not in ("event", "wall_time")}}
  return Fitted(scorer, info)
