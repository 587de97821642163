"""Deterministic, resumable batch order."""
from __future__ import annotations

import numpy as np


class EpochBatcher:
  """Which examples batch `step` holds: a pure function of (seed, step).

  Epoch e is a permutation of range(num_examples) drawn from
  `np.random.default_rng([seed, e])`; batch `step` is slice `step % steps_per_epoch` of the
  permutation of epoch `step // steps_per_epoch`. The last `num_examples % batch_size`
  examples of each epoch's permutation are dropped (a different set each epoch), so every
  batch is full and jitted steps see one shape. Resuming at step k therefore reproduces the
  exact data order of an uninterrupted run, with no state to save.
  """

  def __init__(self, num_examples: int, batch_size: int, seed: int):
    if batch_size <= 0:
      raise ValueError(f"batch_size must be positive, got {batch_size}")
    if num_examples < batch_size:
      raise ValueError(f"num_examples ({num_examples}) < batch_size ({batch_size}): "
                       f"no full batch can be formed")
    self.num_examples = int(num_examples)
    self.batch_size = int(batch_size)
    self.seed = int(seed)
    self.steps_per_epoch = self.num_examples // self.batch_size
    self._cached_epoch = -1
    self._cached_perm = None

  def epoch(self, step: int) -> int:
    return int(step) // self.steps_per_epoch

  def permutation(self, epoch: int) -> np.ndarray:
    """[num_examples] int64: the order of epoch `epoch`."""
    if epoch != self._cached_epoch:
      if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
      self._cached_perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
      self._cached_epoch = epoch
    return self._cached_perm

  def indices(self, step: int) -> np.ndarray:
    """[batch_size] int64 example indices of batch `step` (distinct within an epoch)."""
    step = int(step)
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    pos = step % self.steps_per_epoch
    perm = self.permutation(step // self.steps_per_epoch)
    return perm[pos * self.batch_size:(pos + 1) * self.batch_size].copy()
