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
  * Integers are strict: an optional '-' then ASCII digits, in the int64 range. No '+',
    no '_' (`1_000`), no exponent (`1e0`), no surrounding spaces (` 5`): Python's int()
    accepts several of these, the parsers do not. (Negative values parse; the loaders
    reject them where they are ids or timestamps.)
  * Floats are plain decimal notation with an optional exponent: an optional '-', digits
    with an optional '.' (or '.' then digits), optionally `e`/`E`, an optional sign and
    digits, e.g. `4`, `3.5`, `.5`, `-2.`, `5e-1`. No '+' in front, no '_', no
    surrounding spaces, no `inf`/`nan`/`infinity`; a value that overflows to infinity
    (`1e999`) is rejected as non-finite.
  * Tokens of sequence files are separated by runs of spaces or tabs only (other control
    bytes, e.g. a vertical tab, make the token invalid rather than act as a separator).

Cut files (the rule the loaders apply, see `last_line_terminated`): a file cut mid-way
(e.g. a copy interrupted) usually ends inside its last line, without a final newline.
  * A table's line (the last one included) with fewer fields than the header / the format
    is always an error naming the line and the first missing field; for the last line the
    message says the file looks cut.
  * A sequence file's last line that has no terminating newline and fewer items than
    every other line of the file is an error (the file looks cut; if that line is really
    complete, end the file with a newline to load it).
  * Any other last line without a terminating newline loads, with a logged warning naming
    the file and the line (its last value may be incomplete). A cut that falls exactly
    on a line end, or a cut inside a last value that still parses, cannot be detected.
  * A truncated gzip stream is always an error (`read_bytes`).
