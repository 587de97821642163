"""Malformed input gives a clear DataFormatError (file, line, field) or a logged repair.

Plus property-based tests (hypothesis): random interaction tables written in every format,
plain and gzip, parse back to exactly what was written; arbitrary junk gives
DataFormatError and never another exception.
"""
import gzip
import logging
import os
import pathlib
import tempfile

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from recsys_core import data
from recsys_core.data import DataFormatError
from recsys_core.data import loaders

HIST_HEADER = "User_ID\tAnime_ID\tFeedback\n"
INFO = ("anime_ids\tname\tgenre\ttype\tepisodes\trating\tmembers\n"
        "1\tA\tAction\tTV\t12\t8.1\t100\n2\tB\tDrama\tMovie\t1\t7.0\t50\n")


def _write(path, content, compress=False):
  raw = content.encode("utf-8") if isinstance(content, str) else content
  path.write_bytes(gzip.compress(raw) if compress else raw)
  return path


def _anime(tmp_path, history=None, ratings=None, info=INFO):
  d = tmp_path / "anime"
  d.mkdir(exist_ok=True)
  _write(d / "anime_history.dat", history if history is not None else
         HIST_HEADER + "1\t1\t1\n1\t2\t1\n2\t1\t1\n")
  _write(d / "anime_ratings.dat", ratings if ratings is not None else
         HIST_HEADER + "1\t1\t8\n2\t1\t3\n")
  _write(d / "anime_info.dat", info)
  return d


def _error(fn, *args, **kwargs) -> DataFormatError:
  with pytest.raises(DataFormatError) as info:
    fn(*args, **kwargs)
  assert isinstance(info.value, ValueError)
  return info.value


# ----------------------------------------------------------------------------------------
# One case per kind of damage; each names the file, the 1-based line and the field.

U_ROWS = "1\t10\t3\t100\n2\t20\t4\t200\n"


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_line(tmp_path, compress):
  path = _write(tmp_path / "u.data", U_ROWS + "3\t30\t5\n", compress)
  e = _error(data.load_movielens_100k, path)
  assert e.line == 3 and str(path) in str(e) and "line 3" in str(e)
  assert "expected 4 fields" in str(e) and "found 3" in str(e)


def test_non_numeric_field(tmp_path):
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data", U_ROWS + "3\tabc\t5\t9\n"))
  assert (e.line, e.field) == (3, "item_id") and "'abc'" in str(e)
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data", "1\t2\t3.5\t9\n"))
  assert (e.line, e.field) == (1, "rating") and "expected an integer" in str(e)
  path = _write(tmp_path / "r.csv", "userId,movieId,rating,timestamp\n1,2,four,3\n")
  e = _error(data.load_movielens_latest_small, path)
  assert (e.line, e.field) == (2, "rating")
  e = _error(data.load_movielens_latest_small, _write(tmp_path / "r.csv",
                                                       "userId,movieId,rating,timestamp\n"
                                                       "1,2,4.0,3\n1,3,nan,4\n"))
  assert (e.line, e.field) == (3, "rating") and "non-finite" in str(e)
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data", "1\t2\t3\t\n"))
  assert (e.line, e.field) == (1, "timestamp") and "empty value" in str(e)
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data", "1\t2\t3\t" + "9" * 25))
  assert e.field == "timestamp" and "int64 range" in str(e)


@pytest.mark.parametrize("content,line", [
    ("1\t10\t6\t1\n", 1), ("1\t10\t3\t1\n1\t11\t0\t1\n", 2), ("1\t10\t-1\t1\n", 1)])
def test_out_of_range_ratings_ml100k(tmp_path, content, line):
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data", content))
  assert (e.line, e.field) == (line, "rating") and "out of range" in str(e)


