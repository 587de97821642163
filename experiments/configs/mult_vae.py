"""Mult-VAE / Mult-DAE (Liang et al. 2018) through the pipeline (experiments/train.py).

  --config experiments/configs/mult_vae.py:dataset=ml100k          any row of configs/datasets.py
  --config experiments/configs/mult_vae.py:dataset=ml100k,recipe=dae

Recipes (recsys_core/models/mult_vae.py documents the model and its assumptions):
  default   the paper's Mult-VAE^PR: [I -> 600 -> 200 -> 600 -> I], input dropout 0.5, beta
            annealed to 0.2 (reached after 85% of the run), Adam 1e-3, batch 500, 200 epochs,
            validated every epoch, no weight decay (the reference notebook's lam = 0)
  dae       Mult-DAE: the same shape with a tanh bottleneck, no KL, weight decay 2e-5 on the
            weight matrices (the notebook's lam = 0.01 / batch_size)
  quick     a small VAE for tests and smoke runs (hidden 200, latent 64, 20 epochs)
"""
from experiments.configs import common
from recsys_core.models import mult_vae

RECIPES = {
    "default": {},
    "dae": {"model.variant": "dae", "model.weight_decay": 2e-5},
    "quick": {"model.hidden": 200, "model.latent": 64, "model.epochs": 20,
              "model.eval_every_epochs": 2, "model.checkpoint_every_epochs": 20},
}


def get_config(arg=None):
  return common.model_config("mult_vae", mult_vae.Config(), arg, RECIPES)
