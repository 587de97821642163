"""Where a run's interactions come from: a named dataset, the user's own file, or synthetic.

`DataConfig` is the `data` section of every pipeline config; `load(cfg)` returns the
`Interactions` after the configured filters (rating threshold, minimum items per user) with
dense indices. Every field is checked by `DataConfig.validate()` before any file is read.

  name="anime"            the embedded 5k-user anime subsample (no folder needed)
  name="ml-1m", ...       a dataset of `loaders.DATASETS`, read from `dir` (or
                          $RECSYS_DATA_DIR): the project ships only the anime subsample
  name="file"             the user's own interaction file at `path`: CSV/TSV (plain or gzip)
                          or Parquet, with configurable column names; `format="anime_original"`
                          reads the public anime dataset's own layout (rating.csv + anime.csv)
  name="synthetic"        a next-item rule (item i is followed by i+1), for tests
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Optional

import numpy as np

from recsys_core.config import check
from recsys_core.data import filters
from recsys_core.data import loaders
from recsys_core.data.synthetic import synthetic_sequences
from recsys_core.data.types import Interactions

FORMATS = ("auto", "csv", "tsv", "parquet", "anime_original")
SPECIAL_NAMES = ("file", "synthetic")


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  num_users: int = 200
  num_items: int = 40
  min_len: int = 8
  max_len: int = 20
  noise: float = 0.0
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """The data section of a pipeline config (see the module docstring for `name`)."""
  name: str = "anime"
  dir: Optional[str] = None            # folder of the named datasets' folders
  path: Optional[str] = None           # name="file": the interaction file (or folder)
  format: str = "auto"                 # name="file": one of FORMATS
  user_col: str = "user_id"
  item_col: str = "item_id"
  rating_col: Optional[str] = None     # optional; an empty cell = watched, not rated
  time_col: Optional[str] = None       # optional; orders each user's rows (leave-one-out)
  attributes_path: Optional[str] = None  # name="file": item attributes, one row per item
                                       # (item_col + attribute columns; Phoenix authors)
  rating_threshold: Optional[float] = None  # keep rows rated above it (implicit feedback)
  min_user_items: int = 0              # then keep users with at least this many rows
  synthetic: SyntheticConfig = SyntheticConfig()

  def validate(self) -> None:
    """Raises ValueError naming the field, the value and what is allowed."""
    known = sorted(loaders.DATASETS) + list(SPECIAL_NAMES)
    check(self.name in known, "data.name", self.name, f"one of {known}")
    check(self.format in FORMATS, "data.format", self.format, f"one of {FORMATS}")
    check(self.min_user_items >= 0, "data.min_user_items", self.min_user_items, ">= 0")
    if self.name == "file":
      check(bool(self.path), "data.path", self.path,
            "the interaction file to read when data.name='file'")
      check(os.path.exists(self.path), "data.path", self.path, "an existing file or folder")
    elif self.path:
      raise ValueError(f"data.path={self.path!r} is read only with data.name='file' "
                       f"(data.name={self.name!r})")
    if self.attributes_path is not None:
      check(self.name == "file", "data.attributes_path", self.attributes_path,
            "set only with data.name='file' (named datasets bring their own)")
      check(os.path.isfile(self.attributes_path), "data.attributes_path",
            self.attributes_path, "an existing file")
    if self.name not in SPECIAL_NAMES and not (self.name == "anime" and self.dir is None):
      loaders.resolve_data_dir(self.dir)  # a clear error now, not after compilation
    s = self.synthetic
    for field in ("num_users", "num_items", "min_len"):
      check(getattr(s, field) >= 1, f"data.synthetic.{field}", getattr(s, field), ">= 1")
    check(s.max_len >= s.min_len, "data.synthetic.max_len", s.max_len,
          f">= data.synthetic.min_len ({s.min_len})")
    check(0.0 <= s.noise <= 1.0, "data.synthetic.noise", s.noise, "in [0, 1]")

  @property
  def label(self) -> str:
    """A short name for result files: the dataset name, or the file's base name."""
    if self.name == "file":
      base = os.path.basename(os.path.normpath(self.path or "file"))
      for suffix in (".gz", ".csv", ".tsv", ".parquet", ".pq", ".txt"):
        base = base[:-len(suffix)] if base.endswith(suffix) else base
      return base
    return self.name


