"""Ranking metrics of candidate lists: per-head AUC, RCE and calibration, and list NDCG.

Shape glossary: B lists, C candidates per list, A action heads (19).
"""
from __future__ import annotations

import numpy as np

from phoenix import batching
from recsys_core import metrics as metrics_lib


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
