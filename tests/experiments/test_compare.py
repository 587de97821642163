"""experiments/compare.py and recsys_core.comparison: every model on the same split per
seed, each through the pipeline with its own recipe; own result files found by fingerprint."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import compare
from recsys_core import comparison
from recsys_core import pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _configs(models, seeds=(0, 1)):
  return {m: compare.model_configs("synthetic", m, list(seeds), None) for m in models}


def test_models_share_each_seeds_split_and_match_their_own_runs(tmp_path):
  runs_root, own = str(tmp_path / "runs"), tmp_path / "own"
  # A standalone run of EASE seed 1, published: the comparison must find it as an own run.
  cfg = compare.model_configs("synthetic", "ease:quick", [1], None)[0]
  own_record = pipeline.train_and_evaluate(cfg, str(tmp_path / "elsewhere"))
  pipeline.publish(own_record, str(own))
  record = comparison.run(_configs(["popularity", "ease:quick"]), name="c",
                          runs_root=runs_root, own_runs_dir=str(own))
  models = record["models"]
  assert set(models) == {"popularity", "ease:quick"}
  for m in models.values():
    assert m["seeds"] == [0, 1]
    assert m["split_fingerprints"] == record["split_fingerprints"]
  # The summary is over the seeds' runs, whose records are in their run folders.
  ease = models["ease:quick"]
  values = [json.load(open(os.path.join(d, "record.json")))["metrics"]["ndcg@10"]["mean"]
            for d in ease["run_dirs"]]
  assert record["metrics"]["ease:quick/ndcg@10"]["values"] == values
  assert ease["metrics"]["ndcg@10"]["mean"] == pytest.approx(np.mean(values))
  # The selected validation metrics sit beside the test ones (a choice is made on them).
  val = [json.load(open(os.path.join(d, "record.json")))["metrics"]["val/ndcg@10"]["mean"]
         for d in ease["run_dirs"]]
  assert ease["val_metrics"]["ndcg@10"]["values"] == val and val != values
  # Seed 1 found its own run (same config fingerprint, another name and folder); seed 0 none.
  assert ease["own_runs"][0] is None
  found = ease["own_runs"][1]
  assert found["file"] == f"{own_record['name']}.json"
  assert found["metrics"]["ndcg@10"] == pytest.approx(values[1])
  assert found["relative_difference"]["ndcg@10"] == pytest.approx(0.0, abs=1e-9)


def test_runs_on_different_splits_are_refused(tmp_path):
  configs = _configs(["popularity"], seeds=(0,))
  other = compare.model_configs("synthetic", "ease:quick", [0], None)
  other[0].data.synthetic.num_users = 150   # another dataset, hence another split
  with pytest.raises(ValueError, match="different splits"):
    comparison.run({**configs, "ease": other}, name="c", runs_root=str(tmp_path))


def test_binary_checks_everything_before_training(tmp_path):
  def run(*args):
    return subprocess.run([sys.executable, "-m", "experiments.compare", "--dataset=synthetic",
                           f"--runs_root={tmp_path}", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  bad = run("--models=popularity,no_such_model")
  assert bad.returncode != 0 and "experiments/configs/no_such_model.py" in bad.stderr
  assert not list(tmp_path.iterdir())          # nothing trained, no run folder
  bad = run("--models=ease:nope")
  assert bad.returncode != 0 and "unknown recipe 'nope'" in bad.stderr
  ok = run("--models=popularity,ease:quick", "--seeds=0", f"--results_dir={tmp_path}/res")
  assert ok.returncode == 0, ok.stderr
  assert "ease:quick" in ok.stdout and "popularity" in ok.stdout
  again = run("--models=popularity", "--seeds=0", f"--results_dir={tmp_path}/res")
  assert again.returncode != 0 and "pass --overwrite" in again.stderr


def test_a_reference_file_gives_each_seed_its_own_run_value(tmp_path):
  """--references: a result file with one value per seed (another binary's, without a
  fingerprint) is matched seed by seed, and the largest gap is what the table shows."""
  configs = _configs(["popularity"], seeds=(0, 1))
  first = comparison.run(configs, name="c", runs_root=str(tmp_path / "runs"))
  got = first["models"]["popularity"]["metrics"]["ndcg@10"]["values"]
  ref = {"seeds": [1, 0], "metrics": {"ndcg@10": {"values": [got[1] * 1.02, got[0]]}}}
  path = tmp_path / "ref.json"
  path.write_text(json.dumps(ref))
  record = comparison.run(configs, name="c", runs_root=str(tmp_path / "runs"),
                          references={"popularity": str(path)})
  own = record["models"]["popularity"]["own_runs"]
  assert [o["metrics"]["ndcg@10"] for o in own] == pytest.approx([got[0], got[1] * 1.02])
  assert own[0]["relative_difference"]["ndcg@10"] == pytest.approx(0.0)
  assert own[1]["relative_difference"]["ndcg@10"] == pytest.approx(1 / 1.02 - 1)
  gap = comparison.own_run_gap(record["models"]["popularity"], "ndcg@10")
  assert gap == pytest.approx(1 - 1 / 1.02)
  assert f"{gap:.2%}" in comparison.table(record, ["ndcg@10"])


def test_a_one_seed_leave_one_out_reference_stands_for_any_seed():
  ref = {"seeds": [0], "protocol": "leave_one_out", "metrics": {"hr@10": {"values": [0.5]}}}
  assert comparison.reference_runs(ref, "f.json", 3)["metrics"] == {"hr@10": 0.5}
  strong = dict(ref, protocol="strong_generalization")
  assert comparison.reference_runs(strong, "f.json", 3) is None
