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


def example_events(num_users: int = 400, num_items: int = 300, num_tastes: int = 6,
                   mean_length: int = 25, seed: int = 0) -> list[tuple[str, int, int, int]]:
  """Rows (user, item, rating, unix time) of an example interaction log with structure a
  recommender can find: each user has a taste (one of `num_tastes` groups of items), mostly
  walks forward through that group (item i then i+1), and rates in-taste items higher.
  Users are named "u<n>", items numbered from 1000; times increase within each user."""
  rng = np.random.default_rng(seed)
  group = num_items // num_tastes
  rows = []
  for u in range(num_users):
    taste = int(rng.integers(num_tastes))
    n = max(4, int(rng.poisson(mean_length)))
    cur = taste * group + int(rng.integers(group))
    t = 1_600_000_000 + int(rng.integers(10_000_000))
    seen = set()
    for _ in range(n):
      if cur not in seen:
        seen.add(cur)
        in_taste = cur // group == taste
        rating = int(np.clip(rng.normal(4.2 if in_taste else 2.5, 0.8), 1, 5).round())
        rows.append((f"u{u}", 1000 + cur, rating, t))
      t += int(rng.integers(60, 86_400))
      if rng.random() < 0.15:
        cur = int(rng.integers(num_items))              # an excursion anywhere
      else:
        cur = taste * group + (cur - taste * group + 1) % group
  return rows


def write_example_events(path: str, **kwargs) -> int:
  """Writes `example_events(**kwargs)` as CSV (header user,item,rating,timestamp); returns
  the number of rows."""
  rows = example_events(**kwargs)
  with open(path, "w") as f:
    f.write("user,item,rating,timestamp\n")
    f.writelines(f"{u},{i},{r},{t}\n" for u, i, r, t in rows)
  return len(rows)
