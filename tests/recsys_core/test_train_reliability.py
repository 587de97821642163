"""fit's reliability guarantees: damaged checkpoints never silently restart a run, torn
metrics.jsonl lines are reported, and a diverging loss stops training at the last good
checkpoint (recsys_core.train.loop's module docstring)."""
import json
import logging
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from recsys_core import train
from tests.recsys_core._train_worker import loop_config, make_run

N, D, B = 64, 4, 16


def _params_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(np.array_equal(np.asarray(x), np.asarray(y))
                                    for x, y in zip(la, lb))


def _strip(records):
  return [{k: v for k, v in r.items() if k not in train.TIMING_KEYS} for r in records]


def _files(root):
  """{relative path: bytes} of every file under root."""
  out = {}
  for dirpath, _, names in os.walk(root):
    for name in names:
      p = os.path.join(dirpath, name)
      with open(p, "rb") as f:
        out[os.path.relpath(p, root)] = f.read()
  return out


def _flip_a_byte(step_dir):
  files = [os.path.join(d, n) for d, _, ns in os.walk(step_dir) for n in ns
           if n not in ("COMMIT.json", "meta.json")]
  path = max(files, key=os.path.getsize)
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    byte = f.read(1)
    f.seek(-1, 1)
    f.write(bytes([byte[0] ^ 0xFF]))


def _messages(caplog, level=logging.WARNING):
  return [r.getMessage() for r in caplog.records if r.levelno >= level]


# --- 1. damaged checkpoints ------------------------------------------------------------


def test_at_least_two_checkpoints_are_kept_by_default(monkeypatch):
  assert train.LoopConfig(num_steps=1).keep_checkpoints >= 2
  from anime_ae import training as ae_training  # pylint: disable=g-import-not-at-top
  seen = []

  def fake_fit(update, state, batch_fn, cfg, workdir, **kw):
    seen.append(cfg)
    return types.SimpleNamespace(selected_params={}, history=[], train_seconds=0.0,
                                 best_step=None)
  monkeypatch.setattr(ae_training, "fit", fake_fit)
  tc = types.SimpleNamespace(steps=10, log_every=5, eval_every=0, checkpoint_every=0)
  ae_training.fit_for_steps(None, None, None, tc, None, None, None, {})
  assert seen[0].keep_checkpoints >= 2


def _two_checkpoint_run(tmp_path):
  run = make_run()
  cfg = loop_config(20, checkpoint_every=10, keep_checkpoints=2)
  work = tmp_path / "work"
  train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn)
  assert train.CheckpointManager(str(work / "checkpoints")).all_steps() == [10, 20]
  return run, work


def test_damaged_newest_checkpoint_falls_back_to_the_previous_and_says_so(tmp_path, caplog):
  run, work = _two_checkpoint_run(tmp_path)
  _flip_a_byte(work / "checkpoints" / "step_00000020")
  cfg = loop_config(30, checkpoint_every=10, keep_checkpoints=2)
  with caplog.at_level(logging.INFO, logger="absl"):
    res = train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn)
  warnings = _messages(caplog)
  assert any("step 10" in m and "step 20" in m for m in warnings), warnings
  assert f"Resumed {work} at step 10" in " | ".join(_messages(caplog, logging.INFO))
  ref = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path / "ref"),
                  eval_fn=run.eval_fn)
  assert _params_equal(res.state.params, ref.state.params)
  assert _strip(res.history) == _strip(ref.history)


def test_no_intact_checkpoint_raises_and_never_silently_restarts(tmp_path, caplog):
  run, work = _two_checkpoint_run(tmp_path)
  ckdir = work / "checkpoints"
  os.remove(ckdir / "step_00000010" / "COMMIT.json")
  _flip_a_byte(ckdir / "step_00000020")
  before = _files(work)
  cfg = loop_config(30, checkpoint_every=10, keep_checkpoints=2)
  messages = []
  for attempt in range(2):  # the second call finds only the set-aside damaged-* folders
    with pytest.raises(train.CheckpointError) as e:
      train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn)
    # Untouched, except that the damaged checkpoints were renamed to damaged-step_*.
    after = _files(work)
    renamed = {}
    for rel, data in after.items():
      parts = rel.split(os.sep)
      if parts[0] == "checkpoints" and parts[1].startswith("damaged-"):
        parts[1] = parts[1][len("damaged-"):len("damaged-step_00000010")]
      renamed[os.sep.join(parts)] = data
    assert renamed == before, attempt
    assert train.CheckpointManager(str(ckdir)).all_steps() == []
    messages.append(str(e.value))
  for msg in messages:
    assert f"{work}:" in msg and "on_damaged='restart'" in msg
    assert "damaged-step_00000010-" in msg and "damaged-step_00000020-" in msg, msg
  with pytest.raises(ValueError, match="on_damaged"):
    train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn,
              on_damaged="ignore")
  # Only an explicit request starts over.
  with caplog.at_level(logging.WARNING, logger="absl"):
    res = train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn,
                    on_damaged="restart")
  assert any("on_damaged='restart'" in m and "step 0" in m for m in _messages(caplog))
  ref = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path / "ref"),
                  eval_fn=run.eval_fn)
  assert _params_equal(res.state.params, ref.state.params)
  assert _strip(res.history) == _strip(ref.history)
  assert any(n.startswith("damaged-step_") for n in os.listdir(ckdir))  # kept as evidence
  again = train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn)
  assert int(again.state.step) == 30  # intact checkpoints again: resumes normally


