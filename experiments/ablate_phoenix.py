r"""Phoenix ablations (issue #6): each improvement on/off over several seeds, with curves.

  nice -n 5 python -m experiments.ablate_phoenix \
      --config experiments/configs/ablate_phoenix.py:full --data_dir /work/shared/data \
      --ablations normalization,temperature,candidate_positions,retrieval --seeds 0,1,2

Ablations (variants and the fields they set: experiments/configs/ablate_phoenix.py):
  normalization        ranking model, LayerNorm before projection on / off
  temperature          ranking model, learnable attention temperature off / on
  candidate_positions  ranking model, every candidate at the same rotary position ("shared",
                       ours) / at offset, offset+1, ... ("sequential", the release); besides
                       the training curves: how much the logits and probabilities of the
                       validation lists move when each list's candidates are reversed or
                       randomly permuted, for the untrained (init) and the trained model of
                       every seed
  retrieval            retrieval model with sampled softmax: number of sampled negatives and
                       the log-Q correction on / off

Ranking (protocol C, phoenix.ranking.task.RankingTask): each run trains `ranking.num_steps`
steps with recsys_core.train.fit and evaluates the validation lists at step 0 and every
`ranking.eval_every` steps (per-head AUC; the primary metric `ranking.primary_metric`).
Reported per variant and seed: the final validation metric, the test-list metric of the
final parameters, and the steps to reach the threshold = threshold_fraction x the baseline
variant's final mean primary metric (linear interpolation between evaluations; None when
never reached). Retrieval (protocol B, leave-one-out, full ranking over all items with seen
items excluded): validation HR@K / NDCG@K curves, and test HR@K / NDCG@K of the final
parameters.

One result file per ablation, <out_dir>/ablation_phoenix_<ablation>.json, rewritten after
every finished run (extra.complete says whether all runs are in), and a plot
<out_dir>/plots/ablation_phoenix_<ablation>.png (mean ± std band of the primary validation
metric against step per variant). <out_dir>: runs/results by default; the project's record
takes --out_dir experiments/results (and --overwrite to replace its files). Folder and files
are checked before any data is read.

Shape glossary: B lists (users), C candidates per list, A action heads (19), S history
length, D embedding size, I items.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
import types
from typing import Any, Callable, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import numpy as np

from experiments import common
from experiments import plots
from phoenix import batching
from phoenix.ranking import data as ranking_data
from phoenix import grok
from phoenix.ranking.config import RankingConfig
from phoenix.ranking.task import RankingTask
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.task import RetrievalTask
from recsys_core import evaluation
from recsys_core import results
from recsys_core import splits
from recsys_core import train as train_lib
from recsys_core.data import load_dataset
from recsys_core.data.sequences import SequenceData
from recsys_core.data.synthetic import synthetic_sequences
from recsys_core.data.types import Interactions

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """The binary's flags (defined only when run as a binary, so that tests can import this
  module beside other binaries)."""
  config_flags.DEFINE_config_file(
      "config", None, "experiments/configs/ablate_phoenix.py:<quick|full>")
  flags.DEFINE_list("ablations", None, "Subset of the config's ablations (default: all, in "
                    "the config's order).")
  flags.DEFINE_list("seeds", None, "Seeds (default: config.seeds).")
  flags.DEFINE_string("data_dir", None, "Folder of the dataset folders (retrieval on ML-1M; "
                      "anime uses the embedded copy).")
  common.define_result_flags("out_dir", " Plots go to <out_dir>/plots.")
  flags.mark_flag_as_required("config")


RESULT_PREFIX = "ablation_phoenix_"


# ----------------------------------------------------------------------------------------
# Model configs.

@dataclasses.dataclass(frozen=True)
class AblationRankingConfig(RankingConfig):
  """phoenix.ranking.config.RankingConfig plus the transformer's candidate-position option."""
  candidate_positions: str = "shared"

  def model_config(self):
    mc = super().model_config()
    mc.model = dataclasses.replace(mc.model, candidate_positions=self.candidate_positions)
    return mc


def ranking_model_config(model: dict, **overrides) -> AblationRankingConfig:
  return AblationRankingConfig.from_dict(model, **overrides)


def retrieval_model_config(model: dict, **overrides) -> RetrievalConfig:
  return RetrievalConfig.from_dict(model, **overrides)


