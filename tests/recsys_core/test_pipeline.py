"""recsys_core.pipeline and experiments/train.py: config -> run folder -> data -> fit -> test.

Tested:
  * EASE under leave-one-out on a user CSV: the record's test metrics equal an independent
    computation (tables + splits + baselines.EASE + evaluation, and a plain-numpy rank for
    HR/NDCG/MRR), and the selected λ is the grid value with the best validation NDCG@10;
  * popularity under strong generalisation on a CSV: the same against an independent split;
  * rerunning a config resumes its folder; a changed model.l2_grid is refused, naming it;
  * `parse` rejects bad configs (unknown model/key, data.name="file" without a path, empty
    ks) before any data is read or a run folder is made;
  * `publish` writes <dir>/<name>.json and refuses to replace it without overwrite=True;
  * the binary prints the test metrics, writes runs_root/<name>/record.json, and refuses an
    existing result file before training.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from recsys_core import baselines
from recsys_core import evaluation
from recsys_core import pipeline
from recsys_core import runs
from recsys_core import splits
from recsys_core.data import source
from recsys_core.data import tables

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOO_KS = (5, 10, 20)
GRID = (0.5, 300.0)


def _write_csv(path, num_users, num_items, min_len, max_len, seed):
  """Sequences that mostly step to the next item (so that EASE learns something), with
  random jumps; no repeated item per user; rows written in shuffled order with timestamps."""
  rng = np.random.default_rng(seed)
  rows = []
  for u in range(num_users):
    n = int(rng.integers(min_len, max_len + 1))
    cur, seq = int(rng.integers(num_items)), []
    while len(seq) < n:
      if cur not in seq:
        seq.append(cur)
      cur = int(rng.integers(num_items)) if rng.random() < 0.3 else (cur + 1) % num_items
    t0 = int(rng.integers(1_600_000_000, 1_700_000_000))
    rows += [(700 + 3 * u, 50 + i, t0 + 60 * j) for j, i in enumerate(seq)]
  rows = [rows[i] for i in rng.permutation(len(rows))]
  with open(path, "w") as f:
    f.write("user_id,item_id,timestamp\n")
    f.writelines(f"{u},{i},{t}\n" for u, i, t in rows)
  return str(path)


@pytest.fixture
def loo_csv(tmp_path):
  return _write_csv(tmp_path / "events.csv", 60, 30, 4, 9, seed=1)


@pytest.fixture
def strong_csv(tmp_path):
  return _write_csv(tmp_path / "baskets.csv", 80, 40, 6, 12, seed=2)


def _ease_config(csv, l2_grid=GRID, **protocol):
  return {"name": "ease_loo", "seed": 0,
          "data": {"name": "file", "path": csv, "time_col": "timestamp"},
          "protocol": {"name": "leave_one_out", "ks": list(LOO_KS), **protocol},
          "model": {"name": "ease", "l2_grid": list(l2_grid)}}


def _assert_metrics_equal(got, want, keys):
  assert sorted(got) == sorted(keys)
  for key in keys:
    assert got[key] == pytest.approx(want[key], abs=1e-6), key


# ----------------------------------------------------------------------------------------
# (1) EASE, leave-one-out


def _numpy_loo_metrics(scorer, inputs, targets, ks):
  """HR@k, NDCG@k, MRR from the scorer's scores with seen items removed, plain numpy."""
  users = np.flatnonzero(targets >= 0)
  scores = np.asarray(scorer.score(inputs), np.float64)
  seen = np.zeros(scores.shape, bool)
  seen[inputs.users, inputs.items] = True
  ranks = []
  for u in users:
    t = targets[u]
    others = ~seen[u]
    others[t] = False
    higher = np.sum(scores[u][others] > scores[u, t])
    assert not np.any(scores[u][others] == scores[u, t]), "ties: pick other data"
    ranks.append(1 + higher)
  ranks = np.array(ranks, np.float64)
  out = {"mrr": float(np.mean(1.0 / ranks))}
  for k in ks:
    out[f"hr@{k}"] = float(np.mean(ranks <= k))
    out[f"ndcg@{k}"] = float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1), 0.0)))
  return out


