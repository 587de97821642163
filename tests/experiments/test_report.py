"""experiments/report.py: tables parse back to the JSON numbers, valid PNGs, idempotent."""
import os

import pytest

from experiments import report
from recsys_core import results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_fixtures(d):
  results.write_result(name="baseline_ease_toy_strong_generalization", dataset="toy",
                       protocol="strong_generalization", model="ease", config={"lambda": 1},
                       metrics={"recall@20": [0.41234, 0.45678], "ndcg@100": [0.3, 0.5]},
                       seeds=[0, 1], wall_seconds=1.5, results_dir=d)
  results.write_result(name="baseline_popularity_toy_strong_generalization", dataset="toy",
                       protocol="strong_generalization", model="popularity", config={},
                       metrics={"recall@20": 0.2, "ndcg@100": 0.1}, seeds=[0],
                       wall_seconds=0.5, results_dir=d)
  results.write_result(
      name="compare_toy_leave_one_out", dataset="toy", protocol="leave_one_out",
      model="comparison", config={"report_metrics": ["hr@10", "ndcg@10"]},
      metrics={"ease/hr@10": [0.25, 0.35], "ease/ndcg@10": [0.1, 0.2],
               "popularity/hr@10": [0.05], "popularity/ndcg@10": [0.02]},
      seeds=[0, 1], wall_seconds=3.0, results_dir=d,
      extra={"models": {"popularity": {"status": "ok", "seeds": [0], "fit_seconds": [0.1]},
                        "ease": {"status": "ok", "seeds": [0, 1], "fit_seconds": [1.0, 1.2]},
                        "phoenix_retrieval": {"status": "skipped", "reason": "no trainer"}}})


def test_tables_parse_back_to_json_and_plots_are_png(tmp_path):
  d = str(tmp_path)
  _write_fixtures(d)
  written = report.regenerate(d)
  recs = {r["name"]: r for r in report.load_results(d)}
  rows = report.parse_table((tmp_path / "tables" / "baseline.md").read_text())
  assert len(rows) == 2
  for row in rows:
    rec = recs[row["name"]]
    assert row["model"] == rec["model"]
    for key in ("recall@20", "ndcg@100"):
      mean, std = report.parse_cell(row[key])
      assert mean == pytest.approx(rec["metrics"][key]["mean"], abs=5e-5)
      assert std == pytest.approx(rec["metrics"][key]["std"], abs=5e-5)
  crow = {r["model"]: r for r in report.parse_table(
      (tmp_path / "tables" / "compare_toy.md").read_text())}
  assert report.parse_cell(crow["ease"]["hr@10"]) == pytest.approx((0.3, 0.05), abs=5e-5)
  assert crow["phoenix_retrieval"]["status"] == "skipped: no trainer"
  for name in ("baseline.png", "compare.png", "compare_toy.png"):
    path = os.path.join(d, "plots", name)
    assert path in written
    data = open(path, "rb").read()
    assert data[:8] == PNG_MAGIC and len(data) > 1000
  index = (tmp_path / "README.md").read_text()
  assert "tables/baseline.md" in index and "plots/compare_toy.png" in index


def test_idempotent(tmp_path):
  d = str(tmp_path)
  _write_fixtures(d)
  first = report.regenerate(d)
  before = {p: open(p, "rb").read() for p in first}
  second = report.regenerate(d)
  assert first == second
  for p in second:
    assert open(p, "rb").read() == before[p], p


def test_broken_json_names_the_file(tmp_path):
  (tmp_path / "bad.json").write_text("{")
  with pytest.raises(ValueError, match="bad.json"):
    report.load_results(str(tmp_path))


