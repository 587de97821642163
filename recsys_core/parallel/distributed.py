"""Multi-process start-up (`jax.distributed`) and the primary-process helpers.

One process per host (or per GPU); each sees its local devices, and after
`initialize_distributed` `jax.devices()` lists the devices of all processes, so a mesh
built from it spans hosts and jitted functions run as one SPMD program (collectives over
gloo on CPU, NCCL on GPU).
"""
from __future__ import annotations

import jax
from jax.experimental import multihost_utils


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = 1,
                           process_id: int | None = 0,
                           local_device_count: int | None = None) -> None:
  """Joins this process to a multi-process JAX job. Call before any other JAX call.

  Args:
    coordinator_address: "host:port" of process 0's coordination service, reachable from
      every process.
    num_processes: total number of processes. 1 (the default) skips `jax.distributed`
      entirely, so single-host binaries call this unconditionally. None lets JAX detect
      the cluster (SLURM, Open MPI, Cloud TPU; coordinator/process id detected too).
    process_id: this process's index in [0, num_processes).
    local_device_count: CPU only: number of (fake) CPU devices this process exposes
      (`jax_num_cpu_devices`), to exercise multi-device code on one machine. Has no effect
      on GPU/TPU devices.
  """
  if local_device_count:
    jax.config.update("jax_num_cpu_devices", int(local_device_count))
  if num_processes == 1:
    return
  # CPU cross-process collectives. 'gloo' is the default in jax 0.10; set explicitly so a
  # default change does not silently turn multi-host CPU runs into an error.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)


def is_primary() -> bool:
  """True on process 0: the only process that writes logs, result files and plain files.

  (Orbax checkpoint saves are collective: every process calls them; orbax itself writes
  the shared metadata from the primary.)
  """
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Blocks until every process reaches the barrier `name` (no-op on one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)