def test_ease_leave_one_out_matches_independent_computation(tmp_path, loo_csv):
  record = pipeline.train_and_evaluate(_ease_config(loo_csv), runs_root=str(tmp_path / "runs"))

  x = tables.load_interaction_table(loo_csv, time_col="timestamp")
  s = splits.leave_one_out_split(x)
  val = {l2: evaluation.evaluate_leave_one_out(baselines.EASE(l2).fit(s.train), s.train,
                                               s.val_targets, ks=LOO_KS)
         for l2 in GRID}
  ndcg = [val[l2]["ndcg@10"] for l2 in GRID]
  assert ndcg[0] != ndcg[1], "the grid should not tie: pick other data or values"
  best = GRID[int(np.argmax(ndcg))]
  assert record["model_info"]["l2"] == best
  for l2 in GRID:
    assert record["model_info"]["val_grid"][f"{l2:g}"] == pytest.approx(val[l2]["ndcg@10"],
                                                                         abs=1e-6)

  model = baselines.EASE(best).fit(s.train)
  test = evaluation.evaluate_leave_one_out(model, s.test_inputs, s.test_targets, ks=LOO_KS)
  keys = [f"{m}@{k}" for m in ("hr", "ndcg") for k in LOO_KS] + ["mrr"]
  got = pipeline.test_metrics(record)
  _assert_metrics_equal(got, test, keys)
  _assert_metrics_equal(got, _numpy_loo_metrics(model, s.test_inputs, s.test_targets, LOO_KS),
                        keys)
  assert record["num_test_users"] == test["num_users"] == int(np.sum(s.test_targets >= 0))
  for key in keys:
    assert record["metrics"][f"val/{key}"]["mean"] == pytest.approx(val[best][key], abs=1e-6)

  assert record["protocol"] == "leave_one_out" and record["model"] == "ease"
  assert record["dataset"] == "events"
  assert record["data_stats"] == {"users": 60, "items": 30, "train_interactions": len(s.train)}
  assert record["run_dir"] == str(tmp_path / "runs" / "ease_loo")
  with open(os.path.join(record["run_dir"], runs.RECORD_FILE)) as f:
    assert json.load(f)["metrics"] == json.loads(json.dumps(record["metrics"]))


def test_ease_selection_follows_the_selection_metric(tmp_path, loo_csv):
  """With another selection metric the λ is the argmax of that metric (first on ties)."""
  cfg = _ease_config(loo_csv, selection_metric="hr@5")
  record = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path / "runs"))
  s = splits.leave_one_out_split(tables.load_interaction_table(loo_csv, time_col="timestamp"))
  hr5 = [evaluation.evaluate_leave_one_out(baselines.EASE(l2).fit(s.train), s.train,
                                           s.val_targets, ks=LOO_KS)["hr@5"] for l2 in GRID]
  assert record["model_info"]["l2"] == GRID[int(np.argmax(hr5))]


# ----------------------------------------------------------------------------------------
# (2) popularity, strong generalisation


def test_popularity_strong_generalization_matches_independent_computation(tmp_path,
                                                                          strong_csv):
  cfg = {"name": "pop_strong", "seed": 0, "data": {"name": "file", "path": strong_csv},
         "protocol": {"name": "strong_generalization", "ks": [5, 10], "seed": 3,
                      "selection_metric": "ndcg@10"},
         "model": {"name": "popularity"}}
  record = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path / "runs"))

  x = tables.load_interaction_table(strong_csv)
  s = splits.strong_generalization_split(x, seed=3, target_fraction=0.2)
  assert s.n_heldout_users == 8
  pop = baselines.Popularity().fit(s.train)
  # The popularity counts themselves: distinct training users per item.
  counts = np.zeros(s.train.num_items)
  for u, i in set(zip(s.train.users.tolist(), s.train.items.tolist())):
    counts[i] += 1
  np.testing.assert_array_equal(pop.counts, counts)
  keys = ["recall@5", "recall@10", "ndcg@5", "ndcg@10"]
  test = evaluation.evaluate_strong_generalization(pop, s.test_inputs, s.test_targets,
                                                   ks=(5, 10))
  val = evaluation.evaluate_strong_generalization(pop, s.val_inputs, s.val_targets,
                                                  ks=(5, 10))
  _assert_metrics_equal(pipeline.test_metrics(record), test, keys)
  for key in keys:
    assert record["metrics"][f"val/{key}"]["mean"] == pytest.approx(val[key], abs=1e-6)
  assert record["num_test_users"] == test["num_users"] == 8
  assert record["protocol"] == "strong_generalization"


# ----------------------------------------------------------------------------------------
# (3) resume and changed configs


