"""Training and evaluation of the two Phoenix models on interaction data.

Retrieval (protocol B, leave-one-out next item, full ranking):
  * the user tower (`PhoenixRetrievalModel`, causal transformer over [user | history],
    masked mean, L2 norm) is trained on every prefix of a window at once: the per-position
    transformer outputs are pooled with a cumulative masked mean (`prefix_pool`), which for a
    causal transformer equals `build_user_representation` of each prefix on its own (tested);
  * the candidate tower (`build_candidate_representation`) embeds target items and negatives;
  * loss: full softmax over the whole corpus (small corpora) or sampled softmax with
    in-batch + sampled negatives and the log-Q correction; learnable temperature;
  * evaluation: `RetrievalScorer` (the `recsys_core.scoring.Scorer` interface) scores all
    items with `build_user_representation` of the full history, and
    `recsys_core.evaluation.evaluate_leave_one_out` ranks them with seen items excluded.

Ranking (protocol C): `PhoenixModel` logits [B, C, A] on candidate lists (true next
engagements + sampled negatives), masked multi-label sigmoid cross-entropy; evaluation per
head (AUC, RCE, calibration) and NDCG of the weighted score per user (`ranking_metrics`).

Parameters are one pytree {"phoenix": <haiku params>, "loss": {"log_temperature": []}}
(retrieval) or {"phoenix": <haiku params>} (ranking); "phoenix" loads into the runners.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import re
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix import batching
from phoenix import hashing
from phoenix import losses
from phoenix.grok import TransformerConfig
from phoenix.recsys_model import HashConfig
from phoenix.recsys_model import PhoenixModelConfig
from recsys_core import metrics as metrics_lib
from recsys_core.data.synthetic import synthetic_sequences  # noqa: F401 (re-export)
from recsys_core.data.types import Interactions

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------
# Hash embeddings (phoenix.hashing) behind two small functions.

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
  """Ids -> hashes with phoenix.hashing (each id kind with its own table and salts)."""
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


# ----------------------------------------------------------------------------------------
# Generic helpers.

def prefix_pool(outputs: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Cumulative masked mean, L2-normalised: [B, T, D], [B, T] -> [B, T, D], [B, T] counts.

  Row t is the normalised mean of the valid outputs at positions 0..t: for a causal
  transformer, the user representation of the prefix ending at t.
  """
  m = mask.astype(jnp.float32)[..., None]
  csum = jnp.cumsum(outputs.astype(jnp.float32) * m, axis=1)
  count = jnp.cumsum(m, axis=1)
  mean = csum / jnp.maximum(count, 1.0)
  norm = jnp.sqrt(jnp.maximum(jnp.sum(mean * mean, axis=-1, keepdims=True), 1e-12))
  return mean / norm, count[..., 0]


def pad_rows(x: np.ndarray, rows: int, value=0) -> np.ndarray:
  """Pads axis 0 of x to `rows` with `value` (keeps jitted shapes fixed)."""
  if len(x) == rows:
    return x
  pad = np.full((rows - len(x),) + x.shape[1:], value, dtype=x.dtype)
  return np.concatenate([x, pad], axis=0)


def pad_batch(batch, rows: int):
  return type(batch)(*[pad_rows(np.asarray(f), rows) for f in batch])


def pack_positions(targets: np.ndarray, size: int, rng: np.random.Generator) -> dict:
  """The valid slots (targets >= 0) of targets [B, S], packed into `size` slots.

  Returns {"packed": [size] int32 flat indices into B*S (ascending; 0 in unused slots),
  "packed_valid": [size] bool, "positions_dropped": [] int32}. With more than `size` valid
  slots a uniform random `size` of them is kept and the rest counted as dropped.
  """
  valid = np.flatnonzero(np.asarray(targets).reshape(-1) >= 0)
  dropped = max(len(valid) - size, 0)
  if dropped:
    valid = np.sort(rng.choice(valid, size=size, replace=False))
  packed = np.zeros(size, np.int32)
  packed[:len(valid)] = valid
  return {"packed": packed, "packed_valid": np.arange(size) < len(valid),
          "positions_dropped": np.int32(dropped)}


def item_popularity(data: batching.SequenceData, ends: Optional[np.ndarray] = None
                    ) -> np.ndarray:
  """[I] interaction counts in the users' training sequences."""
  counts = np.zeros(data.num_items, np.float64)
  for u, seq in enumerate(data.sequences):
    s = seq if ends is None else seq[:int(ends[u])]
    np.add.at(counts, s, 1.0)
  return counts


