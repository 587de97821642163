"""`RankingTask`: ranking training and evaluation on candidate lists (protocol C).

Data: `RankingSplit` cuts each user's sequence into training, validation and test parts;
each list holds the true next engagements (positives) and sampled negatives
(phoenix.batching.ranking_batch). Model: `PhoenixModel` logits [B, C, A]
(phoenix.ranking.model), trained with the masked multi-label sigmoid cross-entropy
(phoenix.losses). Evaluation per head (AUC, RCE, calibration) and NDCG of the weighted score
per user (phoenix.ranking.metrics); a popularity prior as the baseline.

Parameters: {"phoenix": <haiku params>}.

Shape glossary: B lists (users), S history length, C candidates, A action heads (19),
I items, U users.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import haiku as hk
import jax
import numpy as np

from phoenix import batching
from phoenix import losses
from phoenix.embeddings import make_featurizer
from phoenix.ranking.config import RankingConfig
from phoenix.ranking.metrics import ranking_metrics
from phoenix.ranking.model import transform_logits
from recsys_core.data.sequences import item_popularity
from recsys_core.data.sequences import SequenceData


@dataclasses.dataclass
class RankingSplit:
  """Per-user time split for ranking: h = num_positives.

  Test list: history s[:n-h], positives s[n-h:]. Validation list: history s[:n-2h],
  positives s[n-2h:n-h]. Training lists: random cuts t in [1, n-2h) of s[:n-2h], positives
  the next (up to h) items inside s[:n-2h]. Negatives never include an item of the part of
  the sequence the list may look at (training: s[:n-2h]; validation: s[:n-h]; test: s).
  Users with n < 2h + 2 are left out.
  """
  train: SequenceData
  val: SequenceData
  test: SequenceData
  users: np.ndarray

  @classmethod
  def make(cls, data: SequenceData, h: int) -> "RankingSplit":
    lengths = data.lengths()
    users = np.flatnonzero(lengths >= 2 * h + 2)

    def cut(delta):
      seqs = [data.sequences[u][:len(data.sequences[u]) - delta] for u in users]
      rats = None if data.ratings is None else [
          data.ratings[u][:len(data.ratings[u]) - delta] for u in users]
      return SequenceData(seqs, rats, data.user_ids[users], data.num_items)

    return cls(train=cut(2 * h), val=cut(h), test=cut(0), users=users)


def shuffle_unordered(data: SequenceData, seed: int) -> SequenceData:
  """A per-user random order, for data without time (anime): documented, not hidden."""
  rng = np.random.default_rng(seed)
  seqs, rats = [], None if data.ratings is None else []
  for u, seq in enumerate(data.sequences):
    perm = rng.permutation(len(seq))
    seqs.append(seq[perm])
    if rats is not None:
      rats.append(data.ratings[u][perm])
  return SequenceData(seqs, rats, data.user_ids, data.num_items)


class RankingTask:
  """Ranking data, batches, loss, metrics and the popularity-prior baseline."""

  def __init__(self, cfg: RankingConfig, data: SequenceData,
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

    self._transformed = transform_logits(cfg)
    self.logits = hk.without_apply_rng(self._transformed).apply

  def _fixed_lists(self, part: SequenceData, seed: int) -> batching.RankingExample:
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
      batch = batching.pad_batch(self.featurizer(ids), bs)
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
