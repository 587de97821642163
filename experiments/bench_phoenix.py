r"""Speed of the jitted Phoenix ranking forward and of prefix-cached candidate serving.

  nice python -m experiments.bench_phoenix --config experiments/configs/bench_phoenix.py
      # writes runs/results/bench_phoenix_cpu.json; the recorded run adds
      # --results_dir experiments/results (and --overwrite to replace it); the quick config
      # writes bench_phoenix_cpu_quick.json

Ranking forward (`phoenix.runners.RecsysInferenceRunner.rank`: model, sigmoid, weighted sum,
argsort, all jitted) on each config of `models`: latency at batch `latency_batch` (1 user)
and throughput at batch `throughput_batch`, inputs already on the device, after `warmup`
untimed calls (the first compiles), each call ended by block_until_ready; the median of
`repeats` calls is the figure, every call is kept in the result file. The machine's load
average before and after is recorded too: on a shared machine it moves the absolute times.

Serving: one user with `serving.num_candidates` candidates on models[serving.model]: the full
[user | history | candidates] sequence through the model (attention over 1 + S + C
positions) against `phoenix.serving.CachedScorer` (prefix once, candidates in blocks against
its cached keys/values) at each block size; `speedup` = median full / median cached at the
best block size, measured in the same run on the same parameters and inputs. The largest
absolute logit difference between the two is recorded as a check.

fprop dtype: float32 unless bfloat16 is faster here; both are timed first on
models[dtype_probe_model] at the throughput batch and the faster one is used for everything
else (recorded as `fprop_dtype`, with the probe's timings).
"""
from __future__ import annotations

import os
import time

from absl import app
from absl import flags
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from phoenix import grok
from phoenix import runners
from phoenix import serving
from phoenix.recsys_model import PhoenixModelConfig

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The binary's flags (defined only when run as a binary, so tests can import the module)."""
  common.define_bench_flags("bench_phoenix_cpu", "experiments/configs/bench_phoenix.py")
  flags.DEFINE_bool("no_result", False, "Print only; write no result file.")


def model_config(m, num_actions: int, dtype: str) -> PhoenixModelConfig:
  return PhoenixModelConfig(
      model=grok.TransformerConfig(
          emb_size=m.emb_size, key_size=m.key_size, num_q_heads=m.num_q_heads,
          num_kv_heads=m.num_kv_heads, num_layers=m.num_layers,
          widening_factor=m.widening_factor, attn_output_multiplier=m.attn_output_multiplier,
          learnable_temperature=m.learnable_temperature),
      emb_size=m.emb_size, num_actions=num_actions, history_seq_len=m.history_seq_len,
      candidate_seq_len=m.candidate_seq_len, fprop_dtype=jnp.dtype(dtype),
      normalize_before_projection=m.normalize_before_projection)


def time_interleaved(calls: dict, warmup: int, repeats: int) -> dict[str, list[float]]:
  """{name: seconds of each of `repeats` calls} of calls {name: (fn, args)}, taken in turn
  (one call of each per round) so that all see the same machine load; after `warmup`
  untimed rounds."""
  for _ in range(warmup):
    for fn, args in calls.values():
      jax.block_until_ready(fn(*args))
  times = {name: [] for name in calls}
  for _ in range(repeats):
    for name, (fn, args) in calls.items():
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times[name].append(time.perf_counter() - t0)
  return times


def example(m, batch: int, candidates: int, num_actions: int, seed: int):
  return jax.device_put(runners.create_example_batch(
      batch, m.emb_size, m.history_seq_len, candidates, num_actions, seed=seed))


def ranker(cfg: PhoenixModelConfig, seed: int) -> runners.RecsysInferenceRunner:
  return runners.RecsysInferenceRunner(runners.ModelRunner(cfg, 1.0, seed), "bench").initialize()


