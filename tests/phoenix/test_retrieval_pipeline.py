"""Phoenix retrieval through the pipeline (phoenix/retrieval/adapter.py): the epoch schedule
from the data, the time budget and resuming, the online-params record, and that it learns."""
import json

import pytest

from experiments.configs import phoenix_retrieval as configs
from phoenix.retrieval import adapter
from recsys_core import pipeline


def _quick(noise=0.0):
  cfg = configs.get_config("dataset=synthetic,recipe=quick")
  cfg.data.synthetic.noise = noise
  return cfg


def test_schedule_is_in_epochs_and_follows_the_data():
  tc = adapter.TrainConfig(batch_size=32, num_epochs=3.0, warmup_epochs=0.5,
                           eval_every_epochs=1.5)
  small, large = adapter.schedule(tc, 6), adapter.schedule(tc, 600)
  assert (small.num_steps, small.warmup_steps, small.eval_every) == (18, 3, 9)
  assert (large.num_steps, large.warmup_steps, large.eval_every) == (1800, 300, 900)
  assert large.decay_steps == 1800 - 300   # the cosine spans the rest of the run
  assert adapter.schedule(adapter.TrainConfig(warmup_epochs=0.001), 6).warmup_steps == 1


def test_small_data_rules_lengthen_the_run_spread_evaluations_and_size_the_average():
  tc = adapter.TrainConfig(num_epochs=50.0, min_steps=1500, num_evals=25, ema_fraction=0.1)
  tiny, big = adapter.schedule(tc, 3), adapter.schedule(tc, 174)
  assert (tiny.num_steps, tiny.eval_every) == (1500, 60)        # 50 epochs would be 150
  assert (big.num_steps, big.eval_every) == (8700, 348)          # 50 epochs already > 1500
  assert tiny.ema_decay == pytest.approx(1 - 1 / 150)            # horizon: 10% of the run
  assert big.ema_decay == pytest.approx(1 - 1 / 870)
  assert adapter.schedule(adapter.TrainConfig(), 3).ema_decay is None
  with pytest.raises(ValueError, match="model.optimizer.ema_decay=0.999: must be 0 when"):
    adapter.Config(optimizer=adapter.train_lib.OptimizerConfig(ema_decay=0.999),
                   train=adapter.TrainConfig(ema_fraction=0.1))


def test_step_counts_in_the_optimizer_are_refused():
  with pytest.raises(ValueError, match="model.optimizer.decay_steps=100: must be 0"):
    pipeline.parse(dict(_quick(), model=dict(_quick().model.to_dict(),
                                             optimizer={"decay_steps": 100})))


def test_learns_the_next_item_rule(tmp_path):
  record = pipeline.train_and_evaluate(_quick(), runs_root=str(tmp_path))
  # Item i is followed by i+1: popularity ranks it at chance (HR@10 ~ 10/40 at best).
  assert pipeline.test_metrics(record)["hr@10"] > 0.9
  assert record["model_info"]["stopped"] == "num_epochs"


def test_time_budget_stops_at_an_evaluation_and_a_rerun_finishes(tmp_path):
  """max_seconds is run-only: the same run folder resumes with a larger budget."""
  cfg = _quick(noise=0.3)
  cfg.model.train.max_seconds = 0.0  # past the budget at the first evaluation
  first = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path))
  info = first["model_info"]
  assert info["stopped"] == "time_budget"
  assert info["epochs"] == cfg.model.train.eval_every_epochs
  cfg.model.train.max_seconds = None
  again = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path))
  assert again["run_dir"] == first["run_dir"]
  assert again["model_info"]["stopped"] == "num_epochs"
  assert again["model_info"]["epochs"] == cfg.model.train.num_epochs
  evals = again["model_info"]["eval_history"]
  assert len(evals) == cfg.model.train.num_epochs / cfg.model.train.eval_every_epochs


def _evaluations(run_dir):
  lines = (run_dir / "train" / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if r["event"] == "eval"]


def test_eval_online_params_only_adds_the_online_record(tmp_path):
  """With a parameter average, eval_online_params also evaluates the online params
  (online_<key>); without it the averaged params' metrics and the selection are the same."""
  records, history = {}, {}
  for online in (True, False):
    cfg = _quick(noise=0.3)
    cfg.model.train.num_epochs = 8.0
    cfg.model.optimizer.ema_decay = 0.9
    cfg.model.train.eval_online_params = online
    cfg.name = f"online_{online}"
    records[online] = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path))
    history[online] = _evaluations(tmp_path / cfg.name)
  assert all("online_ndcg@10" in r for r in history[True])
  assert not any(k.startswith("online_") for r in history[False] for k in r)
  for a, b in zip(history[True], history[False]):
    assert a["ndcg@10"] == pytest.approx(b["ndcg@10"], abs=1e-6)
  assert records[True]["model_info"]["best_step"] == records[False]["model_info"]["best_step"]
  assert any(r["online_ndcg@10"] != r["ndcg@10"] for r in history[True])


def test_a_run_folder_serves_the_dataset_s_own_ids(tmp_path):
  """PhoenixRetriever.from_run: the selected params, config and item list of a run folder;
  its top-k equals the run's scorer on the same history, in the dataset's own ids."""
  import numpy as np
  from phoenix import inference
  from recsys_core import runs
  record = pipeline.train_and_evaluate(_quick(), runs_root=str(tmp_path))
  retriever = inference.PhoenixRetriever.from_run(record["run_dir"])
  items = runs.load_items(record["run_dir"])
  assert list(items) == list(range(1, 41))        # synthetic ids 1..40, not indices 0..39
  ids, scores = retriever.recommend(history=[5, 6, 7], k=3)
  assert ids[0] == 8                              # item i is followed by i+1
  assert list(scores) == sorted(scores, reverse=True) and not {5, 6, 7} & set(ids)
  with pytest.raises(ValueError, match="k=0: must be >= 1"):
    retriever.recommend(history=[5], k=0)
  with pytest.raises(FileNotFoundError, match="not a run folder"):
    inference.PhoenixRetriever.from_run(str(tmp_path))
  np.testing.assert_array_equal(items, np.arange(1, 41))


def test_a_user_file_brings_its_item_attributes_as_authors(tmp_path):
  """data.attributes_path: the columns model.author names become the author feature."""
  from recsys_core.data import synthetic
  events = tmp_path / "events.csv"
  rows = synthetic.example_events(num_users=60, num_items=60, seed=1)
  events.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, _, t in rows))
  attrs = tmp_path / "items.csv"
  attrs.write_text("item,taste\n" + "".join(f"{1000 + i},t{i // 10}\n" for i in range(60)))
  cfg = configs.get_config("dataset=file,recipe=quick")
  cfg.data.update(dict(path=str(events), user_col="user", item_col="item",
                       time_col="timestamp", attributes_path=str(attrs)))
  cfg.model.author = "taste"
  record = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path / "runs"))
  assert record["model_info"]["author_info"] == {"author": "taste", "unknown_fraction": 0.0}
  cfg.data.attributes_path = None
  with pytest.raises(ValueError, match="needs data.attributes_path"):
    pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path / "runs2"))
