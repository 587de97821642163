"""Users' own interaction files (CSV, TSV, Parquet) and the original Kaggle anime layout.

`load_interaction_table` reads one table of (user, item[, rating][, time]) rows into
`Interactions`; `load_anime_original` reads the original public "Anime Recommendations
Database" files (rating.csv + anime.csv) into `loaders.AnimeData`.

Formats (`format=`):
  "auto"     by the file name's suffix, after dropping a ".gz": .csv -> "csv";
             .tsv, .tab, .txt -> "tsv"; .parquet, .pq -> "parquet"; any other suffix is an
             error asking for `format`.
  "csv"      comma-separated (or `delimiter=`), read with Python's `csv` module: fields may
             be quoted (`"a, b"` works, a quote inside quotes is doubled, and a quoted value may
             span lines).
  "tsv"      the same with a tab delimiter (quoting works the same way).
  "parquet"  read with `pyarrow.parquet` (optional dependency, imported on first use:
             `pip install 'recsys-jax[parquet]'`).
  CSV, TSV and Parquet files may be plain or gzip, detected by the gzip magic bytes.

Rules for CSV/TSV (the conventions of `parsing` apply: UTF-8, a byte-order mark skipped,
CRLF read as LF, trailing blank lines ignored):
  * line 1 is a header naming the columns; the names are matched after stripping
    surrounding spaces. Only the named columns (`user_col`, `item_col` and, if given,
    `rating_col`, `time_col`) are read, extra columns are ignored. A missing column is a
    `DataFormatError` naming the file, line 1 and the column, listing the columns present.
  * every data row has as many fields as the header (a different count usually means an
    unquoted delimiter inside a value or a truncated line); a blank line is an error; a
    file with no data rows is an error.
  * line numbers in messages are 1-based physical lines of the (decompressed) file; a
    quoted value spanning several lines is reported at the line where its row starts.
  Parquet files are checked in the same way; their messages name the 1-based data row.

Values:
  * user and item ids keep the file's own ids. A column whose every id is a plain decimal
    integer (`-?[0-9]+`: no "+", "_", exponent or spaces) that fits int64 is stored as
    int64; any other column is kept as strings (numpy str array), exactly as written (no
    stripping). Exception: if reading a column as integers would merge different ids
    (e.g. "007" and "7"), it is kept as strings and a warning is logged. An empty id is
    an error. Parquet integer columns stay int64; string columns follow the text rule.
  * rating (optional): a finite float (Python `float()` syntax). An empty cell means "no
    rating" and is stored as NaN, which the library reads as "interacted, not rated"
    (like anime's "watched, not rated"). The text "nan" or "inf" is an error. In Parquet,
    null and NaN mean no rating; +-inf is an error.
  * time (optional): stored as `order`, int64 seconds. Either non-negative integers (unix
    seconds; a negative integer is an error) or ISO 8601 dates/datetimes as read by
    `datetime.fromisoformat` ("2021-03-04", "2021-03-04T05:06:07", "...Z", "...+01:00");
    a datetime without a time zone is taken as UTC; a date is its midnight UTC;
    fractions of a second are floored. One column may not mix the two kinds. In Parquet,
    integer columns are unix seconds, timestamp and date columns are converted to
    seconds. An empty time is an error.
  * rows stay in file order (ordering by time is the splits' job: leave-one-out sorts by
    `order`). Duplicate (user, item) rows: the last one is kept, with a logged warning
    (`loaders.interactions_from_ids`).
"""
from __future__ import annotations

import csv
import datetime
import io
import os
import re
from typing import Optional, Sequence

from absl import logging
import numpy as np

from recsys_core.data import loaders
from recsys_core.data import parsing
from recsys_core.data.parsing import DataFormatError, PathLike
from recsys_core.data.types import Interactions

FORMATS = ("csv", "tsv", "parquet")
_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv",
                   ".parquet": "parquet", ".pq": "parquet"}
