"""fit(): best selection, early stopping, NaN policies, in-process resume, records."""
import dataclasses
import io
import json
import logging
import os
import shutil
import sys
import types

import jax
import numpy as np
import pytest

from recsys_core import train
from recsys_core.train import loop as train_loop
from tests.recsys_core._train_worker import loop_config, make_run


def _params_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in zip(la, lb))


def _strip(records):
  return [{k: v for k, v in r.items() if k not in train.TIMING_KEYS} for r in records]


class _Scripted:
  """eval_fn returning a scripted metric sequence; keeps a copy of the params it saw."""

  def __init__(self, values, key="score"):
    self.values, self.key, self.seen = list(values), key, []

  def __call__(self, params):
    self.seen.append(jax.device_get(params))
    return {self.key: self.values[len(self.seen) - 1], "other": float(len(self.seen))}


def test_best_selection_and_early_stopping_min(tmp_path):
  run = make_run()
  # evals at steps 10, 20, ...: best 3.0 at step 40; then 3 evals without improvement.
  ev = _Scripted([5.0, 4.0, 4.5, 3.0, 3.5, 3.0, 3.2, 2.0, 1.0], key="val_loss")
  cfg = loop_config(100, best_metric="val_loss", best_mode="min", patience=3,
                    checkpoint_every=50)
  res = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path), eval_fn=ev)
  assert res.best_step == 40
  assert res.best_metrics == {"val_loss": 3.0, "other": 4.0}
  assert int(res.state.step) == 70 and len(ev.seen) == 7  # stopped after the 7th eval
  assert _params_equal(res.best_params, ev.seen[3])
  assert not _params_equal(res.best_params, res.state.params)
  best, meta = train.load_params(str(tmp_path / "best_params.npz"))
  assert _params_equal(best, ev.seen[3])
  assert meta["step"] == 40 and meta["value"] == 3.0 and meta["metric"] == "val_loss"
  evals = [r for r in res.history if r["event"] == "eval"]
  assert [r["is_best"] for r in evals] == [True, True, False, True, False, False, False]
  assert res.history[-1]["event"] == "end" and res.history[-1]["reason"] == "early_stop"
  # A checkpoint was written at the stop; calling fit again trains nothing.
  assert train.CheckpointManager(str(tmp_path / "checkpoints")).latest_step() == 70

  def no_update(state, batch):
    raise AssertionError("a finished run must not train again")
  again = train.fit(no_update, run.state, run.batch_fn, cfg, str(tmp_path), eval_fn=ev)
  assert again.best_step == 40 and int(again.state.step) == 70
  assert _params_equal(again.best_params, ev.seen[3])
  assert _strip(again.history) == _strip(res.history)


def test_best_selection_max_with_min_delta_and_nan(tmp_path):
  run = make_run()
  ev = _Scripted([0.1, float("nan"), 0.3, 0.305, 0.5, 0.2])
  cfg = loop_config(60, best_metric="score", best_mode="max", min_delta=0.01,
                    checkpoint_every=100)
  res = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path), eval_fn=ev)
  evals = [r for r in res.history if r["event"] == "eval"]
  assert [r["is_best"] for r in evals] == [True, False, True, False, True, False]
  assert res.best_step == 50 and res.best_metrics["score"] == 0.5
  assert int(res.state.step) == 60  # no patience: runs to the end


def test_unknown_best_metric_is_a_clear_error(tmp_path):
  run = make_run()
  with pytest.raises(KeyError, match="'ndcg' is not among"):
    train.fit(run.update, run.state, run.batch_fn, loop_config(10, best_metric="ndcg"),
              str(tmp_path), eval_fn=run.eval_fn)


def _files(root):
  out = {}
  for dirpath, _, names in os.walk(root):
    for n in names:
      p = os.path.join(dirpath, n)
      with open(p, "rb") as f:
        out[os.path.relpath(p, root)] = f.read()
  return out


