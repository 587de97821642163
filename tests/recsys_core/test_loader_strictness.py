"""Strict loaders: each silently accepted input of the reliability issue is now an error.

Part 1: one test per case; each asserts the exception type (`DataFormatError`), the 1-based
line and the field, in the attributes and in the message.

Part 2: hypothesis fuzz tests over each loader (u.data, ratings.csv, a sequence file,
movies.dat, an item2attributes JSON, the anime .dat files through `load_anime` on a
temporary folder), with two kinds of input: (a) random bytes, (b) one random edit
(delete, insert or replace a byte, or truncate) of a small valid file, written plain or
gzip-compressed. The outcome must be a valid result (an `Interactions` with consistent
lengths and non-negative ids, or a consistent attribute table) or a `DataFormatError` /
`ValueError` / `FileNotFoundError` whose message names the file; never any other
exception. The line number, when given, must lie inside the file.

Case counts (`max_examples`, the constants N_BYTES... below), chosen so that the whole
file takes about 10 s of CPU time on one core (measured: 8 s user + 1.5 s system for the
69 tests); all fuzz tests use `deadline=None`, `derandomize=True` (the same cases on every
run, so CI is deterministic) and no example database:
  u.data, ratings.csv, sequences, movies.dat, item2attributes JSON: 300 random-bytes
  cases and 600 single-edit cases each; anime (one of its three .dat files replaced per
  case, chosen at random): 200 random-bytes cases and 400 single-edit cases. In all 5,100.
"""
import gzip
import json
import logging
import os
import tempfile

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from recsys_core import data
from recsys_core.data import attributes
from recsys_core.data import DataFormatError


def _write(path, content, compress=False):
  raw = content.encode("latin-1") if isinstance(content, str) else content
  path.write_bytes(gzip.compress(raw, mtime=0) if compress else raw)
  return path


def _error(fn, *args, **kwargs) -> DataFormatError:
  with pytest.raises(DataFormatError) as info:
    fn(*args, **kwargs)
  return info.value


def _assert_where(e: DataFormatError, path, line: int, field: str):
  """The error names the file, the line and the field, as attributes and in its message."""
  assert isinstance(e, DataFormatError) and isinstance(e, ValueError)
  assert (e.line, e.field) == (line, field), str(e)
  assert str(path) in str(e) and f"line {line}," in str(e) and repr(field) in str(e), str(e)


U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
RATINGS = "userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,0.5,964981247\r\n"
SEQ = "1 10 11 12\n2 13 10\n3 12 11 10 14\n"
HIST_HEADER = "User_ID\tAnime_ID\tFeedback\n"
HISTORY = HIST_HEADER + "1\t1\t1\n1\t2\t1\n2\t1\t1\n"
ANIME_RATINGS = HIST_HEADER + "1\t1\t8\n2\t1\t3\n"
INFO = ("anime_ids\tname\tgenre\ttype\tepisodes\trating\tmembers\n"
        "1\tA\tAction\tTV\t12\t8.1\t100\n2\tB\tDrama\tMovie\t1\t7.0\t50\n")
MOVIES = "1::Toy Story (1995)::Animation|Comedy\n2::Jumanji (1995)::Adventure\n" \
         "5::Caf\xe9 (2000)::Comedy|Drama\n"
ITEM2ATTR = '{"1": [50, 7, 8],\n "2": [7, 9],\n "3": []}'


def _anime_folder(tmp_path, history=HISTORY, ratings=ANIME_RATINGS, info=INFO):
  folder = tmp_path / "anime"
  folder.mkdir(exist_ok=True)
  for name, content in (("anime_history.dat", history), ("anime_ratings.dat", ratings),
                        ("anime_info.dat", info)):
    _write(folder / name, content.encode() if isinstance(content, str) else content)
  return folder


# ----------------------------------------------------------------------------------------
# Negative user/item ids and timestamps.


@pytest.mark.parametrize("field,row", [
    ("user_id", "-5\t242\t3\t881250949"), ("item_id", "5\t-242\t3\t881250949"),
    ("timestamp", "5\t242\t3\t-881250949")])
