"""The pipeline configs: every recipe parses, and the quoted best recipes are the configs of
the result files they are quoted with (files written under the earlier flat field names).
"""
import json
import pathlib

import pytest

from experiments.configs import phoenix_retrieval
from recsys_core import pipeline

RESULTS = pathlib.Path(__file__).parents[2] / "experiments" / "results"


def _old_names(cfg, steps_per_epoch: int) -> dict:
  """A pipeline config of Phoenix retrieval in the flat field names of the result files
  written by the earlier binary (experiments/train_phoenix_retrieval.py, until 2026-12)."""
  parsed = pipeline.parse(cfg)
  m = cfg.model
  steps = lambda epochs: int(round(epochs * steps_per_epoch)) if epochs else 0
  opt = {k: v for k, v in m.optimizer.to_dict().items()
         if k not in ("eps",) and not k.startswith("plateau")}
  opt.update(warmup_steps=steps(m.train.warmup_epochs), decay_steps=steps(m.train.decay_epochs))
  return {
      "author": m.author, "batch_size": m.train.batch_size,
      "checkpoint_every": steps(m.train.checkpoint_every_epochs),
      "dataset": parsed.data.name, "eval_every_epochs": m.train.eval_every_epochs,
      "eval_online_params": m.train.eval_online_params, "eval_users": cfg.protocol.eval_users,
      "ks": list(cfg.protocol.ks), "log_every": m.train.log_every,
      "max_train_seconds": m.train.max_seconds, "num_epochs": m.train.num_epochs,
      "optimizer": opt, "patience": m.train.patience,
      "selection_metric": cfg.protocol.selection_metric, "model": m.net.to_dict()}


@pytest.mark.parametrize("dataset,result_file", [
    ("beauty", "phoenix_retrieval_beauty_best_items14_seed2.json"),
    ("sports", "phoenix_retrieval_sports_best_cat2_cat1_cat3_valall_seed3.json"),
    ("ml1m", "phoenix_retrieval_ml1m_cpu_70ep_seed2.json"),
])
def test_best_retrieval_recipes_are_the_configs_of_their_result_files(dataset, result_file,
                                                                      tmp_path):
  """Every recorded field but the run's name, seed, data folder and baselines: the budget
  may be larger where the run stopped at its epoch count; a field added after the run must
  hold the behaviour before it (report.ADDED_CONFIG_FIELDS)."""
  from experiments import report
  result = json.loads((RESULTS / result_file).read_text())
  recorded = report.with_added_fields(result["config"])
  cfg = phoenix_retrieval.get_config(f"dataset={dataset},recipe=best")
  cfg.data.dir = str(tmp_path)  # parse checks that the folder exists; nothing is read
  mine = _old_names(cfg, result["steps_per_epoch"])
  for key, value in mine.items():
    expected = recorded[key]
    if key == "max_train_seconds" and value != expected:
      assert result["stopped"] == "num_epochs" and value > expected, (value, expected)
      continue
    if key == "model":
      extra = set(value) - set(expected)  # fields added after the run: their default
      defaults = phoenix_retrieval.adapter.Config().net
      assert all(value[f] == getattr(defaults, f) for f in extra), extra
      value = {k: v for k, v in value.items() if k in expected}
    assert value == expected, (key, value, expected)


@pytest.mark.parametrize("arg", [
    "dataset=synthetic,recipe=quick", "dataset=synthetic,recipe=default",
    "dataset=ml1m,recipe=best", "dataset=beauty,recipe=best", "dataset=sports,recipe=best",
    "dataset=beauty,recipe=default", "dataset=file,recipe=default"])
def test_every_retrieval_recipe_parses(arg, tmp_path):
  cfg = phoenix_retrieval.get_config(arg)
  if "file" in arg:
    cfg.data.path = str(tmp_path)
  elif "synthetic" not in arg:
    cfg.data.dir = str(tmp_path)
  parsed = pipeline.parse(cfg)
  assert parsed.model_name == "phoenix_retrieval"
  assert cfg.name == "phoenix_retrieval_" + arg.replace("dataset=", "").replace(
      ",recipe=", "_")


def test_a_best_recipe_exists_only_for_its_datasets():
  with pytest.raises(ValueError, match="unknown recipe 'best' for dataset 'anime'"):
    phoenix_retrieval.get_config("dataset=anime,recipe=best")
  with pytest.raises(ValueError, match="expected key=value with key one of"):
    phoenix_retrieval.get_config("datset=beauty")