def test_nan_raise_names_step_and_keeps_last_good_checkpoint(tmp_path):
  clean = make_run()
  ref = train.fit(clean.update, clean.state, clean.batch_fn, loop_config(20), str(tmp_path / "ref"),
                  eval_fn=clean.eval_fn)
  bad = make_run(nan_at=23)
  work = tmp_path / "work"
  cfg = loop_config(40)
  with pytest.raises(train.NonFiniteError,
                     match=r"at step 23 \(the update on batch_fn\(23\)\)") as e:
    train.fit(bad.update, bad.state, bad.batch_fn, cfg, str(work), eval_fn=bad.eval_fn)
  assert e.value.step == 23
  ckdir = work / "checkpoints"
  mgr = train.CheckpointManager(str(ckdir))
  assert mgr.all_steps() == [10, 20]
  train.verify_checkpoint_dir(str(ckdir / "step_00000020"))
  snapshot = _files(ckdir / "step_00000020")
  restored, meta, step = mgr.restore({"state": bad.state, "best_params": bad.state.params})
  assert step == 20 and _params_equal(restored["state"].params, ref.state.params)
  _, best_meta = train.load_params(str(work / "best_params.npz"))
  assert best_meta["step"] <= 20
  with open(work / "metrics.jsonl") as f:
    recs = [json.loads(line) for line in f]
  assert recs[-1]["event"] == "nonfinite" and recs[-1]["step"] == 24
  assert max(r["step"] for r in recs if r["event"] != "nonfinite") <= 20
  # The failed run changed nothing in the last good checkpoint; a fixed run resumes from it.
  assert _files(ckdir / "step_00000020") == snapshot
  full = train.fit(clean.update, clean.state, clean.batch_fn, cfg, str(tmp_path / "full"),
                   eval_fn=clean.eval_fn)
  fixed = train.fit(clean.update, clean.state, clean.batch_fn, cfg, str(work),
                    eval_fn=clean.eval_fn)
  assert _params_equal(fixed.state.params, full.state.params)


def test_nan_skip_leaves_params_unchanged_and_continues(tmp_path):
  run = make_run(nan_at=23, nan_policy="skip")
  work = str(tmp_path)
  # 23 updates
  before = train.fit(run.update, run.state, run.batch_fn, loop_config(23), work, run.eval_fn)
  # + bad batch 23
  after = train.fit(run.update, run.state, run.batch_fn, loop_config(24), work, run.eval_fn)
  assert int(after.state.step) == 24
  assert _params_equal(after.state.params, before.state.params)
  assert _params_equal(after.state.opt_state, before.state.opt_state)
  done = train.fit(run.update, run.state, run.batch_fn, loop_config(40), work, run.eval_fn)
  assert not _params_equal(done.state.params, after.state.params)
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(done.state.params))
  skipped = {r["step"]: r["skipped"] for r in done.history if r["event"] == "train"}
  assert skipped[24] == 1 and sum(skipped.values()) == 1


class _Crash(Exception):
  pass


def _crashing(batch_fn, at):
  def fn(step):
    if step == at:
      raise _Crash(step)
    return batch_fn(step)
  return fn


@pytest.mark.parametrize("damage_latest", [False, True])
def test_resume_after_crash_matches_uninterrupted(tmp_path, caplog, damage_latest):
  run = make_run()
  # Checkpoints every 7 steps, logs every 5: the resume point falls inside a log window.
  cfg = loop_config(45, checkpoint_every=7, keep_checkpoints=2)
  ref = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path / "ref"),
                  eval_fn=run.eval_fn, config={"a": 1})
  work = tmp_path / "work"
  with pytest.raises(_Crash):
    train.fit(run.update, run.state, _crashing(run.batch_fn, 31), cfg, str(work),
              eval_fn=run.eval_fn, config={"a": 1})
  assert train.CheckpointManager(str(work / "checkpoints")).all_steps() == [21, 28]
  if damage_latest:
    os.remove(work / "checkpoints" / "step_00000028" / "COMMIT.json")
  with caplog.at_level(logging.INFO, logger="absl"):
    res = train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn,
                    config={"a": 1})
  messages = " | ".join(r.getMessage() for r in caplog.records)
  assert f"Resumed {work} at step {21 if damage_latest else 28}" in messages
  assert ("damaged" in messages) == damage_latest
  assert _params_equal(res.state.params, ref.state.params)
  assert _params_equal(res.best_params, ref.best_params)
  assert res.best_step == ref.best_step and res.best_metrics == ref.best_metrics
  assert _strip(res.history) == _strip(ref.history)
  with open(work / "metrics.jsonl") as f:
    assert _strip([json.loads(line) for line in f]) == _strip(ref.history)


def test_config_diff_lists_changed_leaves_by_path():
  old = {"seed": 0, "model": {"loss": "sampled", "dims": [8, 8]}, "gone": 1}
  new = {"seed": 0, "model": {"loss": "full", "dims": [8, 16]}, "added": None}
  assert train.config_diff(old, new) == [
      "added: <absent> -> null", "gone: 1 -> <absent>",
      'model.dims: [8, 8] -> [8, 16]', 'model.loss: "sampled" -> "full"']
  assert train.config_diff(old, old) == []
  assert train.config_diff(None, {"a": 1}) == ['<config>: null -> {"a": 1}']