# ----------------------------------------------------------------------------------------
# Retrieval.

@dataclasses.dataclass(frozen=True)
class TransformerFields:
  """The model fields shared by RetrievalConfig and RankingConfig (flat, JSON-friendly).

  num_layers=0 is the no-transformer ablation (reduce blocks only).
  """
  emb: EmbeddingConfig = EmbeddingConfig()
  num_layers: int = 2
  num_q_heads: int = 2
  num_kv_heads: int = 2
  key_size: int = 32
  widening_factor: float = 4.0
  learnable_attention_temperature: bool = False
  normalize_before_projection: bool = True
  fprop_dtype: str = "float32"

  @classmethod
  def from_dict(cls, fields: Mapping[str, Any], **overrides):
    """The config from flat fields with `emb` as a dict (a config file's or a result
    file's `model`); keyword overrides win."""
    m = dict(fields, **overrides)
    m["emb"] = EmbeddingConfig(**dict(m["emb"]))
    return cls(**m)

  def transformer_config(self) -> TransformerConfig:
    return TransformerConfig(emb_size=self.emb.emb_size, key_size=self.key_size,
                             num_q_heads=self.num_q_heads, num_kv_heads=self.num_kv_heads,
                             num_layers=self.num_layers, widening_factor=self.widening_factor,
                             learnable_temperature=self.learnable_attention_temperature)


@dataclasses.dataclass(frozen=True)
class RetrievalConfig(TransformerFields):
  """Everything that defines a retrieval model and its training: the TransformerFields, then
  data, loss and read-out fields."""
  # Data.
  history_len: int = 200
  user_mode: str = "shared"
  window: str = "last"
  # Loss.
  loss: str = "full"                   # "full" | "sampled"
  num_negatives: int = 1024            # sampled: negatives drawn per step
  negative_sampler: str = "uniform"    # "uniform" | "popularity" (count ** alpha)
  sampler_alpha: float = 0.75
  num_in_batch: int = 256              # sampled: in-batch negatives (other rows' targets)
  log_q: bool = True
  init_temperature: float = 0.05
  learn_temperature: bool = True
  loss_positions: int = 0              # 0: every prefix; k: k random valid positions per row
  # 0: the loss is computed over all B*S (row, position) slots, padding included. M > 0:
  # the batch's valid target positions are packed into M slots first (a random M of them
  # when there are more; the count dropped is logged as `positions_dropped`). Same loss
  # when nothing is dropped, at M/(B*S) of the softmax cost: short sequences (Amazon, mean
  # length 9 in a window of 50) leave most slots empty.
  packed_positions: int = 0
  # User read-out: "mean" = the release's build_user_representation (masked mean over
  # [user | history]); "last" = the output at the last history position (SASRec-style).
  pooling: str = "mean"
  # Training only: dropout on the user tower's input embeddings (user and history hash
  # embeddings), the regulariser SASRec uses on ML-1M. 0 = off (the release has none).
  embedding_dropout: float = 0.0
  # Training only: dropout on every transformer block's attention and feed-forward outputs
  # (TransformerConfig.dropout_rate), SASRec's other dropout site. 0 = off.
  block_dropout: float = 0.0
  # Full softmax only: drop the items already in a loss row's history prefix (positions
  # 0..s for the target at s) from that row's softmax, except the target itself. The
  # evaluation ranks with seen items excluded, so pushing them down is wasted effort, and
  # it pushes down their neighbours (same brand or category) with them. False = the
  # plain softmax over every item.
  exclude_seen: bool = False

  def model_config(self):
    from phoenix.recsys_retrieval_model import (  # pylint: disable=g-import-not-at-top
        PhoenixRetrievalModelConfig)
    return PhoenixRetrievalModelConfig(
        model=dataclasses.replace(self.transformer_config(), dropout_rate=self.block_dropout),
        emb_size=self.emb.emb_size, history_seq_len=self.history_len,
        candidate_seq_len=1, fprop_dtype=jnp.dtype(self.fprop_dtype),
        hash_config=self.emb.hash_config(),
        normalize_before_projection=self.normalize_before_projection, pooling=self.pooling)

  def batching_config(self) -> batching.BatchingConfig:
    return batching.BatchingConfig(history_len=self.history_len, user_mode=self.user_mode,
                                   pad_side="right")

  def __post_init__(self):
    if self.loss_positions and self.packed_positions:
      raise ValueError("loss_positions and packed_positions are alternatives; set one "
                       f"(got {self.loss_positions} and {self.packed_positions})")
    if self.packed_positions < 0:
      raise ValueError(f"packed_positions must be >= 0, got {self.packed_positions}")
    if self.exclude_seen and self.loss != "full":
      raise ValueError(f"exclude_seen needs loss='full', got loss={self.loss!r}")


