"""Multi-device / multi-process checks of recsys_core.parallel, run in fresh subprocesses.

The pytest process keeps its single CPU device; these checks need JAX started with several
(fake) CPU devices or joined to other processes, which only works before JAX initialises,
hence a subprocess per configuration:

  python tests/recsys_core/_multihost_worker.py devices 8           # one process, 8 devices
  python tests/recsys_core/_multihost_worker.py process PID 2 PORT  # 1 of 2, 2 devices each

Each run prints one line `RESULT {json}` mapping check name → "ok" or the failure's
traceback (plus a few facts), so a test reports exactly which check failed.

Tolerance of every "same result" check: float32 with a different reduction order (the
batch-gradient sum is split over devices and all-reduced), so rtol=1e-5, atol=1e-6 on
losses and parameters after STEPS steps (measured: losses 3e-7 relative, parameters 1.2e-7
absolute, on 8 devices and on 4x2).
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import subprocess
import sys
import traceback
from typing import Any, Callable

RTOL, ATOL = 1e-5, 1e-6
STEPS = 5
GLOBAL_BATCH = 32
ROWS, DIM = 64, 8  # embedding table: rows divisible by every 'model' axis size used here
NEGATIVES = 6  # ids shared by the whole batch (not per example): a replicated batch leaf
SHARED = ("negatives",)  # `replicated=` of shard_batch / host_local_rows

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# ---------------------------------------------------------------- the shared training problem
def make_problem():
  """A small Haiku model (embedding table + MLP), data, and the project's jitted update.

  Returns (TrainState, update, batches): `recsys_core.train.make_update_fn` with Adam
  (lr 1e-2, global-norm clipping 1.0), exactly what the models train with.
  """
  import haiku as hk
  import jax
  import jax.numpy as jnp
  import numpy as np
  from recsys_core import train as train_lib

  class Model(hk.Module):

    def __call__(self, ids, x):
      table = hk.get_parameter("item_table", [ROWS, DIM], init=hk.initializers.RandomNormal())
      h = jnp.concatenate([jnp.take(table, ids, axis=0), x], axis=-1)
      h = jax.nn.gelu(hk.Linear(32)(h))
      h = jax.nn.gelu(hk.Linear(32)(h))
      return hk.Linear(1)(h)[..., 0]

  net = hk.without_apply_rng(hk.transform(lambda ids, x: Model(name="model")(ids, x)))

  def loss_fn(params, rng, batch):
    del rng
    pred = net.apply(params, batch["ids"], batch["x"])
    # Shared negatives: a sum over the batch-wide ids (any duplication would change it).
    neg = net.apply(params, batch["negatives"], jnp.zeros((NEGATIVES, 16)))
    return jnp.mean((pred - batch["y"]) ** 2) + 0.1 * jnp.sum(neg ** 2), {}

  rng = np.random.default_rng(0)
  batches = [{
      "ids": rng.integers(0, ROWS, GLOBAL_BATCH).astype(np.int32),
      "x": rng.normal(size=(GLOBAL_BATCH, 16)).astype(np.float32),
      "y": rng.normal(size=GLOBAL_BATCH).astype(np.float32),
      "negatives": rng.integers(0, ROWS, NEGATIVES).astype(np.int32),
  } for _ in range(STEPS)]
  params = jax.jit(net.init)(jax.random.key(0), batches[0]["ids"], batches[0]["x"])
  optimizer = train_lib.make_optimizer(train_lib.OptimizerConfig(learning_rate=1e-2))
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(0))
  return state, train_lib.make_update_fn(loss_fn, optimizer), batches


def train(mesh, state, update, batches, rules=()):
  """Places state and batches on `mesh` and runs the update: the one code path under test."""
  import numpy as np
  from recsys_core import parallel
  state = parallel.shard_params(state, mesh, rules)
  losses = []
  for batch in batches:
    local = parallel.host_local_rows(batch, mesh, replicated=SHARED)  # this process's rows
    state, metrics = update(state, parallel.shard_batch(local, mesh, replicated=SHARED))
    losses.append(float(parallel.fetch(metrics["loss"])))
  return state, np.array(losses)


def assert_same_training(ref, got):
  import numpy as np
  from recsys_core import parallel
  (ref_state, ref_losses), (state, losses) = ref, got
  np.testing.assert_allclose(losses, ref_losses, rtol=RTOL, atol=ATOL)
  for a, b in zip(parallel.fetch(ref_state.params).values(), parallel.fetch(state.params).values()):
    for k in a:
      np.testing.assert_allclose(b[k], a[k], rtol=RTOL, atol=ATOL, err_msg=k)


def spec_of(x):
  return tuple(x.sharding.spec)


# ---------------------------------------------------------------- checks, one process N devices
@functools.lru_cache(maxsize=None)
def single_device_reference():
  """(state, update, batches, (state, losses) after training on this process's first device)."""
  import jax
  from recsys_core import parallel
  state, update, batches = make_problem()
  ref = train(parallel.make_mesh(devices=jax.local_devices()[:1]), state, update, batches)
  return state, update, batches, ref


def check_data_parallel(facts):
  """The same jitted update on 1 device and with the batch split over all 8."""
  from recsys_core import parallel
  state, update, batches, ref = single_device_reference()
  mesh = parallel.make_mesh()
  assert dict(mesh.shape) == {"data": 8, "model": 1}, mesh.shape
  got = train(mesh, state, update, batches)
  assert_same_training(ref, got)
  batch = parallel.shard_batch(batches[0], mesh, replicated=SHARED)
  assert len(batch["x"].addressable_shards) == 8
  assert batch["negatives"].shape == (NEGATIVES,) and batch["negatives"].is_fully_replicated
  assert {s.data.shape for s in batch["x"].addressable_shards} == {(GLOBAL_BATCH // 8, 16)}
  w = got[0].params["model/linear"]["w"]
  assert w.sharding.is_fully_replicated and len(w.sharding.device_set) == 8
  facts["losses"] = got[1].tolist()


def check_data_and_model_parallel(facts):
  """data=4 x model=2, embedding table (and its momentum) sharded by rows on 'model'."""
  import jax
  from recsys_core import parallel
  state, update, batches, ref = single_device_reference()
  mesh = parallel.make_mesh(model=2)
  assert dict(mesh.shape) == {"data": 4, "model": 2}, mesh.shape
  got = train(mesh, state, update, batches, rules=parallel.TABLE_ROW_RULES)
  assert_same_training(ref, got)
  new_state = got[0]
  table = new_state.params["model"]["item_table"]
  assert spec_of(table) == ("model", None), table.sharding
  assert table.addressable_shards[0].data.shape == (ROWS // 2, DIM)
  momentum = jax.tree.leaves(new_state.opt_state)
  assert any(getattr(m, "shape", None) == (ROWS, DIM) and spec_of(m) == ("model", None)
             for m in momentum), "momentum of the table not row-sharded"


def check_sharded_embedding(facts):
  """Lookup and gradient with a row-sharded table equal the unsharded ones; no all-gather."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from recsys_core import parallel
  mesh = parallel.make_mesh(data=2, model=4)
  rng = np.random.default_rng(1)
  table_np = rng.normal(size=(ROWS, DIM)).astype(np.float32)
  ids_np = rng.integers(0, ROWS, (16, 5)).astype(np.int32)
  table = parallel.shard_params(table_np, mesh, [(".*", parallel.P("model", None))])
  ids = parallel.shard_batch(ids_np, mesh)
  assert table.addressable_shards[0].data.shape == (ROWS // 4, DIM)

  def loss(lookup):
    return lambda t, i: jnp.sum(jnp.sin(lookup(t, i)))

  gspmd = lambda t, i: jnp.take(t, i, axis=0)
  explicit = lambda t, i: parallel.sharded_embedding_lookup(t, i, mesh)
  want = table_np[ids_np]
  want_grad = np.zeros_like(table_np)
  np.add.at(want_grad, ids_np, np.cos(want))
  for name, fn in (("gspmd", gspmd), ("shard_map", explicit)):
    out = jax.jit(fn)(table, ids)
    np.testing.assert_allclose(parallel.fetch(out), want, rtol=0, atol=0, err_msg=name)
    assert spec_of(out)[:1] == ("data",), (name, out.sharding)
    grad = jax.jit(jax.grad(loss(fn)))(table, ids)
    np.testing.assert_allclose(parallel.fetch(grad), want_grad, rtol=1e-6, atol=1e-6,
                               err_msg=name)

  # In a training step (grad applied to the sharded table) XLA partitions the gather and the
  # scatter-add: no device ever all-gathers the table, and the result stays row-sharded.
  step = jax.jit(lambda t, i: t - 0.1 * jax.grad(loss(gspmd))(t, i))
  hlo = step.lower(table, ids).compile().as_text()
  assert "all-gather" not in hlo, "GSPMD all-gathers the sharded table"
  assert spec_of(step(table, ids)) == ("model", None)
  facts["collectives"] = sorted({op for op in ("all-reduce", "all-to-all", "reduce-scatter",
                                               "collective-permute") if op in hlo})


DEVICE_CHECKS = [check_data_parallel, check_data_and_model_parallel, check_sharded_embedding]


# ---------------------------------------------------------------- checks, one of 2 processes
def check_multiprocess_training(facts):
  """Global batch over 2 processes x 2 devices == the same training on one local device."""
  import jax
  from recsys_core import parallel
  assert jax.process_count() == 2 and len(jax.local_devices()) == 2, jax.devices()
  facts["is_primary"] = parallel.is_primary()
  state, update, batches, ref = single_device_reference()
  mesh = parallel.make_mesh()
  assert dict(mesh.shape) == {"data": 4, "model": 1}, mesh.shape
  got = train(mesh, state, update, batches)
  assert_same_training(ref, got)
  local = parallel.host_local_rows(batches[0], mesh, replicated=SHARED)
  assert local["x"].shape == (GLOBAL_BATCH // 2, 16) and local["negatives"].shape == (NEGATIVES,)
  batch = parallel.shard_batch(local, mesh, replicated=SHARED)
  assert batch["x"].shape == (GLOBAL_BATCH, 16) and not batch["x"].is_fully_addressable
  assert batch["negatives"].shape == (NEGATIVES,) and batch["negatives"].is_fully_replicated
  facts["losses"] = got[1].tolist()
  # data=2 x model=2 with the row-sharded table, across both processes.
  got = train(parallel.make_mesh(model=2), state, update, batches,
              rules=parallel.TABLE_ROW_RULES)
  assert_same_training(ref, got)
  parallel.barrier("multiprocess_training_done")


PROCESS_CHECKS = [check_multiprocess_training]


def run_checks(checks) -> dict:
  facts, results = {}, {}
  for check in checks:
    try:
      check(facts)
      results[check.__name__] = "ok"
    except Exception:  # pylint: disable=broad-except
      results[check.__name__] = traceback.format_exc()
  return {"checks": results, "facts": facts}


def main(argv):
  mode = argv[1]
  if mode == "devices":
    import jax
    jax.config.update("jax_num_cpu_devices", int(argv[2]))
    out = run_checks(DEVICE_CHECKS)
  elif mode == "process":
    from recsys_core import parallel
    pid, nproc, port = int(argv[2]), int(argv[3]), int(argv[4])
    parallel.initialize_distributed(f"127.0.0.1:{port}", nproc, pid, local_device_count=2)
    out = run_checks(PROCESS_CHECKS)
    out["facts"]["process_index"] = pid
  else:
    raise SystemExit(f"unknown mode {mode}")
  print("RESULT " + json.dumps(out), flush=True)


# ---------------------------------------------------------------- helpers for the pytest side
def worker_env() -> dict:
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  return env


def parse_result(stdout: str) -> dict:
  lines = [l for l in stdout.splitlines() if l.startswith("RESULT ")]
  return json.loads(lines[-1][len("RESULT "):]) if lines else None


def run_once(tmp_path_factory, key: str, run: Callable[[], Any]) -> Any:
  """Runs `run()` once per pytest session, shared by pytest-xdist workers (file lock)."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  cache = root / f"{key}.json"
  with open(root / f"{key}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if cache.exists():
      return json.loads(cache.read_text())
    value = run()
    cache.write_text(json.dumps(value))
    return value


def run_worker(args, timeout=300) -> dict:
  proc = subprocess.run([sys.executable, os.path.abspath(__file__), *args], cwd=REPO,
                        env=worker_env(), capture_output=True, text=True, timeout=timeout)
  return {"rc": proc.returncode, "result": parse_result(proc.stdout),
          "log": (proc.stdout + proc.stderr)[-4000:]}


if __name__ == "__main__":
  main(sys.argv)