def test_resume_warns_with_only_the_changed_config_fields(tmp_path, caplog):
  run = make_run()
  cfg = loop_config(10, checkpoint_every=10, best_metric=None)
  config = {"seed": 3, "baselines": True, "model": {"loss": "full"}}
  train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path), config=config)
  with caplog.at_level(logging.WARNING, logger="absl"):
    train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path), config=config)
  assert not [r for r in caplog.records if "differs" in r.getMessage()]
  with caplog.at_level(logging.WARNING, logger="absl"):
    train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path),
              config={**config, "baselines": False})
  (warning,) = [r.getMessage() for r in caplog.records if "differs" in r.getMessage()]
  assert "in 1 field(s)" in warning and warning.endswith("baselines: true -> false")
  assert "seed" not in warning and "model" not in warning


def test_time_budget_stops_after_an_evaluation_and_fit_again_continues(tmp_path):
  run = make_run()
  cfg = loop_config(30, eval_every=10, checkpoint_every=7)
  ref = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path / "ref"),
                  eval_fn=run.eval_fn)
  assert ref.end_reason == "num_steps"
  budget = dataclasses.replace(cfg, max_seconds=0.0)  # past the budget at the first check
  work = str(tmp_path / "work")
  res = train.fit(run.update, run.state, run.batch_fn, budget, work, eval_fn=run.eval_fn)
  assert int(res.state.step) == 10 and res.end_reason == "time_budget"
  assert train.CheckpointManager(os.path.join(work, "checkpoints")).latest_step() == 10
  res = train.fit(run.update, run.state, run.batch_fn, budget, work, eval_fn=run.eval_fn)
  assert int(res.state.step) == 20 and res.end_reason == "time_budget"
  res = train.fit(run.update, run.state, run.batch_fn, cfg, work, eval_fn=run.eval_fn)
  assert int(res.state.step) == 30 and res.end_reason == "num_steps"
  assert _params_equal(res.state.params, ref.state.params)
  assert _params_equal(res.best_params, ref.best_params)
  evals = lambda h: _strip([r for r in h if r["event"] != "end"])
  assert evals(res.history) == evals(ref.history)
  assert [(r["step"], r["reason"]) for r in res.history if r["event"] == "end"] == [
      (10, "time_budget"), (20, "time_budget"), (30, "num_steps")]
  with pytest.raises(ValueError, match="max_seconds"):
    loop_config(30, max_seconds=-1.0)


def test_train_seconds_sum_over_resumed_calls_and_count_redone_steps_once(tmp_path,
                                                                          monkeypatch):
  # A fake clock that advances one second per update: training seconds = steps trained.
  clock = types.SimpleNamespace(now=1000.0)
  monkeypatch.setattr(train_loop, "time", types.SimpleNamespace(time=lambda: clock.now))
  run = make_run()

  def update(state, batch):
    clock.now += 1.0
    return run.update(state, batch)

  cfg = loop_config(30, eval_every=10, checkpoint_every=7)
  budget = dataclasses.replace(cfg, max_seconds=5.0)
  work = str(tmp_path / "budget")
  seconds = [train.fit(update, run.state, run.batch_fn, c, work, eval_fn=run.eval_fn
                       ).train_seconds for c in (budget, budget, cfg, cfg)]
  assert seconds == [10.0, 20.0, 30.0, 30.0]  # the last call found the run finished
  # Crashes on batch 24 (last checkpoint at step 21): batches 21-23 run twice, count once.
  work = str(tmp_path / "crash")
  with pytest.raises(_Crash):
    train.fit(update, run.state, _crashing(run.batch_fn, 24), cfg, work, eval_fn=run.eval_fn)
  res = train.fit(update, run.state, run.batch_fn, cfg, work, eval_fn=run.eval_fn)
  assert int(res.state.step) == 30 and res.train_seconds == 30.0


_EMA_OPT = train.OptimizerConfig(learning_rate=1e-2, warmup_steps=5, ema_decay=0.8)


def test_fit_evaluates_and_exports_the_parameter_average(tmp_path):
  run = make_run(opt=_EMA_OPT)
  scripted = _Scripted([1.0, 0.0, 2.0, 0.0])  # (average, online) at steps 10 and 20
  res = train.fit(run.update, run.state, run.batch_fn,
                  loop_config(20, best_metric="score", best_mode="max"), str(tmp_path),
                  eval_fn=scripted)
  average = train.eval_params(res.state)
  assert not _params_equal(average, res.state.params)
  assert _params_equal(scripted.seen[2], average)            # the average is evaluated first,
  assert _params_equal(scripted.seen[3], res.state.params)   # then the online params
  evals = [r for r in res.history if r["event"] == "eval"]
  assert [(r["score"], r["online_score"]) for r in evals] == [(1.0, 0.0), (2.0, 0.0)]
  assert res.best_step == 20 and _params_equal(res.best_params, average)
  assert _params_equal(res.selected_params, average)
  exported, _ = train.load_params(str(tmp_path / "best_params.npz"))
  assert _params_equal(exported, average)
  # Without best selection the result still hands out the average; online evals can be off.
  alone = _Scripted([0.5, 0.5])
  res = train.fit(run.update, run.state, run.batch_fn,
                  loop_config(20, best_metric=None, eval_online_params=False),
                  str(tmp_path / "no_best"), eval_fn=alone)
  assert len(alone.seen) == 2 and res.best_params is None
  assert _params_equal(res.selected_params, train.eval_params(res.state))


