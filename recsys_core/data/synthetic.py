"""Synthetic sequence data for tests and smoke runs: a known next-item rule to learn."""
from __future__ import annotations

import numpy as np

from recsys_core.data.types import Interactions


def synthetic_sequences(num_users: int, num_items: int, min_len: int, max_len: int,
                        seed: int = 0, noise: float = 0.0) -> Interactions:
  """Sequences where item i is followed by item i+1 (mod I), from a random start.

  With `noise` > 0 each step jumps to a uniformly random item with that probability.
  """
  rng = np.random.default_rng(seed)
  users, items, order = [], [], []
  for u in range(num_users):
    n = int(rng.integers(min_len, max_len + 1))
    cur = int(rng.integers(num_items))
    seq = []
    for _ in range(n):
      seq.append(cur)
      cur = int(rng.integers(num_items)) if rng.random() < noise else (cur + 1) % num_items
    # No repeats within a user (like the Amazon files): drop repeated items.
    _, first = np.unique(seq, return_index=True)
    seq = [seq[i] for i in sorted(first)]
    users += [u] * len(seq)
    items += seq
    order += list(range(len(seq)))
  return Interactions(users=np.array(users, np.int32), items=np.array(items, np.int32),
                      ratings=None, order=np.array(order, np.int64),
                      user_ids=np.arange(1, num_users + 1), item_ids=np.arange(1, num_items + 1),
                      source="synthetic")
