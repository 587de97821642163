"""experiments/train_phoenix_retrieval.run: the wall-clock budget stops training at an
evaluation and records it; running again on the same work folder continues to the end."""
import json

import pytest

from experiments import train_phoenix_retrieval
from experiments.configs import phoenix_retrieval as configs


def test_time_budget_stops_at_an_evaluation_and_a_rerun_finishes(tmp_path):
  cfg = configs.get_config("quick")
  cfg.baselines = False
  full = cfg.copy_and_resolve_references()
  cfg.max_train_seconds = 0.0  # past the budget at the first evaluation
  first = train_phoenix_retrieval.run(cfg, str(tmp_path / "w"), write=False)
  assert first["stopped"] == "time_budget"
  steps_per_eval = first["final_step"]
  assert first["epochs"] == cfg.eval_every_epochs  # stopped at the first evaluation
  again = train_phoenix_retrieval.run(full, str(tmp_path / "w"), write=False)
  assert again["stopped"] == "num_epochs"
  assert again["epochs"] == full.num_epochs
  # The rerun's evaluations continue from the first run's: one per eval_every_epochs.
  assert again["final_step"] == steps_per_eval * full.num_epochs / full.eval_every_epochs


def _evaluations(workdir):
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [r for r in records if r["event"] == "eval"]


def test_eval_online_params_only_adds_the_online_record(tmp_path):
  """With a parameter average, `eval_online_params` evaluates the online params as well
  (online_<key> records); switching it off drops that record and changes neither the
  averaged params' metrics nor the selected step."""
  cfg = configs.get_config("quick")
  cfg.baselines, cfg.num_epochs, cfg.optimizer.ema_decay = False, 4, 0.9
  runs, history = {}, {}
  for online in (True, False):
    cfg.eval_online_params = online
    runs[online] = train_phoenix_retrieval.run(cfg, str(tmp_path / str(online)), write=False)
    history[online] = _evaluations(tmp_path / str(online))
  with_online, without = history[True], history[False]
  assert len(with_online) == len(without) == cfg.num_epochs / cfg.eval_every_epochs
  assert all("online_ndcg@10" in r for r in with_online)
  assert not any(k.startswith("online_") for r in without for k in r)
  for a, b in zip(with_online, without):
    assert a["ndcg@10"] == pytest.approx(b["ndcg@10"], abs=1e-6)
  assert runs[True]["best_step"] == runs[False]["best_step"]
  assert runs[True]["test"]["ndcg@10"] == pytest.approx(runs[False]["test"]["ndcg@10"], abs=1e-6)
  # The online and averaged params differ, so the online record is a second evaluation.
  assert any(r["online_ndcg@10"] != r["ndcg@10"] for r in with_online)