def test_negative_ids_and_timestamps_u_data(tmp_path, field, row):
  path = _write(tmp_path / "u.data", U_DATA + row + "\n")
  e = _error(data.load_movielens_100k, path)
  _assert_where(e, path, 4, field)
  assert "negative" in str(e)


@pytest.mark.parametrize("field,row", [
    ("userId", "-1,5,4.0,964982703"), ("movieId", "1,-5,4.0,964982703"),
    ("timestamp", "1,5,4.0,-964982703")])
def test_negative_ids_and_timestamps_ratings_csv(tmp_path, field, row):
  path = _write(tmp_path / "ratings.csv", RATINGS + row + "\r\n")
  e = _error(data.load_movielens_latest_small, path)
  _assert_where(e, path, 4, field)
  assert "negative" in str(e)


@pytest.mark.parametrize("field,line", [("user", "-4 10 11"), ("item 2", "4 10 -11 12")])
def test_negative_ids_in_sequences(tmp_path, field, line):
  path = _write(tmp_path / "Beauty.txt", SEQ + line + "\n")
  e = _error(data.load_sequences, path)
  _assert_where(e, path, 4, field)
  assert "negative id" in str(e)


def test_negative_ids_anime(tmp_path):
  folder = _anime_folder(tmp_path, history=HISTORY + "3\t-7\t1\n")
  e = _error(data.load_anime, folder)
  _assert_where(e, folder / "anime_history.dat", 5, "Anime_ID")


def test_the_first_bad_line_is_reported(tmp_path):
  # A negative id on line 2 comes before a bad rating on line 3.
  path = _write(tmp_path / "u.data", "1\t2\t3\t4\n1\t-3\t3\t4\n1\t4\t9\t4\n")
  _assert_where(_error(data.load_movielens_100k, path), path, 2, "item_id")


# ----------------------------------------------------------------------------------------
# A last line cut inside its final field.


def test_u_data_last_line_cut_with_too_few_fields(tmp_path):
  path = _write(tmp_path / "u.data", U_DATA + "186\t8812")  # no newline: cut
  e = _error(data.load_movielens_100k, path)
  _assert_where(e, path, 4, "rating")  # the first missing field
  assert "found 2" in str(e) and "cut" in str(e)


def test_u_data_complete_last_line_without_newline_warns(tmp_path, caplog):
  path = _write(tmp_path / "u.data", U_DATA + "186\t242\t3\t8812")  # can't tell: a warning
  with caplog.at_level(logging.WARNING):
    x = data.load_movielens_100k(path)
  assert len(x) == 4
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any(f"{path}, line 4" in m and "no terminating newline" in m for m in warnings)
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    data.load_movielens_100k(_write(tmp_path / "u.data", U_DATA))  # with the newline: quiet
  assert not [r for r in caplog.records if "terminating newline" in r.getMessage()]


def test_ratings_csv_last_line_with_fewer_fields_than_the_header(tmp_path):
  path = _write(tmp_path / "ratings.csv", RATINGS + "1,7,3.")
  e = _error(data.load_movielens_latest_small, path)
  _assert_where(e, path, 4, "timestamp")
  assert "expected 4 fields" in str(e) and "cut" in str(e)


def test_anime_last_line_with_too_few_fields(tmp_path):
  folder = _anime_folder(tmp_path, ratings=ANIME_RATINGS + "2\t")
  e = _error(data.load_anime, folder)
  _assert_where(e, folder / "anime_ratings.dat", 4, "Feedback")


def test_sequence_last_line_shorter_than_all_others_without_newline(tmp_path):
  path = _write(tmp_path / "Beauty.txt", SEQ + "4 10")  # legal, but probably cut
  e = _error(data.load_sequences, path)
  _assert_where(e, path, 4, "item 1")
  assert "cut" in str(e) and "newline" in str(e)


def test_sequence_last_line_rule_boundaries(tmp_path, caplog):
  # With the final newline the same line is complete.
  assert len(data.load_sequences(_write(tmp_path / "s.txt", SEQ + "4 10\n"))) == 10
  # As long as the shortest other line, without a newline: loads, with a warning.
  path = _write(tmp_path / "s.txt", SEQ + "4 10 11")
  with caplog.at_level(logging.WARNING):
    assert len(data.load_sequences(path)) == 11
  assert any(f"{path}, line 4" in r.getMessage() for r in caplog.records)
  # A one-line file has nothing to compare with.
  assert len(data.load_sequences(_write(tmp_path / "s.txt", "4 10"))) == 1


