"""recsys_core.data.tables: users' own CSV/TSV/Parquet files and the original anime layout."""
import builtins
import gzip
import logging

import numpy as np
import pytest

from recsys_core.data import tables
from recsys_core.data.parsing import DataFormatError


def _write(path, text, compress=False):
  raw = text.encode("utf-8")
  path.write_bytes(gzip.compress(raw) if compress else raw)
  return path


CSV = "user_id,item_id,rating\n10,7,4.5\n3,7,\n10,2,1\n"


def _check_csv(x):
  # users: 3 -> 0, 10 -> 1; items: 2 -> 0, 7 -> 1; rows in file order
  assert x.user_ids.tolist() == [3, 10] and x.user_ids.dtype == np.int64
  assert x.item_ids.tolist() == [2, 7] and x.item_ids.dtype == np.int64
  assert x.users.tolist() == [1, 0, 1]
  assert x.items.tolist() == [1, 1, 0]
  assert x.ratings.dtype == np.float32
  assert x.ratings[0] == 4.5 and np.isnan(x.ratings[1]) and x.ratings[2] == 1.0
  assert x.order is None


@pytest.mark.parametrize("name,compress", [("r.csv", False), ("r.csv.gz", True),
                                           ("r.csv", True)])
def test_csv_plain_and_gzip(tmp_path, name, compress):
  path = _write(tmp_path / name, CSV, compress)
  x = tables.load_interaction_table(path, rating_col="rating")
  _check_csv(x)
  assert x.source == str(path)


def test_tsv_by_suffix_and_explicit_format(tmp_path):
  text = CSV.replace(",", "\t")
  for name in ("r.tsv", "r.tab", "r.txt.gz"):
    _check_csv(tables.load_interaction_table(_write(tmp_path / name, text, True),
                                             rating_col="rating"))
  path = _write(tmp_path / "ratings.dat", text)
  with pytest.raises(ValueError, match="format"):
    tables.load_interaction_table(path)
  _check_csv(tables.load_interaction_table(path, format="tsv", rating_col="rating"))


def test_empty_rating_cell_is_nan_and_ratings_none_without_column(tmp_path):
  path = _write(tmp_path / "r.csv", "user_id,item_id,rating\n1,1,\n1,2, \n2,1,3\n")
  x = tables.load_interaction_table(path, rating_col="rating")
  assert np.isnan(x.ratings[:2]).all() and x.ratings[2] == 3.0
  assert tables.load_interaction_table(path).ratings is None


def test_quoted_fields_string_ids_and_extra_columns(tmp_path):
  text = ('title,user,extra,item\n'
          '"Hello, world",alice,"say ""hi""","Steins;Gate, 0"\n'
          '"two\nlines",bob,x,"Steins;Gate, 0"\n'
          'plain,alice,y,42\n')
  x = tables.load_interaction_table(_write(tmp_path / "q.csv", text),
                                    user_col="user", item_col="item")
  assert x.user_ids.dtype.kind == "U" and x.item_ids.dtype.kind == "U"
  assert x.user_ids.tolist() == ["alice", "bob"]
  assert x.item_ids.tolist() == ["42", "Steins;Gate, 0"]
  assert x.users.tolist() == [0, 1, 0] and x.items.tolist() == [1, 1, 0]


def test_custom_columns_and_delimiter(tmp_path):
  text = "ts;rating;uid;iid\n100;5;u1;-3\n50;2;u2;8\n"
  x = tables.load_interaction_table(_write(tmp_path / "x.csv", text), delimiter=";",
                                    user_col="uid", item_col="iid", rating_col="rating",
                                    time_col="ts")
  assert x.user_ids.tolist() == ["u1", "u2"]
  assert x.item_ids.tolist() == [-3, 8] and x.item_ids.dtype == np.int64
  assert x.order.tolist() == [100, 50] and x.ratings.tolist() == [5.0, 2.0]


def test_ids_that_are_not_plain_integers_stay_strings(tmp_path):
  text = "user_id,item_id\n+1,1e3\n2,1_0\n"
  x = tables.load_interaction_table(_write(tmp_path / "s.csv", text))
  assert x.user_ids.tolist() == ["+1", "2"]
  assert x.item_ids.tolist() == ["1_0", "1e3"]


