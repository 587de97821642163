"""recsys_core.parallel: mesh/sharding helpers in-process, multi-device checks in a subprocess.

The multi-device checks (data parallel on 8 fake CPU devices vs 1 device; data x model with
a row-sharded embedding table; sharded lookup and its gradient) live in
tests/recsys_core/_multihost_worker.py and run in ONE subprocess started with 8 CPU devices,
shared by all tests here (and by pytest-xdist workers). Tolerance: rtol=1e-5, atol=1e-6 on
losses and parameters after 5 Adam steps of recsys_core.train.make_update_fn (float32, different
reduction order); the lookup itself is exact and its gradient within 1e-6.
"""
import jax
import numpy as np
import pytest
from absl import flags as absl_flags
from absl.testing import flagsaver

from recsys_core import parallel
from recsys_core.parallel import flags as parallel_flags
from tests.recsys_core import _multihost_worker as worker


@pytest.fixture(scope="module")
def eight_devices(tmp_path_factory):
  run = worker.run_once(tmp_path_factory, "parallel_devices_8",
                        lambda: worker.run_worker(["devices", "8"]))
  assert run["result"] is not None, f"worker crashed (rc={run['rc']}):\n{run['log']}"
  return run["result"]


@pytest.mark.parametrize("check", [c.__name__ for c in worker.DEVICE_CHECKS])
def test_eight_device_check(eight_devices, check):
  status = eight_devices["checks"][check]
  assert status == "ok", status


def test_sharded_lookup_uses_only_all_reduce(eight_devices):
  assert eight_devices["facts"]["collectives"] == ["all-reduce"]


# ------------------------------------------------------------------ in-process, 1 CPU device
def test_single_device_is_the_same_code_path():
  state, update, batches = worker.make_problem()
  mesh = parallel.make_mesh()
  assert dict(mesh.shape) == {"data": len(jax.devices()), "model": 1}
  new_state, losses = worker.train(mesh, state, update, batches)
  assert losses.shape == (worker.STEPS,) and np.all(np.isfinite(losses))
  assert losses[-1] < losses[0] * 1.5  # it trains (noisy random targets; no blow-up)


def test_param_shardings_rules():
  mesh = parallel.make_mesh()
  tree = {"params": {"net/embed": {"table": np.zeros((4, 2))}, "net/linear": {"w": np.zeros(3)}},
          "opt": ({"mu": {"net/embed": {"table": np.zeros((4, 2))}}}, np.int32(0))}
  sh = parallel.param_shardings(tree, mesh, [(r"embed/table", parallel.P("model", None))])
  assert sh["params"]["net/embed"]["table"].spec == parallel.P("model", None)
  assert sh["opt"][0]["mu"]["net/embed"]["table"].spec == parallel.P("model", None)
  assert sh["params"]["net/linear"]["w"].spec == parallel.P()
  assert sh["opt"][1].spec == parallel.P()
  with pytest.raises(ValueError, match="more entries"):
    parallel.param_shardings(tree, mesh, [(r"linear/w", parallel.P("model", None))])


def test_table_row_rules_match_hash_tables_and_their_moments():
  mesh = parallel.make_mesh()
  tree = {"params": {"phoenix/~/hash_embeddings": {"item_table": np.zeros((8, 2)),
                                                   "user_table": np.zeros((8, 2))},
                     "phoenix/~/linear": {"w": np.zeros((2, 2))}},
          "opt_state": ({"mu": {"phoenix/~/hash_embeddings": {"item_table": np.zeros((8, 2))}}},),
          "small": {"phoenix/model": {"product_surface_embedding_table": np.zeros((3, 2))}}}
  sh = parallel.param_shardings(tree, mesh, parallel.TABLE_ROW_RULES)
  table_spec = parallel.P("model", None)
  assert sh["params"]["phoenix/~/hash_embeddings"]["item_table"].spec == table_spec
  assert sh["params"]["phoenix/~/hash_embeddings"]["user_table"].spec == table_spec
  assert sh["opt_state"][0]["mu"]["phoenix/~/hash_embeddings"]["item_table"].spec == table_spec
  assert sh["params"]["phoenix/~/linear"]["w"].spec == parallel.P()
  assert sh["small"]["phoenix/model"]["product_surface_embedding_table"].spec == parallel.P()


def test_param_shardings_rejects_indivisible_rows():
  mesh = parallel.make_mesh(data=1, model=1)
  fake = type("M", (), {"shape": {"data": 1, "model": 3}})()
  with pytest.raises(ValueError, match="not divisible"):
    parallel.param_shardings({"embed": np.zeros((4, 2))}, fake, [("embed", parallel.P("model"))])
  assert parallel.param_shardings({"embed": np.zeros((4, 2))}, mesh,
                                  [("embed", parallel.P("model"))])


def test_make_mesh_rejects_too_many_devices():
  with pytest.raises(ValueError, match="does not fit"):
    parallel.make_mesh(data=len(jax.devices()) + 1)


def test_batch_helpers_on_one_process():
  mesh = parallel.make_mesh()
  batch = {"x": np.arange(12.0).reshape(6, 2), "n": np.float32(3), "negatives": np.arange(5)}
  assert parallel.host_local_rows(batch, mesh)["x"].shape == (6, 2)  # one process: all rows
  placed = parallel.shard_batch(batch, mesh, replicated=["neg"])
  assert placed["x"].sharding.spec == parallel.P("data")
  assert placed["negatives"].sharding.spec == parallel.P()
  out = parallel.fetch(placed)
  np.testing.assert_array_equal(out["x"], batch["x"])
  np.testing.assert_array_equal(out["negatives"], batch["negatives"])
  assert out["n"] == 3


def test_primary_and_flags_single_process():
  assert parallel.is_primary()
  parallel.barrier("noop")  # one process: returns at once
  for name in ("coordinator_address", "num_processes", "process_id", "local_device_count"):
    assert name in absl_flags.FLAGS, name
  was_parsed = absl_flags.FLAGS.is_parsed()  # leave FLAGS as other tests had them
  if not was_parsed:
    absl_flags.FLAGS(["prog"])
  try:
    assert (parallel_flags.NUM_PROCESSES.value, parallel_flags.PROCESS_ID.value) == (1, 0)
    with flagsaver.flagsaver(coordinator_address="127.0.0.1:1"):
      parallel_flags.initialize_from_flags()  # num_processes=1: no jax.distributed, no-op
    assert jax.process_count() == 1
  finally:
    if not was_parsed:
      absl_flags.FLAGS.unparse_flags()