"""
from __future__ import annotations

import gzip
import os
import re
import zlib
from typing import Optional, Sequence, Union

import numpy as np

PathLike = Union[str, os.PathLike]

_GZIP_MAGIC = b"\x1f\x8b"

# The strict number syntax (see the module docstring). `\Z`, not `$`: no trailing newline.
_INT_RE = re.compile(rb"-?[0-9]+\Z")
_INT_STR_RE = re.compile(r"-?[0-9]+\Z")  # [0-9]: ASCII digits only, also for str
_FLOAT_RE = re.compile(rb"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1
_FLOAT_BYTES = np.zeros(256, bool)  # the bytes a float token may hold (and the separator)
_FLOAT_BYTES[np.frombuffer(b"0123456789.-+eE\n", np.uint8)] = True
_NON_FINITE = (b"nan", b"inf", b"infinity")
_SEQ_SEP = re.compile(rb"[ \t]+")  # the token separator of sequence files


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


def last_line_terminated(data: bytes) -> bool:
  """Whether the last non-blank line of `data` (raw file bytes) ends with a line break.

  False means the file may have been cut inside its last line (see the module docstring).
  Trailing spaces and tabs of the last line do not count as a line break.
  """
  end = len(data.rstrip())
  return b"\n" in data[end:] or b"\r" in data[end:]


def first_duplicate(values: np.ndarray) -> Optional[tuple[int, int]]:
  """The 0-based indices (first, second) of the earliest repeat of a value, or None.

  "Earliest" is in order of the second occurrence: the first row that repeats an earlier
  one, paired with that value's first row. Vectorised (one stable sort).
  """
  values = np.asarray(values)
  if len(values) < 2:
    return None
  order = np.argsort(values, kind="stable")
  ordered = values[order]
  repeats = order[1:][ordered[1:] == ordered[:-1]]
  if not len(repeats):
    return None
  second = int(repeats.min())
  first = int(np.flatnonzero(values == values[second])[0])
  return first, second


def _valid_token(token: bytes, kind: type) -> bool:
  """Whether `token` is a strict integer in the int64 range (kind=int) or a strict float."""
  if kind is int:
    return _INT_RE.match(token) is not None and _INT64_MIN <= int(token) <= _INT64_MAX
  return _FLOAT_RE.match(token) is not None


def strict_int(text: Union[str, bytes], path: PathLike, line: Optional[int] = None,
               field: Optional[str] = None) -> int:
  """One strict integer (optional '-' then ASCII digits, int64 range), else DataFormatError."""
  if isinstance(text, str) and _INT_STR_RE.match(text) and len(text) < 19:
    return int(text)  # the common case, without encoding
  token = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
  if not _valid_token(token, int):
    raise _token_error(path, token, int, line, field)
  return int(token)


def strict_float(text: Union[str, bytes], path: PathLike, line: Optional[int] = None,
                 field: Optional[str] = None) -> float:
  """One strict, finite float (plain decimal, optional exponent), else DataFormatError."""
  token = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
  if not _valid_token(token, float):
    raise _token_error(path, token, float, line, field)
  value = float(token)
  if not np.isfinite(value):
    raise DataFormatError(path, f"non-finite value {token.decode()!r}", line=line, field=field)
  return value


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
  return _digits_value(digit, ends, lengths)


def _digits_value(digit: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """The int64 values of the digit runs digit[ends - lengths : ends] (1 to 18 digits)."""
  values = np.zeros(len(ends), np.int64)
  for p in range(int(lengths.max())):  # add the digit p places left of each token's end
    if lengths.min() > p:
      values += digit[ends - 1 - p].astype(np.int64) * 10**p
    else:
      has = lengths > p
      values[has] += digit[ends[has] - 1 - p].astype(np.int64) * 10**p
  return values


def _column_ints(body: bytes, delimiter: bytes, k: int) -> dict[int, np.ndarray]:
  """The columns of a k-field table that parse as strict integers, vectorised.

  Returns {j: [N] int64} for every column j whose every token is an optional '-' then 1
  to 18 ASCII digits; other columns are left to the caller's per-token path. Every line
  must have k fields (checked before).
  """
  arr = np.frombuffer(body, np.uint8)
  digit = arr - np.uint8(48)  # wraps around for bytes below b"0"
  is_sep = (arr == delimiter[0]) | (arr == 10)
  sep = np.flatnonzero(is_sep)
  ends = np.append(sep, len(arr))  # one past each token's end
  starts = np.insert(sep + 1, 0, 0)
  other = np.flatnonzero((digit > 9) & ~is_sep)  # the non-digit bytes inside tokens
  token = np.searchsorted(ends, other)  # the token each one belongs to
  minus = (arr[other] == 45) & (other == starts[token])  # a leading '-'
  dirty = set(np.unique(token[~minus] % k).tolist())
  negative = np.zeros(len(ends), bool)
  negative[token[minus]] = True
  ends, negative = ends.reshape(-1, k), negative.reshape(-1, k)
  lengths = ends - starts.reshape(-1, k) - negative  # digits only
  out = {}
  for j in range(k):
    if j in dirty or lengths[:, j].min() < 1 or lengths[:, j].max() > 18:
      continue
    values = _digits_value(digit, ends[:, j], lengths[:, j])
    out[j] = np.where(negative[:, j], -values, values) if negative[:, j].any() else values
  return out


def _strict_bytes(data: bytes, extra: bytes = b"") -> bool:
  """Whether `data` holds only number bytes (digits . - + e E), newlines and `extra`, with
  every '+' right after an 'e' or 'E'.

  Within such bytes Python's int() and float() accept exactly the strict syntax of the
  module docstring: what they would also accept needs '_', spaces, a leading '+', other
  letters (inf, nan) or non-ASCII digits. (int() still rejects '.', 'e' and '-' misplaced.)
  """
  arr = np.frombuffer(data, np.uint8)
  allowed = _FLOAT_BYTES
  if extra:
    allowed = allowed.copy()
    allowed[np.frombuffer(extra, np.uint8)] = True
  if not allowed[arr].all():
    return False
  plus = np.flatnonzero(arr == 43)  # b"+"
  return not len(plus) or (plus[0] > 0 and np.isin(arr[plus - 1], (101, 69)).all())


def _convert(tokens: Sequence[bytes], kind: type, bytes_checked: bool = False) -> np.ndarray:
  """Converts tokens to int64 (kind=int) or float64 (kind=float) under the strict syntax.

  Vectorised checks first (all-digit tokens; `_strict_bytes`); the per-token regular
  expression only runs when they fail. `bytes_checked`: the caller has already checked
  `_strict_bytes` on the tokens' bytes. Raises ValueError or OverflowError on any bad
  token (callers then locate it with `_valid_token`). Float results may be non-finite
  (`1e999`); callers check.
  """
  if not tokens:
    return np.zeros(0, np.int64 if kind is int else np.float64)
  if kind is int:
    values = _fast_ints(b"\n".join(tokens), b"\n")
    if values is not None:
      return values
    if not bytes_checked and not all(_INT_RE.match(t) for t in tokens):
      raise ValueError("not a strict integer")
    return np.fromiter(map(int, tokens), np.int64, count=len(tokens))
  if not bytes_checked and not _strict_bytes(b"\n".join(tokens)):
    raise ValueError("not a strict float")
  return np.fromiter(map(float, tokens), np.float64, count=len(tokens))


def _describe_kind(kind: type) -> str:
  return "an integer" if kind is int else "a number"


def _token_error(path: PathLike, token: bytes, kind: type, line: Optional[int],
                 field: Optional[str]) -> DataFormatError:
  shown = token.decode("utf-8", errors="replace")[:80]
  if kind is int and _INT_RE.match(token):
    return DataFormatError(path, f"integer {shown!r} is out of the int64 range",
                           line=line, field=field)
  if not token.strip():
    return DataFormatError(path, f"empty value (expected {_describe_kind(kind)})",
                           line=line, field=field)
  if kind is float and token.strip().lower().lstrip(b"+-") in _NON_FINITE:
    return DataFormatError(path, f"non-finite value {shown!r} (expected a finite number)",
                           line=line, field=field)
  syntax = ("optional '-' then digits" if kind is int else
            "plain decimal notation, optional exponent, finite")
  return DataFormatError(path, f"expected {_describe_kind(kind)} ({syntax}), found {shown!r}",
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
    found = int(counts[i]) + 1
    if found < k:  # name the first missing field
      field = columns[found][0]
      hint = "truncated line or wrong delimiter?"
      if i == len(counts) - 1:
        hint += " It is the last line: the file looks cut"
    else:
      field, hint = None, "wrong delimiter or stray separator?"
    raise DataFormatError(
        path, f"expected {k} fields separated by {delimiter.decode()!r}, found "
        f"{found} in {shown!r} ({hint})", line=first_line + i, field=field)
  if all(kind is int for _, kind in columns):
    values = _fast_ints(body, delimiter)
    if values is not None:
      values = values.reshape(-1, k)
      return {name: values[:, j] for j, (name, _) in enumerate(columns)}
  ints = _column_ints(body, delimiter, k)  # e.g. columns with negative values
  tokens = checked = None
  out = {}
  for j, (name, kind) in enumerate(columns):
    if kind is int and j in ints:
      out[name] = ints[j]
      continue
    if tokens is None:  # the per-token path, for floats and any other int column
      tokens = body.replace(b"\n", delimiter).split(delimiter)
      checked = _strict_bytes(body, delimiter)  # one vectorised check for all columns
    col = tokens[j::k]
    try:
      values = _convert(col, kind, checked)
    except (ValueError, OverflowError):
      for i, token in enumerate(col):  # slow path: find the first bad token
        if not _valid_token(token, kind):
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

  Tokens are separated by runs of spaces or tabs (only); each is a strict integer.

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
    per_line = [_SEQ_SEP.split(line.strip(b" \t")) if line.strip() else []
                for line in body.split(b"\n")]
    lengths = np.fromiter(map(len, per_line), np.int64, count=len(per_line))
    try:
      if lengths.min() < 2:
        raise ValueError("a blank line or a user without items")
      values = _convert([t for toks in per_line for t in toks], int)
    except (ValueError, OverflowError):
      for i, toks in enumerate(per_line):  # the first problem in file order
        if not toks:
          raise _empty_line_error(path, first_line + i) from None
        for j, token in enumerate(toks):
          if not _valid_token(token, int):  # e.g. "1,5,6": a wrong delimiter
            field = "user" if j == 0 else f"item {j}"
            raise _token_error(path, token, int, first_line + i, field) from None
        if len(toks) == 1:
          raise DataFormatError(path, f"user {toks[0].decode('utf-8', 'replace')!r} has "
                                "no items (a line must be 'user item_1 ... item_n')",
                                line=first_line + i, field="item 1") from None
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