# ----------------------------------------------------------------------------------------
# Data.

def load_ranking_data(rcfg) -> tuple[SequenceData, Optional[np.ndarray], dict]:
  """(sequences, item authors or None, description) of the ranking section's dataset:
  phoenix.ranking.data.load with the section's data seed."""
  if rcfg.dataset not in ("synthetic", "anime"):
    raise ValueError(f"ranking dataset must be 'synthetic' or 'anime', got {rcfg.dataset!r}")
  data, authors, info = ranking_data.load(
      types.SimpleNamespace(dataset=rcfg.dataset, author=rcfg.author, seed=rcfg.data_seed),
      None)
  return data, authors, dict(info, author=rcfg.author)


def load_retrieval_data(tcfg, data_dir: Optional[str]) -> Interactions:
  if tcfg.dataset == "synthetic":
    s = tcfg.synthetic
    return synthetic_sequences(s.num_users, s.num_items, s.min_len, s.max_len, seed=0,
                               noise=s.noise)
  return load_dataset(tcfg.dataset, data_dir)


# ----------------------------------------------------------------------------------------
# Curves.

def steps_to_threshold(steps: Sequence[float], values: Sequence[float],
                       threshold: float) -> Optional[float]:
  """First step at which the curve reaches `threshold` (linear between evaluations).

  None if it never does. A curve already at or above the threshold at its first point
  returns that point's step.
  """
  steps = np.asarray(steps, np.float64)
  values = np.asarray(values, np.float64)
  for i, v in enumerate(values):
    if np.isfinite(v) and v >= threshold:
      if i == 0 or not np.isfinite(values[i - 1]):
        return float(steps[i])
      v0 = values[i - 1]
      return float(steps[i - 1] + (threshold - v0) / (v - v0) * (steps[i] - steps[i - 1]))
  return None


def _eval_curve(history: list, key: str) -> list:
  return [float(r[key]) if key in r else float("nan") for r in history if r["event"] == "eval"]


def _summary(values: Sequence[Optional[float]]) -> dict:
  """{"mean", "std", "values", "n"}: mean/std (population) over the non-None values."""
  ok = [float(v) for v in values if v is not None and np.isfinite(v)]
  return {"mean": float(np.mean(ok)) if ok else None, "std": float(np.std(ok)) if ok else None,
          "values": [None if v is None else float(v) for v in values], "n": len(ok)}


# ----------------------------------------------------------------------------------------
# Ranking runs.

class _UpdateCache:
  """One jitted update per model config: the losses of RankingTask / RetrievalTask depend on
  the config and the data, not on the seed, so later seeds reuse the compiled step."""

  def __init__(self, opt_cfg):
    self.optimizer = train_lib.make_optimizer(train_lib.OptimizerConfig(**opt_cfg.to_dict()))
    self._updates: dict = {}

  def get(self, key: str, loss_fn):
    if key not in self._updates:
      self._updates[key] = train_lib.make_update_fn(loss_fn, self.optimizer, nan_policy="raise")
    return self._updates[key]


def _fit(update, optimizer, params, batch_fn, num_steps: int, eval_every: int,
         eval_fn: Callable, seed: int) -> train_lib.FitResult:
  """recsys_core.train.fit in a throw-away workdir (no resume between ablation runs)."""
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(seed + 1))
  loop_cfg = train_lib.LoopConfig(num_steps=num_steps, log_every=eval_every,
                                  eval_every=eval_every, checkpoint_every=num_steps,
                                  keep_checkpoints=1, progress_bar=False)
  workdir = tempfile.mkdtemp(prefix="ablate_phoenix_")
  try:
    return train_lib.fit(update, state, batch_fn, loop_cfg, workdir, eval_fn=eval_fn)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)


