"""Several models on the same splits: the pipeline in a loop, and one comparison record.

  record = comparison.run({"ease": [cfg_seed0, cfg_seed1], "anime_ae": [...]}, ...)

Each config is an ordinary pipeline config (a model's own recipe, with the seed set), so a
model is trained exactly as `experiments/train.py` trains it, and an existing run folder of
the same config is resumed rather than retrained. The record holds, per model, the test
metrics over its seeds, the split fingerprint of every run (all models of one seed must
share it: checked, not assumed), and, where a published result file has the same config
fingerprint (`<own_runs_dir>/*.json`), that own run's metrics beside the comparison's.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import time
from typing import Any, Mapping, Optional, Sequence

from recsys_core import pipeline
from recsys_core import results

log = logging.getLogger(__name__)


def own_runs(results_dir: Optional[str]) -> dict[str, dict]:
  """{config fingerprint: record} of the result files in `results_dir` that have one."""
  out = {}
  for path in sorted(glob.glob(os.path.join(results_dir or "", "*.json"))):
    try:
      with open(path) as f:
        rec = json.load(f)
    except (OSError, ValueError):
      continue
    if isinstance(rec, dict) and rec.get("fingerprint") and "metrics" in rec:
      out.setdefault(rec["fingerprint"], dict(rec, _file=os.path.basename(path)))
  return out


def reference_runs(record: Mapping[str, Any], file: str, seed: int) -> Optional[dict]:
  """The seed's metrics of a result record holding one value per seed (its "seeds" list
  aligned with each metric's "values"), as an own-run entry; None if the seed is absent
  (under leave-one-out, whose split has no seed, a one-seed record stands for any seed:
  for a trained model the seed then differs in initialisation only)."""
  seeds = list(record.get("seeds", []))
  if seed in seeds:
    i = seeds.index(seed)
  elif len(seeds) == 1 and record.get("protocol") == "leave_one_out":
    i = 0   # leave-one-out splits have no seed: a one-seed record holds the same split
  else:
    return None
  metrics = {k: v["values"][i] for k, v in record["metrics"].items()
             if isinstance(v, Mapping) and len(v.get("values", [])) == len(seeds)}
  return dict(metrics=metrics, _file=os.path.basename(file))


def run(configs: Mapping[str, Sequence[Any]], *, name: str, runs_root: str,
        own_runs_dir: Optional[str] = None, metrics: Sequence[str] = (),
        references: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
  """Runs every model's configs (one per seed) through the pipeline; returns the record.

  Args:
    configs: {model label: [pipeline config per seed]}; all on one dataset and protocol.
    name: the comparison's name (the record's "name").
    runs_root: folder of the run folders.
    own_runs_dir: where to look for the models' own result files (same fingerprint).
    metrics: the metric keys to summarise (default: all test metrics of the first run).
    references: {model label: result file} of the model's own earlier runs with one value
      per seed (e.g. written by another binary, without a fingerprint): the same seed's
      values are put beside the comparison's, as for a fingerprint match.

  Raises:
    ValueError: the runs of one seed were not on the same split.
  """
  start = time.perf_counter()
  known = own_runs(own_runs_dir)
  models: dict[str, Any] = {}
  by_seed: dict[int, set] = {}
  summary: dict[str, list] = {}
  dataset = protocol = None
  for label, seed_configs in configs.items():
    runs = []
    for cfg in seed_configs:
      rec = pipeline.train_and_evaluate(cfg, runs_root)
      runs.append(rec)
      by_seed.setdefault(rec["seeds"][0], set()).add(rec["split_fingerprint"])
      dataset, protocol = rec["dataset"], rec["protocol"]
    keys = list(metrics) or list(pipeline.test_metrics(runs[0]))
    values = {k: [pipeline.test_metrics(r)[k] for r in runs] for k in keys}
    own = [known.get(r["fingerprint"]) for r in runs]
    if references and label in references:
      with open(references[label]) as f:
        ref = json.load(f)
      own = [o or reference_runs(ref, references[label], r["seeds"][0])
             for o, r in zip(own, runs)]
    models[label] = {
        "status": "ok", "model": runs[0]["model"], "config": runs[0]["config"],
        "seeds": [r["seeds"][0] for r in runs],
        "metrics": {k: results.summarize(v) for k, v in values.items()},
        # The selected validation metrics: what a choice between models may be based on.
        "val_metrics": {k: results.summarize([r["metrics"][f"val/{k}"]["mean"] for r in runs])
                        for k in keys if all(f"val/{k}" in r["metrics"] for r in runs)},
        "split_fingerprints": [r["split_fingerprint"] for r in runs],
        "fit_seconds": [r["fit_seconds"] for r in runs],
        "run_dirs": [r["run_dir"] for r in runs],
        "own_runs": [None if o is None else {
            "file": o["_file"], "metrics": _own_metrics(o),
            "relative_difference": {k: _relative(pipeline.test_metrics(r)[k],
                                                 _own_metrics(o).get(k))
                                    for k in keys}} for r, o in zip(runs, own)]}
    for k, v in values.items():
      summary[f"{label}/{k}"] = v
  mixed = {seed: sorted(fps) for seed, fps in by_seed.items() if len(fps) > 1}
  if mixed:
    raise ValueError(f"{name}: models of one seed ran on different splits: {mixed}")
  record = results.make_record(
      name=name, dataset=dataset, protocol=protocol, model="comparison",
      config={label: m["config"] for label, m in models.items()}, metrics=summary,
      seeds=sorted(by_seed), wall_seconds=time.perf_counter() - start,
      extra={"models": models,
             "split_fingerprints": [sorted(by_seed[s])[0] for s in sorted(by_seed)]})
  return record


def _own_metrics(own: Mapping[str, Any]) -> dict[str, float]:
  """Test metrics of an own-run entry: a pipeline record or a `reference_runs` entry."""
  if "fingerprint" in own:
    return pipeline.test_metrics(own)
  return dict(own["metrics"])


def _relative(value: float, reference: Optional[float]) -> Optional[float]:
  if reference is None or reference == 0:
    return None
  return (value - reference) / abs(reference)


def own_run_gap(model: Mapping[str, Any], key: str) -> Optional[float]:
  """The largest |relative difference| on `key` between a model's comparison runs and its
  own runs (None when no seed has an own run)."""
  gaps = [abs(o["relative_difference"][key]) for o in model.get("own_runs") or []
          if o is not None and o["relative_difference"].get(key) is not None]
  return max(gaps) if gaps else None


def table(record: Mapping[str, Any], keys: Sequence[str]) -> str:
  """A plain-text table: one row per model, test mean ± std over its seeds, and the largest
  relative gap to its own runs on the first key."""
  lines = [f"{'model':28s} " + " ".join(f"{k:>17s}" for k in keys)
           + f"  seeds  own-run max |gap| ({keys[0]})"]
  for label, m in record["models"].items():
    cells = []
    for k in keys:
      s = m["metrics"].get(k)
      cells.append(f"{s['mean']:.4f} ± {s['std']:.4f}" if s else "")
    gap = own_run_gap(m, keys[0])
    lines.append(f"{label:28s} " + " ".join(f"{c:>17s}" for c in cells)
                 + f"  {len(m['seeds']):5d}  " + ("-" if gap is None else f"{gap:.2%}"))
  return "\n".join(lines)
