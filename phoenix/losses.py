"""Training losses for the two Phoenix models.

Retrieval (two towers, scores = <user, candidate> / temperature on L2-normalised vectors):
  * `full_softmax_loss`: softmax cross-entropy of the target against every item of the corpus.
    Cheap when the corpus is small (ML-1M: 3.4k items) and then the best choice.
    `prefix_seen_mask` builds its optional `exclude` mask: the items each row's user has
    already seen, which the leave-one-out evaluation never ranks.
  * `sampled_softmax_loss`: softmax over the target, a subset of the batch's other targets
    ("in-batch negatives") and M sampled negatives, with the log-Q correction (Yi et al.,
    RecSys 2019; Bengio & Senecal 2008): every candidate's logit is reduced by
    log E[number of times the item appears among the candidates], so that frequently sampled
    (popular) items are not over-penalised. Accidental hits (a negative equal to the row's
    target) are removed from the row.
  * `Temperature`: the learnable softmax temperature, kept as log(T) and clipped.

Ranking (candidate-isolated transformer, logits [B, C, A]):
  * `multi_label_sigmoid_loss`: sigmoid cross-entropy per action head, with a per-entry
    mask [B, C, A]; masked entries (heads the data does not define, padded candidates)
    contribute nothing to the loss or its gradient.

Shape glossary: B = rows (users or user-prefix positions), D = embedding size,
I = corpus size, K = in-batch negatives, M = sampled negatives, C = candidates, A = actions.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

NEG_INF = -1e9


# ----------------------------------------------------------------------------------------
# Temperature.

def temperature_from_log(log_temperature: jax.Array, min_temperature: float = 0.01,
                         max_temperature: float = 1.0) -> jax.Array:
  """T = clip(exp(log_T), min, max): positive and bounded (a collapse to 0 would blow up)."""
  return jnp.clip(jnp.exp(log_temperature), min_temperature, max_temperature)


# ----------------------------------------------------------------------------------------
# Retrieval.

def _masked_mean(values: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  values = values.astype(jnp.float32)
  if mask is None:
    return jnp.mean(values)
  mask = mask.astype(jnp.float32)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def full_softmax_loss(logits: jax.Array, targets: jax.Array,
                      mask: Optional[jax.Array] = None,
                      exclude: Optional[jax.Array] = None) -> jax.Array:
  """Mean softmax cross-entropy of `targets` [B] over the full logits [B, I].

  Args:
    logits: [B, I] scores over the whole corpus (already divided by the temperature).
    targets: [B] int target item index per row.
    mask: [B] rows to average over (1) or ignore (0); None = all rows.
    exclude: optional [B, I] bool, items removed from a row's softmax (never the target).
  """
  logits = logits.astype(jnp.float32)
  if exclude is not None:
    onehot = jax.nn.one_hot(targets, logits.shape[-1], dtype=bool)
    logits = jnp.where(exclude & ~onehot, NEG_INF, logits)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  target_logit = jnp.take_along_axis(logits, targets[:, None].astype(jnp.int32), axis=-1)[:, 0]
  return _masked_mean(log_z - target_logit, mask)


def prefix_seen_mask(history_items: jax.Array, slots: jax.Array, num_items: int) -> jax.Array:
  """[M, I] bool: the items a loss slot's user has seen, for `full_softmax_loss(exclude=)`.

  Args:
    history_items: [B, S] item index per history position (-1 = padding); the target of
      position s is the item after it, so the items seen by then are positions 0..s.
    slots: [M] flat indices b * S + s of the loss rows into the B*S (row, position) slots.
    num_items: I.
  """
  s = history_items.shape[1]
  rows = history_items[slots // s]                                   # [M, S]
  seen = (jnp.arange(s)[None, :] <= (slots % s)[:, None]) & (rows >= 0)
  # Unseen positions write to a spare column I, dropped after the scatter.
  cols = jnp.where(seen, rows, num_items)
  m = slots.shape[0]
  mask = jnp.zeros((m, num_items + 1), bool).at[jnp.arange(m)[:, None], cols].set(True)
  return mask[:, :num_items]


def sampled_softmax_loss(query: jax.Array, positive: jax.Array, positive_ids: jax.Array,
                         negatives: jax.Array, negative_ids: jax.Array,
                         log_q_positive: jax.Array, log_q_negatives: jax.Array,
                         temperature: jax.Array | float,
                         mask: Optional[jax.Array] = None,
                         negatives_mask: Optional[jax.Array] = None) -> jax.Array:
  """Sampled softmax with log-Q correction and accidental-hit removal.

  Row b's candidates are its own positive (column 0) and the shared negatives (columns 1..N):
    logit_b0 = <q_b, p_b>/T - logQ(p_b),   logit_bj = <q_b, n_j>/T - logQ(n_j),
  loss_b = logsumexp_j(logit_bj) - logit_b0, with n_j removed from row b when
  negative_ids[j] == positive_ids[b] (an accidental hit).

  In-batch negatives are passed as part of `negatives` (e.g. a subset of the batch's
  positives); logQ of an item must then be log(expected count of that item among all the
  shared negatives), e.g. log(K * p_target(j) + M * q_sampler(j)) for K in-batch and M
  sampled negatives (`mixture_log_q`).

  Args:
    query: [B, D] user representations.
    positive: [B, D] each row's target candidate representation.
    positive_ids: [B] int target ids.
    negatives: [N, D] shared negative candidate representations.
    negative_ids: [N] int ids of the negatives.
    log_q_positive: [B] logQ of each row's target.
    log_q_negatives: [N] logQ of each negative.
    temperature: scalar softmax temperature.
    mask: [B] rows to average over.
    negatives_mask: [N] valid negatives (e.g. in-batch columns from padded rows are 0).
  """
  query = query.astype(jnp.float32)
  pos_logit = jnp.sum(query * positive.astype(jnp.float32), axis=-1) / temperature
  pos_logit = pos_logit - log_q_positive
  neg_logits = query @ negatives.astype(jnp.float32).T / temperature
  neg_logits = neg_logits - log_q_negatives[None, :]
  invalid = negative_ids[None, :] == positive_ids[:, None]
  if negatives_mask is not None:
    invalid = invalid | ~negatives_mask.astype(bool)[None, :]
  neg_logits = jnp.where(invalid, NEG_INF, neg_logits)
  all_logits = jnp.concatenate([pos_logit[:, None], neg_logits], axis=-1)
  loss = jax.nn.logsumexp(all_logits, axis=-1) - pos_logit
  return _masked_mean(loss, mask)


def mixture_log_q(num_in_batch: int, target_probs: np.ndarray, num_sampled: int,
                  sampler_probs: np.ndarray, eps: float = 1e-12) -> np.ndarray:
  """[I] log of the expected count of each item among K in-batch + M sampled negatives.

  In-batch negatives are K targets drawn from the batch, i.e. ~ the target distribution
  `target_probs` [I]; sampled negatives are M draws from `sampler_probs` [I].
  """
  expected = num_in_batch * np.asarray(target_probs, np.float64) + num_sampled * np.asarray(
      sampler_probs, np.float64)
  return np.log(np.maximum(expected, eps)).astype(np.float32)


# ----------------------------------------------------------------------------------------
# Ranking.

def multi_label_sigmoid_loss(logits: jax.Array, labels: jax.Array, mask: jax.Array,
                             head_weights: Optional[jax.Array] = None,
                             per_head: bool = False):
  """Masked sigmoid cross-entropy over action heads.

  Args:
    logits: [B, C, A] logits.
    labels: [B, C, A] 0/1 labels.
    mask: [B, C, A] (or broadcastable) 1 where the label is defined, 0 elsewhere.
    head_weights: optional [A] weight per head.
    per_head: also return the [A] mean loss per head.

  Returns:
    The mean over defined entries of the (weighted) cross-entropy: sum(w*m*ce) / sum(w*m).
    With per_head=True, (loss, [A] per-head means).
  """
  logits = logits.astype(jnp.float32)
  labels = labels.astype(jnp.float32)
  mask = jnp.broadcast_to(mask, logits.shape).astype(jnp.float32)
  # Stable: max(x,0) - x*y + log(1+exp(-|x|)); masked entries are zeroed with `where`
  # so that inf/nan logits there cannot leak into the loss or its gradient.
  safe_logits = jnp.where(mask > 0, logits, 0.0)
  ce = (jnp.maximum(safe_logits, 0) - safe_logits * labels
        + jnp.log1p(jnp.exp(-jnp.abs(safe_logits))))
  ce = ce * mask
  weights = mask if head_weights is None else mask * head_weights.astype(jnp.float32)
  weighted = ce if head_weights is None else ce * head_weights.astype(jnp.float32)
  loss = jnp.sum(weighted) / jnp.maximum(jnp.sum(weights), 1e-9)
  if not per_head:
    return loss
  head = jnp.sum(ce, axis=(0, 1)) / jnp.maximum(jnp.sum(mask, axis=(0, 1)), 1.0)
  return loss, head
