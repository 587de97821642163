r"""Phoenix retrieval training step: packed loss positions against the plain B*S softmax.

  nice python -m experiments.bench_retrieval_loss --config experiments/configs/bench_speed.py
      # writes runs/results/bench_retrieval_loss_cpu.json; the recorded run adds
      # --results_dir experiments/results (and --overwrite to replace it)

Data: synthetic next-item sequences (recsys_core.data.synthetic) with the shape of
Amazon Beauty (12,101 items, 22,363 users; lengths 5..13, mean 9, in a history window of 50),
so ~88% of the B*S = 6,400 target slots of a batch are padding (measured: `valid_fraction`
in bench_retrieval_loss_cpu.json). Model and optimizer: the `beauty_gpu` recipe of
experiments/configs/phoenix_retrieval.py (full softmax over the whole corpus at every prefix
position, embedding dropout 0.5), batch 128.

Variants, the same batches and the same initial parameters:
  plain   packed_positions=0: logits [B*S, I] over every slot, padding included
  packed  packed_positions=M: the valid slots gathered into M rows, logits [M, I]
Each round times `reps` jitted update steps of each variant, interleaved, over the same
`reps` batches; the figure is the median over rounds of seconds per step. The loss of one
step from the same state is recorded for both (they must agree: same loss, tested in
tests/phoenix/test_phoenix_training.py) together with the packed rows actually used.

Shape glossary: B batch, S history window, I corpus items, M packed rows.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from absl import app
from absl import flags
import jax
import numpy as np

from experiments import common
from experiments.configs import phoenix_retrieval as retrieval_configs
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.task import RetrievalTask
from recsys_core import train as train_lib
from recsys_core.data.sequences import SequenceData
from recsys_core.data.synthetic import synthetic_sequences

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The binary's flags (defined only when run as a binary, so tests can import the module)."""
  common.define_bench_flags("bench_retrieval_loss_cpu")


def _task(cfg: Any, packed: int, data: SequenceData) -> RetrievalTask:
  net = retrieval_configs.get_config(cfg.recipe).model.net.to_dict()
  rcfg = RetrievalConfig.from_dict(net, packed_positions=packed)
  return RetrievalTask(rcfg, data, data.lengths() - 2, None, int(cfg.batch_size),
                       int(cfg.seed))


def run_benchmark(cfg: Any, log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs the benchmark described by `cfg` (the retrieval_loss section); returns figures."""
  x = synthetic_sequences(int(cfg.num_users), int(cfg.num_items), int(cfg.min_len),
                          int(cfg.max_len), seed=int(cfg.seed), noise=0.5)
  data = SequenceData.from_interactions(x)
  tasks = {"plain": _task(cfg, 0, data), "packed": _task(cfg, int(cfg.packed_positions), data)}
  optimizer = train_lib.make_optimizer(train_lib.OptimizerConfig(learning_rate=1e-3))
  params = tasks["plain"].fns.init(jax.random.PRNGKey(cfg.seed),
                                   tasks["plain"].example_batch()["batch"])
  state0 = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(cfg.seed + 1))
  batcher = train_lib.EpochBatcher(len(tasks["plain"].train_users), int(cfg.batch_size),
                                   int(cfg.seed))
  reps = int(cfg.reps)
  batches = {name: [t.batch_fn(batcher)(s) for s in range(reps)] for name, t in tasks.items()}
  updates = {name: train_lib.make_update_fn(t.loss_fn, optimizer) for name, t in tasks.items()}
  first = {name: updates[name](state0, batches[name][0])[1] for name in tasks}
  valid = [int((b["targets"] >= 0).sum()) for b in batches["plain"]]
  dropped = [int(b["positions_dropped"]) for b in batches["packed"]]

  def timed(name: str) -> Callable[[], float]:
    def run() -> float:
      state = state0
      t0 = time.perf_counter()
      for b in batches[name]:
        state, metrics = updates[name](state, b)
      jax.block_until_ready(metrics["loss"])
      return (time.perf_counter() - t0) / reps
    return run

  runs = {name: timed(name) for name in tasks}
  for _ in range(int(cfg.warmup)):
    for fn in runs.values():
      fn()
  per_round = {name: [] for name in runs}
  for r in range(int(cfg.rounds)):
    for name, fn in runs.items():
      per_round[name].append(fn())
    log(f"round {r}: " + ", ".join(f"{n} {v[-1] * 1e3:.0f} ms/step" for n, v in per_round.items()))
  med = {name: float(np.median(v)) for name, v in per_round.items()}
  b, s = batches["plain"][0]["targets"].shape
  return {
      "seconds_per_step": med, "seconds_per_round": per_round,
      "speedup": med["plain"] / med["packed"],
      "loss_first_step": {n: float(m["loss"]) for n, m in first.items()},
      "slots_per_batch": b * s, "packed_rows": int(cfg.packed_positions),
      "valid_slots_per_batch": valid, "positions_dropped": dropped,
      "num_items": int(cfg.num_items), "mean_length": float(data.lengths().mean())}


def main(argv):
  del argv
  out = common.start_bench()  # name and folder checked before any work
  cfg = FLAGS.config.retrieval_loss
  start = time.perf_counter()
  res = run_benchmark(cfg)
  loss = res["loss_first_step"]
  metrics = {"speedup": res["speedup"],
             "plain/seconds_per_step": res["seconds_per_step"]["plain"],
             "packed/seconds_per_step": res["seconds_per_step"]["packed"],
             "loss_abs_difference": abs(loss["plain"] - loss["packed"]),
             "valid_fraction": float(np.mean(res["valid_slots_per_batch"]))
                               / res["slots_per_batch"]}
  common.write_bench_result(out, cfg, dataset="synthetic", model="phoenix_retrieval",
                            metrics=metrics, figures=res, start=start)


if __name__ == "__main__":
  define_flags()
  app.run(main)
