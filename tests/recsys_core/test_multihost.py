"""Two processes on 127.0.0.1 (jax.distributed + gloo CPU collectives), 2 CPU devices each,
train on a global batch and must match the same training on one device.

Each process runs tests/recsys_core/_multihost_worker.py::check_multiprocess_training (tolerance
rtol=1e-5, atol=1e-6 on losses and parameters after 5 steps) and reports its result.
"""
import socket
import subprocess
import sys

import pytest

from tests.recsys_core import _multihost_worker as worker

NUM_PROCESSES = 2


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(timeout=300):
  port = _free_port()
  procs = [subprocess.Popen([sys.executable, worker.__file__, "process", str(pid),
                             str(NUM_PROCESSES), str(port)], cwd=worker.REPO,
                            env=worker.worker_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
           for pid in range(NUM_PROCESSES)]
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=timeout)[0])
  finally:
    for p in procs:  # one crashed process leaves the other waiting on the coordinator
      if p.poll() is None:
        p.kill()
        p.wait()
  return [{"rc": p.returncode, "result": worker.parse_result(out), "log": out[-4000:]}
          for p, out in zip(procs, outs)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  return worker.run_once(tmp_path_factory, "multihost_2x2", _launch)


def test_two_processes_match_single_device(runs):
  for pid, run in enumerate(runs):
    assert run["rc"] == 0 and run["result"], f"process {pid} failed:\n{run['log']}"
    status = run["result"]["checks"]["check_multiprocess_training"]
    assert status == "ok", f"process {pid}: {status}"
  assert runs[0]["result"]["facts"]["losses"] == runs[1]["result"]["facts"]["losses"]


def test_only_process_zero_is_primary(runs):
  assert [r["result"]["facts"]["is_primary"] for r in runs] == [True, False]
