r"""Regenerates every results table and plot from the JSON files, so docs never drift.

  python -m experiments.report [--results_dir experiments/results]

Reads experiments/results/*.json (schema: shared/docs/results.md) and writes
  tables/<group>.md       one generic table per result group (file-name prefix: baseline,
                          anime_ae, phoenix, bench, compare, ablation, ...): name, dataset,
                          protocol, model, each metric mean ± std, wall time, commit
  plots/<group>.png       the group's headline metric per file, mean ± std
  plots/ablation_<name>.png
                          every ablation's validation learning curves (experiments/plots.py)
  tables/compare_<tag>.md, plots/compare_<tag>.png
                          protocol D per dataset: one row per model, every protocol run on
                          that dataset; skipped models listed with the reason
  tables/phoenix_retrieval_runs.md
                          protocol B Phoenix retrieval runs, one row per recipe (runs that
                          differ only in seed are pooled: mean ± std over them), beside
                          popularity, EASE and the published reference for the dataset
  README.md               the index
Idempotent: the output depends on the JSON contents only (no dates), files are sorted.
"""
from __future__ import annotations

import copy
import glob
import json
import os
import re
from typing import Any, Optional, Sequence

from absl import app
from absl import flags
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from experiments import plots  # pylint: disable=g-import-not-at-top,wrong-import-position
from recsys_core import comparison  # pylint: disable=g-import-not-at-top,wrong-import-position
from recsys_core import results  # pylint: disable=g-import-not-at-top,wrong-import-position

DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
GROUPS = ("baseline", "anime_ae", "phoenix", "bench", "compare", "ablation")
HEADLINE = ("ndcg@100", "ndcg@10", "recall@20", "hr@10")
WIDE_MAX_METRICS = 8
MODEL_ORDER = ("popularity", "ease", "anime_ae", "phoenix_retrieval")
# Published protocol-B references (shared/docs/protocols.md): (model, HR@10, NDCG@10).
RETRIEVAL_REFERENCES = {
    "ml-1m": ("SASRec, full cross-entropy", 0.3152, 0.1821),
    "beauty": ("SASRec, sampled softmax", 0.0921, 0.0531),
    "sports": ("SASRec, sampled softmax", 0.0569, 0.0314),
}
PROTOCOL_SHORT = {"strong_generalization": "A (strong generalisation)",
                  "leave_one_out": "B (leave-one-out)"}


# ----------------------------------------------------------------------------------------
# Reading.

def load_results(results_dir: str) -> list[dict]:
  """Every result JSON under results_dir (not recursive), sorted by name; '_file' added."""
  out = []
  for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
    with open(path) as f:
      try:
        rec = json.load(f)
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    for field in ("name", "metrics"):
      if field not in rec:
        raise ValueError(f"{path}: result file has no field {field!r}")
    rec["_file"] = os.path.basename(path)
    out.append(rec)
  return out


def group_of(rec: dict) -> str:
  base = rec["_file"][:-len(".json")]
  for g in GROUPS:
    if base == g or base.startswith(g + "_"):
      return g
  return base.split("_")[0]


def fmt(summary: Any) -> str:
  """'mean ± std' with 4 decimals (parsed back by `parse_table`); '' when missing."""
  if isinstance(summary, dict) and "mean" in summary:
    mean, std = summary["mean"], summary.get("std", 0.0)
    if mean is None:
      return ""
    return f"{mean:.4f} ± {std:.4f}"
  if isinstance(summary, (int, float)):
    return f"{summary:.4f}"
  return ""


