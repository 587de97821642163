"""Popularity (no parameters) through the pipeline (experiments/train.py).

  --config experiments/configs/popularity.py:dataset=ml1m      any row of configs/datasets.py
"""
from experiments.configs import common
from recsys_core.models import popularity

RECIPES = {"default": {}}


def get_config(arg=None):
  return common.model_config("popularity", popularity.Config(), arg, RECIPES)
