"""Low-level, vectorised and strict parsing of interaction files (plain or gzip).

Every parser here either returns well-formed arrays or raises `DataFormatError` naming the
file, the 1-based line number and, where it applies, the field. Parsers only read: they
never write or repair files on disk.

Parsing is fast on well-formed input (whole-file bytes operations and numpy; no per-line
Python work except token conversion) and precise on malformed input: when the fast path
fails, a slow per-line pass finds the first offending line and field for the message.

Conventions for every table/sequence file:
  * gzip is detected by its magic bytes (1f 8b), whatever the suffix.
  * CRLF (and lone CR) line endings are accepted and read as LF; a UTF-8 byte-order mark
    at the start is skipped.
  * Trailing empty (or whitespace-only) lines at the end of the file are ignored; an empty
    or blank line anywhere else is an error (it usually means a truncated or concatenated
    file).
  * A file with no data rows (0 bytes, only a header, only newlines) is an error.
  * Integers use Python `int()` syntax, floats Python `float()` syntax; non-finite floats
    (nan, inf) are rejected.
"""
from __future__ import annotations

import gzip
import os
import zlib
from typing import Optional, Sequence, Union

import numpy as np

PathLike = Union[str, os.PathLike]

_GZIP_MAGIC = b"\x1f\x8b"


class DataFormatError(ValueError):
  """A data file is malformed. The message names the file, 1-based line and field.

  Attributes:
    path: the file.
    line: 1-based line number in the (decompressed) file, or None for whole-file errors.
    field: the column name, or None.
  """

  def __init__(self, path: PathLike, message: str, line: Optional[int] = None,
               field: Optional[str] = None):
    self.path = os.fspath(path)
    self.line = line
    self.field = field
    where = self.path
    if line is not None:
      where += f", line {line}"
    if field is not None:
      where += f", field {field!r}"
    super().__init__(f"{where}: {message}")