@pytest.mark.parametrize("rating", ["0.0", "5.5", "2.3", "0.25"])
def test_out_of_range_ratings_half_stars(tmp_path, rating):
  path = _write(tmp_path / "r.csv", f"userId,movieId,rating,timestamp\n1,1,4.5,1\n1,2,{rating},1\n")
  e = _error(data.load_movielens_latest_small, path)
  assert (e.line, e.field) == (3, "rating")


def test_out_of_range_ratings_anime(tmp_path):
  d = _anime(tmp_path, ratings=HIST_HEADER + "1\t1\t8\n2\t1\t11\n")
  e = _error(data.load_anime, d)
  assert (e.line, e.field) == (3, "Feedback") and "anime_ratings.dat" in str(e)
  d = _anime(tmp_path, history=HIST_HEADER + "1\t1\t1\n1\t2\t0\n")
  e = _error(data.load_anime, d)
  assert (e.line, e.field) == (3, "Feedback") and "anime_history.dat" in str(e)


def test_duplicates_keep_last_and_warn(tmp_path, caplog):
  path = _write(tmp_path / "u.data", "1\t10\t3\t100\n2\t20\t4\t200\n1\t10\t5\t300\n"
                "2\t20\t1\t50\n1\t11\t2\t1\n")
  with caplog.at_level(logging.WARNING):
    x = data.load_movielens_100k(path)
  # kept rows 3, 4, 5 of the file; items 10, 11, 20 -> 0, 1, 2
  assert x.users.tolist() == [0, 1, 0] and x.items.tolist() == [0, 2, 1]
  assert x.ratings.tolist() == [5, 1, 2] and x.order.tolist() == [300, 50, 1]
  messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert any("2 duplicate (user, item) rows" in m and "last" in m for m in messages), messages


