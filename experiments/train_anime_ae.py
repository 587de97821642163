r"""Trains the two-head autoencoder and prints the seed's holdout tables and recommendations.

  python -m experiments.train_anime_ae --config experiments/configs/anime_ae.py:recipe=quick \
      --heldout_profiles=50
  python -m experiments.train_anime_ae --config experiments/configs/anime_ae.py:recipe=seed \
      --workdir runs/anime_ae_seed
  python -m experiments.train_anime_ae \
      --config experiments/configs/anime_ae.py:dataset=mlsmall,recipe=quick \
      --config.data.dir=../shared/data

The config is the pipeline config of the autoencoder (AE sections in config.model, e.g.
--config.model.train.steps=500; the dataset in config.data, read without its protocol
filters: see anime_ae/pipeline.py); the held-out profiles are this binary's own flags.
Writes <workdir>/train/{checkpoints/, metrics.jsonl} (recsys_core.train), <workdir>/model.npz
(for experiments/recommend_anime.py) and <workdir>/report.json. Re-running with the same
workdir resumes from the last checkpoint.
"""
from __future__ import annotations

from absl import app
from absl import flags
from ml_collections import config_flags

from anime_ae.pipeline import Holdout
from anime_ae.pipeline import train_and_report

_DEFAULTS = Holdout()
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiments/configs/anime_ae.py:dataset=<name>,recipe=<name>")
_WORKDIR = flags.DEFINE_string("workdir", None,
                               "Output folder (default runs/<config.name>_report).")
_HELDOUT = flags.DEFINE_integer("heldout_profiles", _DEFAULTS.profiles,
                                "Profiles kept out of training for the holdout tables.")
_SPLIT_SEED = flags.DEFINE_integer("split_seed", _DEFAULTS.split_seed,
                                   "Seed of the choice of the held-out profiles.")
_EXAMPLE = flags.DEFINE_integer("example_profile", _DEFAULTS.example_profile,
                                "Index among the held-out profiles of the example profile.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cfg = _CONFIG.value
  try:
    holdout = Holdout(profiles=_HELDOUT.value, split_seed=_SPLIT_SEED.value,
                      example_profile=_EXAMPLE.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  workdir = _WORKDIR.value or f"runs/{cfg.name}_report"
  train_and_report(cfg, workdir, holdout)
  print(f"\nmodel: {workdir}/model.npz  (python -m experiments.recommend_anime "
        f"--model {workdir}/model.npz --items ID:RATING,...)")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