def test_rerun_resumes_and_changed_grid_is_refused(tmp_path, loo_csv):
  root = str(tmp_path / "runs")
  first = pipeline.train_and_evaluate(_ease_config(loo_csv), runs_root=root)
  config_path = os.path.join(first["run_dir"], runs.CONFIG_FILE)
  with open(config_path) as f:
    stored = f.read()
  second = pipeline.train_and_evaluate(_ease_config(loo_csv), runs_root=root)
  assert second["run_dir"] == first["run_dir"]
  assert second["fingerprint"] == first["fingerprint"]
  assert second["metrics"] == first["metrics"]
  with open(config_path) as f:
    assert f.read() == stored
  # A run-only field (batch size) resumes the same folder too.
  third = pipeline.train_and_evaluate(_ease_config(loo_csv, batch_size=7), runs_root=root)
  assert third["run_dir"] == first["run_dir"]
  assert pipeline.test_metrics(third) == pytest.approx(pipeline.test_metrics(first), abs=1e-6)

  record_path = os.path.join(first["run_dir"], runs.RECORD_FILE)
  before = os.stat(record_path).st_mtime_ns
  changed = _ease_config(loo_csv, l2_grid=(0.5, 100.0))
  with pytest.raises(runs.ConfigChangedError) as e:
    pipeline.train_and_evaluate(changed, runs_root=root)
  msg = str(e.value)
  assert "model.l2_grid: [0.5, 300.0] -> [0.5, 100.0]" in msg
  assert [line.strip() for line in msg.splitlines() if line.startswith("  ")] == [
      "model.l2_grid: [0.5, 300.0] -> [0.5, 100.0]"]  # the one field that differs
  assert os.stat(record_path).st_mtime_ns == before

  fresh = pipeline.train_and_evaluate(changed, runs_root=root, on_change="new")
  assert fresh["run_dir"] == first["run_dir"] + "-2"
  assert fresh["model_info"]["val_grid"].keys() == {"0.5", "100"}


# ----------------------------------------------------------------------------------------
# (4) parse: errors before any data is read


@pytest.fixture
def no_reading(monkeypatch):
  """Makes reading data fail loudly: a config error must come first."""
  def fail(*args, **kwargs):
    raise AssertionError("data was read before the config was checked")
  monkeypatch.setattr(source, "read", fail)
  monkeypatch.setattr(source, "load", fail)
  monkeypatch.setattr(tables, "load_interaction_table", fail)


def _refused(cfg, root):
  with pytest.raises(ValueError) as e:
    pipeline.train_and_evaluate(cfg, runs_root=root)
  assert not os.path.exists(root), "a run folder was made before the config was checked"
  return str(e.value)


def test_parse_rejects_unknown_model_listing_builtins(tmp_path, no_reading):
  cfg = _ease_config(str(tmp_path / "missing.csv"))
  cfg["model"] = {"name": "eaze"}
  msg = _refused(cfg, str(tmp_path / "runs"))
  assert "model.name='eaze'" in msg
  for name in ("ease", "popularity", "anime_ae", "phoenix_retrieval"):
    assert f"'{name}'" in msg
  assert "data.path" not in msg


def test_parse_rejects_missing_dotted_model_module(tmp_path, no_reading):
  cfg = _ease_config(str(tmp_path / "missing.csv"))
  cfg["model"] = {"name": "no_such_package_xyz.model"}
  msg = _refused(cfg, str(tmp_path / "runs"))
  assert "model.name='no_such_package_xyz.model'" in msg


def test_parse_rejects_unknown_model_key(tmp_path, no_reading):
  cfg = _ease_config(str(tmp_path / "missing.csv"))
  cfg["model"]["l2_grd"] = [1.0]
  msg = _refused(cfg, str(tmp_path / "runs"))
  assert "model: unknown key(s) ['l2_grd']; known: ['l2_grid']" in msg


def test_parse_rejects_bad_model_value(tmp_path, no_reading, loo_csv):
  msg = _refused(_ease_config(loo_csv, l2_grid=()), str(tmp_path / "runs"))
  assert msg.startswith("model.l2_grid=()")


def test_parse_rejects_file_without_path(tmp_path, no_reading):
  cfg = _ease_config(None)
  del cfg["data"]["path"]
  msg = _refused(cfg, str(tmp_path / "runs"))
  assert msg.startswith("data.path=None: must be the interaction file")


def test_parse_rejects_missing_file(tmp_path, no_reading):
  missing = str(tmp_path / "missing.csv")
  msg = _refused(_ease_config(missing), str(tmp_path / "runs"))
  assert msg == f"data.path={missing!r}: must be an existing file or folder"


def test_parse_rejects_empty_ks(tmp_path, no_reading, loo_csv):
  cfg = _ease_config(loo_csv)
  cfg["protocol"]["ks"] = ()
  msg = _refused(cfg, str(tmp_path / "runs"))
  assert msg.startswith("protocol.ks=(): must be a non-empty list")


def test_parse_rejects_unknown_section_and_keys(tmp_path, no_reading, loo_csv):
  cfg = _ease_config(loo_csv)
  cfg["optimizer"] = {}
  assert "config: unknown key(s) ['optimizer']" in _refused(cfg, str(tmp_path / "runs"))
  cfg = _ease_config(loo_csv)
  cfg["data"]["time_column"] = "t"
  assert "data: unknown key(s) ['time_column']" in _refused(cfg, str(tmp_path / "runs"))
  cfg = _ease_config(loo_csv)
  cfg["model"] = {"l2_grid": [1.0]}
  assert "config.model.name is required" in _refused(cfg, str(tmp_path / "runs"))