def test_duplicates_in_sequences_and_anime(tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    x = data.load_sequences(_write(tmp_path / "s.txt", "1 5 6 5 7\n"))
  assert x.item_ids[x.items].tolist() == [6, 5, 7] and x.order.tolist() == [1, 2, 3]
  d = _anime(tmp_path, ratings=HIST_HEADER + "1\t1\t8\n2\t1\t3\n1\t1\t9\n")
  with caplog.at_level(logging.WARNING):
    a = data.load_anime(d)
  np.testing.assert_array_equal(a.interactions.ratings, [9, np.nan, 3])
  assert sum("duplicate" in r.getMessage() for r in caplog.records) == 2


def test_empty_users_and_lines(tmp_path):
  e = _error(data.load_sequences, _write(tmp_path / "s.txt", "1 5 6\n2\n3 7\n"))
  assert e.line == 2 and "user '2' has no items" in str(e)
  e = _error(data.load_sequences, _write(tmp_path / "s.txt", "1 5 6\n\n3 7\n"))
  assert e.line == 2 and "empty line" in str(e)
  e = _error(data.load_sequences, _write(tmp_path / "s.txt", "1 5 6\n   \n3 7\n"))
  assert e.line == 2 and "empty line" in str(e)
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data", U_ROWS + "\n" + U_ROWS))
  assert e.line == 3 and "empty line" in str(e)
  e = _error(data.load_sequences, _write(tmp_path / "s.txt", "1 5 6\n2 7\n1 8\n"))
  assert (e.line, e.field) == (3, "user") and "lines 1 and 3" in str(e)
  # Trailing empty lines are fine.
  assert len(data.load_sequences(_write(tmp_path / "s.txt", "1 5 6\n2 7\n\n\n"))) == 3


def test_wrong_delimiters(tmp_path):
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data", "1,10,3,100\n"))
  assert e.line == 1 and "wrong delimiter" in str(e) and "'\\t'" in str(e)
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data", "1 10 3 100\n"))
  assert e.line == 1 and "found 1" in str(e)
  path = _write(tmp_path / "r.csv", "userId\tmovieId\trating\ttimestamp\n1\t1\t4.0\t1\n")
  e = _error(data.load_movielens_latest_small, path)
  assert e.line == 1 and "header" in str(e)
  e = _error(data.load_sequences, _write(tmp_path / "s.txt", "1,5,6\n"))
  assert (e.line, e.field) == (1, "user") and "'1,5,6'" in str(e)
  e = _error(data.load_sequences, _write(tmp_path / "s.txt", "1 5 6\n2 7;8\n"))
  assert (e.line, e.field) == (2, "item 1")


def test_missing_or_wrong_header(tmp_path):
  e = _error(data.load_movielens_latest_small, _write(tmp_path / "r.csv", "1,1,4.0,1\n"))
  assert e.line == 1 and "expected the header 'userId,movieId,rating,timestamp'" in str(e)
  e = _error(data.load_anime, _anime(tmp_path, history="1\t1\t1\n"))
  assert e.line == 1 and "anime_history.dat" in str(e)


@pytest.mark.parametrize("content", [b"", b"\n\n\n", b"   \n",
                                     gzip.compress(b"", mtime=0),
                                     gzip.compress(b"\n", mtime=0)],
                         ids=["0 bytes", "newlines", "blank", "gzip 0 bytes", "gzip newline"])
def test_empty_files(tmp_path, content):
  for loader, name in ((data.load_movielens_100k, "u.data"), (data.load_sequences, "s.txt"),
                       (data.load_movielens_latest_small, "r.csv")):
    e = _error(loader, _write(tmp_path / name, content))
    assert "empty" in str(e) and name in str(e)


def test_header_only_files(tmp_path):
  e = _error(data.load_movielens_latest_small,
             _write(tmp_path / "r.csv", "userId,movieId,rating,timestamp\r\n"))
  assert "no data rows" in str(e)
  e = _error(data.load_anime, _anime(tmp_path, ratings=HIST_HEADER))
  assert "no data rows" in str(e) and "anime_ratings.dat" in str(e)


def test_corrupt_gzip(tmp_path):
  raw = gzip.compress(U_ROWS.encode() * 50)
  e = _error(data.load_movielens_100k, _write(tmp_path / "u.data.gz", raw[:len(raw) // 2]))
  assert "gzip" in str(e) and "u.data.gz" in str(e)


def test_anime_info_errors(tmp_path):
  bad = INFO + "3\tC\tAction\tTV\tmany\t7.0\t5\n"
  e = _error(data.load_anime, _anime(tmp_path, info=bad))
  assert (e.line, e.field) == (4, "episodes") and "anime_info.dat" in str(e)
  e = _error(data.load_anime, _anime(tmp_path, info=INFO + "3\tC\tAction\n"))
  assert e.line == 4 and "7 tab-separated fields" in str(e)
  e = _error(data.load_anime, _anime(tmp_path, info=INFO.encode() + b"4\t\xff\t\tTV\t1\t1\t1\n"))
  assert e.line == 4 and "utf-8" in str(e)


def test_attribute_file_errors(tmp_path):
  e = _error(data.load_item_attributes, _write(tmp_path / "a.json", '{"1": [1, 2'),
             np.array([1]))
  assert "invalid JSON" in str(e) and e.line == 1
  e = _error(data.load_item_attributes, _write(tmp_path / "a.json", '{"1": ["x"]}'),
             np.array([1]))
  assert "a.json" in str(e)
  e = _error(data.load_ml1m_genres, _write(tmp_path / "movies.dat", "1::Toy Story\n"),
             np.array([1]), item_map_path=None)
  assert e.line == 1 and "MovieID::Title::Genres" in str(e)


def test_missing_file_names_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.data")):
    data.load_movielens_100k(tmp_path / "nope.data")


def test_bom_and_crlf_are_accepted(tmp_path):
  path = _write(tmp_path / "r.csv", "\ufeffuserId,movieId,rating,timestamp\r\n1,1,4.0,1\r\n")
  assert data.load_movielens_latest_small(path).ratings.tolist() == [4.0]


def test_parsers_never_write(tmp_path):
  path = _write(tmp_path / "u.data", U_ROWS + "1\t10\t5\t1\n")  # has a duplicate
  d = _anime(tmp_path)
  before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.rglob("*")
            if p.is_file()}
  data.load_movielens_100k(path)
  data.load_anime(d)
  after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file()}
  assert before == after


# ----------------------------------------------------------------------------------------
# Property-based tests.

_ids = st.integers(min_value=0, max_value=10**9)


@st.composite
def _tables(draw):
  """A random interaction table: unique (user, item) pairs, ratings, timestamps."""
  pairs = draw(st.lists(st.tuples(_ids, _ids), min_size=1, max_size=40,
                        unique=True))
  n = len(pairs)
  stars = draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))
  halves = draw(st.lists(st.integers(1, 10), min_size=n, max_size=n))
  times = draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n))
  return pairs, stars, [h / 2 for h in halves], times


