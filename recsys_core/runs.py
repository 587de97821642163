"""Run folders: where a run writes, and the config fingerprint that guards resuming.

  runs/<name>/
    config.json    {"fingerprint": ..., "config": {...}, "run_only": [...]}, written first
    data.json      the split's fingerprint: resuming on changed data is refused too
    items.npy      the training items' public ids (index order; data.source.public_item_ids:
                   MovieIDs for ML-1M, MyAnimeList ids for anime), for serving
    train/         the model's checkpoints and metrics.jsonl (recsys_core.train.fit)
    record.json    the result record, written last (atomically)

The fingerprint is the SHA-256 of the config's canonical JSON without its run-only fields
(wall-clock budgets and logging intervals: they change how long or how loudly a run goes,
not what it computes). Opening a folder that holds another fingerprint is refused with
`ConfigChangedError`, which names every differing field, so a rerun with a changed learning
rate never resumes the old model and reports its metrics under the new config. With
`on_change="new"` the run goes to the first free sibling folder (<name>-2, <name>-3, ...)
instead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Sequence

import numpy as np

from recsys_core import config as config_lib
from recsys_core.train.loop import config_diff

CONFIG_FILE = "config.json"
RECORD_FILE = "record.json"
ON_CHANGE = ("error", "new")


class ConfigChangedError(ValueError):
  """A run folder holds a run of another config (the message lists the fields)."""


def _drop(config: dict, dotted: str) -> None:
  node = config
  *parents, leaf = dotted.split(".")
  for key in parents:
    node = node.get(key)
    if not isinstance(node, dict):
      return
  node.pop(leaf, None)


def canonical(config: Any, run_only: Sequence[str] = ()) -> dict:
  """The config as plain JSON-ready dicts without the `run_only` dotted fields."""
  out = json.loads(json.dumps(config_lib.plain(config), default=str))
  for field in run_only:
    _drop(out, field)
  return out


def fingerprint(config: Any, run_only: Sequence[str] = ()) -> str:
  """SHA-256 (hex, first 16 digits) of the canonical JSON of the config less `run_only`."""
  text = json.dumps(canonical(config, run_only), sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class RunDir:
  """An opened run folder. `resumed`: it already held this config's run."""
  path: str
  fingerprint: str
  resumed: bool

  @property
  def train_dir(self) -> str:
    return os.path.join(self.path, "train")

  @property
  def record_path(self) -> str:
    return os.path.join(self.path, RECORD_FILE)


def check_writable(folder: str, what: str) -> None:
  """Raises ValueError naming `what` unless `folder` exists (or can be made) and is
  writable: checked before any expensive work."""
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as e:
    raise ValueError(f"{what}={folder!r}: cannot create the folder ({e.strerror})") from None
  if not os.access(folder, os.W_OK | os.X_OK):
    raise ValueError(f"{what}={folder!r}: the folder is not writable")


def _filled(stored: Any, defaults: Any) -> Any:
  """`stored` with the keys it lacks taken from `defaults` (recursively)."""
  if not isinstance(stored, dict) or not isinstance(defaults, dict):
    return stored
  out = {k: _filled(v, defaults.get(k)) for k, v in stored.items()}
  for k, v in defaults.items():
    out.setdefault(k, v)
  return out


def open_run(path: str, config: Any, run_only: Sequence[str] = (),
             on_change: str = "error", defaults: Any = None) -> RunDir:
  """Creates or reopens the run folder `path` for `config`.

  Args:
    path: the folder (created with its parents).
    config: the run's whole config (ConfigDict, dataclass or mapping).
    run_only: dotted fields left out of the fingerprint.
    on_change: what to do when `path` holds another config's run: "error" raises
      ConfigChangedError naming the differing fields; "new" opens the first free folder
      `path-2`, `path-3`, ... instead.
    defaults: the config with every field at its default. A field added to a config after a
      folder was created is absent from its config.json; it is read as its default (a new
      field's default keeps the behaviour from before it), so the run still resumes.

  Returns:
    The RunDir; config.json is written when the folder is new.
  """
  config_lib.check(on_change in ON_CHANGE, "on_change", on_change, f"one of {ON_CHANGE}")
  want = canonical(config, run_only)
  digest = fingerprint(config, run_only)
  candidate, n = path, 1
  while True:
    stored = _read_config(candidate)
    if stored is None:
      break
    base = canonical(defaults, run_only) if defaults is not None else None
    stored_config, want_config = _filled(stored.get("config"), base), _filled(want, base)
    if (stored.get("fingerprint") == digest
        or fingerprint(stored_config, run_only) == fingerprint(want_config, run_only)):
      return RunDir(candidate, digest, resumed=True)
    if on_change == "error":
      changed = config_diff(stored_config, want_config)
      raise ConfigChangedError(
          f"{candidate} holds a run of another config (fingerprint {stored.get('fingerprint')}"
          f", this config's is {digest}); the fields that differ (folder -> now):\n  "
          + "\n  ".join(changed or ["<run-only fields changed meaning>"])
          + "\nUse another run name, or --on_change=new to start a fresh folder beside it.")
    n += 1
    candidate = f"{path}-{n}"
  check_writable(candidate, "run folder")
  _write_json(os.path.join(candidate, CONFIG_FILE),
              {"fingerprint": digest, "config": want, "run_only": list(run_only)})
  return RunDir(candidate, digest, resumed=False)


