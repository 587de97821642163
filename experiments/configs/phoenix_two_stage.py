"""The two-stage Phoenix recommender through the pipeline (phoenix/ranking/adapter.py):
retrieval's top 50 reordered by the ranking transformer, leave-one-out, full ranking.

  --config experiments/configs/phoenix_two_stage.py:dataset=ml100k
  --config experiments/configs/phoenix_two_stage.py:dataset=ml1m,recipe=best
  --config ...:dataset=ml1m,recipe=best --config.model.retrieval_run=runs/<retrieval run>

Recipes: the first stage is the retrieval recipe of the same name (its table in
phoenix_retrieval.py, moved under model.retrieval), so the two-stage list and retrieval
alone (recorded beside it as retrieval/<metric>) share their first stage exactly; the
ranker's settings are the same in every recipe:
  default   the retrieval default; the ranker: 2 layers, width 64, history 50, lists of the
            next item and 31 negatives (24 from retrieval's top 50, 7 uniform), 20 epochs
            of lists validated every 2, the blend weight selected on validation
  best      the best retrieval recipe of the dataset (ml1m, beauty, sports)
  quick     seconds (pair with dataset=synthetic)
"""
from experiments.configs import common
from experiments.configs import phoenix_retrieval
from phoenix.ranking import adapter

_RANKER = {
    "model.ranker.emb.emb_size": 64, "model.ranker.emb.item_table_size": 1 << 15,
    "model.ranker.emb.init_stddev": 0.05, "model.ranker.num_layers": 2,
    "model.ranker.key_size": 32, "model.ranker.history_len": 50,
    "model.train.num_epochs": 20.0, "model.train.min_steps": 600,
    "model.train.num_evals": 10, "model.train.warmup_epochs": 0.5,
    "model.optimizer.decay": "cosine", "model.optimizer.final_lr_factor": 0.02,
}

_TINY_RANKER = {
    "model.ranker.emb.emb_size": 16, "model.ranker.emb.user_table_size": 256,
    "model.ranker.emb.item_table_size": 256, "model.ranker.emb.author_table_size": 16,
    "model.ranker.num_layers": 1, "model.ranker.num_kv_heads": 1, "model.ranker.key_size": 8,
    "model.ranker.history_len": 16, "model.ranker.num_negatives": 7,
    "model.num_candidates": 10, "model.num_hard_negatives": 5, "model.train.batch_size": 32,
    "model.train.num_epochs": 30.0, "model.train.eval_every_epochs": 10.0,
    "model.train.log_every": 5, "model.optimizer.learning_rate": 3e-3,
}


def _first_stage(overrides: dict) -> dict:
  """A retrieval recipe's overrides, moved under model.retrieval."""
  return {k.replace("model.", "model.retrieval.", 1): v for k, v in overrides.items()}


RECIPES = {
    "default": {**_first_stage(phoenix_retrieval.RECIPES["default"]), **_RANKER},
    "quick": {**_first_stage(phoenix_retrieval.RECIPES["quick"]), **_TINY_RANKER},
}
DATASET_RECIPES = {
    key: {**_first_stage(overrides), **_RANKER}
    for key, overrides in phoenix_retrieval.DATASET_RECIPES.items()
}


def get_config(arg=None):
  return common.model_config("phoenix_two_stage", adapter.Config(), arg, RECIPES,
                             DATASET_RECIPES, default_dataset="synthetic")