def _expected(pairs):
  users = np.array([p[0] for p in pairs])
  items = np.array([p[1] for p in pairs])
  user_ids, u = np.unique(users, return_inverse=True)
  item_ids, i = np.unique(items, return_inverse=True)
  return user_ids, item_ids, u, i


def _check(x, pairs):
  user_ids, item_ids, u, i = _expected(pairs)
  np.testing.assert_array_equal(x.user_ids, user_ids)
  np.testing.assert_array_equal(x.item_ids, item_ids)
  np.testing.assert_array_equal(x.users, u)
  np.testing.assert_array_equal(x.items, i)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=_tables(), compress=st.booleans(), crlf=st.booleans())
def test_round_trip_rating_formats(table, compress, crlf):
  pairs, stars, halves, times = table
  eol = "\r\n" if crlf else "\n"
  with tempfile.TemporaryDirectory() as tmp:
    u_data = "".join(f"{u}\t{i}\t{r}\t{t}{eol}" for (u, i), r, t in zip(pairs, stars, times))
    path = os.path.join(tmp, "u.data.gz" if compress else "u.data")
    with open(path, "wb") as f:
      f.write(gzip.compress(u_data.encode()) if compress else u_data.encode())
    x = data.load_movielens_100k(path)
    _check(x, pairs)
    assert x.ratings.tolist() == stars and x.order.tolist() == times

    csv = "userId,movieId,rating,timestamp" + eol + "".join(
        f"{u},{i},{r},{t}{eol}" for (u, i), r, t in zip(pairs, halves, times))
    path = os.path.join(tmp, "ratings.csv")
    with open(path, "wb") as f:
      f.write(gzip.compress(csv.encode()) if compress else csv.encode())
    x = data.load_movielens_latest_small(path)
    _check(x, pairs)
    assert x.ratings.tolist() == halves and x.order.tolist() == times


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seqs=st.dictionaries(_ids, st.lists(_ids, min_size=1, max_size=15, unique=True),
                            min_size=1, max_size=15),
       compress=st.booleans())
def test_round_trip_sequences(seqs, compress):
  text = "".join(f"{u} " + " ".join(map(str, items)) + "\n" for u, items in seqs.items())
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "seq.txt")
    with open(path, "wb") as f:
      f.write(gzip.compress(text.encode()) if compress else text.encode())
    x = data.load_sequences(path)
  pairs = [(u, i) for u, items in seqs.items() for i in items]
  _check(x, pairs)
  assert x.order.tolist() == [k for items in seqs.values() for k in range(len(items))]
  got = {int(x.user_ids[u]): x.item_ids[s].tolist() for u, s in enumerate(x.sequences())}
  assert got == seqs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(table=_tables(), rated=st.lists(st.booleans(), min_size=40, max_size=40),
       compress=st.booleans())
