"""Phoenix two-tower retrieval model: a causal transformer over [user | history] (user tower)
and an MLP over the candidate's hash embeddings (candidate tower), both L2-normalised, with
exact top-k retrieval over a corpus by dot product.

Interface kept from X's public Phoenix release (shared/docs/phoenix.md §1), with the
trainable init and the `normalize_before_projection` flag (history reduction) of the ranking
model. Shape glossary: B batch, S history, C candidates, D embedding size, N corpus size,
K top-k, H hash slots of a candidate (post + author hashes).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix.grok import Linear, TransformerConfig
from phoenix.recsys_model import HashConfig, RecsysBatch, RecsysEmbeddings, RecsysInputs

EPS = 1e-12
POOLINGS = ("mean", "last")


def _l2_normalize(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(x / ||x||, ||x||) along the last axis, in float32; the norm is floored at sqrt(EPS)."""
  x = x.astype(jnp.float32)
  norm = jnp.sqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), EPS))
  return x / norm, norm


class RetrievalOutput(NamedTuple):
  """user_representation [B, D]; top_k_indices [B, K] into the corpus (-1 where fewer than K
  corpus items are unmasked); top_k_scores [B, K] dot products, descending (-inf at -1)."""
  user_representation: jax.Array
  top_k_indices: jax.Array
  top_k_scores: jax.Array


class CandidateTower(hk.Module):
  """[..., H, D] hash embeddings -> flatten -> Linear(2D) -> SiLU -> Linear(D) -> L2 norm.

  The layers compute in the input's dtype; the L2 normalisation is in float32. The output has
  `output_dtype`, or the input's dtype when None (the release's tower). Rounding to bfloat16
  breaks the unit norm (by up to ~2e-3), so pass output_dtype=jnp.float32 where it matters.
  """

  def __init__(self, emb_size: int, name: Optional[str] = None, output_dtype: Any = None):
    super().__init__(name=name)
    self.emb_size = emb_size
    self.output_dtype = output_dtype

  def __call__(self, post_author_embedding: jax.Array) -> jax.Array:
    x = post_author_embedding.reshape(*post_author_embedding.shape[:-2], -1)
    hidden = jax.nn.silu(Linear(2 * self.emb_size, name="linear")(x))
    out = Linear(self.emb_size, name="linear_1")(hidden)
    dtype = post_author_embedding.dtype if self.output_dtype is None else self.output_dtype
    return _l2_normalize(out)[0].astype(dtype)


@dataclasses.dataclass
class PhoenixRetrievalModelConfig:
  """Retrieval model configuration (release fields and defaults, plus the improvement flag)."""
  model: TransformerConfig
  emb_size: int
  history_seq_len: int = 128
  candidate_seq_len: int = 32
  name: Optional[str] = None
  fprop_dtype: Any = jnp.bfloat16
  hash_config: Optional[HashConfig] = None
  product_surface_vocab_size: int = 16
  normalize_before_projection: bool = True
  # User read-out: "mean" = the release's masked mean over the [user | history] outputs;
  # "last" = the output at the last valid position (SASRec-style; what training uses when
  # RetrievalConfig.pooling="last", so serving must use the same).
  pooling: str = "mean"

  def __post_init__(self):
    if self.hash_config is None:
      self.hash_config = HashConfig()
    if self.pooling not in POOLINGS:
      raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")

  def make(self) -> "PhoenixRetrievalModel":
    return PhoenixRetrievalModel(model=self.model.make(), config=self,
                                 fprop_dtype=self.fprop_dtype, name=self.name)


def top_k_retrieval(user_representation: jax.Array, corpus_embeddings: jax.Array, top_k: int,
                    corpus_mask: Optional[jax.Array] = None) -> tuple[jax.Array, jax.Array]:
  """Exact top-k of user [B, D] . corpus [N, D] -> (indices [B, K], scores [B, K] descending).

  Masked corpus items (corpus_mask [N] False) are never returned: where fewer than K items are
  unmasked the remaining slots hold index -1 and score -inf. K is clipped to N.
  """
  scores = jnp.dot(user_representation.astype(jnp.float32),
                   corpus_embeddings.astype(jnp.float32).T)
  if corpus_mask is not None:
    scores = jnp.where(corpus_mask[None, :], scores, -jnp.inf)
  top_scores, top_indices = jax.lax.top_k(scores, min(top_k, corpus_embeddings.shape[0]))
  return jnp.where(jnp.isneginf(top_scores), -1, top_indices), top_scores


class PhoenixRetrievalModel(RecsysInputs):
  """Two-tower retrieval; parameters under `phoenix_retrieval_model` and `transformer`."""

  def build_user_representation(self, batch: RecsysBatch,
                                recsys_embeddings: RecsysEmbeddings
                                ) -> tuple[jax.Array, jax.Array]:
    """(user representation [B, D] float32, L2-normalised in float32 whatever fprop_dtype, as
    in the release; its norm before normalisation [B, 1]).

    pooling="mean": masked mean of the causal transformer's [user | history] outputs (the
    release). pooling="last": the output at the last valid position (right-padded
    histories; the user token when the history is empty).
    """
    embeddings, mask = self.user_history_inputs(batch, recsys_embeddings)
    outputs = self.model(embeddings, mask, candidate_start_offset=None).embeddings
    outputs = outputs.astype(jnp.float32)                                  # [B, 1+S, D]
    if self.config.pooling == "last":
      last = jnp.maximum(jnp.sum(mask.astype(jnp.int32), axis=1) - 1, 0)   # [B]
      return _l2_normalize(jnp.take_along_axis(outputs, last[:, None, None], axis=1)[:, 0])
    weights = mask.astype(jnp.float32)[:, :, None]
    mean = jnp.sum(outputs * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)
    return _l2_normalize(mean)

  @hk.name_like("__call__")
  def build_candidate_representation(self, batch: RecsysBatch,
                                     recsys_embeddings: RecsysEmbeddings
                                     ) -> tuple[jax.Array, jax.Array]:
    """(candidate tower outputs [B, C, D] float32 L2-normalised in float32, validity mask
    [B, C]), as in the release whatever fprop_dtype: the tower computes in fprop_dtype, but its
    output is not rounded back to it (a bfloat16 round trip moved norms to 0.9996-1.0017)."""
    post_author = jnp.concatenate([recsys_embeddings.candidate_post_embeddings,
                                   recsys_embeddings.candidate_author_embeddings], axis=2)
    representation = CandidateTower(self.config.emb_size, name="candidate_tower",
                                    output_dtype=jnp.float32)(post_author.astype(self.fprop_dtype))
    return representation, batch.candidate_post_hashes[:, :, 0] != 0

  def __call__(self, batch: RecsysBatch, recsys_embeddings: RecsysEmbeddings,
               corpus_embeddings: jax.Array, top_k: int,
               corpus_mask: Optional[jax.Array] = None) -> RetrievalOutput:
    user, _ = self.build_user_representation(batch, recsys_embeddings)
    indices, scores = top_k_retrieval(user, corpus_embeddings, top_k, corpus_mask)
    return RetrievalOutput(user_representation=user, top_k_indices=indices,
                           top_k_scores=scores)


def create_example_corpus(corpus_size: int, emb_size: int,
                          seed: int = 123) -> tuple[np.ndarray, np.ndarray]:
  """(random unit vectors [N, D] float32, post ids [N] int64 = 1..N)."""
  x = np.random.default_rng(seed).standard_normal((corpus_size, emb_size)).astype(np.float32)
  return x / np.linalg.norm(x, axis=-1, keepdims=True), np.arange(1, corpus_size + 1)
