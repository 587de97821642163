"""Running one autoencoder variant on one split, and summarising/plotting ablations.

Used by experiments/ablate_anime_ae.py (issue #6); the config layout is
experiments/configs/ablate_anime_ae.py's. One run = fit a variant on a split's training users
with params chosen on validation every train.eval_every steps, then test:

  ranking_run  protocol A: Recall@20/50 and NDCG@100 of the test users (`evaluation.
               evaluate_strong_generalization`), the validation curve (every metric per eval
               step), the training-loss curves, optionally the shares of anime types among the
               top-k recommendations of the test users (`type_shares`);
  mae_run      rating MAE (stars and normalised units) of the test users' held-out rated items
               from their fold-in profile, as experiments/eval_anime_ae.py's `mae` part, plus
               the ranking metrics on the same split (targets = every held-out row).

Variants with `arch == "legacy"` run `anime_ae.legacy.LegacyScorer`, whose popularity
attenuation is picked on validation NDCG@100 from `legacy_attenuation_grid` at every
evaluation (the eval record carries the chosen "attenuation").

Shape glossary: U users, I items, K top-k, S eval steps, V variants, R seeds.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from anime_ae.config import AEConfig
from anime_ae.legacy import LegacyConfig, LegacyScorer
from anime_ae.scorer import AutoencoderScorer
from recsys_core import evaluation
from recsys_core.data.types import Interactions

RANK_METRICS = ("recall@20", "recall@50", "ndcg@100")
MAE_METRICS = ("mae", "mae_normalised")
NON_TV_TYPES = ("Special", "ONA", "OVA", "Movie")
TRAIN_LOSS_KEYS = ("loss", "loss_presence", "loss_rating")


def merge(base: Any, overrides: Mapping) -> Any:
  """An unlocked copy of ConfigDict `base` with nested `overrides` applied; unknown keys
  raise KeyError."""
  from ml_collections import config_dict  # pylint: disable=g-import-not-at-top
  out = config_dict.ConfigDict(copy.deepcopy(base.to_dict() if hasattr(base, "to_dict")
                                             else dict(base)))

  def apply(node, over, where):
    for key, value in over.items():
      if key not in node:
        raise KeyError(f"override {where}{key}: no such config key")
      if isinstance(value, Mapping) and value:
        apply(node[key], value, f"{where}{key}.")
      elif not (isinstance(value, Mapping) and not value):
        node[key] = value

  apply(out, overrides.to_dict() if hasattr(overrides, "to_dict") else overrides, "")
  return out


def ae_config(cfg: Any, seed: int) -> AEConfig:
  ae = AEConfig.from_config_dict(cfg)
  return dataclasses.replace(ae, train=dataclasses.replace(ae.train, seed=int(seed)))


def legacy_config(cfg: Any) -> LegacyConfig:
  return LegacyConfig(**cfg.legacy.to_dict())


@dataclasses.dataclass
class RunResult:
  """One variant x seed. Curves are lists aligned with their step lists."""
  test: dict[str, float]
  eval_steps: list[int]
  eval_curve: dict[str, list[float]]   # validation metric -> value per eval step
  train_steps: list[int]
  train_curve: dict[str, list[float]]  # training loss key -> window mean per log step
  best_step: Optional[int]
  seconds: float
  extra: dict = dataclasses.field(default_factory=dict)


def _curves(history: Sequence[dict]):
  evals = [r for r in history if r["event"] == "eval"]
  trains = [r for r in history if r["event"] == "train"]
  skip = {"event", "step", "wall_time", "is_best", "best_step", "num_users"}
  ekeys = [k for k in (evals[0] if evals else {}) if k not in skip]
  tkeys = [k for k in TRAIN_LOSS_KEYS if trains and k in trains[0]]
  return ([int(r["step"]) for r in evals], {k: [float(r[k]) for r in evals] for k in ekeys},
          [int(r["step"]) for r in trains], {k: [float(r[k]) for r in trains] for k in tkeys})


def fit_variant(cfg: Any, seed: int, train: Interactions,
                validate: Callable[[Any], dict], best_metric: str):
  """Fits the variant `cfg` (two-head or legacy) choosing params on `validate`."""
  ae = ae_config(cfg, seed)
  if cfg.arch == "legacy":
    grid = [float(a) for a in cfg.legacy_attenuation_grid]

    def validate_grid(scorer: LegacyScorer) -> dict:
      best, best_a, at0 = None, None, None
      for a in grid:
        m = validate(scorer.with_attenuation(a))
        if a == 0:
          at0 = m[best_metric]
        if best is None or m[best_metric] > best[best_metric]:
          best, best_a = m, a
      out = dict(best, attenuation=best_a)
      if at0 is not None:
        out[f"{best_metric}_no_attenuation"] = at0
      return out

    scorer = LegacyScorer(ae, legacy_config(cfg)).fit(train, validate_grid, best_metric)
    chosen = [r["attenuation"] for r in scorer.history
              if r["event"] == "eval" and r["step"] == scorer.best_step]
    scorer.attenuation = float(chosen[0]) if chosen else float(cfg.legacy.attenuation)
    return scorer
  if cfg.arch != "two_head":
    raise ValueError(f"arch must be 'two_head' or 'legacy', got {cfg.arch!r}")
  return AutoencoderScorer(ae).fit(train, validate=validate, best_metric=best_metric)


def _result(scorer, test: dict, seconds: float, extra: dict) -> RunResult:
  es, ec, ts, tc = _curves(scorer.history)
  if isinstance(scorer, LegacyScorer):
    extra = dict(extra, attenuation=float(scorer.attenuation))
  return RunResult({k: float(v) for k, v in test.items()}, es, ec, ts, tc, scorer.best_step,
                   seconds, extra)


def ranking_run(cfg: Any, split, seed: int, ks: Sequence[int] = (20, 50, 100),
                batch_size: int = 1000, item_types: Optional[np.ndarray] = None,
                type_k: int = 20) -> RunResult:
  """Protocol A: fit on split.train (params by validation NDCG@100), test metrics.

  `item_types` [I] (anime type per item of the split's item space): also the type shares of
  the test users' top-`type_k` recommendations (`type_shares`) in extra["type_shares"].
  """
  def ev(scorer, inputs, targets):
    return evaluation.evaluate_strong_generalization(scorer, inputs, targets, ks=tuple(ks),
                                                     batch_size=batch_size)

  t0 = time.perf_counter()
  scorer = fit_variant(cfg, seed, split.train,
                       lambda s: ev(s, split.val_inputs, split.val_targets), "ndcg@100")
  seconds = time.perf_counter() - t0
  test = ev(scorer, split.test_inputs, split.test_targets)
  extra = {}
  if item_types is not None:
    scores = scorer.score(split.test_inputs)
    extra["type_shares"] = type_shares(scores, split.test_inputs, item_types, type_k)
  return _result(scorer, {k: test[k] for k in RANK_METRICS}, seconds, extra)


def rating_mae(scorer: AutoencoderScorer, inputs: Interactions, targets: Interactions):
  """(MAE in stars, MAE in normalised units, count) over the rated target rows, predicted
  from each user's fold-in `inputs` (the user's own rating statistics for both units)."""
  ok = ~np.isnan(targets.ratings)
  u, i, r = targets.users[ok], targets.items[ok], targets.ratings[ok]
  profiles = scorer.profiles(inputs)
  out = scorer.model.outputs(profiles)
  stats, tr = profiles.stats, scorer.model.transform
  pred_n = out.rating_pred[u, i]
  # Per-target denormalisation (one grid per target row; the users' statistics differ).
  grid = np.linspace(tr.lo, tr.hi, 721)
  vals = tr.normalize(grid[None, :], stats.mean[u][:, None], stats.std[u][:, None])  # [N, G]
  pred = np.array([np.interp(p, v, grid) for p, v in zip(pred_n, vals)], np.float64)
  true_n = tr.normalize(r, stats.mean[u], stats.std[u])
  return (float(np.mean(np.abs(pred - r))), float(np.mean(np.abs(pred_n - true_n))),
          int(ok.sum()))


def mae_run(cfg: Any, split, seed: int, ks: Sequence[int] = (20, 50, 100),
            batch_size: int = 1000) -> RunResult:
  """Rating MAE on held-out rated items (params chosen on validation MAE in stars)."""
  def validate(scorer):
    mae, mae_n, _ = rating_mae(scorer, split.val_inputs, split.val_targets)
    rank = evaluation.evaluate_strong_generalization(scorer, split.val_inputs, split.val_targets,
                                                     ks=tuple(ks), batch_size=batch_size)
    return {"neg_mae": -mae, "mae": mae, "mae_normalised": mae_n, "ndcg@100": rank["ndcg@100"]}

  t0 = time.perf_counter()
  scorer = fit_variant(cfg, seed, split.train, validate, "neg_mae")
  seconds = time.perf_counter() - t0
  mae, mae_n, n = rating_mae(scorer, split.test_inputs, split.test_targets)
  rank = evaluation.evaluate_strong_generalization(scorer, split.test_inputs, split.test_targets,
                                                   ks=tuple(ks), batch_size=batch_size)
  test = {"mae": mae, "mae_normalised": mae_n, **{k: rank[k] for k in RANK_METRICS}}
  return _result(scorer, test, seconds, {"num_mae_targets": n})


def type_shares(scores: np.ndarray, inputs: Interactions, item_types: np.ndarray,
                k: int) -> dict[str, float]:
  """Share of each anime type among the top-k unseen items of every input user.

  scores [U, I]; inputs' items are excluded (as the evaluator does). Returns {type: share}
  plus "non_tv" = the summed share of NON_TV_TYPES (Special, ONA, OVA, Movie).
  """
  s = np.array(scores, np.float64, copy=True)
  s[inputs.users, inputs.items] = -np.inf
  users = np.unique(inputs.users)
  k = min(k, s.shape[1])
  top = np.argpartition(-s[users], k - 1, axis=1)[:, :k]                  # [U, K]
  types = np.asarray(item_types)[top].ravel()
  names, counts = np.unique(types, return_counts=True)
  out = {str(n) if n else "unknown": float(c) / types.size for n, c in zip(names, counts)}
  out["non_tv"] = float(np.isin(types, NON_TV_TYPES).mean())
  return out


def reference_type_shares(x: Interactions, item_types: np.ndarray) -> dict[str, float]:
  """Share of NON_TV_TYPES among the rows of x (e.g. the test targets), for context."""
  return {"non_tv": float(np.isin(np.asarray(item_types)[x.items], NON_TV_TYPES).mean())}


def curve_summary(steps_per_seed: Sequence[Sequence[int]],
                  values_per_seed: Sequence[Sequence[float]]) -> dict[str, list]:
  """Mean and std over seeds at the steps all seeds share: {"steps", "mean", "std"}."""
  common = sorted(set.intersection(*[set(s) for s in steps_per_seed])) if steps_per_seed else []
  rows = [[dict(zip(s, v))[t] for t in common] for s, v in zip(steps_per_seed, values_per_seed)]
  arr = np.asarray(rows, np.float64).reshape(len(rows), len(common))
  return {"steps": common, "mean": arr.mean(0).tolist() if len(rows) else [],
          "std": arr.std(0).tolist() if len(rows) else []}
