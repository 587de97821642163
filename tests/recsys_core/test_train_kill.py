"""Reliability: training killed with SIGKILL resumes to the same result as an uninterrupted run.

Three processes run tests/recsys_core/_train_worker.py (a tiny MLP with dropout, AdamW,
warm-up + cosine, clipping, EpochBatcher order, checkpoints every 10 steps, evals every 10 steps):
  reference: NUM_STEPS uninterrupted;
  victim:    the same, slowed down, SIGKILLed at a random moment after its first checkpoint
             was committed (often mid-save: a save takes a good part of each 10 steps);
  resumed:   the same command in the victim's workdir, run to the end.
The resumed run must end with bit-identical params (CPU), the same best step/metrics and the
same metrics.jsonl records (minus wall-clock fields) as the reference.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np

from recsys_core import train

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_train_worker.py")
NUM_STEPS = 120
STEP_SLEEP = 0.02   # victim: >= 2.4 s of sleeping alone after its first checkpoint
MAX_KILL_DELAY = 1.5


def _env(tmp_path):
  env = dict(os.environ)
  env.update(JAX_PLATFORMS="cpu",  # bit-exactness is claimed for CPU
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax_cache"),  # later processes skip compiles
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
  return env


def _records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    recs = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k not in train.TIMING_KEYS} for r in recs]


def _committed_steps(workdir):
  d = os.path.join(workdir, "checkpoints")
  return sorted(n for n in os.listdir(d) if n.startswith("step_")) if os.path.isdir(d) else []


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
  env = _env(tmp_path)
  ref_dir, victim_dir = str(tmp_path / "ref"), str(tmp_path / "victim")
  cmd = [sys.executable, WORKER]
  ref = subprocess.Popen(cmd + [ref_dir, str(NUM_STEPS)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  victim = subprocess.Popen(cmd + [victim_dir, str(NUM_STEPS), str(STEP_SLEEP)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 300
    while not _committed_steps(victim_dir):
      assert victim.poll() is None, "victim exited before its first checkpoint"
      assert time.time() < deadline, "no checkpoint after 300 s"
      time.sleep(0.01)
    delay = random.uniform(0.0, MAX_KILL_DELAY)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL, "victim finished before it could be killed"
  finally:
    if victim.poll() is None:
      victim.kill()
  assert not os.path.exists(os.path.join(victim_dir, "result.json"))
  steps_at_kill = _committed_steps(victim_dir)
  logged = [r["step"] for r in _records(victim_dir)]
  print(f"killed {delay:.2f}s after the first checkpoint; committed {steps_at_kill}; "
        f"last logged step {logged[-1] if logged else None}")
  assert steps_at_kill and int(steps_at_kill[-1][5:]) < NUM_STEPS

  resumed = subprocess.run(cmd + [victim_dir, str(NUM_STEPS)], env=env, capture_output=True,
                           text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stdout + resumed.stderr
  assert "Resumed" in resumed.stderr, resumed.stderr  # it continued, it did not start over
  out, _ = ref.communicate(timeout=300)
  assert ref.returncode == 0, out

  want, _ = train.load_params(os.path.join(ref_dir, "final_params.npz"))
  got, _ = train.load_params(os.path.join(victim_dir, "final_params.npz"))
  for mod in want:
    for name in want[mod]:
      np.testing.assert_array_equal(got[mod][name], want[mod][name], err_msg=f"{mod}/{name}")
  with open(os.path.join(ref_dir, "result.json")) as f:
    ref_result = json.load(f)
  with open(os.path.join(victim_dir, "result.json")) as f:
    assert json.load(f) == ref_result
  assert _records(victim_dir) == _records(ref_dir)
  ref_best, _ = train.load_params(os.path.join(ref_dir, "best_params.npz"))
  got_best, meta = train.load_params(os.path.join(victim_dir, "best_params.npz"))
  assert meta["step"] == ref_result["best_step"]
  np.testing.assert_array_equal(got_best["out"]["w"], ref_best["out"]["w"])
