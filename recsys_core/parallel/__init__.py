"""One code path from one CPU device to many devices and hosts, with JAX's own machinery.

Data parallelism here is only *placement*: the batch is sharded along the mesh's 'data' axis,
the training state is replicated (or some parameters, e.g. embedding tables, are sharded by
rows along 'model'), and the *same* jitted update function that runs on one device is called
on them. `jax.jit` propagates the input shardings (GSPMD) and XLA inserts the collectives (the
gradient all-reduce over 'data', the partitioned gather + all-reduce for row-sharded tables).
Nothing in the model or the update function knows about devices.

Typical binary (identical for 1 device, N devices on one host, N hosts)::

    from recsys_core import parallel
    from recsys_core.parallel import flags as parallel_flags   # --coordinator_address etc.

    parallel_flags.initialize_from_flags()        # before any other JAX call; no-op on 1 host
    mesh = parallel.make_mesh()                   # ('data', 'model') = (all devices, 1)
    state = parallel.shard_params(state, mesh, parallel.TABLE_ROW_RULES)  # or replicate()
    for local_batch in my_host_rows_of_each_global_batch:   # batch-wide leaves: replicated=
      state, metrics = update(state, parallel.shard_batch(local_batch, mesh))
    if parallel.is_primary():
      write_logs(parallel.fetch(metrics))

Mesh axes are `AxisType.Auto` (GSPMD sharding propagation): `jax.make_mesh` defaults to
`Explicit` axes in this JAX version, which put shardings into the types and make
sharding-agnostic model code fail on ambiguous ops; Auto keeps the model code unchanged.

Shape glossary: B = global batch, B_local = this process's rows of it, R = table rows,
D = embedding width, P = number of processes.
"""
from __future__ import annotations

import re
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from recsys_core.parallel.distributed import barrier, initialize_distributed, is_primary

__all__ = [
    "DATA", "MODEL", "P", "TABLE_ROW_RULES", "make_mesh", "replicate", "param_shardings",
    "shard_params", "shard_batch", "host_local_rows", "fetch", "sharded_embedding_lookup",
    "initialize_distributed", "is_primary", "barrier",
]

DATA = "data"
MODEL = "model"

Rules = Sequence[tuple[str, P]]

# The hash embedding tables ([R, D] parameters named user_table, item_table, author_table, as
# in phoenix.hashing.HashEmbeddings) and their optimizer moments, split by rows along
# 'model'. Small vocabularies (e.g. Phoenix's product_surface_embedding_table) stay
# replicated: not worth splitting, and their row counts need not divide the axis.
TABLE_ROW_RULES: Rules = ((r"(user|item|author)_table$", P(MODEL, None)),)


