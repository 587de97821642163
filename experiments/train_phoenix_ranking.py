r"""Trains the Phoenix ranking model on candidate lists and evaluates it (protocol C).

  python -m experiments.train_phoenix_ranking \
      --config experiments/configs/phoenix_ranking.py:anime --workdir /tmp/phoenix_ranking_anime

Lists (phoenix.ranking.task.RankingSplit, h = num_positives): per user, the test list has the
history before the last h items and those h items (the true next engagements) as
positives; validation the same one step of h earlier; training lists cut each user's
training part at random points every epoch. Negatives are sampled from items the user
never interacted with (in the part of the sequence the list may see). Labels per head
come from the action rules (click = any interaction, favorite / not_interested from the
rating; heads the data cannot define are masked out of loss and metrics).

Reports per head AUC, RCE and calibration (Σp/Σy), and the NDCG of the weighted score over
each user's list, for: the Phoenix ranking model, the same model without the transformer
(`ablation`, num_layers=0), and a popularity prior (per-item label rates on training lists).
Model selection on the validation lists; all numbers in the result file are test lists.
Resumable per model (<workdir>/<model>/ via recsys_core.train.fit). Writes
<results_dir>/phoenix_ranking_<tag>.json, runs/results by default; the project's record takes
--results_dir experiments/results (and --overwrite to replace its file). Folder and file are
checked before any data is read.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from experiments import common
from phoenix import batching
from phoenix.ranking.config import RankingConfig
from phoenix.ranking.task import RankingTask
from phoenix.ranking.data import load
from recsys_core import results
from recsys_core import train as train_lib

FLAGS = flags.FLAGS


def _model_config(cfg, **overrides) -> RankingConfig:
  return RankingConfig.from_dict(cfg.model.to_dict(), **overrides)


def train_one(cfg, mcfg: RankingConfig, data, authors, workdir: str) -> dict[str, Any]:
  """Trains one ranking model; returns test metrics of its best validation params."""
  task = RankingTask(mcfg, data, authors, cfg.batch_size, cfg.seed)
  batcher = train_lib.EpochBatcher(len(task.train_rows), cfg.batch_size, cfg.seed)
  spe = batcher.steps_per_epoch
  num_steps = int(cfg.num_epochs * spe)
  eval_every = max(1, int(round(cfg.eval_every_epochs * spe)))
  optimizer = train_lib.make_optimizer(
      train_lib.OptimizerConfig(**cfg.optimizer.to_dict()).for_run(num_steps))
  params = task.init(jax.random.PRNGKey(cfg.seed))
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(cfg.seed + 1))
  update = train_lib.make_update_fn(task.loss_fn, optimizer, nan_policy="raise")
  heads = [batching.ACTIONS[a] for a in np.flatnonzero(task.heads)]

  def eval_fn(p):
    m = task.evaluate(task.predict(p, task.val_lists), task.val_lists)
    aucs = [m[f"auc/{h}"] for h in heads if f"auc/{h}" in m]
    m["auc_mean"] = float(np.mean(aucs)) if aucs else float("nan")
    return m

  untrained = eval_fn(params)
  loop_cfg = common.loop_config(cfg, num_steps, eval_every)
  result = train_lib.fit(update, state, task.batch_fn(batcher), loop_cfg, workdir,
                         eval_fn=eval_fn, config={"run": cfg.to_dict(), "model": str(mcfg)})
  stopped = common.stop_reason(result)
  best = result.selected_params
  test = task.evaluate(task.predict(best, task.test_lists), task.test_lists)
  final_step = int(result.state.step)
  return {"test": test, "val": result.best_metrics, "untrained_val": untrained,
          "best_step": result.best_step, "final_step": final_step, "epochs": final_step / spe,
          "best_epoch": (result.best_step or 0) / spe, "stopped": stopped,
          "train_seconds": result.train_seconds, "task": task, "heads": heads,
          "params": int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))}


def result_name(cfg) -> str:
  return f"phoenix_ranking_{cfg.tag}"


def run(cfg, workdir: str, data_dir: Optional[str] = None,
        results_dir: Optional[str | results.ResultFolder] = None, write: bool = True,
        overwrite: bool = False) -> dict[str, Any]:
  """Trains and evaluates; with `write`, writes the result file to `results_dir` (default
  runs/results, or a results.ResultFolder already checked), refusing an existing file
  unless `overwrite` before any data is loaded."""
  folder = None
  if write:
    folder = (results_dir if isinstance(results_dir, results.ResultFolder)
              else results.ResultFolder(results_dir, overwrite))
    folder.claim([result_name(cfg)])
  start = time.perf_counter()
  data, authors, data_info = load(cfg, data_dir)
  mcfg = _model_config(cfg)
  out: dict[str, Any] = {"phoenix": train_one(cfg, mcfg, data, authors,
                                              os.path.join(workdir, "phoenix"))}
  task = out["phoenix"]["task"]
  heads = out["phoenix"]["heads"]
  logging.info("phoenix test: %s", out["phoenix"]["test"])
  if cfg.ablation:
    out["no_transformer"] = train_one(cfg, _model_config(cfg, num_layers=0), data, authors,
                                      os.path.join(workdir, "no_transformer"))
    logging.info("no_transformer test: %s", out["no_transformer"]["test"])
  prior = task.popularity_prior()
  out["popularity_prior"] = {"test": task.evaluate(task.prior_probs(prior, task.test_lists),
                                                   task.test_lists)}
  logging.info("popularity prior test: %s", out["popularity_prior"]["test"])
  split = task.split
  stats = {"users_in_lists": int(len(split.users)), "items": int(data.num_items),
           "num_users": int(data.num_users), "test_lists": int(len(task.test_lists.labels)),
           "heads": heads, "mean_length": float(data.lengths().mean()),
           "test_base_rates": {h: out["phoenix"]["test"].get(f"base_rate/{h}") for h in heads}}
  record = {"models": {k: {kk: vv for kk, vv in v.items() if kk != "task"}
                       for k, v in out.items()},
            "wall_seconds": time.perf_counter() - start, "data_stats": stats}
  if folder is not None:
    metrics = {}
    for name, v in out.items():
      prefix = "" if name == "phoenix" else f"{name}/"
      metrics.update({f"{prefix}{k}": val for k, val in v["test"].items()
                      if not k.startswith("base_rate") and np.isfinite(val)})
    config = dict(cfg.to_dict(), data_dir=data_dir or "(default)", data_info=data_info,
                  data_stats=stats, author_info="first genre" if authors is not None else
                  "shared (one author)")
    extra = {name: {k: v[k] for k in ("epochs", "best_epoch", "best_step", "final_step",
                                       "stopped", "train_seconds", "params", "untrained_val")
                    if k in v} for name, v in out.items() if name != "popularity_prior"}
    extra = {"training": extra,
             "protocol_note": "per-user time split: test list = last h items + sampled "
                              "negatives, history before them; validation = the h before; "
                              "per-head AUC/RCE/calibration over defined labels of all test "
                              "lists; ndcg = NDCG of the weighted score per list (gains 2^rel-1, "
                              "rel: favorite 2, other engagement 1, not_interested/negative 0)"}
    path = folder.write_result(
        name=result_name(cfg), dataset=cfg.dataset, protocol="ranking",
        model="phoenix_ranking", config=config, metrics=metrics, seeds=[cfg.seed],
        wall_seconds=record["wall_seconds"], extra=extra)
    record["path"] = path
    logging.info("wrote %s", path)
  return record


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cfg = FLAGS.config
  folder = None if FLAGS.no_result else common.result_folder([result_name(cfg)])
  workdir = FLAGS.workdir or f"/tmp/phoenix_ranking_{cfg.tag}"
  record = run(cfg, workdir, FLAGS.data_dir, folder, write=folder is not None)
  for name, v in record["models"].items():
    shown = {k: round(val, 4) for k, val in v["test"].items()
             if k.startswith(("auc/", "rce/")) or k == "ndcg"}
    print(json.dumps({name: shown}))
  if "path" in record:
    print("wrote", record["path"])


if __name__ == "__main__":
  common.define_train_flags("experiments/configs/phoenix_ranking.py:<quick|anime|mlsmall>",
                             "; anime: the embedded copy")
  app.run(main)
