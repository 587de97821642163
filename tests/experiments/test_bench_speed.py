"""Tests of the speed benchmarks (experiments/bench_ae_flops.py, bench_retrieval_topk.py,
bench_input_pipeline.py, bench_retrieval_loss.py) and of recsys_core.prefetch, on tiny sizes."""
import dataclasses
import threading
import time

import jax
import jax.numpy as jnp
from ml_collections import config_dict
import numpy as np
import pytest

from anime_ae import training
from anime_ae.profiles import SparseProfiles
from anime_ae.ratings import UserStats
from experiments import bench_ae_flops, bench_input_pipeline, bench_retrieval_topk
from experiments.configs import bench_speed
from recsys_core.prefetch import prefetch_to_device


# ---- FLOP count -------------------------------------------------------------------------

def test_flops_formula_equals_hand_count():
  # I=3, H=4, Z=2, B=1. Layers (fan_in x fan_out): encoder 6x4=24, bottleneck 4x2=8,
  # per head up1 2x2=4, up2 2x4=8, out 4x3=12 -> 24 + 8 + 2*(4 + 8) + 2*12 = 80 MACs.
  f = bench_ae_flops.ae_flops(num_items=3, hidden=4, bottleneck=2, batch=1)
  assert f["forward"] == 2 * 80
  assert f["train_3x"] == 3 * 160
  assert f["train_exact"] == 3 * 160 - 2 * 24      # no input gradient for the encoder
  assert bench_ae_flops.ae_flops(3, 4, 2, batch=5)["forward"] == 5 * 160
  # shared decoder: one trunk (4 + 8) instead of two
  assert bench_ae_flops.ae_flops(3, 4, 2, 1, shared_decoder=True)["forward"] == 2 * 68


@pytest.mark.parametrize("shared", [False, True])
def test_layer_shapes_match_the_model(shared):
  # The counted layers are exactly the model's: same parameter count as the haiku init.
  ae = bench_ae_flops.ae_config("quick", {"hidden_dim": 6, "bottleneck_dim": 4,
                                          "shared_decoder": shared})
  params = training.init_params(ae.model.make(5), 5, 0)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  assert bench_ae_flops.ae_flops(5, 6, 4, 1, shared)["params"] == n_params


def test_ae_flops_benchmark_tiny():
  cfg = bench_speed.get_config("tiny").ae_flops
  cfg.update(dict(rounds=1, warmup=1, reps=1, matmul_n=32, num_items=16))
  cfg.variants = ("as_trained",)
  cfg.model_override.update(dict(hidden_dim=8, bottleneck_dim=4))
  res = bench_ae_flops.run_benchmark(cfg, log=lambda s: None)
  f = bench_ae_flops.ae_flops(16, 8, 4, 16)
  assert res["step_flops_exact"] == f["train_exact"]
  assert res["matmul_flops"] == 2 * 32 ** 3
  assert set(res["variants"]) == {"as_trained"} and res["best_step_variant"] == "as_trained"
  v = res["variants"]["as_trained"]
  assert res["fraction_of_peak"] == pytest.approx(
      (v["step_flops_exact"] / v["step_seconds"])
      / (res["matmul_flops"] / res["seconds"]["matmul"]))
  assert res["fraction_of_peak"] > 0 and res["fraction_of_peak_as_trained"] > 0
  if res["xla_flops"] is not None:   # XLA counts the matmuls plus elementwise work
    assert res["xla_flops"] >= 0.9 * f["train_exact"]


# ---- prefetch ---------------------------------------------------------------------------

def test_prefetch_preserves_order_and_moves_to_device():
  src = ({"x": np.full((2,), i, np.float32)} for i in range(20))
  with prefetch_to_device(src, depth=3) as it:
    out = list(it)
  assert [int(b["x"][0]) for b in out] == list(range(20))
  assert all(isinstance(b["x"], jax.Array) for b in out)


def test_prefetch_propagates_exceptions_in_position():
  def gen():
    yield 0
    yield 1
    raise KeyError("boom at 2")

  it = prefetch_to_device((np.int32(i) for i in gen()), depth=2)
  assert int(next(it)) == 0 and int(next(it)) == 1
  with pytest.raises(KeyError, match="boom at 2"):
    next(it)
  with pytest.raises(StopIteration):
    next(it)


def test_prefetch_runs_ahead_bounded_and_closes():
  produced = []

  def gen():
    for i in range(1000):
      produced.append(i)
      yield np.int32(i)

  it = prefetch_to_device(gen(), depth=2)
  assert int(next(it)) == 0
  time.sleep(0.3)
  assert 2 <= len(produced) <= 5        # ran ahead, but only about `depth` batches
  it.close()                              # must not hang on the full queue
  assert not any(t.name == "prefetch_to_device" and t.is_alive() and t is it._thread
                 for t in threading.enumerate())
  with pytest.raises(ValueError, match="depth"):
    prefetch_to_device([], depth=0)


# ---- input pipeline ---------------------------------------------------------------------

