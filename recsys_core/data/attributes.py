"""Item attributes (one id per item), used e.g. as Phoenix "authors".

Each loader returns `(attr, vocab)`:
  attr:  [I] int32 attribute id per item, aligned to the given `item_ids` (the
         `Interactions.item_ids` of the dataset); 0 = unknown.
  vocab: [A + 1] list, vocab[a] describes attribute id a; vocab[0] = "<unknown>".
Attribute ids 1..A are assigned in increasing order of the attribute's label.
"""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence

from absl import logging
import numpy as np

from recsys_core.data import parsing
from recsys_core.data.loaders import find_file
from recsys_core.data.parsing import DataFormatError, PathLike

UNKNOWN = "<unknown>"
SASREC_ITEM_MAP = "sasrec_item_to_movieid.txt"


def _encode(labels: Sequence, unknown_mask: np.ndarray) -> tuple[np.ndarray, list]:
  """Dense ids 1..A for the known labels (sorted), 0 for unknown ones."""
  known = sorted({lab for lab, unk in zip(labels, unknown_mask) if not unk})
  index = {lab: i + 1 for i, lab in enumerate(known)}
  attr = np.array([0 if unk else index[lab] for lab, unk in zip(labels, unknown_mask)],
                  np.int32)
  return attr, [UNKNOWN] + list(known)


def _read_pairs(path: str) -> dict[int, int]:
  """Reads `a b` integer pairs, one per line (e.g. sasrec_item_to_movieid.txt)."""
  lines = parsing.normalize(parsing.read_bytes(path), path).split(b"\n")
  cols = parsing.parse_table(b"\n".join(b" ".join(line.split()) for line in lines), path,
                             delimiter=b" ", columns=[("sasrec_id", int), ("original_id", int)],
                             first_line=1)
  return dict(zip(cols["sasrec_id"].tolist(), cols["original_id"].tolist()))


def read_ml1m_movies(movies_dat_path: PathLike) -> dict[int, tuple[str, list[str]]]:
  """Parses ML-1M movies.dat (`MovieID::Title::Genres`, Latin-1) to {id: (title, genres)}."""
  text = parsing.decode_text(parsing.read_bytes(movies_dat_path), movies_dat_path, "latin-1")
  body = parsing.normalize(text.encode("utf-8"), movies_dat_path)
  out = {}
  for i, raw in enumerate(body.split(b"\n")):
    fields = raw.decode("utf-8").split("::")
    if len(fields) != 3:
      raise DataFormatError(movies_dat_path, "expected 'MovieID::Title::Genres', found "
                            f"{len(fields)} '::'-separated fields", line=i + 1)
    try:
      movie_id = int(fields[0])
    except ValueError:
      raise DataFormatError(movies_dat_path, f"expected an integer, found {fields[0]!r}",
                            line=i + 1, field="MovieID") from None
    out[movie_id] = (fields[1], [g for g in fields[2].split("|") if g])
  return out


def load_ml1m_genres(movies_dat_path: PathLike, item_ids: np.ndarray,
                     item_map_path: Optional[PathLike] = "auto") -> tuple[np.ndarray, list]:
  """The first listed genre of each ML-1M item.

  Args:
    movies_dat_path: movies.dat (plain or gzip).
    item_ids: [I] the dataset's original item ids.
    item_map_path: a `sas_item MovieID` file translating `item_ids` to MovieIDs.
      "auto" (default): sasrec_item_to_movieid.txt(.gz) next to movies.dat, which is what
      the "ml-1m" dataset (SASRec ids) needs; None: `item_ids` already are MovieIDs (the
      "ml-1m-full" dataset).

  Returns:
    (attr [I] int32 genre id, 0 = unknown; vocab of genre names, vocab[0] = "<unknown>").
  """
  movies = read_ml1m_movies(movies_dat_path)
  movie_ids = np.asarray(item_ids, np.int64)
  if item_map_path == "auto":
    item_map_path = find_file(os.path.dirname(os.fspath(movies_dat_path)), SASREC_ITEM_MAP)
  if item_map_path is not None:
    mapping = _read_pairs(os.fspath(item_map_path))
    movie_ids = np.array([mapping.get(int(i), -1) for i in movie_ids], np.int64)
  labels = [movies[m][1][0] if m in movies and movies[m][1] else "" for m in movie_ids.tolist()]
  unknown = np.array([lab == "" for lab in labels], bool)
  if unknown.any():
    logging.warning("%s: %d of %d items have no genre", movies_dat_path, int(unknown.sum()),
                    len(labels))
  return _encode(labels, unknown)


