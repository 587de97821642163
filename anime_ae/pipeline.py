"""Train, then print the seed's tables: the library core of experiments/train_anime_ae.py.

`train_and_report(config, workdir, holdout)`, `config` a pipeline config of
experiments/configs/anime_ae.py (its AE sections in `config.model`):
  1. reads the dataset of `config.data` (a named dataset from `data.dir`, the embedded anime
     subsample when it is None, or `data.name="file"`; item names for anime only) WITHOUT
     its protocol filters (rating threshold, items per user): the seed's tables use every
     row. Then the autoencoder's profile filters (`config.model.data.min_ratings`; watch
     status is a no-op for data without one), and `holdout.profiles` random profiles (seed
     `holdout.split_seed`) are held out;
  2. trains on the rest with `recsys_core.train.fit` (checkpoints and metrics.jsonl under
     <workdir>/train; `config.seed` replaces `model.train.seed`, as in the pipeline), saves
     the usable model to <workdir>/model.npz;
  3. prints and returns the evaluation-set holdout tables over the held-out profiles, the
     holdout table of one example profile, its top-k recommendations with explanations, and
     bottleneck statistics; the same is written to <workdir>/report.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Callable, Optional

import numpy as np

from anime_ae import analysis, training
from anime_ae.config import AEConfig
from anime_ae.profiles import build_profiles, filter_profiles
from anime_ae.trained import Recommendation, TrainedAE
from recsys_core import pipeline
from recsys_core.config import check
from recsys_core.data import load_dataset, source
from recsys_core.data.loaders import DATASETS, load_anime, resolve_data_dir
from recsys_core.data.types import Interactions


@dataclasses.dataclass(frozen=True)
class Holdout:
  """The held-out profiles of the report.

  profiles: profiles kept out of training for the holdout tables (at most half of those
    that pass the profile filter).
  split_seed: seed of the random choice of the held-out profiles.
  example_profile: index among the held-out profiles of the example (taken modulo their
    number).
  """
  profiles: int = 200
  split_seed: int = 0
  example_profile: int = 0

  def __post_init__(self):
    check(self.profiles >= 1, "holdout.profiles", self.profiles, ">= 1")
    check(self.example_profile >= 0, "holdout.example_profile", self.example_profile, ">= 0")


def load_with_names(dataset: str, data_dir: Optional[str] = None
                    ) -> tuple[Interactions, Optional[np.ndarray]]:
  """(interactions, item names [I] or None). Anime: the embedded copy unless data_dir is given."""
  if dataset == "anime":
    folder = None if data_dir is None else os.path.join(resolve_data_dir(data_dir),
                                                        DATASETS["anime"].folder)
    data = load_anime(folder)
    return data.interactions, data.info.name
  return load_dataset(dataset, data_dir), None


def item_label(item: int, item_ids: np.ndarray, names: Optional[np.ndarray]) -> str:
  label = f"[{item_ids[item]}]"
  if names is not None and names[item]:
    label += f" {names[item]}"
  return label


def format_recommendations(recs: list[Recommendation], item_ids: np.ndarray,
                           names: Optional[np.ndarray]) -> str:
  lines = [f"{'#':>3} {'score':>8} {'P(in profile)':>13} {'pred':>5}  item"]
  for r, rec in enumerate(recs, 1):
    lines.append(f"{r:3d} {rec.score:8.3f} {100 * rec.prob:12.4f}% {rec.rating:5.2f}  "
                 f"{item_label(rec.item, item_ids, names)}")
    if rec.because:
      lines.append("        because you have: " + "; ".join(
          f"{item_label(k, item_ids, names)} ({c:+.3f})" for k, c in rec.because))
  return "\n".join(lines)


def user_rows(x: Interactions, u: int) -> tuple[np.ndarray, np.ndarray]:
  """(items, stars with NaN for unrated) of dense user u."""
  rows = np.flatnonzero(x.users == u)
  stars = (np.full(len(rows), np.nan, np.float32) if x.ratings is None
           else x.ratings[rows].astype(np.float32))
  return x.items[rows].astype(np.int64), stars


def load_data(data: source.DataConfig) -> tuple[Interactions, Optional[np.ndarray]]:
  """(raw interactions of `data`, item names [I] or None): `data.name` and `data.dir`, or the
  file of name="file"; no filters. Only the anime data has item names."""
  if data.name == "anime":
    return load_with_names("anime", data.dir)
  return source.read(data), None


def train_and_report(config: Any, workdir: str, holdout: Holdout = Holdout(),
                     out: Callable[[str], None] = print) -> dict:
  """Trains the autoencoder of the pipeline config `config` and reports on held-out profiles.

  Args:
    config: an experiments/configs/anime_ae.py config: the AE sections in `config.model`,
      the dataset in `config.data` (its protocol filters are not applied), `config.seed` the
      training seed. Every field is checked before any data is read.
    workdir: output folder (train/ checkpoints + metrics.jsonl, model.npz, report.json).
      Re-running with the same workdir resumes training from its checkpoint.
    holdout: the held-out profiles and the example profile.
    out: where the tables are printed.

  Returns:
    dict with "evaluation_holdout", "example_holdout", "recommendations", "bottleneck",
    "train" (last train record), "model_path", "num_train_profiles", "num_heldout_profiles".

  Raises:
    ValueError: a bad config field (named), a model other than anime_ae, or fewer than 2
      profiles passing the profile filter.
  """
  parsed = pipeline.parse(config)
  if not isinstance(parsed.model, AEConfig):
    raise ValueError(f"config.model.name={parsed.model_name!r}: train_and_report trains "
                     "anime_ae")
  ae = dataclasses.replace(parsed.model,
                           train=dataclasses.replace(parsed.model.train, seed=parsed.seed))
  x, names = load_data(parsed.data)
  if x.ratings is None or not np.any(np.isfinite(x.ratings)):
    # The tables compare predicted with given ratings (MAE) and the recommendations mix in
    # the rating head: without any rating both would be NaN or meaningless.
    raise ValueError(f"{x.source}: has no ratings, and the seed's holdout tables and mixed "
                     "recommendations need them; train the presence head alone with "
                     "python -m experiments.train --config experiments/configs/anime_ae.py:"
                     f"dataset=... (data.name={parsed.data.name!r})")
  transform = ae.ratings.make(x.ratings)
  profiles = build_profiles(x, transform)
  keep = filter_profiles(x, ae.data.min_ratings, keep_statuses=ae.data.keep_statuses)
  if len(keep) < 2:
    raise ValueError(f"{x.source}: only {len(keep)} profiles have >= {ae.data.min_ratings} "
                     "ratings")
  perm = np.random.default_rng(holdout.split_seed).permutation(keep)
  n_eval = min(int(holdout.profiles), len(keep) // 2)
  eval_idx, train_idx = np.sort(perm[:n_eval]), np.sort(perm[n_eval:])
  out(f"{parsed.data.label}: {x.num_users} users, {x.num_items} items, {len(x)} rows; "
      f"{len(keep)} profiles with >= {ae.data.min_ratings} ratings -> {len(train_idx)} train, "
      f"{len(eval_idx)} held out")

  os.makedirs(workdir, exist_ok=True)
  train_profiles = profiles.subset(train_idx)
  result = training.train(train_profiles, ae, workdir=os.path.join(workdir, "train"))
  last = [r for r in result.history if r.get("event") == "train"][-1]
  out(f"trained {ae.train.steps} steps in {result.seconds:.1f} s: loss {last['loss']:.4f} "
      f"(presence {last['loss_presence']:.4f}, rating {last['loss_rating']:.4f}, learned "
      f"weights {last['weight_presence']:.3f} / {last['weight_rating']:.3f})")
  model = TrainedAE(ae, result.params, transform, np.asarray(x.item_ids),
                    dataset=parsed.data.label)
  model.set_population_popularity(train_profiles)
  model_path = model.save(os.path.join(workdir, "model.npz"))

  table = analysis.evaluation_set_holdout(model.holdout_fn, profiles, eval_idx)
  out(analysis.format_evaluation_table(table))

  u = int(eval_idx[int(holdout.example_profile) % len(eval_idx)])
  items, stars = user_rows(x, u)
  example = analysis.profile_table(model.holdout(items, stars))
  out(f"\nEXAMPLE PROFILE: user {x.user_ids[u]} ({len(items)} items)")
  out(analysis.format_profile_table(example))
  recs = model.recommend(items, stars)
  out(f"\nTOP-{len(recs)} RECOMMENDATIONS (mix {ae.recommend.mix}, niche boost "
      f"{ae.recommend.niche_boost}) for user {x.user_ids[u]}:")
  # Printed and reported in the ids users know (MyAnimeList ids for anime), as
  # experiments/recommend_anime reads them.
  public = source.public_item_ids(parsed.data, model.item_ids)
  out(format_recommendations(recs, public, names))

  bottleneck = analysis.bottleneck_stats(model.apply_eval, profiles, eval_idx)
  out("\n" + analysis.format_bottleneck(bottleneck))

  report = {"evaluation_holdout": table, "example_holdout": example,
            "example_user": int(x.user_ids[u]),
            "recommendations": [dict(item_id=int(public[r.item]),
                                     name=None if names is None else str(names[r.item]),
                                     score=r.score, prob=r.prob, rating=r.rating,
                                     because=[(int(public[k]), c) for k, c in r.because])
                                for r in recs],
            "bottleneck": bottleneck, "train": last, "model_path": model_path,
            "num_train_profiles": int(len(train_idx)), "num_heldout_profiles": int(len(eval_idx))}
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(report, f, indent=1, default=float)
  return report