def _profiles(num_users=24, num_items=20, seed=0) -> SparseProfiles:
  rng = np.random.default_rng(seed)
  lens = rng.integers(3, 10, num_users)
  items = np.concatenate([np.sort(rng.choice(num_items, n, replace=False)) for n in lens])
  offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
  n = len(items)
  return SparseProfiles(offsets, items.astype(np.uint16),
                        rng.normal(size=n).astype(np.float16), rng.random(n) < 0.7,
                        UserStats(np.zeros(num_users, np.float32), np.ones(num_users, np.float32),
                                  lens.astype(np.int32)), num_items)


def test_sparse_batches_densify_equals_dense_batch():
  p = _profiles()
  ae = bench_ae_flops.ae_config("quick")
  ae = dataclasses.replace(ae, train=dataclasses.replace(ae.train, batch_size=8))
  dense_fn = training.ProfileBatches(p, ae)
  sparse_fn = training.SparseProfileBatches(p, ae)
  assert sparse_fn.capacity == np.sort(p.lengths())[::-1][:8].sum()
  for step in (0, 1, 5):
    ref = dense_fn(step)
    got = training.densify(sparse_fn(step), 8, p.num_items)
    for key, v in ref.items():
      np.testing.assert_array_equal(np.asarray(got[key]), v, err_msg=key)
  assert ref["presence"].sum() == p.lengths()[dense_fn.batcher.indices(5)].sum()


def test_input_pipeline_benchmark_tiny():
  cfg = bench_speed.get_config("tiny").input_pipeline
  cfg.update(dict(rounds=1, steps=2, warmup=1, batch_size=8))
  cfg.model_override.update(dict(hidden_dim=8, bottleneck_dim=4))
  res = bench_input_pipeline.run_benchmark(cfg, log=lambda s: None, profiles=_profiles())
  sec = res["seconds_per_step"]
  assert set(res["ratio_to_resident"]) == {"host", "prefetch", "sparse", "sparse_prefetch"}
  for k, r in res["ratio_to_resident"].items():
    assert r == pytest.approx(sec[k] / sec["resident"])
  assert res["default_variant"] == "sparse"       # anime_ae's default input pipeline
  assert res["ratio"] == res["ratio_to_resident"]["sparse"]
  assert res["dense_batch_bytes"] == 5 * 8 * 20 * 4


# ---- retrieval --------------------------------------------------------------------------

def test_blocked_topk_is_exact():
  ku, kc = jax.random.split(jax.random.PRNGKey(0))
  users = bench_retrieval_topk.unit_vectors(ku, 3, 8, jnp.float32)
  corpus = bench_retrieval_topk.unit_vectors(kc, 512, 8, jnp.float32)
  exact = np.asarray(bench_retrieval_topk.exact_topk(users, corpus, 7))
  blocked = np.asarray(bench_retrieval_topk.blocked_topk(users, corpus, 7, 128))
  np.testing.assert_array_equal(np.sort(exact, 1), np.sort(blocked, 1))
  assert bench_retrieval_topk.recall(blocked[:, :3], exact[:, :3]) == 1.0
  assert bench_retrieval_topk.recall(exact[:, ::-1], exact) == 1.0
  with pytest.raises(ValueError, match="divide"):
    bench_retrieval_topk.blocked_topk(users, corpus, 7, 100)


def test_retrieval_benchmark_tiny():
  cfg = bench_speed.get_config("tiny").retrieval
  cfg.update(dict(num_items=2048, dim=8, num_users=2, top_k=5, block=512, rounds=1, reps=1,
                  dtypes=("float32", "bfloat16")))
  res = bench_retrieval_topk.run_benchmark(cfg, log=lambda s: None)
  for dt, itemsize in (("float32", 4), ("bfloat16", 2)):
    r = res["dtypes"][dt]
    assert r["corpus_bytes"] == 2048 * 8 * itemsize
    for m in ("exact", "approx", "blocked", "copy_jax"):
      assert r["bytes_per_s"][m] == pytest.approx(r["corpus_bytes"] / r["seconds"][m])
    for m in ("exact", "approx", "blocked"):
      assert r["fraction_of_copy_bandwidth"][m] == pytest.approx(
          r["seconds"]["copy_jax"] / r["seconds"][m])
    assert r["recall_blocked"] == 1.0
    assert 0.0 <= r["recall_approx"] <= 1.0
  f32 = res["dtypes"]["float32"]
  assert res["fraction_of_copy_bandwidth"] == f32["fraction_of_copy_bandwidth"][f32["best_method"]]


def test_retrieval_loss_benchmark_tiny():
  """Packed and plain steps train the same loss from the same state; short sequences in a
  longer window leave most slots empty, and the figures are per-round times."""
  from experiments import bench_retrieval_loss
  cfg = bench_speed.get_config("tiny").retrieval_loss
  res = bench_retrieval_loss.run_benchmark(cfg, log=lambda s: None)
  loss = res["loss_first_step"]
  assert np.isfinite(loss["plain"]) and abs(loss["plain"] - loss["packed"]) < 1e-4
  assert max(res["valid_slots_per_batch"]) < res["packed_rows"] < res["slots_per_batch"]
  assert res["positions_dropped"] == [0] * cfg.reps
  assert all(len(v) == cfg.rounds and min(v) > 0 for v in res["seconds_per_round"].values())
  assert res["speedup"] == pytest.approx(res["seconds_per_step"]["plain"]
                                         / res["seconds_per_step"]["packed"])