def main(argv):
  del argv
  out = None if FLAGS.no_result else common.start_bench()  # checked before any work
  c = FLAGS.config
  start = time.time()
  load_before = os.getloadavg()
  metrics, medians = {}, {}

  def record(key, seconds, scale=1e3):
    metrics[key] = [s * scale for s in seconds]
    medians[key] = float(np.median(metrics[key]))
    print(f"{key}: {medians[key]:.3f} (median of {len(seconds)})", flush=True)

  # 1. fprop dtype: float32 unless bfloat16 is faster (the two timed in turn).
  probe = c.models[c.dtype_probe_model]
  args = example(probe, c.throughput_batch, probe.candidate_seq_len, c.num_actions, c.seed)
  probe_times = time_interleaved(
      {d: (ranker(model_config(probe, c.num_actions, d), c.seed).rank, args) for d in c.dtypes},
      c.warmup, c.repeats)
  for d, times in probe_times.items():
    record(f"dtype_probe/{d}/ms", times)
  dtype = min(c.dtypes, key=lambda d: (medians[f"dtype_probe/{d}/ms"], d != "float32"))
  print(f"fprop dtype: {dtype}", flush=True)

  # 2. Ranking forward: latency at B=latency_batch, throughput at B=throughput_batch.
  for name, m in c.models.items():
    r = ranker(model_config(m, c.num_actions, dtype), c.seed)
    for key, b in (("latency", c.latency_batch), ("throughput", c.throughput_batch)):
      args = example(m, b, m.candidate_seq_len, c.num_actions, c.seed)
      times = time_interleaved({key: (r.rank, args)}, c.warmup, c.repeats)[key]
      if key == "latency":
        record(f"{name}/latency_b{b}_ms", times)
      else:
        record(f"{name}/throughput_b{b}_users_per_s", [b / t for t in times], scale=1.0)
        record(f"{name}/throughput_b{b}_candidates_per_s",
               [b * m.candidate_seq_len / t for t in times], scale=1.0)

  # 3. Serving: full sequence vs prefix-cached scorer, one user, many candidates.
  s = c.serving
  m = c.models[s.model]
  cfg = model_config(m, c.num_actions, dtype)
  params = ranker(cfg, c.seed).params
  args = example(m, 1, s.num_candidates, c.num_actions, c.seed + 1)
  full = jax.jit(hk.without_apply_rng(hk.transform(
      lambda b, e: cfg.make()(b, e).logits)).apply)
  calls = {"full": (full, (params, *args))}
  for block in s.block_sizes:
    calls[f"cached_block{block}"] = (serving.CachedScorer(cfg, block_size=block).score,
                                     (params, *args))
  for name, times in time_interleaved(calls, c.warmup, s.repeats).items():
    record(f"serving/{name}_ms", times)
  reference = np.asarray(full(params, *args), np.float32)
  max_diff = {str(block): float(np.abs(np.asarray(
      calls[f"cached_block{block}"][0](params, *args).logits, np.float32) - reference).max())
              for block in s.block_sizes}
  best = min(s.block_sizes, key=lambda b: medians[f"serving/cached_block{b}_ms"])
  metrics["speedup"] = medians["serving/full_ms"] / medians[f"serving/cached_block{best}_ms"]
  for block in s.block_sizes:
    metrics[f"speedup/block{block}"] = (medians["serving/full_ms"]
                                        / medians[f"serving/cached_block{block}_ms"])
  print(f"speedup (block {best}): {metrics['speedup']:.2f}x; max |cached - full| logit: "
        f"{max_diff}", flush=True)

  if out is None:
    return
  config = {**c.to_dict(), "fprop_dtype": dtype, "best_block_size": best,
            "timed": "RecsysInferenceRunner.rank (jitted), inputs on device, "
                     "block_until_ready per call; medians in `medians`"}
  path = out.folder.write_result(
      name=out.name, dataset="synthetic", protocol="speed", model="phoenix_ranking",
      config=config, metrics=metrics, seeds=[c.seed], wall_seconds=time.time() - start,
      extra={"medians": medians, "fprop_dtype": dtype,
             "serving_max_abs_logit_diff": max_diff,
             "load_average_before_after": [list(load_before), list(os.getloadavg())]})
  print("wrote", path)


if __name__ == "__main__":
  define_flags()
  app.run(main)