def _retrieval_model(cfg: RetrievalConfig):
  return cfg.model_config().make()


def prefix_user_representations(model, batch, emb, pooling: Optional[str] = None,
                                is_training: bool = False) -> tuple[jax.Array, jax.Array]:
  """User representation of every prefix of the history: [B, S, D] (L2-normalised), [B, S].

  pooling="mean": row s is `build_user_representation` of the batch truncated to history
  positions 0..s (right-padded histories; the user token is included in every prefix).
  pooling="last": row s is the L2-normalised transformer output at history position s (the
  SASRec read-out; `build_user_representation` with pooling="last" of the truncated batch).
  Valid where the history position s holds an item. pooling=None: the model's own.
  is_training: the transformer's block dropout on (needs an rng).
  """
  pooling = pooling or model.config.pooling
  embeddings, mask = model.user_history_inputs(batch, emb)
  outputs = model.model(embeddings, mask, candidate_start_offset=None,
                        is_training=is_training).embeddings
  if pooling == "mean":
    pooled, _ = prefix_pool(outputs, mask)
  elif pooling == "last":
    pooled = outputs.astype(jnp.float32)
    pooled = pooled / jnp.sqrt(jnp.maximum(jnp.sum(pooled * pooled, -1, keepdims=True), 1e-12))
  else:
    raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
  return pooled[:, 1:], mask[:, 1:]


class RetrievalFns:
  """The haiku-transformed functions of a retrieval model (pure; params passed in)."""

  def __init__(self, cfg: RetrievalConfig):
    self.cfg = cfg
    ecfg = cfg.emb

    def prefix_users(batch, is_training: bool = False):
      model = _retrieval_model(cfg)
      emb = lookup_embeddings(batch, ecfg)
      if is_training and cfg.embedding_dropout > 0:
        drop = lambda x: hk.dropout(hk.next_rng_key(), cfg.embedding_dropout, x)
        emb = dataclasses.replace(
            emb, user_embeddings=drop(emb.user_embeddings),
            history_post_embeddings=drop(emb.history_post_embeddings),
            history_author_embeddings=drop(emb.history_author_embeddings))
      return prefix_user_representations(model, batch, emb, is_training=is_training)

    def users(batch):
      model = _retrieval_model(cfg)
      return model.build_user_representation(batch, lookup_embeddings(batch, ecfg))[0]

    def candidates(batch):
      model = _retrieval_model(cfg)
      return model.build_candidate_representation(batch, lookup_embeddings(batch, ecfg))

    def init_all(batch):
      model = _retrieval_model(cfg)
      emb = lookup_embeddings(batch, ecfg)
      u = prefix_user_representations(model, batch, emb)
      c = model.build_candidate_representation(batch, emb)
      model.build_user_representation(batch, emb)
      return u, c

    self._init = hk.transform(init_all)
    self.prefix_users = hk.without_apply_rng(hk.transform(prefix_users)).apply
    # prefix_users_train(params, rng, batch): with embedding and block dropout when configured.
    self.prefix_users_train = functools.partial(hk.transform(prefix_users).apply,
                                                is_training=True)
    self.users = hk.without_apply_rng(hk.transform(users)).apply
    self.candidates = hk.without_apply_rng(hk.transform(candidates)).apply

  def init(self, rng: jax.Array, batch) -> dict:
    model_params = self._init.init(rng, batch)
    return {"phoenix": model_params,
            "loss": {"log_temperature": jnp.asarray(math.log(self.cfg.init_temperature),
                                                    jnp.float32)}}

  def temperature(self, params) -> jax.Array:
    log_t = params["loss"]["log_temperature"]
    if not self.cfg.learn_temperature:
      log_t = jax.lax.stop_gradient(log_t)
    return losses.temperature_from_log(log_t)


