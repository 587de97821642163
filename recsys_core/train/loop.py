"""The generic training loop: `fit(update_fn, init_state, batch_fn, cfg, workdir, ...)`.

Step numbering: `state.step` = updates applied so far. The update that takes the state from
step s to s + 1 uses `batch_fn(s)`; "step" in logs, evaluations and checkpoints is the state's
step after it (so the first log at log_every=10 is step 10, after batches 0..9).

At each step s (after the update), in this order:
  0. divergence     at every step that logs, evaluates or checkpoints: the mean train loss
                    since the last train record is checked against the run's lowest train-
                    record loss (below); a runaway or non-finite loss raises DivergenceError
                    before anything of step s is recorded, evaluated or saved;
  1. train record   if s % log_every == 0 or s == num_steps: means over the steps since the
                    last train record (`skipped` is summed);
  2. evaluation     if eval_fn and (s % eval_every == 0 or s == num_steps): eval_fn(params)
                    with params = `eval_params(state)` (the optimizer's parameter average
                    when OptimizerConfig.ema_decay > 0, else state.params; with an average
                    and cfg.eval_online_params the online params are evaluated too, their
                    metrics recorded as online_<key>); best selection on cfg.best_metric
                    (max/min, min_delta); a new best is exported to
                    <workdir>/best_params.npz (`save_params`); early stop after `patience`
                    evaluations in a row without improvement;
  3. time budget    with cfg.max_seconds, after an evaluation (after a checkpoint step when
                    there is no eval_fn): once this call has run longer than the budget, it
                    stops with end reason "time_budget"; calling fit again continues;
  4. checkpoint     if s % checkpoint_every == 0, at num_steps, or when stopping.

Workdir layout:
  checkpoints/step_XXXXXXXX/   TrainState + best params + loop state (CheckpointManager)
  best_params.npz              params of the best evaluation (load with `load_params`)
  metrics.jsonl                one JSON object per event: {"event": "train"|"eval"|"end"|
                               "nonfinite"|"diverged", "step", "wall_time", ...metrics}
  tb/                          TensorBoard events (cfg.tensorboard)

Resume: if the workdir has a checkpoint, `fit` restores the newest intact one (state, best
params, best value, patience counter, the partial train-record window, the training seconds
so far: FitResult.train_seconds sums them over the calls), truncates
metrics.jsonl to the records up to that step, and continues: with deterministic update and
batch_fn (EpochBatcher), a killed-and-resumed run ends with the same params and metrics as
an uninterrupted one (only "wall_time" and "steps_per_sec" differ). A config that differs
from the checkpoint's is allowed (e.g. more epochs) and logged as one "path: old -> new"
line per changed field (`config_diff`).

Guarantees (tests/recsys_core/test_train_*.py, tests/recsys_core/test_checkpoint.py,
tests/recsys_core/test_train_reliability.py):
  * kill -9 at any point, then `fit` again: bit-identical (CPU) to an uninterrupted run.
  * damaged checkpoints: a damaged newest checkpoint is moved aside and the previous one
    restored, with a WARNING naming both steps (keep_checkpoints >= 2 leaves one to fall back
    to; the default is 3). Never a silent restart: when the checkpoint folder held
    checkpoints but none is intact (now, or set aside by an earlier call: damaged-* or
    diverged-*), `fit` raises CheckpointError naming the folder and the set-aside
    directories, and touches nothing else (metrics.jsonl, best_params.npz);
    `fit(..., on_damaged="restart")` starts over from step 0 instead (the set-aside
    directories are kept).
  * a metrics.jsonl line that is not a complete JSON record (cut by a kill) is dropped on
    resume with a WARNING naming the file and the line number.
  * non-finite loss/gradients: with nan_policy="raise" NonFiniteError names the step before
    anything after it is recorded, evaluated or saved (the update never applies them).
  * divergence (cfg.divergence_factor, default 1e3; None: off): with L the mean train loss
    of the steps since the previous train record, best the lowest train-record loss of the
    run so far (kept in the checkpoints, so it survives resumes) and first the run's first
    train-record loss, training stops when L is not finite or
        L - best > max(divergence_factor * |best|, |first|)
    (for positive losses: L more than about divergence_factor times the lowest; the |first|
    floor keeps losses that approach or cross zero from tripping it). It raises
    DivergenceError(step, loss, best) (a NonFiniteError), writes a "diverged" record to
    metrics.jsonl, and writes no checkpoint or best params of that step. A train loss is
    the loss of the params *before* its update, so a checkpoint's own params are judged one
    step later, by the same rule applied to the single loss of the update on batch_fn(its
    step); if that trips, the checkpoint is moved aside to checkpoints/diverged-step_*. So
    the newest checkpoint left is the last good one. With nan_policy="skip", a loss that
    is not finite because of skipped steps is not judged. No "loss" metric: no guard.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Callable, Mapping, NamedTuple, Optional

from absl import logging
import jax
import numpy as np

from recsys_core.train.checkpoint import CheckpointError
from recsys_core.train.checkpoint import CheckpointManager
from recsys_core.train.checkpoint import load_params
from recsys_core.train.checkpoint import save_params
from recsys_core.train.checkpoint import to_json
from recsys_core.train.optim import eval_params
from recsys_core.train.state import TrainState
from recsys_core.train.update import DivergenceError
from recsys_core.train.update import NonFiniteError

TIMING_KEYS = ("wall_time", "steps_per_sec")  # the only non-deterministic record fields
BEST_PARAMS_FILE = "best_params.npz"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
ON_DAMAGED = ("raise", "restart")  # fit's choices when no checkpoint is intact


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """What `fit` does and when. JSON-serialisable (stored in checkpoint metadata)."""
  num_steps: int
  log_every: int = 100
  eval_every: int = 1000            # 0: evaluate only at num_steps (if eval_fn is given)
  checkpoint_every: int = 1000
  keep_checkpoints: int = 3
  best_metric: Optional[str] = None  # key of eval_fn's dict; None: no best selection
  best_mode: str = "max"            # "max" or "min"
  min_delta: float = 0.0            # an improvement must beat the best by more than this
  patience: Optional[int] = None    # early stop after this many evals without improvement
  tensorboard: bool = False         # write <workdir>/tb with tensorboardX
  progress_bar: bool = True         # tqdm, only when stderr is a TTY (else absl log lines)
  eval_online_params: bool = True   # with a parameter average (ema_decay > 0), also evaluate
                                    # the online params (records online_<key>; 2x eval time)
  max_seconds: Optional[float] = None  # wall-clock budget of one fit call, checked after each
                                    # evaluation (so no trained step goes unevaluated)
  divergence_factor: Optional[float] = 1e3  # stop (DivergenceError) when the train loss runs
                                    # away from the lowest so far (module docstring); None: off

  def __post_init__(self):
    for name in ("num_steps", "log_every", "checkpoint_every", "keep_checkpoints"):
      if getattr(self, name) < 1:
        raise ValueError(f"LoopConfig.{name} must be >= 1, got {getattr(self, name)}")
    if self.divergence_factor is not None and not (
        math.isfinite(self.divergence_factor) and self.divergence_factor > 0):
      raise ValueError("LoopConfig.divergence_factor must be a finite number > 0 or None, got "
                       f"{self.divergence_factor}")
    if self.max_seconds is not None and self.max_seconds < 0:
      raise ValueError(f"LoopConfig.max_seconds must be >= 0 or None, got {self.max_seconds}")
    if self.eval_every < 0:
      raise ValueError(f"LoopConfig.eval_every must be >= 0, got {self.eval_every}")
    if self.best_mode not in ("max", "min"):
      raise ValueError(f"LoopConfig.best_mode must be 'max' or 'min', got {self.best_mode!r}")
    if self.patience is not None and (self.patience < 1 or self.best_metric is None):
      raise ValueError("LoopConfig.patience needs best_metric and must be >= 1")


class FitResult(NamedTuple):
  state: TrainState                 # the final state (at num_steps or the early stop)
  best_params: Any                  # host copy of the best evaluated params (`eval_params`);
                                    # None without best_metric
  best_step: Optional[int]
  best_metrics: Optional[dict]      # eval_fn's dict at best_step
  history: list                     # the metrics.jsonl records, in order
  train_seconds: float = 0.0        # wall time of the fit calls that produced `state`,
                                    # summed over resumes (steps redone after a kill count
                                    # once; restore and setup before the loop do not count)

  @property
  def selected_params(self) -> Any:
    """The params to test and serve, on the host: best_params, or without best selection
    the final state's `eval_params` (its parameter average when the optimizer keeps one)."""
    if self.best_params is not None:
      return self.best_params
    return jax.device_get(eval_params(self.state))

  @property
  def end_reason(self) -> Optional[str]:
    """Why training ended: "num_steps", "early_stop" or "time_budget" (the last "end")."""
    ends = [r for r in self.history if r["event"] == "end"]
    return ends[-1]["reason"] if ends else None


