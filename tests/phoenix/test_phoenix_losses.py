"""Phoenix losses against hand computations."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import losses


def _lse(values):
  m = max(values)
  return m + math.log(sum(math.exp(v - m) for v in values))


def test_sampled_softmax_log_q_by_hand():
  # Two rows, 2-d vectors, three items (0, 1, 2); negatives = items 1 and 2.
  q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
  emb = {0: [1.0, 0.0], 1: [0.6, 0.8], 2: [0.0, 1.0]}
  pos_ids = np.array([0, 2])
  neg_ids = np.array([1, 2])
  log_q = {0: math.log(0.5), 1: math.log(0.3), 2: math.log(0.2)}
  t = 0.5
  loss = losses.sampled_softmax_loss(
      jnp.asarray(q), jnp.asarray([emb[i] for i in pos_ids]), jnp.asarray(pos_ids),
      jnp.asarray([emb[i] for i in neg_ids]), jnp.asarray(neg_ids),
      jnp.asarray([log_q[i] for i in pos_ids]), jnp.asarray([log_q[i] for i in neg_ids]), t)

  def logit(row, item):
    return float(np.dot(q[row], emb[item])) / t - log_q[item]

  # Row 0: target 0, negatives 1 and 2.
  l0 = _lse([logit(0, 0), logit(0, 1), logit(0, 2)]) - logit(0, 0)
  # Row 1: target 2; negative 2 is an accidental hit and is removed.
  l1 = _lse([logit(1, 2), logit(1, 1)]) - logit(1, 2)
  np.testing.assert_allclose(float(loss), (l0 + l1) / 2, rtol=1e-5)


def test_sampled_softmax_row_and_negative_masks():
  rng = np.random.default_rng(0)
  q = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  pos = jnp.asarray(rng.normal(size=(3, 4)), jnp.float32)
  neg = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
  args = dict(positive_ids=jnp.array([0, 1, 2]), negative_ids=jnp.arange(10, 15),
              log_q_positive=jnp.zeros(3), log_q_negatives=jnp.zeros(5), temperature=1.0)
  full = losses.sampled_softmax_loss(q[:2], pos[:2], negatives=neg[:3],
                                     **{**args, "positive_ids": jnp.array([0, 1]),
                                        "log_q_positive": jnp.zeros(2),
                                        "negative_ids": jnp.arange(10, 13),
                                        "log_q_negatives": jnp.zeros(3)})
  masked = losses.sampled_softmax_loss(q, pos, negatives=neg, mask=jnp.array([1, 1, 0]),
                                       negatives_mask=jnp.array([1, 1, 1, 0, 0]), **args)
  np.testing.assert_allclose(float(masked), float(full), rtol=1e-6)


def test_full_softmax_equals_cross_entropy():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(4, 7)).astype(np.float32)
  targets = np.array([0, 3, 6, 2])
  loss = losses.full_softmax_loss(jnp.asarray(logits), jnp.asarray(targets))
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  expected = -np.mean(np.log(p[np.arange(4), targets]))
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  # Row mask: only rows 0 and 2 count.
  masked = losses.full_softmax_loss(jnp.asarray(logits), jnp.asarray(targets),
                                    mask=jnp.array([1, 0, 1, 0]))
  np.testing.assert_allclose(float(masked), -np.mean(np.log(p[[0, 2], targets[[0, 2]]])),
                             rtol=1e-5)


def test_full_softmax_equals_sampled_softmax_over_all_items_without_log_q():
  rng = np.random.default_rng(2)
  q = rng.normal(size=(3, 5)).astype(np.float32)
  items = rng.normal(size=(6, 5)).astype(np.float32)
  targets = np.array([1, 4, 0])
  t = 0.7
  full = losses.full_softmax_loss(jnp.asarray(q @ items.T / t), jnp.asarray(targets))
  sampled = losses.sampled_softmax_loss(
      jnp.asarray(q), jnp.asarray(items[targets]), jnp.asarray(targets), jnp.asarray(items),
      jnp.arange(6), jnp.zeros(3), jnp.zeros(6), t)
  np.testing.assert_allclose(float(full), float(sampled), rtol=1e-5)


def test_mixture_log_q():
  lq = losses.mixture_log_q(4, np.array([0.5, 0.5, 0.0]), 2, np.array([0.25, 0.25, 0.5]))
  np.testing.assert_allclose(np.exp(lq), [2.5, 2.5, 1.0], rtol=1e-6)


def test_sigmoid_loss_by_hand_and_masked_heads_contribute_nothing():
  logits = jnp.array([[[0.5, -1.0, 100.0]]])
  labels = jnp.array([[[1.0, 0.0, 0.0]]])
  mask = jnp.array([[[1.0, 1.0, 0.0]]])
  loss = losses.multi_label_sigmoid_loss(logits, labels, mask)
  sig = lambda x: 1 / (1 + math.exp(-x))
  expected = (-math.log(sig(0.5)) - math.log(1 - sig(-1.0))) / 2
  np.testing.assert_allclose(float(loss), expected, rtol=1e-6)
  # The masked entry has no effect on the value or the gradient, even if it is inf/nan.
  grad = jax.grad(lambda x: losses.multi_label_sigmoid_loss(x, labels, mask))(logits)
  assert float(grad[0, 0, 2]) == 0.0
  for bad in (jnp.inf, jnp.nan, -5.0):
    other = logits.at[0, 0, 2].set(bad)
    np.testing.assert_allclose(float(losses.multi_label_sigmoid_loss(other, labels, mask)),
                               expected, rtol=1e-6)
    g = jax.grad(lambda x: losses.multi_label_sigmoid_loss(x, labels, mask))(other)
    assert np.all(np.isfinite(np.asarray(g)))


def test_sigmoid_loss_per_head_and_weights():
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 2, size=(2, 3, 4)), jnp.float32)
  mask = jnp.ones((2, 3, 4)).at[:, :, 3].set(0.0)
  loss, per_head = losses.multi_label_sigmoid_loss(logits, labels, mask, per_head=True)
  x, y = np.asarray(logits), np.asarray(labels)
  ce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
  np.testing.assert_allclose(np.asarray(per_head)[:3], ce[:, :, :3].mean(axis=(0, 1)), rtol=1e-5)
  assert float(per_head[3]) == 0.0
  np.testing.assert_allclose(float(loss), ce[:, :, :3].mean(), rtol=1e-5)
  w = jnp.array([2.0, 0.0, 1.0, 5.0])
  weighted = losses.multi_label_sigmoid_loss(logits, labels, mask, head_weights=w)
  expected = (2 * ce[:, :, 0].sum() + ce[:, :, 2].sum()) / (2 * 6 + 6)
  np.testing.assert_allclose(float(weighted), expected, rtol=1e-5)


def test_temperature_is_clipped():
  assert float(losses.temperature_from_log(jnp.log(0.05))) == pytest.approx(0.05)
  assert float(losses.temperature_from_log(jnp.array(-20.0))) == pytest.approx(0.01)
  assert float(losses.temperature_from_log(jnp.array(5.0))) == pytest.approx(1.0)


def test_prefix_seen_mask_by_hand_and_the_target_stays_in_the_softmax():
  # Two rows of S = 4 (-1 = padding); slots b * 4 + s.
  hist = jnp.array([[5, 2, 5, -1], [0, 1, 3, 4]])
  slots = jnp.array([0, 2, 3, 5, 7])
  mask = np.asarray(losses.prefix_seen_mask(hist, slots, num_items=6))
  expected = np.zeros((5, 6), bool)
  for m, (b, s) in enumerate([(0, 0), (0, 2), (0, 3), (1, 1), (1, 3)]):
    for item in np.asarray(hist)[b, :s + 1]:
      if item >= 0:
        expected[m, item] = True
  np.testing.assert_array_equal(mask, expected)
  assert mask[1].sum() == 2 and mask[4].sum() == 4      # repeats counted once; no padding
  # With the mask the softmax runs over the unseen items plus the target, even a seen one.
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(5, 6)).astype(np.float32)
  targets = np.array([2, 5, 1, 3, 2])                   # row 1's target 5 was seen
  loss = losses.full_softmax_loss(jnp.asarray(logits), jnp.asarray(targets),
                                  exclude=jnp.asarray(mask))
  keep = ~mask
  keep[np.arange(5), targets] = True
  z = np.log(np.where(keep, np.exp(logits), 0).sum(1))
  np.testing.assert_allclose(float(loss), np.mean(z - logits[np.arange(5), targets]),
                             rtol=1e-5)
