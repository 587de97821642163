"""experiments/run_gpu_retrieval.sh: side-by-side trainings, each with its own overrides."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_jobs_run_side_by_side_with_their_own_overrides(tmp_path):
  out = tmp_path / "out"
  quick = "synthetic/quick,--config.model.train.num_epochs=2"
  env = dict(os.environ, PYTHON=sys.executable, JOB_TIMEOUT="300")
  proc = subprocess.run(
      ["bash", "experiments/run_gpu_retrieval.sh", str(tmp_path / "no_data"), str(out),
       quick, quick + ",--config.model.net.loss=sampled,--config.model.net.num_negatives=8,"
       "--config.model.net.num_in_batch=4,--config.name=quick_sampled"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  results = {p: json.loads((out / "results" / p).read_text())
             for p in os.listdir(out / "results")}
  quick_name = "phoenix_retrieval_synthetic_quick"
  assert set(results) == {f"{quick_name}.json", "quick_sampled.json"}
  full, sampled = (results[f"{quick_name}.json"]["config"]["model"],
                   results["quick_sampled.json"]["config"]["model"])
  assert (full["net"]["loss"], sampled["net"]["loss"]) == ("full", "sampled")
  assert sampled["net"]["num_negatives"] == 8 and full["train"]["num_epochs"] == 2
  summary = (out / "summary.txt").read_text().splitlines()
  assert [line.split(":")[0] for line in summary] == [quick_name, "quick_sampled"]
  assert all('"test"' in line for line in summary)
  assert (out / "runs" / "quick_sampled" / "train" / "metrics.jsonl").exists()


def test_usage_error_without_jobs(tmp_path):
  proc = subprocess.run(["bash", "experiments/run_gpu_retrieval.sh", str(tmp_path)], cwd=ROOT,
                        capture_output=True, text=True, timeout=30)
  assert proc.returncode == 2 and "usage" in proc.stderr
