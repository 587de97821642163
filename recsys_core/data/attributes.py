"""Item attributes (one id per item), used e.g. as Phoenix "authors".

Each loader returns `(attr, vocab)`:
  attr:  [I] int32 attribute id per item, aligned to the given `item_ids` (the
         `Interactions.item_ids` of the dataset); 0 = unknown.
  vocab: [A + 1] list, vocab[a] describes attribute id a; vocab[0] = "<unknown>".
Attribute ids 1..A are assigned in increasing order of the attribute's label.

Strictness (as for the interaction files, see `loaders` and `parsing`): every file names
its ids with the strict integer syntax (optional '-' then digits; no '+', '_', exponent
or spaces) and ids must be >= 0; an id listed twice (movies.dat, u.item, movies.csv,
sasrec_item_to_movieid.txt) is an error naming both lines, where the last one used to win
silently. In `*_item2attributes.json`: keys are item ids (digits only), values lists of
attribute ids that are JSON integers >= 0 (`true`/`false` are rejected although Python
counts bools as ints; so are floats such as `1.0`, strings and nulls), and a key given twice
(e.g. "5" and "05", or "5" twice) is an error naming the key and both lines. A line-based
file whose last line has no final newline loads with a warning naming the file and line.
"""
from __future__ import annotations

import itertools
import json
import os
import re
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


def _warn_if_unterminated(raw: bytes, path: PathLike, last_line: int) -> None:
  if not parsing.last_line_terminated(raw):
    logging.warning("%s, line %d: the last line has no terminating newline; if the file "
                    "was cut there, its last value may be incomplete", os.fspath(path),
                    last_line)


def _check_unique(path: PathLike, ids: Sequence[int], lines: Sequence[int], field: str,
                  what: str) -> None:
  """Raises DataFormatError naming both lines when an id is listed twice."""
  dup = parsing.first_duplicate(np.array(ids, np.int64))
  if dup is not None:
    first, second = lines[dup[0]], lines[dup[1]]
    raise DataFormatError(path, f"{what} {ids[dup[1]]} is listed on lines {first} and "
                          f"{second}", line=second, field=field)


def _id(text: str, path: PathLike, line: int, field: str) -> int:
  """A strict, non-negative integer id."""
  value = parsing.strict_int(text, path, line, field)
  if value < 0:
    raise DataFormatError(path, f"negative id {value} (ids must be >= 0)", line=line,
                          field=field)
  return value


def read_sasrec_item_map(path: str) -> dict[int, int]:
  """Reads `a b` integer pairs, one per line (e.g. sasrec_item_to_movieid.txt)."""
  raw = parsing.read_bytes(path)
  lines = parsing.normalize(raw, path).split(b"\n")
  cols = parsing.parse_table(b"\n".join(b" ".join(line.split()) for line in lines), path,
                             delimiter=b" ", columns=[("sasrec_id", int), ("original_id", int)],
                             first_line=1)
  for name in ("sasrec_id", "original_id"):
    bad = np.flatnonzero(cols[name] < 0)
    if len(bad):
      raise DataFormatError(path, f"negative id {cols[name][bad[0]]} (ids must be >= 0)",
                            line=int(bad[0]) + 1, field=name)
  _check_unique(path, cols["sasrec_id"].tolist(), range(1, len(lines) + 1), "sasrec_id",
                "id")
  _warn_if_unterminated(raw, path, len(lines))
  return dict(zip(cols["sasrec_id"].tolist(), cols["original_id"].tolist()))


def read_ml1m_movies(movies_dat_path: PathLike) -> dict[int, tuple[str, list[str]]]:
  """Parses ML-1M movies.dat (`MovieID::Title::Genres`, Latin-1) to {id: (title, genres)}.

  Raises:
    DataFormatError: a line without exactly three '::'-separated fields, a MovieID that is
      not a strict non-negative integer, or a MovieID listed twice (naming both lines).
  """
  raw = parsing.read_bytes(movies_dat_path)
  text = parsing.decode_text(raw, movies_dat_path, "latin-1")
  body = parsing.normalize(text.encode("utf-8"), movies_dat_path)
  out, ids = {}, []
  for i, line in enumerate(body.split(b"\n")):
    fields = line.decode("utf-8").split("::")
    if len(fields) != 3:
      raise DataFormatError(movies_dat_path, "expected 'MovieID::Title::Genres', found "
                            f"{len(fields)} '::'-separated fields", line=i + 1,
                            field=("MovieID", "Title", "Genres")[len(fields)]
                            if len(fields) < 3 else None)
    movie_id = _id(fields[0], movies_dat_path, i + 1, "MovieID")
    ids.append(movie_id)
    out[movie_id] = (fields[1], [g for g in fields[2].split("|") if g])
  _check_unique(movies_dat_path, ids, range(1, len(ids) + 1), "MovieID", "MovieID")
  _warn_if_unterminated(raw, movies_dat_path, len(ids))
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
    mapping = read_sasrec_item_map(os.fspath(item_map_path))
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