# ----------------------------------------------------------------------------------------
# Strict number syntax.


@pytest.mark.parametrize("token", ["1_000", "+5", "1e0", " 5", "5 ", "0x5", "\u0665", "5.0"])
def test_strict_integers_u_data(tmp_path, token):
  path = _write(tmp_path / "u.data", (U_DATA + f"5\t{token}\t3\t881250949\n").encode())
  e = _error(data.load_movielens_100k, path)
  _assert_where(e, path, 4, "item_id")
  assert "expected an integer" in str(e)


@pytest.mark.parametrize("token", ["1_000", "+5", "1e0", " 5"])
def test_strict_integers_ratings_csv(tmp_path, token):
  path = _write(tmp_path / "ratings.csv", RATINGS + f"1,5,4.0,{token}\r\n")
  e = _error(data.load_movielens_latest_small, path)
  _assert_where(e, path, 4, "timestamp")


@pytest.mark.parametrize("token", ["1_000", "+5", "1e0", "5\x0b"])
def test_strict_integers_sequences(tmp_path, token):
  # (" 5" is not a case here: runs of spaces separate the tokens of a sequence file.)
  path = _write(tmp_path / "Beauty.txt", SEQ + f"4 10 {token} 12\n")
  e = _error(data.load_sequences, path)
  _assert_where(e, path, 4, "item 2")


@pytest.mark.parametrize("token", ["1_0", "inf", "nan", "-inf", "Infinity", "+4.0", " 4.0",
                                   "4.0.0", "1e999"])
def test_strict_floats_ratings_csv(tmp_path, token):
  path = _write(tmp_path / "ratings.csv", RATINGS + f"1,5,{token},1\r\n")
  e = _error(data.load_movielens_latest_small, path)
  _assert_where(e, path, 4, "rating")


@pytest.mark.parametrize("token,value", [("5e-1", 0.5), (".5", 0.5), ("4.", 4.0), ("4", 4.0),
                                         ("40E-1", 4.0), ("3.50", 3.5)])
def test_plain_decimal_floats_are_accepted(tmp_path, token, value):
  path = _write(tmp_path / "ratings.csv", RATINGS + f"1,5,{token},1\r\n")
  assert data.load_movielens_latest_small(path).ratings[-1] == value


def test_strict_numbers_anime_info(tmp_path):
  folder = _anime_folder(tmp_path, info=INFO + "3\tC\tAction\tTV\t+12\t7.0\t5\n")
  _assert_where(_error(data.load_anime, folder), folder / "anime_info.dat", 4, "episodes")
  folder = _anime_folder(tmp_path, info=INFO + "3\tC\tAction\tTV\t12\tnan\t5\n")
  _assert_where(_error(data.load_anime, folder), folder / "anime_info.dat", 4, "rating")


# ----------------------------------------------------------------------------------------
# item2attributes JSON.


@pytest.mark.parametrize("literal,position", [("true", 1), ("false", 2)])
def test_json_bool_attribute_ids(tmp_path, literal, position):
  values = f"[{literal}, 4]" if position == 1 else f"[4, {literal}]"
  path = _write(tmp_path / "Beauty_item2attributes.json",
                f'{{"1": [50, 7],\n "2": [7],\n "3": {values}}}')
  e = _error(data.load_item_attributes, path, np.array([1, 2, 3]))
  _assert_where(e, path, 3, f"item 3, attribute {position}")
  assert literal in str(e)


@pytest.mark.parametrize("key", ['"2"', '"02"'])
def test_json_duplicate_keys(tmp_path, key):
  path = _write(tmp_path / "Beauty_item2attributes.json",
                f'{{"1": [50, 7],\n "2": [7],\n "3": [8],\n {key}: [9]}}', compress=True)
  e = _error(data.load_item_attributes, path, np.array([1, 2, 3]))
  _assert_where(e, path, 4, f"item {json.loads(key)}")
  assert "duplicate key" in str(e) and json.loads(key) in str(e) and "line 2" in str(e)


