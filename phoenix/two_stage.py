"""Two-stage recommendation: retrieval proposes K candidates, the ranking model orders them.

  candidates  the K items of highest retrieval score, the user's seen items excluded
  order       (1 - alpha) * z(rank score) + alpha * z(retrieval score) over the K, where z
              standardises over each user's K candidates and the rank score is the ranking
              model's weighted multi-action score sum_a w_a p_a (RankingConfig.score_weights).
              alpha = 1 keeps the retrieval order, alpha = 0 is the ranker alone; the
              pipeline (phoenix.ranking.adapter) selects alpha on validation.

`ListRanker` scores candidate lists for many users at once (evaluation, training lists);
`TwoStageScorer` is the two stages behind `recsys_core.scoring.Scorer`, so the two-stage list
is evaluated exactly as retrieval alone is; `phoenix.inference.TwoStageRecommender` serves one
request with the same `blend`. Everything here is built from configs and params, without
training code.

Shape glossary: U users, I items, K candidates per user, A action heads (19), S history.
"""
from __future__ import annotations

import hashlib
from typing import Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix import batching
from phoenix.ranking.config import RankingConfig
from phoenix.ranking.model import transform_logits
from phoenix.retrieval.scorer import RetrievalScorer
from recsys_core.data.sequences import SequenceData
from recsys_core.data.types import Interactions


def top_candidates(scores: np.ndarray, seen: list, k: int) -> np.ndarray:
  """[U, K] items of the highest `scores` [U, I] per row, descending, the row's `seen`
  items (a list of U index arrays) excluded; K = min(k, I)."""
  scores = np.array(scores, np.float32, copy=True)
  for u, items in enumerate(seen):
    scores[u, items] = -np.inf
  k = min(int(k), scores.shape[1])
  part = np.argpartition(-scores, k - 1, axis=1)[:, :k]                    # [U, K] unsorted
  order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
  return np.take_along_axis(part, order, axis=1).astype(np.int32)


def standardize(x: np.ndarray) -> np.ndarray:
  """x [..., K] shifted and scaled to mean 0, std 1 over the last axis (constant rows: 0)."""
  x = np.asarray(x, np.float64)
  std = x.std(axis=-1, keepdims=True)
  return (x - x.mean(axis=-1, keepdims=True)) / np.where(std > 0, std, 1.0)


def blend(retrieval: np.ndarray, rank: np.ndarray, alpha: float) -> np.ndarray:
  """[..., K] the order score of the module docstring from both stages' scores [..., K]."""
  if not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha={alpha}: must be in [0, 1]")
  return (1.0 - alpha) * standardize(rank) + alpha * standardize(retrieval)


def init_fusion(retrieval_temperature: float, num_actions: int) -> dict:
  """Params of the retrieval-score feature: per head a weight (trained, starting at 1) on the
  retrieval score divided by the retrieval model's temperature (a constant: its softmax
  logit), so the ranker starts from retrieval's own order and learns a residual on it."""
  return {"w": np.ones(num_actions, np.float32),
          "inv_temperature": np.full((), 1.0 / retrieval_temperature, np.float32)}


def fused_logits(logits, retrieval, fusion):
  """logits [B, K, A] + w [A] * retrieval [B, K] / T: the ranker's logits with the retrieval
  score as a feature (numpy or jax arrays; T is not trained)."""
  xp = jnp if isinstance(logits, jax.Array) else np
  scale = fusion["inv_temperature"]
  if xp is jnp:
    scale = jax.lax.stop_gradient(scale)
  return logits + fusion["w"] * (retrieval * scale)[..., None]


def _content_key(x: Interactions) -> str:
  h = hashlib.sha1()
  for a in (x.users, x.items, np.asarray(x.user_ids), np.asarray([x.num_users, x.num_items])):
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


