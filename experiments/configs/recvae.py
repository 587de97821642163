"""RecVAE (Shenbin et al. 2020) through the pipeline (experiments/train.py).

  --config experiments/configs/recvae.py:dataset=ml100k            any row of configs/datasets.py

Recipes (recsys_core/models/recvae.py documents the model and its assumptions):
  default   the reference code's settings: encoder of 5 densely connected layers of 600
            (swish, layer norm), latent 200, linear decoder, composite prior with weights
            (3/20, 3/4, 1/10), KL weight 0.005 x the user's number of items, 50 cycles of
            3 encoder epochs + 1 decoder epoch, Adam 5e-4, batch 500, validated every cycle
  quick     a small model for tests and smoke runs (hidden 200, latent 64, 3 layers, 5 cycles)
"""
from experiments.configs import common
from recsys_core.models import recvae

RECIPES = {
    "default": {},
    "quick": {"model.hidden": 200, "model.latent": 64, "model.layers": 3, "model.epochs": 5,
              "model.checkpoint_every_epochs": 5},
}


def get_config(arg=None):
  return common.model_config("recvae", recvae.Config(), arg, RECIPES)
