r"""The autoencoder ablations of issue #6 on the embedded anime subsample, several seeds each.

  nohup nice -n 5 python -m experiments.ablate_anime_ae \
      --config experiments/configs/ablate_anime_ae.py:anime &
  python -m experiments.ablate_anime_ae --config experiments/configs/ablate_anime_ae.py:quick \
      --ablations noise --seeds 0 --out_dir /tmp/ablate

Ablations (experiments/configs/ablate_anime_ae.py; baseline variant first):
  noise         bottleneck noise std 0.1 ("on") vs 0 ("off")
  dropout       input dropout rate 0.4 vs 0.2 / 0.6 (the seed asks about its effect on
                recommending specials and ONAs: every protocol-A run also records the share of
                Special/ONA/OVA/Movie among the test users' top-20, "<variant>/top20_share_non_tv",
                beside the share among the test targets and training rows in extra.reference)
  heads         separate decoder heads vs one shared decoder trunk
  weighting     uncertainty weighting (Kendall et al.) vs fixed weights 1 / 1
  architecture  the two-head model vs the seed's old model (anime_ae.legacy: no bottleneck,
                2 tanh layers, weighted MSE, popularity attenuation picked on validation)
  dropped       "watched, not rated" rows treated as dropped (this ablation only; the anime
                subsample has no watch status) with 2 stars ("fixed") or mu_u - 1.5 sigma_u
                ("user_relative"), vs the default user mean ("unrated_mean"); rating MAE
Each ablation x seed: every variant on the same split (seed s = split seed and training seed);
protocol A (ratings > 7, users with >= 5 items, as experiments/eval_anime_ae.py run_ranking)
except "dropped" (eval_anime_ae.py's mae data: all rows, users with >= 5 ratings).

Writes, after every seed of every ablation (so a cut-short run keeps what finished), into
--out_dir (default runs/results; the project's record: --out_dir experiments/results, and
--overwrite to replace its files; folder and files are checked before any data is read):
  <out_dir>/ablation_ae_<ablation><--name_suffix>.json   recsys_core.results schema;
      metrics "<variant>/<metric>" (per-seed lists summarised) and "<variant>/diff/<metric>"
      (variant minus baseline, paired per seed); extra: variants, baseline, per-run best step,
      train seconds, validation and training-loss curves, type shares (dropout), attenuation
      (legacy)
  <out_dir>/plots/ablation_ae_<ablation>.png   validation metric vs step (mean +- std
      band per variant) and the training presence loss.

Shape glossary: U users, I items, V variants, R seeds, S eval steps.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from anime_ae import ablation
from experiments import common
from experiments import plots
from experiments.configs import baselines as baselines_config
from recsys_core import results, splits
from recsys_core.data import filters, load_dataset
from recsys_core.data.types import Interactions

FLAGS = flags.FLAGS


def _define_flags():
  """Defined only when run as a binary, so importing this module never collides with
  another binary's --config/--seeds/--out_dir."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file("config", None, "experiments/configs/ablate_anime_ae.py:anime")
  flags.DEFINE_list("ablations", None, "Subset of config.ablations (default: all, in order).")
  flags.DEFINE_list("seeds", None, "Seeds (default config.seeds).")
  common.define_result_flags("out_dir", " Plots go to <out_dir>/plots.")
  flags.DEFINE_string("name_suffix", "", "Appended to the result/plot names, e.g. _long for a "
                      "run with --config.train.steps overridden.")


def ranking_data(x: Interactions, pcfg) -> Interactions:
  """Protocol-A preprocessing of experiments/eval_anime_ae.py (threshold, >= 5 items)."""
  x = filters.filter_by_rating(x, pcfg.rating_threshold)
  x = filters.filter_min_interactions(x, min_user_interactions=pcfg.min_user_items)
  return filters.reindex(x)


def mae_data(x: Interactions, min_rated: int = 5) -> Interactions:
  """eval_anime_ae.py's MAE data: all rows of users with >= `min_rated` explicit ratings."""
  rated = np.zeros(x.num_users, np.int64)
  np.add.at(rated, x.users[~np.isnan(x.ratings)], 1)
  return filters.reindex(x.select(rated[x.users] >= min_rated))


def _paired_diffs(per_variant: Mapping[str, list[dict]], baseline: str, keys) -> dict:
  out = {}
  for v, runs in per_variant.items():
    if v == baseline:
      continue
    for k in keys:
      out[f"{v}/diff/{k}"] = [r[k] - b[k] for r, b in zip(runs, per_variant[baseline])]
  return out


def result_names(names: Sequence[str], name_suffix: str = "") -> list[str]:
  """The result (and plot) names of ablations `names`."""
  return [f"ablation_ae_{name}{name_suffix}" for name in names]


