"""Hash embeddings of the trained Phoenix models: their config, the featurizer and the lookup.

Ids become embeddings in two steps, host then device:
  * `make_featurizer` (host, numpy): an `IdBatch` -> `RecsysBatch` of hashes, each id kind
    (user, item, author) hashed into its own table with its own salts (phoenix.hashing);
  * `lookup_embeddings` (inside `hk.transform`): the `RecsysBatch`'s hashes ->
    `RecsysEmbeddings` from the `phoenix.hashing.HashEmbeddings` tables.
`EmbeddingConfig` sizes the tables and the hashes per id; retrieval and ranking configs hold
one (phoenix.transformer_fields).

Shape glossary: B batch, S history length, C candidates, D embedding size (emb_size),
I items.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from phoenix import batching
from phoenix import hashing
from phoenix.recsys_model import HashConfig


@dataclasses.dataclass(frozen=True)
class EmbeddingConfig:
  """Hash embedding tables: rows per table (row 0 = padding), hashes per id."""
  emb_size: int = 64
  user_table_size: int = 1 << 14
  item_table_size: int = 1 << 14
  author_table_size: int = 1 << 12
  num_user_hashes: int = 2
  num_item_hashes: int = 2
  num_author_hashes: int = 2
  init_stddev: float = 1.0   # table init (the release: 1.0); smaller moves faster under Adam

  def hash_config(self) -> HashConfig:
    return HashConfig(num_user_hashes=self.num_user_hashes,
                      num_item_hashes=self.num_item_hashes,
                      num_author_hashes=self.num_author_hashes)


def hash_table_config(ecfg: EmbeddingConfig):
  return hashing.HashTableConfig(emb_size=ecfg.emb_size, user_table_size=ecfg.user_table_size,
                                 item_table_size=ecfg.item_table_size,
                                 author_table_size=ecfg.author_table_size,
                                 hash_config=ecfg.hash_config(),
                                 init_stddev=ecfg.init_stddev)


def make_featurizer(ecfg: EmbeddingConfig, item_authors: Optional[np.ndarray]
                    ) -> batching.Featurizer:
  """Ids -> hashes with phoenix.hashing (each id kind with its own table and salts).

  item_authors: [I] or [I, F] author attribute ids per item (0 = unknown), or None (one
  shared author); see phoenix.batching.Featurizer.
  """
  return _KindFeaturizer(item_authors, None, ecfg.num_user_hashes, ecfg.num_item_hashes,
                         ecfg.num_author_hashes,
                         table_sizes={"user": ecfg.user_table_size, "item": ecfg.item_table_size,
                                      "author": ecfg.author_table_size})


@dataclasses.dataclass
class _KindFeaturizer(batching.Featurizer):
  """A Featurizer hashing each id kind into its own table with its own salts
  (phoenix.hashing, whose padding id is < 0); the base class's hash_ids is unused (None)."""
  table_sizes: Optional[dict[str, int]] = None

  def hash(self, kind: str, ids: np.ndarray, num_hashes: int) -> np.ndarray:
    ids = np.asarray(ids, np.int64)
    return hashing.hash_ids(np.where(ids > 0, ids, hashing.PADDING_ID), num_hashes,
                            self.table_sizes[kind], kind)


def lookup_embeddings(batch, ecfg: EmbeddingConfig):
  """RecsysEmbeddings of a RecsysBatch's hashes (inside hk.transform): phoenix.hashing tables."""
  return hashing.HashEmbeddings(hash_table_config(ecfg), name="hash_embeddings")(batch)
