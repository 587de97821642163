"""Datasets as one `Interactions` type: loaders, filters and evaluation splits."""
from recsys_core.data.types import Interactions

__all__ = ["Interactions"]