def write_ablation(name: str, spec, cfg, variant_cfgs: Mapping[str, Any],
                   runs: Mapping[str, list], seeds: Sequence[int], wall: float,
                   folder: results.ResultFolder, dataset: str,
                   reference: Optional[dict] = None, name_suffix: str = "") -> tuple[str, str]:
  """Writes the result JSON and the plot of one ablation from its finished runs."""
  protocol = spec.protocol
  keys = (ablation.RANK_METRICS if protocol == "ranking"
          else ablation.MAE_METRICS + ablation.RANK_METRICS)
  tests = {v: [r.test for r in rs] for v, rs in runs.items()}
  metrics = {f"{v}/{k}": [t[k] for t in ts] for v, ts in tests.items() for k in keys}
  metrics.update(_paired_diffs(tests, spec.baseline, keys))
  curve_key = "ndcg@100" if protocol == "ranking" else "mae"
  curves, loss_curves, raw = {}, {}, {}
  for v, rs in runs.items():
    curves[v] = dict(ablation.curve_summary([r.eval_steps for r in rs],
                                            [r.eval_curve[curve_key] for r in rs]), n=len(rs))
    if all("loss_presence" in r.train_curve for r in rs):
      loss_curves[v] = dict(ablation.curve_summary(
          [r.train_steps for r in rs], [r.train_curve["loss_presence"] for r in rs]), n=len(rs))
    raw[v] = [{"seed": int(s), "best_step": r.best_step, "train_seconds": round(r.seconds, 1),
               "eval_steps": r.eval_steps, "eval": r.eval_curve, "train_steps": r.train_steps,
               "train": r.train_curve, **r.extra} for s, r in zip(seeds, rs)]
  extra = {
      "ablation": name, "baseline": spec.baseline, "variants": list(runs),
      "selection": ("validation ndcg@100" if protocol == "ranking" else "validation MAE (stars)"),
      "curve_metric": f"validation {curve_key}",
      "curves": curves, "train_loss_curves": loss_curves, "runs": raw,
  }
  if reference:
    extra["reference"] = reference
  if all("type_shares" in r.extra for rs in runs.values() for r in rs):
    for v, rs in runs.items():
      metrics[f"{v}/top{cfg.type_share_k}_share_non_tv"] = [r.extra["type_shares"]["non_tv"]
                                                           for r in rs]
  if name == "architecture":
    for v, rs in runs.items():
      if all("attenuation" in r.extra for r in rs):
        extra.setdefault("legacy_attenuation", {})[v] = [r.extra["attenuation"] for r in rs]
  config = {"baseline": cfg.to_dict(),
            "variants": {v: c.to_dict() for v, c in variant_cfgs.items()},
            "protocol": protocol}
  result = f"ablation_ae_{name}{name_suffix}"
  path = folder.write_result(
      name=result, dataset=dataset,
      protocol="strong_generalization" if protocol == "ranking" else "rating_mae",
      model="anime_ae", config=config, metrics=metrics, seeds=list(seeds), wall_seconds=wall,
      extra=extra)
  png = folder.claim([os.path.join("plots", result)], ".png")[0]
  os.makedirs(os.path.dirname(png), exist_ok=True)
  panels = [(f"validation {curve_key}", curves)]
  if loss_curves:
    panels.append(("training presence NLL", loss_curves))
  png = plots.curve_bands(
      png, panels,
      f"anime AE ablation '{name}{name_suffix}' ({len(seeds)} seed(s), mean ± std)")
  return path, png


def check_names(cfg, names: Sequence[str]) -> None:
  """Raises ValueError unless every ablation of `names` is one of the config's."""
  unknown = [n for n in names if n not in cfg.ablations]
  if unknown:
    raise ValueError(f"unknown ablations {unknown}; known: {list(cfg.ablations)}")


