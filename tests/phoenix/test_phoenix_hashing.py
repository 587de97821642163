"""Tests of phoenix.hashing: deterministic, in-range hashes and the hash embedding tables."""
import json
import os
import subprocess
import sys

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix import hashing
from phoenix import recsys_model as rm

IDS = np.array([0, 1, 2, 3, 17, 10**6, 2**40 + 5, 2**62, -1, -7])


def test_hashes_are_deterministic_across_processes():
  """A fresh interpreter (other PYTHONHASHSEED) computes the same hashes, and so did the
  version these constants were taken from."""
  code = ("import json, numpy as np; from phoenix import hashing; "
          f"ids = np.array({IDS.tolist()}); "
          "print(json.dumps({k: hashing.hash_ids(ids, 3, 1009, k).tolist() "
          "for k in ('user', 'item', 'author')}))")
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = {**os.environ, "PYTHONHASHSEED": "12345", "JAX_PLATFORMS": "cpu",
         "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
  out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True,
                       capture_output=True, text=True).stdout
  theirs = json.loads(out.strip().splitlines()[-1])
  for kind, hashes in theirs.items():
    np.testing.assert_array_equal(hashing.hash_ids(IDS, 3, 1009, kind), hashes)
  np.testing.assert_array_equal(
      hashing.hash_ids(np.array([0, 1, 2, 12345678901, -1]), 2, 1000, "item"),
      [[711, 913], [367, 797], [378, 975], [43, 306], [0, 0]])


def test_hashes_in_range_and_zero_only_for_padding():
  ids = np.concatenate([np.arange(20000), np.random.default_rng(0).integers(0, 2**62, 20000)])
  for size in (2, 7, 1000, 1 << 20):
    h = hashing.hash_ids(ids, 2, size, "item")
    assert h.dtype == np.int32 and h.shape == (ids.size, 2)
    assert h.min() >= 1 and h.max() < size
  padded = hashing.hash_ids(np.array([[5, hashing.PADDING_ID], [-3, 0]]), 2, 50, "user")
  np.testing.assert_array_equal(padded[0, 1], 0)
  np.testing.assert_array_equal(padded[1, 0], 0)
  assert np.all(padded[0, 0] > 0) and np.all(padded[1, 1] > 0)


def test_hash_functions_and_kinds_differ_and_spread_evenly():
  ids = np.arange(50000)
  h = hashing.hash_ids(ids, 3, 1000, "item")
  for a, b in [(0, 1), (0, 2), (1, 2)]:
    assert np.mean(h[:, a] == h[:, b]) < 0.01  # ~1/999 by chance
  assert np.mean(hashing.hash_ids(ids, 1, 1000, "user")[:, 0] == h[:, 0]) < 0.01
  counts = np.bincount(h[:, 0], minlength=1000)[1:]
  assert counts.min() > 20 and counts.max() < 90  # mean 50: no bucket starved or flooded


def test_hash_embeddings_gather_rows_and_zero_padding():
  cfg = hashing.HashTableConfig(emb_size=8, user_table_size=11, item_table_size=13,
                                author_table_size=7)
  b, s, c = 2, 3, 4
  rng = np.random.default_rng(0)
  history_posts = rng.integers(0, 1000, (b, s))
  history_posts[0, -1] = hashing.PADDING_ID
  batch = cfg.make_batch(
      user_ids=np.array([3, 9]), history_post_ids=history_posts,
      history_author_ids=rng.integers(0, 100, (b, s)),
      history_actions=rng.random((b, s, 5)) < 0.5, history_product_surface=np.zeros((b, s)),
      candidate_post_ids=rng.integers(0, 1000, (b, c)),
      candidate_author_ids=rng.integers(0, 100, (b, c)),
      candidate_product_surface=np.ones((b, c)))
  assert batch.history_post_hashes.shape == (b, s, 2) and batch.user_hashes.shape == (b, 2)
  np.testing.assert_array_equal(batch.history_post_hashes[0, -1], 0)
  f = hk.without_apply_rng(hk.transform(lambda x: hashing.HashEmbeddings(cfg)(x)))
  params = jax.jit(f.init)(jax.random.PRNGKey(0), batch)
  tables = params["hash_embeddings"]
  assert tables["item_table"].shape == (13, 8) and tables["user_table"].shape == (11, 8)
  assert tables["author_table"].shape == (7, 8)
  emb = jax.jit(f.apply)(params, batch)
  assert isinstance(emb, rm.RecsysEmbeddings)
  assert emb.history_post_embeddings.shape == (b, s, 2, 8)
  assert emb.candidate_author_embeddings.shape == (b, c, 2, 8)
  np.testing.assert_array_equal(emb.history_post_embeddings[0, -1], 0.0)
  np.testing.assert_array_equal(emb.user_embeddings[1, 0],
                                tables["user_table"][batch.user_hashes[1, 0]])
  # Gradient reaches the used rows only, never the padding row.
  grads = jax.jit(jax.grad(lambda p: sum(jnp.sum(x) for x in jax.tree_util.tree_leaves(
      f.apply(p, batch)))))(params)["hash_embeddings"]
  np.testing.assert_array_equal(grads["item_table"][0], 0.0)
  used = np.unique(np.concatenate([batch.history_post_hashes.ravel(),
                                   batch.candidate_post_hashes.ravel()]))
  used = used[used > 0]
  assert np.all(np.abs(np.asarray(grads["item_table"])[used]).sum(-1) > 0)
