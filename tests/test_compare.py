"""experiments/compare_models.py on a tiny synthetic dataset through the real code path."""
import json

import numpy as np
import pytest

from experiments import compare_models
from experiments.configs import compare as compare_configs
from recsys_core import baselines
from recsys_core import evaluation


def _tiny(name, models, steps=3):
  cfg = compare_configs.get_config(name)
  cfg.models = models
  cfg.seeds = (0,)
  cfg.deep_seeds = 1
  cfg.anime_ae.train.steps = steps
  cfg.phoenix.steps = steps
  cfg.phoenix.optimizer.warmup_steps = 0
  return cfg


def test_all_models_same_split_and_ease_equals_direct(tmp_path):
  cfg = _tiny("tiny_a", ("popularity", "ease", "anime_ae", "phoenix_retrieval", "no_such"))
  out = compare_models.run_comparison(cfg, results_dir=str(tmp_path), write_docs=False)
  rec = json.loads((tmp_path / "compare_tiny_strong_generalization.json").read_text())
  models = rec["models"]
  # Unavailable models are reported, not dropped.
  assert models["no_such"]["status"] == "skipped"
  assert "no_such" in models["no_such"]["reason"]
  assert rec["skipped"] == {"no_such": models["no_such"]["reason"]}
  ran = [m for m in cfg.models if m != "no_such"]
  for m in ran:
    assert models[m]["status"] == "ok", m
    assert models[m]["seeds"] == [0]
    # Every model was fed the very split the run made for the seed.
    assert models[m]["split_fingerprints"] == rec["split_fingerprints"], m
    for k in cfg.report_metrics:
      v = rec["metrics"][f"{m}/{k}"]
      assert 0.0 <= v["mean"] <= 1.0 and len(v["values"]) == 1
  # EASE in the comparison = EASE evaluated directly on the same split with the same λ.
  x = compare_models.load_data(cfg, None)
  split = compare_models.make_split(x, cfg, 0)
  assert compare_models.fingerprint(split) == rec["split_fingerprints"][0]
  l2 = models["ease"]["details"][0]["lambda"]
  ease = baselines.EASE(l2=l2).fit(split.train)
  direct = evaluation.evaluate_strong_generalization(ease, split.test_inputs, split.test_targets,
                                                      ks=tuple(cfg.ks))
  for k in cfg.report_metrics:
    assert rec["metrics"][f"ease/{k}"]["mean"] == pytest.approx(direct[k], abs=1e-9)
  assert out["path"].endswith("compare_tiny_strong_generalization.json")


def test_fingerprint_changes_with_the_split():
  cfg = _tiny("tiny_a", ("popularity",))
  x = compare_models.load_data(cfg, None)
  a = compare_models.fingerprint(compare_models.make_split(x, cfg, 0))
  assert a == compare_models.fingerprint(compare_models.make_split(x, cfg, 0))
  assert a != compare_models.fingerprint(compare_models.make_split(x, cfg, 1))


def test_leave_one_out_baselines_and_docs(tmp_path):
  cfg = _tiny("tiny_b", ("popularity", "ease"))
  compare_models.run_comparison(cfg, results_dir=str(tmp_path), write_docs=True)
  rec = json.loads((tmp_path / "compare_tiny_leave_one_out.json").read_text())
  x = compare_models.load_data(cfg, None)
  split = compare_models.make_split(x, cfg, 0)
  pop = baselines.Popularity().fit(split.train)
  direct = evaluation.evaluate_leave_one_out(pop, split.test_inputs, split.test_targets,
                                             ks=tuple(cfg.ks))
  assert rec["metrics"]["popularity/hr@10"]["mean"] == pytest.approx(direct["hr@10"])
  assert np.isclose(rec["metrics"]["ease/mrr"]["values"][0],
                    rec["metrics"]["ease/mrr"]["mean"])
  table = (tmp_path / "tables" / "compare_tiny.md").read_text()
  assert "| ease |" in table
  png = (tmp_path / "plots" / "compare_tiny.png").read_bytes()
  assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
