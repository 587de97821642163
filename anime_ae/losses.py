"""Losses of the two-head autoencoder.

Presence (Liang et al. 2018, as averaged in the seed): per profile,
    L_p(u) = -(1/|P_u|) * sum_{i in P_u} log softmax(item_logits_u)_i
where P_u is the full (pre-dropout) profile; the batch loss is the mean over profiles.
With `presence_reduction="sum"` the 1/|P_u| is dropped (Mult-DAE's per-user sum, which
weighs long profiles more).

Rating: Huber(delta) between rating_pred and the normalised rating, averaged over the entries
whose rating enters the loss (explicit ratings; inferred ratings of watched-but-unrated items
are masked out), over the whole batch.

Combination, uncertainty weighting (Kendall, Gal & Cipolla 2018) with s = log sigma^2 learnt:
    L = exp(-s_p) * L_p + s_p / 2          (classification likelihood, their eq. 10)
      + exp(-s_r) * L_r / 2 + s_r / 2      (Gaussian regression likelihood, their eq. 7)
or fixed weights: L = w_p * L_p + w_r * L_r (an ablation; the log-variances then get no gradient).

Shape glossary: B batch (profiles), I items (corpus).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from anime_ae.model import AEOutput

WEIGHTINGS = ("uncertainty", "fixed")


def multinomial_nll(item_logits: jax.Array, presence: jax.Array,
                    reduction: str = "mean") -> jax.Array:
  """Mean over profiles of the mean ("mean") or the sum ("sum") of -log softmax probability
  of their items. [B, I] -> []."""
  logp = jax.nn.log_softmax(item_logits, axis=-1)
  n = presence.sum(-1)
  per_profile = -(logp * presence).sum(-1)
  if reduction == "mean":
    per_profile = per_profile / jnp.maximum(n, 1.0)
  has = (n > 0).astype(logp.dtype)
  return (per_profile * has).sum() / jnp.maximum(has.sum(), 1.0)


def masked_huber(rating_pred: jax.Array, rating: jax.Array, mask: jax.Array,
                 delta: float = 1.0) -> jax.Array:
  """Huber loss averaged over the entries where mask is 1 (0 when there are none)."""
  per = optax.huber_loss(rating_pred, rating, delta=delta)
  return (per * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def uncertainty_weighted(l_p, l_r, s_p, s_r):
  """Kendall et al. combination with s = log-variance (see the module docstring)."""
  return jnp.exp(-s_p) * l_p + 0.5 * s_p + 0.5 * jnp.exp(-s_r) * l_r + 0.5 * s_r


@dataclasses.dataclass(frozen=True)
class LossConfig:
  huber_delta: float = 1.0
  weighting: str = "uncertainty"
  presence_weight: float = 1.0  # used when weighting == "fixed"
  rating_weight: float = 1.0
  presence_reduction: str = "mean"   # "mean" (the seed) or "sum" (Mult-DAE) over a profile

  def __post_init__(self):
    if self.weighting not in WEIGHTINGS:
      raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
    if self.presence_reduction not in ("mean", "sum"):
      raise ValueError(f"loss.presence_reduction must be 'mean' or 'sum', got "
                       f"{self.presence_reduction!r}")

  def make(self) -> Callable[[AEOutput, dict], tuple[jax.Array, dict]]:
    """Returns loss_fn(outputs, batch) -> (total, aux) with raw losses and learned weights."""
    cfg = self

    def loss_fn(out: AEOutput, batch: dict):
      l_p = multinomial_nll(out.item_logits, batch["presence"], cfg.presence_reduction)
      l_r = masked_huber(out.rating_pred, batch["rating"], batch["rating_mask"], cfg.huber_delta)
      if cfg.weighting == "uncertainty":
        total = uncertainty_weighted(l_p, l_r, out.log_var_presence, out.log_var_rating)
        w_p, w_r = jnp.exp(-out.log_var_presence), 0.5 * jnp.exp(-out.log_var_rating)
      else:
        total = cfg.presence_weight * l_p + cfg.rating_weight * l_r
        w_p, w_r = jnp.asarray(cfg.presence_weight), jnp.asarray(cfg.rating_weight)
      aux = {"loss_presence": l_p, "loss_rating": l_r, "weight_presence": w_p,
             "weight_rating": w_r, "log_var_presence": out.log_var_presence,
             "log_var_rating": out.log_var_rating}
      return total, aux

    return loss_fn
