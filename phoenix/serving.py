"""Fast candidate scoring: encode the user + history prefix once, then score candidates in
blocks against its cached per-layer keys/values.

Because every candidate sees only the prefix and itself, at one shared rotary position,
scoring candidates against a cache is exactly what the full [user | history | candidates]
sequence computes for them (up to float rounding). The cached path uses the same haiku
modules and parameters as `PhoenixModel.__call__` (`PhoenixModel.encode_prefix` /
`score_candidates`, `Transformer.extend`), so params from the ranking model's init or a
checkpoint apply unchanged.

Cost for C candidates and P = 1 + S prefix positions: attention is O(C * P) instead of
O((P + C)^2), and the prefix is computed once, not once per block of candidates.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp

from phoenix.grok import KVMemory
from phoenix.recsys_model import (PhoenixModelConfig, RecsysBatch, RecsysEmbeddings,
                                  RecsysModelOutput)

PrefixCache = tuple[KVMemory, ...]  # one KVMemory ([B, P, K, d] keys/values, [B, P] mask) per layer

_CANDIDATE_BATCH_FIELDS = ("candidate_post_hashes", "candidate_author_hashes",
                           "candidate_product_surface")
_CANDIDATE_EMB_FIELDS = ("candidate_post_embeddings", "candidate_author_embeddings")


def _to_blocks(x: jax.Array, block_size: int) -> jax.Array:
  """[B, C, ...] -> [num_blocks, B, block_size, ...], zero-padded (= padding candidates)."""
  b, c = x.shape[:2]
  nb = -(-c // block_size)
  x = jnp.pad(x, [(0, 0), (0, nb * block_size - c)] + [(0, 0)] * (x.ndim - 2))
  return jnp.moveaxis(x.reshape(b, nb, block_size, *x.shape[2:]), 1, 0)


@dataclasses.dataclass
class CachedScorer:
  """Prefix-cached scoring for a ranking model config (params: the ranking model's).

  scorer = CachedScorer(config, block_size=256)
  out = scorer.score(params, batch, embeddings)           # RecsysModelOutput, logits [B, C, A]
  cache = scorer.encode_prefix(params, batch, embeddings)  # reuse for many candidate sets
  out = scorer.score_with_prefix(params, cache, batch, embeddings)
  (all jitted; only the candidate fields of `batch` / `embeddings` are read when scoring)
  """
  config: PhoenixModelConfig
  block_size: int = 256

  def __post_init__(self):
    if self.block_size < 1:
      raise ValueError(f"block_size must be >= 1, got {self.block_size}")
    self._prefix_apply = self._transformed("encode_prefix").apply
    self._candidates_apply = self._transformed("score_candidates").apply
    self.encode_prefix = jax.jit(self._prefix_apply)
    self.score_with_prefix = jax.jit(
        lambda params, cache, batch, emb: RecsysModelOutput(
            logits=self._score_blocks(params, cache, batch, emb)))
    self.score = jax.jit(
        lambda params, batch, emb: RecsysModelOutput(logits=self._score_blocks(
            params, self._prefix_apply(params, batch, emb), batch, emb)))

  def _transformed(self, method: str) -> hk.Transformed:
    return hk.without_apply_rng(hk.transform(
        lambda *args: getattr(self.config.make(), method)(*args)))

  def _score_blocks(self, params: Any, cache: PrefixCache, batch: RecsysBatch,
                    embeddings: RecsysEmbeddings) -> jax.Array:
    """Logits [B, C, A] of the batch's candidates, block_size candidates at a time."""
    c = batch.candidate_post_hashes.shape[1]
    block = min(self.block_size, c)
    blocks = ({f: _to_blocks(jnp.asarray(getattr(batch, f)), block)
               for f in _CANDIDATE_BATCH_FIELDS},
              {f: _to_blocks(jnp.asarray(getattr(embeddings, f)), block)
               for f in _CANDIDATE_EMB_FIELDS})

    def score_block(block_fields):
      batch_fields, emb_fields = block_fields
      out = self._candidates_apply(params, cache, batch._replace(**batch_fields),
                                   dataclasses.replace(embeddings, **emb_fields))
      return out.logits

    logits = jax.lax.map(score_block, blocks)  # [num_blocks, B, block, A]
    logits = jnp.moveaxis(logits, 0, 1)
    return logits.reshape(logits.shape[0], -1, logits.shape[-1])[:, :c]
