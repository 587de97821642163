"""Loaders of the project's datasets into the one `Interactions` type.

Every loader:
  * reads plain or gzip files (gzip detected by magic bytes, so `u.data` and `u.data.gz`
    both work);
  * gives users and items dense indices 0..U-1 / 0..I-1 in increasing order of their
    original ids (`user_ids` / `item_ids` map back);
  * keeps the file's row order (after duplicate removal);
  * raises `DataFormatError` (file, 1-based line, field) for malformed input, and repairs
    exactly one thing, with a logged warning: duplicate (user, item) rows keep their last
    occurrence (the later row wins, as a later rating overrides an earlier one).

Strictness rules (the number syntax and the cut-file rule are in `parsing`'s docstring):
  * numbers are strict: ids, timestamps and integer ratings are an optional '-' then
    digits (`1_000`, `+5`, `1e0`, ` 5` are errors); float ratings are plain decimal with
    an optional exponent (`1_0`, `inf`, `nan` are errors);
  * user ids, item ids and timestamps must be >= 0 (in every format, sequence files
    included); ratings must be in the dataset's range;
  * when a file has several problems, the error names the first offending line (and, on
    that line, the first offending field);
  * a table's line with too few fields is an error naming the line and the first missing
    field (for the last line the message says the file looks cut); a sequence file's last
    line with no final newline and fewer items than every other line is an error (the
    file looks cut); any other last line without a final newline loads with a warning
    naming the file and line;
  * in anime_info.dat, ids, episodes and members are strict non-negative integers and
    the rating a strict finite float ("" and "Unknown" mean unknown); an item listed twice
    keeps its later line (warning naming both lines). Any id listed twice in
    item_id_to_mal_anime_id.csv is an error naming both lines.

Datasets (folder names as in shared/data, see `DATASETS`):
  anime            embedded 5k-user subsample: history rows, rating NaN when "watched, not
                   rated" (`load_anime` also returns the item info)
  ml-100k          MovieLens 100K u.data: ratings 1..5, order = timestamp
  ml-latest-small  ratings.csv: ratings 0.5..5 in half stars, order = timestamp
  ml-1m            SASRec ML-1M sequences: no ratings, order = position in the line
  ml-1m-full       ML-1M with original MovieIDs, all ratings: same format
  beauty, sports   Amazon S3-Rec sequences: same format
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import os
from typing import Callable, Optional

from absl import logging
import numpy as np

from recsys_core.data import parsing
from recsys_core.data.parsing import DataFormatError, PathLike
from recsys_core.data.types import Interactions

DATA_DIR_ENV = "RECSYS_DATA_DIR"


# ----------------------------------------------------------------------------------------
# Building Interactions from raw ids.


def drop_duplicate_pairs(users: np.ndarray, items: np.ndarray, source: str = "") -> np.ndarray:
  """Returns the sorted row indices that keep the last occurrence of each (user, item) pair.

  Logs a warning with the number of dropped rows when there are any.

  Args:
    users: [N] int user indices (any non-negative ints).
    items: [N] int item indices.
    source: named in the warning.
  """
  n = len(users)
  if n == 0:
    return np.arange(0)
  keys = users.astype(np.int64) * (int(items.max()) + 1) + items.astype(np.int64)
  # np.unique on the reversed keys finds each key's first occurrence from the end.
  _, first_from_end = np.unique(keys[::-1], return_index=True)
  if len(first_from_end) == n:
    return np.arange(n)
  keep = np.sort(n - 1 - first_from_end)
  logging.warning("%s: %d duplicate (user, item) rows; kept the last occurrence of each "
                  "pair (%d rows left)", source, n - len(keep), len(keep))
  return keep


def interactions_from_ids(user_ids: np.ndarray, item_ids: np.ndarray,
                          ratings: Optional[np.ndarray] = None,
                          order: Optional[np.ndarray] = None, source: str = "",
                          all_user_ids: Optional[np.ndarray] = None,
                          all_item_ids: Optional[np.ndarray] = None) -> Interactions:
  """Builds `Interactions` from [N] original ids, dropping duplicate pairs (keep last).

  Args:
    user_ids, item_ids: [N] original ids (any sortable dtype).
    ratings: [N] ratings or None; stored as float32.
    order: [N] order key (larger = later) or None; stored as int64.
    source: for messages.
    all_user_ids, all_item_ids: optional sorted unique id vocabularies to index into
      (must contain every id); default = the sorted unique ids present.
  """
  if all_user_ids is None:
    all_user_ids, users = np.unique(user_ids, return_inverse=True)
  else:
    users = np.searchsorted(all_user_ids, user_ids)
  if all_item_ids is None:
    all_item_ids, items = np.unique(item_ids, return_inverse=True)
  else:
    items = np.searchsorted(all_item_ids, item_ids)
  keep = drop_duplicate_pairs(users, items, source)
  if len(keep) == len(users):
    keep = slice(None)
  return Interactions(
      users=users[keep].astype(np.int32), items=items[keep].astype(np.int32),
      ratings=None if ratings is None else np.asarray(ratings, np.float32)[keep],
      order=None if order is None else np.asarray(order, np.int64)[keep],
      user_ids=all_user_ids, item_ids=all_item_ids, source=source)


# ----------------------------------------------------------------------------------------
# Checks shared by the rating loaders.


# A row check: (field, [N] bool mask of the bad rows, message for bad row i).
_RowCheck = tuple[str, np.ndarray, Callable[[int], str]]


def _raise_first(path: PathLike, first_line: int, checks: list[_RowCheck]) -> None:
  """Raises DataFormatError for the earliest bad row over `checks` (ties: the first check,
  i.e. the field that comes first when checks are listed in column order)."""
  best = None
  for field, bad, message in checks:
    rows = np.flatnonzero(bad)
    if len(rows) and (best is None or rows[0] < best[0]):
      best = (int(rows[0]), field, message)
  if best is not None:
    i, field, message = best
    raise DataFormatError(path, message(i), line=first_line + i, field=field)


def _non_negative(values: np.ndarray, field: str, what: str) -> _RowCheck:
  return (field, values < 0,
          lambda i: f"negative {what} {values[i]} ({what}s must be >= 0)")


def _rating_check(values: np.ndarray, field: str, valid: Callable[[np.ndarray], np.ndarray],
                  expected: str) -> _RowCheck:
  return (field, ~valid(values),
          lambda i: f"rating {values[i]:g} out of range (expected {expected})")


def _int_range(lo: int, hi: int) -> Callable[[np.ndarray], np.ndarray]:
  return lambda v: (v >= lo) & (v <= hi)


def _half_stars(v: np.ndarray) -> np.ndarray:
  return (v >= 0.5) & (v <= 5.0) & (v * 2 == np.round(v * 2))


def _warn_if_unterminated(raw: bytes, body: bytes, path: PathLike) -> None:
  """Logs a warning when the last line has no final newline (the file may be cut)."""
  if not parsing.last_line_terminated(raw):
    logging.warning("%s, line %d: the last line has no terminating newline; if the file "
                    "was cut there, its last value may be incomplete", os.fspath(path),
                    body.count(b"\n") + 1)


def _read_table(path: PathLike, *, delimiter: bytes, columns, header=None
                ) -> tuple[dict[str, np.ndarray], int]:
  """Reads a numeric table; returns (columns, 1-based file line of the first data row)."""
  raw = parsing.read_bytes(path)
  body = parsing.normalize(raw, path)
  whole = body
  first_line = 1
  if header is not None:
    body = parsing.take_header(body, path, header, delimiter)
    first_line = 2
  cols = parsing.parse_table(body, path, delimiter=delimiter, columns=columns,
                             first_line=first_line)
  _warn_if_unterminated(raw, whole, path)
  return cols, first_line


# ----------------------------------------------------------------------------------------
# Rating files.


def load_movielens_100k(path: PathLike) -> Interactions:
  """Loads MovieLens 100K `u.data`: tab-separated, no header, user item rating(1-5) time."""
  cols, first = _read_table(path, delimiter=b"\t", columns=[
      ("user_id", int), ("item_id", int), ("rating", int), ("timestamp", int)])
  _raise_first(path, first, [
      _non_negative(cols["user_id"], "user_id", "user id"),
      _non_negative(cols["item_id"], "item_id", "item id"),
      _rating_check(cols["rating"], "rating", _int_range(1, 5), "an integer 1..5"),
      _non_negative(cols["timestamp"], "timestamp", "timestamp")])
  return interactions_from_ids(cols["user_id"], cols["item_id"], cols["rating"],
                               cols["timestamp"], source=os.fspath(path))


def load_movielens_latest_small(path: PathLike) -> Interactions:
  """Loads ml-latest-small `ratings.csv`: header, CRLF, half-star ratings 0.5-5, timestamp."""
  cols, first = _read_table(path, delimiter=b",", header=(
      "userId", "movieId", "rating", "timestamp"), columns=[
          ("userId", int), ("movieId", int), ("rating", float), ("timestamp", int)])
  _raise_first(path, first, [
      _non_negative(cols["userId"], "userId", "user id"),
      _non_negative(cols["movieId"], "movieId", "item id"),
      _rating_check(cols["rating"], "rating", _half_stars, "0.5..5.0 in steps of 0.5"),
      _non_negative(cols["timestamp"], "timestamp", "timestamp")])
  return interactions_from_ids(cols["userId"], cols["movieId"], cols["rating"],
                               cols["timestamp"], source=os.fspath(path))


def load_sequences(path: PathLike) -> Interactions:
  """Loads a one-user-per-line sequence file: `user item_1 ... item_n` (chronological).

  Used for Amazon Beauty/Sports (S3-Rec files) and ML-1M (SASRec and full versions).
  order = position in the line (0-based); no ratings. An item repeated within a line is a
  duplicate (user, item) pair: its last occurrence is kept (warning logged). User and
  item ids must be >= 0. A last line without a final newline that has fewer items than
  every other line is taken as a cut file (DataFormatError); see the module docstring.
  """
  raw = parsing.read_bytes(path)
  body = parsing.normalize(raw, path)
  users, lengths, items = parsing.parse_sequences(body, path)
  starts = np.cumsum(lengths) - lengths
  bad_users = np.flatnonzero(users < 0)
  bad_items = np.flatnonzero(items < 0)
  if len(bad_users) or len(bad_items):
    # The earliest line; on it, the user comes before its items.
    item_line = (int(np.searchsorted(starts, bad_items[0], side="right")) - 1
                 if len(bad_items) else len(users))
    if len(bad_users) and bad_users[0] <= item_line:
      line, field, value = int(bad_users[0]), "user", users[bad_users[0]]
    else:
      line, value = item_line, items[bad_items[0]]
      field = f"item {int(bad_items[0] - starts[item_line]) + 1}"
    raise DataFormatError(path, f"negative id {value} (ids must be >= 0)", line=line + 1,
                          field=field)
  if not parsing.last_line_terminated(raw):
    if len(lengths) > 1 and lengths[-1] < lengths[:-1].min():
      raise DataFormatError(
          path, f"the last line has {lengths[-1]} item(s), fewer than any other line "
          f"(at least {lengths[:-1].min()}), and no terminating newline: the file looks "
          "cut (if the line is complete, end the file with a newline)",
          line=len(lengths), field=f"item {lengths[-1]}")
    _warn_if_unterminated(raw, body, path)
  raw_users = np.repeat(users, lengths)
  order = np.arange(len(items), dtype=np.int64) - np.repeat(starts, lengths)
  return interactions_from_ids(raw_users, items, None, order, source=os.fspath(path))


# ----------------------------------------------------------------------------------------
# Anime subsample.


@dataclasses.dataclass(frozen=True)
class AnimeInfo:
  """anime_info.dat aligned to the dense item index (row i = item i). Shapes [I].

  Attributes:
    name: str titles ("" if the item is missing from the info file).
    genre: comma-separated genre list as in the file ("" if none); see `genre_lists`.
    type: "TV", "Movie", "OVA", "Special", "ONA", "Music" ("" if unknown).
    episodes: int64, -1 if unknown ("Unknown" in the original data).
    rating: float32 community mean rating (1-10), NaN if unknown.
    members: int64 community members, -1 if unknown.
    mal_anime_id: int64 myanimelist anime_id (from item_id_to_mal_anime_id.csv), -1 if
      unknown or the file is absent.
  """

  name: np.ndarray
  genre: np.ndarray
  type: np.ndarray
  episodes: np.ndarray
  rating: np.ndarray
  members: np.ndarray
  mal_anime_id: np.ndarray

  def genre_lists(self) -> list[list[str]]:
    """Per item, the list of genres (stripped), [] if none."""
    return [[g.strip() for g in s.split(",") if g.strip()] for s in self.genre]


@dataclasses.dataclass(frozen=True)
class AnimeData:
  """The anime subsample.

  Attributes:
    interactions: one row per (user, item) of the watch history, plus any rated pair
      missing from it; ratings = the explicit 1-10 rating, NaN for "watched, not rated";
      order None (the files have no time). 5,000 users x 7,390 items on the embedded data.
    info: item information aligned to `interactions`' dense item index.
  """

  interactions: Interactions
  info: AnimeInfo

  def rated(self) -> Interactions:
    """The explicitly rated rows only (same user and item index spaces)."""
    return self.interactions.select(~np.isnan(self.interactions.ratings))


_ANIME_RATINGS = "anime_ratings.dat"
_ANIME_HISTORY = "anime_history.dat"
_ANIME_INFO = "anime_info.dat"
_ANIME_MAL_MAP = "item_id_to_mal_anime_id.csv"
_ANIME_HEADER = ("User_ID", "Anime_ID", "Feedback")
_ANIME_INFO_HEADER = ("anime_ids", "name", "genre", "type", "episodes", "rating", "members")


def find_file(folder: PathLike, name: str) -> str:
  """Returns folder/name or folder/name.gz, whichever exists (plain first).

  Raises:
    FileNotFoundError: neither exists; the message names both paths.
  """
  plain = os.path.join(os.fspath(folder), name)
  for candidate in (plain, plain + ".gz"):
    if os.path.isfile(candidate):
      return candidate
  raise FileNotFoundError(f"data file not found: {plain} (nor {plain}.gz)")


def _load_anime_pairs(path: str, ratings: bool) -> tuple[dict[str, np.ndarray], int]:
  cols, first = _read_table(path, delimiter=b"\t", header=_ANIME_HEADER, columns=[
      ("User_ID", int), ("Anime_ID", int), ("Feedback", int)])
  feedback = cols["Feedback"]
  _raise_first(path, first, [
      _non_negative(cols["User_ID"], "User_ID", "user id"),
      _non_negative(cols["Anime_ID"], "Anime_ID", "item id"),
      _rating_check(feedback, "Feedback", _int_range(1, 10), "an integer 1..10") if ratings
      else ("Feedback", feedback != 1,
            lambda i: f"history feedback must be 1, found {feedback[i]}")])
  keep = drop_duplicate_pairs(np.unique(cols["User_ID"], return_inverse=True)[1],
                              np.unique(cols["Anime_ID"], return_inverse=True)[1], path)
  return {k: v[keep] for k, v in cols.items()}, first


def _parse_anime_info(path: str) -> dict[int, tuple]:
  """Returns {anime_ids: (name, genre, type, episodes, rating, members)}."""
  raw = parsing.read_bytes(path)
  text = parsing.decode_text(raw, path)
  body = parsing.normalize(text.encode("utf-8"), path)
  whole = body
  body = parsing.take_header(body, path, _ANIME_INFO_HEADER, b"\t")
  out, seen_on = {}, {}
  for i, raw_line in enumerate(body.split(b"\n")):
    line_no = i + 2
    fields = raw_line.decode("utf-8").split("\t")
    if len(fields) != len(_ANIME_INFO_HEADER):
      field = _ANIME_INFO_HEADER[len(fields)] if len(fields) < len(_ANIME_INFO_HEADER) else None
      raise DataFormatError(path, f"expected {len(_ANIME_INFO_HEADER)} tab-separated fields, "
                            f"found {len(fields)}", line=line_no, field=field)
    anime_id, name, genre, kind, episodes, rating, members = fields

    def number(value, field, parse, unknown, line_no=line_no):
      if value in ("", "Unknown"):
        return unknown
      result = parse(value, path, line_no, field)
      if result < 0:
        raise DataFormatError(path, f"negative value {value!r} (must be >= 0)",
                              line=line_no, field=field)
      return result

    key = number(anime_id, "anime_ids", parsing.strict_int, None)
    if key is None:
      raise DataFormatError(path, "missing item id", line=line_no, field="anime_ids")
    row = (name, genre, kind, number(episodes, "episodes", parsing.strict_int, -1),
           number(rating, "rating", parsing.strict_float, np.nan),
           number(members, "members", parsing.strict_int, -1))
    if key in out:
      logging.warning("%s: item %d listed on lines %d and %d; kept line %d", path, key,
                      seen_on[key], line_no, line_no)
    out[key] = row
    seen_on[key] = line_no
  _warn_if_unterminated(raw, whole, path)
  return out


def _anime_info_for(item_ids: np.ndarray, info_path: str, mal_path: Optional[str]
                    ) -> AnimeInfo:
  rows = _parse_anime_info(info_path)
  missing = [int(i) for i in item_ids if int(i) not in rows]
  if missing:
    logging.warning("%s: %d items have no info (e.g. %s)", info_path, len(missing),
                    missing[:5])
  blank = ("", "", "", -1, np.nan, -1)
  table = [rows.get(int(i), blank) for i in item_ids]
  mal = np.full(len(item_ids), -1, np.int64)
  if mal_path is not None:
    cols, first = _read_table(mal_path, delimiter=b",", header=("item_id", "mal_anime_id"),
                              columns=[("item_id", int), ("mal_anime_id", int)])
    _raise_first(mal_path, first, [_non_negative(cols["item_id"], "item_id", "id"),
                                   _non_negative(cols["mal_anime_id"], "mal_anime_id", "id")])
    dup = parsing.first_duplicate(cols["item_id"])
    if dup is not None:
      raise DataFormatError(mal_path, f"item {cols['item_id'][dup[1]]} is listed on lines "
                            f"{first + dup[0]} and {first + dup[1]}", line=first + dup[1],
                            field="item_id")
    lookup = dict(zip(cols["item_id"].tolist(), cols["mal_anime_id"].tolist()))
    mal = np.array([lookup.get(int(i), -1) for i in item_ids], np.int64)
  return anime_info_from_rows(table, mal)


def anime_info_from_rows(rows: list, mal_anime_id: np.ndarray) -> AnimeInfo:
  """AnimeInfo from one (name, genre, type, episodes, rating, members) row per item and the
  items' MAL ids [I]."""
  return AnimeInfo(
      name=np.array([r[0] for r in rows], dtype=object),
      genre=np.array([r[1] for r in rows], dtype=object),
      type=np.array([r[2] for r in rows], dtype=object),
      episodes=np.array([r[3] for r in rows], np.int64),
      rating=np.array([r[4] for r in rows], np.float32),
      members=np.array([r[5] for r in rows], np.int64),
      mal_anime_id=np.asarray(mal_anime_id, np.int64))


