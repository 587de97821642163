"""Turning the two heads into recommendations: unified score, niche boost, filters, explanations.

Unified score (the seed's geometric mean with a mix factor m in [0, 1]):
    score_i = p_i^m * s_i^(1-m),   p = softmax(item_logits), s = sigmoid(rating_pred / T)
computed in log space: log score_i = m log p_i + (1-m) log s_i. m = 0 ranks by predicted rating
only, m = 1 by presence probability only; default m = 0.2 (the seed's). T (`rating_temperature`)
maps the normalised rating (about [-1, 1]) into (0, 1) monotonically.

Niche boost b in [0, 1] (default 0): the "log surprise" of the model's presence probability over
the item's global popularity, surprise_i = log p_i - log q_i, where q_i is the mean of the
model's own presence probability for item i over the training population
(`population_log_popularity`). It multiplies the ranking score by exp(b * surprise_i), i.e.
adds b * surprise_i to the log score; b = 0 is the identity.

Filters: items in the profile are never recommended; items in the user's plan-to-watch list are
removed when `filter_plan_to_watch` is on. (The anime subsample has no plan-to-watch data: the
user supplies the list, e.g. `experiments/recommend_anime.py --plan_to_watch=...`.)

Explanations: for a recommended item j, profile item k's contribution is
    log score_j(full profile) - log score_j(profile without k),
for all k at once: the n leave-one-out copies of the profile run as one batch.

Shape glossary: I items (corpus), n profile items, T explained target items; "..." = any
leading batch dims.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import jax
import numpy as np

from anime_ae.model import AEOutput


@dataclasses.dataclass(frozen=True)
class RecommendConfig:
  mix: float = 0.2
  niche_boost: float = 0.0
  filter_plan_to_watch: bool = True
  rating_temperature: float = 0.5
  top_k: int = 10
  explain_top: int = 3

  def __post_init__(self):
    if not 0.0 <= self.mix <= 1.0:
      raise ValueError(f"mix must be in [0, 1], got {self.mix}")
    if not 0.0 <= self.niche_boost <= 1.0:
      raise ValueError(f"niche_boost must be in [0, 1], got {self.niche_boost}")
    if self.rating_temperature <= 0:
      raise ValueError(f"rating_temperature must be > 0, got {self.rating_temperature}")


def log_softmax_np(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def log_sigmoid_np(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return -np.logaddexp(0.0, -x)


def unified_log_score(item_logits: np.ndarray, rating_pred: np.ndarray, mix: float,
                      rating_temperature: float = 0.5) -> np.ndarray:
  """log(p^mix * sigmoid(r/T)^(1-mix)) per item. [..., I] -> [..., I] float64."""
  return (mix * log_softmax_np(item_logits)
          + (1.0 - mix) * log_sigmoid_np(np.asarray(rating_pred, np.float64) / rating_temperature))


def niche_surprise(item_logits: np.ndarray, log_popularity: np.ndarray) -> np.ndarray:
  """log p_i - log q_i: how much likelier the model finds item i than its global popularity."""
  return log_softmax_np(item_logits) - np.asarray(log_popularity, np.float64)


def ranking_scores(out_logits: np.ndarray, out_rating: np.ndarray, config: RecommendConfig,
                   log_popularity: Optional[np.ndarray] = None,
                   exclude: Optional[np.ndarray] = None) -> np.ndarray:
  """Final log ranking score [..., I]; excluded items get -inf.

  Args:
    exclude: [..., I] bool, True for items never to recommend (profile, plan-to-watch).
  """
  s = unified_log_score(out_logits, out_rating, config.mix, config.rating_temperature)
  if config.niche_boost > 0:
    if log_popularity is None:
      raise ValueError("niche_boost > 0 needs the population popularity (log_popularity)")
    s = s + config.niche_boost * niche_surprise(out_logits, log_popularity)
  if exclude is not None:
    s = np.where(exclude, -np.inf, s)
  return s


def population_log_popularity(apply_eval: Callable, inputs: Sequence[tuple[np.ndarray, np.ndarray]]
                              ) -> np.ndarray:
  """log q_i, q = mean over profiles of the model's presence probability.

  `inputs` yields (x_rating, x_presence) [B, I] batches of the training population.
  """
  total, count = None, 0
  for xr, xp in inputs:
    out = apply_eval(xr, xp)
    p = np.exp(log_softmax_np(np.asarray(out.item_logits)))
    total = p.sum(0) if total is None else total + p.sum(0)
    count += p.shape[0]
  if count == 0:
    raise ValueError("population_log_popularity needs at least one profile")
  return np.log(np.maximum(total / count, 1e-30)).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
  """Indices of the k best finite scores (descending), per row for 2-D input."""
  scores = np.asarray(scores)
  if scores.ndim == 1:
    finite = int(np.isfinite(scores).sum())
    k = min(k, finite)
    idx = np.argpartition(-scores, k - 1)[:k] if k > 0 else np.zeros(0, np.int64)
    return idx[np.argsort(-scores[idx], kind="stable")]
  return np.stack([top_k(row, k) for row in scores])


def exclusion_mask(num_items: int, profile_items: np.ndarray,
                   plan_to_watch: Optional[np.ndarray], config: RecommendConfig) -> np.ndarray:
  """[I] bool: profile items always; plan-to-watch items when the filter is on."""
  ex = np.zeros(num_items, bool)
  ex[np.asarray(profile_items, np.int64)] = True
  if config.filter_plan_to_watch and plan_to_watch is not None and len(plan_to_watch):
    ex[np.asarray(plan_to_watch, np.int64)] = True
  return ex


def leave_one_out_inputs(num_items: int, items: np.ndarray, values: np.ndarray):
  """n+1 dense copies of one profile: row 0 the full profile, row k+1 without item k.

  Returns (x_rating, x_presence) float32 [n+1, I].
  """
  items = np.asarray(items, np.int64)
  n = len(items)
  xr = np.zeros((n + 1, num_items), np.float32)
  xp = np.zeros((n + 1, num_items), np.float32)
  xr[:, items] = values
  xp[:, items] = 1.0
  xr[np.arange(1, n + 1), items] = 0.0
  xp[np.arange(1, n + 1), items] = 0.0
  return xr, xp


def explain(apply_eval: Callable[[np.ndarray, np.ndarray], AEOutput], num_items: int,
            items: np.ndarray, values: np.ndarray, targets: np.ndarray, config: RecommendConfig,
            log_popularity: Optional[np.ndarray] = None) -> np.ndarray:
  """Contribution [T, n] of each profile item k to each target item's log score, one batch.

  contribution[t, k] = log score_{targets[t]}(full) - log score_{targets[t]}(without item k).
  Positive = the item pushed the recommendation up.
  """
  xr, xp = leave_one_out_inputs(num_items, items, values)
  out = apply_eval(xr, xp)
  s = ranking_scores(np.asarray(out.item_logits), np.asarray(out.rating_pred), config,
                     log_popularity)                                    # [n+1, I]
  t = np.asarray(targets, np.int64)
  return (s[0, t][:, None] - s[1:, t].T).astype(np.float32)


def jit_apply_eval(transformed, params, pad: bool = True
                   ) -> Callable[[np.ndarray, np.ndarray], AEOutput]:
  """Deterministic (no noise) jitted forward: (x_rating, x_presence) -> AEOutput (numpy)."""
  fn = jax.jit(lambda p, xr, xp: transformed.apply(p, None, xr, xp, False))
  return padded_apply(fn, params, pad)


def padded_apply(fn: Callable, params, pad: bool = True
                 ) -> Callable[[np.ndarray, np.ndarray], AEOutput]:
  """Wraps a jitted fn(params, x_rating, x_presence) -> AEOutput, returning numpy outputs.

  With `pad`, batches are zero-padded to the next power of two (at least 8) so that varying
  batch sizes (profiles of different lengths) reuse a few compiled shapes.
  """

  def apply_eval(xr, xp) -> AEOutput:
    b = xr.shape[0]
    padded = max(8, 1 << max(b - 1, 0).bit_length()) if pad else b
    if padded != b:
      widths = ((0, padded - b), (0, 0))
      xr, xp = np.pad(xr, widths), np.pad(xp, widths)
    out = jax.device_get(fn(params, xr, xp))
    return AEOutput(out.item_logits[:b], out.rating_pred[:b], out.log_var_presence,
                    out.log_var_rating, out.bottleneck[:b])

  return apply_eval
