"""Checkpoints without pickle: training state via orbax, inference params as one .npz file.

Training checkpoints (`CheckpointManager`), one directory per step:

  <directory>/step_00000120/
      arrays/        orbax PyTree checkpoint of the leaves, keyed a000000, a000001, ...
      meta.json      {"format", "step", "metadata": <caller's JSON>, "tree": [leaf specs]}
      COMMIT.json    size + sha256 of every other file; written last

A save builds all of that in `<directory>/.tmp-step_...` (orbax itself also writes to a tmp
dir and renames), fsyncs it, and only then renames it to `step_XXXXXXXX`: a process killed
mid-save leaves a `.tmp-*` directory, never a half-written `step_*` one, and stale tmp dirs
are removed by the next manager. On restore, the newest step is verified against COMMIT.json
(a missing, truncated or altered file, or a missing COMMIT.json, fails) and read; if either
fails it is logged, moved aside to `damaged-step_XXXXXXXX-<time>` and the previous step is
tried (a WARNING names the step restored and the damaged ones). `set_aside(step, reason)`
moves a checkpoint aside the same way as `diverged-step_...` (the training loop's divergence
guard); `set_aside_dirs()` lists both kinds. Leaf specs (tree path, shape, dtype) are
compared with the restore target first: a different model gives `CheckpointMismatchError`
naming each mismatched path and both shapes (this is a configuration error, so there is no
fallback).

Inference params (`save_params` / `load_params`): one `.npz` file written to a tmp name and
`os.replace`d (atomic), holding the leaves, their specs and JSON metadata; loaded with
`allow_pickle=False`, zip CRCs checked. Haiku params (nested dicts) load without a target.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging as std_logging
import os
import re
import shutil
import time
import uuid
import zipfile
from typing import Any, Optional, Sequence

from absl import logging
import jax
import numpy as np

FORMAT_VERSION = 1
_STEP_RE = re.compile(r"^step_(\d{8,})$")
_COMMIT = "COMMIT.json"
_META = "meta.json"
_ARRAYS = "arrays"
_SPEC_KEY = "__spec__"
SET_ASIDE_PREFIXES = ("damaged-", "diverged-")  # checkpoints moved aside, kept as evidence


class CheckpointError(RuntimeError):
  """A checkpoint could not be read (damaged, partial, or not a checkpoint)."""


class CheckpointMismatchError(ValueError):
  """A checkpoint's tree (paths, shapes, dtypes) differs from the restore target's."""


# ----------------------------------------------------------------------------------------
# Leaves <-> storable arrays + JSON specs.

def _is_prng_key(x) -> bool:
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_entry(k) -> list:
  if isinstance(k, jax.tree_util.DictKey):
    return ["d", k.key if isinstance(k.key, (str, int)) else str(k.key)]
  if isinstance(k, jax.tree_util.SequenceKey):
    return ["i", k.idx]
  if isinstance(k, jax.tree_util.GetAttrKey):
    return ["a", k.name]
  return ["?", str(k)]


def _flatten(tree) -> tuple[list[np.ndarray], list[dict], Any]:
  """Leaves as host numpy arrays (typed PRNG keys as their key data), specs, treedef."""
  with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
  specs, device_leaves = [], []
  for path, leaf in with_path:
    spec = {"path": jax.tree_util.keystr(path), "keys": [_key_entry(k) for k in path]}
    if _is_prng_key(leaf):
      spec["prng_impl"] = str(jax.random.key_impl(leaf))
      leaf = jax.random.key_data(leaf)
    specs.append(spec)
    device_leaves.append(leaf)
  leaves = [np.asarray(x) for x in jax.device_get(device_leaves)]  # one transfer for all
  for spec, arr in zip(specs, leaves):
    spec.update(shape=list(arr.shape), dtype=str(arr.dtype))
  return leaves, specs, treedef


def _target_specs(target) -> tuple[list[dict], list[Any], Any]:
  """Specs of a restore target (arrays or jax.ShapeDtypeStruct leaves), without copying."""
  with_path, treedef = jax.tree_util.tree_flatten_with_path(target)
  specs = []
  for path, leaf in with_path:
    shape = tuple(np.shape(leaf))
    dtype = leaf.dtype if hasattr(leaf, "dtype") else np.result_type(leaf)
    if _is_prng_key(leaf):
      data = jax.eval_shape(jax.random.key_data, leaf)
      shape, dtype = data.shape, data.dtype
    specs.append({"path": jax.tree_util.keystr(path), "shape": list(shape),
                  "dtype": str(np.dtype(dtype))})
  return specs, [leaf for _, leaf in with_path], treedef


def _check_specs(saved: Sequence[dict], wanted: Sequence[dict], where: str) -> None:
  """Raises CheckpointMismatchError listing every path whose presence/shape/dtype differs."""
  saved_by_path = {s["path"]: s for s in saved}
  wanted_by_path = {s["path"]: s for s in wanted}
  problems = []
  for path, w in wanted_by_path.items():
    s = saved_by_path.get(path)
    if s is None:
      problems.append(f"{path}: missing in the checkpoint (model has shape {tuple(w['shape'])})")
    elif list(s["shape"]) != list(w["shape"]):
      problems.append(f"{path}: shape {tuple(s['shape'])} in the checkpoint, "
                      f"{tuple(w['shape'])} in the model")
    elif s["dtype"] != w["dtype"]:
      problems.append(f"{path}: dtype {s['dtype']} in the checkpoint, {w['dtype']} in the model")
  for path, s in saved_by_path.items():
    if path not in wanted_by_path:
      problems.append(f"{path}: in the checkpoint (shape {tuple(s['shape'])}) but not in the model")
  if not problems and [s["path"] for s in saved] != [w["path"] for w in wanted]:
    problems.append("the same leaves in a different order (tree structure differs)")
  if problems:
    # Model params first, then optimizer state and extra copies (same problem, less direct).
    problems.sort(key=lambda line: ("opt_state" in line, "best_params" in line))
    shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
    raise CheckpointMismatchError(
        f"{where} does not match the model/config it is restored into "
        f"({len(problems)} mismatch{'es' if len(problems) > 1 else ''}):\n  " + "\n  ".join(shown)
        + "\nRestore with the config it was written with, or use a new directory.")


def _unflatten(treedef, target_leaves, arrays: Sequence[np.ndarray], device_put: bool):
  out = []
  for t, arr in zip(target_leaves, arrays):
    if _is_prng_key(t):
      out.append(jax.random.wrap_key_data(arr, impl=jax.random.key_impl(t)))
    else:
      out.append(jax.device_put(arr) if device_put else arr)
  return jax.tree_util.tree_unflatten(treedef, out)


def _build_from_keys(specs: Sequence[dict], arrays: Sequence[np.ndarray]):
  """Nested dicts/lists from the saved key paths (for load_params without a target)."""
  if len(specs) == 1 and not specs[0]["keys"]:
    return arrays[0]
  root: Any = None
  for spec, arr in zip(specs, arrays):
    keys = spec["keys"]
    if any(kind not in ("d", "i") for kind, _ in keys):
      raise CheckpointError(f"leaf {spec['path']} is inside a non-dict/list node; "
                            f"pass target= to load it")
    if root is None:
      root = {} if keys[0][0] == "d" else []
    node = root
    for (kind, key), (next_kind, _) in zip(keys[:-1], keys[1:]):
      child = {} if next_kind == "d" else []
      node = _set_default(node, kind, key, child)
    _set_default(node, keys[-1][0], keys[-1][1], arr)
  return root


def _set_default(node, kind, key, value):
  if kind == "d":
    return node.setdefault(key, value)
  while len(node) <= key:
    node.append(None)
  if node[key] is None:
    node[key] = value
  return node[key]


# ----------------------------------------------------------------------------------------
# JSON and files.

def _json_default(obj):
  if isinstance(obj, np.generic):
    return obj.item()
  if isinstance(obj, (np.ndarray, jax.Array)):
    return np.asarray(obj).tolist()
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    return dataclasses.asdict(obj)
  if hasattr(obj, "to_dict"):
    return obj.to_dict()
  return str(obj)


def to_json(obj) -> str:
  """JSON text of metadata: numpy scalars/arrays, dataclasses and ConfigDicts allowed."""
  return json.dumps(obj, default=_json_default, sort_keys=True, allow_nan=True)


def _fsync_dir(path: str) -> None:
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def _hash_file(path: str, fsync: bool = False) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
    if fsync:
      os.fsync(f.fileno())
  return h.hexdigest()


def _list_files(root: str) -> list[str]:
  out = []
  for dirpath, _, filenames in os.walk(root):
    for name in filenames:
      out.append(os.path.relpath(os.path.join(dirpath, name), root))
  return sorted(out)


def _write_commit(root: str) -> None:
  """Hashes (and fsyncs) every file under root, then writes COMMIT.json (fsynced)."""
  files = {}
  for rel in _list_files(root):
    full = os.path.join(root, rel)
    files[rel] = {"size": os.path.getsize(full), "sha256": _hash_file(full, fsync=True)}
  for dirpath, _, _ in os.walk(root):
    _fsync_dir(dirpath)
  with open(os.path.join(root, _COMMIT), "w") as f:
    json.dump({"format": FORMAT_VERSION, "files": files}, f, indent=1, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())


def verify_checkpoint_dir(root: str) -> None:
  """Raises CheckpointError unless every file listed in COMMIT.json is there, intact."""
  commit = os.path.join(root, _COMMIT)
  try:
    with open(commit) as f:
      files = json.load(f)["files"]
  except (OSError, ValueError, KeyError) as e:
    raise CheckpointError(f"{root}: no readable {_COMMIT} (partial or damaged save): {e}") from e
  for rel, want in sorted(files.items()):
    full = os.path.join(root, rel)
    if not os.path.isfile(full):
      raise CheckpointError(f"{root}: file {rel} is missing")
    size = os.path.getsize(full)
    if size != want["size"]:
      raise CheckpointError(f"{root}: file {rel} has {size} bytes, expected {want['size']}")
    if _hash_file(full) != want["sha256"]:
      raise CheckpointError(f"{root}: file {rel} fails its sha256 check")


# ----------------------------------------------------------------------------------------
# Training checkpoints.

class _DropOrbaxInfo(std_logging.Filter):
  """Hides orbax's half-dozen INFO lines per save/restore unless the absl logger is at DEBUG."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return (record.levelno != std_logging.INFO or f"{os.sep}orbax{os.sep}" not in record.pathname
            or logging.get_absl_logger().getEffectiveLevel() <= std_logging.DEBUG)


