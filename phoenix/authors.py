"""Author attributes of the named datasets: the item attribute the models use as the release's
author feature (Amazon: brand and categories; ML-1M: the first genre).

Shape glossary: I items, F attribute fields.
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np


def item_authors_for(dataset: str, author: str, item_ids: np.ndarray,
                     data_dir: Optional[str]) -> tuple[Optional[np.ndarray], dict]:
  """[I] author attribute per item (0 = unknown) and a description, or (None, ...) = shared.

  `author` may join several attributes with "+" (Amazon: "brand+category"): the result is
  then [I, F], one column per attribute, which the featurizer hashes into separate author
  hash slots (see phoenix.batching). Amazon's "category" is the most specific category of
  the item; "category:L" picks level L of its category list instead (0 = top level, 1 = the
  next, ...; negative counts from the most specific, so "category" = "category:-1").
  Available: "genre" on ml-1m / ml-1m-full; "brand", "category" and "category:L" on beauty /
  sports; any other author raises ValueError.
  """
  if author == "none":
    return None, {"author": "shared (one author)"}
  if "+" in author:
    parts = [item_authors_for(dataset, field, item_ids, data_dir) for field in author.split("+")]
    return (np.stack([attr for attr, _ in parts], axis=1),
            {"author": author, "fields": [info for _, info in parts]})
  from recsys_core.data import attributes  # pylint: disable=g-import-not-at-top
  from recsys_core.data.loaders import dataset_file  # pylint: disable=g-import-not-at-top
  path = dataset_file(dataset, data_dir, attributes=True)
  field, sep, level = author.partition(":")              # "category:L" = a category level
  if author == "genre" and dataset in ("ml-1m", "ml-1m-full"):
    attr, vocab = attributes.load_ml1m_genres(path, item_ids,
                                              "auto" if dataset == "ml-1m" else None)
  elif field in ("brand", "category") and dataset in ("beauty", "sports"):
    if sep and (field != "category" or not re.fullmatch(r"-?[0-9]+", level)):
      raise ValueError(f"author field {author!r}: only 'category' takes a level, as "
                       "'category:L' with an integer L (0 = top level, -1 = most specific)")
    attr, vocab = attributes.load_item_attributes(path, item_ids, field=field,
                                                  level=int(level) if level else -1)
  else:
    raise ValueError(f"author={author!r} is not available for dataset {dataset!r}")
  return attr, {"author": author, "num_authors": len(vocab) - 1,
                "unknown_fraction": float(np.mean(attr == 0))}