def _short_commit(c: Optional[str]) -> str:
  if not c:
    return ""
  return c[:8] + ("+dirty" if c.endswith("+dirty") else "")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  esc = lambda s: str(s).replace("|", "\\|")
  lines = ["| " + " | ".join(esc(h) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def parse_table(markdown: str) -> list[dict[str, str]]:
  """Rows of the first Markdown table in `markdown` as {header: cell} dicts."""
  lines = [l for l in markdown.splitlines() if l.startswith("|")]
  if len(lines) < 2:
    return []
  split = lambda l: [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", l)[1:-1]]
  header = split(lines[0])
  rows = []
  for l in lines[2:]:
    cells = split(l)
    rows.append(dict(zip(header, cells)))
  return rows


def parse_cell(cell: str) -> tuple[float, float]:
  """'0.1234 ± 0.0056' -> (0.1234, 0.0056)."""
  mean, std = cell.split("±")
  return float(mean), float(std)


# ----------------------------------------------------------------------------------------
# Generic group tables and plots.

def _metric_keys(recs: Sequence[dict]) -> list[str]:
  keys = []
  for r in recs:
    for k in r["metrics"]:
      if k not in keys:
        keys.append(k)
  return keys


def group_table(group: str, recs: Sequence[dict]) -> str:
  keys = _metric_keys(recs)
  meta = lambda r: [r.get("name", ""), r.get("dataset", ""), r.get("protocol", ""),
                    r.get("model", "")]
  tail = lambda r: [f"{r['wall_seconds']:.1f}" if isinstance(r.get("wall_seconds"), (int, float))
                    else "", _short_commit(r.get("commit"))]
  text = [f"# Results: {group}\n",
          f"Generated by `python -m experiments.report` from {len(recs)} file(s) "
          f"`experiments/results/{group}_*.json`; do not edit. Cells are mean ± std over the "
          "run's seeds (see each file's `seeds`).\n"]
  if len(keys) <= WIDE_MAX_METRICS:
    header = ["name", "dataset", "protocol", "model"] + keys + ["wall s", "commit"]
    rows = [meta(r) + [fmt(r["metrics"].get(k)) for k in keys] + tail(r) for r in recs]
  else:
    header = ["name", "dataset", "protocol", "model", "metric", "mean ± std", "n", "wall s",
              "commit"]
    rows = []
    for r in recs:
      for k, v in r["metrics"].items():
        n = len(v.get("values", [])) if isinstance(v, dict) else 1
        rows.append(meta(r) + [k, fmt(v), str(n)] + tail(r))
  text.append(_md_table(header, rows))
  return "\n".join(text)


def _headline(rec: dict) -> Optional[str]:
  keys = list(rec["metrics"])
  for h in HEADLINE:
    if h in keys:
      return h
  plain = [k for k in keys if "/" not in k]
  return (plain or keys or [None])[0]


def group_plot(group: str, recs: Sequence[dict], path: str) -> bool:
  """Horizontal bars: each file's headline metric, mean ± std. False if nothing to plot."""
  bars = []
  for r in recs:
    k = _headline(r)
    v = r["metrics"].get(k) if k else None
    if isinstance(v, dict) and isinstance(v.get("mean"), (int, float)):
      bars.append((f"{r['name']}\n[{k}]", v["mean"], v.get("std", 0.0)))
  if not bars:
    return False
  fig, ax = plt.subplots(figsize=(8, 0.45 * len(bars) + 1.2))
  y = range(len(bars))
  ax.barh(list(y), [b[1] for b in bars], xerr=[b[2] for b in bars], capsize=3,
          color="#4c72b0")
  ax.set_yticks(list(y))
  ax.set_yticklabels([b[0] for b in bars], fontsize=7)
  ax.invert_yaxis()
  ax.set_xlabel("headline metric (mean ± std over seeds)")
  ax.set_title(f"{group} results")
  fig.tight_layout()
  _save(fig, path)
  return True


def _save(fig, path: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp.png"
  # No timestamps in the PNG metadata: regenerating from the same JSON gives the same file.
  fig.savefig(tmp, dpi=110, metadata={"Software": None})
  plt.close(fig)
  os.replace(tmp, path)


# ----------------------------------------------------------------------------------------
# Protocol B: Phoenix retrieval runs pooled over seeds.

# Config fields ignored when pooling runs over seeds, with how the table header names them:
# the fields that name one run, the wall-clock budget (which run stopped by it is shown in
# the epochs column), whether the online params were evaluated beside their average (a
# record only: selection and test use the average), and whether the run also fitted
# popularity and EASE after training (they do not touch the Phoenix model; a pool shows
# those of its first run that has them).
_RUN_ONLY_FIELD_NAMES = {"tag": "tag", "data_dir": "data folder",
                         "max_train_seconds": "wall-clock budget",
                         "eval_online_params": "whether the online params were evaluated too",
                         "baselines": "whether the run fitted the baselines too"}
_RUN_ONLY_FIELDS = ("seed", *_RUN_ONLY_FIELD_NAMES)


# Config fields added after result files were committed, with the value that reproduces
# the older runs (path of keys -> default); a file without the field is read as having it.
ADDED_CONFIG_FIELDS = {("optimizer", "ema_decay"): 0.0, ("eval_online_params",): True}


def with_added_fields(cfg: dict) -> dict:
  """A copy of a recorded config with every ADDED_CONFIG_FIELDS path it lacks filled in."""
  cfg = copy.deepcopy(cfg)
  for path, default in ADDED_CONFIG_FIELDS.items():
    node = cfg
    for key in path[:-1]:
      node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
      node.setdefault(path[-1], default)
  return cfg


def _ignored_fields_phrase() -> str:
  """"tag, data folder, ... and whether ..." from _RUN_ONLY_FIELD_NAMES."""
  *rest, last = _RUN_ONLY_FIELD_NAMES.values()
  return f"{', '.join(rest)} and {last}"


def recipe_key(rec: dict) -> str:
  """The run's config without _RUN_ONLY_FIELDS, with ADDED_CONFIG_FIELDS filled in."""
  cfg = {k: v for k, v in with_added_fields(rec.get("config", {})).items()
         if k not in _RUN_ONLY_FIELDS}
  return json.dumps([rec.get("dataset"), cfg], sort_keys=True, default=str)


def _device(machine: str) -> str:
  """'NVIDIA H100 80GB HBM3' or '2-core cpu' from a results.machine_description() string."""
  m = re.search(r" on \d+x (.+)$", machine or "")
  dev = m.group(1) if m else (machine or "")
  return f"{machine.split(' ')[0]} cpu" if dev == "cpu" else dev


def _pooled(values: Sequence[float]) -> Any:
  """results.summarize over runs (mean ± population std); the plain value for one run."""
  return results.summarize(values) if len(values) > 1 else values[0]


def retrieval_runs(recs: Sequence[dict]) -> list[dict]:
  """The protocol-B Phoenix retrieval result files on real data (experiments/train.py, and
  the flat-config binary before it)."""
  return [r for r in recs if r["_file"].startswith("phoenix_retrieval_")
          and r.get("protocol") == "leave_one_out" and r.get("dataset") != "synthetic"]


def retrieval_table(runs: Sequence[dict]) -> str:
  """One row per Phoenix retrieval recipe: test HR@10 / NDCG@10 mean ± std over its runs."""
  pools: dict[str, list[dict]] = {}
  for r in runs:
    pools.setdefault(recipe_key(r), []).append(r)
  text = ["# Phoenix retrieval runs (protocol B)\n",
          "Generated by `python -m experiments.report` from `experiments/results/"
          "phoenix_retrieval_*.json`; do not edit. Full ranking over all items, seen items "
          "excluded, leave-one-out. Runs whose configs differ only in seed are pooled ("
          f"{_ignored_fields_phrase()} are ignored): cells are mean ± std over those runs (n; "
          "a single run shows its value). "
          "Popularity and EASE are computed in each run on the same split (deterministic, so "
          "identical across seeds). Epochs: best (selected on validation) / trained, per run; "
          "\"(time)\" marks a run stopped by its wall-clock budget.\n"]
  header = ["dataset", "files", "n", "machine", "hr@10", "ndcg@10", "val ndcg@10",
            "epochs", "train s", "popularity hr@10", "ease hr@10", "ease ndcg@10",
            "reference (hr@10 / ndcg@10)"]
  rows = []
  metric = lambda r, k: r["metrics"][k]["mean"] if k in r["metrics"] else float("nan")
  order = lambda p: (p[0]["dataset"], -sum(metric(r, "hr@10") for r in p) / len(p))
  for pool in sorted(pools.values(), key=order):
    first = pool[0]
    with_baselines = next((r for r in pool if "ease/hr@10" in r["metrics"]), first)
    ref = RETRIEVAL_REFERENCES.get(first["dataset"])
    rows.append([
        first["dataset"], ", ".join(r["_file"][len("phoenix_retrieval_"):-len(".json")]
                                    for r in pool),
        str(len(pool)), _device(first.get("machine", "")),
        fmt(_pooled([metric(r, "hr@10") for r in pool])),
        fmt(_pooled([metric(r, "ndcg@10") for r in pool])),
        fmt(_pooled([metric(r, "val/ndcg@10") for r in pool])),
        " ".join(f"{r.get('best_epoch', 0):.0f}/{r.get('epochs', 0):.0f}"
                 + (" (time)" if r.get("stopped") == "time_budget" else "") for r in pool),
        " ".join(f"{r.get('train_seconds', 0):.0f}" for r in pool),
        *(f"{metric(with_baselines, k):.4f}" if k in with_baselines["metrics"] else "not run"
          for k in ("popularity/hr@10", "ease/hr@10", "ease/ndcg@10")),
        f"{ref[0]}: {ref[1]:.4f} / {ref[2]:.4f}" if ref else ""])
  text.append(_md_table(header, rows))
  return "\n".join(text)


# ----------------------------------------------------------------------------------------
# Protocol D: per-dataset comparison tables and plots.

def _models_of(rec: dict) -> list[str]:
  models = list(rec.get("models", {}))
  return sorted(models, key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else 99, m))


def compare_table(tag: str, recs: Sequence[dict]) -> str:
  text = [f"# Model comparison: {tag}\n",
          "Generated by `python -m experiments.report` from "
          + ", ".join(f"`{r['_file']}`" for r in recs) + "; do not edit. Every model is "
          "fitted and evaluated on the same split per seed (identical split fingerprints "
          "are recorded per model). Cells: test mean ± std over the model's seeds; own runs: "
          "the largest relative gap, over seeds, to the model's own result file on the same "
          "split and seed.\n"]
  for r in recs:
    keys = list(r.get("config", {}).get("report_metrics") or [])
    if not keys:
      keys = sorted({k.split("/", 1)[1] for k in r["metrics"] if "/" in k})
    proto = PROTOCOL_SHORT.get(r.get("protocol"), r.get("protocol"))
    text.append(f"## Protocol {proto}: `{r['_file']}`\n")
    gap_key = next((k for k in ("ndcg@100", "ndcg@10") if k in keys), keys[0])
    header = ["model"] + keys + ["seeds", f"own runs: max gap ({gap_key})",
                                 "fit s (per seed)", "status"]
    rows = []
    for m in _models_of(r):
      info = r["models"][m]
      if info.get("status") != "ok":
        rows.append([m] + [""] * len(keys) + ["", "", "", f"skipped: {info.get('reason')}"])
        continue
      fits = info.get("fit_seconds") or []
      gap = comparison.own_run_gap(info, gap_key)
      files = sorted({o["file"] for o in info.get("own_runs") or [] if o})
      own = "-" if gap is None else f"{gap:.2%} (`{'`, `'.join(files)}`)"
      rows.append([m] + [fmt(r["metrics"].get(f"{m}/{k}")) for k in keys]
                  + [str(len(info.get("seeds", []))), own,
                     f"{sum(fits) / max(1, len(fits)):.1f}", "ok"])
    text.append(_md_table(header, rows))
    text.append(f"Command: `{r.get('command', '')}`; commit `{_short_commit(r.get('commit'))}`;"
                f" wall {r.get('wall_seconds', 0):.0f} s; {r.get('machine', '')}.\n")
  return "\n".join(text)


def compare_plot(tag: str, recs: Sequence[dict], path: str) -> bool:
  """Grouped bars (models x metrics) with std error bars, one panel per protocol."""
  panels = [r for r in recs if any(i.get("status") == "ok" for i in r.get("models", {}).values())]
  if not panels:
    return False
  fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.8), squeeze=False)
  colors = ["#8c8c8c", "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
  for ax, r in zip(axes[0], panels):
    keys = list(r.get("config", {}).get("report_metrics") or [])
    models = [m for m in _models_of(r) if r["models"][m].get("status") == "ok"]
    width = 0.8 / max(1, len(models))
    for j, m in enumerate(models):
      vals = [r["metrics"].get(f"{m}/{k}", {}) for k in keys]
      xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(keys))]
      n = len(r["models"][m].get("seeds", []))
      ax.bar(xs, [v.get("mean", 0.0) for v in vals], width, yerr=[v.get("std", 0.0) for v in vals],
             capsize=3, label=f"{m} (n={n})", color=colors[j % len(colors)])
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels(keys)
    ax.set_ylabel("test metric (mean ± std over seeds)")
    ax.set_title(f"{tag}: protocol {PROTOCOL_SHORT.get(r.get('protocol'), r.get('protocol'))}")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2,
              frameon=False)
    skipped = [m for m in _models_of(r) if r["models"][m].get("status") != "ok"]
    if skipped:
      ax.text(0.01, 0.99, "skipped: " + ", ".join(skipped), transform=ax.transAxes,
              va="top", fontsize=7)
  fig.tight_layout()
  _save(fig, path)
  return True