_ITEM_KEY = re.compile(r"0*[0-9]{1,19}\Z")  # digits; at most 19 significant ones
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_LEADING_ZERO = re.compile(r"(?:^|,)0[0-9]")
_INT64_MAX = 2**63 - 1


def _item_key_ok(key: str) -> bool:
  return _ITEM_KEY.match(key) is not None and int(key) <= _INT64_MAX


def _attribute_ok(value) -> bool:
  # type(), not isinstance(): True / False are ints to isinstance.
  return type(value) is int and 0 <= value <= _INT64_MAX  # pylint: disable=unidiomatic-typecheck


def _walk_item2attributes(text: str):
  """Yields (key, key_pos, j, value, value_pos) over a top-level JSON object, in file order:
  j = None for the item's whole value, then j = 0, 1, ... per element when it is a list.
  `text` must be valid JSON (only the slow error-locating pass uses this)."""
  decoder = json.JSONDecoder()
  pos = _JSON_SPACE.match(text, 0).end()
  if text[pos:pos + 1] != "{":
    return
  pos = _JSON_SPACE.match(text, pos + 1).end()
  while text[pos:pos + 1] not in ("}", ""):
    key_pos = pos
    key, pos = decoder.raw_decode(text, pos)
    pos = _JSON_SPACE.match(text, pos).end() + 1  # the ':'
    pos = _JSON_SPACE.match(text, pos).end()
    value_pos = pos
    value, end = decoder.raw_decode(text, pos)
    yield key, key_pos, None, value, value_pos
    if isinstance(value, list):
      pos = _JSON_SPACE.match(text, pos + 1).end()  # after the '['
      for j in range(len(value)):
        element, after = decoder.raw_decode(text, pos)
        yield key, key_pos, j, element, pos
        pos = _JSON_SPACE.match(text, after).end() + 1  # the ',' or ']'
        pos = _JSON_SPACE.match(text, pos).end()
    pos = _JSON_SPACE.match(text, end).end()
    if text[pos:pos + 1] == ",":
      pos = _JSON_SPACE.match(text, pos + 1).end()


def _locate_item2attributes_error(text: str, path: str) -> DataFormatError:
  """The first problem of a valid-JSON but malformed item2attributes file, in file order."""

  def line_of(pos):
    return text.count("\n", 0, pos) + 1

  seen = {}
  for key, key_pos, j, value, value_pos in _walk_item2attributes(text):
    item = f"item {key}"
    if j is None:
      if not _item_key_ok(key):
        return DataFormatError(path, f"key {key[:80]!r} is not an item id (digits only, "
                               "in the int64 range)",
                               line=line_of(key_pos), field=item)
      canonical = str(int(key))
      if canonical in seen:
        first_key, first_pos = seen[canonical]
        return DataFormatError(
            path, f"duplicate key {key!r} (item {canonical} is also key {first_key!r} on "
            f"line {line_of(first_pos)})", line=line_of(key_pos), field=item)
      seen[canonical] = (key, key_pos)
      if not isinstance(value, list):
        return DataFormatError(path, "expected a list of attribute ids, found "
                               f"{json.dumps(value)[:80]}", line=line_of(value_pos), field=item)
    elif not _attribute_ok(value):
      return DataFormatError(path, "expected an attribute id (a JSON integer >= 0, int64), found "
                             f"{json.dumps(value)[:80]}", line=line_of(value_pos),
                             field=f"{item}, attribute {j + 1}")
  return DataFormatError(path, 'expected a JSON object {"item_id": [attribute ids]}',
                         line=1)


def read_item2attributes(json_path: PathLike) -> dict[str, list[int]]:
  """Reads an Amazon S3-Rec `*_item2attributes.json(.gz)` strictly.

  Returns:
    {item id as a canonical decimal string: [attribute ids]}, in file order.

  Raises:
    DataFormatError: invalid JSON; not an object of lists; a key that is not digits; a key
      given twice (also as "5" / "05"); an attribute id that is not a JSON integer >= 0
      (`true`/`false`, `1.0`, strings, null). The message names the line and the item (and
      the attribute's 1-based position); the fast path is one json.loads, the slow
      locating pass only runs on bad files.
  """
  path = os.fspath(json_path)
  text = parsing.decode_text(parsing.read_bytes(path), path)
  if text.startswith("\ufeff"):  # a UTF-8 byte-order mark, as for the other files
    text = text[1:]
  duplicates = []

  def pairs_hook(pairs):
    out = dict(pairs)
    if len(out) < len(pairs):
      duplicates.append(pairs)
    return out

  try:
    table = json.loads(text, object_pairs_hook=pairs_hook)
  except json.JSONDecodeError as e:
    raise DataFormatError(path, f"invalid JSON ({e.msg})", line=e.lineno) from None
  except (ValueError, RecursionError) as e:  # e.g. an integer of over 4,300 digits
    raise DataFormatError(path, f"invalid JSON ({type(e).__name__}: {str(e)[:80]})") from None
  canonical = _checked_table(table) if isinstance(table, dict) and not duplicates else None
  if canonical is None:
    raise _locate_item2attributes_error(text, path)
  return canonical