def anime_info(folder: PathLike, item_ids: np.ndarray) -> AnimeInfo:
  """The anime info (anime_info.dat and, if present, the MAL id map in `folder`) for
  `item_ids` (original anime item ids), row i = item_ids[i]."""
  folder = os.fspath(folder)
  try:
    mal_path = find_file(folder, _ANIME_MAL_MAP)
  except FileNotFoundError:
    mal_path = None
  return _anime_info_for(np.asarray(item_ids), find_file(folder, _ANIME_INFO), mal_path)


def embedded_anime_dir() -> str:
  """The folder of the anime subsample shipped inside the package."""
  try:
    path = importlib.resources.files("recsys_core.data").joinpath("anime_5k")
    if os.path.isdir(str(path)):
      return str(path)
  except (ModuleNotFoundError, TypeError):  # pragma: no cover
    pass
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), "anime_5k")


def load_anime(data_dir: Optional[PathLike] = None) -> AnimeData:
  """Loads the anime subsample: ratings and watch history in one index space, plus info.

  Args:
    data_dir: the folder holding anime_ratings.dat, anime_history.dat, anime_info.dat
      (each plain or .gz) and optionally item_id_to_mal_anime_id.csv; None = the copy
      embedded in the package (recsys_core/data/anime_5k).

  Returns:
    `AnimeData`. The user/item spaces are the union of both files' ids; rows are the
    history rows in file order (rating attached where the pair is rated, NaN otherwise),
    followed by rated pairs absent from the history (none in the real data).
  """
  folder = embedded_anime_dir() if data_dir is None else os.fspath(data_dir)
  hist_path = find_file(folder, _ANIME_HISTORY)
  rat_path = find_file(folder, _ANIME_RATINGS)
  hist, _ = _load_anime_pairs(hist_path, ratings=False)
  rat, _ = _load_anime_pairs(rat_path, ratings=True)

  all_users = np.union1d(hist["User_ID"], rat["User_ID"])
  all_items = np.union1d(hist["Anime_ID"], rat["Anime_ID"])
  h_users = np.searchsorted(all_users, hist["User_ID"])
  h_items = np.searchsorted(all_items, hist["Anime_ID"])
  r_users = np.searchsorted(all_users, rat["User_ID"])
  r_items = np.searchsorted(all_items, rat["Anime_ID"])
  n_items = len(all_items)
  h_keys = h_users.astype(np.int64) * n_items + h_items
  r_keys = r_users.astype(np.int64) * n_items + r_items
  sort = np.argsort(h_keys, kind="stable")
  pos = np.searchsorted(h_keys[sort], r_keys)
  pos = np.minimum(pos, len(sort) - 1)
  found = h_keys[sort][pos] == r_keys
  ratings = np.full(len(h_keys), np.nan, np.float32)
  ratings[sort[pos[found]]] = rat["Feedback"][found]
  extra = ~found
  if extra.any():
    logging.info("%s: %d rated pairs are not in the history %s; added as rows",
                 rat_path, int(extra.sum()), hist_path)
  interactions = Interactions(
      users=np.concatenate([h_users, r_users[extra]]).astype(np.int32),
      items=np.concatenate([h_items, r_items[extra]]).astype(np.int32),
      ratings=np.concatenate([ratings, rat["Feedback"][extra].astype(np.float32)]),
      order=None, user_ids=all_users, item_ids=all_items, source=folder)

  return AnimeData(interactions=interactions, info=anime_info(folder, all_items))