_DEFAULT_DELIMITERS = {"csv": ",", "tsv": "\t"}
_INT_RE = re.compile(r"-?[0-9]+")
_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_SECOND = datetime.timedelta(seconds=1)
_PYARROW_HINT = ("reading Parquet files needs pyarrow: pip install 'recsys-jax[parquet]' "
                 "(or pip install pyarrow==26.0.1)")


# ----------------------------------------------------------------------------------------
# Value conversion shared by the text and Parquet readers. `lines` holds the 1-based file
# line of each row (text files), or is None (Parquet: messages name the 1-based row).


def _row_error(path: PathLike, message: str, i: int, lines: Optional[Sequence[int]],
               field: str) -> DataFormatError:
  if lines is None:
    return DataFormatError(path, f"row {i + 1}: {message}", field=field)
  return DataFormatError(path, message, line=lines[i], field=field)


def _shown(value: str) -> str:
  return repr(value[:80])


def _ids_from_text(values: Sequence[Optional[str]], path: PathLike,
                   lines: Optional[Sequence[int]], field: str) -> np.ndarray:
  """[N] ids: int64 if all are plain decimal integers in the int64 range, else str."""
  if not all(v is not None and v.strip() for v in values):
    i = next(i for i, v in enumerate(values) if v is None or not v.strip())
    raise _row_error(path, "empty id", i, lines, field)
  if all(map(_INT_RE.fullmatch, values)):
    ints = list(map(int, values))
    if min(ints) >= _INT64_MIN and max(ints) <= _INT64_MAX:
      canonical = all(str(n) == v for n, v in zip(ints, values))
      if canonical or len(set(ints)) == len(set(values)):
        return np.array(ints, np.int64)
      logging.warning("%s: column %r has integer ids written in different ways (e.g. with "
                      "leading zeros) that would merge as integers; kept them as strings",
                      os.fspath(path), field)
  return np.array(values, dtype=str)


def _ratings_from_text(values: Sequence[Optional[str]], path: PathLike,
                       lines: Optional[Sequence[int]], field: str) -> np.ndarray:
  """[N] float64 ratings; an empty cell (or null) is NaN."""
  out = np.empty(len(values), np.float64)
  for i, v in enumerate(values):
    s = "" if v is None else v.strip()
    if not s:
      out[i] = np.nan
      continue
    try:
      x = float(s)
    except ValueError:
      raise _row_error(path, f"expected a number (or an empty cell for no rating), found "
                       f"{_shown(s)}", i, lines, field) from None
    if not np.isfinite(x) or abs(x) > _FLOAT32_MAX:
      raise _row_error(path, f"rating {_shown(s)} is not a finite float32 (leave the cell "
                       "empty for no rating)", i, lines, field)
    out[i] = x
  return out


def _seconds_from_iso(text: str) -> int:
  """Seconds since 1970-01-01 UTC of an ISO 8601 date/datetime (naive = UTC), floored."""
  dt = datetime.datetime.fromisoformat(text)
  if dt.tzinfo is None:
    dt = dt.replace(tzinfo=datetime.timezone.utc)
  return (dt - _EPOCH) // _SECOND


def _times_from_text(values: Sequence[Optional[str]], path: PathLike,
                     lines: Optional[Sequence[int]], field: str) -> np.ndarray:
  """[N] int64 seconds from unix-seconds integers or ISO 8601 dates (not mixed)."""
  out = np.empty(len(values), np.int64)
  first_kind, first_i = None, 0
  for i, v in enumerate(values):
    s = "" if v is None else v.strip()
    if not s:
      raise _row_error(path, "empty time", i, lines, field)
    if _INT_RE.fullmatch(s):
      kind, seconds = "unix seconds", int(s)
      if seconds < 0:
        raise _row_error(path, f"negative timestamp {_shown(s)}", i, lines, field)
      if seconds > _INT64_MAX:
        raise _row_error(path, f"timestamp {_shown(s)} is out of the int64 range", i,
                         lines, field)
    else:
      kind = "ISO 8601 dates"
      try:
        seconds = _seconds_from_iso(s)
      except ValueError:
        raise _row_error(path, "expected unix seconds (a non-negative integer) or an ISO "
                         f"8601 date/datetime, found {_shown(s)}", i, lines, field) from None
    if first_kind is None:
      first_kind, first_i = kind, i
    elif kind != first_kind:
      where = (f"row {first_i + 1}" if lines is None else f"line {lines[first_i]}")
      raise _row_error(path, f"time {_shown(s)} is {kind}, but {where} holds {first_kind}; "
                       "a time column may not mix the two", i, lines, field)
    out[i] = seconds
  return out


