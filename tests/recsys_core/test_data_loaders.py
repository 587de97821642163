"""Loaders: small hand-checked files in every format, the embedded anime data, real data."""
import gzip
import json
import os
import time

import numpy as np
import pytest

from recsys_core import data
from recsys_core.data import attributes
from recsys_core.data import loaders

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _real_data_dir():
  """$RECSYS_DATA_DIR, else the shared/data folder beside the checkout, else None."""
  env = os.environ.get("RECSYS_DATA_DIR")
  if env:
    return env
  sibling = os.path.join(os.path.dirname(_REPO), "shared", "data")
  return sibling if os.path.isdir(sibling) else None


REAL = _real_data_dir()
needs_real = pytest.mark.skipif(REAL is None, reason="RECSYS_DATA_DIR not set (real data)")


def _write(path, text, compress=False):
  raw = text.encode("utf-8")
  if compress:
    raw = gzip.compress(raw)
  path.write_bytes(raw)
  return path


# ----------------------------------------------------------------------------------------
# MovieLens 100K.

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n196\t302\t5\t1\n"


def _check_u_data(x):
  # users sorted: 22 -> 0, 186 -> 1, 196 -> 2; items: 242 -> 0, 302 -> 1, 377 -> 2
  assert x.user_ids.tolist() == [22, 186, 196]
  assert x.item_ids.tolist() == [242, 302, 377]
  assert x.users.tolist() == [2, 1, 0, 2]
  assert x.items.tolist() == [0, 1, 2, 1]
  assert x.ratings.tolist() == [3, 3, 1, 5]
  assert x.order.tolist() == [881250949, 891717742, 878887116, 1]
  assert x.users.dtype == np.int32 and x.items.dtype == np.int32
  assert x.ratings.dtype == np.float32 and x.order.dtype == np.int64


@pytest.mark.parametrize("name,compress", [("u.data", False), ("u.data.gz", True),
                                           ("u.data", True), ("u.data.gz", False)])
def test_movielens_100k_plain_and_gzip_by_magic_bytes(tmp_path, name, compress):
  _check_u_data(data.load_movielens_100k(_write(tmp_path / name, U_DATA, compress)))


def test_movielens_100k_no_trailing_newline_and_crlf(tmp_path):
  text = U_DATA.rstrip("\n").replace("\n", "\r\n")
  _check_u_data(data.load_movielens_100k(_write(tmp_path / "u.data", text)))


# ----------------------------------------------------------------------------------------
# ml-latest-small.

RATINGS_CSV = ("userId,movieId,rating,timestamp\r\n1,1,4.0,964982703\r\n1,3,0.5,964981247\r\n"
               "5,1,3.5,847434962\r\n")


@pytest.mark.parametrize("compress", [False, True])
def test_movielens_latest_small(tmp_path, compress):
  x = data.load_movielens_latest_small(_write(tmp_path / "ratings.csv", RATINGS_CSV, compress))
  assert x.user_ids.tolist() == [1, 5] and x.item_ids.tolist() == [1, 3]
  assert x.users.tolist() == [0, 0, 1] and x.items.tolist() == [0, 1, 0]
  assert x.ratings.tolist() == [4.0, 0.5, 3.5]
  assert x.order.tolist() == [964982703, 964981247, 847434962]


# ----------------------------------------------------------------------------------------
# Sequences.

SEQ = "1 10 11 12\n2 13 10\n3 12 11 10 14 15\n"


@pytest.mark.parametrize("compress", [False, True])
def test_sequences_order_is_position(tmp_path, compress):
  x = data.load_sequences(_write(tmp_path / "Beauty.txt.gz", SEQ, compress))
  assert x.user_ids.tolist() == [1, 2, 3]
  assert x.item_ids.tolist() == [10, 11, 12, 13, 14, 15]
  assert x.users.tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
  assert x.items.tolist() == [0, 1, 2, 3, 0, 2, 1, 0, 4, 5]
  assert x.order.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3, 4]
  assert x.ratings is None
  assert [s.tolist() for s in x.sequences()] == [[0, 1, 2], [3, 0], [2, 1, 0, 4, 5]]


def test_sequences_tolerate_extra_spaces(tmp_path):
  x = data.load_sequences(_write(tmp_path / "s.txt", "1  10 11 \n2\t12 10\n"))
  assert x.items.tolist() == [0, 1, 2, 0] and x.order.tolist() == [0, 1, 0, 1]


