"""Evaluation of any `Scorer` under protocols A and B (see shared/docs/protocols.md).

The evaluator never looks inside a model: it hands the scorer one batch of users' input
interactions at a time (an `Interactions` with those users re-indexed 0..b-1 and the item
space unchanged), gets [b, I] scores back, removes the input items from the ranking and
computes per-user metrics, which are averaged over the users that have targets.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Iterator, Optional, Sequence, Union

import numpy as np
from scipy import sparse

from recsys_core import metrics as metrics_lib
from recsys_core.data.types import Interactions
from recsys_core.scoring import Scorer

log = logging.getLogger(__name__)


class UserBatcher:
  """Cuts an `Interactions` into per-user-batch `Interactions` with re-indexed users."""

  def __init__(self, x: Interactions):
    self.x = x
    self._perm = np.argsort(x.users, kind="stable")
    self._bounds = np.searchsorted(x.users[self._perm], np.arange(x.num_users + 1))

  def subset(self, users: np.ndarray) -> Interactions:
    """Rows of `users` (in that order), user u -> position of u in `users`."""
    users = np.asarray(users, np.int64)
    starts, ends = self._bounds[users], self._bounds[users + 1]
    lengths = ends - starts
    rows = self._perm[np.repeat(ends - lengths.cumsum(), lengths) + np.arange(lengths.sum())]
    x = self.x
    return dataclasses.replace(
        x, users=np.repeat(np.arange(len(users), dtype=np.int32), lengths),
        items=x.items[rows],
        ratings=None if x.ratings is None else x.ratings[rows],
        order=None if x.order is None else x.order[rows],
        user_ids=x.user_ids[users])


def _batches(users: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
  for start in range(0, len(users), batch_size):
    yield users[start:start + batch_size]


def _evaluate(scorer: Scorer, inputs: Interactions, targets: Union[sparse.csr_matrix, np.ndarray],
              users: np.ndarray, ks: Sequence[int], keys: Sequence[str], batch_size: int,
              what: str, log_every_seconds: float) -> dict[str, float]:
  """Shared loop: scores `users` batch by batch, returns mean metrics (+ 'num_users')."""
  if int(batch_size) < 1:
    raise ValueError(f"{what}: batch_size={batch_size}: must be >= 1")
  if not ks or min(int(k) for k in ks) < 1:
    raise ValueError(f"{what}: ks={tuple(ks)}: must be one or more cut-offs >= 1")
  batcher = UserBatcher(inputs)
  seen = _binary_csr(inputs)
  sums: dict[str, float] = {}
  start = last_log = time.perf_counter()
  done = 0
  for batch in _batches(users, batch_size):
    scores = np.asarray(scorer.score(batcher.subset(batch)))
    if scores.shape != (len(batch), inputs.num_items):
      raise ValueError(f"{scorer.name}.score returned shape {scores.shape}, expected "
                       f"{(len(batch), inputs.num_items)}")
    per_user = metrics_lib.ranking_metrics(scores, targets[batch], ks, exclude=seen[batch],
                                           metrics=keys)
    for key, value in per_user.items():
      sums[key] = sums.get(key, 0.0) + float(np.nansum(value))
    done += len(batch)
    now = time.perf_counter()
    if now - last_log >= log_every_seconds and done < len(users):
      last_log = now
      log.info("%s %s: %d/%d users, %.0f users/s", what, scorer.name, done, len(users),
               done / (now - start))
  if not len(users):
    raise ValueError(f"{what}: no user has a target")
  out = {key: total / len(users) for key, total in sums.items()}
  out["num_users"] = int(len(users))
  log.info("%s %s: %d users in %.1f s: %s", what, scorer.name, len(users),
           time.perf_counter() - start,
           ", ".join(f"{k}={v:.4f}" for k, v in out.items() if k != "num_users"))
  return out


def _binary_csr(x: Interactions) -> sparse.csr_matrix:
  m = x.to_csr("binary")
  m.data[:] = 1.0
  return m.astype(bool)


def evaluate_strong_generalization(scorer: Scorer, inputs: Interactions,
                                   targets: Union[Interactions, sparse.spmatrix],
                                   ks: Sequence[int] = (20, 50, 100), batch_size: int = 1000,
                                   log_every_seconds: float = 30.0) -> dict[str, float]:
  """Protocol A: rank all items for held-out users from their fold-in items.

  Args:
    scorer: a fitted scorer (item space = inputs.num_items).
    inputs: the held-out users' fold-in interactions ([U, I] index space).
    targets: their held-out target items: an `Interactions` in the same index spaces, or a
      [U, I] sparse matrix.
    ks: cut-offs for recall@k and ndcg@k.
    batch_size: users per `scorer.score` call.
    log_every_seconds: progress logging interval.

  Returns:
    {"recall@k", "ndcg@k" for k in ks, "num_users"}: means over users with >= 1 target;
    fold-in items are excluded from the ranking.
  """
  if isinstance(targets, Interactions):
    _check_same_space(inputs, targets)
    targets = _binary_csr(targets)
  targets = sparse.csr_matrix(targets, dtype=bool)
  if targets.shape != (inputs.num_users, inputs.num_items):
    raise ValueError(f"targets shape {targets.shape} != {(inputs.num_users, inputs.num_items)}")
  users = np.flatnonzero(np.diff(targets.indptr) > 0)
  return _evaluate(scorer, inputs, targets, users, ks, ("recall", "ndcg"), batch_size,
                   "strong generalization", log_every_seconds)


def evaluate_leave_one_out(scorer: Scorer, inputs: Interactions, targets: np.ndarray,
                           ks: Sequence[int] = (5, 10, 20, 50), batch_size: int = 1000,
                           log_every_seconds: float = 30.0) -> dict[str, float]:
  """Protocol B: rank each user's next item against ALL items.

  Args:
    scorer: a fitted scorer.
    inputs: every user's input history (the sequence before the target).
    targets: [U] int target item per user, -1 = no target (user skipped).
    ks: cut-offs for hr@k and ndcg@k.
    batch_size: users per `scorer.score` call.
    log_every_seconds: progress logging interval.

  Returns:
    {"hr@k", "ndcg@k" for k in ks, "mrr", "num_users"}; the user's input items are
    excluded from the ranking.
  """
  targets = np.asarray(targets, np.int64)
  if targets.shape != (inputs.num_users,):
    raise ValueError(f"targets has shape {targets.shape}, expected ({inputs.num_users},)")
  if np.any(targets >= inputs.num_items) or np.any(targets < -1):
    raise ValueError(f"target items must be in [-1, {inputs.num_items})")
  users = np.flatnonzero(targets >= 0)
  return _evaluate(scorer, inputs, targets, users, ks, ("hr", "ndcg", "mrr"), batch_size,
                   "leave-one-out", log_every_seconds)


def _check_same_space(a: Interactions, b: Interactions) -> None:
  if a.num_users != b.num_users or a.num_items != b.num_items:
    raise ValueError(f"inputs ({a.num_users} users, {a.num_items} items) and targets "
                     f"({b.num_users}, {b.num_items}) are not in the same index space")


def evaluate(scorer: Scorer, protocol: str, inputs: Interactions, targets,
             ks: Optional[Sequence[int]] = None, batch_size: int = 1000) -> dict[str, float]:
  """Dispatches on protocol name: "strong_generalization" or "leave_one_out"."""
  if protocol == "strong_generalization":
    fn = evaluate_strong_generalization
  elif protocol == "leave_one_out":
    fn = evaluate_leave_one_out
  else:
    raise ValueError(f"unknown protocol {protocol!r}")
  kwargs = {} if ks is None else {"ks": tuple(ks)}
  return fn(scorer, inputs, targets, batch_size=batch_size, **kwargs)