# ----------------------------------------------------------------------------------------
# Reading CSV/TSV.


def _missing_column_error(path: PathLike, column: str, argument: str,
                          present: Sequence[str], delimiter: Optional[str],
                          line: Optional[int]) -> DataFormatError:
  message = (f"no column {column!r} (the columns are {list(present)}); name the right "
             f"one with {argument}=")
  if delimiter is not None and len(present) == 1:
    for other, name in (("\t", "a tab"), (",", "a comma"), (";", "a semicolon")):
      if other != delimiter and other in present[0]:
        message += f" (the header contains {name}: wrong delimiter or format?)"
        break
  return DataFormatError(path, message, line=line, field=column)


def _read_delimited(path: PathLike, delimiter: str, wanted: dict[str, str]
                    ) -> tuple[dict[str, list[str]], list[int]]:
  """Returns ({column: [N] raw strings}, [N] 1-based file line of each row)."""
  body = parsing.normalize(parsing.read_bytes(path), path)
  text = parsing.decode_text(body, path)
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
  try:
    header = [name.strip() for name in next(reader)]
  except csv.Error as e:
    raise DataFormatError(path, f"malformed header ({e})", line=1) from None
  positions = {}
  for argument, column in wanted.items():
    found = [j for j, name in enumerate(header) if name == column]
    if not found:
      raise _missing_column_error(path, column, argument, header, delimiter, line=1)
    if len(found) > 1:
      raise DataFormatError(path, f"column {column!r} appears {len(found)} times in the "
                            "header", line=1, field=column)
    positions[column] = found[0]
  n_fields = len(header)
  columns = {column: [] for column in positions}
  targets = [(columns[column], j) for column, j in positions.items()]
  lines = []
  previous = reader.line_num
  try:
    for row in reader:
      start, previous = previous + 1, reader.line_num
      if len(row) != n_fields:
        if not row:
          raise DataFormatError(path, "empty line (truncated or concatenated file?)",
                                line=start)
        raise DataFormatError(
            path, f"expected {n_fields} fields as in the header, found {len(row)} "
            f"(an unquoted {delimiter!r} inside a value, a truncated line or a wrong "
            "delimiter?)", line=start)
      lines.append(start)
      for values, j in targets:
        values.append(row[j])
  except csv.Error as e:
    raise DataFormatError(path, f"malformed line ({e})", line=reader.line_num) from None
  if not lines:
    raise DataFormatError(path, "file has a header but no data rows")
  return columns, lines


# ----------------------------------------------------------------------------------------
# Reading Parquet.


def _import_pyarrow():
  try:
    import pyarrow  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise ImportError(_PYARROW_HINT) from e
  return pyarrow