def test_ablation_curves_are_redrawn_from_both_result_layouts(tmp_path):
  from experiments import plots
  d = str(tmp_path)
  # ablate_anime_ae layout: summaries at the top level.
  results.write_result(
      name="ablation_ae_toy", dataset="toy", protocol="strong_generalization",
      model="anime_ae", config={}, metrics={"on/ndcg@100": [0.3, 0.32]}, seeds=[0, 1],
      wall_seconds=1.0, results_dir=d,
      extra={"curve_metric": "ndcg@100", "runs": {"on": [{}, {}]},
             "curves": {"on": {"steps": [50, 100], "mean": [0.2, 0.3], "std": [0.01, 0.02],
                               "n": 2}}})
  # ablate_phoenix layout: per-seed curves under runs.
  runs = {"a": [{"curves": {"step": [0, 10], "auc": [0.5, 0.7]}},
                {"curves": {"step": [0, 10], "auc": [0.5, 0.9]}}]}
  results.write_result(
      name="ablation_phoenix_toy", dataset="toy", protocol="ranking", model="phoenix_ranking",
      config={}, metrics={"a/final_val_auc": [0.7, 0.9]}, seeds=[0, 1], wall_seconds=1.0,
      results_dir=d, extra={"runs": runs,
                            "comparison": {"primary_metric": "auc", "threshold": 0.6}})
  recs = {r["name"]: r for r in report.load_results(d)}
  panels, _, threshold = plots.ablation_panels(recs["ablation_phoenix_toy"])
  curve = panels[0][1]["a"]
  assert curve["steps"] == [0, 10] and curve["n"] == 2 and threshold == 0.6
  assert curve["mean"] == pytest.approx([0.5, 0.8]) and curve["std"] == pytest.approx([0, 0.1])
  panels, _, _ = plots.ablation_panels(recs["ablation_ae_toy"])
  assert panels[0][1]["on"]["mean"] == [0.2, 0.3]
  written = report.regenerate(d)
  for name in ("ablation_ae_toy", "ablation_phoenix_toy"):
    path = os.path.join(d, "plots", f"{name}.png")
    assert path in written
    with open(path, "rb") as f:
      assert f.read(8) == PNG_MAGIC
  assert "plots/ablation_phoenix_toy.png" in (tmp_path / "README.md").read_text()


def _retrieval_run(d, tag, seed, hr, lr=1e-3, stopped="num_epochs", baselines=True,
                   online=None, **optimizer):
  fitted = {"popularity/hr@10": 0.01, "ease/hr@10": 0.1, "ease/ndcg@10": 0.05}
  extra_config = {} if online is None else {"eval_online_params": online}
  results.write_result(
      name=f"phoenix_retrieval_{tag}", dataset="ml-1m", protocol="leave_one_out",
      model="phoenix_retrieval",
      config={"seed": seed, "tag": tag, "data_dir": f"/data{seed}", "max_train_seconds": 10 * seed,
              "baselines": baselines, "optimizer": {"learning_rate": lr, **optimizer},
              **extra_config},
      metrics={"hr@10": hr, "ndcg@10": hr / 2, "val/ndcg@10": hr / 3,
               **(fitted if baselines else {})},
      seeds=[seed], wall_seconds=1.0, results_dir=d,
      extra={"epochs": 10.0, "best_epoch": 4.0, "train_seconds": 5.0, "stopped": stopped})


def test_retrieval_runs_pool_seeds_of_one_recipe(tmp_path):
  d = str(tmp_path)
  _retrieval_run(d, "a", 0, 0.30)
  _retrieval_run(d, "a_seed1", 1, 0.32, stopped="time_budget")
  _retrieval_run(d, "b", 0, 0.20, lr=2e-3)  # another recipe: its own row
  results.write_result(name="ablation_phoenix_retrieval", dataset="ml-1m",
                       protocol="leave_one_out", model="phoenix_retrieval", config={},
                       metrics={"hr@10": 0.9}, seeds=[0], wall_seconds=1.0, results_dir=d)
  report.regenerate(d)
  rows = report.parse_table((tmp_path / "tables" / "phoenix_retrieval_runs.md").read_text())
  assert [r["files"] for r in rows] == ["a, a_seed1", "b"]  # best recipe first; ablation out
  assert rows[0]["n"] == "2"
  assert report.parse_cell(rows[0]["hr@10"]) == pytest.approx((0.31, 0.01), abs=5e-5)
  assert report.parse_cell(rows[0]["ndcg@10"]) == pytest.approx((0.155, 0.005), abs=5e-5)
  assert rows[0]["epochs"] == "4/10 4/10 (time)"
  assert float(rows[1]["hr@10"]) == pytest.approx(0.2)
  assert rows[0]["reference (hr@10 / ndcg@10)"].endswith("0.3152 / 0.1821")