class RankingRunner:
  """Trains ranking variants on one dataset; runs with equal configs are trained once."""

  def __init__(self, rcfg, data, authors):
    self.rcfg = rcfg
    self.data = data
    self.authors = authors
    self._cache: dict = {}
    self._tasks: dict = {}
    self._logits: dict = {}
    self._updates = _UpdateCache(rcfg.optimizer)
    self.stats = {"users": int(data.num_users), "items": int(data.num_items),
                  "mean_length": float(data.lengths().mean())}

  def task(self, mcfg: AblationRankingConfig, seed: int) -> RankingTask:
    key = (repr(mcfg), seed)
    if key not in self._tasks:
      task = RankingTask(mcfg, self.data, self.authors, self.rcfg.batch_size, seed)
      n = self.rcfg.max_eval_lists
      if n and n < len(task.val_lists.labels):
        task.val_lists = _take_lists(task.val_lists, np.arange(n))
      task.jit_logits = self._logits.setdefault(repr(mcfg), jax.jit(task.logits))
      self._tasks = {key: task}  # keep one: the lists are the large part
    return self._tasks[key]

  def run(self, mcfg: AblationRankingConfig, seed: int) -> dict:
    key = (repr(mcfg), seed)
    if key in self._cache:
      return dict(self._cache[key], reused=True)
    rcfg = self.rcfg
    t0 = time.perf_counter()
    task = self.task(mcfg, seed)
    heads = [batching.ACTIONS[a] for a in np.flatnonzero(task.heads)]

    def eval_fn(p):
      return ranking_eval(task, p, task.val_lists, heads)

    params = task.init(jax.random.PRNGKey(seed))
    untrained = eval_fn(params)
    batcher = train_lib.EpochBatcher(len(task.train_rows), rcfg.batch_size, seed)
    update = self._updates.get(repr(mcfg), task.loss_fn)
    result = _fit(update, self._updates.optimizer, params, task.batch_fn(batcher),
                  rcfg.num_steps, rcfg.eval_every, eval_fn, seed)
    evals = [r for r in result.history if r["event"] == "eval"]
    final_params = jax.device_get(train_lib.eval_params(result.state))
    keys = [k for k in untrained if k.startswith("auc") or k == "ndcg"]
    curves = {"step": [0] + [int(r["step"]) for r in evals]}
    for k in keys:
      curves[k] = [float(untrained[k])] + _eval_curve(result.history, k)
    test = ranking_eval(task, final_params, task.test_lists, heads)
    train_loss = [float(r["loss"]) for r in result.history if r["event"] == "train"]
    out = {"curves": curves, "final_val": {k: curves[k][-1] for k in keys},
           "test": {k: float(test[k]) for k in keys}, "heads": heads,
           "attention_temperature": attention_temperatures(final_params),
           "train_loss": train_loss, "seconds": time.perf_counter() - t0,
           "params": final_params, "init_params": params, "reused": False}
    self._cache[key] = out
    logging.info("ranking %s seed %d: final val %s (%.0f s)", _short(mcfg), seed,
                 {k: round(v, 4) for k, v in out["final_val"].items()}, out["seconds"])
    return out