# ----------------------------------------------------------------------------------------
# Anime.

HEADER = "User_ID\tAnime_ID\tFeedback\n"
INFO = ("anime_ids\tname\tgenre\ttype\tepisodes\trating\tmembers\n"
        "3\tGintama°\tAction, Comedy\tTV\t51\t9.25\t114262\n"
        "1\tKimi no Na wa.\tDrama, Romance\tMovie\t1\t9.37\t200630\n"
        "2\tSomething\t\tOVA\tUnknown\t\t12\n")


def _anime_dir(tmp_path, compress):
  d = tmp_path / "anime"
  d.mkdir()
  suffix = ".gz" if compress else ""
  # history: user 1 watched 1, 2, 3; user 2 watched 2. Ratings: (1,1)=8, (1,3)=5, (2,2)=10,
  # and (2,3)=7 which is missing from the history (appended as a row).
  _write(d / f"anime_history.dat{suffix}", HEADER + "1\t1\t1\n1\t2\t1\n1\t3\t1\n2\t2\t1\n",
         compress)
  _write(d / f"anime_ratings.dat{suffix}", HEADER + "1\t1\t8\n1\t3\t5\n2\t2\t10\n2\t3\t7\n",
         compress)
  _write(d / f"anime_info.dat{suffix}", INFO, compress)
  _write(d / f"item_id_to_mal_anime_id.csv{suffix}", "item_id,mal_anime_id\n1,32281\n3,9969\n",
         compress)
  return d


@pytest.mark.parametrize("compress", [False, True])
def test_anime_small(tmp_path, compress):
  a = data.load_anime(_anime_dir(tmp_path, compress))
  x = a.interactions
  assert x.user_ids.tolist() == [1, 2] and x.item_ids.tolist() == [1, 2, 3]
  assert x.users.tolist() == [0, 0, 0, 1, 1]
  assert x.items.tolist() == [0, 1, 2, 1, 2]
  np.testing.assert_array_equal(x.ratings, [8, np.nan, 5, 10, 7])
  assert x.order is None
  assert a.info.name.tolist() == ["Kimi no Na wa.", "Something", "Gintama°"]
  assert a.info.type.tolist() == ["Movie", "OVA", "TV"]
  assert a.info.episodes.tolist() == [1, -1, 51]
  np.testing.assert_allclose(a.info.rating, [9.37, np.nan, 9.25], rtol=1e-6)
  assert a.info.members.tolist() == [200630, 12, 114262]
  assert a.info.mal_anime_id.tolist() == [32281, -1, 9969]
  assert a.info.genre_lists() == [["Drama", "Romance"], [], ["Action", "Comedy"]]
  rated = a.rated()
  assert len(rated) == 4 and not np.isnan(rated.ratings).any()
  assert rated.num_items == 3  # same index space


def test_anime_embedded_counts():
  start = time.perf_counter()
  a = data.load_anime()
  seconds = time.perf_counter() - start
  x = a.interactions
  assert len(x) == 520_609
  assert int(np.isfinite(x.ratings).sum()) == 419_943
  assert (x.num_users, x.num_items) == (5_000, 7_390)
  assert x.user_ids.tolist() == list(range(1, 5001))
  assert x.item_ids.tolist() == list(range(1, 7391))
  assert np.nanmin(x.ratings) == 1 and np.nanmax(x.ratings) == 10
  # README: 4,714 users and 7,157 items have ratings; 100,666 history-only pairs.
  rated = a.rated()
  assert len(np.unique(rated.users)) == 4_714 and len(np.unique(rated.items)) == 7_157
  assert int(np.isnan(x.ratings).sum()) == 100_666
  # The info is aligned: item 1 is MAL anime 61 (D.N.Angel, 26 episodes, TV).
  assert a.info.mal_anime_id[0] == 61 and a.info.name[0] == "D.N.Angel"
  assert a.info.episodes[0] == 26 and a.info.type[0] == "TV"
  assert (a.info.mal_anime_id > 0).all() and (a.info.members > 0).all()
  assert len(a.info.name) == 7_390
  assert seconds < 10, f"loading the anime subsample took {seconds:.1f} s"


