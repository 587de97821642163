"""Phoenix ranking model: [user | history | candidates] through the transformer with candidate
isolation, one logit per (candidate, action).

Interface kept from X's public Phoenix release (shared/docs/phoenix.md §1). Differences:
trainable init; every candidate at the same rotary position (scores depend only on user,
history and the candidate); `normalize_before_projection` (improvement §3, default on): a
LayerNorm (scale 1, offset 0) on the concatenated history and candidate vectors before
`proj_mat_3` / `proj_mat_2`; `encode_prefix` / `score_candidates` for prefix-cached serving.

Shape glossary: B batch, S history length, C candidates, D embedding size, A actions,
nU / nI / nA hashes per user / item / author, V product-surface vocabulary.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix.grok import KVMemory, TransformerConfig, Transformer, rms_norm


@dataclasses.dataclass
class HashConfig:
  """Number of hash functions (embedding rows) per user, item and author id."""
  num_user_hashes: int = 2
  num_item_hashes: int = 2
  num_author_hashes: int = 2


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class RecsysEmbeddings:
  """Looked-up hash embeddings (a pytree, so it passes through `jax.jit`).

  user_embeddings [B, nU, D], history_post_embeddings [B, S, nI, D],
  candidate_post_embeddings [B, C, nI, D], history_author_embeddings [B, S, nA, D],
  candidate_author_embeddings [B, C, nA, D].
  """
  user_embeddings: jax.Array
  history_post_embeddings: jax.Array
  candidate_post_embeddings: jax.Array
  history_author_embeddings: jax.Array
  candidate_author_embeddings: jax.Array


class RecsysModelOutput(NamedTuple):
  logits: jax.Array  # [B, C, A]


class RecsysBatch(NamedTuple):
  """Model inputs. Hash value 0 = padding; slot 0 of the post (user) hashes decides validity.

  user_hashes [B, nU], history_post_hashes [B, S, nI], history_author_hashes [B, S, nA],
  history_actions [B, S, A] multi-hot float, history_product_surface [B, S] int in [0, V),
  candidate_post_hashes [B, C, nI], candidate_author_hashes [B, C, nA],
  candidate_product_surface [B, C] int in [0, V).
  """
  user_hashes: jax.Array
  history_post_hashes: jax.Array
  history_author_hashes: jax.Array
  history_actions: jax.Array
  history_product_surface: jax.Array
  candidate_post_hashes: jax.Array
  candidate_author_hashes: jax.Array
  candidate_product_surface: jax.Array


def _projection(name: str, x: jax.Array, out_size: int, embed_init_scale: float) -> jax.Array:
  """x [..., F] @ a bias-free [F, out_size] float32 parameter `name`, in x's dtype."""
  init = hk.initializers.VarianceScaling(embed_init_scale, "fan_in", "truncated_normal")
  w = hk.get_parameter(name, [x.shape[-1], out_size], jnp.float32, init=init)
  return jnp.dot(x, w.astype(x.dtype))


def _maybe_layer_norm(x: jax.Array, normalize: bool, name: str) -> jax.Array:
  """A real LayerNorm (scale 1, offset 0 at init, float32 math) when `normalize`."""
  if not normalize:
    return x
  ln = hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name=name)
  return ln(x.astype(jnp.float32)).astype(x.dtype)


