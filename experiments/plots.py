"""Learning-curve plots shared by the ablation binaries and experiments/report.py.

A curve summary is {"steps": [T], "mean": [T], "std": [T], "n": seeds}; `band_summary`
builds one from per-seed curves. `ablation_panels` reads both ablation result layouts
(experiments/ablate_anime_ae.py: top-level `curves`; experiments/ablate_phoenix.py:
per-seed `runs[variant][i].curves`), so the report re-draws every ablation PNG from JSON.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

Curve = Mapping[str, Any]     # {"steps", "mean", "std", "n"}


def band_summary(steps: Sequence[float], per_seed: Sequence[Sequence[float]]) -> dict:
  """Mean and std over seeds of curves [seeds, T] sharing `steps` [T]."""
  vals = np.asarray(per_seed, np.float64).reshape(len(per_seed), len(steps))
  return {"steps": list(steps), "mean": vals.mean(0).tolist(), "std": vals.std(0).tolist(),
          "n": len(per_seed)}


def curve_bands(path: str, panels: Sequence[tuple[str, Mapping[str, Curve]]], title: str,
                threshold: Optional[float] = None) -> str:
  """PNG with one panel per (ylabel, {variant: curve summary}): mean line and ±std band per
  variant against the training step; `threshold` is drawn on the first panel."""
  fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 4.2), squeeze=False)
  for ax, (ylabel, curves) in zip(axes[0], panels):
    for variant, c in curves.items():
      st, m, sd = np.asarray(c["steps"]), np.asarray(c["mean"]), np.asarray(c["std"])
      if not len(st):
        continue
      line, = ax.plot(st, m, marker="o", ms=2.5, label=f"{variant} (n={c.get('n', '?')})")
      ax.fill_between(st, m - sd, m + sd, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
  if threshold is not None:
    axes[0, 0].axhline(threshold, color="gray", ls="--", lw=1,
                       label=f"threshold {threshold:.4f}")
  for ax in axes[0]:
    ax.legend(fontsize=8)
  axes[0, 0].set_title(title, fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def ablation_panels(rec: Mapping[str, Any]
                    ) -> tuple[list[tuple[str, dict]], str, Optional[float]]:
  """(panels, title, threshold) of an ablation result record (either layout)."""
  name = rec["name"]
  if "curves" in rec:                                       # ablate_anime_ae
    panels = [(f"validation {rec.get('curve_metric', 'metric')}", dict(rec["curves"]))]
    if rec.get("train_loss_curves"):
      panels.append(("training presence NLL", dict(rec["train_loss_curves"])))
    n = max((len(v) for v in rec.get("runs", {}).values()), default=0)
    return panels, f"{name} ({n} seed(s), mean ± std)", None
  comparison = rec.get("comparison", {})                    # ablate_phoenix
  key = comparison.get("primary_metric")
  curves = {}
  for variant, runs in rec.get("runs", {}).items():
    if runs and key:
      curves[variant] = band_summary(runs[0]["curves"]["step"],
                                     [r["curves"][key] for r in runs])
  return ([(f"validation {key}", curves)], f"{name} (mean ± std over seeds)",
          comparison.get("threshold"))