def test_load_dataset_anime_default_is_embedded(tmp_path, monkeypatch):
  small = _anime_dir(tmp_path, compress=True)
  monkeypatch.setattr(loaders, "embedded_anime_dir", lambda: str(small))
  assert len(data.load_dataset("anime")) == 5
  root = tmp_path / "root"
  (root / "anime_recommendations_5k_subsample").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match="anime_history.dat"):
    data.load_dataset("anime", root)


# ----------------------------------------------------------------------------------------
# Attributes.


def test_ml1m_genres_via_sasrec_map(tmp_path):
  movies = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Jumanji (1995)::Adventure\n" \
           "5::Caf\xe9 (2000)::Comedy|Drama\n"
  (tmp_path / "movies.dat").write_bytes(movies.encode("latin-1"))
  _write(tmp_path / "sasrec_item_to_movieid.txt.gz", "1 5\n2 1\n3 2\n4 999\n", compress=True)
  attr, vocab = data.load_ml1m_genres(tmp_path / "movies.dat", np.array([1, 2, 3, 4]))
  assert vocab == ["<unknown>", "Adventure", "Animation", "Comedy"]
  assert attr.tolist() == [3, 2, 1, 0]  # Comedy, Animation, Adventure, unknown (999)
  attr, _ = data.load_ml1m_genres(tmp_path / "movies.dat", np.array([5, 2]), item_map_path=None)
  assert attr.tolist() == [2, 1]  # vocab: Adventure, Comedy


def test_item_attributes_brand_and_category(tmp_path):
  # items 1, 2 have brands 50 / 51 then categories [7 top, 8, 9]; item 3 has no brand.
  table = {"1": [50, 7, 8, 9], "2": [51, 7, 8], "3": [7, 10], "4": []}
  path = _write(tmp_path / "X_item2attributes.json.gz", json.dumps(table), compress=True)
  items = np.array([1, 2, 3, 4, 5])
  brand, vocab = data.load_item_attributes(path, items, "brand")
  assert vocab == ["<unknown>", 50, 51] and brand.tolist() == [1, 2, 0, 0, 0]
  top, vocab = data.load_item_attributes(path, items, "category", level=0)
  assert vocab == ["<unknown>", 7] and top.tolist() == [1, 1, 1, 0, 0]
  leaf, vocab = data.load_item_attributes(path, items, "category")
  assert vocab == ["<unknown>", 8, 9, 10] and leaf.tolist() == [2, 1, 3, 0, 0]
  with pytest.raises(ValueError, match="field"):
    data.load_item_attributes(path, items, "colour")


def test_movielens_genres_100k_and_latest_small(tmp_path):
  flags = ["0"] * 19
  toy = list(flags)
  toy[3] = toy[4] = "1"  # Animation, Children's
  unknown = list(flags)
  unknown[0] = "1"
  u_item = "\n".join([
      "1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(toy),
      "2|Caf\xe9 (1995)|01-Jan-1995||http://y|" + "|".join(unknown)]) + "\n"
  (tmp_path / "u.item").write_bytes(u_item.encode("latin-1"))
  attr, vocab = attributes.load_ml100k_genres(tmp_path / "u.item", np.array([2, 1, 7]))
  assert vocab == ["<unknown>", "Animation"] and attr.tolist() == [0, 1, 0]
  movies = ('movieId,title,genres\r\n1,"American President, The (1995)",Comedy|Drama|Romance'
            '\r\n5,Jumanji (1995),Adventure|Children\r\n9,X (2018),(no genres listed)\r\n')
  path = _write(tmp_path / "movies.csv.gz", movies, compress=True)
  attr, vocab = attributes.load_movielens_csv_genres(path, np.array([1, 5, 9]))
  assert vocab == ["<unknown>", "Adventure", "Comedy"] and attr.tolist() == [2, 1, 0]


def test_item_authors_by_name(tmp_path):
  small = _anime_dir(tmp_path, compress=False)
  root = tmp_path / "root"
  root.mkdir()
  os.rename(small, root / "anime_recommendations_5k_subsample")
  attr, vocab = attributes.load_item_authors("anime", np.array([3, 1, 2]), root)
  assert vocab == ["<unknown>", "Action", "Drama"] and attr.tolist() == [1, 2, 0]
  (root / "amazon_beauty_seq").mkdir()
  _write(root / "amazon_beauty_seq" / "Beauty_item2attributes.json", '{"1": [9, 3], "2": [3]}')
  attr, vocab = attributes.load_item_authors("beauty", np.array([1, 2]), root)
  assert vocab == ["<unknown>", 9] and attr.tolist() == [1, 0]