def test_parameter_average_resumes_exactly(tmp_path):
  run = make_run(opt=_EMA_OPT)
  cfg = loop_config(30, checkpoint_every=10)
  ref = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path / "ref"),
                  eval_fn=run.eval_fn)
  with pytest.raises(_Crash):
    train.fit(run.update, run.state, _crashing(run.batch_fn, 25), cfg, str(tmp_path / "w"),
              eval_fn=run.eval_fn)
  res = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path / "w"),
                  eval_fn=run.eval_fn)
  assert _params_equal(train.eval_params(res.state), train.eval_params(ref.state))
  assert _params_equal(res.best_params, ref.best_params)
  assert _strip(res.history) == _strip(ref.history)
  evals = [r for r in res.history if r["event"] == "eval"]
  assert len(evals) == 3 and all("online_val_mse" in r for r in evals)


def test_stale_best_file_is_made_consistent_on_resume(tmp_path):
  run = make_run()
  cfg = loop_config(30, checkpoint_every=10)
  work = tmp_path / "w"
  with pytest.raises(_Crash):  # evals at 10, 20; crash before the checkpoint at 30
    train.fit(run.update, run.state, _crashing(run.batch_fn, 25), cfg, str(work),
              eval_fn=run.eval_fn)
  # Pretend a later best had been exported after the last checkpoint (then a kill).
  shutil.copy(work / "best_params.npz", tmp_path / "keep.npz")
  params, meta = train.load_params(str(work / "best_params.npz"))
  train.save_params(str(work / "best_params.npz"), jax.tree.map(lambda p: p + 1, params),
                    {**meta, "step": 25})
  mgr = train.CheckpointManager(str(work / "checkpoints"))
  mgr.save(20, *mgr.restore({"state": run.state, "best_params": run.state.params})[:2])
  res = train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn)
  best, meta = train.load_params(str(work / "best_params.npz"))
  assert meta["step"] == res.best_step and _params_equal(best, res.best_params)


def test_records_logging_and_tensorboard(tmp_path, caplog):
  run = make_run()
  cfg = loop_config(12, log_every=4, eval_every=6, tensorboard=True, best_metric=None)
  with caplog.at_level(logging.INFO, logger="absl"):
    res = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path), eval_fn=run.eval_fn)
  with open(tmp_path / "metrics.jsonl") as f:
    recs = [json.loads(line) for line in f]
  assert recs == res.history
  assert [(r["event"], r["step"]) for r in recs] == [
      ("train", 4), ("eval", 6), ("train", 8), ("train", 12), ("eval", 12), ("end", 12)]
  for r in recs:
    assert isinstance(r["wall_time"], float)
  train_rec = recs[0]
  assert {"loss", "mse", "grad_norm", "skipped", "steps_per_sec"} <= set(train_rec)
  assert res.best_params is None and res.best_step is None
  assert not (tmp_path / "best_params.npz").exists()
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path / "tb"))
  logged = [r.getMessage() for r in caplog.records]
  assert any(m.startswith("step 4/12: ") for m in logged), logged  # no TTY: log lines


def test_loop_config_validation():
  with pytest.raises(ValueError, match="patience"):
    train.LoopConfig(num_steps=10, patience=2)
  with pytest.raises(ValueError, match="best_mode"):
    train.LoopConfig(num_steps=10, best_metric="x", best_mode="up")
  with pytest.raises(ValueError, match="num_steps"):
    train.LoopConfig(num_steps=0)


class _FakeTTY(io.StringIO):
  def isatty(self):
    return True


def test_progress_bar_only_on_a_tty(tmp_path, monkeypatch, caplog):
  run = make_run()
  fake = _FakeTTY()
  monkeypatch.setattr(sys, "stderr", fake)
  with caplog.at_level(logging.INFO, logger="absl"):
    train.fit(run.update, run.state, run.batch_fn,
              loop_config(10, checkpoint_every=100, progress_bar=True),
              str(tmp_path), eval_fn=run.eval_fn)
  out = fake.getvalue()
  assert "10/10" in out and "eval at step 10" in out, out  # tqdm bar; evals written through it
  assert not any(r.getMessage().startswith("step 5/10") for r in caplog.records)