def test_json_other_bad_values(tmp_path):
  for values, field in (("[7, 1.0]", "item 1, attribute 2"), ("[-3]", "item 1, attribute 1"),
                        ('["7"]', "item 1, attribute 1"), ("7", "item 1")):
    path = _write(tmp_path / "a.json", f'{{"2": [5],\n"1": {values}}}')
    _assert_where(_error(data.load_item_attributes, path, np.array([1])), path, 2, field)
  path = _write(tmp_path / "a.json", '{"2": [5],\n"x1": [3]}')
  _assert_where(_error(data.load_item_attributes, path, np.array([1])), path, 2, "item x1")


def test_json_good_file_still_loads(tmp_path):
  path = _write(tmp_path / "a.json", ("\ufeff" + ITEM2ATTR.replace('"3"', '"03"')).encode(),
                True)
  assert attributes.read_item2attributes(path) == {"1": [50, 7, 8], "2": [7, 9], "3": []}
  brand, vocab = data.load_item_attributes(path, np.array([1, 2, 3]))
  assert vocab == ["<unknown>", 50] and brand.tolist() == [1, 0, 0]


# ----------------------------------------------------------------------------------------
# Ids listed twice in the attribute / info files.


def test_movies_dat_duplicate_movie_ids(tmp_path):
  path = tmp_path / "movies.dat"
  path.write_bytes((MOVIES + "2::Jumanji again (1995)::Comedy\n").encode("latin-1"))
  e = _error(data.load_ml1m_genres, path, np.array([1, 2]), item_map_path=None)
  _assert_where(e, path, 4, "MovieID")
  assert "lines 2 and 4" in str(e)


def test_movies_dat_strict_movie_ids(tmp_path):
  path = tmp_path / "movies.dat"
  path.write_bytes((MOVIES + " 7::Seven (1995)::Crime\n").encode("latin-1"))
  e = _error(data.load_ml1m_genres, path, np.array([1, 2]), item_map_path=None)
  _assert_where(e, path, 4, "MovieID")


def test_other_id_maps_reject_duplicates(tmp_path):
  path = _write(tmp_path / "sasrec_item_to_movieid.txt", "1 5\n2 1\n1 2\n")
  (tmp_path / "movies.dat").write_bytes(MOVIES.encode("latin-1"))
  e = _error(data.load_ml1m_genres, tmp_path / "movies.dat", np.array([1, 2]))
  _assert_where(e, path, 3, "sasrec_id")
  folder = _anime_folder(tmp_path)
  mal = _write(folder / "item_id_to_mal_anime_id.csv", "item_id,mal_anime_id\n1,5\n1,6\n")
  _assert_where(_error(data.load_anime, folder), mal, 3, "item_id")


# ----------------------------------------------------------------------------------------
# Fuzz tests.

FUZZ = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
N_BYTES, N_EDITS = 300, 600  # per loader
N_BYTES_ANIME, N_EDITS_ANIME = 200, 400

_INTERESTING = b"\t\n\r ,.-+_e:0159\"[]{}tf"
_byte = st.one_of(st.sampled_from(list(_INTERESTING)), st.integers(0, 255))


@st.composite
def _edited(draw, valid: bytes):
  """`valid` with one random edit: delete / insert / replace one byte, or truncate."""
  kind = draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
  i = draw(st.integers(0, len(valid)))
  if kind == "delete":
    return valid[:i] + valid[i + 1:]
  if kind == "insert":
    return valid[:i] + bytes([draw(_byte)]) + valid[i:]
  if kind == "replace":
    return valid[:i] + bytes([draw(_byte)]) + valid[i + 1:]
  return valid[:i]


_junk = st.one_of(st.binary(max_size=120),
                  st.lists(st.sampled_from(list(_INTERESTING)), max_size=60).map(bytes))


def _max_line(content: bytes) -> int:
  if content[:2] == b"\x1f\x8b":
    try:
      content = gzip.decompress(content)
    except Exception:  # pylint: disable=broad-except
      return 1
  return content.count(b"\n") + content.count(b"\r") + 1


