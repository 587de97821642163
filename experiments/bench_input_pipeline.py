r"""AE training step fed by the real input pipeline vs device-resident batches.

  nice python -m experiments.bench_input_pipeline --config experiments/configs/bench_speed.py
      # writes runs/results/bench_input_pipeline_cpu.json; the recorded run adds
      # --results_dir experiments/results (and --overwrite to replace it)

The step is `recsys_core.train.make_update_fn` on `anime_ae.training.make_loss_fn` at the
sizes of experiments/configs/anime_ae.py:recipe=seed, trained on the embedded anime profiles (those
with >= min_ratings ratings). Variants, each timed for `steps` consecutive steps per round
(interleaved rounds, median seconds per step over rounds):
  resident         dense batches already on the device (`steps` real batches device_put
                   beforehand): no host work at all, the reference
  sparse           the default path of `anime_ae.training.train` (train.input_pipeline=
                   "sparse"): `SparseProfileBatches(t)` sends only the batch's (row, item,
                   value, in_loss, kept) entries, padded to a fixed capacity, and `densify`
                   scatters the [B, I] arrays inside the jitted step
  sparse_prefetch  the same, batches built and device_put in a background thread
                   (recsys_core.prefetch, depth `prefetch_depth`)
  host             train.input_pipeline="dense": `ProfileBatches(t)` builds the [B, I] arrays
                   in numpy, then the step (JAX's asynchronous dispatch overlaps the two)
  prefetch         the dense batches built and device_put in a background thread
All variants see the same batches, bit for bit (checked before timing).
ratio = seconds per step of a variant / seconds per step of `resident` (target <= 1.1);
`ratio` in the metrics is the default path's (`sparse`). `host_batch_seconds` is the dense
batch_fn alone. The measured figures are in experiments/results/bench_input_pipeline_cpu.json.

Shape glossary: B batch, I items, C entry capacity of a sparse batch (>= any batch's entries).
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any, Callable, Iterator, Optional

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from anime_ae import training
from anime_ae.profiles import SparseProfiles, build_profiles, filter_profiles
from experiments import common
from experiments.bench_ae_flops import ae_config  # pylint: disable=unused-import
from recsys_core.data import load_anime
from recsys_core.prefetch import prefetch_to_device
from recsys_core.train import init_train_state, make_optimizer, make_update_fn

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The binary's flags (defined only when run as a binary, so tests can import the module)."""
  common.define_bench_flags("bench_input_pipeline_cpu")


def anime_profiles(min_ratings: int, ae) -> SparseProfiles:
  """The embedded anime profiles with >= min_ratings ratings (as anime_ae.pipeline builds)."""
  x = load_anime().interactions
  profiles = build_profiles(x, ae.ratings.make(x.ratings))
  return profiles.subset(filter_profiles(x, min_ratings))


