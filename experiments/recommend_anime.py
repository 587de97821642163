r"""Recommendations for one profile from a trained autoencoder.

  python -m experiments.recommend_anime --model runs/main/model.npz \
      --items 1535:10,5114:9,1:8,19 --plan_to_watch 82,127 --mix 0.2 --niche_boost 0.3
  python -m experiments.recommend_anime --model .../model.npz --profile_csv me.csv

Profile: MyAnimeList anime ids (the public anime dataset's anime_id; `--ids=model` takes the
subsample's re-indexed Anime_ID instead) with optional ratings, as
`--items ID[:RATING],...` (no rating = watched, not rated) or a CSV with the header
`item_id,rating` (empty rating = unrated). Plan-to-watch: the anime data has no plan-to-watch
lists, so the user supplies theirs with `--plan_to_watch ID,...` or `--plan_to_watch_csv`
(one `item_id` column); `--filter_plan_to_watch=false` lets them be recommended.
Unknown ids and malformed ratings are errors that name the id (and the CSV line); a --model
file that is not an autoencoder model written by experiments/train_anime_ae.py (a Phoenix
checkpoint, a CSV, ...) is an error saying so, before anything is loaded.
Names come from anime_info (embedded data, or --data_dir) when the model is an anime model.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
from typing import Optional
import zipfile

from absl import app
from absl import flags
import numpy as np

from anime_ae.pipeline import format_recommendations, load_with_names
from anime_ae.trained import TrainedAE
from recsys_core.data import source

_MODEL = flags.DEFINE_string("model", None, "model.npz written by experiments/train_anime_ae.py")
_ITEMS = flags.DEFINE_list("items", None, "Profile as ID[:RATING],... (original item ids).")
_CSV = flags.DEFINE_string("profile_csv", None, "Profile CSV with header item_id,rating.")
_PTW = flags.DEFINE_list("plan_to_watch", [], "Plan-to-watch item ids.")
_PTW_CSV = flags.DEFINE_string("plan_to_watch_csv", None, "CSV with header item_id.")
_FILTER_PTW = flags.DEFINE_boolean("filter_plan_to_watch", True,
                                   "Never recommend plan-to-watch items.")
_MIX = flags.DEFINE_float("mix", None, "Presence/rating mix in [0, 1] (0 = rating only, "
                          "1 = presence only); default: the model's config (0.2).")
_NICHE = flags.DEFINE_float("niche_boost", None,
                            "Niche boost in [0, 1]; default: the config's (0).")
_TOP_K = flags.DEFINE_integer("top_k", None, "How many recommendations (>= 1); default: "
                              "the model's config.", lower_bound=1)
_EXPLAIN = flags.DEFINE_boolean("explain", True, "Show the profile items behind each one.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the dataset folders, for names.")
_NAMES = flags.DEFINE_boolean("names", True, "Load anime names (anime models only).")
_IDS = flags.DEFINE_enum("ids", "mal", ["mal", "model"], "Anime models: read and print "
                         "MyAnimeList anime ids (the public dataset's anime_id) or the "
                         "model's own (the subsample's re-indexed) ids.")


class ProfileError(ValueError):
  """A profile entry could not be used (unknown id, bad rating, malformed CSV)."""


class ModelFileError(ValueError):
  """--model is not an autoencoder model file of experiments/train_anime_ae.py."""


# What TrainedAE.save writes (recsys_core.train.save_params): a no-pickle .npz whose
# "__spec__" JSON lists the leaves (keys under "params", "item_ids", ...) and holds the
# metadata with the AE config and the rating transform.
_SPEC_KEY = "__spec__"
_META_KEYS = ("config", "transform")
_TREE_KEYS = ("params", "item_ids")


def check_model_file(path: str) -> None:
  """Raises ModelFileError unless `path` looks like a TrainedAE.save file (cheap: reads the
  file's spec, not its arrays)."""
  what = (f"--model={path} is not an autoencoder model saved by experiments/train_anime_ae.py "
          "(<workdir>/model.npz)")
  if not os.path.isfile(path):
    raise ModelFileError(f"--model={path}: no such file")
  try:
    z = np.load(path, allow_pickle=False)
  except ValueError:  # numpy reads anything that is not .npy/.npz as a pickle
    raise ModelFileError(f"{what}: not a NumPy .npz file") from None
  except (OSError, EOFError, zipfile.BadZipFile) as e:
    raise ModelFileError(f"{what}: unreadable ({type(e).__name__}: {e})") from None
  if not isinstance(z, np.lib.npyio.NpzFile):
    raise ModelFileError(f"{what}: a single .npy array, not an .npz model file")
  with z:
    if _SPEC_KEY not in z.files:
      raise ModelFileError(f"{what}: an .npz without the parameter-file spec")
    try:
      spec = json.loads(str(z[_SPEC_KEY]))
    except (ValueError, zipfile.BadZipFile) as e:
      raise ModelFileError(f"{what}: damaged spec ({e})") from None
  meta = spec.get("metadata") if isinstance(spec, dict) else None
  tree = spec.get("tree") if isinstance(spec, dict) else None
  if not isinstance(meta, dict) or not isinstance(tree, list):
    raise ModelFileError(f"{what}: damaged spec")
  tops = {str(leaf["keys"][0][1]) for leaf in tree
          if isinstance(leaf, dict) and leaf.get("keys")}
  missing = ([f"metadata.{k}" for k in _META_KEYS if not isinstance(meta.get(k), dict)]
             + [k for k in _TREE_KEYS if k not in tops])
  if missing:
    raise ModelFileError(f"{what}: it has no {', '.join(missing)} (a training checkpoint "
                         "such as best_params.npz holds parameters only)")


def load_model(path: str) -> TrainedAE:
  """TrainedAE.load after `check_model_file`; a file that passes the check but does not load
  is a ModelFileError too."""
  check_model_file(path)
  try:
    return TrainedAE.load(path)
  except (KeyError, TypeError, ValueError, RuntimeError) as e:
    raise ModelFileError(f"--model={path} is not an autoencoder model saved by "
                         f"experiments/train_anime_ae.py, or one of another version "
                         f"({type(e).__name__}: {e})") from None


def _parse_id(token: str, where: str) -> int:
  try:
    return int(token.strip())
  except ValueError:
    raise ProfileError(f"{where}: item id {token.strip()!r} is not an integer") from None


def _parse_rating(token: str, where: str, lo: float, hi: float) -> float:
  token = token.strip()
  if not token:
    return math.nan
  try:
    value = float(token)
  except ValueError:
    raise ProfileError(f"{where}: rating {token!r} is not a number") from None
  if not lo <= value <= hi:
    raise ProfileError(f"{where}: rating {value:g} is outside the model's scale [{lo:g}, {hi:g}]")
  return value


def parse_profile(model: TrainedAE, items: Optional[list[str]] = None,
                  csv_path: Optional[str] = None, ids: Optional[np.ndarray] = None
                  ) -> tuple[np.ndarray, np.ndarray]:
  """(dense item indices, stars with NaN = unrated) from --items tokens or a CSV file.
  `ids`: the ids the user gives, per model item (default: the model's own item ids)."""
  index = _index(model, ids)
  lo, hi = model.transform.lo, model.transform.hi
  entries = []  # (original id, rating, where)
  if csv_path:
    with open(csv_path, newline="") as f:
      reader = csv.reader(f)
      header = next(reader, None)
      if header is None or [h.strip() for h in header] not in (["item_id", "rating"], ["item_id"]):
        raise ProfileError(f"{csv_path} line 1: expected the header 'item_id,rating', got {header}")
      for line_no, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
          continue
        where = f"{csv_path} line {line_no}"
        if len(row) > 2:
          raise ProfileError(f"{where}: expected 'item_id,rating', got {len(row)} fields")
        entries.append((_parse_id(row[0], where),
                        _parse_rating(row[1] if len(row) > 1 else "", where, lo, hi), where))
  for token in items or []:
    where = f"--items entry {token!r}"
    item, _, rating = token.partition(":")
    entries.append((_parse_id(item, where), _parse_rating(rating, where, lo, hi), where))
  if not entries:
    raise ProfileError("empty profile: give --items ID[:RATING],... or --profile_csv")
  dense, stars, seen = [], [], {}
  for item_id, rating, where in entries:
    if item_id not in index:
      raise ProfileError(f"{where}: unknown item id {item_id} (the model knows "
                         f"{len(index)} items, ids {min(index)}..{max(index)})")
    if item_id in seen:
      raise ProfileError(f"{where}: item id {item_id} is listed twice (first at {seen[item_id]})")
    seen[item_id] = where
    dense.append(index[item_id])
    stars.append(rating)
  return np.asarray(dense, np.int64), np.asarray(stars, np.float32)


def _index(model: TrainedAE, ids: Optional[np.ndarray]) -> dict[int, int]:
  ids = model.item_ids if ids is None else ids
  return {int(i): k for k, i in enumerate(np.asarray(ids).tolist())}


def interface_ids(model: TrainedAE, kind: str, data_dir: Optional[str]) -> np.ndarray:
  """The ids the binary reads and prints, per model item: for an anime model with
  kind="mal" the MyAnimeList anime ids (the public dataset's anime_id), else the model's
  own (the subsample's re-indexed ids, or another dataset's ids)."""
  if kind == "mal" and model.dataset == "anime":
    return source.public_item_ids(source.DataConfig(name="anime", dir=data_dir),
                                  model.item_ids)
  return np.asarray(model.item_ids)


def parse_ids(model: TrainedAE, ids: list[str], csv_path: Optional[str],
              item_ids: Optional[np.ndarray] = None) -> np.ndarray:
  index = _index(model, item_ids)
  entries = [(t, f"--plan_to_watch entry {t!r}") for t in ids]
  if csv_path:
    with open(csv_path, newline="") as f:
      rows = list(csv.reader(f))
    if not rows or rows[0][0].strip() != "item_id":
      raise ProfileError(f"{csv_path} line 1: expected the header 'item_id'")
    entries += [(r[0], f"{csv_path} line {n}") for n, r in enumerate(rows[1:], 2)
                if r and r[0].strip()]
  out = []
  for token, where in entries:
    item_id = _parse_id(token, where)
    if item_id not in index:
      raise ProfileError(f"{where}: unknown item id {item_id}")
    out.append(index[item_id])
  return np.asarray(out, np.int64)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    model = load_model(_MODEL.value)
  except ModelFileError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  cfg = model.config.recommend
  overrides = {k: v for k, v in (("mix", _MIX.value), ("niche_boost", _NICHE.value),
                                 ("top_k", _TOP_K.value)) if v is not None}
  cfg = dataclasses.replace(cfg, filter_plan_to_watch=_FILTER_PTW.value, **overrides)
  public = interface_ids(model, _IDS.value, _DATA_DIR.value)
  try:
    items, stars = parse_profile(model, _ITEMS.value, _CSV.value, public)
    ptw = parse_ids(model, _PTW.value, _PTW_CSV.value, public)
  except (ProfileError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  names = None
  if _NAMES.value and model.dataset == "anime":
    x, all_names = load_with_names("anime", _DATA_DIR.value)
    lookup = {int(i): n for i, n in zip(np.asarray(x.item_ids).tolist(), all_names)}
    names = np.array([lookup.get(int(i), "") for i in model.item_ids], dtype=object)
  recs = model.recommend(items, stars, ptw, cfg, explain=_EXPLAIN.value)
  print(f"profile: {len(items)} items ({int(np.sum(~np.isnan(stars)))} rated); plan-to-watch "
        f"{len(ptw)} ({'filtered' if cfg.filter_plan_to_watch else 'not filtered'}); "
        f"mix {cfg.mix}, niche boost {cfg.niche_boost}")
  print(format_recommendations(recs, public, names))


if __name__ == "__main__":
  flags.mark_flag_as_required("model")
  app.run(main)
