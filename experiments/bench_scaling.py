r"""Steps/s of one data-parallel training step on 1, 2, 4, 8 (fake) CPU devices.

  nice python -m experiments.bench_scaling   # -> runs/results/bench_scaling_cpu.json
      # the recorded run adds --results_dir experiments/results (--overwrite to replace it)

Each device count runs in its own subprocess started with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` (the device count is fixed when JAX
starts). The subprocess trains the same model on the same GLOBAL batch with the project's
code path: `recsys_core.train.make_update_fn` (Adam), state replicated and the batch split
over the 'data' axis with `recsys_core.parallel` (GSPMD: XLA inserts the gradient
all-reduce). Timed: `--steps` updates on batches already placed on the devices (input
transfer excluded), after `--warmup` updates that include compilation, repeated
`--repeats` times in each of `--rounds` interleaved rounds; metrics are the per-repeat
steps/s and their ratio to 1 device, plus, as a diagnostic, 1 device running only one
device's share of the batch (B/N rows): N devices truly side by side would run at about
that rate ("analysis" in the result file compares the two).

What this measures on a CPU-only machine: "devices" forced by the XLA flag are not extra
hardware. All N of them share the machine's cores (2 here), and a single CPU device
already multi-threads its matmuls over those cores, so the ideal outcome is no slowdown;
it shows the overhead of splitting the step (per-device dispatch, smaller matmuls, the
all-reduce through memory), not a speed-up. Real scaling needs real devices (GPUs/TPUs,
or several hosts).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from experiments import common

_DEVICES = flags.DEFINE_list("devices", ["1", "2", "4", "8"], "Device counts to measure.")
_BATCH = flags.DEFINE_integer("batch", 1024, "Global batch size (divisible by every count).")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed updates per repeat.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed updates first (includes compilation).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repeats per device count and round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds; each runs every device count once, "
                               "interleaved so that load from other jobs hits all alike.")
_ROWS = flags.DEFINE_integer("rows", 8192, "Embedding table rows.")
_DIM = flags.DEFINE_integer("dim", 64, "Embedding width.")
_HIDDEN = flags.DEFINE_integer("hidden", 512, "MLP width (two hidden layers).")
_NAME = flags.DEFINE_string("name", "bench_scaling_cpu", "Result file name.")
common.define_result_flags()
_CHILD = flags.DEFINE_integer("child", None, "Internal: measure with this many devices.")

FEATURES = 32


def measure(num_devices: int) -> dict:
  """In a process started with `num_devices` CPU devices: per-repeat steps/s."""
  import haiku as hk
  import jax
  import jax.numpy as jnp
  import numpy as np

  from recsys_core import parallel
  from recsys_core import train as train_lib

  assert len(jax.devices()) == num_devices, jax.devices()
  rows, dim, hidden, batch = _ROWS.value, _DIM.value, _HIDDEN.value, _BATCH.value

  def forward(ids, x):  # [B] int, [B, FEATURES] -> [B]
    table = hk.get_parameter("table", [rows, dim], init=hk.initializers.RandomNormal())
    h = jnp.concatenate([jnp.take(table, ids, axis=0), x], axis=-1)
    h = jax.nn.gelu(hk.Linear(hidden)(h))
    h = jax.nn.gelu(hk.Linear(hidden)(h))
    return hk.Linear(1)(h)[:, 0]

  net = hk.without_apply_rng(hk.transform(forward))

  def loss_fn(params, rng, b):
    del rng
    return jnp.mean((net.apply(params, b["ids"], b["x"]) - b["y"]) ** 2), {}

  def make_batches(size):
    rng = np.random.default_rng(0)
    return [{"ids": rng.integers(0, rows, size).astype(np.int32),
             "x": rng.normal(size=(size, FEATURES)).astype(np.float32),
             "y": rng.normal(size=size).astype(np.float32)} for _ in range(4)]

  batches = make_batches(batch)
  params = jax.jit(net.init)(jax.random.key(0), batches[0]["ids"], batches[0]["x"])
  optimizer = train_lib.make_optimizer(train_lib.OptimizerConfig(learning_rate=1e-3))
  update = train_lib.make_update_fn(loss_fn, optimizer)
  mesh = parallel.make_mesh()  # ('data', 'model') = (num_devices, 1)
  state0 = parallel.replicate(train_lib.init_train_state(params, optimizer,
                                                         jax.random.PRNGKey(0)), mesh)

  def time_steps(batches):
    """(per-repeat steps/s, warm-up seconds, loss of every step) of `update` on batches."""
    placed = [parallel.shard_batch(b, mesh) for b in batches]
    state, losses = state0, []  # losses stay on device until the end: no sync per step
    t0 = time.perf_counter()
    for i in range(_WARMUP.value):
      state, metrics = update(state, placed[i % len(placed)])
      losses.append(metrics["loss"])
    jax.block_until_ready(metrics["loss"])
    warmup_s = time.perf_counter() - t0
    rates = []
    for _ in range(_REPEATS.value):
      t0 = time.perf_counter()
      for i in range(_STEPS.value):
        state, metrics = update(state, placed[i % len(placed)])
        losses.append(metrics["loss"])
      jax.block_until_ready((state, metrics))
      rates.append(_STEPS.value / (time.perf_counter() - t0))
    return rates, warmup_s, [float(l) for l in losses], placed

  rates, warmup_s, losses, placed = time_steps(batches)
  hlo = update.jitted.lower(state0, placed[0]).compile().as_text()
  out = {"devices": num_devices, "steps_per_s": rates, "warmup_s": warmup_s, "losses": losses,
         "num_params": int(hk.data_structures.tree_size(params)),
         "all_reduce_in_step": "all-reduce" in hlo, "rows_per_device": batch // num_devices}
  if num_devices == 1:  # the per-device share of the work, alone on one device
    out["steps_per_s_at_batch"] = {
        str(batch // int(n)): time_steps(make_batches(batch // int(n)))[0]
        for n in _DEVICES.value if int(n) > 1}
  return out


def _run_child(n: int) -> dict:
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
  env["JAX_PLATFORMS"] = "cpu"
  args = [a for a in sys.argv[1:] if not a.startswith("--child")]
  proc = subprocess.run([sys.executable, "-m", "experiments.bench_scaling", *args,
                         f"--child={n}"], env=env, capture_output=True, text=True, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode or not lines:
    raise RuntimeError(f"{n} devices failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
  return json.loads(lines[-1][len("RESULT "):])


def main(argv):
  del argv
  if _CHILD.value:
    print("RESULT " + json.dumps(measure(_CHILD.value)), flush=True)
    return
  import numpy as np  # pylint: disable=g-import-not-at-top

  folder = common.result_folder([_NAME.value])  # checked before the first child starts
  start = time.time()
  load_before = os.getloadavg()
  runs = {}
  for _ in range(_ROUNDS.value):
    for n in _DEVICES.value:
      r = _run_child(int(n))
      if n not in runs:
        runs[n] = dict(r, warmup_s=[r["warmup_s"]])
        continue
      runs[n]["steps_per_s"] += r["steps_per_s"]
      runs[n]["warmup_s"].append(r["warmup_s"])
      for size, rates in r.get("steps_per_s_at_batch", {}).items():
        runs[n]["steps_per_s_at_batch"][size] += rates
  runs = list(runs.values())
  base = np.median(runs[0]["steps_per_s"])
  metrics, per_count = {}, {}
  for r in runs:
    n = r["devices"]
    metrics[f"steps_per_s/{n}dev"] = r["steps_per_s"]
    metrics[f"speedup/{n}dev"] = [float(v / base) for v in r["steps_per_s"]]
    per_count[str(n)] = {k: r[k] for k in ("warmup_s", "all_reduce_in_step",
                                          "rows_per_device")}
    per_count[str(n)]["final_loss"] = r["losses"][-1]
    line = (f"{n} device(s): {np.median(r['steps_per_s']):8.2f} steps/s (median of "
            f"{len(r['steps_per_s'])}), x{np.median(r['steps_per_s']) / base:.2f} vs 1 device")
    if n > 1:  # 1 device running only this device's share of the batch
      share = runs[0]["steps_per_s_at_batch"][str(r["rows_per_device"])]
      metrics[f"steps_per_s/1dev_batch{r['rows_per_device']}"] = share
      line += f"; 1 device at batch {r['rows_per_device']}: {np.median(share):.2f} steps/s"
    print(line)
  analysis = _analyse(runs)
  config = {"global_batch": _BATCH.value, "steps": _STEPS.value, "warmup": _WARMUP.value,
            "repeats": _REPEATS.value, "rounds": _ROUNDS.value, "table": [_ROWS.value, _DIM.value],
            "mlp": [_DIM.value + FEATURES, _HIDDEN.value, _HIDDEN.value, 1],
            "optimizer": "adam (recsys_core.train.make_optimizer defaults, lr 1e-3)",
            "devices": [int(n) for n in _DEVICES.value]}
  path = folder.write_result(
      name=_NAME.value, dataset="synthetic", protocol="speed", model="mlp_embedding_dp",
      config=config, metrics=metrics, seeds=[0], wall_seconds=time.time() - start,
      extra={"per_device_count": per_count, "analysis": analysis,
             "load_average_before_after": [list(load_before), list(os.getloadavg())],
             "commentary": _commentary(runs, analysis)})
  print("wrote", path)


def _analyse(runs) -> dict:
  """Per device count N > 1: is the N-device step N shares run one after another?

  step_ms: median N-device step; share_step_ms: median step of 1 device on B/N rows;
  concurrency = N * share_step_ms / step_ms (1: the N devices effectively ran one after
  another; at most the number of cores if they ran side by side).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  out = {}
  for r in runs[1:]:
    n, rows = r["devices"], r["rows_per_device"]
    step = 1e3 / np.median(r["steps_per_s"])
    share = 1e3 / np.median(runs[0]["steps_per_s_at_batch"][str(rows)])
    rel = np.abs(np.subtract(r["losses"], runs[0]["losses"])) / np.abs(runs[0]["losses"])
    out[str(n)] = {"step_ms": round(float(step), 2), "share_step_ms": round(float(share), 2),
                   "n_times_share_ms": round(float(n * share), 2),
                   "concurrency": round(float(n * share / step), 3),
                   "loss_vs_1dev_max_rel_diff_first_10_steps": float(rel[:10].max()),
                   "loss_vs_1dev_rel_diff_last_step": float(rel[-1])}
  return out