def test_ids_with_leading_zeros_that_would_merge_stay_strings(tmp_path, caplog):
  text = "user_id,item_id\n1,007\n1,7\n2,08\n"
  with caplog.at_level(logging.WARNING):
    x = tables.load_interaction_table(_write(tmp_path / "z.csv", text))
  assert x.item_ids.tolist() == ["007", "08", "7"] and len(x) == 3
  assert any("leading zeros" in r.getMessage() for r in caplog.records)
  y = tables.load_interaction_table(_write(tmp_path / "z2.csv", "user_id,item_id\n1,007\n"))
  assert y.item_ids.tolist() == [7] and y.item_ids.dtype == np.int64


def test_unix_times_and_iso_dates(tmp_path):
  text = "user_id,item_id,t\n1,1,881250949\n1,2,0\n2,1,5\n"
  x = tables.load_interaction_table(_write(tmp_path / "u.csv", text), time_col="t")
  assert x.order.tolist() == [881250949, 0, 5] and x.order.dtype == np.int64
  text = ("user_id,item_id,t\n"
          "1,1,1970-01-02\n"
          "1,2,1970-01-01T00:01:00\n"
          "2,1,2021-03-04T05:06:07Z\n"
          "2,2,2021-03-04 06:06:07.9+01:00\n"
          "3,1,1969-12-31T23:59:59.5\n")
  x = tables.load_interaction_table(_write(tmp_path / "d.csv", text), time_col="t")
  assert x.order.tolist() == [86400, 60, 1614834367, 1614834367, -1]


def test_time_errors(tmp_path):
  cases = [("1,1,5\n1,2,-5\n", "negative"), ("1,1,5\n1,2,2020-01-01\n", "mix"),
           ("1,1,5\n1,2,yesterday\n", "ISO 8601"), ("1,1,5\n1,2,\n", "empty time"),
           ("1,1,5\n1,2,5.5\n", "ISO 8601")]
  for i, (rows, message) in enumerate(cases):
    path = _write(tmp_path / f"t{i}.csv", "user_id,item_id,t\n" + rows)
    with pytest.raises(DataFormatError, match=message) as e:
      tables.load_interaction_table(path, time_col="t")
    assert (e.value.line, e.value.field) == (3, "t"), rows


def test_missing_column_names_file_line_1_and_column(tmp_path):
  path = _write(tmp_path / "m.csv", "user,item_id,rating\n1,2,3\n")
  with pytest.raises(DataFormatError) as e:
    tables.load_interaction_table(path)
  message = str(e.value)
  assert str(path) in message and "line 1" in message and "'user_id'" in message
  assert "['user', 'item_id', 'rating']" in message and "user_col=" in message
  assert (e.value.line, e.value.field) == (1, "user_id")


def test_tsv_read_as_csv_hints_at_the_delimiter(tmp_path):
  path = _write(tmp_path / "m.csv", "user_id\titem_id\n1\t2\n")
  with pytest.raises(DataFormatError, match="contains a tab"):
    tables.load_interaction_table(path)


def test_bad_rating_names_line_and_field(tmp_path):
  for i, bad in enumerate(["nan", "inf", "good", "1e39"]):
    text = f"user_id,note,item_id,score\n1,,1,3\n\"1\",\"multi\nline\",\"2\",\"4\"\n2,,2,{bad}\n"
    path = _write(tmp_path / f"b{i}.csv", text)
    with pytest.raises(DataFormatError) as e:
      tables.load_interaction_table(path, rating_col="score")
    assert (e.value.line, e.value.field) == (5, "score"), bad
    assert str(path) in str(e.value) and "line 5" in str(e.value) and repr(bad) in str(e.value)


def test_structural_errors(tmp_path):
  def error(text, name="e.csv", **kwargs):
    with pytest.raises(DataFormatError) as e:
      tables.load_interaction_table(_write(tmp_path / name, text), **kwargs)
    return e.value

  assert "no data rows" in str(error("user_id,item_id\n"))
  assert "empty" in str(error(""))
  e = error("user_id,item_id\n1,2\n3,4,5\n")
  assert e.line == 3 and "expected 2 fields" in str(e)
  e = error("user_id,item_id\n1,2\n\n3,4\n")
  assert e.line == 3 and "empty line" in str(e)
  e = error("user_id,item_id\n1,2\n,4\n")
  assert (e.line, e.field) == (3, "user_id") and "empty id" in str(e)
  e = error('user_id,item_id\n1,2\n3,"4\n')
  assert e.line == 3
  with pytest.raises(ValueError, match="once"):
    tables.load_interaction_table(tmp_path / "e.csv", item_col="user_id")


