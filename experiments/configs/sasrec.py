"""SASRec (Kang & McAuley 2018) through the pipeline (recsys_core/models/sasrec.py),
leave-one-out, full ranking.

  --config experiments/configs/sasrec.py:dataset=ml1m                  the paper's ML-1M
  --config experiments/configs/sasrec.py:dataset=ml1m,recipe=ce        full softmax CE
  --config experiments/configs/sasrec.py:dataset=beauty,recipe=sampled
  --config experiments/configs/sasrec.py:dataset=file   (+ --config.data.path=... columns)

NOT YET TUNED ON VALIDATION: every recipe below is the paper's setting or a first guess;
none has been searched on validation, and no result file records any of them yet.

Recipes (schedules in epochs; the model turns them into steps from the data):
  default   the paper (and the authors' code): 2 blocks, 1 head, hidden 50, lr 1e-3,
            Adam beta2 0.98, batch 128, the BCE loss with one negative per position, 200
            epochs validated every 20; max_len 50 and dropout 0.5 (the paper's Amazon
            settings) on any dataset, max_len 200 and dropout 0.2 on ML-1M
  ce        ML-1M: the paper's ML-1M network with the full softmax cross-entropy over all
            items (the later-work variant that is strong on ML-1M)
  sampled   Beauty, Sports: the paper's Amazon network with a sampled softmax over 1,024
            uniform negatives per batch
  quick     a seconds-long run for tests and smoke runs (pair with dataset=synthetic)
"""
from experiments.configs import common
from recsys_core.models import sasrec

# The paper's ML-1M settings (the Amazon ones are the Config's defaults).
_ML1M = {"model.max_len": 200, "model.dropout": 0.2}

RECIPES = {
    "default": {},
    "quick": {
        "model.max_len": 16, "model.hidden": 32, "model.num_blocks": 1, "model.dropout": 0.1,
        "model.loss": "ce", "model.batch_size": 32, "model.learning_rate": 5e-3,
        "model.num_epochs": 20.0, "model.eval_every_epochs": 5.0,
        "model.checkpoint_every_epochs": 5.0, "model.log_every": 20,
    },
}

# Not tuned on validation (module docstring).
DATASET_RECIPES = {
    ("ml1m", "default"): dict(_ML1M),
    ("ml1m", "ce"): {**_ML1M, "model.loss": "ce"},
    ("beauty", "sampled"): {"model.loss": "sampled", "model.num_negatives": 1024},
    ("sports", "sampled"): {"model.loss": "sampled", "model.num_negatives": 1024},
}


def get_config(arg=None):
  return common.model_config("sasrec", sasrec.Config(), arg, RECIPES, DATASET_RECIPES,
                             default_dataset="synthetic")