def _arrow_column(pa, col, path: PathLike, field: str, role: str) -> np.ndarray:
  """Converts one pyarrow ChunkedArray to ids ([N] int64/str), ratings or times."""
  kind = col.type
  if pa.types.is_dictionary(kind):
    col = col.cast(kind.value_type)
    kind = col.type
  nulls = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
  is_string_view = getattr(pa.types, "is_string_view", lambda _: False)  # pyarrow >= 16
  textual = (pa.types.is_string(kind) or pa.types.is_large_string(kind)
             or is_string_view(kind))
  if textual:
    values = col.to_pylist()
    if role == "id":
      return _ids_from_text(values, path, None, field)
    if role == "rating":
      return _ratings_from_text(values, path, None, field)
    return _times_from_text(values, path, None, field)
  if nulls is not None and role != "rating":
    i = int(np.flatnonzero(nulls)[0])
    raise _row_error(path, f"empty {'id' if role == 'id' else 'time'}", i, None, field)
  if role == "rating" and (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                           or pa.types.is_decimal(kind)):
    values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
    values = values.astype(np.float64)  # nulls come back as NaN: no rating
    bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > _FLOAT32_MAX)
    if bad.any():
      i = int(np.flatnonzero(bad)[0])
      raise _row_error(path, f"rating {values[i]!r} is not a finite float32", i, None, field)
    return values
  if pa.types.is_integer(kind) and role in ("id", "time"):
    if pa.types.is_unsigned_integer(kind) and col.length() and \
        int(col.to_numpy(zero_copy_only=False).max()) > _INT64_MAX:
      raise DataFormatError(path, "unsigned ids above the int64 range", field=field)
    values = col.to_numpy(zero_copy_only=False).astype(np.int64)
    if role == "time" and (values < 0).any():
      i = int(np.flatnonzero(values < 0)[0])
      raise _row_error(path, f"negative timestamp {int(values[i])}", i, None, field)
    return values
  if role == "time" and pa.types.is_timestamp(kind):
    per_second = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[kind.unit]
    return col.cast(pa.int64()).to_numpy(zero_copy_only=False) // per_second
  if role == "time" and pa.types.is_date32(kind):
    return col.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64) * 86400
  if role == "time" and pa.types.is_date64(kind):
    return col.cast(pa.int64()).to_numpy(zero_copy_only=False) // 1000
  expected = {"id": "integers or strings", "rating": "numbers or strings",
              "time": "integers (unix seconds), timestamps, dates or strings"}[role]
  raise DataFormatError(path, f"unsupported column type {kind} (expected {expected})",
                        field=field)


def _read_parquet(path: PathLike, wanted: dict[str, str]):
  """Returns ({column: pyarrow ChunkedArray}, pyarrow module)."""
  pa = _import_pyarrow()
  data = parsing.read_bytes(path)
  try:
    parquet_file = pa.parquet.ParquetFile(pa.BufferReader(data))
    present = parquet_file.schema_arrow.names
  except (pa.ArrowException, OSError) as e:
    raise DataFormatError(path, f"not a readable Parquet file ({e})") from None
  for argument, column in wanted.items():
    if column not in present:
      raise _missing_column_error(path, column, argument, present, None, line=None)
    if present.count(column) > 1:
      raise DataFormatError(path, f"column {column!r} appears {present.count(column)} "
                            "times", field=column)
  try:
    table = parquet_file.read(columns=list(wanted.values()))
  except (pa.ArrowException, OSError) as e:
    raise DataFormatError(path, f"not a readable Parquet file ({e})") from None
  if table.num_rows == 0:
    raise DataFormatError(path, "file has no data rows")
  return {column: table.column(column) for column in wanted.values()}, pa


# ----------------------------------------------------------------------------------------
# Public API.


def table_format(path: PathLike, format: str = "auto") -> str:  # pylint: disable=redefined-builtin
  """The format ("csv", "tsv" or "parquet") of `path`: `format`, or by suffix for "auto".

  Raises:
    ValueError: an unknown `format`, or "auto" with a suffix that names no format.
  """
  if format != "auto":
    if format not in FORMATS:
      raise ValueError(f"format must be 'auto' or one of {FORMATS}, got {format!r}")
    return format
  name = os.path.basename(os.fspath(path)).lower()
  if name.endswith(".gz"):
    name = name[:-3]
  suffix = os.path.splitext(name)[1]
  if suffix not in _SUFFIX_FORMATS:
    raise ValueError(f"{os.fspath(path)}: cannot tell the format from the suffix "
                     f"{suffix or '(none)'!r}; pass format='csv', 'tsv' or 'parquet'")
  return _SUFFIX_FORMATS[suffix]


