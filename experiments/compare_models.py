r"""Compares popularity, EASE, the autoencoder and Phoenix retrieval on the same splits.

  nice python -m experiments.compare_models \
      --config experiments/configs/compare.py:anime_a
  nice python -m experiments.compare_models \
      --config experiments/configs/compare.py:ml1m_b --data_dir ../shared/data

Protocol D (shared/docs/protocols.md): one split per seed, every model fitted on that
split's training part through the one `recsys_core.scoring.Scorer` interface and evaluated
by the same evaluator (`recsys_core.evaluation`) on the same test users. The split
fingerprint (sha256 of the split's arrays) is recorded per model and seed, so identical
splits are checked, not assumed.

  * popularity, EASE: cheap; every seed. EASE's λ is chosen per seed on the validation
    users (config.selection_metric), like experiments/eval_baselines.py.
  * anime_ae (anime_ae.scorer.AutoencoderScorer) and phoenix_retrieval (a fit wrapper
    around phoenix.training.RetrievalTask / RetrievalScorer): a fixed number of steps
    (config.anime_ae.train.steps, config.phoenix.steps), no model selection, on the first
    config.deep_seeds seeds (CPU budget; the seeds each model ran are recorded).
A model that cannot be imported/built is reported under "models" with status "skipped"
and the reason.

Shape glossary: U = users, I = items of the split's training item space.

Writes experiments/results/compare_<tag>_<protocol>.json (metrics "<model>/<metric>"
summarised over that model's seeds, plus a per-model "models" section), then the dataset's
table and plot via experiments/report.py.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any, Callable, Optional

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np

from recsys_core import baselines
from recsys_core import evaluation
from recsys_core import results
from recsys_core import splits
from recsys_core.data import filters
from recsys_core.data import load_dataset
from recsys_core.data.types import Interactions



def _define_flags():
  """Flags are defined only when run as a binary, so importing this module (tests, other
  binaries) never collides with another module's --config/--data_dir."""
  config_flags.DEFINE_config_file("config", None, "experiments/configs/compare.py:<dataset>_<a|b>")
  flags.DEFINE_string("data_dir", None, "Folder of the dataset folders (shared/data); not "
                      "needed for the embedded anime data.")
  flags.DEFINE_list("seeds", None, "Split seeds (overrides config.seeds).")
  flags.DEFINE_string("out_dir", None, "Result folder (default experiments/results).")

ORDER_SEED = 12345  # protocol A: the random row order given to the sequential model


# ----------------------------------------------------------------------------------------
# Data and splits.

def load_data(cfg, data_dir: Optional[str]) -> Interactions:
  """Loads the configured dataset (or the synthetic one) and applies the preprocessing."""
  if cfg.dataset == "synthetic":
    from phoenix import training  # pylint: disable=g-import-not-at-top
    s = cfg.synthetic
    x = training.synthetic_sequences(s.num_users, s.num_items, s.min_len, s.max_len, seed=0,
                                     noise=s.noise)
  else:
    x = load_dataset(cfg.dataset, data_dir)
  if cfg.get("rating_threshold") is not None:
    x = filters.filter_by_rating(x, cfg.rating_threshold)
  if cfg.get("min_user_items"):
    x = filters.filter_min_interactions(x, min_user_interactions=cfg.min_user_items)
  x = filters.reindex(x)
  if cfg.order == "random":
    order = np.random.RandomState(ORDER_SEED).permutation(len(x)).astype(np.int64)
    x = dataclasses.replace(x, order=order)
  return x


@dataclasses.dataclass(frozen=True)
class Split:
  """Protocol-independent view of one split: what every model is fitted and tested on."""
  train: Interactions
  val_inputs: Interactions
  val_targets: Any          # Interactions (A) or [U] int array (B)
  test_inputs: Interactions
  test_targets: Any


