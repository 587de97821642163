r"""Evaluates the two-head autoencoder against popularity and EASE, and its rating MAE.

  nice python -m experiments.eval_anime_ae --config experiments/configs/anime_ae.py:recipe=default \
      --datasets anime,ml-latest-small,ml-100k --data_dir ../shared/data

The autoencoder is the AE sections of the config (`config.model`, e.g.
--config.model.train.steps=600); the config's data and protocol sections are not read (the
datasets are --datasets, the protocol this binary's own). Result files record the AE sections
as their config (top-level model, loss, ratings, data, train, recommend).

Parts (--parts):
  ranking    protocol A (strong generalisation) over the split seeds: the same preprocessing
             as experiments/eval_baselines.py (ratings above the dataset's threshold from
             experiments/configs/baselines.py, users with >= 5 items), per seed the Liang et
             al. split; popularity, EASE (λ chosen on validation NDCG@100) and the autoencoder
             (params chosen on validation NDCG@100 every config.model.train.eval_every
             steps),
             Recall@20/50 and NDCG@100 on the test users.
  mae        rating prediction on the same kind of user split, but on all explicit ratings
             (anime: plus the "watched, not rated" rows as inferred inputs): the autoencoder
             trained on the training users' full profiles predicts, from each test user's
             80% fold-in, the stars of their 20% held-out rated items; beside the user-mean
             baseline (the mean of the user's fold-in ratings) and biased matrix factorisation
             (recsys_core/rating_baselines.py: ALS on the training users, test users folded
             in from the same fold-in ratings).
  benchmark  batched holdout analysis of a 200-item profile vs the per-item loop (same run).

Result files: <out_dir>/anime_ae_<tag>_<dataset>_<part>.json (rewritten after every seed),
<out_dir> runs/results by default; the project's record takes --out_dir experiments/results
(and --overwrite to replace its files). Folder and files are checked before any data is read.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags
import numpy as np

from anime_ae import analysis, recommend
from anime_ae.config import AEConfig
from anime_ae.scorer import AutoencoderScorer
from experiments import common
from experiments.configs import baselines as baselines_config
from recsys_core import baselines, evaluation, results, splits
from recsys_core.data import filters, load_dataset
from recsys_core.data.types import Interactions
from recsys_core.rating_baselines import BiasedMF, BiasedMFConfig

_CONFIG = config_flags.DEFINE_config_file("config", None,
                                          "experiments/configs/anime_ae.py:recipe=default")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the dataset folders (shared/data); "
                                "not needed for the embedded anime data.")
_DATASETS = flags.DEFINE_list("datasets", ["anime"], "anime, ml-latest-small, ml-100k")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Split seeds.")
_PARTS = flags.DEFINE_list("parts", ["ranking", "mae"], "ranking, mae, benchmark")
_TAG = flags.DEFINE_string("tag", "eval", "Result name tag (records tuning tries apart).")
common.define_result_flags("out_dir")
_EASE = flags.DEFINE_boolean("baselines", True, "Also run popularity and EASE (ranking part).")
_EASE_GRID = flags.DEFINE_list("ease_l2_grid", None, "EASE λ grid (default: the one of "
                               "experiments/configs/baselines.py for the dataset).")

_TAGS = {"anime": "anime", "ml-latest-small": "mlsmall", "ml-100k": "ml100k"}
RANK_METRICS = ("recall@20", "recall@50", "ndcg@100")


def protocol_config(dataset: str):
  """Protocol-A settings shared with experiments/eval_baselines.py (threshold, grid, ...)."""
  return baselines_config.get_config(_TAGS[dataset])


def preprocess(x: Interactions, pcfg) -> Interactions:
  x = filters.filter_by_rating(x, pcfg.rating_threshold)
  x = filters.filter_min_interactions(x, min_user_interactions=pcfg.min_user_items)
  return filters.reindex(x)


def _eval_fns(split, pcfg):
  ks = tuple(pcfg.ks)
  val = lambda s: evaluation.evaluate_strong_generalization(s, split.val_inputs, split.val_targets,
                                                           ks=ks, batch_size=pcfg.batch_size)
  test = lambda s: evaluation.evaluate_strong_generalization(s, split.test_inputs,
                                                            split.test_targets, ks=ks,
                                                            batch_size=pcfg.batch_size)
  return val, test


def _ease_on_validation(split, pcfg, val, test) -> tuple[dict, float]:
  best, best_val = None, None
  for l2 in (_EASE_GRID.value or pcfg.ease_l2_grid):
    s = baselines.EASE(l2=float(l2)).fit(split.train)
    v = val(s)
    if best_val is None or v["ndcg@100"] > best_val["ndcg@100"]:
      best, best_val = s, v
  return test(best), best.l2


def ae_sections(cfg) -> dict:
  """The AE sections of the pipeline config `cfg` (config.model less its name): what the
  autoencoder is built from and what the result files record as their config."""
  return {k: v for k, v in cfg.model.to_dict().items() if k != "name"}


def _ae_config(cfg, seed: int) -> AEConfig:
  ae = AEConfig.from_config_dict(ae_sections(cfg))
  return dataclasses.replace(ae, train=dataclasses.replace(ae.train, seed=seed))


def run_ranking(dataset: str, cfg, seeds: list[int], on_seed=None) -> dict[str, Any]:
  """Protocol A over `seeds`; on_seed(partial result, seeds done) after each seed."""
  pcfg = protocol_config(dataset)
  x = preprocess(load_dataset(dataset, _DATA_DIR.value), pcfg)
  per = {"anime_ae": [], "popularity": [], "ease": []}
  extra = {"ease_lambda": [], "ae_best_step": [], "ae_train_seconds": [], "ae_history": []}
  for seed in seeds:
    split = splits.strong_generalization_split(x, seed=seed, target_fraction=pcfg.target_fraction)
    val, test = _eval_fns(split, pcfg)
    if _EASE.value:
      per["popularity"].append(test(baselines.Popularity().fit(split.train)))
      ease_test, l2 = _ease_on_validation(split, pcfg, val, test)
      per["ease"].append(ease_test)
      extra["ease_lambda"].append(l2)
    t0 = time.perf_counter()
    ae = AutoencoderScorer(_ae_config(cfg, seed)).fit(split.train, validate=val,
                                                      best_metric="ndcg@100")
    extra["ae_train_seconds"].append(round(time.perf_counter() - t0, 1))
    extra["ae_best_step"].append(ae.best_step)
    extra["ae_history"].append([{k: v for k, v in r.items() if k != "wall_time"}
                                for r in ae.history if r["event"] == "eval"])
    per["anime_ae"].append(test(ae))
    logging.info("seed %d %s: %s", seed, dataset, {m: {k: round(v[-1][k], 4) for k in RANK_METRICS}
                                                   for m, v in per.items() if v})
    r = {"per_model": per, "extra": extra, "num_items": int(x.num_items),
         "num_users": int(x.num_users), "threshold": pcfg.rating_threshold}
    if on_seed is not None:
      on_seed(r, seeds[:seeds.index(seed) + 1])
  return r


def _rated_data(dataset: str) -> Interactions:
  x = load_dataset(dataset, _DATA_DIR.value)
  rated = np.zeros(x.num_users, np.int64)
  np.add.at(rated, x.users[~np.isnan(x.ratings)], 1)
  x = x.select(rated[x.users] >= 5)
  return filters.reindex(x)


def run_mae(dataset: str, cfg, seeds: list[int], on_seed=None) -> dict[str, Any]:
  """Rating MAE on held-out rated items (stars and normalised units) vs the user mean, and
  in stars vs biased matrix factorisation (ALS, the test users folded in)."""
  x = _rated_data(dataset)
  out = {"ae_mae": [], "user_mean_mae": [], "ae_mae_normalised": [], "user_mean_mae_normalised": [],
         "num_targets": [], "ae_best_step": [], "ae_train_seconds": [], "biased_mf_mae": []}
  for seed in seeds:
    split = splits.strong_generalization_split(x, seed=seed)

    def mae_of(scorer, inputs, targets):
      pred = scorer.predict_stars(inputs)
      ok = ~np.isnan(targets.ratings)
      p = pred[targets.users[ok], targets.items[ok]]
      return float(np.mean(np.abs(p - targets.ratings[ok]))), int(ok.sum())

    t0 = time.perf_counter()
    ae = AutoencoderScorer(_ae_config(cfg, seed)).fit(
        split.train,
        validate=lambda s: {"neg_mae": -mae_of(s, split.val_inputs, split.val_targets)[0]},
        best_metric="neg_mae")
    out["ae_train_seconds"].append(round(time.perf_counter() - t0, 1))
    out["ae_best_step"].append(ae.best_step)
    tr = ae.model.transform
    mae, n = mae_of(ae, split.test_inputs, split.test_targets)
    # User-mean baseline: the mean of the user's fold-in explicit ratings (training-users'
    # global mean for a user without any).
    ti, tt = split.test_inputs, split.test_targets
    stats = tr.user_stats(ti.users, ti.ratings, ti.num_users)
    global_mean = float(np.nanmean(split.train.ratings))
    user_mean = np.where(stats.count > 0, stats.mean, global_mean)
    ok = ~np.isnan(tt.ratings)
    um = float(np.mean(np.abs(user_mean[tt.users[ok]] - tt.ratings[ok])))
    # Biased MF: fitted on the training users, each test user folded in from the same inputs.
    mf = BiasedMF(BiasedMFConfig(seed=seed)).fit(split.train)
    mf_mae = mae_of(mf, ti, tt)[0]
    # The same in the hybrid normalised units (the seed's tables).
    profiles = ae.profiles(ti)
    outs = ae.model.outputs(profiles)
    pred_n = outs.rating_pred[tt.users[ok], tt.items[ok]]
    true_n = tr.normalize(tt.ratings[ok], stats.mean[tt.users[ok]], stats.std[tt.users[ok]])
    mean_n = tr.normalize(user_mean[tt.users[ok]], stats.mean[tt.users[ok]],
                          stats.std[tt.users[ok]])
    out["ae_mae"].append(mae)
    out["user_mean_mae"].append(um)
    out["biased_mf_mae"].append(mf_mae)
    out["ae_mae_normalised"].append(float(np.mean(np.abs(pred_n - true_n))))
    out["user_mean_mae_normalised"].append(float(np.mean(np.abs(mean_n - true_n))))
    out["num_targets"].append(n)
    logging.info("seed %d %s: MAE ae %.4f user-mean %.4f biased-mf %.4f (%d targets)", seed,
                 dataset, mae, um, mf_mae, n)
    if on_seed is not None:
      on_seed(out, seeds[:seeds.index(seed) + 1])
  return out


def run_benchmark(cfg, n_items: int = 200, repeats: int = 3) -> dict[str, Any]:
  """Batched holdout of an n-item profile vs the per-item loop, on a quickly trained model."""
  from anime_ae.profiles import (  # pylint: disable=g-import-not-at-top
      build_profiles, filter_profiles)
  x = load_dataset("anime", None)
  ae_cfg = AEConfig.from_config_dict(ae_sections(cfg))
  transform = ae_cfg.ratings.make(x.ratings)
  profiles = build_profiles(x, transform)
  lengths = profiles.lengths()
  u = int(np.flatnonzero(lengths >= n_items)[0])
  items, values, explicit = profiles.profile(u)
  items, values, explicit = items[:n_items], values[:n_items], explicit[:n_items]
  tf = ae_cfg.model.make(x.num_items)
  from anime_ae.training import init_params  # pylint: disable=g-import-not-at-top
  params = init_params(tf, x.num_items, 0)  # timing does not depend on the trained values
  batched_fn = analysis.fast_holdout_fn(ae_cfg.model, params, x.num_items)
  loop_fn = recommend.jit_apply_eval(tf, params, pad=False)
  analysis.holdout_profile(batched_fn, items, values, explicit)      # compile
  analysis.holdout_profile_loop(loop_fn, x.num_items, items[:2], values[:2], explicit[:2])
  tb, tl = [], []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fast = analysis.holdout_profile(batched_fn, items, values, explicit)
    tb.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    slow = analysis.holdout_profile_loop(loop_fn, x.num_items, items, values, explicit)
    tl.append(time.perf_counter() - t0)
  max_diff = float(np.max(np.abs(fast.pred_rating - slow.pred_rating)))
  return {"batched_seconds": tb, "loop_seconds": tl,
          "speedup": float(np.median(tl) / np.median(tb)),
          "max_abs_diff_pred": max_diff, "profile_items": n_items, "num_items": int(x.num_items),
          "model": dataclasses.asdict(ae_cfg.model)}


def result_names(datasets: list[str], parts: list[str], tag: str) -> list[str]:
  """The result file names (without .json) the run writes."""
  names = [f"anime_ae_{tag}_{_TAGS[d]}_{suffix}" for d in datasets
           for part, suffix in (("ranking", "strong_generalization"), ("mae", "rating_mae"))
           if part in parts]
  return names + (["anime_ae_holdout_benchmark"] if "benchmark" in parts else [])


def write_ranking(folder: results.ResultFolder, dataset: str, cfg, r: dict, seeds: list[int],
                  wall: float) -> None:
  """Writes (after every seed, so a cut-short run keeps its finished seeds) and prints."""
  metrics = {k: [t[k] for t in r["per_model"]["anime_ae"]] for k in RANK_METRICS}
  base = {m: {k: results.summarize([t[k] for t in r["per_model"][m]]) for k in RANK_METRICS}
          for m in ("popularity", "ease") if r["per_model"][m]}
  extra = dict(r["extra"], baselines=base, threshold=r["threshold"],
               ease_l2_grid=[float(v) for v in (_EASE_GRID.value or
                                                protocol_config(dataset).ease_l2_grid)],
               data={"users": r["num_users"], "items": r["num_items"]})
  if "ease" in base:
    extra["ae_minus_ease"] = {k: float(np.mean(metrics[k]) - base["ease"][k]["mean"])
                              for k in RANK_METRICS}
  path = folder.write_result(
      name=f"anime_ae_{_TAG.value}_{_TAGS[dataset]}_strong_generalization", dataset=dataset,
      protocol="strong_generalization", model="anime_ae", config=ae_sections(cfg),
      metrics=metrics, seeds=seeds, wall_seconds=wall, extra=extra)
  print(f"{dataset} protocol A ({len(seeds)} seeds) -> {path}")
  rows = [("anime_ae", {k: results.summarize(v) for k, v in metrics.items()})] + list(base.items())
  for m, ms in rows:
    print(f"  {m:10s} " + "  ".join(f"{k}={ms[k]['mean']:.4f}±{ms[k]['std']:.4f}"
                                    for k in RANK_METRICS), flush=True)


def write_mae(folder: results.ResultFolder, dataset: str, cfg, r: dict, seeds: list[int],
              wall: float) -> None:
  reduction = 1 - np.mean(r["ae_mae"]) / np.mean(r["user_mean_mae"])
  metrics = {"mae": r["ae_mae"], "mae/user_mean": r["user_mean_mae"],
             "mae/biased_mf": r["biased_mf_mae"],
             "mae_normalised": r["ae_mae_normalised"],
             "mae_normalised/user_mean": r["user_mean_mae_normalised"]}
  path = folder.write_result(
      name=f"anime_ae_{_TAG.value}_{_TAGS[dataset]}_rating_mae", dataset=dataset,
      protocol="rating_mae", model="anime_ae", config=ae_sections(cfg), metrics=metrics,
      seeds=seeds, wall_seconds=wall,
      extra={"mae_reduction_vs_user_mean": float(reduction), "num_targets": r["num_targets"],
             "ae_best_step": r["ae_best_step"], "ae_train_seconds": r["ae_train_seconds"]})
  print(f"{dataset} rating MAE ({len(seeds)} seeds): ae {np.mean(r['ae_mae']):.4f}±"
        f"{np.std(r['ae_mae']):.4f}, user-mean {np.mean(r['user_mean_mae']):.4f} "
        f"({100 * reduction:.1f}% lower), biased-mf {np.mean(r['biased_mf_mae']):.4f} "
        f"-> {path}", flush=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cfg = _CONFIG.value
  try:
    seeds = common.parse_seeds(_SEEDS.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  unknown = [d for d in _DATASETS.value if d not in _TAGS]
  if unknown:
    raise app.UsageError(f"--datasets: unknown {unknown}; known: {sorted(_TAGS)}")
  unknown = [p for p in _PARTS.value if p not in ("ranking", "mae", "benchmark")]
  if unknown:
    raise app.UsageError(f"--parts: unknown {unknown}; known: ranking, mae, benchmark")
  folder = common.result_folder(result_names(_DATASETS.value, _PARTS.value, _TAG.value),
                                flag="out_dir")
  for dataset in _DATASETS.value:
    t0 = time.perf_counter()
    if "ranking" in _PARTS.value:
      run_ranking(dataset, cfg, seeds, lambda r, done: write_ranking(
          folder, dataset, cfg, r, done, time.perf_counter() - t0))
    t0 = time.perf_counter()
    if "mae" in _PARTS.value:
      run_mae(dataset, cfg, seeds, lambda r, done: write_mae(
          folder, dataset, cfg, r, done, time.perf_counter() - t0))
  if "benchmark" in _PARTS.value:
    t0 = time.perf_counter()
    r = run_benchmark(cfg)
    path = folder.write_result(
        name="anime_ae_holdout_benchmark", dataset="anime", protocol="speed", model="anime_ae",
        config={"model": r["model"], "profile_items": r["profile_items"]},
        metrics={"batched_seconds": r["batched_seconds"], "loop_seconds": r["loop_seconds"],
                 "speedup": r["speedup"]}, seeds=[0], wall_seconds=time.perf_counter() - t0,
        extra={"max_abs_diff_pred": r["max_abs_diff_pred"]})
    print(f"holdout of a {r['profile_items']}-item profile: "
          f"batched {np.median(r['batched_seconds']):.3f} s, "
          f"loop {np.median(r['loop_seconds']):.3f} s, speedup {r['speedup']:.1f}x -> {path}")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