def load_interaction_table(path: PathLike, *,
                           format: str = "auto",  # pylint: disable=redefined-builtin
                           user_col: str = "user_id", item_col: str = "item_id",
                           rating_col: Optional[str] = None, time_col: Optional[str] = None,
                           delimiter: Optional[str] = None) -> Interactions:
  """Loads a user's own interaction table (CSV, TSV or Parquet; plain or gzip).

  See the module docstring for the formats and the rules.

  Args:
    path: the file.
    format: "auto" (by suffix), "csv", "tsv" or "parquet".
    user_col, item_col: the header names of the user and item id columns.
    rating_col: the rating column's name, or None (no ratings).
    time_col: the time column's name (unix seconds or ISO 8601), or None (no order).
    delimiter: one character overriding the CSV/TSV default ("," / tab); not for Parquet.

  Returns:
    `Interactions` with N rows in file order (after dropping duplicate pairs, last kept):
    users/items [N] int32 dense indices; ratings [N] float32 (NaN = no rating) or None;
    order [N] int64 seconds or None; user_ids [U] / item_ids [I] sorted original ids,
    int64 or str; source = the path.

  Raises:
    ValueError: bad arguments (unknown format, suffix naming no format, a column named
      twice, a delimiter that is not one character or given for Parquet).
    FileNotFoundError: no such file.
    ImportError: a Parquet file and pyarrow is not installed.
    DataFormatError: a malformed file (names the file, line or row, and field).
  """
  fmt = table_format(path, format)
  wanted = {"user_col": user_col, "item_col": item_col}
  if rating_col is not None:
    wanted["rating_col"] = rating_col
  if time_col is not None:
    wanted["time_col"] = time_col
  names = list(wanted.values())
  if len(set(names)) != len(names):
    raise ValueError(f"each column must be named once, got {wanted}")
  source = os.fspath(path)
  if fmt == "parquet":
    if delimiter is not None:
      raise ValueError("delimiter applies to CSV/TSV only, not to Parquet")
    arrays, pa = _read_parquet(path, wanted)
    users = _arrow_column(pa, arrays[user_col], path, user_col, "id")
    items = _arrow_column(pa, arrays[item_col], path, item_col, "id")
    ratings = (None if rating_col is None else
               _arrow_column(pa, arrays[rating_col], path, rating_col, "rating"))
    order = (None if time_col is None else
             _arrow_column(pa, arrays[time_col], path, time_col, "time"))
  else:
    delimiter = _DEFAULT_DELIMITERS[fmt] if delimiter is None else delimiter
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\"\r\n":
      raise ValueError(f"delimiter must be one character (not a quote or line break), got "
                       f"{delimiter!r}")
    columns, lines = _read_delimited(path, delimiter, wanted)
    users = _ids_from_text(columns[user_col], path, lines, user_col)
    items = _ids_from_text(columns[item_col], path, lines, item_col)
    ratings = (None if rating_col is None else
               _ratings_from_text(columns[rating_col], path, lines, rating_col))
    order = (None if time_col is None else
             _times_from_text(columns[time_col], path, lines, time_col))
  return loaders.interactions_from_ids(users, items, ratings, order, source=source)


# ----------------------------------------------------------------------------------------
# The original Kaggle anime layout.

_ORIGINAL_RATING = "rating.csv"
_ORIGINAL_ANIME = "anime.csv"
_ORIGINAL_RATING_HEADER = ("user_id", "anime_id", "rating")
_ORIGINAL_ANIME_HEADER = ("anime_id", "name", "genre", "type", "episodes", "rating",
                          "members")


def _original_paths(folder_or_rating_path: PathLike) -> tuple[str, str]:
  given = os.fspath(folder_or_rating_path)
  if os.path.isdir(given):
    return (loaders.find_file(given, _ORIGINAL_RATING),
            loaders.find_file(given, _ORIGINAL_ANIME))
  if not os.path.isfile(given):
    raise FileNotFoundError(f"data file or folder not found: {given}")
  return given, loaders.find_file(os.path.dirname(given) or ".", _ORIGINAL_ANIME)


