"""The data the Phoenix ranking model trains on: per-user sequences (with ratings, which
define the action labels) and an optional author attribute per item.

Anime profiles have no order: each user's items are shuffled once (seeded) so that the
history / next-engagement cut is random; MovieLens keeps its timestamps.
"""
from __future__ import annotations

import csv
import gzip
import os
from typing import Optional

import numpy as np

from phoenix.ranking.task import shuffle_unordered
from recsys_core.data import load_dataset
from recsys_core.data.sequences import SequenceData
from recsys_core.data.types import Interactions


def synthetic_rated(num_users: int = 150, num_items: int = 60, length: int = 30,
                    seed: int = 0) -> Interactions:
  """Item i is followed by i+1 (mod I); rating 5 for even items, 1 for odd ones."""
  rng = np.random.default_rng(seed)
  starts = rng.integers(num_items, size=num_users)
  items = (starts[:, None] + np.arange(length)[None, :]) % num_items       # [U, L]
  return Interactions(
      users=np.repeat(np.arange(num_users), length).astype(np.int32),
      items=items.reshape(-1).astype(np.int32),
      ratings=np.where(items % 2 == 0, 5.0, 1.0).reshape(-1).astype(np.float32),
      order=np.tile(np.arange(length), num_users).astype(np.int64),
      user_ids=np.arange(1, num_users + 1), item_ids=np.arange(1, num_items + 1),
      source="synthetic")


def first_genre_ids(labels: list) -> np.ndarray:
  vocab = {g: i + 1 for i, g in enumerate(sorted({g for g in labels if g}))}
  return np.array([vocab.get(g, 0) for g in labels], np.int32)


def load(cfg, data_dir: Optional[str]) -> tuple[SequenceData, Optional[np.ndarray], dict]:
  """(sequences, item authors or None, description) of the ranking config's dataset
  (cfg.dataset: "synthetic", "anime" or a named dataset; cfg.author: "none" or "genre";
  cfg.seed: the synthetic data's seed and anime's random item order)."""
  if cfg.dataset == "synthetic":
    x = synthetic_rated(seed=cfg.seed)
    return SequenceData.from_interactions(x), None, {"order": "synthetic"}
  if cfg.dataset == "anime":
    from recsys_core.data.loaders import load_anime  # pylint: disable=g-import-not-at-top
    from recsys_core.data.loaders import (  # pylint: disable=g-import-not-at-top
        DATASETS, resolve_data_dir)
    anime = load_anime(None if data_dir is None else os.path.join(
        resolve_data_dir(data_dir), DATASETS["anime"].folder))
    x = anime.interactions
    data = shuffle_unordered(SequenceData.from_interactions(x), cfg.seed)
    authors = None
    if cfg.author == "genre":
      authors = first_genre_ids([g[0] if g else "" for g in anime.info.genre_lists()])
    info = {"order": f"none in the data: each user's items in a random order (seed {cfg.seed})",
            "rated_fraction": float(np.mean(~np.isnan(x.ratings)))}
    return data, authors, info
  x = load_dataset(cfg.dataset, data_dir)
  data = SequenceData.from_interactions(x)
  authors = None
  if cfg.author == "genre" and cfg.dataset == "ml-latest-small":
    from recsys_core.data.loaders import dataset_file  # pylint: disable=g-import-not-at-top
    path = dataset_file(cfg.dataset, data_dir, attributes=True)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
      genres = {int(r["movieId"]): r["genres"].split("|")[0] for r in csv.DictReader(f)}
    labels = [genres.get(int(i), "") for i in x.item_ids]
    labels = ["" if g == "(no genres listed)" else g for g in labels]
    authors = first_genre_ids(labels)
  return data, authors, {"order": "timestamp"}
