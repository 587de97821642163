"""Evaluation protocols as one `Split` type: train, validate (selection), test (once).

  split = protocols.make_split(x, ProtocolConfig(name="leave_one_out"))
  split.evaluate(scorer, "val")     # model selection
  split.evaluate(scorer, "test")    # reported once, for the selected model

Protocols (shared/docs/protocols.md): "strong_generalization" (A: held-out users, fold-in
items as input, 20% of their items as targets, Recall@k / NDCG@k) and "leave_one_out" (B:
each user's last item is the test target, the second-to-last the validation target; full
ranking with seen items excluded, HR@k / NDCG@k / MRR).
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Optional, Sequence

import numpy as np

from recsys_core import evaluation
from recsys_core import splits
from recsys_core.config import check
from recsys_core.data.types import Interactions
from recsys_core.scoring import Scorer

PROTOCOLS = ("leave_one_out", "strong_generalization")
PARTS = ("val", "test")


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
  """The protocol section of a pipeline config."""
  name: str = "leave_one_out"
  seed: int = 0                        # split seed (strong generalisation; LOO has none)
  ks: tuple[int, ...] = (5, 10, 20, 50)
  selection_metric: str = "ndcg@10"    # maximised on validation
  target_fraction: float = 0.2         # strong generalisation: targets per held-out user
  n_heldout_users: Optional[int] = None  # strong generalisation: None = 10% of the users
  eval_users: int = 0                  # validation users per selection evaluation (0: all)
  batch_size: int = 1000               # users per Scorer.score call

  def validate(self) -> None:
    check(self.name in PROTOCOLS, "protocol.name", self.name, f"one of {PROTOCOLS}")
    check(len(self.ks) >= 1 and all(int(k) >= 1 for k in self.ks), "protocol.ks", self.ks,
          "a non-empty list of cut-offs >= 1")
    prefix = "hr" if self.name == "leave_one_out" else "recall"
    allowed = [f"{m}@{k}" for m in (prefix, "ndcg") for k in self.ks]
    allowed += ["mrr"] if self.name == "leave_one_out" else []
    check(self.selection_metric in allowed, "protocol.selection_metric",
          self.selection_metric, f"one of {allowed}")
    check(0.0 < self.target_fraction < 1.0, "protocol.target_fraction", self.target_fraction,
          "in (0, 1)")
    check(self.n_heldout_users is None or self.n_heldout_users >= 1,
          "protocol.n_heldout_users", self.n_heldout_users, ">= 1 or None")
    check(self.eval_users >= 0, "protocol.eval_users", self.eval_users, ">= 0 (0: all)")
    check(self.batch_size >= 1, "protocol.batch_size", self.batch_size, ">= 1")


@dataclasses.dataclass(frozen=True)
class Split:
  """One split under one protocol. All parts share the training item space.

  Attributes:
    protocol: "leave_one_out" or "strong_generalization".
    train: training interactions (leave-one-out: every user's rows but the last two, which
      are also the validation input).
    val_inputs, test_inputs: the evaluated users' input interactions.
    val_targets, test_targets: leave-one-out: [U] item index per user (-1: none);
      strong generalisation: the held-out target rows (`Interactions`).
  """
  protocol: str
  train: Interactions
  val_inputs: Interactions
  val_targets: Any
  test_inputs: Interactions
  test_targets: Any
  ks: tuple[int, ...] = (5, 10, 20, 50)
  batch_size: int = 1000

  def evaluate(self, scorer: Scorer, part: str) -> dict[str, float]:
    """Metrics of a fitted scorer on part "val" or "test" (+ "num_users")."""
    check(part in PARTS, "part", part, f"one of {PARTS}")
    inputs, targets = ((self.val_inputs, self.val_targets) if part == "val"
                       else (self.test_inputs, self.test_targets))
    return evaluation.evaluate(scorer, self.protocol, inputs, targets, ks=self.ks,
                               batch_size=self.batch_size)

  def fingerprint(self) -> str:
    """SHA-256 (16 hex digits) over every array of the split: equal fingerprints mean the
    same training, validation and test data, checked rather than assumed."""
    h = hashlib.sha256()
    for part in (self.train, self.val_inputs, self.val_targets, self.test_inputs,
                 self.test_targets):
      if isinstance(part, Interactions):
        arrays = (part.users, part.items, np.asarray([part.num_users, part.num_items]))
      else:
        arrays = (np.asarray(part),)
      for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.int64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]

  def stats(self) -> dict[str, int]:
    return {"users": int(self.train.num_users), "items": int(self.train.num_items),
            "train_interactions": int(len(self.train))}

  def with_validation_users(self, n: int, seed: int) -> "Split":
    """The split with validation on a fixed random n of the validation users (0: all).

    The subset is drawn with numpy's default_rng(seed + 5): the draw of the committed
    Phoenix retrieval runs, kept so that their recipes reproduce.
    """
    if not n:
      return self
    rng = np.random.default_rng(seed + 5)
    if self.protocol == "leave_one_out":
      targets = np.asarray(self.val_targets).copy()
      have = np.flatnonzero(targets >= 0)
      if n >= len(have):
        return self
      keep = rng.choice(have, size=n, replace=False)
      mask = np.ones(len(targets), bool)
      mask[keep] = False
      targets[mask] = -1
      return dataclasses.replace(self, val_targets=targets)
    users = np.unique(self.val_targets.users)
    if n >= len(users):
      return self
    keep = np.sort(rng.choice(users, size=n, replace=False))
    return dataclasses.replace(
        self, val_inputs=evaluation.UserBatcher(self.val_inputs).subset(keep),
        val_targets=evaluation.UserBatcher(self.val_targets).subset(keep))


def make_split(x: Interactions, cfg: ProtocolConfig) -> Split:
  """Splits `x` under `cfg` (see the module docstring); validation subset not applied."""
  cfg.validate()
  ks = tuple(int(k) for k in cfg.ks)
  if cfg.name == "leave_one_out":
    s = splits.leave_one_out_split(x)
    if not np.any(s.test_targets >= 0):
      raise ValueError(f"{x.source}: leave-one-out needs users with >= 3 interactions; "
                       "none has")
    return Split(cfg.name, s.train, s.val_inputs, s.val_targets, s.test_inputs,
                 s.test_targets, ks, cfg.batch_size)
  s = splits.strong_generalization_split(x, seed=cfg.seed, n_heldout_users=cfg.n_heldout_users,
                                         target_fraction=cfg.target_fraction)
  return Split(cfg.name, s.train, s.val_inputs, s.val_targets, s.test_inputs, s.test_targets,
               ks, cfg.batch_size)


def metric_keys(split: Split, metrics: Sequence[str] = ()) -> list[str]:
  """The metric names a split reports, in a stable order."""
  prefix = "hr" if split.protocol == "leave_one_out" else "recall"
  keys = [f"{m}@{k}" for m in (prefix, "ndcg") for k in split.ks]
  return keys + (["mrr"] if split.protocol == "leave_one_out" else []) + list(metrics)