def _split_brand(attribute_lists: dict[str, list[int]]) -> set[int]:
  """The attribute ids that are brands.

  The S3-Rec preprocessing writes, per item, [brand (if known)] + the item's categories
  (top-level category first). A brand therefore only ever stands first in a list, while
  every category (the top-level ones included) also stands after a brand somewhere. The
  brands are the ids that never appear at a position > 0. (A brand whose name equals a
  category name shares that category's id and is counted as a category.)
  """
  first, later = set(), set()
  for values in attribute_lists.values():
    if values:
      first.add(values[0])
      later.update(values[1:])
  return first - later


def load_item_attributes(json_path: PathLike, item_ids: np.ndarray, field: str = "brand",
                         level: int = -1) -> tuple[np.ndarray, list]:
  """One attribute per item from an Amazon S3-Rec `*_item2attributes.json(.gz)`.

  The file is {"item_id": [attr_id, ...]}: per item the brand (when known) followed by
  its categories (top-level first), all sharing one id space with no names.

  Args:
    json_path: the JSON file (plain or gzip).
    item_ids: [I] the dataset's original item ids (the ids in the sequence file).
    field: "brand" (the item's brand, 0 when it has none: about 38% of Beauty items and
      1% of Sports items) or "category" (one of its categories, see `level`).
    level: for field="category", which category: 0 = top level (Beauty: 6 values; in
      Sports nearly every item shares one), 1 = the next one, ..., -1 (default) = the
      last listed, the most specific (Beauty ~195 values, Sports ~960). Items with fewer
      categories get the last one they have.

  Returns:
    (attr [I] int32, 0 = unknown; vocab: vocab[a] = the original attribute id in the
    file, vocab[0] = "<unknown>").
  """
  if field not in ("brand", "category"):
    raise ValueError(f"field must be 'brand' or 'category', got {field!r}")
  path = os.fspath(json_path)
  text = parsing.decode_text(parsing.read_bytes(path), path)
  try:
    table = json.loads(text)
  except json.JSONDecodeError as e:
    raise DataFormatError(path, f"invalid JSON ({e.msg})", line=e.lineno) from None
  if not isinstance(table, dict) or not all(
      isinstance(v, list) and all(isinstance(a, int) for a in v) for v in table.values()):
    raise DataFormatError(path, 'expected a JSON object {"item_id": [attribute ids]}')
  brands = _split_brand(table)
  labels, unknown = [], []
  missing = 0
  for item in np.asarray(item_ids).tolist():
    values = table.get(str(item))
    if values is None:
      missing += 1
      values = []
    has_brand = bool(values) and values[0] in brands
    if field == "brand":
      label = values[0] if has_brand else None
    else:
      cats = values[1:] if has_brand else values
      label = (cats[level] if -len(cats) <= level < len(cats) else cats[-1]) if cats else None
    labels.append(label)
    unknown.append(label is None)
  if missing:
    logging.warning("%s: %d of %d items are not in the file", path, missing, len(labels))
  attr, vocab = _encode(labels, np.array(unknown, bool))
  return attr, vocab


ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                 "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                 "Romance", "Sci-Fi", "Thriller", "War", "Western")  # u.genre's order


