"""EASE (closed form; λ selected on validation) through the pipeline (experiments/train.py).

  --config experiments/configs/ease.py:dataset=ml1m            any row of configs/datasets.py
  --config experiments/configs/ease.py:dataset=beauty,recipe=quick
"""
from experiments.configs import common
from recsys_core.models import ease

RECIPES = {
    "default": {},                            # the Config's λ grid (50 .. 2000)
    "quick": {"model.l2_grid": (200.0,)},     # one fit, for tests and smoke runs
}


def get_config(arg=None):
  return common.model_config("ease", ease.Config(), arg, RECIPES)
