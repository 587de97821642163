"""experiments/train_phoenix_retrieval.run: the wall-clock budget stops training at an
evaluation and records it; running again on the same work folder continues to the end."""
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