class RetrievalTask:
  """Data, featurisation, batches and the loss of retrieval training on one split.

  Attributes:
    data: the users' full sequences (SequenceData); training uses s[:train_ends[u]].
    train_ends: [U] end of each user's training part (len - 2 under leave-one-out).
  """

  def __init__(self, cfg: RetrievalConfig, data: batching.SequenceData,
               train_ends: np.ndarray, item_authors: Optional[np.ndarray], batch_size: int,
               seed: int = 0):
    self.cfg = cfg
    self.data = data
    self.train_ends = np.asarray(train_ends, np.int64)
    self.bcfg = cfg.batching_config()
    self.featurizer = make_featurizer(cfg.emb, item_authors)
    self.fns = RetrievalFns(cfg)
    self.batch_size = batch_size
    self.seed = seed
    self.num_items = data.num_items
    # Users with at least one training target.
    self.train_users = np.flatnonzero(self.train_ends >= 2)
    counts = item_popularity(data, self.train_ends)
    self.target_probs = counts / max(counts.sum(), 1.0)
    if cfg.negative_sampler == "uniform":
      sampler = np.ones(self.num_items)
    elif cfg.negative_sampler == "popularity":
      sampler = np.power(counts + 1.0, cfg.sampler_alpha)
    else:
      raise ValueError(f"negative_sampler must be 'uniform' or 'popularity', "
                       f"got {cfg.negative_sampler!r}")
    self.sampler_probs = sampler / sampler.sum()
    num_in_batch = cfg.num_in_batch if cfg.loss == "sampled" else 0
    self.log_q = losses.mixture_log_q(num_in_batch, self.target_probs, cfg.num_negatives,
                                      self.sampler_probs)
    if not cfg.log_q:
      self.log_q = np.zeros_like(self.log_q)
    all_items = np.arange(self.num_items, dtype=np.int32)
    self.corpus_batch = jax.tree.map(jnp.asarray, self.featurizer.candidates_only(all_items))

  # -- batches ---------------------------------------------------------------------------
  def make_batch(self, users: np.ndarray, rng: np.random.Generator) -> dict:
    cfg = self.cfg
    ex = batching.retrieval_training_batch(self.data, users, self.bcfg, rng, cfg.window,
                                           ends=self.train_ends[users])
    targets = ex.targets
    b, s = targets.shape
    ids = ex.ids._replace(candidate_items=targets,
                          candidate_surface=np.where(targets >= 0, self.bcfg.product_surface,
                                                     0).astype(np.int32))
    out = {"batch": self.featurizer(ids)}
    if cfg.loss_positions and cfg.loss_positions < s:
      k = cfg.loss_positions
      pos = np.zeros((b, k), np.int32)
      for j in range(b):
        valid = np.flatnonzero(targets[j] >= 0)
        pos[j] = rng.choice(valid, size=k, replace=len(valid) < k)
      # The same flat-index form as packing: row j's positions are slots j*S + pos[j].
      out.update(packed=(np.arange(b)[:, None] * s + pos).reshape(-1).astype(np.int32),
                 packed_valid=np.ones(b * k, bool), positions_dropped=np.int32(0))
    if cfg.packed_positions:
      out.update(pack_positions(targets, cfg.packed_positions, rng))
    if cfg.loss == "sampled":
      out["negatives"] = rng.choice(self.num_items, size=cfg.num_negatives,
                                    p=self.sampler_probs).astype(np.int32)
      flat = targets.reshape(-1)
      valid = np.flatnonzero(flat >= 0)
      out["in_batch"] = rng.choice(valid, size=cfg.num_in_batch,
                                   replace=len(valid) < cfg.num_in_batch).astype(np.int32)
    if cfg.exclude_seen:
      out["history_items"] = ex.ids.history_items                  # [B,S] -1 = padding
    out["targets"] = targets
    return out

  def batch_fn(self, batcher) -> Callable[[int], dict]:
    """batch_fn(step) for recsys_core.train.fit: deterministic in (seed, step)."""
    def fn(step: int) -> dict:
      idx = batcher.indices(step)
      rng = np.random.default_rng([self.seed, 7, step])
      return self.make_batch(self.train_users[idx], rng)
    return fn

  def example_batch(self) -> dict:
    return self.make_batch(self.train_users[:2], np.random.default_rng(0))

  # -- loss -------------------------------------------------------------------------------
  def loss_fn(self, params, rng, batch: dict):
    cfg = self.cfg
    fns = self.fns
    p = params["phoenix"]
    temp = fns.temperature(params)
    if cfg.embedding_dropout > 0 or cfg.block_dropout > 0:
      users, valid = fns.prefix_users_train(p, rng, batch["batch"])   # [B,S,D], [B,S]
    else:
      users, valid = fns.prefix_users(p, batch["batch"])          # [B,S,D], [B,S]
    targets = batch["targets"]                                  # [B,S]
    valid = valid & (targets >= 0)
    d = users.shape[-1]
    flat_users = users.reshape(-1, d)                           # [B*S, D]
    flat_targets = jnp.maximum(targets.reshape(-1), 0)
    flat_valid = valid.reshape(-1)
    extra = {}
    slots = jnp.arange(flat_targets.shape[0])                   # [M] into the B*S slots
    if "packed" in batch:   # packed_positions or loss_positions: M of the B*S slots
      slots = batch["packed"]
      flat_users = flat_users[slots]                            # [M, D]
      flat_targets = flat_targets[slots]
      flat_valid = flat_valid[slots] & batch["packed_valid"]
      extra["positions_dropped"] = batch["positions_dropped"]
    log_q = jnp.asarray(self.log_q)
    if cfg.loss == "full":
      corpus, _ = fns.candidates(p, self.corpus_batch)          # [1,I,D]
      logits = flat_users @ corpus[0].astype(jnp.float32).T / temp
      if cfg.log_q:
        logits = logits - log_q[None, :]
      exclude = (losses.prefix_seen_mask(batch["history_items"], slots, self.num_items)
                 if cfg.exclude_seen else None)                 # [M,I]
      loss = losses.full_softmax_loss(logits, flat_targets, flat_valid, exclude=exclude)
    elif cfg.loss == "sampled":
      all_pos = fns.candidates(p, batch["batch"])[0].reshape(-1, d)  # [B*S, D] targets
      all_targets = jnp.maximum(batch["targets"].reshape(-1), 0)
      pos_reps = all_pos[batch["packed"]] if "packed" in batch else all_pos
      in_batch = batch["in_batch"]
      neg_ids = jnp.concatenate([all_targets[in_batch], batch["negatives"]])
      neg_reps = jnp.concatenate([all_pos[in_batch], self._item_reps(p, batch["negatives"])])
      neg_valid = jnp.concatenate([batch["targets"].reshape(-1)[in_batch] >= 0,
                                   jnp.ones(batch["negatives"].shape, bool)])
      loss = losses.sampled_softmax_loss(
          flat_users, pos_reps, flat_targets, neg_reps, neg_ids,
          log_q[flat_targets], log_q[neg_ids], temp, mask=flat_valid, negatives_mask=neg_valid)
    else:
      raise ValueError(f"loss must be 'full' or 'sampled', got {cfg.loss!r}")
    return loss, {"temperature": temp, "positions": jnp.sum(flat_valid), **extra}

  def _item_reps(self, p, items: jax.Array) -> jax.Array:
    """[M, D] candidate representations of item indices (from the precomputed hashes)."""
    cb = self.corpus_batch
    sub = cb._replace(candidate_post_hashes=cb.candidate_post_hashes[:, items],
                      candidate_author_hashes=cb.candidate_author_hashes[:, items],
                      candidate_product_surface=cb.candidate_product_surface[:, items])
    return self.fns.candidates(p, sub)[0][0]

  # -- evaluation -------------------------------------------------------------------------
  def scorer(self, params, batch_size: int = 256) -> "RetrievalScorer":
    return RetrievalScorer(self, params, batch_size)


