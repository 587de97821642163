r"""Trains the two-head autoencoder and prints the seed's holdout tables and recommendations.

  python -m experiments.train_anime_ae --config experiments/configs/anime_ae.py:quick
  python -m experiments.train_anime_ae --config experiments/configs/anime_ae.py:full \
      --workdir runs/anime_ae_full
  python -m experiments.train_anime_ae --config experiments/configs/anime_ae.py:quick \
      --config.dataset=ml-latest-small --data_dir ../shared/data

Writes <workdir>/train/{checkpoints/, metrics.jsonl} (recsys_core.train), <workdir>/model.npz
(for experiments/recommend_anime.py) and <workdir>/report.json. Re-running with the same
workdir resumes from the last checkpoint.
"""
from __future__ import annotations

from absl import app
from absl import flags
from ml_collections import config_flags

from anime_ae.pipeline import train_and_report

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiments/configs/anime_ae.py:quick")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/anime_ae_<config>).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder of the dataset folders (shared/data); "
                                "not needed for the embedded anime data.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cfg = _CONFIG.value
  workdir = _WORKDIR.value or f"runs/anime_ae_{cfg.get('name', 'run')}_{cfg.dataset}"
  train_and_report(cfg, workdir, _DATA_DIR.value)
  print(f"\nmodel: {workdir}/model.npz  (python -m experiments.recommend_anime "
        f"--model {workdir}/model.npz --items ID:RATING,...)")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