def test_duplicates_keep_last(tmp_path, caplog):
  text = "user_id,item_id,rating\n1,1,2\n1,2,3\n1,1,5\n"
  with caplog.at_level(logging.WARNING):
    x = tables.load_interaction_table(_write(tmp_path / "d.csv", text), rating_col="rating")
  assert x.items.tolist() == [1, 0] and x.ratings.tolist() == [3.0, 5.0]
  assert any("duplicate" in r.getMessage() for r in caplog.records)


def test_parquet_round_trip(tmp_path):
  pa = pytest.importorskip("pyarrow")
  pq = pytest.importorskip("pyarrow.parquet")
  table = pa.table({
      "uid": pa.array(["b", "a", "b"]),
      "item_id": pa.array([30, 10, 10], pa.int32()),
      "rating": pa.array([4.0, None, 2.5]),
      "when": pa.array([1000, 0, 2_000_000], pa.timestamp("ms")),
      "other": pa.array([1, 2, 3])})
  path = tmp_path / "t.parquet"
  pq.write_table(table, path)
  x = tables.load_interaction_table(path, user_col="uid", rating_col="rating",
                                    time_col="when")
  assert x.user_ids.tolist() == ["a", "b"] and x.item_ids.tolist() == [10, 30]
  assert x.item_ids.dtype == np.int64
  assert x.users.tolist() == [1, 0, 1] and x.items.tolist() == [1, 0, 0]
  assert x.ratings[0] == 4.0 and np.isnan(x.ratings[1]) and x.ratings[2] == 2.5
  assert x.order.tolist() == [1, 0, 2000]
  gz = tmp_path / "t.pq.gz"
  gz.write_bytes(gzip.compress(path.read_bytes()))
  y = tables.load_interaction_table(gz, user_col="uid")
  assert y.users.tolist() == x.users.tolist() and y.ratings is None
  with pytest.raises(DataFormatError, match="user_id") as e:
    tables.load_interaction_table(path)
  assert e.value.field == "user_id" and "'uid'" in str(e.value)
  pq.write_table(pa.table({"user_id": [1, None], "item_id": [1, 2]}), tmp_path / "n.parquet")
  with pytest.raises(DataFormatError, match="row 2: empty id"):
    tables.load_interaction_table(tmp_path / "n.parquet")


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
  real_import = builtins.__import__

  def no_pyarrow(name, *args, **kwargs):
    if name == "pyarrow" or name.startswith("pyarrow."):
      raise ImportError("No module named 'pyarrow'")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_pyarrow)
  path = _write(tmp_path / "t.parquet", "not read")
  with pytest.raises(ImportError, match=r"pip install .*recsys-jax\[parquet\]"):
    tables.load_interaction_table(path)


# ----------------------------------------------------------------------------------------
# The original Kaggle anime layout.

RATING_CSV = "user_id,anime_id,rating\n1,20,-1\n1,24,8\n5,20,10\n5,99,-1\n"
ANIME_CSV = ("anime_id,name,genre,type,episodes,rating,members\n"
             '24,"School Rumble, Ni Gakki","Comedy, Romance, School",TV,26,8.06,71000\n'
             '20,Naruto,"Action, Comedy",TV,220,7.81,683297\n'
             '7,"Say ""Hi""",Music,Music,Unknown,,\n')


def _anime_dir(tmp_path, rating=RATING_CSV, anime=ANIME_CSV, compress=False):
  d = tmp_path / "anime"
  d.mkdir(parents=True, exist_ok=True)
  suffix = ".gz" if compress else ""
  _write(d / f"rating.csv{suffix}", rating, compress)
  _write(d / f"anime.csv{suffix}", anime, compress)
  return d