class RetrievalScorer:
  """`recsys_core.scoring.Scorer` over a trained retrieval model: scores = <user, item>.

  The user representation is `build_user_representation` of the input history (the most
  recent `history_len` items); items are the candidate tower over every item.
  """

  name = "phoenix_retrieval"

  def __init__(self, task: RetrievalTask, params, batch_size: int = 256):
    self.task = task
    self.params = params
    self.batch_size = batch_size
    p = params["phoenix"]
    self._users = jax.jit(task.fns.users)
    corpus, _ = jax.jit(task.fns.candidates)(p, task.corpus_batch)
    self.corpus = np.asarray(corpus[0], np.float32)               # [I, D]

  def fit(self, train: Interactions) -> "RetrievalScorer":
    del train
    return self

  def user_representations(self, data: batching.SequenceData) -> np.ndarray:
    out = []
    p = self.params["phoenix"]
    for start in range(0, data.num_users, self.batch_size):
      users = np.arange(start, min(start + self.batch_size, data.num_users))
      ids = batching.history_batch(data, users, self.task.bcfg)
      batch = pad_batch(self.task.featurizer(ids), self.batch_size)
      reps = np.asarray(self._users(p, batch), np.float32)[:len(users)]
      out.append(reps)
    return np.concatenate(out) if out else np.zeros((0, self.corpus.shape[1]), np.float32)

  def score(self, inputs: Interactions) -> np.ndarray:
    data = batching.SequenceData.from_interactions(inputs)
    return self.user_representations(data) @ self.corpus.T