# ----------------------------------------------------------------------------------------
# By name.


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """Where a dataset lives under the data folder and how it is read."""

  folder: str
  filename: str  # without .gz; the .gz file is found as well
  loader: Callable[[PathLike], Interactions]
  attributes: Optional[str] = None  # the item side-information file, if any


DATASETS: dict[str, DatasetSpec] = {
    "anime": DatasetSpec("anime_recommendations_5k_subsample", _ANIME_HISTORY,
                         lambda folder: load_anime(folder).interactions, _ANIME_INFO),
    "ml-100k": DatasetSpec("movielens_100k", "u.data", load_movielens_100k, "u.item"),
    "ml-latest-small": DatasetSpec("movielens_latest_small", "ratings.csv",
                                   load_movielens_latest_small, "movies.csv"),
    "ml-1m": DatasetSpec("movielens_1m", "ml-1m_sasrec_seq.txt", load_sequences, "movies.dat"),
    "ml-1m-full": DatasetSpec("movielens_1m", "ml-1m_full_seq.txt", load_sequences,
                              "movies.dat"),
    "beauty": DatasetSpec("amazon_beauty_seq", "Beauty.txt", load_sequences,
                          "Beauty_item2attributes.json"),
    "sports": DatasetSpec("amazon_sports_outdoors_seq", "Sports_and_Outdoors.txt",
                          load_sequences, "Sports_and_Outdoors_item2attributes.json"),
}