def run_benchmark(cfg: Any, log: Callable[[str], None] = print,
                  profiles: Optional[SparseProfiles] = None) -> dict[str, Any]:
  """Runs the benchmark described by `cfg` (the input_pipeline section); returns the figures.

  `profiles` (default: the embedded anime profiles with >= cfg.min_ratings ratings) lets
  tests run it on a tiny synthetic population.
  """
  override = cfg.get("model_override")
  ae = ae_config(cfg.ae_config, override.to_dict() if override else None)
  if cfg.get("batch_size"):
    ae = dataclasses.replace(ae, train=dataclasses.replace(ae.train,
                                                           batch_size=int(cfg.batch_size)))
  if profiles is None:
    profiles = anime_profiles(int(cfg.min_ratings), ae)
  num_items = profiles.num_items
  batch_fn = training.ProfileBatches(profiles, ae)
  b = batch_fn.batch_size
  sparse_fn = training.SparseProfileBatches(profiles, ae)
  transformed = ae.model.make(num_items)
  optimizer = make_optimizer(ae.train.make())
  params = training.init_params(transformed, num_items, ae.train.seed)
  state0 = init_train_state(params, optimizer, jax.random.PRNGKey(1))
  update = make_update_fn(training.make_loss_fn(transformed, ae), optimizer)
  sparse_update = make_update_fn(training.make_loss_fn(transformed, ae, (b, num_items)),
                                 optimizer)

  # Consistency: the device scatter rebuilds batch_fn's dense batch exactly.
  ref = batch_fn(0)
  got = jax.jit(lambda s: training.densify(s, b, num_items))(sparse_fn(0))
  for key, v in ref.items():
    np.testing.assert_array_equal(np.asarray(got[key]), v, err_msg=key)

  steps = int(cfg.steps)
  resident = [jax.device_put(batch_fn(t)) for t in range(steps)]
  counter = itertools.count()          # real-data variants take fresh steps every round

  def step_range() -> Iterator[int]:
    return iter([next(counter) for _ in range(steps)])

  states = {k: state0 for k in ("resident", "host", "prefetch", "sparse", "sparse_prefetch")}

  def run_resident() -> None:
    s = states["resident"]
    for t in range(steps):
      s, _ = update(s, resident[t])
    states["resident"] = s

  def run_host() -> None:
    s = states["host"]
    for t in step_range():
      s, _ = update(s, batch_fn(t))
    states["host"] = s

  def run_prefetch() -> None:
    s = states["prefetch"]
    with prefetch_to_device((batch_fn(t) for t in step_range()), int(cfg.prefetch_depth)) as it:
      for batch in it:
        s, _ = update(s, batch)
    states["prefetch"] = s

  def run_sparse() -> None:
    s = states["sparse"]
    for t in step_range():
      s, _ = sparse_update(s, sparse_fn(t))
    states["sparse"] = s

  def run_sparse_prefetch() -> None:
    s = states["sparse_prefetch"]
    with prefetch_to_device((sparse_fn(t) for t in step_range()),
                            int(cfg.prefetch_depth)) as it:
      for batch in it:
        s, _ = sparse_update(s, batch)
    states["sparse_prefetch"] = s

  runs = {"resident": run_resident, "host": run_host, "prefetch": run_prefetch,
          "sparse": run_sparse, "sparse_prefetch": run_sparse_prefetch}

  def timed(name: str) -> float:
    t0 = time.perf_counter()
    runs[name]()
    jax.block_until_ready(states[name])
    return (time.perf_counter() - t0) / steps

  for _ in range(cfg.warmup):     # compiles both steps
    for name in runs:
      timed(name)
  per_round = {name: [] for name in runs}
  host_build = []
  for r in range(cfg.rounds):
    for name in runs:
      per_round[name].append(timed(name))
    t0 = time.perf_counter()
    batch_fn(next(counter))
    host_build.append(time.perf_counter() - t0)
    log(f"round {r}: " + ", ".join(f"{k} {v[-1] * 1e3:.1f} ms/step" for k, v in per_round.items())
        + f", batch_fn {host_build[-1] * 1e3:.1f} ms")
  med = {k: float(np.median(v)) for k, v in per_round.items()}
  ratios = {k: med[k] / med["resident"] for k in runs if k != "resident"}
  best = min(ratios, key=ratios.get)
  default = "sparse" if ae.train.input_pipeline == "sparse" else "host"
  dense_bytes = 5 * b * num_items * 4
  sparse_bytes = sum(v.nbytes for v in sparse_fn(0).values())
  return {"batch_size": b, "num_items": num_items, "num_profiles": profiles.num_profiles,
          "steps_per_round": steps, "seconds_per_step": med, "seconds_per_round": per_round,
          "ratio_to_resident": ratios, "ratio": ratios[default], "default_variant": default,
          "best_variant": best,
          "host_batch_seconds": float(np.median(host_build)),
          "dense_batch_bytes": dense_bytes, "sparse_batch_bytes": int(sparse_bytes),
          "sparse_capacity": sparse_fn.capacity}


def main(argv):
  del argv
  out = common.start_bench()  # name and folder checked before any work
  cfg = FLAGS.config
  start = time.perf_counter()
  res = run_benchmark(cfg.input_pipeline)
  metrics = {"ratio": res["ratio"], "host_batch_seconds": res["host_batch_seconds"]}
  for k, v in res["ratio_to_resident"].items():
    metrics[f"ratio/{k}"] = v
  for k, v in res["seconds_per_step"].items():
    metrics[f"seconds_per_step/{k}"] = v
  common.write_bench_result(out, cfg.input_pipeline, dataset="anime", model="anime_ae",
                            metrics=metrics, figures=res, start=start)


if __name__ == "__main__":
  define_flags()
  app.run(main)
