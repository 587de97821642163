"""Phoenix training: all-prefix user tower = per-prefix build_user_representation; a quick
retrieval run learns an obvious sequential pattern; ranking metrics by hand."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import batching
from phoenix import training


def _tiny_cfg(**kw):
  emb = training.EmbeddingConfig(emb_size=16, user_table_size=64, item_table_size=128,
                                 author_table_size=16)
  base = dict(emb=emb, num_layers=1, num_q_heads=2, num_kv_heads=1, key_size=8,
              history_len=6, init_temperature=0.1)
  base.update(kw)
  return training.RetrievalConfig(**base)


def test_prefix_representations_equal_per_prefix_user_representation():
  x = training.synthetic_sequences(4, 30, 3, 9, seed=1)
  data = batching.SequenceData.from_interactions(x)
  task = training.RetrievalTask(_tiny_cfg(user_mode="id"), data, data.lengths(), None,
                                batch_size=4)
  users = np.arange(4)
  ex = task.make_batch(users, np.random.default_rng(0))
  params = task.fns.init(jax.random.PRNGKey(0), ex["batch"])["phoenix"]
  prefix, valid = task.fns.prefix_users(params, ex["batch"])
  hist = ex["batch"]
  for s in range(hist.history_post_hashes.shape[1]):
    # Truncate the history to positions 0..s (padding after).
    keep = (np.arange(hist.history_post_hashes.shape[1]) <= s)
    cut = hist._replace(
        history_post_hashes=np.where(keep[None, :, None], hist.history_post_hashes, 0),
        history_author_hashes=np.where(keep[None, :, None], hist.history_author_hashes, 0),
        history_actions=np.where(keep[None, :, None], hist.history_actions, 0),
        history_product_surface=np.where(keep[None, :], hist.history_product_surface, 0))
    full = task.fns.users(params, cut)
    ok = np.asarray(valid[:, s])
    np.testing.assert_allclose(np.asarray(prefix[:, s])[ok], np.asarray(full)[ok], atol=2e-5)


def test_prefix_pool_by_hand():
  out = jnp.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
  mask = jnp.array([[True, True, False]])
  pooled, count = training.prefix_pool(out, mask)
  np.testing.assert_allclose(np.asarray(pooled[0, 0]), [1, 0], atol=1e-6)
  np.testing.assert_allclose(np.asarray(pooled[0, 1]), [2 ** -0.5, 2 ** -0.5], atol=1e-6)
  np.testing.assert_allclose(np.asarray(pooled[0, 2]), [2 ** -0.5, 2 ** -0.5], atol=1e-6)
  np.testing.assert_array_equal(np.asarray(count[0]), [1, 2, 2])


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_loss_is_finite_and_has_gradients(loss):
  x = training.synthetic_sequences(8, 30, 4, 9, seed=2)
  data = batching.SequenceData.from_interactions(x)
  cfg = _tiny_cfg(loss=loss, num_negatives=16, num_in_batch=8, loss_positions=3)
  task = training.RetrievalTask(cfg, data, data.lengths() - 2, None, batch_size=8)
  batch = task.make_batch(np.arange(8), np.random.default_rng(0))
  params = task.fns.init(jax.random.PRNGKey(0), batch["batch"])
  (value, aux), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(params, None, batch)
  assert np.isfinite(float(value)) and float(value) > 0
  assert float(jnp.abs(grads["loss"]["log_temperature"])) > 0
  norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads["phoenix"])]
  assert sum(n > 0 for n in norms) > len(norms) // 2


def test_list_ndcg_by_hand():
  scores = np.array([[0.9, 0.1, 0.5]])
  rel = np.array([[0.0, 2.0, 1.0]])
  valid = np.ones((1, 3), bool)
  # Ranking: item0 (gain 0), item2 (gain 1), item1 (gain 3).
  dcg = 1 / np.log2(3) + 3 / np.log2(4)
  ideal = 3 + 1 / np.log2(3)
  np.testing.assert_allclose(training.list_ndcg(scores, rel, valid), [dcg / ideal])