def _parse_original_anime(path: str) -> dict[int, tuple]:
  """{anime_id: (name, genre, type, episodes, rating, members)} from anime.csv."""
  expected = len(_ORIGINAL_ANIME_HEADER)
  body = parsing.normalize(parsing.read_bytes(path), path)
  reader = csv.reader(io.StringIO(parsing.decode_text(body, path), newline=""),
                      strict=True)
  out, line_of = {}, {}
  try:
    header = [name.strip() for name in next(reader)]
    if header != list(_ORIGINAL_ANIME_HEADER):
      raise DataFormatError(path, f"expected the header {','.join(_ORIGINAL_ANIME_HEADER)!r},"
                            f" found {','.join(header)[:200]!r}", line=1)
    previous = reader.line_num
    for row in reader:
      line, previous = previous + 1, reader.line_num
      if len(row) != expected:
        if not row:
          raise DataFormatError(path, "empty line (truncated or concatenated file?)",
                                line=line)
        raise DataFormatError(path, f"expected {expected} comma-separated fields, found "
                              f"{len(row)} (an unquoted comma inside a value?)", line=line)
      anime_id, name, genre, kind, episodes, rating, members = row

      def number(value, field, cast, unknown, line=line):
        value = value.strip()
        if value in ("", "Unknown"):
          return unknown
        try:
          result = cast(value)
        except ValueError:
          raise DataFormatError(path, f"expected a number or 'Unknown', found "
                                f"{_shown(value)}", line=line, field=field) from None
        if cast is float and not np.isfinite(result):
          raise DataFormatError(path, f"non-finite value {_shown(value)}", line=line,
                                field=field)
        return result

      key = number(anime_id, "anime_id", int, None)
      if key is None:
        raise DataFormatError(path, "missing anime id", line=line, field="anime_id")
      if key in out:
        raise DataFormatError(path, f"anime_id {key} is listed on lines {line_of[key]} and "
                              f"{line}", line=line, field="anime_id")
      line_of[key] = line
      out[key] = (name, genre, kind, number(episodes, "episodes", int, -1),
                  number(rating, "rating", float, np.nan),
                  number(members, "members", int, -1))
  except csv.Error as e:
    raise DataFormatError(path, f"malformed line ({e})", line=reader.line_num) from None
  if not out:
    raise DataFormatError(path, "file has a header but no data rows")
  return out


def load_anime_original(folder_or_rating_path: PathLike) -> loaders.AnimeData:
  """Loads the original Kaggle "Anime Recommendations Database" files.

  rating.csv: header `user_id,anime_id,rating`, rating an integer 1..10, or -1 for
  "watched, not rated". anime.csv (beside rating.csv): header
  `anime_id,name,genre,type,episodes,rating,members` (genre a quoted comma-separated list;
  episodes may be "Unknown"; rating and members may be empty). Each file plain or .gz.

  Args:
    folder_or_rating_path: the folder holding rating.csv[.gz] and anime.csv[.gz], or the
      path of the rating file (anime.csv is then looked for in the same folder).

  Returns:
    `loaders.AnimeData`: interactions with one row per rating.csv row in file order
    (duplicate pairs: last kept, warning logged): ratings [N] float32, NaN where the file
    says -1; order None; user_ids [U] / item_ids [I] int64, items = every anime_id in
    rating.csv. info: `AnimeInfo` with [I] rows aligned to the dense item index;
    mal_anime_id = the anime_id (these are MyAnimeList ids); anime missing from anime.csv
    get blank info (a warning is logged).

  Raises:
    FileNotFoundError: a missing file or folder. DataFormatError: a malformed file, a
      rating other than -1 or 1..10, or an anime_id listed twice in anime.csv.
  """
  rating_path, anime_path = _original_paths(folder_or_rating_path)
  body = parsing.normalize(parsing.read_bytes(rating_path), rating_path)
  body = parsing.take_header(body, rating_path, _ORIGINAL_RATING_HEADER, b",")
  cols = parsing.parse_table(body, rating_path, delimiter=b",", first_line=2, columns=[
      ("user_id", int), ("anime_id", int), ("rating", int)])
  raw = cols["rating"]
  bad = (raw != -1) & ((raw < 1) | (raw > 10))
  if bad.any():
    i = int(np.flatnonzero(bad)[0])
    raise DataFormatError(rating_path, f"rating {raw[i]} out of range (expected -1 for "
                          "watched, not rated, or an integer 1..10)", line=2 + i,
                          field="rating")
  ratings = np.where(raw == -1, np.nan, raw.astype(np.float64))
  interactions = loaders.interactions_from_ids(cols["user_id"], cols["anime_id"], ratings,
                                               None, source=rating_path)

  info_rows = _parse_original_anime(anime_path)
  item_ids = interactions.item_ids
  missing = [int(i) for i in item_ids if int(i) not in info_rows]
  if missing:
    logging.warning("%s: %d anime of %s have no info (e.g. %s); their info is blank",
                    anime_path, len(missing), rating_path, missing[:5])
  blank = ("", "", "", -1, np.nan, -1)
  table = [info_rows.get(int(i), blank) for i in item_ids]
  info = loaders.anime_info_from_rows(table, np.asarray(item_ids, np.int64).copy())
  return loaders.AnimeData(interactions=interactions, info=info)


