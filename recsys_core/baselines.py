"""Non-learned baselines on the `Scorer` interface: popularity and EASE.

Both treat training interactions as binary (a user-item pair present or not, duplicates
counted once) and score with the training item space.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from recsys_core.data.types import Interactions


def binary_matrix(x: Interactions) -> sparse.csr_matrix:
  """[U, I] float32 CSR with 1.0 for every (user, item) pair present (duplicates once)."""
  m = x.to_csr("binary")
  m.data[:] = 1.0
  return m


class Popularity:
  """Scores every item by the number of training users who interacted with it."""

  name = "popularity"

  def __init__(self):
    self.counts: np.ndarray | None = None

  def fit(self, train: Interactions) -> "Popularity":
    self.counts = np.asarray(binary_matrix(train).sum(axis=0), np.float32).ravel()
    return self

  def score(self, inputs: Interactions) -> np.ndarray:
    if self.counts is None:
      raise RuntimeError("Popularity.score called before fit")
    _check_items(inputs, len(self.counts), self.name)
    return np.broadcast_to(self.counts, (inputs.num_users, len(self.counts))).copy()


class EASE:
  """Embarrassingly Shallow Autoencoder (Steck 2019), closed form.

    P = (XᵀX + λI)⁻¹,   B = I − P·diag(1/diag(P))   (so diag(B) = 0),
    score(x) = x·B.

  X is the binary [U, I] training matrix. Everything is float32; the inverse uses a
  Cholesky factorisation (XᵀX + λI is symmetric positive definite for λ > 0).
  Memory: a few [I, I] float32 matrices (I = 18k items: 1.3 GB each).
  """

  def __init__(self, l2: float = 200.0):
    if l2 <= 0:
      raise ValueError(f"EASE l2 must be > 0, got {l2}")
    self.l2 = float(l2)
    self.weights: np.ndarray | None = None  # [I, I] B
    self.fit_seconds = float("nan")

  @property
  def name(self) -> str:
    return "ease"

  def fit(self, train: Interactions) -> "EASE":
    start = time.perf_counter()
    x = binary_matrix(train)
    gram = np.asarray((x.T @ x).toarray(), np.float32)  # [I, I]
    self.weights = ease_weights(gram, self.l2)
    self.fit_seconds = time.perf_counter() - start
    logging.info("EASE(l2=%g) fitted on %d items in %.1f s", self.l2, gram.shape[0],
                 self.fit_seconds)
    return self

  def score(self, inputs: Interactions) -> np.ndarray:
    if self.weights is None:
      raise RuntimeError("EASE.score called before fit")
    _check_items(inputs, self.weights.shape[0], self.name)
    return np.asarray(binary_matrix(inputs) @ self.weights, np.float32)


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
  """B = I − P·diag(1/diag(P)) with P = (gram + l2·I)⁻¹; overwrites `gram` (float32)."""
  gram = np.asarray(gram, np.float32)
  n = gram.shape[0]
  gram[np.diag_indices(n)] += np.float32(l2)
  # Cholesky inverse (LAPACK potrf + potri) is ~2x cheaper than a general inverse. LAPACK
  # wants Fortran order: the transpose of a C-ordered symmetric matrix is the same matrix in
  # Fortran order, so no copy is made. The result holds only the upper triangle.
  a = gram.T if gram.flags.c_contiguous else np.asfortranarray(gram)
  del gram
  c, info = lapack.spotrf(a, lower=0, clean=0, overwrite_a=1)
  if info != 0:
    raise np.linalg.LinAlgError(f"Cholesky of XᵀX + λI failed (info={info})")
  p, info = lapack.spotri(c, lower=0, overwrite_c=1)
  if info != 0:
    raise np.linalg.LinAlgError(f"inverse of XᵀX + λI failed (info={info})")
  p = np.triu(p)
  p += np.triu(p, 1).T  # symmetric P
  diag = np.diag(p).copy()
  p /= -diag[None, :]     # -P_ij / P_jj
  p[np.diag_indices(n)] = 0.0
  return np.ascontiguousarray(p, np.float32)


def _check_items(inputs: Interactions, num_items: int, name: str) -> None:
  if inputs.num_items != num_items:
    raise ValueError(f"{name}: inputs have {inputs.num_items} items, the model was fitted on "
                     f"{num_items} ({inputs.source})")


def select_ease(train: Interactions, l2_grid: Sequence[float],
                validate: Callable[["EASE"], Mapping[str, float]], metric: str
                ) -> tuple["EASE", dict[str, Any]]:
  """EASE with λ chosen on validation: fits each λ of `l2_grid` on `train`, keeps the one
  whose `validate(model)[metric]` is highest (the first on ties).

  Returns:
    (the fitted best EASE, {"l2": λ, "val": its validation metrics, "val_grid": {λ: metric},
    "edge": whether λ is at an end of a grid of 2 or more}). One [I, I] model is held at a
    time besides the best.
  """
  if not l2_grid:
    raise ValueError("EASE: the λ grid is empty")
  best, best_val, grid = None, None, {}
  for l2 in l2_grid:
    model = EASE(l2=float(l2)).fit(train)
    val = dict(validate(model))
    grid[f"{float(l2):g}"] = val[metric]
    if best_val is None or val[metric] > best_val[metric]:
      best, best_val = model, val
    del model
  edge = len(l2_grid) > 1 and best.l2 in (float(min(l2_grid)), float(max(l2_grid)))
  if edge:
    logging.warning("EASE: the selected λ=%g is at the edge of the grid %s", best.l2,
                    list(l2_grid))
  return best, {"l2": best.l2, "val": best_val, "val_grid": grid, "edge": bool(edge)}