def load_ml100k_genres(u_item_path: PathLike, item_ids: np.ndarray) -> tuple[np.ndarray, list]:
  """The first genre flag set in MovieLens 100K `u.item` (Latin-1, '|'-separated, the last
  19 fields are 0/1 flags in u.genre's order); the "unknown" genre counts as unknown."""
  text = parsing.decode_text(parsing.read_bytes(u_item_path), u_item_path, "latin-1")
  genres = {}
  for i, line in enumerate(text.replace("\r\n", "\n").rstrip("\n").split("\n")):
    fields = line.split("|")
    if len(fields) < 5 + len(ML100K_GENRES):
      raise DataFormatError(u_item_path, f"expected {5 + len(ML100K_GENRES)} '|'-separated "
                            f"fields, found {len(fields)}", line=i + 1)
    flags = fields[-len(ML100K_GENRES):]
    if any(f not in ("0", "1") for f in flags) or not fields[0].isdigit():
      raise DataFormatError(u_item_path, "expected a movie id and 19 genre flags (0/1)",
                            line=i + 1)
    first = next((g for g, f in zip(ML100K_GENRES, flags) if f == "1"), "unknown")
    genres[int(fields[0])] = "" if first == "unknown" else first
  labels = [genres.get(int(m), "") for m in np.asarray(item_ids).tolist()]
  return _encode(labels, np.array([lab == "" for lab in labels], bool))


def load_movielens_csv_genres(movies_csv_path: PathLike, item_ids: np.ndarray
                              ) -> tuple[np.ndarray, list]:
  """The first genre of ml-latest-small `movies.csv` (movieId,title,genres; titles may be
  quoted); "(no genres listed)" counts as unknown."""
  import csv  # pylint: disable=g-import-not-at-top
  text = parsing.decode_text(parsing.read_bytes(movies_csv_path), movies_csv_path)
  rows = list(csv.reader(text.lstrip("\ufeff").splitlines()))
  if not rows or [c.strip() for c in rows[0]] != ["movieId", "title", "genres"]:
    raise DataFormatError(movies_csv_path, "expected the header 'movieId,title,genres'", line=1)
  genres = {}
  for i, row in enumerate(rows[1:]):
    if len(row) != 3 or not row[0].strip().isdigit():
      raise DataFormatError(movies_csv_path, "expected 'movieId,title,genres'", line=i + 2)
    first = row[2].split("|")[0].strip()
    genres[int(row[0])] = "" if first.startswith("(no genres") else first
  labels = [genres.get(int(m), "") for m in np.asarray(item_ids).tolist()]
  return _encode(labels, np.array([lab == "" for lab in labels], bool))


def anime_first_genres(info) -> tuple[np.ndarray, list]:
  """The first listed genre of each anime (`AnimeInfo`, already aligned to the items)."""
  labels = [g[0] if g else "" for g in info.genre_lists()]
  return _encode(labels, np.array([lab == "" for lab in labels], bool))


def load_item_authors(name: str, item_ids: np.ndarray, data_dir: Optional[PathLike] = None,
                      field: str = "brand", level: int = -1) -> tuple[np.ndarray, list]:
  """One "author" attribute per item of a named dataset (for Phoenix's author hashes).

  anime: first genre; ml-100k: first genre flag of u.item; ml-latest-small: first genre of
  movies.csv; ml-1m / ml-1m-full: first genre of movies.dat (through the SASRec map for
  ml-1m); beauty / sports: `load_item_attributes(..., field, level)` (default: brand).

  Args:
    name: a `loaders.DATASETS` name.
    item_ids: [I] the loaded dataset's `item_ids`.
    data_dir: as for `load_dataset` (None: anime embedded, else $RECSYS_DATA_DIR).
  Returns:
    (attr [I] int32, 0 = unknown; vocab, vocab[0] = "<unknown>").
  """
  from recsys_core.data import loaders  # pylint: disable=g-import-not-at-top
  if name == "anime":
    folder = loaders.embedded_anime_dir() if data_dir is None else os.path.join(
        loaders.resolve_data_dir(data_dir), loaders.DATASETS[name].folder)
    info = loaders.anime_info(folder, item_ids)
    return anime_first_genres(info)
  path = loaders.dataset_file(name, data_dir, attributes=True)
  if name == "ml-100k":
    return load_ml100k_genres(path, item_ids)
  if name == "ml-latest-small":
    return load_movielens_csv_genres(path, item_ids)
  if name in ("ml-1m", "ml-1m-full"):
    return load_ml1m_genres(path, item_ids, "auto" if name == "ml-1m" else None)
  return load_item_attributes(path, item_ids, field, level)
