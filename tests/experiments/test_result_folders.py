"""The binaries' result folders and argument checks (the reliability issue, items 1-4).

1. Result files go to runs/results/ under the working directory unless a folder is named;
   an existing file is never replaced without --overwrite, checked before any work; a bench
   smoke config (`:tiny`) never takes the recorded run's name.
2. `--help` lists each binary's own flags (also those defined in experiments/common.py).
3. recommend_anime: --top_k below 1 and a --model that is not an autoencoder model file are
   clear errors.
4. eval_baselines: a bad config.batch_size or an empty --seeds is refused before any data
   is loaded, naming the field or flag.
"""
import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

from experiments import common
from experiments.configs import baselines as baselines_config
from recsys_core import results

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECORDED = os.path.join(ROOT, "experiments", "results", "bench_retrieval_loss_cpu.json")


def _binary(module: str, *args: str, cwd: str, timeout: int = 300):
  env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
             JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *args], cwd=cwd,
                        env=env, capture_output=True, text=True, timeout=timeout)


def _read(path):
  with open(path, "rb") as f:
    return f.read()


def test_1_results_go_to_runs_results_and_are_never_replaced_silently(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert results.DEFAULT_OUTPUT_DIR == os.path.join("runs", "results")
  kwargs = dict(dataset="toy", protocol="speed", model="m", config={}, metrics={"x": 1.0},
                seeds=[0], wall_seconds=0.1)
  path = results.write_result(name="probe", **kwargs)
  assert path == os.path.join("runs", "results", "probe.json") and os.path.isfile(path)
  with pytest.raises(FileExistsError, match="probe.json"):
    results.write_result(name="probe", **kwargs)
  # The shared check: a folder that cannot be written is refused naming the flag.
  (tmp_path / "a_file").write_text("")
  with pytest.raises(ValueError, match="--out_dir='a_file/sub'"):
    results.ResultFolder("a_file/sub", flag="--out_dir")
  results.write_result(name="probe", results_dir="record", **kwargs)
  folder = results.ResultFolder("record")
  with pytest.raises(FileExistsError, match=r"record/probe.json exists.*--overwrite"):
    folder.claim(["new", "probe"])
  assert folder.claim(["new"]) == [os.path.join("record", "new.json")]
  # A run rewrites its own files (after every seed) without --overwrite.
  assert folder.write_result(name="new", **kwargs) == folder.write_result(name="new", **kwargs)
  assert results.ResultFolder("record", overwrite=True).claim(["probe"])

  # A bench smoke run end to end. --nooverwrite: the flag exists (code without it stops at
  # flag parsing, before it could write into the checkout).
  recorded = _read(RECORDED)
  config = os.path.join(ROOT, "experiments", "configs", "bench_speed.py") + ":tiny"
  run = _binary("bench_retrieval_loss", "--config", config, "--nooverwrite",
                cwd=str(tmp_path))
  try:
    assert run.returncode == 0, run.stderr[-3000:]
    written = os.path.join("runs", "results", "bench_retrieval_loss_cpu_tiny.json")
    assert f"wrote {written}" in run.stdout
    with open(tmp_path / written) as f:
      assert json.load(f)["config"]["num_items"] == 300
    # Again: refused before any work (no benchmark round ran), naming the file.
    again = _binary("bench_retrieval_loss", "--config", config, cwd=str(tmp_path))
    assert again.returncode != 0 and "round 0" not in again.stdout
    assert f"{written} exists" in again.stderr and "--overwrite" in again.stderr
    # The recorded run's name is refused for the smoke config, even in another folder.
    named = _binary("bench_retrieval_loss", "--config", config, "--results_dir", "record",
                    "--name", "bench_retrieval_loss_cpu", cwd=str(tmp_path))
    assert named.returncode != 0 and "recorded run's name" in named.stderr
    assert not os.path.exists(tmp_path / "record" / "bench_retrieval_loss_cpu.json")
  finally:
    assert _read(RECORDED) == recorded, "the tracked result file was rewritten"


BINARIES = {
    "train": ("config", "runs_root", "results_dir", "overwrite"),
    "compare": ("dataset", "models", "seeds", "results_dir", "overwrite"),
    "eval_baselines": ("config", "data_dir", "seeds", "out_dir", "overwrite"),
    "eval_anime_ae": ("config", "datasets", "parts", "out_dir", "overwrite"),
    "ablate_anime_ae": ("config", "ablations", "seeds", "out_dir", "overwrite"),
    "ablate_phoenix": ("config", "ablations", "seeds", "out_dir", "overwrite"),
    "train_phoenix_ranking": ("config", "data_dir", "workdir", "results_dir", "overwrite",
                              "no_result"),
    "bench_ae_flops": ("config", "name", "results_dir", "overwrite"),
    "bench_input_pipeline": ("config", "name", "results_dir", "overwrite"),
    "bench_retrieval_topk": ("config", "name", "results_dir", "overwrite"),
    "bench_retrieval_loss": ("config", "name", "results_dir", "overwrite"),
    "bench_phoenix": ("config", "name", "results_dir", "overwrite", "no_result"),
    "bench_scaling": ("devices", "name", "results_dir", "overwrite"),
    "recommend_anime": ("model", "items", "top_k"),
}


@pytest.mark.parametrize("module", sorted(BINARIES))
def test_2_help_lists_the_binarys_own_flags(module, tmp_path):
  run = _binary(module, "--help", cwd=ROOT, timeout=120)  # absl exits 1 after --help
  text = run.stdout + run.stderr
  assert f"experiments/{module}.py:" in text, text[-3000:]
  section = text[text.index(f"experiments/{module}.py:"):]
  listed = {line.split(":")[0].strip().replace("[no]", "")[2:]
            for line in section.splitlines() if line.startswith("  --")}
  missing = [f for f in BINARIES[module] if f not in listed]
  assert not missing, f"--help of {module} does not list {missing}:\n{text[-3000:]}"


def test_3_recommend_anime_refuses_bad_top_k_and_files_that_are_not_models(tmp_path):
  from experiments import recommend_anime
  top_k = flags.FLAGS["top_k"]
  for value in ("0", "-5"):
    with pytest.raises(flags.IllegalFlagValueError, match=rf"--top_k={value}: .*positive"):
      top_k.parse(value)
  assert top_k.parser.parse("1") == 1 and top_k.value is None

  from anime_ae.config import AEConfig
  from anime_ae.ratings import RatingTransform
  from anime_ae.trained import TrainedAE
  from recsys_core.train import save_params
  not_a_model = "not an autoencoder model saved by experiments/train_anime_ae.py"
  # A training checkpoint (params only, its own config as metadata), a ratings CSV, a .npy.
  ckpt = save_params(str(tmp_path / "best_params.npz"), {"phoenix": {"w": np.zeros(3)}},
                     {"config": {"model": {"emb_size": 8}}})
  csv_path = tmp_path / "ratings.csv"
  csv_path.write_text("user_id,item_id,rating\n1,2,9\n")
  npy = tmp_path / "x.npy"
  np.save(npy, np.zeros(3))
  for path in (ckpt, str(csv_path), str(npy)):
    with pytest.raises(recommend_anime.ModelFileError, match=not_a_model):
      recommend_anime.load_model(path)
  with pytest.raises(recommend_anime.ModelFileError, match="no such file"):
    recommend_anime.load_model(str(tmp_path / "missing.npz"))
  # What train_anime_ae writes passes the check and loads.
  model = TrainedAE(AEConfig(), {"enc": {"w": np.ones((2, 2), np.float32)}},
                    RatingTransform(), np.arange(5), dataset="anime")
  path = model.save(str(tmp_path / "model.npz"))
  recommend_anime.check_model_file(path)
  assert recommend_anime.load_model(path).item_ids.tolist() == [0, 1, 2, 3, 4]


def test_4_eval_baselines_checks_batch_size_and_seeds_before_loading(tmp_path):
  from experiments import eval_baselines  # its flags are defined only when it runs
  cfg = baselines_config.get_config("anime")
  assert eval_baselines.check_run(cfg) == [0, 1, 2, 3, 4]
  assert eval_baselines.check_run(cfg, ["3", "1"]) == [3, 1]
  for bad in (-1, 0):
    cfg.batch_size = bad
    with pytest.raises(ValueError, match=rf"config.batch_size={bad}: must be an integer >= 1"):
      eval_baselines.check_run(cfg)
  cfg.batch_size = 100
  for seeds, match in (([], r"--seeds=\[\]: give one or more seeds"),
                       (["-1"], "--seeds"), (["x"], "--seeds")):
    with pytest.raises(ValueError, match=match):
      eval_baselines.check_run(cfg, seeds)
  with pytest.raises(ValueError, match="config.seeds"):
    common.parse_seeds(None, ())
  # The binary: refused before the (missing) data is looked for.
  config = os.path.join(ROOT, "experiments", "configs", "baselines.py") + ":ml100k"
  run = _binary("eval_baselines", "--config", config, "--seeds=",
                "--data_dir", str(tmp_path / "no_data"), cwd=str(tmp_path), timeout=120)
  assert run.returncode != 0 and "--seeds=[]: give one or more seeds" in run.stderr
  run = _binary("eval_baselines", "--config", config, "--config.batch_size=0",
                "--data_dir", str(tmp_path / "no_data"), cwd=str(tmp_path), timeout=120)
  assert run.returncode != 0 and "config.batch_size=0" in run.stderr
  assert not os.path.exists(tmp_path / "runs")
