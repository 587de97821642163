"""absl flags for multi-process launches; importing this module defines them.

    --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=0
    [--local_device_count=4   # CPU only: fake devices per process, for testing]

A binary imports this module, parses flags (`app.run`), then calls
`initialize_from_flags()` before touching JAX.
"""
from __future__ import annotations

from absl import flags

from recsys_core.parallel.distributed import initialize_distributed

COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0's JAX coordination service.")
NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", 1, "Total number of processes (1 = single process, no jax.distributed).",
    lower_bound=1)
PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index.", lower_bound=0)
LOCAL_DEVICE_COUNT = flags.DEFINE_integer(
    "local_device_count", None, "CPU only: number of fake CPU devices in this process.",
    lower_bound=1)


def initialize_from_flags() -> None:
  """`initialize_distributed` with the flag values (no-op with the defaults)."""
  initialize_distributed(COORDINATOR_ADDRESS.value, NUM_PROCESSES.value, PROCESS_ID.value,
                         LOCAL_DEVICE_COUNT.value)
