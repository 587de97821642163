"""The seed's holdout tables (made fast) and bottleneck statistics.

Holdout analysis of one profile: each of its n items is held out in turn and the model, given
the rest, predicts that item's (normalised) rating and presence probability. The seed ran the
model n times; `holdout_profile` runs the n leave-one-out copies as one batched call
(`fast_holdout_fn`: through `model.holdout_forward`, which uses the input layer's linearity;
`batched_holdout_fn`: dense copies through the full forward). `holdout_profile_loop` is the
seed's per-item loop, kept as the benchmark baseline.

Rating errors are in the hybrid normalised units (as in the seed's tables) and are computed
only for items whose rating is explicit (inferred ratings are not ground truth).

Shape glossary: I items (corpus), n items of one profile, U profiles, Z bottleneck dims.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import numpy as np

from anime_ae.model import AEOutput, holdout_forward
from anime_ae.profiles import SparseProfiles, dense_batch
from anime_ae.recommend import leave_one_out_inputs, log_softmax_np

ApplyEval = Callable[[np.ndarray, np.ndarray], AEOutput]


@dataclasses.dataclass(frozen=True)
class Holdout:
  """Per held-out item of one profile: item [n], predicted rating [n], target [n],
  explicit [n] bool (rating is ground truth), presence probability [n]."""
  items: np.ndarray
  pred_rating: np.ndarray
  rating: np.ndarray
  explicit: np.ndarray
  prob: np.ndarray

  @property
  def abs_error(self) -> np.ndarray:
    """|pred - rating| over the explicitly rated held-out items."""
    return np.abs(self.pred_rating - self.rating)[self.explicit]


HoldoutFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""(items [n], values [n]) -> (predicted rating [n], presence probability [n]) of each item
with that item held out of the profile."""


def fast_holdout_fn(model_config, params, num_items: int) -> HoldoutFn:
  """All n leave-one-out copies as one batched call of `model.holdout_forward` (the input
  layer's linearity: no [n, 2I] inputs); n is padded to a power of two (>= 8)."""
  fn = _holdout_forward(model_config, num_items)

  def call(items, values):
    n = len(items)
    pad = max(8, 1 << max(n - 1, 0).bit_length())
    it = np.zeros(pad, np.int32)
    va = np.zeros(pad, np.float32)
    valid = np.zeros(pad, np.float32)
    it[:n], va[:n], valid[:n] = items, values, 1.0
    pred, logp = jax.device_get(fn(params, it, va, valid))
    return (np.asarray(pred[:n], np.float32),
            np.exp(np.asarray(logp[:n], np.float64)).astype(np.float32))

  return call


@functools.lru_cache(maxsize=8)
def _holdout_forward(model_config, num_items: int):
  return holdout_forward(model_config, num_items)


def batched_holdout_fn(apply_eval: ApplyEval, num_items: int, chunk: int = 512) -> HoldoutFn:
  """The n leave-one-out copies as dense [n, I] inputs through the full forward, in chunks."""

  def call(items, values):
    n = len(items)
    pred = np.empty(n, np.float32)
    prob = np.empty(n, np.float32)
    xr_all, xp_all = leave_one_out_inputs(num_items, items, values)
    for s in range(0, n, chunk):
      rows = np.arange(s, min(s + chunk, n))
      out = apply_eval(xr_all[rows + 1], xp_all[rows + 1])
      pred[rows] = np.asarray(out.rating_pred)[np.arange(len(rows)), items[rows]]
      prob[rows] = np.exp(log_softmax_np(np.asarray(out.item_logits))[np.arange(len(rows)),
                                                                        items[rows]])
    return pred, prob

  return call


def holdout_profile(holdout_fn: HoldoutFn, items: np.ndarray, values: np.ndarray,
                    explicit: np.ndarray) -> Holdout:
  """The seed's holdout analysis of one profile: every item held out in turn, in one call."""
  items = np.asarray(items, np.int64)
  values = np.asarray(values, np.float32)
  pred, prob = holdout_fn(items, values)
  return Holdout(items, pred, values, np.asarray(explicit, bool), prob)


def holdout_profile_loop(apply_eval: ApplyEval, num_items: int, items: np.ndarray,
                         values: np.ndarray, explicit: np.ndarray) -> Holdout:
  """The seed's way: one model call per held-out item (the benchmark baseline)."""
  items = np.asarray(items, np.int64)
  values = np.asarray(values, np.float32)
  pred = np.empty(len(items), np.float32)
  prob = np.empty(len(items), np.float32)
  for k in range(len(items)):
    xr = np.zeros((1, num_items), np.float32)
    xp = np.zeros((1, num_items), np.float32)
    keep = np.arange(len(items)) != k
    xr[0, items[keep]] = values[keep]
    xp[0, items[keep]] = 1.0
    out = apply_eval(xr, xp)
    pred[k] = np.asarray(out.rating_pred)[0, items[k]]
    prob[k] = np.exp(log_softmax_np(np.asarray(out.item_logits))[0, items[k]])
  return Holdout(items, pred, values, np.asarray(explicit, bool), prob)


def _stats(x: np.ndarray, median: bool = True) -> dict:
  x = np.asarray(x, np.float64)
  if len(x) == 0:
    return {k: float("nan")
            for k in ("mean", "std", "min", "max") + (("median",) if median else ())}
  d = {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}
  if median:
    d["median"] = float(np.median(x))
  return d


def profile_table(h: Holdout) -> dict:
  """The seed's 'MY PROFILE HOLDOUT' numbers for one profile."""
  return {"rating_abs_error": _stats(h.abs_error, median=False),
          "presence_prob": _stats(h.prob, median=False), "n_items": int(len(h.items)),
          "n_rated": int(h.explicit.sum())}