# ----------------------------------------------------------------------------------------
# Ranking.

DEFAULT_SCORE_WEIGHTS = {"favorite": 1.0, "click": 0.5, "not_interested": -1.0}


@dataclasses.dataclass(frozen=True)
class RankingConfig(TransformerFields):
  """A ranking model (the TransformerFields), its data rules and training."""
  history_len: int = 64
  user_mode: str = "id"
  high_threshold: Optional[float] = 4.0
  low_threshold: Optional[float] = 2.0
  num_positives: int = 8                # true next engagements per list
  num_negatives: int = 24               # sampled negatives per list
  negative_sampler: str = "uniform"     # "uniform" | "popularity"
  score_weights: tuple = tuple(DEFAULT_SCORE_WEIGHTS.items())

  @classmethod
  def from_dict(cls, fields: Mapping[str, Any], **overrides):
    m = dict(fields, **overrides)
    m["score_weights"] = tuple(tuple(w) for w in m["score_weights"])   # JSON lists
    return super().from_dict(m)

  def rules(self) -> batching.ActionRules:
    return batching.ActionRules(self.high_threshold, self.low_threshold)

  def batching_config(self) -> batching.BatchingConfig:
    return batching.BatchingConfig(history_len=self.history_len, rules=self.rules(),
                                   user_mode=self.user_mode, pad_side="left")

  def model_config(self) -> PhoenixModelConfig:
    return PhoenixModelConfig(model=self.transformer_config(), emb_size=self.emb.emb_size,
                              num_actions=batching.NUM_ACTIONS,
                              history_seq_len=self.history_len,
                              candidate_seq_len=self.num_positives + self.num_negatives,
                              fprop_dtype=jnp.dtype(self.fprop_dtype),
                              hash_config=self.emb.hash_config(),
                              normalize_before_projection=self.normalize_before_projection)

  def weight_vector(self) -> np.ndarray:
    w = np.zeros(batching.NUM_ACTIONS, np.float32)
    for name, value in self.score_weights:
      w[batching.ACTIONS.index(name)] = value
    return w


@dataclasses.dataclass
class RankingSplit:
  """Per-user time split for ranking: h = num_positives.

  Test list: history s[:n-h], positives s[n-h:]. Validation list: history s[:n-2h],
  positives s[n-2h:n-h]. Training lists: random cuts t in [1, n-2h) of s[:n-2h], positives
  the next (up to h) items inside s[:n-2h]. Negatives never include an item of the part of
  the sequence the list may look at (training: s[:n-2h]; validation: s[:n-h]; test: s).
  Users with n < 2h + 2 are left out.
  """
  train: batching.SequenceData
  val: batching.SequenceData
  test: batching.SequenceData
  users: np.ndarray

  @classmethod
  def make(cls, data: batching.SequenceData, h: int) -> "RankingSplit":
    lengths = data.lengths()
    users = np.flatnonzero(lengths >= 2 * h + 2)

    def cut(delta):
      seqs = [data.sequences[u][:len(data.sequences[u]) - delta] for u in users]
      rats = None if data.ratings is None else [
          data.ratings[u][:len(data.ratings[u]) - delta] for u in users]
      return batching.SequenceData(seqs, rats, data.user_ids[users], data.num_items)

    return cls(train=cut(2 * h), val=cut(h), test=cut(0), users=users)


def shuffle_unordered(data: batching.SequenceData, seed: int) -> batching.SequenceData:
  """A per-user random order, for data without time (anime): documented, not hidden."""
  rng = np.random.default_rng(seed)
  seqs, rats = [], None if data.ratings is None else []
  for u, seq in enumerate(data.sequences):
    perm = rng.permutation(len(seq))
    seqs.append(seq[perm])
    if rats is not None:
      rats.append(data.ratings[u][perm])
  return batching.SequenceData(seqs, rats, data.user_ids, data.num_items)