class ListRanker:
  """Probabilities [U, K, A] of candidate lists under a ranking model (config + params)."""

  def __init__(self, cfg: RankingConfig, params, featurizer: batching.Featurizer,
               batch_size: int = 256, logits_fn=None):
    """logits_fn: (params["phoenix"], RecsysBatch) -> logits [B, C, A], jitted (default:
    built from cfg; pass one to share its compilations between rankers)."""
    self.cfg, self.params, self.featurizer = cfg, params, featurizer
    self.bcfg = cfg.batching_config()
    self.batch_size = batch_size
    self.weights = cfg.weight_vector()                                     # [A]
    self._logits = logits_fn or jax.jit(hk.without_apply_rng(transform_logits(cfg)).apply)

  @property
  def uses_retrieval(self) -> bool:
    """Whether the model takes the retrieval score as a feature (params["fusion"])."""
    return "fusion" in self.params

  def probs(self, data: SequenceData, candidates: np.ndarray,
            retrieval: Optional[np.ndarray] = None) -> np.ndarray:
    """[U, K, A] for user u's whole sequence (its last history_len items) as the history and
    candidates[u] ([U, K], -1 = padding) as the list; `retrieval` [U, K]: the candidates'
    retrieval scores, required by a model that uses them (`fused_logits`)."""
    candidates = np.asarray(candidates, np.int32)
    if self.uses_retrieval and retrieval is None:
      raise ValueError("this ranking model takes the retrieval scores of its candidates")
    out = []
    for start in range(0, data.num_users, self.batch_size):
      users = np.arange(start, min(start + self.batch_size, data.num_users))
      h_items, h_actions, h_surface = batching.history_block(
          [data.sequences[u] for u in users],
          None if data.ratings is None else [data.ratings[u] for u in users], self.bcfg)
      cand = candidates[users]
      ids = batching.IdBatch(batching.user_id_array(data.user_ids[users], self.bcfg), h_items,
                             h_actions, h_surface, cand,
                             np.where(cand >= 0, self.bcfg.product_surface, 0).astype(np.int32))
      batch = batching.pad_batch(self.featurizer(ids), self.batch_size)
      logits = np.asarray(self._logits(self.params["phoenix"], batch), np.float32)
      logits = logits[:len(users)]                                         # [u, K, A]
      if self.uses_retrieval:
        logits = fused_logits(logits, np.asarray(retrieval, np.float32)[users],
                              self.params["fusion"])
      out.append(1.0 / (1.0 + np.exp(-logits)))
    if not out:
      return np.zeros((0,) + candidates.shape[1:] + (batching.NUM_ACTIONS,), np.float32)
    return np.concatenate(out)

  def scores(self, data: SequenceData, candidates: np.ndarray,
             retrieval: Optional[np.ndarray] = None) -> np.ndarray:
    """[U, K] weighted scores sum_a w_a p_a."""
    return self.probs(data, candidates, retrieval) @ self.weights


class TwoStageScorer:
  """`recsys_core.scoring.Scorer`: retrieval's top `num_candidates` (seen items excluded) in
  the blended order, above every other item (which keep their retrieval order).

  The stages' scores are cached by the content of the inputs (up to `cache_size` batches),
  so scoring the same users again with another `alpha` (selection on validation) costs no
  model call; `clear_cache()` frees them.
  """

  name = "phoenix_two_stage"

  def __init__(self, retrieval: RetrievalScorer, ranker: ListRanker, num_candidates: int,
               alpha: float = 0.5, cache_size: int = 0):
    if num_candidates < 1:
      raise ValueError(f"num_candidates={num_candidates}: must be >= 1")
    self.retrieval, self.ranker = retrieval, ranker
    self.num_candidates, self.alpha = int(num_candidates), float(alpha)
    self.cache_size = cache_size
    self._cache: dict[str, tuple] = {}

  def clear_cache(self) -> None:
    self._cache.clear()

  def fit(self, train: Interactions) -> "TwoStageScorer":
    del train
    return self

  def stages(self, inputs: Interactions) -> tuple:
    """(retrieval scores [U, I], candidates [U, K], their retrieval scores [U, K], their rank
    scores [U, K]) of `inputs`."""
    key = _content_key(inputs) if self.cache_size else ""
    if key in self._cache:
      return self._cache[key]
    data = SequenceData.from_interactions(inputs)
    full = self.retrieval.score(inputs)                                    # [U, I]
    cand = top_candidates(full, data.sequences, self.num_candidates)       # [U, K]
    retrieval = np.take_along_axis(full, cand, axis=1)                     # [U, K]
    rank = self.ranker.scores(data, cand, retrieval)                       # [U, K]
    out = (full, cand, retrieval, rank)
    if self.cache_size and len(self._cache) < self.cache_size:
      self._cache[key] = out
    return out

  def score(self, inputs: Interactions) -> np.ndarray:
    full, cand, retrieval, rank = self.stages(inputs)
    order = blend(retrieval, rank, self.alpha)                             # [U, K]
    # Candidates above every other item, in the blended order.
    lift = full.max(axis=1, keepdims=True) + 1.0 - order.min(axis=1, keepdims=True)
    out = np.array(full, np.float32, copy=True)
    np.put_along_axis(out, cand, (order + lift).astype(np.float32), axis=1)
    return out