# ----------------------------------------------------------------------------------------
# load_dataset errors.


def test_load_dataset_errors(tmp_path, monkeypatch):
  with pytest.raises(ValueError, match="unknown dataset"):
    data.load_dataset("ml-20m", tmp_path)
  (tmp_path / "movielens_100k").mkdir()
  with pytest.raises(FileNotFoundError, match=r"movielens_100k/u\.data"):
    data.load_dataset("ml-100k", tmp_path)
  monkeypatch.delenv("RECSYS_DATA_DIR", raising=False)
  with pytest.raises(FileNotFoundError, match="RECSYS_DATA_DIR"):
    data.load_dataset("ml-1m")
  with pytest.raises(FileNotFoundError, match="nowhere"):
    data.load_dataset("beauty", tmp_path / "nowhere")


def test_load_dataset_by_name_small(tmp_path):
  (tmp_path / "movielens_100k").mkdir()
  _write(tmp_path / "movielens_100k" / "u.data.gz", U_DATA, compress=True)
  _check_u_data(data.load_dataset("ml-100k", tmp_path))


# ----------------------------------------------------------------------------------------
# The real datasets (shared/data), with the counts their READMEs state.

REAL_COUNTS = {  # name: (interactions, users, items)
    "ml-100k": (100_000, 943, 1_682),
    "ml-latest-small": (100_836, 610, 9_724),
    "ml-1m": (999_611, 6_040, 3_416),
    "ml-1m-full": (1_000_209, 6_040, 3_706),
    "beauty": (198_502, 22_363, 12_101),
    "sports": (296_337, 35_598, 18_357),
}  # anime: the embedded copy is the same files (test_anime_embedded_counts)


@needs_real
@pytest.mark.parametrize("name", sorted(REAL_COUNTS))
def test_real_dataset_counts(name):
  start = time.perf_counter()
  x = data.load_dataset(name, REAL)
  seconds = time.perf_counter() - start
  assert (len(x), x.num_users, x.num_items) == REAL_COUNTS[name]
  assert seconds < 10, f"{name} took {seconds:.1f} s"
  if name == "ml-100k":
    assert np.bincount(x.ratings.astype(int)).tolist() == [0, 6_110, 11_370, 27_145, 34_174,
                                                           21_201]
  if name == "ml-latest-small":
    assert x.ratings.min() == 0.5 and x.ratings.max() == 5.0
  if name in ("ml-1m", "ml-1m-full"):
    lengths = np.bincount(x.users)
    assert (lengths.min(), lengths.max()) == ((18, 2_277) if name == "ml-1m" else (20, 2_314))
  if name in ("beauty", "sports", "ml-1m"):  # dense ids 1..n in file order
    assert x.user_ids.tolist() == list(range(1, x.num_users + 1))
    assert x.item_ids.tolist() == list(range(1, x.num_items + 1))


@needs_real
def test_real_attributes():
  x = data.load_dataset("ml-1m", REAL)
  genres, vocab = data.load_ml1m_genres(loaders.dataset_file("ml-1m", REAL, attributes=True),
                                        x.item_ids)
  assert len(vocab) == 19 and (genres > 0).all()
  # sas item 1 = MovieID 1198, Raiders of the Lost Ark: Action|Adventure.
  assert vocab[genres[0]] == "Action"
  for name, n_attr in (("beauty", 637), ("sports", 2_277)):
    x = data.load_dataset(name, REAL)
    path = loaders.dataset_file(name, REAL, attributes=True)
    brand, bv = data.load_item_attributes(path, x.item_ids, "brand")
    cat, cv = data.load_item_attributes(path, x.item_ids, "category")
    assert len(brand) == x.num_items and (cat > 0).all()
    assert 0 < (brand > 0).mean() < 1
    assert len(set(bv[1:]) | set(cv[1:])) <= n_attr
    assert attributes.UNKNOWN == bv[0] == cv[0]
  for name in ("ml-100k", "ml-latest-small", "anime"):
    x = data.load_dataset(name, REAL)
    authors, vocab = attributes.load_item_authors(name, x.item_ids, REAL)
    assert len(authors) == x.num_items and (authors > 0).mean() > 0.99
    assert 18 <= len(vocab) - 1 <= 45
