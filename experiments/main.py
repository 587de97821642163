r"""The README's main job: train and evaluate on the embedded anime data, print recommendations.

  python -m experiments.main                 # what `make run` runs
  python -m experiments.main --workdir runs/main --ease_l2=500

1. Protocol A (strong generalisation, shared/docs/protocols.md) on the embedded anime
   subsample, one split seed: popularity, EASE and a quick autoencoder scored by the same
   evaluator on the same split (Recall@20, Recall@50, NDCG@100 on the test users).
2. The autoencoder (recipe=quick of experiments/configs/anime_ae.py) trained on the anime
   profiles with >= 30 ratings, 50 of them held out: the seed's holdout tables and the
   top-10 recommendations with explanations for an example profile.

Numbers printed here are a smoke-sized run; the reported results are the committed files in
experiments/results/ (see the README).
"""
from __future__ import annotations

import time

from absl import app
from absl import flags
from absl import logging

from anime_ae.config import AEConfig
from anime_ae.pipeline import Holdout
from anime_ae.pipeline import train_and_report
from anime_ae.scorer import AutoencoderScorer
from experiments.configs import anime_ae as anime_ae_config
from experiments.configs import baselines as baselines_config
from recsys_core import baselines, evaluation, splits
from recsys_core.data import filters, load_anime

_WORKDIR = flags.DEFINE_string("workdir", "runs/main",
                               "Output folder (checkpoints, model, report).")
_SEED = flags.DEFINE_integer("split_seed", 0, "Protocol-A split seed.")
_EASE_L2 = flags.DEFINE_float("ease_l2", 200.0, "EASE L2 regularisation (fixed: no grid here).")

_METRICS = ("recall@20", "recall@50", "ndcg@100")
_AE_CONFIG = "dataset=anime,recipe=quick"     # experiments/configs/anime_ae.py


def baseline_table(seed: int, ease_l2: float) -> str:
  """Protocol A on the embedded anime data: popularity, EASE and the quick autoencoder."""
  cfg = baselines_config.get_config("anime")
  x = filters.filter_by_rating(load_anime().interactions, cfg.rating_threshold)
  x = filters.reindex(filters.filter_min_interactions(x, min_user_interactions=cfg.min_user_items))
  split = splits.strong_generalization_split(x, seed=seed, target_fraction=cfg.target_fraction)
  ae_config = anime_ae_config.get_config(_AE_CONFIG)
  # Train on every protocol-A training user, as the baselines do (the quick recipe's profile
  # filter of >= 30 ratings is for the holdout tables of part 2).
  ae_config.model.data.min_ratings = 1
  ae = AEConfig.from_config_dict(ae_config.model)
  scorers = [baselines.Popularity(), baselines.EASE(l2=ease_l2),
             AutoencoderScorer(ae, name="anime_ae (quick)")]
  lines = [f"Protocol A on the anime subsample (rating > {cfg.rating_threshold:g} of 10, users "
           f">= {cfg.min_user_items} items), split seed {seed}: {split.train.num_users} train "
           f"users, {split.train.num_items} items",
           f"{'model':18s} " + " ".join(f"{m:>10s}" for m in _METRICS) + f" {'seconds':>8s}"]
  for scorer in scorers:
    t0 = time.perf_counter()
    scorer.fit(split.train)
    m = evaluation.evaluate_strong_generalization(scorer, split.test_inputs, split.test_targets,
                                                  ks=(20, 50, 100))
    lines.append(f"{scorer.name:18s} " + " ".join(f"{m[k]:10.4f}" for k in _METRICS)
                 + f" {time.perf_counter() - t0:8.1f}")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  print("=" * 80 + "\n1. Baselines and the autoencoder through one evaluator\n" + "=" * 80)
  print(baseline_table(_SEED.value, _EASE_L2.value), flush=True)
  print("\n" + "=" * 80 + "\n2. Two-head autoencoder: holdout tables and recommendations\n"
        + "=" * 80, flush=True)
  config = anime_ae_config.get_config(_AE_CONFIG)
  train_and_report(config, _WORKDIR.value, Holdout(profiles=50))
  print(f"\nModel saved to {_WORKDIR.value}/model.npz. Recommend for your own profile with:\n"
        f"  .venv/bin/python -m experiments.recommend_anime --model {_WORKDIR.value}/model.npz "
        "--items ID:RATING,ID:RATING,...  (MyAnimeList anime ids)")


if __name__ == "__main__":
  app.run(main)
