"""Flag sets and result writing shared by the experiment binaries (not part of the library).

Benchmarks (`bench_ae_flops`, `bench_input_pipeline`, `bench_retrieval_topk`,
`bench_retrieval_loss`, `bench_phoenix`) take a config, a result name and a result folder,
and write one JSON result with the figures under `extra.figures`. The Phoenix trainers take a
config, a data folder, a resumable work folder and a result folder.

Result folders: every binary writes to runs/results/ (`results.DEFAULT_OUTPUT_DIR`, under the
working directory, git-ignored) unless given --results_dir / --out_dir; the project's record
experiments/results/ is written only when named there, and no existing file is replaced
without --overwrite. `result_folder` checks both before any data is loaded; every binary
prints the path of each file it writes.

The flags defined here belong to the binary whose code calls these functions (this module
disclaims them), so the binary's --help lists them.
"""
from __future__ import annotations

import os
import time
from typing import Any, Sequence, TYPE_CHECKING

from absl import app
from absl import flags
from ml_collections import config_flags

from recsys_core import results

if TYPE_CHECKING:
  from recsys_core import train as train_lib

flags.disclaim_key_flags()  # the flags defined below are the calling binary's key flags

FULL_CONFIG = "full"  # the config argument of a benchmark's recorded run


def define_result_flags(flag: str = "results_dir", note: str = "") -> None:
  """--<flag> (the result folder) and --overwrite."""
  flags.DEFINE_string(flag, None, f"Result folder (default {results.DEFAULT_OUTPUT_DIR} under "
                      "the working directory); the project's record experiments/results is "
                      f"written only when named here.{note}")
  flags.DEFINE_bool("overwrite", False, "Replace existing result files (refused without it).")


def result_folder(names: Sequence[str] = (), flag: str = "results_dir",
                  plots: Sequence[str] = ()) -> results.ResultFolder:
  """The result folder of flags --<flag> and --overwrite, with the result files `names`
  (<folder>/<name>.json) and `plots` (<folder>/plots/<name>.png) claimed: an unwritable
  folder or an existing file (without --overwrite) is an app.UsageError naming it. Call
  before loading any data."""
  try:
    folder = results.ResultFolder(flags.FLAGS[flag].value, flags.FLAGS.overwrite, f"--{flag}")
    folder.claim(names)
    folder.claim([os.path.join("plots", n) for n in plots], ".png")
  except (ValueError, FileExistsError) as e:
    raise app.UsageError(str(e)) from None
  return folder


def parse_seeds(value: Sequence[Any] | None, default: Sequence[Any] = (),
                where: str = "--seeds", default_where: str = "config.seeds") -> list[int]:
  """The seeds of flag value `value` (`default` when the flag was not given: None) as
  integers. Raises ValueError naming the flag (or `default_where`) for an empty list, a
  non-integer or a negative seed."""
  if value is None:
    value, where = default, default_where
  raw = list(value)
  try:
    seeds = [int(s) for s in raw]
  except (TypeError, ValueError):
    raise ValueError(f"{where}={raw}: seeds must be integers >= 0") from None
  if not seeds or min(seeds) < 0:
    raise ValueError(f"{where}={raw}: give one or more seeds, each an integer >= 0")
  return seeds


def config_arg(flag: str = "config") -> str:
  """The argument of config file flag --<flag> (`path.py:<arg>`; "" when none)."""
  return config_flags.get_config_filename(flags.FLAGS[flag]).partition(":")[2]


def define_bench_flags(default_name: str,
                       config: str = "experiments/configs/bench_speed.py") -> None:
  """--config (`config`), --name, --results_dir, --overwrite. Call only from a binary's
  __main__, so tests can import the module without defining flags twice."""
  config_flags.DEFINE_config_file("config", config, "Benchmark config (see the file).")
  flags.DEFINE_string("name", default_name, "Result file name. The default (the recorded "
                      f"run's) holds for the {FULL_CONFIG!r} config only: `{config}:<arg>` "
                      f"writes {default_name}_<arg> by default and may not take this name.")
  define_result_flags()


def bench_name() -> str:
  """The result name of a benchmark (flags --name, --config): --name's default, the recorded
  run's name, only for the full config; a smoke config (`:tiny`, `:quick`) gets
  <name>_<arg>, and an explicit --name equal to the recorded one is refused for it."""
  arg = config_arg()
  recorded = flags.FLAGS["name"].default
  smoke = arg not in ("", FULL_CONFIG)
  if not flags.FLAGS["name"].present:
    return f"{recorded}_{arg}" if smoke else recorded
  if smoke and flags.FLAGS.name == recorded:
    raise app.UsageError(f"--name={recorded} is the recorded run's name; the {arg!r} config "
                         "is not the recorded run: choose another --name")
  return flags.FLAGS.name


class BenchOutput:
  """A benchmark's result name and checked folder (`start_bench`)."""

  def __init__(self, name: str, folder: results.ResultFolder):
    self.name = name
    self.folder = folder


def start_bench() -> BenchOutput:
  """The benchmark's result name (`bench_name`) and folder, checked before any work."""
  name = bench_name()
  return BenchOutput(name, result_folder([name]))


def write_bench_result(out: BenchOutput, section: Any, *, dataset: str, model: str,
                       metrics: dict[str, float], figures: dict[str, Any], start: float) -> str:
  """Writes the benchmark result of config `section` to `out` (`start_bench`), prints the
  metrics and the path, returns the path. `start`: time.perf_counter() at the start of
  main."""
  path = out.folder.write_result(
      name=out.name, dataset=dataset, protocol="speed", model=model,
      config=section.to_dict(), metrics=metrics, seeds=[section.seed],
      wall_seconds=time.perf_counter() - start, extra={"figures": figures})
  for k, v in metrics.items():
    print(f"{k}: {v:.4g}")
  print("wrote", path)
  return path


def define_train_flags(config_hint: str, data_dir_note: str = "") -> None:
  """--config, --data_dir, --workdir, --results_dir, --overwrite, --no_result. Call only
  from a binary's __main__ (then read flags.FLAGS), so several binaries can be imported in
  one process."""
  config_flags.DEFINE_config_file("config", None, config_hint)
  flags.DEFINE_string("data_dir", None, "Folder of the dataset folders (default "
                      f"$RECSYS_DATA_DIR{data_dir_note}).")
  flags.DEFINE_string("workdir", None, "Checkpoints and metrics.jsonl (resumable). Default "
                      "/tmp/<binary>_<config tag>.")
  define_result_flags()
  flags.DEFINE_bool("no_result", False, "Do not write a result file.")
  flags.mark_flag_as_required("config")


def loop_config(cfg: Any, num_steps: int, eval_every: int) -> train_lib.LoopConfig:
  """The Phoenix trainers' loop: evaluate every `eval_every` steps, keep the best
  `cfg.selection_metric` (max), stop early after `cfg.patience` evaluations without a gain
  (0: never) or at the first evaluation past `cfg.max_train_seconds`. With a parameter
  average (optimizer.ema_decay > 0) the average is what is selected; `cfg.eval_online_params`
  also evaluates the online params for the record (online_<key>), at twice the eval cost."""
  from recsys_core import train as train_lib  # pylint: disable=g-import-not-at-top
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