class RankingTask:
  """Ranking data, batches, loss, metrics and the popularity-prior baseline."""

  def __init__(self, cfg: RankingConfig, data: batching.SequenceData,
               item_authors: Optional[np.ndarray], batch_size: int, seed: int = 0):
    self.cfg = cfg
    self.bcfg = cfg.batching_config()
    self.split = RankingSplit.make(data, cfg.num_positives)
    self.num_items = data.num_items
    self.featurizer = make_featurizer(cfg.emb, item_authors)
    self.batch_size = batch_size
    self.seed = seed
    counts = item_popularity(self.split.train)
    if cfg.negative_sampler == "uniform":
      self.negative_probs = None
    elif cfg.negative_sampler == "popularity":
      self.negative_probs = (counts + 1.0) / (counts + 1.0).sum()
    else:
      raise ValueError(f"negative_sampler must be 'uniform' or 'popularity', "
                       f"got {cfg.negative_sampler!r}")
    n_train = self.split.train.lengths()
    self.train_rows = np.flatnonzero(n_train >= 2)
    self.heads = cfg.rules().defined_heads(data.ratings is not None)
    self.val_lists = self._fixed_lists(self.split.val, seed + 101)
    self.test_lists = self._fixed_lists(self.split.test, seed + 202)
    self.weights = cfg.weight_vector()

    def forward(batch):
      model = cfg.model_config().make()
      return model(batch, lookup_embeddings(batch, cfg.emb)).logits

    self._transformed = hk.transform(forward)
    self.logits = hk.without_apply_rng(self._transformed).apply

  def _fixed_lists(self, part: batching.SequenceData, seed: int) -> batching.RankingExample:
    h = self.cfg.num_positives
    cuts = part.lengths() - h
    rng = np.random.default_rng(seed)
    return batching.ranking_batch(part, np.arange(part.num_users), cuts, self.bcfg, h,
                                  self.cfg.num_negatives, rng, self.negative_probs)

  def make_batch(self, rows: np.ndarray, rng: np.random.Generator) -> dict:
    part = self.split.train
    n = part.lengths()[rows]
    cuts = np.array([rng.integers(1, m) for m in n])
    ex = batching.ranking_batch(part, rows, cuts, self.bcfg, self.cfg.num_positives,
                                self.cfg.num_negatives, rng, self.negative_probs)
    return {"batch": self.featurizer(ex.ids), "labels": ex.labels, "mask": ex.mask}

  def batch_fn(self, batcher) -> Callable[[int], dict]:
    def fn(step: int) -> dict:
      idx = batcher.indices(step)
      return self.make_batch(self.train_rows[idx], np.random.default_rng([self.seed, 11, step]))
    return fn

  def init(self, rng: jax.Array) -> dict:
    batch = self.make_batch(self.train_rows[:2], np.random.default_rng(0))["batch"]
    return {"phoenix": self._transformed.init(rng, batch)}

  def loss_fn(self, params, rng, batch: dict):
    del rng
    logits = self.logits(params["phoenix"], batch["batch"])
    loss, per_head = losses.multi_label_sigmoid_loss(logits, batch["labels"], batch["mask"],
                                                     per_head=True)
    extra = {f"loss/{batching.ACTIONS[a]}": per_head[a] for a in np.flatnonzero(self.heads)}
    return loss, extra

  # -- evaluation -------------------------------------------------------------------------
  def predict(self, params, lists: batching.RankingExample) -> np.ndarray:
    """[B, C, A] probabilities on fixed lists."""
    fn = jax.jit(self.logits)
    out = []
    n = len(lists.labels)
    bs = self.batch_size
    for start in range(0, n, bs):
      rows = slice(start, min(start + bs, n))
      ids = batching.IdBatch(*[np.asarray(f)[rows] for f in lists.ids])
      batch = pad_batch(self.featurizer(ids), bs)
      logits = np.asarray(fn(params["phoenix"], batch), np.float32)[:rows.stop - rows.start]
      out.append(1.0 / (1.0 + np.exp(-logits)))
    return np.concatenate(out)

  def evaluate(self, probs: np.ndarray, lists: batching.RankingExample) -> dict:
    return ranking_metrics(probs, lists, self.heads, self.weights)

  def popularity_prior(self, passes: int = 3, smoothing: float = 10.0):
    """[I, A] per-item label rates on training lists (smoothed to the head's base rate)."""
    rng = np.random.default_rng(self.seed + 303)
    num = np.zeros((self.num_items, batching.NUM_ACTIONS))
    den = np.zeros((self.num_items, batching.NUM_ACTIONS))
    for _ in range(passes):
      for start in range(0, len(self.train_rows), 512):
        rows = self.train_rows[start:start + 512]
        part = self.split.train
        cuts = np.array([rng.integers(1, m) for m in part.lengths()[rows]])
        ex = batching.ranking_batch(part, rows, cuts, self.bcfg, self.cfg.num_positives,
                                    self.cfg.num_negatives, rng, self.negative_probs)
        items = ex.ids.candidate_items.reshape(-1)
        ok = items >= 0
        np.add.at(num, items[ok], (ex.labels * ex.mask).reshape(-1, batching.NUM_ACTIONS)[ok])
        np.add.at(den, items[ok], ex.mask.reshape(-1, batching.NUM_ACTIONS)[ok])
    base = num.sum(0) / np.maximum(den.sum(0), 1.0)
    return (num + smoothing * base) / (den + smoothing)

  def prior_probs(self, prior: np.ndarray, lists: batching.RankingExample) -> np.ndarray:
    items = lists.ids.candidate_items
    return prior[np.maximum(items, 0)] * (items >= 0)[..., None]


