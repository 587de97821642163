r"""Trains the Phoenix retrieval model (two towers) and evaluates it under protocol B.

  python -m experiments.train_phoenix_retrieval \
      --config experiments/configs/phoenix_retrieval.py:ml1m \
      --data_dir ../shared/data --workdir /tmp/phoenix_retrieval_ml1m

Leave-one-out (shared/docs/protocols.md §B): per user the last item is the test target, the
second-to-last the validation target; training uses the items before them, with a
next-item target at every prefix position (phoenix.training). Model selection on the
validation targets (config.selection_metric); the best parameters are evaluated on the
test targets with everything before the last item as input. Ranking is over ALL items with
the user's seen items excluded (recsys_core.evaluation.evaluate_leave_one_out). Popularity
and EASE (λ chosen on validation) are computed in the same run on the same split.

Resumable: re-running with the same --workdir continues from the newest checkpoint
(recsys_core.train.fit); progress goes to the log and <workdir>/metrics.jsonl. Writes
experiments/results/phoenix_retrieval_<tag>.json (or --results_dir).
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
from phoenix import training
from recsys_core import baselines
from recsys_core import evaluation
from recsys_core import results
from recsys_core import splits
from recsys_core import train as train_lib
from recsys_core.data import load_dataset

FLAGS = flags.FLAGS


def _model_config(cfg) -> training.RetrievalConfig:
  return training.RetrievalConfig.from_dict(cfg.model.to_dict())


def _optimizer_config(cfg) -> train_lib.OptimizerConfig:
  return train_lib.OptimizerConfig(**cfg.optimizer.to_dict())


def load_data(cfg, data_dir: Optional[str]):
  if cfg.dataset == "synthetic":
    s = cfg.synthetic
    return training.synthetic_sequences(s.num_users, s.num_items, s.min_len, s.max_len,
                                        seed=cfg.seed, noise=s.noise)
  return load_dataset(cfg.dataset, data_dir)


def _subset_users(split, n: int, seed: int):
  """Validation on a fixed random subset of n users (0 = all): targets of others = -1."""
  targets = split.val_targets.copy()
  if n and n < np.sum(targets >= 0):
    rng = np.random.default_rng(seed + 5)
    keep = rng.choice(np.flatnonzero(targets >= 0), size=n, replace=False)
    mask = np.ones(len(targets), bool)
    mask[keep] = False
    targets[mask] = -1
  return targets


def run(cfg, workdir: str, data_dir: Optional[str] = None,
        results_dir: Optional[str] = None, write: bool = True) -> dict[str, Any]:
  """Trains, selects, tests; returns {"test", "val", "baselines", ...} (and writes JSON)."""
  start = time.perf_counter()
  x = load_data(cfg, data_dir)
  split = splits.leave_one_out_split(x)
  data = batching.SequenceData.from_interactions(x)
  lengths = data.lengths()
  train_ends = np.where(split.val_targets >= 0, lengths - 2, lengths)
  mcfg = _model_config(cfg)
  authors, author_info = (None, {"author": "shared (one author)"})
  if cfg.author != "none":
    authors, author_info = training.item_authors_for(cfg.dataset, cfg.author, x.item_ids,
                                                     data_dir)
  task = training.RetrievalTask(mcfg, data, train_ends, authors, cfg.batch_size, cfg.seed)
  data_stats = {"users": int(x.num_users), "items": int(x.num_items),
                "interactions": int(len(x)), "train_users": int(len(task.train_users)),
                "mean_length": float(lengths.mean()),
                "truncated_users": int(np.sum(train_ends > mcfg.history_len + 1))}
  logging.info("%s: %s, author %s", cfg.dataset, data_stats, author_info)

  batcher = train_lib.EpochBatcher(len(task.train_users), cfg.batch_size, cfg.seed)
  steps_per_epoch = batcher.steps_per_epoch
  num_steps = int(cfg.num_epochs * steps_per_epoch)
  eval_every = max(1, int(round(cfg.eval_every_epochs * steps_per_epoch)))
  optimizer = train_lib.make_optimizer(_optimizer_config(cfg).for_run(num_steps))
  params = task.fns.init(jax.random.PRNGKey(cfg.seed), task.example_batch()["batch"])
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
  logging.info("params: %d; %d steps/epoch, eval every %d steps", n_params, steps_per_epoch,
               eval_every)
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(cfg.seed + 1))
  update = train_lib.make_update_fn(task.loss_fn, optimizer, nan_policy="raise")
  val_targets = _subset_users(split, cfg.eval_users, cfg.seed)
  ks = tuple(cfg.ks)

  def eval_fn(p):
    t0 = time.perf_counter()
    m = evaluation.evaluate_leave_one_out(task.scorer(p), split.val_inputs, val_targets, ks=ks)
    out = {k: v for k, v in m.items() if k != "num_users"}
    out["temperature"] = float(training.losses.temperature_from_log(p["loss"]["log_temperature"]))
    out["eval_seconds"] = time.perf_counter() - t0
    return out

  os.makedirs(workdir, exist_ok=True)
  untrained = eval_fn(params)
  logging.info("untrained validation: %s", untrained)
  config_json = cfg.to_dict()
  loop_cfg = common.loop_config(cfg, num_steps, eval_every)
  result = train_lib.fit(update, state, task.batch_fn(batcher), loop_cfg, workdir,
                         eval_fn=eval_fn, config=config_json)
  stopped = common.stop_reason(result)
  train_seconds = result.train_seconds  # summed over resumed calls
  final_step = int(result.state.step)
  best = result.selected_params
  best_val = result.best_metrics or {}
  test = evaluation.evaluate_leave_one_out(task.scorer(best), split.test_inputs,
                                           split.test_targets, ks=ks)
  logging.info("Phoenix test (best step %s): %s", result.best_step, test)

  base = {}
  if cfg.baselines:
    base = run_baselines(split, ks, tuple(cfg.ease_l2_grid), cfg.selection_metric)
  evals = [r for r in result.history if r["event"] == "eval"]
  record = {
      "test": test, "val": best_val, "untrained_val": untrained, "baselines": base,
      "best_step": result.best_step, "final_step": final_step,
      "epochs": final_step / steps_per_epoch,
      "best_epoch": (result.best_step or 0) / steps_per_epoch,
      "train_seconds": train_seconds, "stopped": stopped,
      "wall_seconds": time.perf_counter() - start}
  if write:
    metrics = {k: v for k, v in test.items() if k != "num_users"}
    metrics.update({f"val/{k}": v for k, v in best_val.items()
                    if k in test and isinstance(v, float)})
    for name, b in base.items():
      metrics.update({f"{name}/{k}": v for k, v in b["test"].items() if k != "num_users"})
    config = dict(config_json, data_dir=data_dir or "$RECSYS_DATA_DIR",
                  data_stats=data_stats, author_info=author_info, params=n_params,
                  history_len_note=f"max sequence length {mcfg.history_len}")
    extra = {"epochs": record["epochs"], "best_epoch": record["best_epoch"],
             "best_step": result.best_step, "final_step": final_step,
             "steps_per_epoch": steps_per_epoch, "stopped": stopped,
             "train_seconds": round(train_seconds, 1), "num_test_users": test["num_users"],
             "untrained_val": untrained, "baselines": base,
             "eval_history": [{k: r[k] for k in r if k in (
                 "step", cfg.selection_metric, "hr@10", "ndcg@10", "temperature",
                 "online_hr@10", "online_ndcg@10")}
                 for r in evals],
             "protocol_note": "leave-one-out, full ranking over all items, seen items "
                              "excluded; validation = second-to-last item (model selection), "
                              "test = last item"}
    path = results.write_result(
        name=f"phoenix_retrieval_{cfg.tag}", dataset=cfg.dataset, protocol="leave_one_out",
        model="phoenix_retrieval", config=config, metrics=metrics, seeds=[cfg.seed],
        wall_seconds=record["wall_seconds"], results_dir=results_dir, extra=extra)
    logging.info("wrote %s", path)
    record["path"] = path
  return record


def run_baselines(split, ks, grid, selection_metric) -> dict[str, Any]:
  """Popularity and EASE (λ on validation) on the same split, same evaluator."""
  out = {}
  t0 = time.perf_counter()
  pop = baselines.Popularity().fit(split.train)
  out["popularity"] = {
      "val": evaluation.evaluate_leave_one_out(pop, split.val_inputs, split.val_targets, ks=ks),
      "test": evaluation.evaluate_leave_one_out(pop, split.test_inputs, split.test_targets,
                                                ks=ks),
      "seconds": time.perf_counter() - t0}
  t0 = time.perf_counter()
  best, best_val, per = None, None, {}
  for l2 in grid:
    ease = baselines.EASE(l2=l2).fit(split.train)
    val = evaluation.evaluate_leave_one_out(ease, split.val_inputs, split.val_targets, ks=ks)
    per[f"{l2:g}"] = val[selection_metric]
    if best_val is None or val[selection_metric] > best_val[selection_metric]:
      best, best_val = ease, val
    else:
      del ease
  out["ease"] = {"val": best_val, "l2": best.l2, "val_grid": per,
                 "test": evaluation.evaluate_leave_one_out(best, split.test_inputs,
                                                           split.test_targets, ks=ks),
                 "seconds": time.perf_counter() - t0}
  for name, b in out.items():
    logging.info("%s test: %s", name, b["test"])
  return out


def main(argv):
  del argv
  cfg = FLAGS.config
  workdir = FLAGS.workdir or f"/tmp/phoenix_retrieval_{cfg.tag}"
  record = run(cfg, workdir, FLAGS.data_dir, FLAGS.results_dir,
               write=not FLAGS.no_result)
  summary = {k: round(v, 4) for k, v in record["test"].items() if k != "num_users"}
  print(json.dumps({"phoenix_test": summary, "epochs": round(record["epochs"], 2),
                    "stopped": record["stopped"]}))
  for name, b in record["baselines"].items():
    print(json.dumps({name: {k: round(v, 4) for k, v in b["test"].items()
                             if k in ("hr@10", "ndcg@10")}}))


if __name__ == "__main__":
  common.define_train_flags(
      "experiments/configs/phoenix_retrieval.py:<quick|ml1m|beauty|sports>[_gpu]")
  app.run(main)