def make_mesh(data: int | None = None, model: int = 1, *,
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 2-D ('data', 'model') mesh over `devices` (default: all devices of all processes).

  `data=None` uses every device: data = len(devices) // model. On several hosts the data
  axis runs over processes in order, so process p holds the p-th block of every batch
  (see `host_local_rows`).
  """
  devices = list(jax.devices() if devices is None else devices)
  if data is None:
    data = len(devices) // model
  if data < 1 or model < 1 or data * model > len(devices):
    raise ValueError(f"mesh data={data} x model={model} does not fit {len(devices)} devices")
  return jax.make_mesh((data, model), (DATA, MODEL), axis_types=(AxisType.Auto,) * 2,
                       devices=devices[:data * model])


def _path_str(path) -> str:
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def param_shardings(tree: Any, mesh: Mesh, rules: Rules = ()) -> Any:
  """A tree of NamedShardings matching `tree`.

  Each leaf's path ("params/phoenix/~/hash_table/embeddings", "opt_state/0/mu/...") is
  matched with `re.search` against the rules in order; the first match gives its
  PartitionSpec, no match means replicated (P()). Since optimizer moments repeat the
  parameter paths, one rule shards a table and its Adam moments alike.
  Raises ValueError when a spec has more entries than the leaf has dimensions, or a
  sharded dimension is not divisible by the mesh axis size.
  """
  compiled = [(re.compile(pattern), spec) for pattern, spec in rules]

  def one(path, leaf):
    name = _path_str(path)
    spec = next((s for rx, s in compiled if rx.search(name)), P())
    shape = np.shape(leaf)
    if len(spec) > len(shape):
      raise ValueError(f"{name}: spec {spec} has more entries than shape {shape}")
    for dim, axes in zip(shape, spec):
      axes = () if axes is None else (axes if isinstance(axes, tuple) else (axes,))
      size = int(np.prod([mesh.shape[a] for a in axes]))
      if dim % size:
        raise ValueError(f"{name}: dimension {dim} not divisible by mesh axes {axes} ({size})")
    return NamedSharding(mesh, spec)

  return jax.tree_util.tree_map_with_path(one, tree)


def shard_params(tree: Any, mesh: Mesh, rules: Rules = ()) -> Any:
  """Places `tree` (params, or a whole train state) on `mesh` following `rules`.

  Every process must pass the same values (e.g. the same init seed); works on one or
  several hosts.
  """
  return jax.device_put(tree, param_shardings(tree, mesh, rules))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a full copy of `tree` on every device of `mesh` (pure data parallelism)."""
  return shard_params(tree, mesh, ())


def _is_shared(replicated: Sequence[str]):
  """path -> True for batch leaves matching one of the `replicated` regexes."""
  compiled = [re.compile(pattern) for pattern in replicated]
  return lambda path: any(rx.search(_path_str(path)) for rx in compiled)


def shard_batch(local_batch: Any, mesh: Mesh, axis: str = DATA,
                replicated: Sequence[str] = ()) -> Any:
  """Turns this process's rows of a batch into global arrays split along `axis`.

  `local_batch` is a tree of host arrays with leading dimension B_local (on one host, the
  whole batch: B_local = B). The global array has B = B_local x (number of processes) rows,
  in process order. Leaves that are not per-example (e.g. negatives shared by the whole
  batch) must be the same on every process and named in `replicated` (regexes searched in
  the leaf's path, e.g. "negatives"); they are replicated, as are 0-d leaves.
  """
  shared = _is_shared(replicated)

  def one(path, x):
    x = np.asarray(x)
    if not x.ndim or shared(path):
      return jax.device_put(x, NamedSharding(mesh, P()))
    return jax.make_array_from_process_local_data(NamedSharding(mesh, P(axis)), x)

  return jax.tree_util.tree_map_with_path(one, local_batch)


def host_local_rows(global_batch: Any, mesh: Mesh, axis: str = DATA,
                    replicated: Sequence[str] = ()) -> Any:
  """This process's rows of a batch that every process holds in full (rows split along `axis`).

  For input pipelines that read the whole global batch on each host; pipelines that read
  only their own shard pass it to `shard_batch` directly. `replicated` leaves (see
  `shard_batch`) and 0-d leaves are returned whole.
  """
  shared = _is_shared(replicated)

  def one(path, x):
    x = np.asarray(x)
    if not x.ndim or shared(path):
      return x
    index_map = NamedSharding(mesh, P(axis)).addressable_devices_indices_map(x.shape)
    starts = [idx[0].start or 0 for idx in index_map.values()]
    stops = [x.shape[0] if idx[0].stop is None else idx[0].stop for idx in index_map.values()]
    return x[min(starts):max(stops)]

  return jax.tree_util.tree_map_with_path(one, global_batch)


def fetch(tree: Any) -> Any:
  """Global arrays → numpy on every process (all-gathers arrays that span other hosts)."""
  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)

  return jax.tree.map(one, tree)


def sharded_embedding_lookup(table: jax.Array, ids: jax.Array, mesh: Mesh, *,
                             table_axis: str = MODEL, batch_axis: str | None = DATA
                             ) -> jax.Array:
  """table[ids] for a [R, D] table sharded by rows along `table_axis`, explicitly.

  Each device gathers the ids that fall in its row block (others masked to 0) and the
  partial results are summed over `table_axis` (psum). The gradient is a local
  scatter-add into each device's own rows, so no device ever holds the full table or its
  full gradient. `ids` ([B, ...] int, values in [0, R)) are split along `batch_axis` on
  their leading dimension (None: replicated). Returns [B, ..., D], split like `ids`.

  Under plain `jax.jit` with the table placed by `shard_params(..., P('model', None))`,
  XLA already partitions `jnp.take(table, ids, axis=0)` the same way (checked in
  tests/recsys_core/test_parallel.py), so model code does not need to call this; it exists for code
  that wants the partitioning spelled out rather than left to the SPMD partitioner.
  """
  shards = mesh.shape[table_axis]
  if table.shape[0] % shards:
    raise ValueError(f"table rows {table.shape[0]} not divisible by {table_axis}={shards}")
  ids_spec = P(batch_axis) if batch_axis else P()

  def local_lookup(block, local_ids):
    rows = block.shape[0]
    offset = jax.lax.axis_index(table_axis) * rows
    local = local_ids - offset
    mine = (local >= 0) & (local < rows)
    out = jnp.take(block, jnp.where(mine, local, 0), axis=0)
    out = jnp.where(mine[..., None], out, jnp.zeros((), block.dtype))
    return jax.lax.psum(out, table_axis)

  return jax.shard_map(local_lookup, mesh=mesh, in_specs=(P(table_axis, None), ids_spec),
                       out_specs=ids_spec)(table, ids)
