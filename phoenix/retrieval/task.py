"""`RetrievalTask`: retrieval training on one split: data, featurisation, batches, loss.

Protocol B, leave-one-out next item, full ranking. Each user's training part (s[:ends[u]])
gives one window per step (phoenix.batching.retrieval_training_batch) with a next-item
target at every position, and the user tower of every prefix (phoenix.retrieval.model) is
trained at once:
  * loss: full softmax over the whole corpus (small corpora) or sampled softmax with
    in-batch + sampled negatives and the log-Q correction (phoenix.losses); learnable
    temperature. `loss_positions` / `packed_positions` (`pack_positions`) restrict the
    loss to some of the B*S (row, position) slots;
  * evaluation: `RetrievalTask.scorer(params)`, a `phoenix.retrieval.scorer.RetrievalScorer`.

Parameters: {"phoenix": <haiku params>, "loss": {"log_temperature": []}}.

Shape glossary: B batch, S history length, I items, D embedding size, M packed loss rows,
K in-batch negatives, N sampled negatives.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from phoenix import batching
from phoenix import losses
from phoenix.embeddings import make_featurizer
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.model import RetrievalFns
from phoenix.retrieval.scorer import make_corpus_batch
from phoenix.retrieval.scorer import RetrievalScorer
from recsys_core.data.sequences import item_popularity
from recsys_core.data.sequences import SequenceData


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


class RetrievalTask:
  """Data, featurisation, batches and the loss of retrieval training on one split.

  Attributes:
    data: the users' full sequences (SequenceData); training uses s[:train_ends[u]].
    train_ends: [U] end of each user's training part (len - 2 under leave-one-out).
  """

  def __init__(self, cfg: RetrievalConfig, data: SequenceData, train_ends: np.ndarray,
               item_authors: Optional[np.ndarray], batch_size: int, seed: int = 0):
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
    self.corpus_batch = make_corpus_batch(self.featurizer, self.num_items)

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
  def scorer(self, params, batch_size: int = 256) -> RetrievalScorer:
    """The evaluation scorer of `params`, sharing this task's featurizer, corpus and
    compiled functions."""
    return RetrievalScorer(self.cfg, params, self.featurizer, self.corpus_batch, batch_size,
                           fns=self.fns)