def _compare_by_tag(recs: Sequence[dict]) -> dict[str, list[dict]]:
  out: dict[str, list[dict]] = {}
  for r in recs:
    if group_of(r) == "compare" and "models" in r:
      m = re.match(r"compare_(.+)_(strong_generalization|leave_one_out)\.json$", r["_file"])
      tag = m.group(1) if m else r["_file"][len("compare_"):-len(".json")]
      out.setdefault(tag, []).append(r)
  return out


def write_compare_docs(tag: str, results_dir: str = DEFAULT_DIR) -> list[str]:
  """Table and plot of one dataset's comparison files (experiments/compare.py records)."""
  recs = _compare_by_tag(load_results(results_dir)).get(tag, [])
  if not recs:
    return []
  paths = [os.path.join(results_dir, "tables", f"compare_{tag}.md")]
  _write_text(paths[0], compare_table(tag, recs))
  plot = os.path.join(results_dir, "plots", f"compare_{tag}.png")
  if compare_plot(tag, recs, plot):
    paths.append(plot)
  return paths


def _write_text(path: str, text: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def regenerate(results_dir: str = DEFAULT_DIR) -> list[str]:
  """Writes every table, plot and the index; returns the written paths (sorted)."""
  recs = load_results(results_dir)
  groups: dict[str, list[dict]] = {}
  for r in recs:
    groups.setdefault(group_of(r), []).append(r)
  written = []
  index = ["# Experiment results\n",
           "Generated by `python -m experiments.report` from the JSON files in this folder "
           "(schema: shared/docs/results.md); do not edit. Every number in the project's "
           "documents comes from one of these files.\n", "## Result groups\n"]
  rows = []
  for g in sorted(groups):
    tpath = os.path.join(results_dir, "tables", f"{g}.md")
    _write_text(tpath, group_table(g, groups[g]))
    written.append(tpath)
    ppath = os.path.join(results_dir, "plots", f"{g}.png")
    has_plot = group_plot(g, groups[g], ppath)
    if has_plot:
      written.append(ppath)
    rows.append([g, str(len(groups[g])), f"[tables/{g}.md](tables/{g}.md)",
                 f"[plots/{g}.png](plots/{g}.png)" if has_plot else ""])
  index.append(_md_table(["group", "files", "table", "plot"], rows))
  curve_rows = []
  for r in groups.get("ablation", []):
    panels, title, threshold = plots.ablation_panels(r)
    if not any(curves for _, curves in panels):
      continue
    name = r["_file"][:-len(".json")]
    path = plots.curve_bands(os.path.join(results_dir, "plots", f"{name}.png"), panels, title,
                             threshold)
    written.append(path)
    curve_rows.append([f"[{r['_file']}]({r['_file']})", f"[plots/{name}.png](plots/{name}.png)"])
  if curve_rows:
    index.append("\n## Ablation learning curves (mean ± std over seeds)\n")
    index.append(_md_table(["result", "curves"], curve_rows))
  runs = retrieval_runs(recs)
  if runs:
    rpath = os.path.join(results_dir, "tables", "phoenix_retrieval_runs.md")
    _write_text(rpath, retrieval_table(runs))
    written.append(rpath)
    index.append("\n## Phoenix retrieval (protocol B), pooled over seeds\n")
    index.append("[tables/phoenix_retrieval_runs.md](tables/phoenix_retrieval_runs.md)\n")
  by_tag = _compare_by_tag(recs)
  if by_tag:
    index.append("\n## Model comparisons (protocol D)\n")
    crow = []
    for tag in sorted(by_tag):
      paths = write_compare_docs(tag, results_dir)
      written += paths
      crow.append([tag, ", ".join(r["protocol"] for r in by_tag[tag]),
                   f"[tables/compare_{tag}.md](tables/compare_{tag}.md)",
                   f"[plots/compare_{tag}.png](plots/compare_{tag}.png)" if len(paths) > 1
                   else ""])
    index.append(_md_table(["dataset", "protocols", "table", "plot"], crow))
  index.append("\n## Files\n")
  index.append(_md_table(["file", "dataset", "protocol", "model", "commit"],
                         [[f"[{r['_file']}]({r['_file']})", r.get("dataset", ""),
                           r.get("protocol", ""), r.get("model", ""),
                           _short_commit(r.get("commit"))] for r in recs]))
  readme = os.path.join(results_dir, "README.md")
  _write_text(readme, "\n".join(index))
  written.append(readme)
  return sorted(written)


def main(argv):
  del argv
  for p in regenerate(flags.FLAGS.results_dir):
    print(p)


if __name__ == "__main__":
  flags.DEFINE_string("results_dir", DEFAULT_DIR, "Folder of result JSON files.")
  app.run(main)