def test_parse_types_every_section(loo_csv):
  parsed = pipeline.parse(_ease_config(loo_csv))
  assert parsed.name == "ease_loo" and parsed.model_name == "ease"
  assert parsed.model.l2_grid == GRID
  assert parsed.protocol.ks == LOO_KS
  assert parsed.data.path == loo_csv and parsed.data.time_col == "timestamp"
  assert parsed.run_only == pipeline.RUN_ONLY
  cfg = _ease_config(loo_csv)
  del cfg["name"]
  assert pipeline.parse(cfg).name == "ease_events"


# ----------------------------------------------------------------------------------------
# (5) publish


def test_publish_writes_and_refuses_to_overwrite(tmp_path):
  record = {"name": "my_run", "metrics": {"hr@10": {"mean": 0.5, "std": 0.0,
                                                    "values": [0.5]}}}
  res = tmp_path / "res"
  path = pipeline.publish(record, str(res))
  assert path == str(res / "my_run.json")
  with open(path) as f:
    assert json.load(f) == record
  other = dict(record, metrics={})
  with pytest.raises(FileExistsError) as e:
    pipeline.publish(other, str(res))
  assert path in str(e.value)
  with open(path) as f:
    assert json.load(f) == record
  assert pipeline.publish(other, str(res), overwrite=True) == path
  with open(path) as f:
    assert json.load(f) == other
  assert sorted(os.listdir(res)) == ["my_run.json"]


def test_test_metrics_leaves_out_validation():
  record = {"metrics": {"hr@5": {"mean": 0.25}, "val/hr@5": {"mean": 0.5},
                        "mrr": {"mean": 0.1}}}
  assert pipeline.test_metrics(record) == {"hr@5": 0.25, "mrr": 0.1}


# ----------------------------------------------------------------------------------------
# (6) the binary


def _train(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "experiments.train", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_binary_trains_publishes_and_refuses_to_overwrite(tmp_path, loo_csv):
  root, res = str(tmp_path / "runs"), str(tmp_path / "res")
  args = ["--config", "experiments/configs/ease.py:dataset=file,recipe=quick",
          f"--config.data.path={loo_csv}", "--config.data.time_col=timestamp",
          "--runs_root", root]
  out = _train(*args)
  assert out.returncode == 0, out.stderr[-3000:]
  lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
  assert len(lines) == 1, out.stdout
  printed = json.loads(lines[0])
  record_path = os.path.join(root, "ease_file_quick", runs.RECORD_FILE)
  with open(record_path) as f:
    record = json.load(f)
  test = pipeline.test_metrics(record)
  assert printed["model"] == "ease" and printed["dataset"] == "events"
  assert printed["test"] == {k: round(v, 4) for k, v in test.items()}
  # The quick recipe: EASE with λ=200 under leave-one-out with the default cut-offs.
  s = splits.leave_one_out_split(tables.load_interaction_table(loo_csv, time_col="timestamp"))
  ref = evaluation.evaluate_leave_one_out(baselines.EASE(200.0).fit(s.train), s.test_inputs,
                                          s.test_targets, ks=(5, 10, 20, 50))
  _assert_metrics_equal(test, ref, list(test))
  assert not os.path.exists(res)

  out = _train(*args, "--results_dir", res)
  assert out.returncode == 0, out.stderr[-3000:]
  published = os.path.join(res, "ease_file_quick.json")
  with open(published) as f:
    assert json.load(f)["metrics"] == record["metrics"]
  before = os.stat(record_path).st_mtime_ns
  with open(published) as f:
    published_text = f.read()

  out = _train(*args, "--results_dir", res)
  assert out.returncode != 0
  assert published in out.stderr and "--overwrite" in out.stderr
  assert os.stat(record_path).st_mtime_ns == before, "trained before refusing"
  with open(published) as f:
    assert f.read() == published_text


def test_resuming_on_changed_data_is_refused(tmp_path, loo_csv):
  """The config fingerprint cannot see a file's content: the split's fingerprint, stored in
  the run folder, does. Same config, other rows -> refused, the record left alone."""
  cfg = _ease_config(loo_csv)
  first = pipeline.train_and_evaluate(cfg, str(tmp_path / "runs"))
  before = open(os.path.join(first["run_dir"], "record.json")).read()
  with open(loo_csv) as f:
    lines = f.readlines()
  with open(loo_csv, "w") as f:
    f.writelines(lines[:-5])          # the same file name, fewer rows
  with pytest.raises(runs.ConfigChangedError, match="the data changed since this run began"):
    pipeline.train_and_evaluate(cfg, str(tmp_path / "runs"))
  assert open(os.path.join(first["run_dir"], "record.json")).read() == before