def run_ablations(cfg, names: Sequence[str], seeds: Sequence[int],
                  data: Mapping[str, Interactions],
                  out_dir: Optional[str | results.ResultFolder] = None,
                  item_types: Optional[tuple[np.ndarray, np.ndarray]] = None,
                  pcfg=None, dataset: str = "anime",
                  say: Callable[[str], None] = print, name_suffix: str = "",
                  overwrite: bool = False) -> dict[str, str]:
  """Runs the ablations `names` over `seeds`, writing after every seed. Returns name -> path.

  data: protocol ("ranking", "mae") -> preprocessed interactions.
  out_dir: the result folder (default runs/results; plots in its plots/), or a
    results.ResultFolder already checked; existing files are refused unless `overwrite`.
  item_types: (item ids [N], anime type [N]) of the catalogue, mapped onto each split's items.
  """
  check_names(cfg, names)
  folder = (out_dir if isinstance(out_dir, results.ResultFolder)
            else results.ResultFolder(out_dir, overwrite, "--out_dir"))
  folder.claim(result_names(names, name_suffix))
  folder.claim([os.path.join("plots", n) for n in result_names(names, name_suffix)], ".png")
  pcfg = pcfg or baselines_config.get_config("anime")
  ks, bs = tuple(pcfg.ks), int(pcfg.batch_size)
  cache: dict[tuple, ablation.RunResult] = {}
  split_cache: dict[tuple, Any] = {}
  paths = {}
  for name in names:
    if name not in cfg.ablations:
      raise ValueError(f"unknown ablation {name!r}; known: {list(cfg.ablations)}")
    spec = cfg.ablations[name]
    variants = list(spec.order)
    if sorted(variants) != sorted(spec.variants):
      raise ValueError(f"ablation {name}: order {variants} != variants {sorted(spec.variants)}")
    if spec.baseline not in variants:
      raise ValueError(f"ablation {name}: baseline {spec.baseline!r} is not a variant")
    variant_cfgs = {v: ablation.merge(_base(cfg), spec.variants[v]) for v in variants}
    runs = {v: [] for v in variants}
    t0 = time.perf_counter()
    done, reference = [], {}
    for seed in seeds:
      key = (spec.protocol, int(seed))
      if key not in split_cache:
        split_cache[key] = splits.strong_generalization_split(
            data[spec.protocol], seed=int(seed), target_fraction=pcfg.target_fraction)
      split = split_cache[key]
      types = None
      if item_types is not None and spec.protocol == "ranking":
        ids, tp = item_types
        types = np.asarray(tp)[np.searchsorted(ids, split.train.item_ids)]
        reference.setdefault("test_targets_share_non_tv", []).append(
            ablation.reference_type_shares(split.test_targets, types)["non_tv"])
        reference.setdefault("train_rows_share_non_tv", []).append(
            ablation.reference_type_shares(split.train, types)["non_tv"])
      for v in variants:
        vc = variant_cfgs[v]
        ck = (spec.protocol, int(seed), json.dumps(vc.to_dict(), sort_keys=True, default=str))
        if ck not in cache:
          if spec.protocol == "ranking":
            cache[ck] = ablation.ranking_run(vc, split, seed, ks, bs, types, cfg.type_share_k)
          elif spec.protocol == "mae":
            cache[ck] = ablation.mae_run(vc, split, seed, ks, bs)
          else:
            raise ValueError(f"ablation {name}: unknown protocol {spec.protocol!r}")
        else:
          say(f"[{name}] seed {seed} {v}: same config as an earlier run, reused")
        r = cache[ck]
        runs[v].append(r)
        say(f"[{name}] seed {seed} {v}: " + " ".join(f"{k}={x:.4f}" for k, x in r.test.items())
            + f" best_step={r.best_step} ({r.seconds:.0f} s)")
      done.append(int(seed))
      paths[name], png = write_ablation(name, spec, cfg, variant_cfgs, runs, done,
                                        time.perf_counter() - t0, folder, dataset, reference,
                                        name_suffix)
      say(f"[{name}] {len(done)} seed(s) -> {paths[name]}, {png}")
    _print_summary(name, spec, runs, say)
  return paths


_BOOKKEEPING = ("ablations", "seeds", "name")


def _base(cfg):
  """The baseline config: cfg without the ablation bookkeeping keys."""
  base = ablation.merge(cfg, {})
  for key in _BOOKKEEPING:
    if key in base:
      del base[key]
  return base


def _print_summary(name, spec, runs, say) -> None:
  keys = ablation.RANK_METRICS if spec.protocol == "ranking" else ablation.MAE_METRICS
  for v, rs in runs.items():
    cells = []
    for k in keys:
      vals = np.asarray([r.test[k] for r in rs])
      cells.append(f"{k}={vals.mean():.4f}±{vals.std():.4f}")
    say(f"  {name:12s} {v:14s} " + "  ".join(cells))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cfg = FLAGS.config
  names = FLAGS.ablations or list(cfg.ablations)
  try:
    seeds = common.parse_seeds(FLAGS.seeds, cfg.seeds)
    check_names(cfg, names)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  names_out = result_names(names, FLAGS.name_suffix)
  folder = common.result_folder(names_out, flag="out_dir", plots=names_out)
  pcfg = baselines_config.get_config("anime")
  from recsys_core.data.loaders import load_anime  # pylint: disable=g-import-not-at-top
  anime = load_anime(None)
  x = anime.interactions
  data = {"ranking": ranking_data(x, pcfg), "mae": mae_data(x)}
  logging.info("ranking data %d users x %d items; mae data %d users x %d items",
               data["ranking"].num_users, data["ranking"].num_items, data["mae"].num_users,
               data["mae"].num_items)
  run_ablations(cfg, names, seeds, data, folder, (x.item_ids, anime.info.type), pcfg,
                say=lambda s: print(s, flush=True), name_suffix=FLAGS.name_suffix)


if __name__ == "__main__":
  _define_flags()
  flags.mark_flag_as_required("config")
  app.run(main)