def make_split(x: Interactions, cfg, seed: int) -> Split:
  if cfg.protocol == "strong_generalization":
    s = splits.strong_generalization_split(x, seed=seed, target_fraction=cfg.target_fraction,
                                           min_items_for_targets=5)
  elif cfg.protocol == "leave_one_out":
    s = splits.leave_one_out_split(x)
  else:
    raise ValueError(f"config.protocol: unknown protocol {cfg.protocol!r}")
  return Split(s.train, s.val_inputs, s.val_targets, s.test_inputs, s.test_targets)


def fingerprint(split: Split) -> str:
  """sha256 (16 hex chars) over every array of the split (users, items, targets)."""
  h = hashlib.sha256()
  for part in (split.train, split.val_inputs, split.val_targets, split.test_inputs,
               split.test_targets):
    if isinstance(part, Interactions):
      arrays = (part.users, part.items, np.asarray([part.num_users, part.num_items]))
    else:
      arrays = (np.asarray(part),)
    for a in arrays:
      a = np.ascontiguousarray(a, dtype=np.int64)
      h.update(str(a.shape).encode())
      h.update(a.tobytes())
  return h.hexdigest()[:16]


def evaluate(scorer, split: Split, cfg, part: str) -> dict[str, float]:
  """Protocol-A or -B evaluation of `scorer` on the split's "val" or "test" users."""
  inputs = getattr(split, f"{part}_inputs")
  targets = getattr(split, f"{part}_targets")
  return evaluation.evaluate(scorer, cfg.protocol, inputs, targets, ks=tuple(cfg.ks),
                             batch_size=cfg.batch_size)


# ----------------------------------------------------------------------------------------
# Phoenix retrieval behind fit/score.

