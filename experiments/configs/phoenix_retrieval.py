"""Phoenix retrieval through the pipeline (experiments/train.py), leave-one-out.

  --config experiments/configs/phoenix_retrieval.py:dataset=beauty,recipe=best
  --config experiments/configs/phoenix_retrieval.py:dataset=file       (+ --config.data.path)

Recipes: every schedule is in epochs (phoenix/retrieval/adapter.py turns them into steps
from the data), every recipe a complete set of overrides of the model's Config defaults:
  default   for any dataset: history 50, full softmax, SASRec's window and dropout, a
            cosine over 50 epochs (at least 1,500 steps) after one epoch of warm-up, 25
            evaluations, an EMA of the params over ~10% of the run
  quick     a seconds-long run for tests and smoke runs (pair with dataset=synthetic)
  best      the best recipe per dataset so far (ml1m, beauty, sports): the configs of the
            result files that experiments/configs/README.md quotes; tests pin them to those
            files. Their warm-up and decay lengths are the recorded runs' step counts over
            that dataset's steps per epoch (ML-1M 47, Beauty 174, Sports 278 at batch 128).
"""
from experiments.configs import common
from phoenix.retrieval import adapter

_TINY_NET = {
    "model.net.emb.emb_size": 32, "model.net.emb.user_table_size": 512,
    "model.net.emb.item_table_size": 512, "model.net.emb.author_table_size": 64,
    "model.net.num_layers": 1, "model.net.num_kv_heads": 1, "model.net.key_size": 16,
    "model.net.history_len": 16, "model.net.init_temperature": 0.1,
}

# A random window of each user's sequence per epoch (SASRec's sampling) instead of the last.
_RANDOM_WINDOW = {"model.net.window": "random"}

RECIPES = {
    # Sized from the data: 50 epochs but at least 1,500 steps, 25 evaluations, an EMA over
    # the last ~10% of the steps (the ML-1M best recipe's share).
    "default": {
        **_RANDOM_WINDOW, "model.net.history_len": 50, "model.net.embedding_dropout": 0.2,
        "model.net.block_dropout": 0.2, "model.train.num_epochs": 50.0,
        "model.train.min_steps": 1500, "model.train.num_evals": 25,
        "model.train.ema_fraction": 0.1, "model.train.warmup_epochs": 1.0,
        "model.optimizer.decay": "cosine", "model.optimizer.final_lr_factor": 0.02,
    },
    "quick": {
        **_TINY_NET, "model.train.batch_size": 32, "model.train.num_epochs": 12.0,
        "model.train.eval_every_epochs": 4.0, "model.train.log_every": 5,
        "model.optimizer.learning_rate": 3e-3,
    },
}

# The recorded runs' steps per epoch at batch 128 (training users // 128).
_ML1M, _BEAUTY, _SPORTS = 47, 174, 278

# The best recipe per dataset (IMPROVEMENTS.md: what each part moved). Fields that the
# result files call by their old flat names: see tests/experiments/test_recipes.py.
DATASET_RECIPES = {
    # History 200, full softmax with seen items left out, embedding dropout 0.2, a 70-epoch
    # cosine, an EMA 0.997 of the params validated on all users every 2.5 epochs.
    ("ml1m", "best"): {
        **_RANDOM_WINDOW, "model.author": "genre", "model.net.history_len": 200,
        "model.net.embedding_dropout": 0.2, "model.net.exclude_seen": True,
        "model.net.packed_positions": 16384, "model.train.num_epochs": 70.0,
        "model.train.warmup_epochs": 100 / _ML1M, "model.train.eval_every_epochs": 2.5,
        "model.train.max_seconds": 9000.0, "model.train.log_every": 50,
        "model.train.checkpoint_every_epochs": 250 / _ML1M,
        "model.optimizer.decay": "cosine", "model.optimizer.final_lr_factor": 0.02,
        "model.optimizer.ema_decay": 0.997,
    },
    # Block and embedding dropout 0.5, full softmax over packed positions, brand + leaf
    # category as author fields, the 100-epoch cosine stopped at 30 epochs, EMA 0.999,
    # a 2^14-row item table; validation on 2,000 users.
    ("beauty", "best"): {
        "model.author": "brand+category", "model.net.emb.num_author_hashes": 4,
        "model.net.emb.item_table_size": 1 << 14, "model.net.history_len": 50,
        "model.net.embedding_dropout": 0.5, "model.net.block_dropout": 0.5,
        "model.net.packed_positions": 1024, "model.train.num_epochs": 30.0,
        "model.train.warmup_epochs": 100 / _BEAUTY, "model.train.decay_epochs": 17300 / _BEAUTY,
        "model.train.eval_every_epochs": 2.0, "model.train.max_seconds": 5400.0,
        "model.train.log_every": 500, "model.train.checkpoint_every_epochs": 5000 / _BEAUTY,
        "model.train.eval_online_params": True, "protocol.eval_users": 2000,
        "model.optimizer.decay": "cosine", "model.optimizer.final_lr_factor": 0.02,
        "model.optimizer.ema_decay": 0.999,
    },
    # As Beauty with category levels 2, 1 and 3 as third to fifth author fields, the item
    # table at 2^15, 24 epochs of the cosine, selection on all validation users.
    ("sports", "best"): {
        "model.author": "brand+category+category:2+category:1+category:3",
        "model.net.emb.num_author_hashes": 10, "model.net.history_len": 50,
        "model.net.embedding_dropout": 0.5, "model.net.block_dropout": 0.5,
        "model.net.packed_positions": 1024, "model.train.num_epochs": 24.0,
        "model.train.warmup_epochs": 100 / _SPORTS, "model.train.decay_epochs": 27700 / _SPORTS,
        "model.train.eval_every_epochs": 2.0, "model.train.max_seconds": 10000.0,
        "model.train.log_every": 500, "model.train.checkpoint_every_epochs": 5000 / _SPORTS,
        "model.optimizer.decay": "cosine", "model.optimizer.final_lr_factor": 0.02,
        "model.optimizer.ema_decay": 0.999,
    },
}


def get_config(arg=None):
  return common.model_config("phoenix_retrieval", adapter.Config(), arg, RECIPES,
                             DATASET_RECIPES, default_dataset="synthetic")