def ranking_metrics(probs: np.ndarray, lists: batching.RankingExample, heads: np.ndarray,
                    weights: np.ndarray) -> dict:
  """Per head: AUC, RCE, calibration (Σp/Σy) over the defined entries; NDCG of the weighted
  score Σ_a w_a p_a over each user's list (graded relevance of `ranking_batch`)."""
  out: dict[str, float] = {}
  for a in np.flatnonzero(heads):
    m = lists.mask[..., a] > 0
    y = lists.labels[..., a][m]
    p = np.clip(probs[..., a][m], 1e-7, 1 - 1e-7)
    name = batching.ACTIONS[a]
    out[f"base_rate/{name}"] = float(y.mean()) if len(y) else float("nan")
    if 0 < y.sum() < len(y):
      out[f"auc/{name}"] = float(metrics_lib.auc(y, p))
      out[f"rce/{name}"] = float(metrics_lib.rce(y, p))
      out[f"calibration/{name}"] = float(metrics_lib.calibration(y, p))
  score = (probs * weights).sum(-1)
  out["ndcg"] = float(np.nanmean(list_ndcg(score, lists.relevance,
                                           lists.ids.candidate_items >= 0)))
  return out


def list_ndcg(scores: np.ndarray, relevance: np.ndarray, valid: np.ndarray) -> np.ndarray:
  """[B] NDCG over each list (graded gains 2^rel - 1, log2 discounts); NaN without gains."""
  scores = np.where(valid, scores, -np.inf)
  order = np.argsort(-scores, axis=1, kind="stable")
  gains = np.where(valid, np.power(2.0, relevance) - 1.0, 0.0)
  disc = 1.0 / np.log2(np.arange(scores.shape[1]) + 2.0)
  dcg = (np.take_along_axis(gains, order, axis=1) * disc).sum(1)
  ideal = (-np.sort(-gains, axis=1) * disc).sum(1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(ideal > 0, dcg / ideal, np.nan)


# ----------------------------------------------------------------------------------------
# Data helpers shared by the binaries and tests.

def item_authors_for(dataset: str, author: str, item_ids: np.ndarray,
                     data_dir: Optional[str]) -> tuple[Optional[np.ndarray], dict]:
  """[I] author attribute per item (0 = unknown) and a description, or (None, ...) = shared.

  `author` may join several attributes with "+" (Amazon: "brand+category"): the result is
  then [I, F], one column per attribute, which the featurizer hashes into separate author
  hash slots (see phoenix.batching). Amazon's "category" is the most specific category of
  the item; "category:L" picks level L of its category list instead (0 = top level, 1 = the
  next, ...; negative counts from the most specific, so "category" = "category:-1").
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
  elif author == "genre" and hasattr(attributes, "load_first_genre"):
    attr, vocab = attributes.load_first_genre(dataset, path, item_ids)
  else:
    raise ValueError(f"author={author!r} is not available for dataset {dataset!r}")
  return attr, {"author": author, "num_authors": len(vocab) - 1,
                "unknown_fraction": float(np.mean(attr == 0))}


def make_update_fn(loss_fn, optimizer, nan_policy: str = "raise"):
  """The jitted training step: `recsys_core.train.make_update_fn` (kept as a name here for
  callers of the Phoenix trainer)."""
  from recsys_core import train as train_lib  # pylint: disable=g-import-not-at-top
  return train_lib.make_update_fn(loss_fn, optimizer, nan_policy=nan_policy)