class PhoenixRetrievalFit:
  """Scorer: `fit` trains phoenix.training.RetrievalTask on the training sequences for a
  fixed number of steps; `score` is phoenix.training.RetrievalScorer (<user, item>)."""

  name = "phoenix_retrieval"

  def __init__(self, pcfg, seed: int):
    self.pcfg = pcfg
    self.seed = seed
    self._scorer = None
    self.final_loss = float("nan")

  def fit(self, train: Interactions) -> "PhoenixRetrievalFit":
    import jax  # pylint: disable=g-import-not-at-top
    from phoenix import batching, training  # pylint: disable=g-import-not-at-top
    from recsys_core import train as train_lib  # pylint: disable=g-import-not-at-top
    p = self.pcfg
    mcfg = training.RetrievalConfig.from_dict(p.model.to_dict())
    data = batching.SequenceData.from_interactions(train)
    task = training.RetrievalTask(mcfg, data, data.lengths(), None, p.batch_size, self.seed)
    if not len(task.train_users):
      raise ValueError(f"{train.source}: no training sequence has >= 2 items")
    batcher = train_lib.EpochBatcher(len(task.train_users), p.batch_size, self.seed)
    optimizer = train_lib.make_optimizer(
        train_lib.OptimizerConfig(**p.optimizer.to_dict()).for_run(p.steps))
    params = task.fns.init(jax.random.PRNGKey(self.seed), task.example_batch()["batch"])
    state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(self.seed + 1))
    update = training.make_update_fn(task.loss_fn, optimizer)
    batch_fn = task.batch_fn(batcher)
    losses = []
    for step in range(p.steps):
      state, metrics = update(state, batch_fn(step))
      if (step + 1) % max(1, p.steps // 4) == 0:
        losses.append(float(metrics["loss"]))
        logging.info("phoenix_retrieval step %d/%d loss %.4f", step + 1, p.steps, losses[-1])
    self.final_loss = losses[-1] if losses else float("nan")
    self._scorer = task.scorer(train_lib.eval_params(state), batch_size=p.score_batch_size)
    return self

  def score(self, inputs: Interactions) -> np.ndarray:
    if self._scorer is None:
      raise RuntimeError("phoenix_retrieval: fit before scoring")
    return self._scorer.score(inputs)  # [U_in, I]


# ----------------------------------------------------------------------------------------
# Models.

def _fit_popularity(split: Split, cfg, seed: int):
  del cfg, seed
  return baselines.Popularity().fit(split.train), {}


def _fit_ease(split: Split, cfg, seed: int):
  del seed
  best, best_val, grid = None, None, {}
  for l2 in cfg.ease_l2_grid:
    s = baselines.EASE(l2=float(l2)).fit(split.train)
    val = evaluate(s, split, cfg, "val")
    grid[f"{float(l2):g}"] = val[cfg.selection_metric]
    if best_val is None or val[cfg.selection_metric] > best_val:
      best, best_val = s, val[cfg.selection_metric]
  return best, {"lambda": best.l2, "val_" + cfg.selection_metric: grid}


def _fit_anime_ae(split: Split, cfg, seed: int):
  from anime_ae.config import AEConfig  # pylint: disable=g-import-not-at-top
  from anime_ae.scorer import AutoencoderScorer  # pylint: disable=g-import-not-at-top
  ae_cfg = AEConfig.from_config_dict(cfg.anime_ae)
  ae_cfg = dataclasses.replace(ae_cfg, train=dataclasses.replace(ae_cfg.train, seed=seed))
  scorer = AutoencoderScorer(ae_cfg, ranking="presence").fit(split.train)
  last = [h for h in scorer.history if "loss" in h]
  return scorer, {"final_loss": float(last[-1]["loss"]) if last else None}


def _fit_phoenix(split: Split, cfg, seed: int):
  scorer = PhoenixRetrievalFit(cfg.phoenix, seed).fit(split.train)
  return scorer, {"final_loss": scorer.final_loss}


FITTERS: dict[str, Callable] = {
    "popularity": _fit_popularity, "ease": _fit_ease, "anime_ae": _fit_anime_ae,
    "phoenix_retrieval": _fit_phoenix}
DEEP = ("anime_ae", "phoenix_retrieval")


def unavailable(model: str) -> Optional[str]:
  """Why `model` cannot run here (its trainer is missing), or None."""
  try:
    if model == "anime_ae":
      from anime_ae import scorer  # pylint: disable=g-import-not-at-top,unused-import
    elif model == "phoenix_retrieval":
      from phoenix import training  # pylint: disable=g-import-not-at-top
      for attr in ("RetrievalTask", "RetrievalConfig", "EmbeddingConfig", "make_update_fn"):
        if not hasattr(training, attr):
          return f"phoenix.training has no {attr}"
    elif model not in FITTERS:
      return f"unknown model {model!r}"
  except ImportError as e:
    return f"import failed: {e}"
  return None


def _model_config(model: str, cfg) -> dict:
  if model == "ease":
    return {"lambda_grid": list(cfg.ease_l2_grid), "selection": "val " + cfg.selection_metric}
  if model == "anime_ae":
    return cfg.anime_ae.to_dict()
  if model == "phoenix_retrieval":
    return cfg.phoenix.to_dict()
  return {}


# ----------------------------------------------------------------------------------------
# The comparison.

def run_comparison(cfg, data_dir: Optional[str] = None, seeds: Optional[list[int]] = None,
                   results_dir: Optional[str] = None, write_docs: bool = True) -> dict:
  """Runs every configured model on every split; writes the result JSON; returns it."""
  seeds = [int(s) for s in (seeds if seeds is not None else cfg.seeds)]
  start = time.perf_counter()
  x = load_data(cfg, data_dir)
  data_stats = {"users": int(len(np.unique(x.users))), "items": int(len(np.unique(x.items))),
                "interactions": int(len(x))}
  logging.info("%s: %s", cfg.dataset, data_stats)
  models = {}
  for model in cfg.models:
    reason = unavailable(model)
    models[model] = {"status": "skipped" if reason else "ok", "reason": reason, "seeds": [],
                     "fingerprints": [], "test": [], "details": [], "fit_seconds": [],
                     "eval_seconds": [], "config": _model_config(model, cfg)}
    if reason:
      logging.warning("%s skipped: %s", model, reason)
  split_fps = []

  def write(seeds_done: list[int]):
    """Summarises what has run so far and (re)writes the result file."""
    metrics, per_model = {}, {}
    for model, rec in models.items():
      out = {"status": rec["status"], "config": rec["config"]}
      if rec["status"] == "skipped":
        out["reason"] = rec["reason"]
      else:
        m = {k: results.summarize([t[k] for t in rec["test"]]) for k in cfg.report_metrics}
        metrics.update({f"{model}/{k}": v for k, v in m.items()})
        out.update(metrics=m, seeds=rec["seeds"], split_fingerprints=rec["fingerprints"],
                   num_test_users=[t["num_users"] for t in rec["test"]],
                   fit_seconds=rec["fit_seconds"], eval_seconds=rec["eval_seconds"],
                   details=rec["details"])
      per_model[model] = out
    config = cfg.to_dict()
    config["data_stats"] = data_stats
    config["data_dir"] = data_dir or ("(embedded)" if cfg.dataset == "anime" else
                                      "$RECSYS_DATA_DIR")
    extra = {"seeds_requested": seeds, "models": per_model, "split_fingerprints": split_fps,
             "skipped": {m: r["reason"] for m, r in per_model.items() if r["status"] == "skipped"},
             "note": "one split per seed shared by all models; trained models (anime_ae, "
                     "phoenix_retrieval) run on the first config.deep_seeds seeds with a fixed "
                     "step count and no model selection; EASE λ chosen on validation"}
    path = results.write_result(
        name=f"compare_{cfg.tag}_{cfg.protocol}", dataset=cfg.dataset, protocol=cfg.protocol,
        model="comparison", config=config, metrics=metrics, seeds=seeds_done,
        wall_seconds=time.perf_counter() - start, results_dir=results_dir, extra=extra)
    return path, metrics, per_model

  for i, seed in enumerate(seeds):
    split = make_split(x, cfg, seed)
    split_fps.append(fingerprint(split))
    for model in cfg.models:
      rec = models[model]
      if rec["status"] != "ok" or (model in DEEP and i >= cfg.deep_seeds):
        continue
      t0 = time.perf_counter()
      scorer, details = FITTERS[model](split, cfg, seed)
      t1 = time.perf_counter()
      test = evaluate(scorer, split, cfg, "test")
      rec["eval_seconds"].append(round(time.perf_counter() - t1, 2))
      rec["fit_seconds"].append(round(t1 - t0, 2))
      rec["seeds"].append(seed)
      rec["fingerprints"].append(fingerprint(split))  # of the split this model was fed
      rec["test"].append(test)
      rec["details"].append(details)
      logging.info("seed %d %s (fit %.1f s): %s", seed, model, t1 - t0,
                   ", ".join(f"{k}={test[k]:.4f}" for k in cfg.report_metrics))
      del scorer
    # Written after every seed: an interrupted run keeps the seeds it finished.
    path, metrics, per_model = write(seeds[:i + 1])

  logging.info("wrote %s", path)
  if write_docs:
    from experiments import report  # pylint: disable=g-import-not-at-top
    report.write_compare_docs(cfg.tag, results_dir or results.DEFAULT_RESULTS_DIR)
  return {"path": path, "models": per_model, "metrics": metrics,
          "split_fingerprints": split_fps}


def main(argv):
  del argv
  f = flags.FLAGS
  seeds = [int(s) for s in f.seeds] if f.seeds else None
  out = run_comparison(f.config, f.data_dir, seeds, f.out_dir)
  for model, rec in out["models"].items():
    if rec["status"] == "skipped":
      print(f"{model:18s} skipped: {rec['reason']}")
    else:
      print(f"{model:18s} " + ", ".join(
          f"{k}={v['mean']:.4f}±{v['std']:.4f}" for k, v in rec["metrics"].items())
          + f"  (seeds {rec['seeds']})")
  print(out["path"])


if __name__ == "__main__":
  _define_flags()
  flags.mark_flag_as_required("config")
  app.run(main)