# --- 2. torn metrics.jsonl lines --------------------------------------------------------


class _Crash(Exception):
  pass


def test_torn_metrics_line_is_reported_with_file_and_line(tmp_path, caplog):
  run = make_run()
  cfg = loop_config(20, checkpoint_every=10)
  work = tmp_path / "work"
  def stop_at_15(step):
    if step == 15:
      raise _Crash(step)
    return run.batch_fn(step)
  with pytest.raises(_Crash):
    train.fit(run.update, run.state, stop_at_15, cfg, str(work), eval_fn=run.eval_fn)
  path = work / "metrics.jsonl"
  lines = path.read_text().splitlines(keepends=True)
  assert json.loads(lines[-1])["step"] == 15
  torn = lines + ['{"event": "train", "step": 1']  # a write cut by a kill
  path.write_text("".join(torn))
  with caplog.at_level(logging.WARNING, logger="absl"):
    res = train.fit(run.update, run.state, run.batch_fn, cfg, str(work), eval_fn=run.eval_fn)
  warnings = [m for m in _messages(caplog) if str(path) in m]
  assert len(warnings) == 1 and f"line {len(torn)}" in warnings[0], _messages(caplog)
  assert res.end_reason == "num_steps"


def test_torn_end_record_of_a_finished_run_is_reported_and_rewritten(tmp_path, caplog):
  run = make_run()
  cfg = loop_config(20, checkpoint_every=10)
  res = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path), eval_fn=run.eval_fn)
  path = tmp_path / "metrics.jsonl"
  lines = path.read_text().splitlines(keepends=True)
  assert json.loads(lines[-1])["event"] == "end"
  path.write_text("".join(lines[:-1]) + lines[-1][:len(lines[-1]) // 2])
  with caplog.at_level(logging.WARNING, logger="absl"):
    again = train.fit(run.update, run.state, run.batch_fn, cfg, str(tmp_path),
                      eval_fn=run.eval_fn)
  assert any(str(path) in m and f"line {len(lines)}" in m for m in _messages(caplog))
  assert again.end_reason == "num_steps"
  assert _strip(again.history) == _strip(res.history)
  with open(path) as f:
    assert _strip([json.loads(line) for line in f]) == _strip(res.history)


# --- 3. divergence ----------------------------------------------------------------------


def _linear_toy(learning_rate, offset=0.0, y_scale_from=None):
  """Linear regression by SGD; `learning_rate` may be an optax schedule. loss = mse - offset.

  y_scale_from: batches from this step on have targets x 1e4 (a loss that jumps, finite).
  """
  rs = np.random.default_rng(0)
  x = rs.normal(size=(N, D)).astype(np.float32)
  y = (x @ rs.normal(size=D) + 0.1 * rs.normal(size=N)).astype(np.float32)

  def loss_fn(params, rng, batch):
    mse = jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2)
    return mse - offset, {"mse": mse}

  opt = optax.sgd(learning_rate)
  params = {"w": jnp.zeros(D), "b": jnp.zeros(())}
  state = train.init_train_state(params, opt, jax.random.PRNGKey(0))
  batcher = train.EpochBatcher(N, B, 0)

  def batch_fn(step):
    idx = batcher.indices(step)
    scale = 1e4 if y_scale_from is not None and step >= y_scale_from else 1.0
    return {"x": x[idx], "y": y[idx] * np.float32(scale)}

  full_mse = jax.jit(lambda p: jnp.mean((x @ p["w"] + p["b"] - y) ** 2))
  return train.make_update_fn(loss_fn, opt), state, batch_fn, full_mse


def _cfg(num_steps, **kw):
  return train.LoopConfig(num_steps=num_steps, **{
      **dict(log_every=2, eval_every=0, checkpoint_every=2, keep_checkpoints=2,
             progress_bar=False), **kw})


# lr=-1: records 12 and 14 pass, so checkpoint 14 is written; its own params' loss (seen at
# step 15) has run away, so it is moved aside. lr=20: the record at step 12 runs away.
@pytest.mark.parametrize("bad_lr,set_aside", [(-1.0, True), (20.0, False)])
def test_runaway_loss_stops_at_the_step_with_the_last_good_checkpoint(tmp_path, bad_lr,
                                                                      set_aside):
  schedule = lambda t: jnp.where(t < 10, 0.05, bad_lr)  # good for 10 updates, then not
  update, state, batch_fn, full_mse = _linear_toy(schedule)
  work = tmp_path / "work"
  with pytest.raises(train.DivergenceError) as e:
    train.fit(update, state, batch_fn, _cfg(100), str(work))
  err = e.value
  assert isinstance(err, train.NonFiniteError)
  assert 10 < err.step < 20 and f"diverged at step {err.step}:" in str(err)
  assert err.best is not None and err.loss > 1e3 * err.best
  mgr = train.CheckpointManager(str(work / "checkpoints"))
  newest = mgr.latest_step()
  assert newest is not None and newest < err.step and err.last_checkpoint == newest
  assert f"step {newest}" in str(err)
  train.verify_checkpoint_dir(mgr.step_dir(newest))
  restored, _, step = mgr.restore({"state": state, "best_params": state.params})
  assert step == newest
  loss_at_newest = float(full_mse(restored["state"].params))
  assert np.isfinite(loss_at_newest) and loss_at_newest < 1e3 * err.best
  with open(work / "metrics.jsonl") as f:
    recs = [json.loads(line) for line in f]
  assert recs[-1]["event"] == "diverged" and recs[-1]["step"] == err.step
  assert recs[-1]["best_loss"] == err.best and recs[-1]["loss"] == err.loss
  assert max(r["step"] for r in recs if r["event"] == "train") < err.step
  aside = [n for n in os.listdir(work / "checkpoints") if n.startswith("diverged-step_")]
  assert bool(aside) == set_aside and ("checkpoint_set_aside" in recs[-1]) == set_aside
  if set_aside:
    assert aside == [recs[-1]["checkpoint_set_aside"]] and aside[0] in str(err)
    assert newest < int(aside[0].split("_")[1].split("-")[0]) < err.step
  # With a sane learning rate the run resumes from the last good checkpoint.
  update, _, batch_fn, _ = _linear_toy(0.05)
  res = train.fit(update, state, batch_fn, _cfg(30), str(work))
  assert int(res.state.step) == 30 and res.end_reason == "num_steps"
  resumed = [r for r in res.history if r["event"] == "train"]
  assert resumed[-1]["loss"] < 1e3 * err.best


def test_lowest_loss_survives_a_resume(tmp_path):
  update, state, batch_fn, _ = _linear_toy(0.05)
  work = str(tmp_path)
  first = train.fit(update, state, batch_fn, _cfg(10), work)
  best = min(r["loss"] for r in first.history if r["event"] == "train")
  # From batch 11 on the loss is ~1e8 times larger. The first record after the resume
  # (step 12: batches 10 and 11) is judged against the lowest loss of the first call, kept
  # in the checkpoint; without it, it would only become the reference.
  update, state, batch_fn, _ = _linear_toy(0.05, y_scale_from=11)
  with pytest.raises(train.DivergenceError) as e:
    train.fit(update, state, batch_fn, _cfg(30), work)
  assert e.value.step == 12 and e.value.best == best
  assert train.CheckpointManager(os.path.join(work, "checkpoints")).latest_step() == 10
  # The guard can be switched off (here the jump is finite, so the run completes).
  res = train.fit(update, state, batch_fn, _cfg(30, divergence_factor=None), work)
  assert int(res.state.step) == 30


def test_losses_that_cross_zero_or_stay_noisy_do_not_trip_the_guard(tmp_path):
  for offset in (0.0, 1.0, 3.0):  # mse - offset: positive, crossing zero, negative
    update, state, batch_fn, _ = _linear_toy(0.05, offset=offset)
    res = train.fit(update, state, batch_fn, _cfg(60, log_every=1),
                    str(tmp_path / str(offset)))
    losses = [r["loss"] for r in res.history if r["event"] == "train"]
    assert res.end_reason == "num_steps" and len(losses) == 60, offset


def test_divergence_factor_validation():
  for bad in (0.0, -1.0, float("nan"), float("inf")):
    with pytest.raises(ValueError, match="divergence_factor"):
      train.LoopConfig(num_steps=1, divergence_factor=bad)
  assert train.LoopConfig(num_steps=1).divergence_factor == 1e3
  assert train.LoopConfig(num_steps=1, divergence_factor=None).divergence_factor is None
