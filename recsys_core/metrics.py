"""Recommendation metrics, vectorised over users.

Ranking metrics take a [B, I] score matrix (higher = better), targets and an optional
exclusion mask of items that must not be ranked (fold-in items, a user's seen items), and
return one value per user ([B] float64). A user with no targets gets NaN, so that callers
average over users that have targets (`np.nanmean`).

Targets can be given as
  * a [B, I] bool (or 0/1) array or scipy sparse matrix, or
  * a [B] int array of one target index per user, -1 for "no target".
The exclusion mask is a [B, I] bool array or sparse matrix (None: exclude nothing).

Definitions (binary relevance, T = the user's targets, K the cut-off):
  Recall@K = |top-K ∩ T| / min(K, |T|)                  (Liang et al. 2018)
  HR@K     = 1 if top-K ∩ T is non-empty else 0
  NDCG@K   = Σ_{r ≤ K, item_r ∈ T} 1/log2(r + 1)  /  Σ_{r ≤ min(|T|, K)} 1/log2(r + 1)
  MRR      = 1 / rank of the best-ranked target, over the whole (non-excluded) item list
  AUC      = P(score of a target > score of a non-target), ties count 1/2

Top-K lists use np.argpartition (ties at the cut-off are broken arbitrarily). MRR and AUC
do not build a list: MRR ranks the best target at 1 + #(non-targets scored higher) +
#(non-targets scored equal)/2, AUC uses average ranks, so ties are handled symmetrically
(a constant scorer gets AUC 0.5, not 1).

Binary-label metrics (`auc`, `rce`, `calibration`, `mae`) take flat arrays.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Optional, Union

import numpy as np
from scipy import sparse
from scipy import stats

ArrayOrSparse = Union[np.ndarray, sparse.spmatrix, sparse.sparray]


# ----------------------------------------------------------------------------------------
# Input normalisation.

def _dense_bool(mask: Optional[ArrayOrSparse], shape: tuple[int, int], what: str) -> np.ndarray:
  if mask is None:
    return np.zeros(shape, bool)
  if sparse.issparse(mask):
    mask = mask.toarray()
  mask = np.asarray(mask)
  if mask.shape != shape:
    raise ValueError(f"{what} has shape {mask.shape}, expected {shape}")
  return mask.astype(bool, copy=False)


def targets_to_dense(targets: ArrayOrSparse, shape: tuple[int, int]) -> np.ndarray:
  """Returns [B, I] bool targets from a [B, I] matrix or [B] indices (-1 = none)."""
  if not sparse.issparse(targets):
    targets = np.asarray(targets)
    if targets.ndim == 1:
      if len(targets) != shape[0]:
        raise ValueError(f"targets has {len(targets)} rows, expected {shape[0]}")
      if np.any(targets >= shape[1]) or np.any(targets < -1):
        raise ValueError(f"target indices must be in [-1, {shape[1]})")
      dense = np.zeros(shape, bool)
      rows = np.flatnonzero(targets >= 0)
      dense[rows, targets[rows]] = True
      return dense
  return _dense_bool(targets, shape, "targets")


def _masked_scores(scores: np.ndarray, exclude: Optional[ArrayOrSparse]) -> np.ndarray:
  """float64 copy of scores with excluded items at -inf (the bottom of every list)."""
  scores = np.array(scores, np.float64)  # copy
  if scores.ndim != 2:
    raise ValueError(f"scores must be [B, I], got shape {scores.shape}")
  if np.isnan(scores).any():
    raise ValueError("scores contain NaN")
  if exclude is not None:
    scores[_dense_bool(exclude, scores.shape, "exclude")] = -np.inf
  return scores


def top_k(scores: np.ndarray, k: int, exclude: Optional[ArrayOrSparse] = None) -> np.ndarray:
  """Returns [B, min(k, I)] item indices of the highest scores, best first.

  Excluded items are placed below every other item (they can appear only when fewer than
  k items are left).
  """
  s = _masked_scores(scores, exclude)
  return _top_k(s, k)


def _top_k(s: np.ndarray, k: int) -> np.ndarray:
  n_items = s.shape[1]
  k = min(k, n_items)
  if k < n_items:
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
  else:
    part = np.broadcast_to(np.arange(n_items), s.shape).copy()
  order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1, kind="stable")
  return np.take_along_axis(part, order, axis=1)


def _discounts(n: int) -> np.ndarray:
  """[n] 1/log2(r + 1) for ranks r = 1..n."""
  return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


# ----------------------------------------------------------------------------------------
# Ranking metrics (per user).

def ranking_metrics(scores: np.ndarray, targets: ArrayOrSparse, ks: Iterable[int],
                    exclude: Optional[ArrayOrSparse] = None,
                    metrics: Iterable[str] = ("recall", "hr", "ndcg", "mrr")
                    ) -> dict[str, np.ndarray]:
  """Computes several ranking metrics from one top-K pass.

  Args:
    scores: [B, I] scores, higher = better. Must not contain NaN.
    targets: [B, I] bool/sparse, or [B] indices with -1 = no target.
    ks: cut-offs.
    exclude: [B, I] bool/sparse; True items are removed from the ranking.
    metrics: any of "recall", "hr", "ndcg" (one key per k: "recall@20", ...), "mrr", "auc".

  Returns:
    {key: [B] float64}, NaN for users without targets.
  """
  scores = np.asarray(scores)
  shape = scores.shape
  tgt = targets_to_dense(targets, shape)
  s = _masked_scores(scores, exclude)
  n_t = tgt.sum(axis=1)
  has = n_t > 0
  ks = sorted({int(k) for k in ks})
  metrics = set(metrics)
  unknown = metrics - {"recall", "hr", "ndcg", "mrr", "auc"}
  if unknown:
    raise ValueError(f"unknown metrics {sorted(unknown)}")
  out: dict[str, np.ndarray] = {}

  if ks and metrics & {"recall", "hr", "ndcg"}:
    k_max = max(ks)
    top = _top_k(s, k_max)
    hits = np.take_along_axis(tgt, top, axis=1)  # [B, k_max]
    # An excluded item at -inf only shows up when fewer than k items are left; it never
    # counts as a hit even if it is also a target.
    hits &= np.isfinite(np.take_along_axis(s, top, axis=1))
    cum_hits = np.cumsum(hits, axis=1)
    disc = _discounts(top.shape[1])
    cum_dcg = np.cumsum(hits * disc, axis=1)
    cum_idcg = np.cumsum(disc)
    for k in ks:
      kk = min(k, top.shape[1])
      h = cum_hits[:, kk - 1].astype(np.float64)
      if "recall" in metrics:
        out[f"recall@{k}"] = _nan_where(~has, h / np.maximum(np.minimum(k, n_t), 1))
      if "hr" in metrics:
        out[f"hr@{k}"] = _nan_where(~has, (h > 0).astype(np.float64))
      if "ndcg" in metrics:
        idcg = cum_idcg[np.clip(np.minimum(n_t, kk) - 1, 0, None)]
        out[f"ndcg@{k}"] = _nan_where(~has, cum_dcg[:, kk - 1] / idcg)

  if "mrr" in metrics:
    best = np.where(tgt, s, -np.inf).max(axis=1, keepdims=True)  # best target score
    non_target = ~tgt & np.isfinite(s)
    higher = (non_target & (s > best)).sum(axis=1)
    tied = (non_target & (s == best)).sum(axis=1)
    rank = 1.0 + higher + 0.5 * tied
    out["mrr"] = _nan_where(~has | ~np.isfinite(best[:, 0]), 1.0 / rank)

  if "auc" in metrics:
    out["auc"] = _row_auc(s, tgt)
  return out


def _nan_where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
  values = np.asarray(values, np.float64)
  return np.where(mask, np.nan, values)


def _row_auc(s: np.ndarray, tgt: np.ndarray) -> np.ndarray:
  """Per-row AUC of targets against non-excluded non-targets, average ranks for ties."""
  valid = np.isfinite(s)
  if np.isposinf(s).any():
    raise ValueError("scores contain +inf")
  pos = tgt & valid
  n_pos = pos.sum(axis=1)
  n_neg = (valid & ~tgt).sum(axis=1)
  n_exc = (~valid).sum(axis=1)
  # Excluded items sit at -inf, i.e. on ranks 1..n_exc; the others' ranks are shifted by
  # exactly n_exc.
  ranks = stats.rankdata(s, method="average", axis=1)
  pos_rank_sum = (ranks * pos).sum(axis=1) - n_pos * n_exc
  with np.errstate(invalid="ignore", divide="ignore"):
    auc = (pos_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
  return _nan_where((n_pos == 0) | (n_neg == 0), auc)


def recall_at_k(scores, targets, k: int, exclude=None) -> np.ndarray:
  """[B] Recall@K = hits / min(K, |targets|); NaN for users without targets."""
  return ranking_metrics(scores, targets, [k], exclude, ["recall"])[f"recall@{k}"]


def hit_rate_at_k(scores, targets, k: int, exclude=None) -> np.ndarray:
  """[B] HR@K: 1 if any target is in the top K; NaN for users without targets."""
  return ranking_metrics(scores, targets, [k], exclude, ["hr"])[f"hr@{k}"]


def ndcg_at_k(scores, targets, k: int, exclude=None) -> np.ndarray:
  """[B] NDCG@K, binary relevance, ideal DCG over min(|targets|, K) positions."""
  return ranking_metrics(scores, targets, [k], exclude, ["ndcg"])[f"ndcg@{k}"]


def mrr(scores, targets, exclude=None) -> np.ndarray:
  """[B] reciprocal rank of the best-ranked target (ties with non-targets count 1/2)."""
  return ranking_metrics(scores, targets, [], exclude, ["mrr"])["mrr"]


def row_auc(scores, targets, exclude=None) -> np.ndarray:
  """[B] AUC of each user's targets against their non-excluded non-targets."""
  return ranking_metrics(scores, targets, [], exclude, ["auc"])["auc"]


