"""Hash embedding tables: user / item / author ids -> several hashes each -> table rows.

Ids are hashed on the host (numpy) with splitmix64, one fixed seed per (kind, hash function),
so the hashes are the same in every process and on every machine (Python's `hash()` is
salted per process and is never used). Row 0 of every table is reserved for padding: a
padding id (any negative id, `PADDING_ID`) hashes to 0 and every real id to [1, table_size).

`HashEmbeddings` (a haiku module) holds one [rows, D] parameter per kind, so the tables can be
sharded by rows (e.g. `recsys_core.parallel.shard_params` with P('model', None)); it gathers
a `RecsysBatch`'s hashes into the `RecsysEmbeddings` the Phoenix models consume.

Shape glossary: B batch, S history length, C candidates, D embedding size, n hashes per id.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix.recsys_model import HashConfig, RecsysBatch, RecsysEmbeddings

PADDING_ID = -1
# Per-kind salts: the same id hashes independently for users, items and authors.
KIND_SALTS = {"user": 0x75736572, "item": 0x6974656D, "author": 0x61757468}


def splitmix64(x: np.ndarray) -> np.ndarray:
  """The splitmix64 finaliser (a bijection of uint64), elementwise."""
  x = np.asarray(x, np.uint64)
  with np.errstate(over="ignore"):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))


def hash_seeds(kind: str, num_hashes: int) -> np.ndarray:
  """[num_hashes] uint64: the fixed seed of each hash function of `kind`."""
  base = np.uint64(KIND_SALTS[kind]) << np.uint64(32)
  return splitmix64(base + np.arange(num_hashes, dtype=np.uint64))


def hash_ids(ids: np.ndarray, num_hashes: int, table_size: int, kind: str) -> np.ndarray:
  """ids [...] int -> hashes [..., num_hashes] int32 in [1, table_size); 0 for ids < 0."""
  if table_size < 2:
    raise ValueError(f"table_size must be >= 2 (row 0 is padding), got {table_size}")
  ids = np.asarray(ids, np.int64)
  mixed = splitmix64(ids.astype(np.uint64)[..., None] ^ hash_seeds(kind, num_hashes))
  hashes = (np.uint64(1) + mixed % np.uint64(table_size - 1)).astype(np.int32)
  return np.where(ids[..., None] < 0, 0, hashes).astype(np.int32)


@dataclasses.dataclass
class HashTableConfig:
  """Table sizes (rows, including padding row 0) per kind and hashes per id."""
  emb_size: int
  user_table_size: int = 100_000
  item_table_size: int = 1_000_000
  author_table_size: int = 100_000
  hash_config: HashConfig = dataclasses.field(default_factory=HashConfig)
  init_stddev: float = 1.0

  def hash_users(self, ids: np.ndarray) -> np.ndarray:
    return hash_ids(ids, self.hash_config.num_user_hashes, self.user_table_size, "user")

  def hash_items(self, ids: np.ndarray) -> np.ndarray:
    return hash_ids(ids, self.hash_config.num_item_hashes, self.item_table_size, "item")

  def hash_authors(self, ids: np.ndarray) -> np.ndarray:
    return hash_ids(ids, self.hash_config.num_author_hashes, self.author_table_size, "author")

  def make_batch(self, user_ids: np.ndarray, history_post_ids: np.ndarray,
                 history_author_ids: np.ndarray, history_actions: np.ndarray,
                 history_product_surface: np.ndarray, candidate_post_ids: np.ndarray,
                 candidate_author_ids: np.ndarray,
                 candidate_product_surface: np.ndarray) -> RecsysBatch:
    """A RecsysBatch from raw ids: user_ids [B], *_post_ids / *_author_ids [B, S] or [B, C]
    (PADDING_ID = padding), actions [B, S, A], surfaces [B, S] / [B, C]."""
    return RecsysBatch(
        user_hashes=self.hash_users(user_ids),
        history_post_hashes=self.hash_items(history_post_ids),
        history_author_hashes=self.hash_authors(history_author_ids),
        history_actions=np.asarray(history_actions, np.float32),
        history_product_surface=np.asarray(history_product_surface, np.int32),
        candidate_post_hashes=self.hash_items(candidate_post_ids),
        candidate_author_hashes=self.hash_authors(candidate_author_ids),
        candidate_product_surface=np.asarray(candidate_product_surface, np.int32))


class HashEmbeddings(hk.Module):
  """Per-kind hash embedding tables (`user_table`, `item_table`, `author_table`, each one
  [rows, D] float32 parameter) gathered into RecsysEmbeddings; hash 0 gives zeros."""

  def __init__(self, config: HashTableConfig, name: Optional[str] = None):
    super().__init__(name=name)
    self.config = config

  def _table(self, name: str, rows: int) -> jax.Array:
    return hk.get_parameter(name, [rows, self.config.emb_size], jnp.float32,
                            init=hk.initializers.TruncatedNormal(self.config.init_stddev))

  @staticmethod
  def _gather(table: jax.Array, hashes: jax.Array) -> jax.Array:
    hashes = jnp.asarray(hashes)
    return jnp.take(table, hashes, axis=0) * (hashes != 0)[..., None].astype(table.dtype)

  def __call__(self, batch: RecsysBatch) -> RecsysEmbeddings:
    cfg = self.config
    users = self._table("user_table", cfg.user_table_size)
    items = self._table("item_table", cfg.item_table_size)
    authors = self._table("author_table", cfg.author_table_size)
    return RecsysEmbeddings(
        user_embeddings=self._gather(users, batch.user_hashes),
        history_post_embeddings=self._gather(items, batch.history_post_hashes),
        candidate_post_embeddings=self._gather(items, batch.candidate_post_hashes),
        history_author_embeddings=self._gather(authors, batch.history_author_hashes),
        candidate_author_embeddings=self._gather(authors, batch.candidate_author_hashes))