def _commentary(runs, analysis) -> str:
  import numpy as np  # pylint: disable=g-import-not-at-top
  one = 1e3 / np.median(runs[0]["steps_per_s"])
  last = runs[-1]
  n, a = last["devices"], analysis.get(str(last["devices"]), {})
  text = (
      f"Fake CPU devices (--xla_force_host_platform_device_count) are a correctness tool, "
      f"not extra hardware: all N devices share this machine's {os.cpu_count()} cores, and "
      f"one CPU device already spreads its matmuls over them with XLA's intra-op threads, "
      f"so no speed-up is possible here. 1 device: {one:.0f} ms per step at the global "
      f"batch. ")
  if a:
    text += (
        f"{n} devices: {a['step_ms']:.0f} ms per step; one device running only a 1/{n} "
        f"share takes {a['share_step_ms']:.0f} ms, so {n} shares one after another would "
        f"take {a['n_times_share_ms']:.0f} ms (concurrency {a['concurrency']:.2f}; 1 = one "
        f"after another). The step time does not shrink in proportion to the rows "
        f"({one:.0f} ms at {last['rows_per_device'] * n} rows, {a['share_step_ms']:.0f} ms "
        f"at {last['rows_per_device']}): most of a small share's step is fixed work that "
        f"every replica repeats: the Adam update and "
        f"non-finite guard over all {runs[0]['num_params']:,} replicated parameters "
        f"(including the dense gradient of the embedding table), per-device dispatch, and "
        f"the gradient all-reduce (a memory copy between fake devices). On real devices "
        f"the shares run side by side and that fixed work is per device, not summed; "
        f"sharding the optimizer state or the table over devices (TABLE_ROW_RULES) cuts it. ")
  if a:
    text += (
        f"Losses of {n} devices vs 1 device (same batches, same init): at most "
        f"{a['loss_vs_1dev_max_rel_diff_first_10_steps']:.1e} apart (relative) over the "
        f"first 10 steps, {a['loss_vs_1dev_rel_diff_last_step']:.1e} at step "
        f"{len(last['losses'])} (float32 reduction order, amplified by Adam while it "
        f"memorises 4 random batches; tests/recsys_core/test_parallel.py checks 5 steps). ")
  text += (
      "The machine is "
      "shared with other jobs (load_average_before_after): rounds are interleaved so that "
      "load hits every device count alike, but absolute steps/s are noisy.")
  return text


if __name__ == "__main__":
  app.run(main)