def read(cfg: DataConfig) -> Interactions:
  """The raw interactions of `cfg` (no filters)."""
  if cfg.name == "synthetic":
    s = cfg.synthetic
    return synthetic_sequences(s.num_users, s.num_items, s.min_len, s.max_len, seed=s.seed,
                               noise=s.noise)
  if cfg.name == "file":
    from recsys_core.data import tables  # pylint: disable=g-import-not-at-top
    if cfg.format == "anime_original":
      return tables.load_anime_original(cfg.path).interactions
    return tables.load_interaction_table(
        cfg.path, format=cfg.format, user_col=cfg.user_col, item_col=cfg.item_col,
        rating_col=cfg.rating_col, time_col=cfg.time_col)
  return loaders.load_dataset(cfg.name, cfg.dir)


def load(cfg: DataConfig) -> Interactions:
  """`read(cfg)`, then the rating threshold and the minimum items per user, reindexed.

  Raises:
    ValueError: a rating threshold on data without ratings, or no rows left.
  """
  x = read(cfg)
  if cfg.rating_threshold is not None:
    if x.ratings is None:
      raise ValueError(f"data.rating_threshold={cfg.rating_threshold}: {x.source} has no "
                       "ratings (set it to None)")
    x = filters.filter_by_rating(x, cfg.rating_threshold)
  if cfg.min_user_items:
    x = filters.filter_min_interactions(x, min_user_interactions=cfg.min_user_items)
  if cfg.rating_threshold is not None or cfg.min_user_items:
    x = filters.reindex(x)
  if len(x) == 0:
    raise ValueError(f"{x.source}: no interactions left after the data filters "
                     f"(rating_threshold={cfg.rating_threshold}, "
                     f"min_user_items={cfg.min_user_items})")
  return x


def public_item_ids(cfg: DataConfig, item_ids: np.ndarray) -> np.ndarray:
  """The ids a user of the dataset knows its items by, for [I] loader ids `item_ids`.

  ML-1M (the SASRec file numbers its items 1..3416): the MovieLens MovieIDs, from
  sasrec_item_to_movieid.txt beside it. The anime subsample (re-indexed 1..7390): the
  MyAnimeList anime ids of item_id_to_mal_anime_id.csv, when every item has one. Every
  other dataset, and the user's own files, already use their own ids: returned unchanged.
  Models train on the loader's ids; this mapping is for what a served model takes and gives.
  """
  item_ids = np.asarray(item_ids)
  if cfg.name == "ml-1m":
    from recsys_core.data import attributes  # pylint: disable=g-import-not-at-top
    folder = os.path.dirname(loaders.dataset_file("ml-1m", cfg.dir))
    pairs = attributes.read_sasrec_item_map(
        loaders.find_file(folder, attributes.SASREC_ITEM_MAP))
    missing = [int(i) for i in item_ids if int(i) not in pairs]
    if missing:
      raise ValueError(f"{attributes.SASREC_ITEM_MAP}: no MovieID for items {missing[:5]}")
    return np.array([pairs[int(i)] for i in item_ids], np.int64)
  if cfg.name == "anime":
    folder = (loaders.embedded_anime_dir() if cfg.dir is None else
              os.path.join(loaders.resolve_data_dir(cfg.dir), loaders.DATASETS["anime"].folder))
    mal = loaders.anime_info(folder, item_ids).mal_anime_id
    if np.all(mal >= 0) and len(np.unique(mal)) == len(mal):
      return mal
    logging.warning("%s: not every item has a MyAnimeList id; serving the subsample's ids",
                    folder)
  return item_ids