def attention_temperatures(params) -> dict[str, float]:
  """{module path: effective learned attention temperature} (empty without the option)."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = [getattr(k, "key", str(k)) for k in path]
    if names[-1] == "attention_temperature_raw":
      out["/".join(names[-2:-1])] = float(grok.effective_temperature(np.asarray(leaf)))
  return out


def _short(mcfg) -> str:
  return (f"norm={mcfg.normalize_before_projection} "
          f"temp={mcfg.learnable_attention_temperature} pos={mcfg.candidate_positions}")


def _take_lists(lists: batching.RankingExample, rows: np.ndarray) -> batching.RankingExample:
  ids = batching.IdBatch(*[np.asarray(f)[rows] for f in lists.ids])
  return batching.RankingExample(ids, lists.labels[rows], lists.mask[rows],
                                 lists.relevance[rows])


def predict_logits(task: RankingTask, params,
                   lists: batching.RankingExample) -> np.ndarray:
  """[B, C, A] float32 logits of fixed lists (padded to the task's batch size)."""
  fn = getattr(task, "jit_logits", None) or jax.jit(task.logits)
  bs = task.batch_size
  n = len(lists.labels)
  out = []
  for start in range(0, n, bs):
    rows = np.arange(start, min(start + bs, n))
    ids = batching.IdBatch(*[np.asarray(f)[rows] for f in lists.ids])
    batch = batching.pad_batch(task.featurizer(ids), bs)
    out.append(np.asarray(fn(params["phoenix"], batch), np.float32)[:len(rows)])
  return np.concatenate(out)


def ranking_eval(task, params, lists, heads) -> dict:
  """phoenix.ranking.metrics.ranking_metrics of the lists plus auc_mean (mean AUC over the
  defined heads)."""
  probs = 1.0 / (1.0 + np.exp(-predict_logits(task, params, lists)))
  m = task.evaluate(probs, lists)
  aucs = [m[f"auc/{h}"] for h in heads if f"auc/{h}" in m]
  m["auc_mean"] = float(np.mean(aucs)) if aucs else float("nan")
  return m


# ----------------------------------------------------------------------------------------
# Candidate-order sensitivity.

def permute_candidates(lists: batching.RankingExample,
                       perm: np.ndarray) -> batching.RankingExample:
  """Reorders each list's candidates: new slot j of row b holds old slot perm[b, j]."""
  take = lambda x: np.take_along_axis(np.asarray(x), perm.reshape(perm.shape + (1,) * (
      np.ndim(x) - 2)), axis=1)
  ids = lists.ids._replace(candidate_items=take(lists.ids.candidate_items),
                           candidate_surface=take(lists.ids.candidate_surface))
  return batching.RankingExample(ids, take(lists.labels), take(lists.mask),
                                 take(lists.relevance))


def order_sensitivity(task, params, lists: batching.RankingExample, heads: Sequence[str],
                      perms: dict[str, np.ndarray]) -> dict:
  """Per permutation: max / mean |Δ| of logits and probabilities (defined heads, valid
  candidates) between the original lists and the permuted ones mapped back, and the primary
  AUCs on the permuted lists."""
  head_idx = [batching.ACTIONS.index(h) for h in heads]
  base = predict_logits(task, params, lists)[..., head_idx]          # [B, C, H]
  valid = np.asarray(lists.ids.candidate_items) >= 0                 # [B, C]
  sig = lambda z: 1.0 / (1.0 + np.exp(-z))
  out = {}
  for name, perm in perms.items():
    plists = permute_candidates(lists, perm)
    logits = predict_logits(task, params, plists)
    moved = np.empty_like(logits)
    np.put_along_axis(moved, perm[..., None], logits, axis=1)       # back to original slots
    moved = moved[..., head_idx]
    dl = np.abs(moved - base)[valid]
    dp = np.abs(sig(moved) - sig(base))[valid]
    probs = sig(logits)
    m = task.evaluate(probs, plists)
    out[name] = {"max_abs_logit": float(dl.max()), "mean_abs_logit": float(dl.mean()),
                 "max_abs_prob": float(dp.max()), "mean_abs_prob": float(dp.mean()),
                 **{f"permuted_{k}": float(v) for k, v in m.items() if k.startswith("auc/")}}
  return out


def list_permutations(lists: batching.RankingExample, num_random: int,
                      seed: int) -> dict[str, np.ndarray]:
  """{"reversed": ..., "random_<i>": ...}: [B, C] per-row permutations of the candidates."""
  b, c = np.asarray(lists.ids.candidate_items).shape
  perms = {"reversed": np.broadcast_to(np.arange(c)[::-1], (b, c)).copy()}
  rng = np.random.default_rng([seed, 77])
  for i in range(num_random):
    perms[f"random_{i}"] = np.argsort(rng.random((b, c)), axis=1)
  return perms


# ----------------------------------------------------------------------------------------
# Retrieval runs.

class RetrievalRunner:
  """Trains retrieval variants on one leave-one-out split."""

  def __init__(self, tcfg, x: Interactions):
    self.tcfg = tcfg
    self.split = splits.leave_one_out_split(x)
    self.data = SequenceData.from_interactions(x)
    lengths = self.data.lengths()
    self.train_ends = np.where(self.split.val_targets >= 0, lengths - 2, lengths)
    self.val_targets = self.split.val_targets.copy()
    n = tcfg.eval_users
    if n and n < np.sum(self.val_targets >= 0):
      rng = np.random.default_rng(5)
      keep = rng.choice(np.flatnonzero(self.val_targets >= 0), size=n, replace=False)
      drop = np.ones(len(self.val_targets), bool)
      drop[keep] = False
      self.val_targets[drop] = -1
    self._updates = _UpdateCache(tcfg.optimizer)
    self.stats = {"users": int(x.num_users), "items": int(x.num_items),
                  "interactions": int(len(x)), "mean_length": float(lengths.mean()),
                  "val_users": int(np.sum(self.val_targets >= 0)),
                  "test_users": int(np.sum(self.split.test_targets >= 0))}

  def run(self, mcfg: RetrievalConfig, seed: int) -> dict:
    tcfg = self.tcfg
    t0 = time.perf_counter()
    task = RetrievalTask(mcfg, self.data, self.train_ends, None, tcfg.batch_size, seed)
    ks = tuple(tcfg.ks)
    keys = [f"{m}@{k}" for k in ks for m in ("hr", "ndcg")]

    def eval_fn(p):
      m = evaluation.evaluate_leave_one_out(task.scorer(p), self.split.val_inputs,
                                            self.val_targets, ks=ks)
      return {k: m[k] for k in keys}

    params = task.fns.init(jax.random.PRNGKey(seed), task.example_batch()["batch"])
    untrained = eval_fn(params)
    batcher = train_lib.EpochBatcher(len(task.train_users), tcfg.batch_size, seed)
    update = self._updates.get(repr(mcfg), task.loss_fn)
    result = _fit(update, self._updates.optimizer, params, task.batch_fn(batcher),
                  tcfg.num_steps, tcfg.eval_every, eval_fn, seed)
    evals = [r for r in result.history if r["event"] == "eval"]
    curves = {"step": [0] + [int(r["step"]) for r in evals]}
    for k in keys:
      curves[k] = [float(untrained[k])] + _eval_curve(result.history, k)
    final = jax.device_get(train_lib.eval_params(result.state))
    test = evaluation.evaluate_leave_one_out(task.scorer(final), self.split.test_inputs,
                                             self.split.test_targets, ks=ks)
    out = {"curves": curves, "final_val": {k: curves[k][-1] for k in keys},
           "test": {k: float(test[k]) for k in keys},
           "temperature": float(task.fns.temperature(final)),
           "train_loss": [float(r["loss"]) for r in result.history if r["event"] == "train"],
           "seconds": time.perf_counter() - t0, "reused": False}
    logging.info("retrieval neg=%d log_q=%s seed %d: val %s test %s (%.0f s)",
                 mcfg.num_negatives, mcfg.log_q, seed, out["final_val"], out["test"],
                 out["seconds"])
    return out


# ----------------------------------------------------------------------------------------
# Summaries, result files and plots.

def summarize_runs(runs: dict[str, list[dict]], baseline: str, primary: str,
                   threshold_fraction: float, metric_keys: Sequence[str]) -> tuple[dict, dict]:
  """(metrics for write_result, comparison dict) of per-variant, per-seed runs.

  Threshold = threshold_fraction x mean over seeds of the baseline's final `primary`.
  """
  base_final = [r["final_val"][primary] for r in runs.get(baseline, [])]
  threshold = threshold_fraction * float(np.mean(base_final)) if base_final else None
  metrics, comparison = {}, {"threshold": threshold, "threshold_fraction": threshold_fraction,
                             "primary_metric": primary, "baseline": baseline}
  for variant, rs in runs.items():
    for k in metric_keys:
      metrics[f"{variant}/final_val_{k}"] = [r["final_val"][k] for r in rs]
      metrics[f"{variant}/test_{k}"] = [r["test"][k] for r in rs]
    if threshold is not None:
      steps = [steps_to_threshold(r["curves"]["step"], r["curves"][primary], threshold)
               for r in rs]
      metrics[f"{variant}/steps_to_threshold"] = _summary(steps)
  if base_final:
    b_final = float(np.mean(base_final))
    b_steps = metrics.get(f"{baseline}/steps_to_threshold", {}).get("mean")
    for variant in runs:
      if variant == baseline:
        continue
      v = runs[variant]
      n = min(len(v), len(runs[baseline]))
      paired = [v[i]["final_val"][primary] - runs[baseline][i]["final_val"][primary]
                for i in range(n)]
      v_final = float(np.mean([r["final_val"][primary] for r in v]))
      v_steps = metrics[f"{variant}/steps_to_threshold"]["mean"]
      comparison[variant] = {
          "final_relative_change": v_final / b_final - 1.0,
          "final_paired_diff": _summary(paired),
          "steps_relative_change": (None if v_steps is None or not b_steps
                                    else v_steps / b_steps - 1.0)}
  return metrics, comparison


def _jsonable_run(run: dict, seed: int) -> dict:
  return {"seed": seed, "reused": run["reused"], "seconds": round(run["seconds"], 1),
          **{k: run[k] for k in ("curves", "final_val", "test", "train_loss", "temperature",
                                 "attention_temperature", "order_sensitivity") if k in run}}


# ----------------------------------------------------------------------------------------
# Driver.

def run_ablation(name: str, cfg, seeds: Sequence[int], runners: dict,
                 folder: results.ResultFolder) -> str:
  """Runs one ablation (seed-major, so a partial file has paired variants); returns the
  result path (rewritten after every run)."""
  acfg = cfg.ablations[name]
  kind = acfg.kind
  section = cfg.retrieval if kind == "retrieval" else cfg.ranking
  order = list(acfg.get("variant_order", None) or [acfg.baseline] + sorted(
      v for v in acfg.variants if v != acfg.baseline))
  variants = {v: dict(acfg.variants[v]) for v in order}
  runs: dict[str, list[dict]] = {v: [] for v in variants}
  done_seeds: dict[str, list[int]] = {v: [] for v in variants}
  start = time.perf_counter()
  path = None
  for seed in seeds:
    for variant, overrides in variants.items():
      if kind == "retrieval":
        mcfg = retrieval_model_config(section.model.to_dict(), **overrides)
        run = runners["retrieval"].run(mcfg, seed)
      else:
        mcfg = ranking_model_config(section.model.to_dict(), **overrides)
        runner = runners["ranking"]
        run = runner.run(mcfg, seed)
        if kind == "positions":
          run = dict(run, order_sensitivity=_positions_measure(cfg, runner, mcfg, seed, run))
      runs[variant].append(run)
      done_seeds[variant].append(seed)
      stats = runners[kind if kind == "retrieval" else "ranking"].stats
      path = _write_ablation(name, cfg, kind, section, variants, runs, done_seeds, seeds,
                             time.perf_counter() - start, folder, stats)
  return path


def _positions_measure(cfg, runner: RankingRunner, mcfg, seed: int, run: dict) -> dict:
  task = runner.task(mcfg, seed)
  perms = list_permutations(task.val_lists, cfg.positions.num_random_permutations, seed)
  return {"untrained": order_sensitivity(task, run["init_params"], task.val_lists,
                                         run["heads"], perms),
          "trained": order_sensitivity(task, run["params"], task.val_lists, run["heads"],
                                       perms)}


def _write_ablation(name, cfg, kind, section, variants, runs, done_seeds, seeds, wall,
                    folder: results.ResultFolder, data_stats=None) -> str:
  acfg = cfg.ablations[name]
  primary = section.primary_metric
  any_run = next(r for rs in runs.values() for r in rs)
  metric_keys = [k for k in any_run["final_val"]]
  metrics, comparison = summarize_runs({v: rs for v, rs in runs.items() if rs}, acfg.baseline,
                                       primary, section.threshold_fraction, metric_keys)
  if kind == "positions":
    for variant, rs in runs.items():
      for stage in ("untrained", "trained"):
        for perm in rs[0]["order_sensitivity"][stage] if rs else ():
          for k in ("max_abs_logit", "mean_abs_logit", "max_abs_prob", "mean_abs_prob"):
            metrics[f"{variant}/{stage}/{perm}/{k}"] = [
                r["order_sensitivity"][stage][perm][k] for r in rs]
  complete = all(len(done_seeds[v]) == len(seeds) for v in variants)
  model = "phoenix_retrieval" if kind == "retrieval" else "phoenix_ranking"
  config = {"ablation": acfg.to_dict(), "section": section.to_dict(), "seeds": list(seeds),
            "tag": cfg.tag}
  if kind == "positions":
    config["positions"] = cfg.positions.to_dict()
  plot_path = folder.claim([os.path.join("plots", f"{RESULT_PREFIX}{name}")], ".png")[0]
  extra = {
      "complete": complete, "seeds_done": done_seeds, "comparison": comparison,
      "runs": {v: [_jsonable_run(r, s) for r, s in zip(rs, done_seeds[v])]
               for v, rs in runs.items()},
      "plot": f"plots/{RESULT_PREFIX}{name}.png",
      "note": ("final_val_* = validation metric after the last step; test_* = test lists "
               "(ranking) / test targets (retrieval) with the final parameters; "
               "steps_to_threshold: first step where the validation curve (linear between "
               "evaluations) reaches comparison.threshold = threshold_fraction x the "
               "baseline's final mean; values None = never reached (mean/std over the rest)")}
  if data_stats:
    extra["data_stats"] = data_stats
  title = f"Phoenix ablation: {name} ({cfg.tag}; mean ± std over seeds)"
  curves = {v: plots.band_summary(rs[0]["curves"]["step"], [r["curves"][primary] for r in rs])
            for v, rs in runs.items() if rs}
  os.makedirs(os.path.dirname(plot_path), exist_ok=True)
  plots.curve_bands(plot_path, [(f"validation {primary}", curves)], title,
                    comparison.get("threshold"))
  print("wrote", plot_path, flush=True)
  dataset = section.dataset
  path = folder.write_result(
      name=f"{RESULT_PREFIX}{name}", dataset=dataset,
      protocol="leave_one_out" if kind == "retrieval" else "ranking", model=model,
      config=config, metrics=metrics, seeds=list(seeds), wall_seconds=wall, extra=extra)
  print("wrote", path, flush=True)
  return path


def ablation_names(cfg, ablations: Optional[Sequence[str]] = None) -> list[str]:
  """The ablations to run (all of the config's, in its order, by default); ValueError for
  one the config does not have."""
  ablations = list(ablations or cfg.get("order", None) or cfg.ablations.keys())
  unknown = [a for a in ablations if a not in cfg.ablations]
  if unknown:
    raise ValueError(f"unknown ablations {unknown}; known: {list(cfg.ablations.keys())}")
  return ablations


def run(cfg, ablations: Optional[Sequence[str]] = None, seeds: Optional[Sequence[int]] = None,
        data_dir: Optional[str] = None,
        out_dir: Optional[str | results.ResultFolder] = None,
        overwrite: bool = False) -> dict[str, str]:
  """Runs the ablations (all of the config's by default); returns {ablation: result path}.

  out_dir: the result folder (default runs/results; plots in its plots/), or a
  results.ResultFolder already checked; existing files are refused unless `overwrite`,
  before any data is loaded."""
  ablations = ablation_names(cfg, ablations)
  seeds = common.parse_seeds(seeds, cfg.seeds, "seeds")
  folder = (out_dir if isinstance(out_dir, results.ResultFolder)
            else results.ResultFolder(out_dir, overwrite, "--out_dir"))
  folder.claim([f"{RESULT_PREFIX}{a}" for a in ablations])
  folder.claim([os.path.join("plots", f"{RESULT_PREFIX}{a}") for a in ablations], ".png")
  runners: dict[str, Any] = {}
  if any(cfg.ablations[a].kind != "retrieval" for a in ablations):
    data, authors, _ = load_ranking_data(cfg.ranking)
    runners["ranking"] = RankingRunner(cfg.ranking, data, authors)
  if any(cfg.ablations[a].kind == "retrieval" for a in ablations):
    runners["retrieval"] = RetrievalRunner(cfg.retrieval,
                                           load_retrieval_data(cfg.retrieval, data_dir))
  paths = {}
  for name in ablations:
    t0 = time.perf_counter()
    paths[name] = run_ablation(name, cfg, seeds, runners, folder)
    logging.info("ablation %s done in %.0f s: %s", name, time.perf_counter() - t0, paths[name])
  return paths


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    names = ablation_names(FLAGS.config, FLAGS.ablations)
    seeds = common.parse_seeds(FLAGS.seeds, FLAGS.config.seeds)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  result_names = [f"{RESULT_PREFIX}{a}" for a in names]
  folder = common.result_folder(result_names, flag="out_dir", plots=result_names)
  paths = run(FLAGS.config, names, seeds, FLAGS.data_dir, folder)
  for name, path in paths.items():
    with open(path) as f:
      comp = json.load(f)["comparison"]
    print(json.dumps({name: path, "comparison": comp}, default=str))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