def _read_config(folder: str) -> dict | None:
  """The folder's config.json, None when the folder has none (a new or empty folder)."""
  path = os.path.join(folder, CONFIG_FILE)
  if not os.path.exists(path):
    if os.path.isdir(folder) and os.listdir(folder):
      raise ConfigChangedError(f"{folder} exists and is not a run folder (no {CONFIG_FILE});"
                               " choose another run name")
    return None
  try:
    with open(path) as f:
      stored = json.load(f)
  except ValueError as e:
    raise ConfigChangedError(f"{path}: unreadable ({e}); move the folder away") from None
  if not isinstance(stored, dict) or "fingerprint" not in stored:
    raise ConfigChangedError(f"{path}: not a run config (no fingerprint)")
  return stored


def _write_json(path: str, value: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=1, sort_keys=True, default=str)
    f.write("\n")
  os.replace(tmp, path)


def result_target(results_dir: str | None, name: str, overwrite: bool) -> str | None:
  """<results_dir>/<name>.json claimed before any work (results.ResultFolder: the folder
  writable, the file absent unless `overwrite`); None without a results_dir."""
  if not results_dir:
    return None
  from recsys_core import results  # pylint: disable=g-import-not-at-top
  return results.ResultFolder(results_dir, overwrite).claim([name])[0]


DATA_FILE = "data.json"


def check_data(run: RunDir, split_fingerprint: str, source: str) -> None:
  """Records the split's fingerprint in a new run folder; in a resumed one, raises
  ConfigChangedError when the data changed since (same config, another file content)."""
  path = os.path.join(run.path, DATA_FILE)
  if os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    if stored.get("split_fingerprint") != split_fingerprint:
      raise ConfigChangedError(
          f"{run.path}: the data changed since this run began (split fingerprint "
          f"{stored.get('split_fingerprint')} then, {split_fingerprint} now, from {source}); "
          "its checkpoints belong to the old data. Use another run name or --on_change=new.")
    return
  _write_json(path, {"split_fingerprint": split_fingerprint, "source": source})


def load_data_fingerprint(run_dir: str) -> str:
  """The split fingerprint a run folder was trained on (its data.json)."""
  path = os.path.join(run_dir, DATA_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: not found ({run_dir} is not a pipeline run folder)")
  with open(path) as f:
    return json.load(f)["split_fingerprint"]


ITEMS_FILE = "items.npy"


def save_items(run: RunDir, item_ids) -> str:
  """Writes the training item vocabulary (the dataset's own ids, index order) beside the
  run, so a trained model can serve raw ids. numpy format without pickle: ints or str."""
  item_ids = np.asarray(item_ids)
  if item_ids.dtype == object:
    item_ids = item_ids.astype(str)
  path = os.path.join(run.path, ITEMS_FILE)
  tmp = path + ".tmp.npy"
  np.save(tmp, item_ids, allow_pickle=False)
  os.replace(tmp, path)
  return path


def load_items(run_dir: str) -> np.ndarray:
  """The item vocabulary a run was trained on ([I] dataset ids; index = model item)."""
  path = os.path.join(run_dir, ITEMS_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: not a run folder of experiments.train (no item list)")
  return np.load(path, allow_pickle=False)


def load_config(run_dir: str) -> dict:
  """The config (plain dicts) a run folder was created with."""
  if not os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
    raise FileNotFoundError(f"{run_dir}: not a run folder (no {CONFIG_FILE})")
  return _read_config(run_dir)["config"]


def write_record(run: RunDir, record: dict) -> str:
  """Writes record.json into the run folder (atomically); returns its path."""
  _write_json(run.record_path, record)
  return run.record_path