def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
  return {k: float(np.asarray(v)) for k, v in metrics.items() if np.ndim(v) == 0}


class _Window:
  """Per-step training metrics accumulated until the next train record (exact in float64)."""

  def __init__(self, saved: Optional[dict] = None):
    saved = saved or {}
    self.sums: dict[str, float] = dict(saved.get("sums", {}))
    self.count: int = int(saved.get("count", 0))

  def add(self, metrics: Mapping[str, float]) -> None:
    for k, v in metrics.items():
      self.sums[k] = self.sums.get(k, 0.0) + v
    self.count += 1

  def means(self) -> dict[str, float]:
    return {k: (v if k == "skipped" else v / max(self.count, 1)) for k, v in self.sums.items()}

  def flush(self) -> dict[str, float]:
    out = self.means()
    self.sums, self.count = {}, 0
    return out

  def to_json(self) -> dict:
    return {"sums": self.sums, "count": self.count}


def _read_history(path: str, max_step: int) -> list[dict]:
  """Records of metrics.jsonl with step <= max_step; rewrites the file to exactly those.

  A line that is not a JSON object (cut by a kill) is dropped with a WARNING naming the file
  and the line number.
  """
  records = []
  if os.path.exists(path):
    with open(path) as f:
      for lineno, line in enumerate(f, 1):
        try:
          rec = json.loads(line)
        except ValueError:  # a line cut by a kill
          rec = None
        if not isinstance(rec, dict):
          logging.warning("%s line %d is not a complete JSON record (cut off by a kill?); "
                          "dropping it: %.120r", path, lineno, line)
          continue
        if rec.get("step", math.inf) <= max_step:
          records.append(rec)
  elif max_step > 0:
    logging.warning("%s is missing: the history before step %d is lost", path, max_step)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    for rec in records:
      f.write(json.dumps(rec) + "\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
  return records


class _Recorder:
  """Appends records to metrics.jsonl (+ TensorBoard) and the in-memory history."""

  def __init__(self, workdir: str, history: list, tensorboard: bool):
    self.history = history
    self._file = open(os.path.join(workdir, METRICS_FILE), "a")
    self._tb = None
    if tensorboard:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tb"))

  def write(self, event: str, step: int, values: Mapping[str, Any]) -> dict:
    rec = {"event": event, "step": int(step), "wall_time": time.time(), **values}
    self.history.append(rec)
    self._file.write(json.dumps(rec) + "\n")
    self._file.flush()
    if self._tb is not None:
      for k, v in values.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
          self._tb.add_scalar(f"{event}/{k}", v, step)
    return rec

  def sync(self) -> None:
    self._file.flush()
    os.fsync(self._file.fileno())
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    self._file.close()
    if self._tb is not None:
      self._tb.close()


def fit(update_fn: Callable[[TrainState, Any], tuple[TrainState, Mapping[str, Any]]],
        init_state: TrainState,
        batch_fn: Callable[[int], Any],
        cfg: LoopConfig,
        workdir: str,
        eval_fn: Optional[Callable[[Any], Mapping[str, Any]]] = None,
        config: Any = None,
        on_damaged: str = "raise") -> FitResult:
  """Trains `init_state` with `update_fn` on `batch_fn(step)` for cfg.num_steps updates.

  Resumes from the newest intact checkpoint in `workdir` if there is one (init_state then
  only gives the structure, shapes and dtypes). `config` (JSON-serialisable: dicts,
  dataclasses, ConfigDicts) is stored in checkpoint and best-params metadata. Obeys
  `update_fn.nan_policy` ("raise" by default): a non-finite step raises NonFiniteError
  naming the step before anything after it is evaluated or saved. `eval_fn(params)` returns
  scalar metrics of the params it is given (`eval_params(state)`: the parameter average
  when the optimizer keeps one). With `make_update_fn(..., donate=True)` init_state is
  consumed; best params are host copies, so they stay valid.

  A train loss that runs away or stops being finite raises DivergenceError (see
  cfg.divergence_factor) before that step is recorded, evaluated or saved. If the checkpoint
  folder held checkpoints but none is intact, `on_damaged="raise"` (the default) raises
  CheckpointError without touching anything else in `workdir`; `on_damaged="restart"` logs
  a WARNING and trains from step 0.
  """
  if cfg.best_metric is not None and eval_fn is None:
    raise ValueError(f"LoopConfig.best_metric={cfg.best_metric!r} needs an eval_fn")
  if on_damaged not in ON_DAMAGED:
    raise ValueError(f"on_damaged must be one of {ON_DAMAGED}, got {on_damaged!r}")
  nan_policy = getattr(update_fn, "nan_policy", "raise")
  os.makedirs(workdir, exist_ok=True)
  manager = CheckpointManager(os.path.join(workdir, CHECKPOINT_DIR), cfg.keep_checkpoints)
  best_path = os.path.join(workdir, BEST_PARAMS_FILE)
  config_json = json.loads(to_json(config))

  # ---- Restore (or start fresh). ----
  loop: dict = {"best_step": None, "best_value": None, "best_metrics": None,
                "evals_since_best": 0, "done": None, "window": None, "train_seconds": 0.0,
                "loss_best": None, "loss_first": None}  # the divergence guard's references
  restored = _restore(manager, {"state": init_state, "best_params": init_state.params},
                      workdir, on_damaged)
  if restored is None:
    state, best_params = init_state, None
    history = _read_history(os.path.join(workdir, METRICS_FILE), max_step=-1)
    if os.path.exists(best_path):
      os.remove(best_path)  # left by a run killed before its first checkpoint
  else:
    tree, meta, ckpt_step = restored
    state = tree["state"]
    loop.update(meta["loop"])
    best_params = jax.device_get(tree["best_params"]) if loop["best_step"] is not None else None
    history = _read_history(os.path.join(workdir, METRICS_FILE), max_step=ckpt_step)
    changed = config_diff(meta.get("config"), config_json)
    if changed:
      logging.warning("Resuming %s with a config that differs from the checkpoint's in %d "
                      "field(s) (checkpoint -> now):\n  %s", workdir, len(changed),
                      "\n  ".join(changed))
    _sync_best_file(cfg, best_path, best_params, loop, config_json)
    logging.info("Resumed %s at step %d", workdir, ckpt_step)
  step = int(state.step)
  if loop["done"] == "early_stop" or step >= cfg.num_steps:
    logging.info("%s: training already finished at step %d (%s)", workdir, step,
                 loop["done"] or f"num_steps={cfg.num_steps}")
    if loop["done"] and not any(r["event"] == "end" and r["step"] == step for r in history):
      logging.warning("%s has no \"end\" record of step %d (lost with a damaged line); "
                      "writing it again from the checkpoint", METRICS_FILE, step)
      recorder = _Recorder(workdir, history, tensorboard=False)
      try:
        recorder.write("end", step, {"reason": loop["done"], "best_step": loop["best_step"]})
        recorder.sync()
      finally:
        recorder.close()
    return FitResult(state, best_params, loop["best_step"], loop["best_metrics"], history,
                     loop["train_seconds"])
  loop["done"] = None

  window = _Window(loop.pop("window"))
  recorder = _Recorder(workdir, history, cfg.tensorboard)
  pbar = None
  if cfg.progress_bar and sys.stderr.isatty():
    import tqdm  # pylint: disable=g-import-not-at-top
    pbar = tqdm.tqdm(total=cfg.num_steps, initial=step, dynamic_ncols=True)
  say = (lambda msg: pbar.write(msg, file=sys.stderr)) if pbar is not None else logging.info

  # The newest checkpoint whose own params' loss (the loss of the update on batch_fn(its
  # step)) has not been seen yet; judged by the divergence guard when it is.
  unjudged = {"step": step if restored is not None else None}

  def consume(batch_step: int, metrics) -> None:
    host = _scalar_metrics(jax.device_get(metrics))
    if nan_policy == "raise" and host.get("skipped", 0):
      recorder.write("nonfinite", batch_step + 1, {"batch": batch_step, **host})
      recorder.sync()
      raise NonFiniteError(batch_step, host)
    if batch_step == unjudged["step"]:
      unjudged["step"] = None
      check_divergence(host, batch_step + 1, is_record=False, checkpoint_step=batch_step)
    window.add(host)

  def check_divergence(values: Mapping[str, float], at: int, is_record: bool,
                       checkpoint_step: Optional[int] = None) -> None:
    """Raises DivergenceError if `values` (train means since the last record, or the
    first step after checkpoint `checkpoint_step`: then its params are what ran away and
    it is set aside) ran away."""
    loss = values.get("loss")
    if cfg.divergence_factor is None or loss is None:
      return
    if not math.isfinite(loss) and nan_policy == "skip" and values.get("skipped", 0):
      return  # skipped steps' losses: nan_policy="skip" handles them
    best, first = loop["loss_best"], loop["loss_first"]
    if not math.isfinite(loss):
      reason = "is not finite"
    elif best is not None and loss - best > max(cfg.divergence_factor * abs(best), abs(first)):
      reason = (f"is more than max(divergence_factor={cfg.divergence_factor:g} x |lowest|, "
                f"|first record's loss| = {abs(first):.6g}) above the lowest")
    else:
      if is_record:
        loop["loss_first"] = loss if first is None else first
        loop["loss_best"] = loss if best is None else min(best, loss)
      return
    extra = {}
    if checkpoint_step is not None and checkpoint_step in manager.all_steps():
      aside = os.path.basename(manager.set_aside(
          checkpoint_step, f"its params' train loss {loss:.6g} {reason}"))
      reason += (f"; it is the loss of checkpoint step {checkpoint_step}'s params (on "
                 f"batch_fn({checkpoint_step})), so that checkpoint was moved aside to {aside}")
      extra["checkpoint_set_aside"] = aside
    recorder.write("diverged", at, {**values, "best_loss": best, "reason": reason, **extra})
    recorder.sync()
    raise DivergenceError(at, loss, best, reason, values, manager.latest_step())

  def seconds_so_far() -> float:
    return loop["train_seconds"] + (time.time() - call_start)

  def checkpoint(at: int) -> None:
    recorder.sync()  # records up to `at` are durable before the checkpoint that covers them
    meta = {"loop": {**loop, "window": window.to_json(), "train_seconds": seconds_so_far()},
            "config": config, "loop_config": dataclasses.asdict(cfg)}
    manager.save(at, {"state": state,
                      "best_params": best_params if best_params is not None else state.params},
                 meta)
    unjudged["step"] = at

  pending = None
  t_last, step_last = time.time(), step
  call_start = t_last
  try:
    while step < cfg.num_steps:
      state, metrics = update_fn(state, batch_fn(step))
      step += 1
      if pending is not None:  # one step behind: the host reads step s-1 while s computes
        consume(*pending)
      pending = (step - 1, metrics)
      if pbar is not None:
        pbar.update(1)
      is_last = step == cfg.num_steps
      log_now = step % cfg.log_every == 0 or is_last
      eval_now = eval_fn is not None and (
          (cfg.eval_every and step % cfg.eval_every == 0) or is_last)
      ckpt_now = step % cfg.checkpoint_every == 0 or is_last
      if not (log_now or eval_now or ckpt_now):
        continue
      consume(*pending)
      pending = None
      check_divergence(window.means(), step, is_record=log_now)

      if log_now:
        now = time.time()
        values = window.flush()
        values["steps_per_sec"] = (step - step_last) / max(now - t_last, 1e-9)
        t_last, step_last = now, step
        recorder.write("train", step, values)
        shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        if pbar is not None:
          pbar.set_postfix_str(shown, refresh=False)
        else:
          say(f"step {step}/{cfg.num_steps}: {shown}")

      if eval_now:
        params = eval_params(state)
        evals = _scalar_metrics(eval_fn(params))
        if cfg.eval_online_params and params is not state.params:
          online = _scalar_metrics(eval_fn(state.params))
          evals.update({f"online_{k}": v for k, v in online.items()})
        improved = _update_best(cfg, loop, evals, step)
        if improved:
          best_params = jax.device_get(params)
          save_params(best_path, best_params, _best_metadata(cfg, loop, config_json))
        recorder.write("eval", step, {**evals, "is_best": improved, "best_step": loop["best_step"]})
        say(f"eval at step {step}: " + " ".join(f"{k}={v:.4g}" for k, v in evals.items())
            + (" (new best)" if improved else ""))
        if cfg.patience is not None and loop["evals_since_best"] >= cfg.patience:
          loop["done"] = "early_stop"

      if is_last and not loop["done"]:
        loop["done"] = "num_steps"
      if (cfg.max_seconds is not None and not loop["done"]
          and (eval_now or (eval_fn is None and ckpt_now))
          and time.time() - call_start > cfg.max_seconds):
        loop["done"] = "time_budget"
      if loop["done"]:
        recorder.write("end", step, {"reason": loop["done"], "best_step": loop["best_step"]})
        say(f"training ends at step {step} ({loop['done']}); best step {loop['best_step']}")
      if ckpt_now or loop["done"]:
        checkpoint(step)
      if loop["done"]:
        break
  finally:
    recorder.close()
    if pbar is not None:
      pbar.close()
  return FitResult(state, best_params, loop["best_step"], loop["best_metrics"], history,
                   seconds_so_far())


def _restore(manager: CheckpointManager, target: Any, workdir: str,
             on_damaged: str) -> Optional[tuple[Any, dict, int]]:
  """manager.restore(target); never None (a fresh start) when checkpoints were damaged,
  unless on_damaged == "restart"."""
  error = None
  try:
    restored = manager.restore(target)
  except CheckpointError as e:  # checkpoints existed; none intact (now moved aside)
    restored, error = None, e
  if restored is not None:
    return restored
  aside = manager.set_aside_dirs()
  if error is None and not aside:
    return None  # a fresh workdir (or one killed before its first checkpoint)
  what = (f"set aside: {', '.join(aside)}" if aside else "")
  if error is not None:
    what += ("; " if what else "") + str(error)
  if on_damaged == "restart":
    logging.warning("%s: no intact checkpoint in %s (%s). on_damaged='restart': training "
                    "from step 0; metrics.jsonl and best_params.npz start over.",
                    workdir, manager.directory, what)
    return None
  raise CheckpointError(
      f"{workdir}: checkpoints were written to {manager.directory} but none is intact "
      f"({what}). Refusing to retrain silently from step 0; nothing else in {workdir} was "
      f"changed. Restore a good copy of the checkpoints, or call fit(..., "
      f"on_damaged='restart') to start over.") from error


_MISSING = object()


def config_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
  """Lines "path: old -> new" for every leaf that differs between two JSON configs.

  Nested dicts are compared key by key (paths dotted, e.g. "model.loss"); a key present on
  one side only shows "<absent>" on the other; anything else is compared whole. Sorted.
  """
  if isinstance(old, dict) and isinstance(new, dict):
    lines = []
    for key in sorted(set(old) | set(new), key=str):
      path = f"{prefix}.{key}" if prefix else str(key)
      lines += config_diff(old.get(key, _MISSING), new.get(key, _MISSING), path)
    return lines
  if old == new:
    return []
  show = lambda v: "<absent>" if v is _MISSING else json.dumps(v, default=str)
  return [f"{prefix or '<config>'}: {show(old)} -> {show(new)}"]


def _update_best(cfg: LoopConfig, loop: dict, evals: Mapping[str, float], step: int) -> bool:
  """Best selection; updates loop's best_* and evals_since_best. True on a new best."""
  if cfg.best_metric is None:
    return False
  if cfg.best_metric not in evals:
    raise KeyError(f"best_metric {cfg.best_metric!r} is not among eval_fn's metrics "
                   f"{sorted(evals)}")
  value, best = evals[cfg.best_metric], loop["best_value"]
  if not math.isfinite(value):
    better = False
  elif best is None:
    better = True
  elif cfg.best_mode == "max":
    better = value > best + cfg.min_delta
  else:
    better = value < best - cfg.min_delta
  if better:
    loop.update(best_step=step, best_value=value, best_metrics=dict(evals), evals_since_best=0)
  else:
    loop["evals_since_best"] += 1
  return better


def _best_metadata(cfg: LoopConfig, loop: dict, config_json: Any) -> dict:
  return {"step": loop["best_step"], "metric": cfg.best_metric, "mode": cfg.best_mode,
          "value": loop["best_value"], "metrics": loop["best_metrics"], "config": config_json}


def _sync_best_file(cfg: LoopConfig, path: str, best_params: Any, loop: dict,
                    config_json: Any) -> None:
  """Makes best_params.npz agree with the restored checkpoint's best (after a resume)."""
  if best_params is None:
    if os.path.exists(path):
      os.remove(path)  # written after the checkpoint we resumed from; will be redone
    return
  try:
    _, meta = load_params(path)
    if meta.get("step") == loop["best_step"]:
      return
  except (CheckpointError, OSError):
    pass
  save_params(path, best_params, _best_metadata(cfg, loop, config_json))