def evaluation_set_holdout(holdout_fn: HoldoutFn, profiles: SparseProfiles,
                           idx: Sequence[int]) -> dict:
  """The seed's 'EVALUATION SET HOLDOUT VALIDATION' tables over the profiles idx."""
  errs, probs, prof_err, prof_prob = [], [], [], []
  for u in idx:
    items, values, explicit = profiles.profile(int(u))
    if len(items) < 2:
      continue
    h = holdout_profile(holdout_fn, items, values, explicit)
    errs.append(h.abs_error)
    probs.append(h.prob)
    if len(h.abs_error):
      prof_err.append(h.abs_error.mean())
    prof_prob.append(h.prob.mean())
  errs = np.concatenate(errs) if errs else np.zeros(0)
  probs = np.concatenate(probs) if probs else np.zeros(0)
  return {"n_profiles": len(prof_prob), "n_items": int(len(probs)),
          "per_item_rating_abs_error": _stats(errs), "per_item_presence_prob": _stats(probs),
          "per_profile": {
              "mean_of_mean_errors": float(np.mean(prof_err)) if prof_err else float("nan"),
              "std_of_mean_errors": float(np.std(prof_err)) if prof_err else float("nan"),
              "mean_of_mean_probs": float(np.mean(prof_prob)) if prof_prob else float("nan"),
              "std_of_mean_probs": float(np.std(prof_prob)) if prof_prob else float("nan")}}


def format_profile_table(t: dict) -> str:
  e, p = t["rating_abs_error"], t["presence_prob"]
  return "\n".join([
      f"PROFILE HOLDOUT ({t['n_items']} items, {t['n_rated']} explicitly rated)",
      "--- Rating Prediction Stats --- (hybrid normalised units)",
      f"  Mean absolute error:  {e['mean']:.4f}", f"  Std dev:              {e['std']:.4f}",
      f"  Min error:            {e['min']:.4f}", f"  Max error:            {e['max']:.4f}",
      "--- Presence Probability Stats ---",
      f"  Mean probability:     {100 * p['mean']:.4f}%",
      f"  Std dev:              {100 * p['std']:.4f}%",
      f"  Min probability:      {100 * p['min']:.4f}%",
      f"  Max probability:      {100 * p['max']:.4f}%"])


def format_evaluation_table(t: dict) -> str:
  e, p, a = t["per_item_rating_abs_error"], t["per_item_presence_prob"], t["per_profile"]
  return "\n".join([
      "=" * 80,
      f"EVALUATION SET HOLDOUT VALIDATION ({t['n_profiles']} profiles, {t['n_items']} items)",
      "=" * 80,
      "--- Per-Item Rating Prediction Stats --- (hybrid normalised units)",
      f"  Mean absolute error:  {e['mean']:.4f}", f"  Std dev:              {e['std']:.4f}",
      f"  Min error:            {e['min']:.4f}", f"  Max error:            {e['max']:.4f}",
      f"  Median error:         {e['median']:.4f}",
      "--- Per-Item Presence Probability Stats ---",
      f"  Mean probability:     {100 * p['mean']:.4f}%",
      f"  Std dev:              {100 * p['std']:.4f}%",
      f"  Min probability:      {100 * p['min']:.4f}%",
      f"  Max probability:      {100 * p['max']:.4f}%",
      f"  Median probability:   {100 * p['median']:.4f}%",
      "--- Per-Profile Aggregated Stats ---",
      f"  Mean of profile mean errors:    {a['mean_of_mean_errors']:.4f}",
      f"  Std dev of profile mean errors: {a['std_of_mean_errors']:.4f}",
      f"  Mean of profile mean probs:     {100 * a['mean_of_mean_probs']:.4f}%",
      f"  Std dev of profile mean probs:  {100 * a['std_of_mean_probs']:.4f}%"])


def bottleneck_stats(apply_eval: ApplyEval, profiles: SparseProfiles, idx: Sequence[int],
                     batch_size: int = 256) -> dict:
  """Statistics of the (noise-free) bottleneck activations over the profiles idx."""
  idx = np.asarray(idx, np.int64)
  zs = []
  for s in range(0, len(idx), batch_size):
    b = dense_batch(profiles, idx[s:s + batch_size])
    zs.append(np.asarray(apply_eval(b["x_rating"], b["x_presence"]).bottleneck, np.float64))
  z = np.concatenate(zs)                                              # [U, Z]
  dim_mean, dim_std = z.mean(0), z.std(0)
  return {"n_profiles": int(z.shape[0]), "dim": int(z.shape[1]),
          "mean": float(z.mean()), "std": float(z.std()),
          "per_dim_mean": _stats(dim_mean), "per_dim_std": _stats(dim_std),
          "dead_dims": int((dim_std < 1e-3).sum()),
          "mean_l2_norm": float(np.linalg.norm(z, axis=1).mean())}


def format_bottleneck(t: dict) -> str:
  m, s = t["per_dim_mean"], t["per_dim_std"]
  return "\n".join([
      f"BOTTLENECK STATISTICS ({t['n_profiles']} profiles, {t['dim']} dims)",
      f"  overall mean {t['mean']:+.4f}, std {t['std']:.4f}, mean L2 norm {t['mean_l2_norm']:.3f}",
      f"  per-dim mean: min {m['min']:+.4f} median {m['median']:+.4f} max {m['max']:+.4f}",
      f"  per-dim std:  min {s['min']:.4f} median {s['median']:.4f} max {s['max']:.4f}",
      f"  dead dims (std < 1e-3): {t['dead_dims']}"])