def test_round_trip_anime(table, rated, compress):
  pairs, _, halves, _ = table
  ratings = [int(h * 2) for h in halves]  # 1..10
  hist = HIST_HEADER + "".join(f"{u}\t{i}\t1\n" for u, i in pairs)
  rat = HIST_HEADER + "".join(f"{u}\t{i}\t{r}\n" for (u, i), r, keep in
                              zip(pairs, ratings, rated) if keep)
  if not any(rated[:len(pairs)]):
    return  # a ratings file needs at least one row
  with tempfile.TemporaryDirectory() as tmp:
    sfx = ".gz" if compress else ""
    for name, content in (("anime_history.dat", hist), ("anime_ratings.dat", rat),
                          ("anime_info.dat", INFO)):
      with open(os.path.join(tmp, name + sfx), "wb") as f:
        f.write(gzip.compress(content.encode()) if compress else content.encode())
    a = data.load_anime(tmp)
  _check(a.interactions, pairs)
  expected = [float(r) if keep else np.nan for r, keep in zip(ratings, rated)]
  np.testing.assert_array_equal(a.interactions.ratings, expected)


_JUNK = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["", " ", "\t", "1", "1\t2", "1\t2\t3\t4\t5", "a\tb\tc\td", "1,2,3,4",
                     "-1\t2\t3\t4", "1\t2\t99\t4", "nan", "1 2", "\x00", "\ufeff"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=_JUNK, where=st.integers(0, 3), fmt=st.sampled_from(
    ["ml-100k", "ml-latest-small", "sequences", "anime-history", "anime-info"]),
       compress=st.booleans())
def test_junk_lines_give_data_format_error(junk, where, fmt, compress):
  """A junk line anywhere in a valid file: DataFormatError (or a valid parse), nothing else."""
  valid = {
      "ml-100k": ["1\t10\t3\t100", "2\t20\t4\t200", "3\t30\t5\t300"],
      "ml-latest-small": ["userId,movieId,rating,timestamp", "1,1,4.0,1", "1,2,0.5,2",
                          "2,1,3.5,3"],
      "sequences": ["1 10 11", "2 12 10 13", "3 14 15"],
      "anime-history": HIST_HEADER.strip("\n").split("\n") + ["1\t1\t1", "1\t2\t1", "2\t1\t1"],
      "anime-info": INFO.strip("\n").split("\n"),
  }[fmt]
  lines = list(valid)
  lines.insert(min(where, len(lines)), junk)
  content = "\n".join(lines).encode("utf-8", errors="surrogatepass")
  with tempfile.TemporaryDirectory() as tmp:
    if fmt.startswith("anime"):
      _anime(pathlib.Path(tmp), history=None if fmt == "anime-info" else content,
             info=content if fmt == "anime-info" else INFO)
      fn, arg = data.load_anime, os.path.join(tmp, "anime")
    else:
      arg = os.path.join(tmp, "file")
      with open(arg, "wb") as f:
        f.write(gzip.compress(content) if compress else content)
      fn = {"ml-100k": data.load_movielens_100k,
            "ml-latest-small": data.load_movielens_latest_small,
            "sequences": data.load_sequences}[fmt]
    try:
      x = fn(arg)
    except DataFormatError as e:
      assert e.path and os.path.basename(e.path) in str(e)
      return
    x = x.interactions if isinstance(x, data.AnimeData) else x
    assert len(x) >= 1 and x.users.max() < x.num_users and x.items.max() < x.num_items


@settings(max_examples=100, deadline=None)
@given(content=st.binary(max_size=200), compress=st.booleans(),
       loader=st.sampled_from([data.load_movielens_100k, data.load_movielens_latest_small,
                               data.load_sequences]))
def test_arbitrary_bytes_never_raise_anything_else(content, compress, loader):
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "f")
    with open(path, "wb") as f:
      f.write(gzip.compress(content) if compress else content)
    try:
      loader(path)
    except DataFormatError:
      pass


def test_load_dataset_missing_interaction_file_is_named(tmp_path):
  (tmp_path / "amazon_beauty_seq").mkdir()
  with pytest.raises(FileNotFoundError, match="Beauty.txt"):
    data.load_dataset("beauty", tmp_path)
  assert "beauty" in loaders.DATASETS
