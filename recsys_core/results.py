"""Result files: one JSON per benchmark/experiment run (schema: shared/docs/results.md).

Every number quoted in the docs comes from one of these files, which record the command,
git commit, date, machine and wall time of the run that produced them.

Where they go: a binary writes to DEFAULT_OUTPUT_DIR (runs/results under the working
directory, git-ignored) unless it is given a folder; the project's record, RECORD_DIR
(the tracked experiments/results/), is written only when named explicitly, and an existing
file is never replaced without overwrite=True (`ResultFolder` checks both before any work).
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from typing import Any, Mapping, Sequence

import numpy as np

# The project's record (tracked): written only when a binary is given it explicitly.
RECORD_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "experiments", "results")
# Where result files go when no folder is given (relative to the working directory).
DEFAULT_OUTPUT_DIR = os.path.join("runs", "results")


def summarize(values: Sequence[float]) -> dict[str, Any]:
  """Returns {"mean", "std", "values"} (population std) for a list of per-seed values."""
  arr = np.asarray(values, np.float64)
  return {"mean": float(arr.mean()), "std": float(arr.std()), "values": [float(v) for v in arr]}


def git_commit() -> str:
  """The checkout's HEAD sha, with '+dirty' when tracked files differ from it."""
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                         check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, check=True).stdout.strip()
    return sha + ("+dirty" if dirty else "")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
  """The CPU's model name ("AMD EPYC", ...) from `cpuinfo`, else platform.processor(); ""
  when neither knows. Recorded because float rounding on CPU differs between CPU models."""
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
          return value.strip()
  except OSError:
    pass
  return platform.processor()


def machine_description() -> str:
  """A short description of the machine and JAX backend the run used."""
  cpu = cpu_model()
  desc = (f"{os.cpu_count()}-core {platform.machine()} {platform.system()}"
          f"{f' ({cpu})' if cpu else ''}, Python {platform.python_version()}")
  try:
    import jax  # pylint: disable=g-import-not-at-top
    devs = jax.devices()
    desc += f", jax {jax.__version__} on {len(devs)}x {devs[0].device_kind}"
  except Exception:  # pylint: disable=broad-except
    pass
  return desc


def command_line() -> str:
  """The command that started this process, as a re-runnable string."""
  argv = list(sys.argv)
  if argv and argv[0].endswith(".py"):
    mod = os.path.relpath(os.path.abspath(argv[0]), os.getcwd())
    if not mod.startswith(".."):
      argv[0] = "-m " + mod[:-3].replace(os.sep, ".")
  return "python " + " ".join(shlex.quote(a) if not a.startswith("-m ") else a for a in argv)


def make_record(*, name: str, dataset: str, protocol: str, model: str,
                config: Mapping[str, Any], metrics: Mapping[str, Any], seeds: Sequence[int],
                wall_seconds: float, extra: Mapping[str, Any] | None = None) -> dict:
  """A result record (shared/docs/results.md) with the command, commit, date and machine.

  `metrics` maps lowercase metric keys to either a {"mean","std","values"} dict or a list
  of per-seed values (summarised here) or a single float (stored as a one-value summary).
  """
  out = {}
  for key, value in metrics.items():
    if isinstance(value, Mapping):
      out[key] = dict(value)
    elif isinstance(value, (list, tuple, np.ndarray)):
      out[key] = summarize(value)
    else:
      out[key] = summarize([value])
  record = {
      "name": name, "dataset": dataset, "protocol": protocol, "model": model,
      "config": dict(config), "metrics": out, "seeds": [int(s) for s in seeds],
      "command": command_line(), "commit": git_commit(),
      "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
      "machine": machine_description(), "wall_seconds": round(float(wall_seconds), 3),
  }
  if extra:
    record.update(extra)
  return record


def save_record(record: Mapping[str, Any], path: str, overwrite: bool = True) -> str:
  """Writes `record` as JSON to `path` atomically (a reader never sees half a file).

  Raises:
    FileExistsError: `path` exists and not `overwrite` (the message names it).
  """
  if not overwrite and os.path.exists(path):
    raise FileExistsError(f"{path} exists: result files are the record and are not replaced "
                          "silently (pass --overwrite to replace it)")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=2, sort_keys=False, default=_json_default)
    f.write("\n")
  os.replace(tmp, path)
  return path


def write_result(*, name: str, dataset: str, protocol: str, model: str,
                 config: Mapping[str, Any], metrics: Mapping[str, Any], seeds: Sequence[int],
                 wall_seconds: float, results_dir: str | None = None,
                 extra: Mapping[str, Any] | None = None, overwrite: bool = False) -> str:
  """Writes <results_dir>/<name>.json (`make_record`; default folder DEFAULT_OUTPUT_DIR,
  runs/results under the working directory) and returns its path. An existing file raises
  FileExistsError naming it unless overwrite=True."""
  record = make_record(name=name, dataset=dataset, protocol=protocol, model=model,
                       config=config, metrics=metrics, seeds=seeds,
                       wall_seconds=wall_seconds, extra=extra)
  return save_record(record, os.path.join(results_dir or DEFAULT_OUTPUT_DIR, f"{name}.json"),
                     overwrite)


class ResultFolder:
  """The folder a binary writes its result files to, checked before any work.

    folder = ResultFolder(flag_value, overwrite, flag="--results_dir")  # writable?
    folder.claim(["baseline_ease_ml100k_strong_generalization"])      # none exists?
    ...  # load data, train
    path = folder.write_result(name=..., ...)  # rewritable by this run (after every seed)

  `claim` raises FileExistsError naming the first existing file (unless `overwrite`); a
  claimed or already written file may be rewritten by the same run (binaries that rewrite
  their result after every seed). Other paths in the folder (plots) go through `path` /
  `claim` with their extension.
  """

  def __init__(self, folder: str | None = None, overwrite: bool = False,
               flag: str = "--results_dir"):
    self.dir = folder or DEFAULT_OUTPUT_DIR
    self.overwrite = bool(overwrite)
    self.flag = flag
    self._own: set[str] = set()
    from recsys_core.runs import check_writable  # pylint: disable=g-import-not-at-top
    check_writable(self.dir, flag)

  def path(self, name: str, ext: str = ".json") -> str:
    """<folder>/<name><ext>."""
    return os.path.join(self.dir, f"{name}{ext}")

  def claim(self, names: Sequence[str], ext: str = ".json") -> list[str]:
    """Checks that no <folder>/<name><ext> exists (unless overwrite) and marks them as this
    run's; returns the paths. Raises FileExistsError naming the file."""
    paths = [self.path(n, ext) for n in names]
    for p in paths:
      if p not in self._own and not self.overwrite and os.path.exists(p):
        raise FileExistsError(f"{p} exists and is not replaced silently: pass --overwrite "
                              f"to replace it, or choose another {self.flag} or name")
    self._own.update(paths)
    return paths

  def write_result(self, *, name: str, **kwargs: Any) -> str:
    """`write_result` into this folder (after `claim`ing the name); returns the path."""
    self.claim([name])
    return write_result(name=name, results_dir=self.dir, overwrite=True, **kwargs)


def _json_default(obj):
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  return str(obj)