# ----------------------------------------------------------------------------------------
# Binary-label metrics (flat arrays).

def _labels_probs(labels, probs) -> tuple[np.ndarray, np.ndarray]:
  y = np.asarray(labels, np.float64).ravel()
  p = np.asarray(probs, np.float64).ravel()
  if y.shape != p.shape:
    raise ValueError(f"labels {y.shape} and probs {p.shape} differ in size")
  if y.size == 0:
    raise ValueError("empty input")
  return y, p


def auc(labels, scores) -> float:
  """Global AUC of binary labels against scores (ties: average ranks). NaN if one class."""
  y, s = _labels_probs(labels, scores)
  pos = y > 0.5
  n_pos, n_neg = int(pos.sum()), int((~pos).sum())
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  ranks = stats.rankdata(s, method="average")
  return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_cross_entropy(labels, probs, eps: float = 1e-7) -> float:
  """Mean binary cross-entropy in nats, probabilities clipped to [eps, 1 - eps]."""
  y, p = _labels_probs(labels, probs)
  p = np.clip(p, eps, 1.0 - eps)
  return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


def rce(labels, probs, eps: float = 1e-7) -> float:
  """Relative cross-entropy: 100·(H(base rate) − CE) / H(base rate).

  H(base rate) is the cross-entropy of always predicting the mean label; positive RCE means
  better than that constant. NaN when all labels are equal (H = 0).
  """
  y, _ = _labels_probs(labels, probs)
  base = float(y.mean())
  if base <= 0.0 or base >= 1.0:
    return float("nan")
  h = -(base * np.log(base) + (1.0 - base) * np.log1p(-base))
  return float(100.0 * (h - binary_cross_entropy(labels, probs, eps)) / h)


def calibration(labels, probs) -> float:
  """Σ probs / Σ labels (1 = calibrated on average). inf/NaN when there are no positives."""
  y, p = _labels_probs(labels, probs)
  with np.errstate(divide="ignore", invalid="ignore"):
    return float(p.sum() / y.sum())


def mae(predictions, targets, mask=None) -> float:
  """Mean absolute error over the entries where mask (default: all) is True."""
  pred = np.asarray(predictions, np.float64)
  tgt = np.asarray(targets, np.float64)
  if pred.shape != tgt.shape:
    raise ValueError(f"predictions {pred.shape} and targets {tgt.shape} differ in shape")
  err = np.abs(pred - tgt)
  if mask is not None:
    mask = np.asarray(mask, bool)
    err = err[mask]
  if err.size == 0:
    return float("nan")
  return float(err.mean())


def mean_over_users(per_user: Mapping[str, np.ndarray]) -> dict[str, float]:
  """{key: nanmean} of per-user metric arrays (users without targets are NaN)."""
  return {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
          for k, v in per_user.items()}
