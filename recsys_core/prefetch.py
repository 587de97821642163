"""Background prefetch of host batches to the device: iterator -> device_put, depth N.

`prefetch_to_device(it, depth)` runs `next(it)` (the host-side batch building, e.g. scattering
sparse profiles into dense arrays) and `jax.device_put` of its result in one background
thread, keeping up to `depth` ready batches in a queue, so that building batch t+1 overlaps
the device step on batch t. Guarantees:
  * order: batches come out in the order the iterator produced them (one producer thread);
  * exceptions: an exception raised by the iterator (or by device_put) is re-raised in the
    consumer at the position where it happened, after the batches produced before it;
  * shutdown: `close()` (or leaving a `with` block, or garbage collection of the generator)
    stops the producer thread; it never blocks forever on a full queue.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterable, Iterator, Optional

import jax

_END = object()


class _Raised:
  """Carries an exception from the producer thread to the consumer."""

  def __init__(self, exc: BaseException):
    self.exc = exc


class Prefetcher:
  """Iterator over `jax.device_put(x)` for x in `iterable`, prepared `depth` ahead.

  Args:
    iterable: yields pytrees of host arrays (e.g. dict of numpy arrays).
    depth: how many device-resident batches may wait ready (>= 1). 2 = double buffering.
    device: target device or sharding for `jax.device_put` (None: the default device).
  """

  def __init__(self, iterable: Iterable[Any], depth: int = 2, device: Optional[Any] = None):
    if depth < 1:
      raise ValueError(f"prefetch depth must be >= 1, got {depth}")
    self._it = iter(iterable)
    self._device = device
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._done = False
    self._thread = threading.Thread(target=self._produce, name="prefetch_to_device", daemon=True)
    self._thread.start()

  def _put(self, item) -> bool:
    """Puts item unless stopped; returns False when the consumer has closed."""
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _produce(self) -> None:
    try:
      for x in self._it:
        if not self._put(jax.device_put(x, self._device)):
          return
    except BaseException as e:  # pylint: disable=broad-except
      self._put(_Raised(e))
      return
    self._put(_END)

  def __iter__(self) -> "Prefetcher":
    return self

  def __next__(self):
    if self._done:
      raise StopIteration
    item = self._queue.get()
    if item is _END:
      self._done = True
      raise StopIteration
    if isinstance(item, _Raised):
      self._done = True
      raise item.exc
    return item

  def close(self) -> None:
    """Stops the producer thread (waits for it to finish its current batch)."""
    self._done = True
    self._stop.set()
    self._thread.join()

  def __enter__(self) -> "Prefetcher":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __del__(self):
    stop = getattr(self, "_stop", None)   # absent when __init__ raised
    if stop is not None:
      stop.set()


def prefetch_to_device(iterable: Iterable[Any], depth: int = 2,
                       device: Optional[Any] = None) -> Prefetcher:
  """Returns a `Prefetcher` (see the module docstring) over `iterable`."""
  return Prefetcher(iterable, depth, device)
