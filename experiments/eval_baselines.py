r"""Evaluates the popularity and EASE baselines on one dataset and writes result files.

  python -m experiments.eval_baselines --config experiments/configs/baselines.py:ml100k \
      --data_dir ../shared/data

Protocol A (strong generalisation; ml100k, mlsmall, anime): ratings above the config's
threshold, users with >= 5 items, then per split seed the Liang et al. split; EASE's λ is
chosen per seed on the validation users' NDCG@100 and the test users are reported.
Protocol B (leave-one-out; ml1m, beauty, sports): fit on the training sequences, λ chosen
on the validation targets (NDCG@10), test = last item with everything before it as input.

Writes one file per model: <out_dir>/baseline_<model>_<dataset tag>_<protocol>.json, with
<out_dir> runs/results by default; the project's record takes --out_dir experiments/results
(and --overwrite to replace its files). The folder, the files and the config are checked
before the data is loaded.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np

from experiments import common
from recsys_core import baselines
from recsys_core import evaluation
from recsys_core import splits
from recsys_core.data import filters
from recsys_core.data import load_dataset
from recsys_core.data.types import Interactions

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The binary's flags (defined only when run as a binary, so that tests can import this
  module beside the other binaries)."""
  config_flags.DEFINE_config_file("config", None, "experiments/configs/baselines.py:<dataset>")
  flags.DEFINE_string(
      "data_dir", None, "Folder holding the dataset folders (e.g. shared/data); default "
      "$RECSYS_DATA_DIR. Not needed for the embedded anime data.")
  flags.DEFINE_list("seeds", None, "Split seeds (overrides config.seeds).")
  common.define_result_flags("out_dir")
  flags.mark_flag_as_required("config")


def result_names(cfg) -> list[str]:
  """The result file names (without .json) of config `cfg`, one per model."""
  return [f"baseline_{model}_{cfg.tag}_{cfg.protocol}" for model in cfg.models]


def check_run(cfg, seeds_flag: list[str] | None = None) -> list[int]:
  """The split seeds (--seeds, else config.seeds) after checking them and the config fields
  that would otherwise fail only after loading the data. Raises ValueError naming the flag
  or field."""
  seeds = common.parse_seeds(seeds_flag, cfg.seeds)
  batch_size = cfg.get("batch_size")
  if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
    raise ValueError(f"config.batch_size={batch_size!r}: must be an integer >= 1 (users "
                     "scored per batch)")
  unknown = [m for m in cfg.models if m not in ("popularity", "ease")]
  if unknown:
    raise ValueError(f"config.models: unknown models {unknown}; known: popularity, ease")
  if "ease" in cfg.models and not cfg.get("ease_l2_grid"):
    raise ValueError("config.ease_l2_grid: give one or more λ values for EASE")
  return seeds


def preprocess(x: Interactions, cfg) -> Interactions:
  """Protocol preprocessing: rating threshold, minimum items per user, dense indices."""
  if cfg.get("rating_threshold") is not None:
    x = filters.filter_by_rating(x, cfg.rating_threshold)
  if cfg.get("min_user_items"):
    x = filters.filter_min_interactions(x, min_user_interactions=cfg.min_user_items)
  return filters.reindex(x)


def _make(model: str, l2: float | None = None):
  if model == "popularity":
    return baselines.Popularity()
  if model == "ease":
    return baselines.EASE(l2=l2)
  raise ValueError(f"unknown model {model!r}")


class _Protocol:
  """Fit / validate / test callables for one split, hiding the protocol's shapes."""

  def __init__(self, cfg, split):
    self.cfg = cfg
    self.split = split
    self.train = split.train
    if cfg.protocol == "strong_generalization":
      self._eval = evaluation.evaluate_strong_generalization
    else:
      self._eval = evaluation.evaluate_leave_one_out

  def validate(self, scorer) -> dict[str, float]:
    return self._eval(scorer, self.split.val_inputs, self.split.val_targets,
                      ks=tuple(self.cfg.ks), batch_size=self.cfg.batch_size)

  def test(self, scorer) -> dict[str, float]:
    return self._eval(scorer, self.split.test_inputs, self.split.test_targets,
                      ks=tuple(self.cfg.ks), batch_size=self.cfg.batch_size)


