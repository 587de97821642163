"""The one interactions type every loader returns and every model consumes.

Shape glossary:
  N: number of interactions (rows).
  U: number of users (dense indices 0..U-1).
  I: number of items (dense indices 0..I-1).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
from scipy import sparse


@dataclasses.dataclass(frozen=True)
class Interactions:
  """N (user, item) interactions with dense indices and maps back to the original ids.

  Attributes:
    users: [N] int32, dense user index in [0, U).
    items: [N] int32, dense item index in [0, I).
    ratings: [N] float32 explicit rating, NaN where the interaction has no rating
      (e.g. anime "watched, not rated"); None when the dataset has no ratings at all.
    order: [N] int64, larger = later (a timestamp, or the position in a user's sequence);
      None when the dataset has no order.
    user_ids: [U] original user ids (dense index -> original id).
    item_ids: [I] original item ids (dense index -> original id).
    source: where the data came from (a path or a name), for messages.
  """

  users: np.ndarray
  items: np.ndarray
  ratings: Optional[np.ndarray]
  order: Optional[np.ndarray]
  user_ids: np.ndarray
  item_ids: np.ndarray
  source: str = ""

  def __post_init__(self):
    n = len(self.users)
    if len(self.items) != n:
      raise ValueError(f"{self.source}: users and items differ in length "
                       f"({n} vs {len(self.items)})")
    for name in ("ratings", "order"):
      value = getattr(self, name)
      if value is not None and len(value) != n:
        raise ValueError(f"{self.source}: {name} has length {len(value)}, expected {n}")

  @property
  def num_users(self) -> int:
    return len(self.user_ids)

  @property
  def num_items(self) -> int:
    return len(self.item_ids)

  def __len__(self) -> int:
    return len(self.users)

  def to_csr(self, values: str = "binary") -> sparse.csr_matrix:
    """Returns the [U, I] user-item matrix.

    Args:
      values: "binary" (1.0 per interaction) or "rating" (the rating; 0 where unrated).
    """
    if values == "binary":
      data = np.ones(len(self), np.float32)
    elif values == "rating":
      if self.ratings is None:
        raise ValueError(f"{self.source}: has no ratings")
      data = np.nan_to_num(self.ratings.astype(np.float32), nan=0.0)
    else:
      raise ValueError(f"values must be 'binary' or 'rating', got {values!r}")
    m = sparse.csr_matrix((data, (self.users, self.items)), shape=(self.num_users, self.num_items),
                          dtype=np.float32)
    m.sum_duplicates()
    return m

  def sequences(self) -> list[np.ndarray]:
    """Returns, per user, the [n_u] int32 item indices in interaction order (stable)."""
    key = self.order if self.order is not None else np.arange(len(self))
    idx = np.lexsort((key, self.users))
    items = self.items[idx]
    bounds = np.searchsorted(self.users[idx], np.arange(self.num_users + 1))
    return [items[bounds[u]:bounds[u + 1]].astype(np.int32) for u in range(self.num_users)]

  def select(self, mask: np.ndarray) -> "Interactions":
    """Returns the rows where mask [N] is True, keeping the user and item index spaces."""
    return dataclasses.replace(
        self, users=self.users[mask], items=self.items[mask],
        ratings=None if self.ratings is None else self.ratings[mask],
        order=None if self.order is None else self.order[mask])