def _check_interactions(x):
  n = len(x)
  assert isinstance(x, data.Interactions) and n >= 1
  assert len(x.items) == n and (x.ratings is None or len(x.ratings) == n)
  assert x.order is None or len(x.order) == n
  assert 0 <= x.users.min() and x.users.max() < x.num_users
  assert 0 <= x.items.min() and x.items.max() < x.num_items
  assert x.user_ids.min() >= 0 and x.item_ids.min() >= 0
  assert x.order is None or x.order.min() >= 0


def _check_attributes(result, n_items):
  attr, vocab = result
  assert attr.shape == (n_items,) and attr.min() >= 0 and attr.max() < len(vocab)
  assert vocab[0] == attributes.UNKNOWN


def _run(loader, content: bytes, name: str, compress: bool):
  """Writes `content` (maybe gzipped) as `name` in a fresh folder and runs the loader."""
  raw = gzip.compress(content, mtime=0) if compress else content
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, name)
    with open(path, "wb") as f:
      f.write(raw)
    try:
      loader(tmp, path)
    except (DataFormatError, ValueError, FileNotFoundError) as e:
      assert path in str(e), (type(e), str(e))
      if isinstance(e, DataFormatError):
        assert e.path == path and (e.line is None or 1 <= e.line <= _max_line(raw)), str(e)


def _u_data(folder, path):
  _check_interactions(data.load_movielens_100k(path))


def _ratings_csv(folder, path):
  _check_interactions(data.load_movielens_latest_small(path))


def _sequences(folder, path):
  _check_interactions(data.load_sequences(path))


def _movies_dat(folder, path):
  _check_attributes(data.load_ml1m_genres(path, np.array([1, 2, 5, 7]), item_map_path=None), 4)


def _item2attributes(folder, path):
  for field in ("brand", "category"):
    _check_attributes(data.load_item_attributes(path, np.array([1, 2, 3, 4]), field), 4)


_SIMPLE = {  # name: (loader, file name, valid content)
    "u.data": (_u_data, "u.data", U_DATA.encode()),
    "ratings.csv": (_ratings_csv, "ratings.csv", RATINGS.encode()),
    "sequences": (_sequences, "Beauty.txt", SEQ.encode()),
    "movies.dat": (_movies_dat, "movies.dat", MOVIES.encode("latin-1")),
    "item2attributes": (_item2attributes, "Beauty_item2attributes.json", ITEM2ATTR.encode()),
}


@pytest.mark.parametrize("fmt", sorted(_SIMPLE))
def test_fuzz_random_bytes(fmt):
  loader, name, _ = _SIMPLE[fmt]

  @settings(max_examples=N_BYTES, **FUZZ)
  @given(content=_junk, compress=st.booleans())
  def check(content, compress):
    _run(loader, content, name, compress)

  check()


@pytest.mark.parametrize("fmt", sorted(_SIMPLE))
def test_fuzz_single_edits(fmt):
  loader, name, valid = _SIMPLE[fmt]

  @settings(max_examples=N_EDITS, **FUZZ)
  @given(content=_edited(valid), compress=st.booleans())
  def check(content, compress):
    _run(loader, content, name, compress)

  check()


_ANIME_FILES = {"anime_history.dat": HISTORY, "anime_ratings.dat": ANIME_RATINGS,
                "anime_info.dat": INFO}


def _anime_loader(target):
  def load(folder, path):
    for name, content in _ANIME_FILES.items():  # the other two files, valid
      if name != target:
        with open(os.path.join(folder, name), "wb") as f:
          f.write(content.encode())
    a = data.load_anime(folder)
    _check_interactions(a.interactions)
    assert len(a.info.name) == a.interactions.num_items
  return load


@settings(max_examples=N_BYTES_ANIME, **FUZZ)
@given(target=st.sampled_from(sorted(_ANIME_FILES)), content=_junk, compress=st.booleans())
def test_fuzz_random_bytes_anime(target, content, compress):
  _run(_anime_loader(target), content, target, compress)


@settings(max_examples=N_EDITS_ANIME, **FUZZ)
@given(data_=st.data(), target=st.sampled_from(sorted(_ANIME_FILES)), compress=st.booleans())
def test_fuzz_single_edits_anime(data_, target, compress):
  content = data_.draw(_edited(_ANIME_FILES[target].encode()))
  _run(_anime_loader(target), content, target, compress)