def read_bytes(path: PathLike) -> bytes:
  """Returns the file's content, gunzipped if it starts with the gzip magic bytes.

  Raises:
    FileNotFoundError: the file does not exist (the message names the path).
    DataFormatError: corrupt or truncated gzip data.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"data file not found: {path}")
  with open(path, "rb") as f:
    raw = f.read()
  if raw[:2] == _GZIP_MAGIC:
    try:
      return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
      raise DataFormatError(path, f"corrupt or truncated gzip data ({e})") from None
  return raw


def decode_text(data: bytes, path: PathLike, encoding: str = "utf-8") -> str:
  """Decodes bytes as `encoding`; a decoding error becomes a DataFormatError with the line."""
  try:
    return data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise DataFormatError(path, f"not valid {encoding} ({e.reason})", line=line) from None


def normalize(data: bytes, path: PathLike) -> bytes:
  """Normalises line endings to LF, drops trailing blank lines, rejects empty files.

  Returns:
    The body: the lines joined by b"\\n", no trailing newline, at least one byte.
  """
  if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark
    data = data[3:]
  if b"\r" in data:
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
  data = data.rstrip(b"\n")
  while data:  # drop whitespace-only last lines (but keep a last line's trailing tabs)
    start = data.rfind(b"\n") + 1
    if data[start:].strip():
      break
    data = data[:start].rstrip(b"\n")
  if not data:
    raise DataFormatError(path, "file is empty (no data rows)")
  return data


def take_header(body: bytes, path: PathLike, expected: Sequence[str],
                delimiter: bytes) -> bytes:
  """Checks that line 1 of `body` is `expected` joined by `delimiter`; returns the rest."""
  end = body.find(b"\n")
  first = body if end < 0 else body[:end]
  found = [f.strip() for f in first.decode("utf-8", errors="replace").split(delimiter.decode())]
  if found != list(expected):
    raise DataFormatError(path, f"expected the header {delimiter.decode().join(expected)!r}, "
                          f"found {first.decode('utf-8', errors='replace')[:200]!r}", line=1)
  rest = b"" if end < 0 else body[end + 1:]
  if not rest.strip():
    raise DataFormatError(path, "file has a header but no data rows")
  return rest


def _fast_ints(body: bytes, delimiter: bytes) -> Optional[np.ndarray]:
  """All tokens of `body` (separated by `delimiter` or newlines) as int64, vectorised.

  Returns None unless every token is 1 to 18 ASCII digits (no sign, no spaces); the
  caller then falls back to Python `int()` per token, which also locates errors.
  """
  arr = np.frombuffer(body, np.uint8)
  digit = arr - np.uint8(48)  # wraps around for bytes below b"0"
  is_sep = (arr == delimiter[0]) | (arr == 10)
  if not ((digit <= 9) | is_sep).all():
    return None
  sep = np.flatnonzero(is_sep)
  ends = np.append(sep, len(arr))  # one past each token's last digit
  lengths = ends - np.insert(sep + 1, 0, 0)
  if lengths.min() < 1 or lengths.max() > 18:
    return None
  values = np.zeros(len(ends), np.int64)
  for p in range(int(lengths.max())):  # add the digit p places left of each token's end
    if lengths.min() > p:
      values += digit[ends - 1 - p].astype(np.int64) * 10**p
    else:
      has = lengths > p
      values[has] += digit[ends[has] - 1 - p].astype(np.int64) * 10**p
  return values


def _convert(tokens: Sequence[bytes], kind: type) -> np.ndarray:
  """Converts tokens to int64 (kind=int) or float64 (kind=float); ValueError on bad tokens."""
  if kind is int:
    return np.fromiter(map(int, tokens), np.int64, count=len(tokens))
  return np.fromiter(map(float, tokens), np.float64, count=len(tokens))


def _describe_kind(kind: type) -> str:
  return "an integer" if kind is int else "a number"


def _token_error(path: PathLike, token: bytes, kind: type, line: int, field: str):
  shown = token.decode("utf-8", errors="replace")[:80]
  if kind is int:
    try:
      int(token)
      return DataFormatError(path, f"integer {shown!r} is out of the int64 range",
                             line=line, field=field)
    except ValueError:
      pass
  if not token.strip():
    return DataFormatError(path, f"empty value (expected {_describe_kind(kind)})",
                           line=line, field=field)
  return DataFormatError(path, f"expected {_describe_kind(kind)}, found {shown!r}",
                         line=line, field=field)


def _empty_line_error(path: PathLike, line: int) -> DataFormatError:
  return DataFormatError(path, "empty line (truncated or concatenated file?)", line=line)


def parse_table(body: bytes, path: PathLike, *, delimiter: bytes,
                columns: Sequence[tuple[str, type]], first_line: int) -> dict[str, np.ndarray]:
  """Parses delimited numeric rows into one array per column.

  Args:
    body: the data lines (no header) joined by b"\\n", e.g. from `normalize` /
      `take_header`.
    path: the file, for messages.
    delimiter: one byte, e.g. b"\\t" or b",".
    columns: (name, int or float) per field, in file order.
    first_line: the 1-based file line number of the first line of `body`.

  Returns:
    {name: [N] int64 or float64 array}.

  Raises:
    DataFormatError: wrong field count (wrong delimiter, truncated line), blank line,
      non-numeric or non-finite value; the message names the line and field.
  """
  k = len(columns)
  # Field counts per line, vectorised: count delimiters between consecutive newlines.
  arr = np.frombuffer(body, np.uint8)
  newlines = np.flatnonzero(arr == 10)
  delims = np.flatnonzero(arr == delimiter[0])
  bounds = np.concatenate([[-1], newlines, [len(arr)]])
  counts = np.diff(np.searchsorted(delims, bounds))
  bad = np.flatnonzero(counts != k - 1)
  if len(bad):
    i = int(bad[0])
    line = body.split(b"\n")[i]
    if not line.strip():
      raise _empty_line_error(path, first_line + i)
    shown = line[:80].decode("utf-8", errors="replace")
    raise DataFormatError(
        path, f"expected {k} fields separated by {delimiter.decode()!r}, found "
        f"{counts[i] + 1} in {shown!r} (truncated line or wrong delimiter?)",
        line=first_line + i)
  if all(kind is int for _, kind in columns):
    values = _fast_ints(body, delimiter)
    if values is not None:
      values = values.reshape(-1, k)
      return {name: values[:, j] for j, (name, _) in enumerate(columns)}
  tokens = body.replace(b"\n", delimiter).split(delimiter)
  out = {}
  for j, (name, kind) in enumerate(columns):
    col = tokens[j::k]
    try:
      values = _convert(col, kind)
    except (ValueError, OverflowError):
      for i, token in enumerate(col):  # slow path: find the first bad token
        try:
          _convert([token], kind)
        except (ValueError, OverflowError):
          raise _token_error(path, token, kind, first_line + i, name) from None
      raise  # unreachable: the bulk conversion failed, so one token must fail
    if kind is float:
      bad = ~np.isfinite(values)
      if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(path, f"non-finite value {col[i].decode()!r}",
                              line=first_line + i, field=name)
    out[name] = values
  return out


def parse_sequences(body: bytes, path: PathLike, *, first_line: int = 1
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Parses one-user-per-line sequence files: `user item_1 item_2 ... item_n`.

  Tokens are separated by runs of spaces or tabs.

  Returns:
    (user_ids [L], lengths [L], items [sum(lengths)]) as int64, L = number of lines.

  Raises:
    DataFormatError: blank line, a line with a user but no items (empty user), a
      non-integer token (e.g. a wrong delimiter such as commas), or a user id that appears
      on two lines; the message names the line and the token's position ("user" or
      "item j", 1-based).
  """
  # Fast path for single-space-separated lines (the real files): no per-line Python work.
  simple = not any(bad in body for bad in (b"\t", b"  ", b" \n", b"\n ", b"\n\n")) \
      and body[:1] != b" "
  values = None
  if simple:
    arr = np.frombuffer(body, np.uint8)
    newlines = np.flatnonzero(arr == 10)
    spaces = np.flatnonzero(arr == 32)
    lengths = np.diff(np.searchsorted(spaces, np.concatenate([[-1], newlines, [len(arr)]]))) + 1
    if lengths.min() >= 2:
      values = _fast_ints(body, b" ")
  if values is None:  # general path, which also locates errors
    per_line = [line.split() for line in body.split(b"\n")]
    lengths = np.fromiter(map(len, per_line), np.int64, count=len(per_line))
    short = np.flatnonzero(lengths < 2)
    if len(short):
      i = int(short[0])
      if lengths[i] == 0:
        raise _empty_line_error(path, first_line + i)
      try:
        _convert(per_line[i], int)
      except (ValueError, OverflowError):  # e.g. "1,5,6": a wrong delimiter
        raise _token_error(path, per_line[i][0], int, first_line + i, "user") from None
      raise DataFormatError(path, f"user {per_line[i][0].decode('utf-8', 'replace')!r} has "
                            "no items (a line must be 'user item_1 ... item_n')",
                            line=first_line + i)
    try:
      values = _convert([t for toks in per_line for t in toks], int)
    except (ValueError, OverflowError):
      for i, toks in enumerate(per_line):
        for j, token in enumerate(toks):
          try:
            _convert([token], int)
          except (ValueError, OverflowError):
            field = "user" if j == 0 else f"item {j}"
            raise _token_error(path, token, int, first_line + i, field) from None
      raise
  is_user = np.zeros(len(values), bool)
  is_user[np.cumsum(lengths) - lengths] = True
  users, items = values[is_user], values[~is_user]
  uniq, counts = np.unique(users, return_counts=True)
  if (counts > 1).any():
    dup = uniq[counts > 1][0]
    where = np.flatnonzero(users == dup)
    raise DataFormatError(path, f"user {dup} appears on lines {first_line + where[0]} and "
                          f"{first_line + where[1]}; one line per user expected",
                          line=first_line + int(where[1]), field="user")
  return users, lengths - 1, items