# ----------------------------------------------------------------------------------------
# Item attributes of a user's own data.


def load_item_attribute_table(
    path: PathLike, item_ids: np.ndarray, columns: Sequence[str], *,
    item_col: str = "item_id",
    format: str = "auto") -> np.ndarray:  # pylint: disable=redefined-builtin
  """Item attributes (e.g. brand, genre) from a CSV/TSV/Parquet table with one row per item.

  Args:
    path: the file; a header names `item_col` and the attribute `columns`.
    item_ids: [I] the interactions' item ids (their own ids; compared as text, so int and
      string ids of the same item match).
    columns: the attribute columns to read (F of them).
    item_col: the item id column.
    format: as in `load_interaction_table`.

  Returns:
    [I, F] int32: per item and column, the attribute value's index 1..V (values numbered in
    sorted order per column), 0 where the item is not in the file or the cell is empty.

  Raises:
    DataFormatError: a missing column, an empty item id, or an item listed twice (both lines).
  """
  if not columns:
    raise ValueError("no attribute column given")
  fmt = table_format(path, format)
  wanted = {"item_col": item_col, **{f"attribute {c}": c for c in columns}}
  if len(set(wanted.values())) != len(wanted):
    raise ValueError(f"each column must be named once, got {sorted(wanted.values())}")
  if fmt == "parquet":
    arrays, pa = _read_parquet(path, wanted)
    items = [str(v) for v in _arrow_column(pa, arrays[item_col], path, item_col, "id")]
    values = {c: ["" if v is None else str(v) for v in arrays[c].to_pylist()] for c in columns}
    lines = None
  else:
    raw, lines = _read_delimited(path, _DEFAULT_DELIMITERS[fmt], wanted)
    items = [str(v) for v in _ids_from_text(raw[item_col], path, lines, item_col)]
    values = {c: [(v or "").strip() for v in raw[c]] for c in columns}
  first: dict[str, int] = {}
  for i, item in enumerate(items):
    if item in first:
      where = (f"lines {lines[first[item]]} and {lines[i]}" if lines is not None
               else f"rows {first[item] + 1} and {i + 1}")
      raise DataFormatError(path, f"item {item} is listed twice ({where})",
                            line=None if lines is None else lines[i], field=item_col)
    first[item] = i
  out = np.zeros((len(item_ids), len(columns)), np.int32)
  rows = np.array([first.get(str(i), -1) for i in np.asarray(item_ids).tolist()])
  known = rows >= 0
  for j, c in enumerate(columns):
    vocab = {v: k + 1 for k, v in enumerate(sorted({v for v in values[c] if v}))}
    codes = np.array([vocab.get(v, 0) for v in values[c]] + [0], np.int32)
    out[:, j] = codes[np.where(known, rows, len(values[c]))]
  return out