def block_user_reduce(user_hashes: jax.Array, user_embeddings: jax.Array,
                      num_user_hashes: int, emb_size: int,
                      embed_init_scale: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """User hash embeddings [B, nU, D] -> ([B, 1, D] via `proj_mat_1`, validity [B, 1])."""
  b = user_embeddings.shape[0]
  concat = user_embeddings.reshape(b, 1, num_user_hashes * emb_size)
  user = _projection("proj_mat_1", concat, emb_size, embed_init_scale)
  return user, (user_hashes[:, 0] != 0).reshape(b, 1)


def block_history_reduce(history_post_hashes: jax.Array, history_post_embeddings: jax.Array,
                         history_author_embeddings: jax.Array,
                         history_product_surface_embeddings: jax.Array,
                         history_actions_embeddings: jax.Array, num_item_hashes: int,
                         num_author_hashes: int, embed_init_scale: float = 1.0,
                         normalize: bool = False) -> tuple[jax.Array, jax.Array]:
  """[post hashes | author hashes | actions | product surface] -> ([B, S, D], validity [B, S]).

  With `normalize`, LayerNorm `history_layer_norm` on the concatenation before `proj_mat_3`.
  """
  b, s, _, d = history_post_embeddings.shape
  concat = jnp.concatenate([
      history_post_embeddings.reshape(b, s, num_item_hashes * d),
      history_author_embeddings.reshape(b, s, num_author_hashes * d),
      history_actions_embeddings, history_product_surface_embeddings], axis=-1)
  concat = _maybe_layer_norm(concat, normalize, "history_layer_norm")
  history = _projection("proj_mat_3", concat, d, embed_init_scale)
  return history, history_post_hashes[:, :, 0] != 0


def block_candidate_reduce(candidate_post_hashes: jax.Array,
                           candidate_post_embeddings: jax.Array,
                           candidate_author_embeddings: jax.Array,
                           candidate_product_surface_embeddings: jax.Array,
                           num_item_hashes: int, num_author_hashes: int,
                           embed_init_scale: float = 1.0,
                           normalize: bool = False) -> tuple[jax.Array, jax.Array]:
  """[post hashes | author hashes | product surface] -> ([B, C, D], validity [B, C]).

  With `normalize`, LayerNorm `candidate_layer_norm` on the concatenation before `proj_mat_2`.
  """
  b, c, _, d = candidate_post_embeddings.shape
  concat = jnp.concatenate([
      candidate_post_embeddings.reshape(b, c, num_item_hashes * d),
      candidate_author_embeddings.reshape(b, c, num_author_hashes * d),
      candidate_product_surface_embeddings], axis=-1)
  concat = _maybe_layer_norm(concat, normalize, "candidate_layer_norm")
  candidates = _projection("proj_mat_2", concat, d, embed_init_scale)
  return candidates, candidate_post_hashes[:, :, 0] != 0


class RecsysInputs(hk.Module):
  """Input embedding of users, histories and candidates, shared by ranking and retrieval.

  Parameters (direct, under the model's name): proj_mat_1/2/3, action_projection [A, D],
  product_surface_embedding_table [V, D]; with normalisation, history_/candidate_layer_norm.
  """

  def __init__(self, model: Transformer, config: Any, fprop_dtype: Any = jnp.bfloat16,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.model = model
    self.config = config
    self.fprop_dtype = fprop_dtype

  def _get_action_embeddings(self, actions: jax.Array) -> jax.Array:
    """Multi-hot actions [B, S, A] -> (2a-1) @ action_projection, 0 where no bit is set."""
    init = hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")
    proj = hk.get_parameter("action_projection", [actions.shape[-1], self.config.emb_size],
                            jnp.float32, init=init)
    emb = jnp.dot(2.0 * actions.astype(jnp.float32) - 1.0, proj)
    emb = emb * jnp.any(actions != 0, axis=-1, keepdims=True)
    return emb.astype(self.fprop_dtype)

  def _single_hot_to_embeddings(self, inputs: jax.Array, vocab_size: int, emb_size: int,
                                name: str) -> jax.Array:
    """Integer ids [...] -> one_hot(ids, vocab_size) @ table `name` [vocab_size, emb_size]."""
    table = hk.get_parameter(name, [vocab_size, emb_size], jnp.float32,
                             init=hk.initializers.TruncatedNormal(1.0))
    return jnp.dot(jax.nn.one_hot(inputs, vocab_size), table).astype(self.fprop_dtype)

  def _product_surface(self, surfaces: jax.Array) -> jax.Array:
    return self._single_hot_to_embeddings(surfaces, self.config.product_surface_vocab_size,
                                          self.config.emb_size,
                                          "product_surface_embedding_table")

  @hk.name_like("__call__")
  def user_history_inputs(self, batch: RecsysBatch,
                          emb: RecsysEmbeddings) -> tuple[jax.Array, jax.Array]:
    """[user | history] embeddings [B, 1+S, D] (fprop dtype) and validity mask [B, 1+S]."""
    cfg = self.config
    hc = cfg.hash_config
    dt = self.fprop_dtype
    user, user_mask = block_user_reduce(batch.user_hashes, emb.user_embeddings.astype(dt),
                                        hc.num_user_hashes, cfg.emb_size)
    history, history_mask = block_history_reduce(
        batch.history_post_hashes, emb.history_post_embeddings.astype(dt),
        emb.history_author_embeddings.astype(dt),
        self._product_surface(batch.history_product_surface),
        self._get_action_embeddings(batch.history_actions), hc.num_item_hashes,
        hc.num_author_hashes, normalize=cfg.normalize_before_projection)
    return (jnp.concatenate([user, history], axis=1).astype(dt),
            jnp.concatenate([user_mask, history_mask], axis=1))

  @hk.name_like("__call__")
  def candidate_inputs(self, batch: RecsysBatch,
                       emb: RecsysEmbeddings) -> tuple[jax.Array, jax.Array]:
    """Candidate embeddings [B, C, D] (fprop dtype) and validity mask [B, C]."""
    cfg = self.config
    hc = cfg.hash_config
    dt = self.fprop_dtype
    candidates, mask = block_candidate_reduce(
        batch.candidate_post_hashes, emb.candidate_post_embeddings.astype(dt),
        emb.candidate_author_embeddings.astype(dt),
        self._product_surface(batch.candidate_product_surface), hc.num_item_hashes,
        hc.num_author_hashes, normalize=cfg.normalize_before_projection)
    return candidates.astype(dt), mask


@dataclasses.dataclass
class PhoenixModelConfig:
  """Ranking model configuration (release fields and defaults, plus the improvement flag).

  normalize_before_projection: LayerNorm on the concatenated history / candidate vectors
    before projection (default on). Off = the release's parameter tree and outputs.
  """
  model: TransformerConfig
  emb_size: int
  num_actions: int
  history_seq_len: int = 128
  candidate_seq_len: int = 32
  name: Optional[str] = None
  fprop_dtype: Any = jnp.bfloat16
  hash_config: Optional[HashConfig] = None
  product_surface_vocab_size: int = 16
  normalize_before_projection: bool = True

  def __post_init__(self):
    if self.hash_config is None:
      self.hash_config = HashConfig()

  def make(self) -> "PhoenixModel":
    return PhoenixModel(model=self.model.make(), config=self, fprop_dtype=self.fprop_dtype,
                        name=self.name)


class PhoenixModel(RecsysInputs):
  """Ranking model: logits [B, C, A] from a batch and its hash embeddings."""

  def build_inputs(self, batch: RecsysBatch,
                   recsys_embeddings: RecsysEmbeddings) -> tuple[jax.Array, jax.Array, int]:
    """[user | history | candidates] embeddings [B, T, D], padding mask [B, T], offset."""
    prefix, prefix_mask = self.user_history_inputs(batch, recsys_embeddings)
    candidates, candidate_mask = self.candidate_inputs(batch, recsys_embeddings)
    return (jnp.concatenate([prefix, candidates], axis=1),
            jnp.concatenate([prefix_mask, candidate_mask], axis=1), prefix.shape[1])

  @hk.name_like("__call__")
  def _logits(self, candidate_outputs: jax.Array) -> RecsysModelOutput:
    """Final RMSNorm and `unembeddings` [D, A] of transformer outputs [B, C, D]."""
    h = rms_norm(candidate_outputs, self.model.config.zero_init, "rms_norm")
    unembed = hk.get_parameter(
        "unembeddings", [self.config.emb_size, self.config.num_actions], jnp.float32,
        init=hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal"))
    return RecsysModelOutput(logits=jnp.dot(h, unembed.astype(h.dtype)))

  def __call__(self, batch: RecsysBatch,
               recsys_embeddings: RecsysEmbeddings) -> RecsysModelOutput:
    embeddings, padding_mask, offset = self.build_inputs(batch, recsys_embeddings)
    out = self.model(embeddings, padding_mask, candidate_start_offset=offset)
    return self._logits(out.embeddings[:, offset:, :])

  def encode_prefix(self, batch: RecsysBatch,
                    recsys_embeddings: RecsysEmbeddings) -> tuple[KVMemory, ...]:
    """Per-layer keys/values of [user | history] (candidate fields of `batch` unused)."""
    prefix, prefix_mask = self.user_history_inputs(batch, recsys_embeddings)
    return self.model(prefix, prefix_mask, candidate_start_offset=None).memory

  def score_candidates(self, memory: tuple[KVMemory, ...], batch: RecsysBatch,
                       recsys_embeddings: RecsysEmbeddings) -> RecsysModelOutput:
    """Logits of the batch's candidates against a prefix from `encode_prefix` (equal to
    `__call__` up to float rounding; user/history fields of `batch` unused)."""
    candidates, candidate_mask = self.candidate_inputs(batch, recsys_embeddings)
    return self._logits(self.model.extend(candidates, candidate_mask, memory).embeddings)


def create_example_batch(batch_size: int, emb_size: int, history_len: int,
                         num_candidates: int, num_actions: int, num_user_hashes: int = 2,
                         num_item_hashes: int = 2, num_author_hashes: int = 2,
                         product_surface_vocab_size: int = 16, num_hash_buckets: int = 100_000,
                         seed: int = 0) -> tuple[RecsysBatch, RecsysEmbeddings]:
  """Random valid (RecsysBatch, RecsysEmbeddings) as numpy arrays: hashes in
  [1, num_hash_buckets), multi-hot actions with at least one bit per history item, float32
  standard-normal embeddings."""
  rng = np.random.default_rng(seed)
  hashes = lambda *shape: rng.integers(1, num_hash_buckets, shape).astype(np.int32)
  surfaces = lambda *shape: rng.integers(0, product_surface_vocab_size, shape).astype(np.int32)
  b, s, c = batch_size, history_len, num_candidates
  actions = (rng.random((b, s, num_actions)) < 0.2).astype(np.float32)
  actions[np.arange(b)[:, None], np.arange(s)[None, :], rng.integers(0, num_actions, (b, s))] = 1
  batch = RecsysBatch(
      user_hashes=hashes(b, num_user_hashes), history_post_hashes=hashes(b, s, num_item_hashes),
      history_author_hashes=hashes(b, s, num_author_hashes), history_actions=actions,
      history_product_surface=surfaces(b, s),
      candidate_post_hashes=hashes(b, c, num_item_hashes),
      candidate_author_hashes=hashes(b, c, num_author_hashes),
      candidate_product_surface=surfaces(b, c))
  normal = lambda *shape: rng.standard_normal(shape + (emb_size,)).astype(np.float32)
  embeddings = RecsysEmbeddings(
      user_embeddings=normal(b, num_user_hashes),
      history_post_embeddings=normal(b, s, num_item_hashes),
      candidate_post_embeddings=normal(b, c, num_item_hashes),
      history_author_embeddings=normal(b, s, num_author_hashes),
      candidate_author_embeddings=normal(b, c, num_author_hashes))
  return batch, embeddings
