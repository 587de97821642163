"""What a served model takes and gives: each dataset's own public item ids."""
import gzip
import os

import numpy as np
import pytest

from recsys_core.data import loaders
from recsys_core.data import source

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "..", "shared", "data")


def test_anime_items_are_served_by_their_myanimelist_ids():
  x = loaders.load_anime().interactions
  public = source.public_item_ids(source.DataConfig(name="anime"), x.item_ids)
  path = loaders.find_file(loaders.embedded_anime_dir(), "item_id_to_mal_anime_id.csv")
  with gzip.open(path, "rt") if path.endswith(".gz") else open(path) as f:
    rows = dict(tuple(map(int, line.split(","))) for line in list(f)[1:])
  assert [int(v) for v in public[:50]] == [rows[int(i)] for i in x.item_ids[:50]]
  assert len(np.unique(public)) == len(public)


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "movielens_1m")),
                    reason="needs shared/data")
def test_ml1m_items_are_served_by_their_movielens_movieids():
  x = loaders.load_dataset("ml-1m", SHARED)
  public = source.public_item_ids(source.DataConfig(name="ml-1m", dir=SHARED), x.item_ids)
  with gzip.open(os.path.join(SHARED, "movielens_1m", "sasrec_item_to_movieid.txt.gz"),
                 "rt") as f:
    pairs = dict(tuple(map(int, line.split())) for line in f)
  assert [int(v) for v in public] == [pairs[int(i)] for i in x.item_ids]
  assert int(public[list(x.item_ids).index(2571)]) == pairs[2571] != 2571


def test_other_data_keeps_its_own_ids():
  ids = np.array(["b", "a"])
  assert list(source.public_item_ids(source.DataConfig(name="synthetic"), ids)) == ["b", "a"]