def resolve_data_dir(data_dir: Optional[PathLike]) -> str:
  """data_dir, else $RECSYS_DATA_DIR; a clear error if neither is set or it is missing."""
  if data_dir is None:
    data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir:
      raise FileNotFoundError(f"no data folder given and ${DATA_DIR_ENV} is not set "
                              "(it should hold the dataset folders, e.g. shared/data)")
  data_dir = os.fspath(data_dir)
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"data folder not found: {data_dir}")
  return data_dir


def dataset_file(name: str, data_dir: Optional[PathLike] = None, attributes: bool = False
                 ) -> str:
  """The path of a dataset's interaction file (or, attributes=True, its item-info file)."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
  spec = DATASETS[name]
  folder = os.path.join(resolve_data_dir(data_dir), spec.folder)
  filename = spec.attributes if attributes else spec.filename
  if filename is None:
    raise ValueError(f"dataset {name!r} has no attribute file")
  return find_file(folder, filename)


def load_dataset(name: str, data_dir: Optional[PathLike] = None) -> Interactions:
  """Loads a dataset by name.

  Args:
    name: "anime", "ml-100k", "ml-latest-small", "ml-1m" (SASRec version), "ml-1m-full",
      "beauty" or "sports".
    data_dir: the folder holding the dataset folders (e.g. shared/data). None: for
      "anime" the embedded copy, otherwise $RECSYS_DATA_DIR.

  Raises:
    ValueError: unknown name. FileNotFoundError: a missing file or folder (named).
    DataFormatError: a malformed file.
  """
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
  if name == "anime":
    if data_dir is None:
      return load_anime().interactions
    folder = os.path.join(resolve_data_dir(data_dir), DATASETS[name].folder)
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"data folder not found: {folder}")
    return load_anime(folder).interactions
  return DATASETS[name].loader(dataset_file(name, data_dir))