@pytest.mark.parametrize("compress", [False, True])
def test_anime_original(tmp_path, caplog, compress):
  folder = _anime_dir(tmp_path, compress=compress)
  with caplog.at_level(logging.WARNING):
    a = tables.load_anime_original(folder)
  x = a.interactions
  assert x.user_ids.tolist() == [1, 5] and x.item_ids.tolist() == [20, 24, 99]
  assert x.users.tolist() == [0, 0, 1, 1] and x.items.tolist() == [0, 1, 0, 2]
  assert np.isnan(x.ratings[[0, 3]]).all() and x.ratings[[1, 2]].tolist() == [8.0, 10.0]
  assert x.order is None
  assert a.rated().items.tolist() == [1, 0]
  info = a.info
  assert info.name.tolist() == ["Naruto", "School Rumble, Ni Gakki", ""]
  assert info.genre_lists() == [["Action", "Comedy"], ["Comedy", "Romance", "School"], []]
  assert info.type.tolist() == ["TV", "TV", ""]
  assert info.episodes.tolist() == [220, 26, -1]
  assert info.members.tolist() == [683297, 71000, -1]
  np.testing.assert_allclose(info.rating[:2], [7.81, 8.06], rtol=1e-6)
  assert np.isnan(info.rating[2])
  assert info.mal_anime_id.tolist() == [20, 24, 99]
  assert any("no info" in r.getMessage() and "99" in r.getMessage() for r in caplog.records)
  rating_file = folder / ("rating.csv.gz" if compress else "rating.csv")
  b = tables.load_anime_original(rating_file)
  assert b.info.name.tolist() == info.name.tolist()


def test_anime_original_unknown_episodes_and_quotes_in_names(tmp_path):
  rating = "user_id,anime_id,rating\n1,7,3\n"
  a = tables.load_anime_original(_anime_dir(tmp_path, rating=rating))
  assert a.info.name.tolist() == ['Say "Hi"'] and a.info.episodes.tolist() == [-1]
  assert a.info.members.tolist() == [-1] and np.isnan(a.info.rating[0])


def test_anime_original_errors(tmp_path):
  for i, bad in enumerate(["0", "11", "-2"]):
    folder = _anime_dir(tmp_path / str(i), rating=RATING_CSV + f"7,20,{bad}\n")
    with pytest.raises(DataFormatError, match="out of range") as e:
      tables.load_anime_original(folder)
    assert (e.value.line, e.value.field) == (6, "rating")
  folder = _anime_dir(tmp_path / "dup", anime=ANIME_CSV + "20,Naruto again,,TV,1,1,1\n")
  with pytest.raises(DataFormatError, match="lines 3 and 5") as e:
    tables.load_anime_original(folder)
  assert (e.value.line, e.value.field) == (5, "anime_id")
  folder = _anime_dir(tmp_path / "eps", anime=ANIME_CSV + "30,X,,TV,many,1,1\n")
  with pytest.raises(DataFormatError) as e:
    tables.load_anime_original(folder)
  assert (e.value.line, e.value.field) == (5, "episodes")
  (tmp_path / "alone").mkdir()
  _write(tmp_path / "alone" / "rating.csv", RATING_CSV)
  with pytest.raises(FileNotFoundError, match="anime.csv"):
    tables.load_anime_original(tmp_path / "alone")


def test_item_attribute_table_codes_values_per_column_and_names_duplicates(tmp_path):
  path = tmp_path / "items.csv"
  path.write_text("item_id,brand,genre\n10,acme,drama\n11,,comedy\n12,zeta,drama\n")
  from recsys_core.data.tables import load_item_attribute_table
  attr = load_item_attribute_table(str(path), np.array([12, 10, 99, 11]), ["brand", "genre"])
  # brand: acme=1, zeta=2 (empty = 0); genre: comedy=1, drama=2; item 99 is not in the file.
  assert attr.tolist() == [[2, 2], [1, 2], [0, 0], [0, 1]]
  assert attr.dtype == np.int32
  string_ids = load_item_attribute_table(str(path), np.array(["11"]), ["genre"])
  assert string_ids.tolist() == [[1]]
  path.write_text("item_id,brand\n10,acme\n11,b\n10,c\n")
  with pytest.raises(DataFormatError, match=r"item 10 is listed twice \(lines 2 and 4\)"):
    load_item_attribute_table(str(path), np.array([10]), ["brand"])
  with pytest.raises(DataFormatError, match="genre"):
    load_item_attribute_table(str(path), np.array([10]), ["genre"])
