"""Flag sets and result writing shared by the experiment binaries (not part of the library).

Benchmarks (`bench_ae_flops`, `bench_input_pipeline`, `bench_retrieval_topk`) take a config
section of experiments/configs/bench_speed.py, a result name and a result folder, and write
one JSON result with the figures under `extra.figures`. The Phoenix trainers take a config,
a data folder, a resumable work folder and a result folder.
"""
from __future__ import annotations

import time
from typing import Any

from absl import flags
from ml_collections import config_flags

from recsys_core import results
from recsys_core import train as train_lib


def define_bench_flags(default_name: str) -> None:
  """--config (bench_speed.py), --name, --results_dir. Call only from a binary's __main__,
  so tests can import the module without defining flags twice."""
  config_flags.DEFINE_config_file(
      "config", "experiments/configs/bench_speed.py", "Benchmark config (see the file).")
  flags.DEFINE_string("name", default_name, "Result file name.")
  flags.DEFINE_string("results_dir", None, "Result folder (default experiments/results).")


def write_bench_result(section: Any, *, dataset: str, model: str, metrics: dict[str, float],
                       figures: dict[str, Any], start: float) -> str:
  """Writes the benchmark result of config `section` (flags --name, --results_dir), prints
  the metrics, returns the path. `start`: time.perf_counter() at the start of main."""
  path = results.write_result(
      name=flags.FLAGS.name, dataset=dataset, protocol="speed", model=model,
      config=section.to_dict(), metrics=metrics, seeds=[section.seed],
      wall_seconds=time.perf_counter() - start, results_dir=flags.FLAGS.results_dir,
      extra={"figures": figures})
  for k, v in metrics.items():
    print(f"{k}: {v:.4g}")
  print("wrote", path)
  return path


def define_train_flags(config_hint: str, data_dir_note: str = "") -> None:
  """--config, --data_dir, --workdir, --results_dir, --no_result. Call only from a binary's
  __main__ (then read flags.FLAGS), so several binaries can be imported in one process."""
  config_flags.DEFINE_config_file("config", None, config_hint)
  flags.DEFINE_string("data_dir", None, "Folder of the dataset folders (default "
                      f"$RECSYS_DATA_DIR{data_dir_note}).")
  flags.DEFINE_string("workdir", None, "Checkpoints and metrics.jsonl (resumable). Default "
                      "/tmp/<binary>_<config tag>.")
  flags.DEFINE_string("results_dir", None, "Result folder (default experiments/results).")
  flags.DEFINE_bool("no_result", False, "Do not write a result file.")
  flags.mark_flag_as_required("config")


def loop_config(cfg: Any, num_steps: int, eval_every: int) -> train_lib.LoopConfig:
  """The Phoenix trainers' loop: evaluate every `eval_every` steps, keep the best
  `cfg.selection_metric` (max), stop early after `cfg.patience` evaluations without a gain
  (0: never) or at the first evaluation past `cfg.max_train_seconds`. With a parameter
  average (optimizer.ema_decay > 0) the average is what is selected; `cfg.eval_online_params`
  also evaluates the online params for the record (online_<key>), at twice the eval cost."""
  return train_lib.LoopConfig(
      num_steps=num_steps, log_every=cfg.log_every, eval_every=eval_every,
      checkpoint_every=cfg.checkpoint_every, best_metric=cfg.selection_metric,
      best_mode="max", patience=cfg.patience or None, progress_bar=False,
      max_seconds=cfg.max_train_seconds, eval_online_params=cfg.eval_online_params)


def stop_reason(fit_result: Any) -> str:
  """A train_lib.FitResult's end as the result files' "stopped" field: "num_epochs" (all
  the configured epochs), "early_stop" (patience) or "time_budget" (max_train_seconds)."""
  reason = fit_result.end_reason
  return "num_epochs" if reason in (None, "num_steps") else reason