def run_model(model: str, protocol: _Protocol, cfg) -> tuple[dict[str, float], dict[str, Any]]:
  """Fits `model` (selecting λ for EASE on validation), returns (test metrics, details)."""
  if model == "popularity":
    scorer = _make(model).fit(protocol.train)
    val = protocol.validate(scorer)
    return protocol.test(scorer), {"val": val}
  grid = [float(l2) for l2 in cfg.ease_l2_grid]
  best, best_val, per_l2 = None, None, {}
  for l2 in grid:
    scorer = _make(model, l2).fit(protocol.train)
    val = protocol.validate(scorer)
    per_l2[l2] = {"val": val, "fit_seconds": round(scorer.fit_seconds, 2)}
    if best_val is None or val[cfg.selection_metric] > best_val[cfg.selection_metric]:
      best, best_val = scorer, val
    del scorer
  if best.l2 in (grid[0], grid[-1]) and len(grid) > 1:
    logging.warning("EASE: the best λ=%g is at the edge of the grid %s", best.l2, grid)
  logging.info("EASE: λ=%g chosen on validation %s=%.4f", best.l2, cfg.selection_metric,
               best_val[cfg.selection_metric])
  return protocol.test(best), {"val": best_val, "l2": best.l2, "grid": per_l2}


def _split_fn(cfg) -> Callable[[Interactions, int], Any]:
  if cfg.protocol == "strong_generalization":
    return lambda x, seed: splits.strong_generalization_split(
        x, seed=seed, n_heldout_users=None, target_fraction=cfg.target_fraction,
        min_items_for_targets=5)
  if cfg.protocol == "leave_one_out":
    return lambda x, seed: splits.leave_one_out_split(x)
  raise ValueError(f"unknown protocol {cfg.protocol!r}")


def _stats(x: Interactions) -> dict[str, int]:
  return {"users": int(len(np.unique(x.users))), "items": int(len(np.unique(x.items))),
          "interactions": int(len(x))}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cfg = FLAGS.config
  try:
    seeds = check_run(cfg, FLAGS.seeds)
    _split_fn(cfg)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  folder = common.result_folder(result_names(cfg), flag="out_dir")
  start = time.perf_counter()
  raw = load_dataset(cfg.dataset, FLAGS.data_dir)
  x = preprocess(raw, cfg)
  data_stats = {"raw": _stats(raw), "preprocessed": _stats(x)}
  logging.info("%s: %s -> %s (load + preprocess %.1f s)", cfg.dataset, data_stats["raw"],
               data_stats["preprocessed"], time.perf_counter() - start)
  make_split = _split_fn(cfg)

  per_model = {m: {"test": [], "details": [], "seconds": 0.0} for m in cfg.models}
  for seed in seeds:
    split = make_split(x, seed)
    protocol = _Protocol(cfg, split)
    logging.info("seed %d: train %s, %d items", seed, _stats(split.train),
                 split.train.num_items)
    for model in cfg.models:
      t0 = time.perf_counter()
      test, details = run_model(model, protocol, cfg)
      per_model[model]["seconds"] += time.perf_counter() - t0
      per_model[model]["test"].append(test)
      per_model[model]["details"].append(details)
      logging.info("seed %d %s test: %s", seed, model,
                   ", ".join(f"{k}={test[k]:.4f}" for k in cfg.report_metrics))

  config_record = cfg.to_dict()
  config_record["data_stats"] = data_stats
  config_record["data_dir"] = FLAGS.data_dir or (
      "(embedded)" if cfg.dataset == "anime" else "$RECSYS_DATA_DIR")
  for model, rec in per_model.items():
    metrics = {k: [t[k] for t in rec["test"]] for k in cfg.report_metrics}
    metrics.update({f"val/{k}": [d["val"][k] for d in rec["details"]]
                    for k in cfg.report_metrics})
    model_config = dict(config_record, model=model)
    extra = {"num_test_users": [t["num_users"] for t in rec["test"]],
             "num_val_users": [d["val"]["num_users"] for d in rec["details"]]}
    if model == "ease":
      model_config["lambda_per_seed"] = [d["l2"] for d in rec["details"]]
      extra["ease_lambda_grid"] = [
          {f"{l2:g}": {"val_" + cfg.selection_metric: g["val"][cfg.selection_metric],
                       "fit_seconds": g["fit_seconds"]} for l2, g in d["grid"].items()}
          for d in rec["details"]]
    path = folder.write_result(
        name=f"baseline_{model}_{cfg.tag}_{cfg.protocol}", dataset=cfg.dataset,
        protocol=cfg.protocol, model=model, config=model_config, metrics=metrics, seeds=seeds,
        wall_seconds=rec["seconds"], extra=extra)
    summary = ", ".join(f"{k}={np.mean(metrics[k]):.4f}±{np.std(metrics[k]):.4f}"
                        for k in cfg.report_metrics)
    logging.info("%s %s (%.1f s): %s -> %s", model, cfg.tag, rec["seconds"], summary, path)
    print(f"{model:10s} {cfg.tag}: {summary}")
    print("wrote", path)


if __name__ == "__main__":
  define_flags()
  app.run(main)