def _checked_table(table: dict) -> Optional[dict[str, list[int]]]:
  """The fast check of a parsed item2attributes table (C-level loops over the real files):
  digit keys, no "05" beside "5", lists of JSON integers in 0..int64 max. Returns the
  table with canonical keys ("05" -> "5"), or None when anything is wrong."""
  if not table:
    return table
  lengths = set(map(len, table))
  joined = "".join(table)
  if min(lengths) < 1 or not (joined.isascii() and joined.isdigit()):
    return None
  if max(lengths) > 18 and not all(map(_item_key_ok, table)):
    return None
  if _LEADING_ZERO.search(",".join(table)):  # keys are digits only: ',' separates them
    canonical = {str(int(k)): v for k, v in table.items()}
    if len(canonical) < len(table):  # "05" beside "5"
      return None
    table = canonical
  values = table.values()
  if set(map(type, values)) != {list}:
    return None
  flat = list(itertools.chain.from_iterable(values))
  if flat and not (set(map(type, flat)) == {int} and min(flat) >= 0
                   and max(flat) <= _INT64_MAX):
    return None
  return table


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
  table = read_item2attributes(path)
  brands = _split_brand(table)
  labels, unknown = [], []
  missing = 0
  for item in np.asarray(item_ids).tolist():
    values = table.get(str(item))  # keys are canonical decimal strings
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
  raw = parsing.read_bytes(u_item_path)
  text = parsing.decode_text(raw, u_item_path, "latin-1")
  body = parsing.normalize(text.encode("utf-8"), u_item_path).decode("utf-8")
  genres, ids = {}, []
  for i, line in enumerate(body.split("\n")):
    fields = line.split("|")
    if len(fields) < 5 + len(ML100K_GENRES):
      raise DataFormatError(u_item_path, f"expected {5 + len(ML100K_GENRES)} '|'-separated "
                            f"fields, found {len(fields)}", line=i + 1)
    movie_id = _id(fields[0], u_item_path, i + 1, "movie_id")
    flags = fields[-len(ML100K_GENRES):]
    bad = next((g for g, f in zip(ML100K_GENRES, flags) if f not in ("0", "1")), None)
    if bad is not None:
      raise DataFormatError(u_item_path, "expected a movie id and 19 genre flags (0/1)",
                            line=i + 1, field=bad)
    first = next((g for g, f in zip(ML100K_GENRES, flags) if f == "1"), "unknown")
    genres[movie_id] = "" if first == "unknown" else first
    ids.append(movie_id)
  _check_unique(u_item_path, ids, range(1, len(ids) + 1), "movie_id", "movie id")
  _warn_if_unterminated(raw, u_item_path, len(ids))
  labels = [genres.get(int(m), "") for m in np.asarray(item_ids).tolist()]
  return _encode(labels, np.array([lab == "" for lab in labels], bool))


def load_movielens_csv_genres(movies_csv_path: PathLike, item_ids: np.ndarray
                              ) -> tuple[np.ndarray, list]:
  """The first genre of ml-latest-small `movies.csv` (movieId,title,genres; titles may be
  quoted); "(no genres listed)" counts as unknown."""
  import csv  # pylint: disable=g-import-not-at-top
  raw = parsing.read_bytes(movies_csv_path)
  text = parsing.decode_text(raw, movies_csv_path)
  try:
    rows = list(csv.reader(text.lstrip("\ufeff").splitlines()))
  except csv.Error as e:  # e.g. a field over the csv module's size limit
    raise DataFormatError(movies_csv_path, f"not valid CSV ({e})") from None
  if not rows or [c.strip() for c in rows[0]] != ["movieId", "title", "genres"]:
    raise DataFormatError(movies_csv_path, "expected the header 'movieId,title,genres'", line=1)
  genres, ids = {}, []
  for i, row in enumerate(rows[1:]):
    if len(row) != 3:
      raise DataFormatError(movies_csv_path, "expected 'movieId,title,genres'", line=i + 2)
    movie_id = _id(row[0], movies_csv_path, i + 2, "movieId")
    first = row[2].split("|")[0].strip()
    genres[movie_id] = "" if first.startswith("(no genres") else first
    ids.append(movie_id)
  _check_unique(movies_csv_path, ids, range(2, len(ids) + 2), "movieId", "movieId")
  _warn_if_unterminated(raw, movies_csv_path, len(rows))
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
