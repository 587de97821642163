"""Datasets as one `Interactions` type: loaders, filters and evaluation splits."""
from recsys_core.data.attributes import load_item_attributes
from recsys_core.data.attributes import load_item_authors
from recsys_core.data.attributes import load_ml1m_genres
from recsys_core.data.filters import filter_by_rating
from recsys_core.data.filters import filter_min_interactions
from recsys_core.data.filters import reindex
from recsys_core.data.loaders import AnimeData
from recsys_core.data.loaders import AnimeInfo
from recsys_core.data.loaders import DATASETS
from recsys_core.data.loaders import interactions_from_ids
from recsys_core.data.loaders import load_anime
from recsys_core.data.loaders import load_dataset
from recsys_core.data.loaders import load_movielens_100k
from recsys_core.data.loaders import load_movielens_latest_small
from recsys_core.data.loaders import load_sequences
from recsys_core.data.parsing import DataFormatError
from recsys_core.data.types import Interactions

__all__ = [
    "AnimeData", "AnimeInfo", "DATASETS", "DataFormatError", "Interactions",
    "filter_by_rating", "filter_min_interactions", "interactions_from_ids", "load_anime",
    "load_dataset", "load_item_attributes", "load_item_authors",
    "load_ml1m_genres", "load_movielens_100k",
    "load_movielens_latest_small", "load_sequences", "reindex",
]