def test_runs_recorded_before_a_config_field_existed_pool_with_its_default(tmp_path):
  d = str(tmp_path)
  _retrieval_run(d, "old", 0, 0.30)                        # written before ema_decay existed
  _retrieval_run(d, "new_seed1", 1, 0.32, ema_decay=0.0)   # the default: the same recipe
  _retrieval_run(d, "ema", 0, 0.34, ema_decay=0.999)       # another recipe
  report.regenerate(d)
  rows = report.parse_table((tmp_path / "tables" / "phoenix_retrieval_runs.md").read_text())
  assert sorted(r["files"] for r in rows) == ["ema", "new_seed1, old"]


def test_evaluating_the_online_params_too_does_not_split_a_pool(tmp_path):
  """eval_online_params only adds a record (selection and test use the average), so runs
  with it on, off or from before it existed pool; a real recipe change still splits."""
  d = str(tmp_path)
  _retrieval_run(d, "a", 0, 0.30, ema_decay=0.999)                        # before the field
  _retrieval_run(d, "a_seed1", 1, 0.32, online=False, ema_decay=0.999)
  _retrieval_run(d, "a_seed2", 2, 0.31, online=True, ema_decay=0.999)
  _retrieval_run(d, "b", 0, 0.20, online=False, ema_decay=0.99)
  report.regenerate(d)
  rows = report.parse_table((tmp_path / "tables" / "phoenix_retrieval_runs.md").read_text())
  assert [r["files"] for r in rows] == ["a, a_seed1, a_seed2", "b"]
  assert "whether the online params were evaluated too" in (
      tmp_path / "tables" / "phoenix_retrieval_runs.md").read_text()


def test_a_run_without_baselines_pools_with_its_seeds_and_shows_their_baselines(tmp_path):
  d = str(tmp_path)
  _retrieval_run(d, "a", 0, 0.30, baselines=False)  # first in the pool, no baselines fitted
  _retrieval_run(d, "a_seed1", 1, 0.32)
  _retrieval_run(d, "b", 0, 0.20, lr=2e-3, baselines=False)
  report.regenerate(d)
  rows = report.parse_table((tmp_path / "tables" / "phoenix_retrieval_runs.md").read_text())
  assert [r["files"] for r in rows] == ["a, a_seed1", "b"]
  assert [r["ease hr@10"] for r in rows] == ["0.1000", "not run"]
  assert rows[0]["popularity hr@10"] == "0.0100"


def test_machine_description_names_the_cpu_model_and_the_report_still_reads_it(tmp_path):
  info = tmp_path / "cpuinfo"
  info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654\n")
  assert results.cpu_model(str(info)) == "AMD EPYC 9654"
  assert results.cpu_model(str(tmp_path / "missing")) == results.platform.processor()
  cpu = results.cpu_model()
  assert (f"({cpu}), Python" in results.machine_description()) == bool(cpu)
  # The device column is unchanged by the CPU model in parentheses.
  assert report._device("2-core x86_64 Linux (AMD EPYC 9654), Python 3.11.7, jax 0.10.2 on "
                        "1x cpu") == "2-core cpu"
  assert report._device("16-core x86_64 Linux (AMD EPYC), Python 3.11.7, jax 0.10.2 on 1x "
                        "NVIDIA H100 80GB HBM3") == "NVIDIA H100 80GB HBM3"