def _install_orbax_filter() -> None:
  absl_logger = logging.get_absl_logger()
  if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
    absl_logger.addFilter(_DropOrbaxInfo())


class CheckpointManager:
  """Step checkpoints of a pytree (TrainState, ...) + JSON metadata in one directory.

  `save(step, tree, metadata)` commits atomically and keeps the newest `max_to_keep`;
  `restore(target)` returns the newest intact checkpoint, falling back past damaged ones.
  """

  def __init__(self, directory: str, max_to_keep: int = 3):
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    self._ocp = ocp
    self.directory = os.path.abspath(directory)
    self.max_to_keep = int(max_to_keep)
    os.makedirs(self.directory, exist_ok=True)
    _install_orbax_filter()
    self._checkpointer = ocp.PyTreeCheckpointer()
    for name in os.listdir(self.directory):  # left by a process killed mid-save
      if name.startswith(".tmp-") or name.startswith(".trash-"):
        logging.info("Removing incomplete checkpoint directory %s", name)
        shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, f"step_{int(step):08d}")

  def all_steps(self) -> list[int]:
    """Committed steps, ascending (damaged ones already moved aside are not listed)."""
    steps = []
    for name in os.listdir(self.directory):
      m = _STEP_RE.match(name)
      if m and os.path.isdir(os.path.join(self.directory, name)):
        steps.append(int(m.group(1)))
    return sorted(steps)

  def set_aside_dirs(self) -> list[str]:
    """Names of the checkpoints moved aside (`damaged-step_XXXXXXXX-<time>` by restore,
    `diverged-step_...` by `set_aside`), sorted."""
    return sorted(n for n in os.listdir(self.directory)
                  if n.startswith(SET_ASIDE_PREFIXES)
                  and os.path.isdir(os.path.join(self.directory, n)))

  def set_aside(self, step: int, reason: str, kind: str = "diverged") -> str:
    """Moves checkpoint `step` to `<kind>-step_XXXXXXXX-<time>` (kept, never restored);
    returns its new path."""
    if f"{kind}-" not in SET_ASIDE_PREFIXES:
      raise ValueError(f"kind must be one of {[p[:-1] for p in SET_ASIDE_PREFIXES]}")
    root = self.step_dir(step)
    aside = os.path.join(self.directory,
                         f"{kind}-step_{int(step):08d}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(aside):
      aside += f"-{uuid.uuid4().hex[:8]}"
    os.rename(root, aside)
    _fsync_dir(self.directory)
    logging.warning("Checkpoint %s set aside as %s: %s", root, os.path.basename(aside), reason)
    return aside

  def latest_step(self) -> Optional[int]:
    steps = self.all_steps()
    return steps[-1] if steps else None

  def save(self, step: int, tree: Any, metadata: Optional[dict] = None) -> str:
    """Writes checkpoint `step` (replacing one of the same step) and prunes old ones."""
    step = int(step)
    leaves, specs, _ = _flatten(tree)
    final = self.step_dir(step)
    tmp = os.path.join(self.directory, f".tmp-{os.path.basename(final)}-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
      if leaves:
        self._checkpointer.save(os.path.join(tmp, _ARRAYS),
                                {f"a{i:06d}": leaf for i, leaf in enumerate(leaves)})
      with open(os.path.join(tmp, _META), "w") as f:
        f.write(to_json({"format": FORMAT_VERSION, "step": step, "metadata": metadata or {},
                         "tree": specs}))
      _write_commit(tmp)
      if os.path.exists(final):
        trash = os.path.join(
            self.directory, f".trash-{os.path.basename(final)}-{uuid.uuid4().hex[:8]}")
        os.rename(final, trash)
        os.rename(tmp, final)
        shutil.rmtree(trash, ignore_errors=True)
      else:
        os.rename(tmp, final)
      _fsync_dir(self.directory)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
    for old in self.all_steps()[:-self.max_to_keep]:
      shutil.rmtree(self.step_dir(old), ignore_errors=True)
    return final

  def read_metadata(self, step: int) -> dict:
    """meta.json of `step`: {"format", "step", "metadata", "tree"} (no verification)."""
    with open(os.path.join(self.step_dir(step), _META)) as f:
      return json.load(f)

  def restore(self, target: Any, step: Optional[int] = None) -> Optional[tuple[Any, dict, int]]:
    """Returns (tree, metadata, step) from the newest intact checkpoint, or None if there is
    no step_* checkpoint (ones set aside earlier are not counted: `set_aside_dirs`).

    `target` gives the tree structure, shapes and dtypes (arrays or ShapeDtypeStructs); the
    restored leaves are device arrays (typed PRNG keys re-wrapped). With `step`, only that
    step is tried. Damaged checkpoints are logged and moved aside, then the previous one
    is tried; CheckpointError if checkpoints existed but none was intact.
    """
    wanted, target_leaves, treedef = _target_specs(target)
    candidates = self.all_steps()[::-1]
    if step is not None:
      if int(step) not in candidates:
        raise CheckpointError(f"no checkpoint of step {step} in {self.directory} "
                              f"(steps: {candidates[::-1]})")
      candidates = [int(step)]
    if not candidates:
      return None
    damaged = []
    for s in candidates:
      root = self.step_dir(s)
      try:
        verify_checkpoint_dir(root)
        with open(os.path.join(root, _META)) as f:
          meta = json.load(f)
      except (CheckpointError, OSError, ValueError) as e:
        damaged.append(self._set_aside(s, e))
        continue
      _check_specs(meta["tree"], wanted, f"checkpoint {root}")
      try:
        arrays = self._read_arrays(root, meta["tree"])
      except Exception as e:  # pylint: disable=broad-except
        damaged.append(self._set_aside(s, e))
        continue
      if damaged:
        logging.warning("Fell back to checkpoint step %d in %s: the newer %s damaged and set "
                        "aside (%s); the steps after %d will be redone.", s, self.directory,
                        ", ".join(f"step {d}" for d, _ in damaged)
                        + (" was" if len(damaged) == 1 else " were"),
                        "; ".join(msg for _, msg in damaged), s)
      else:
        logging.info("Restored checkpoint %s", root)
      return _unflatten(treedef, target_leaves, arrays, device_put=True), meta["metadata"], s
    raise CheckpointError(f"no intact checkpoint in {self.directory}: "
                          f"{[msg for _, msg in damaged]} were damaged (moved aside as "
                          f"damaged-*). Remove them to start over.")

  def _read_arrays(self, root: str, specs: Sequence[dict]) -> list[np.ndarray]:
    if not specs:
      return []
    ocp = self._ocp
    keys = [f"a{i:06d}" for i in range(len(specs))]
    restore_args = {k: ocp.RestoreArgs(restore_type=np.ndarray) for k in keys}
    out = self._checkpointer.restore(os.path.join(root, _ARRAYS),
                                     args=ocp.args.PyTreeRestore(restore_args=restore_args))
    arrays = []
    for k, spec in zip(keys, specs):
      arr = np.asarray(out[k])
      if list(arr.shape) != list(spec["shape"]) or str(arr.dtype) != spec["dtype"]:
        raise CheckpointError(f"{root}: leaf {spec['path']} read back as {arr.shape} {arr.dtype}, "
                              f"meta.json says {tuple(spec['shape'])} {spec['dtype']}")
      arrays.append(arr)
    return arrays

  def _set_aside(self, step: int, error: Exception) -> tuple[int, str]:
    root = self.step_dir(step)
    aside = os.path.join(self.directory,
                         f"damaged-step_{step:08d}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(aside):
      aside += f"-{uuid.uuid4().hex[:8]}"
    try:
      os.rename(root, aside)
    except OSError:
      aside = root
    logging.warning("Checkpoint %s is damaged or partial (%s); moved to %s; trying the "
                    "previous checkpoint, if any.", root, error, aside)
    return step, f"step {step}: {error}"


# ----------------------------------------------------------------------------------------
# Inference params.

def _storable(arr: np.ndarray) -> np.ndarray:
  """Arrays with non-numpy dtypes (bfloat16, ...) are stored as raw unsigned ints."""
  if arr.dtype.kind in "biufc" and type(arr.dtype).__module__.startswith("numpy"):
    return arr
  return arr.view(np.dtype(f"u{arr.dtype.itemsize}"))


def save_params(path: str, params: Any, metadata: Optional[dict] = None) -> str:
  """Writes `params` (any pytree of arrays) and JSON `metadata` to the .npz file `path`.

  Atomic: written to a tmp file in the same directory, fsynced, then `os.replace`d.
  """
  leaves, specs, _ = _flatten(params)
  arrays = {f"a{i:06d}": _storable(leaf) for i, leaf in enumerate(leaves)}
  arrays[_SPEC_KEY] = np.array(to_json({"format": FORMAT_VERSION, "tree": specs,
                                        "metadata": metadata or {}}))
  path = os.path.abspath(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
  try:
    with open(tmp, "wb") as f:
      np.savez(f, **arrays)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  _fsync_dir(os.path.dirname(path))
  return path


def load_params(path: str, target: Any = None) -> tuple[Any, dict]:
  """Reads a `save_params` file: returns (params as numpy arrays, metadata).

  Without `target` the tree is rebuilt as nested dicts/lists (haiku params); with `target`
  it takes target's structure, after a shape/dtype check (CheckpointMismatchError).
  CheckpointError if the file is damaged or not a params file.
  """
  try:
    with np.load(path, allow_pickle=False) as z:
      spec = json.loads(str(z[_SPEC_KEY]))
      arrays = []
      for i, leaf_spec in enumerate(spec["tree"]):
        arr = z[f"a{i:06d}"]
        dtype = np.dtype(leaf_spec["dtype"])
        if arr.dtype != dtype:
          arr = arr.view(dtype)
        if list(arr.shape) != list(leaf_spec["shape"]):
          raise CheckpointError(f"leaf {leaf_spec['path']} has shape {arr.shape}, "
                                f"expected {tuple(leaf_spec['shape'])}")
        arrays.append(arr)
  except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
    raise CheckpointError(f"{path}: damaged or not a params file ({type(e).__name__}: {e})") from e
  if target is None:
    return _build_from_keys(spec["tree"], arrays), spec["metadata"]
  wanted, target_leaves, treedef = _target_specs(target)
  _check_specs(spec["tree"], wanted, f"params file {path}")
  return _unflatten(treedef, target_leaves, arrays, device_put=False), spec["metadata"]
