"""Configs for experiments/eval_baselines.py: one per dataset.

Use as `--config experiments/configs/baselines.py:<dataset>` with <dataset> one of
ml100k, mlsmall, anime (protocol A, strong generalisation) or ml1m, beauty, sports
(protocol B, leave-one-out). Every field is recorded in the result files.
"""
from ml_collections import config_dict

# Protocol A (shared/docs/protocols.md §A).
_STRONG = dict(
    protocol="strong_generalization",
    min_user_items=5,           # users with >= 5 items after the rating threshold
    heldout_fraction=0.1,       # n = 10% of users for validation and n for test
    target_fraction=0.2,        # 20% of a held-out user's items are targets
    ks=(20, 50, 100),
    report_metrics=("recall@20", "recall@50", "ndcg@100"),
    selection_metric="ndcg@100",  # lambda chosen on the validation users
    seeds=(0, 1, 2, 3, 4),       # split seeds
    ease_l2_grid=(50.0, 100.0, 200.0, 500.0, 1000.0),
    batch_size=1000,
)

# Protocol B (shared/docs/protocols.md §B). EASE and popularity are order-blind: the input
# is the user's whole history before the target (no length cap). The split has no
# randomness, so one seed.
_LOO = dict(
    protocol="leave_one_out",
    rating_threshold=None,
    min_user_items=None,
    ks=(5, 10, 20, 50),
    report_metrics=("hr@5", "hr@10", "hr@20", "hr@50", "ndcg@5", "ndcg@10", "ndcg@20",
                    "ndcg@50", "mrr"),
    selection_metric="ndcg@10",
    seeds=(0,),
    batch_size=1000,
)

_DATASETS = {
    # name: (loader name, short tag for result names, protocol defaults, overrides)
    "ml100k": ("ml-100k", _STRONG, dict(rating_threshold=3.5)),
    "mlsmall": ("ml-latest-small", _STRONG, dict(rating_threshold=3.5)),
    # Anime ratings are 1-10 (mean 7.8). Implicit = rating > 7, i.e. 8, 9 or 10 (61% of
    # the rated rows; ratings 4-5 are 55% of ml-100k). Unrated "watched" rows are dropped.
    "anime": ("anime", _STRONG, dict(rating_threshold=7.0)),
    "ml1m": ("ml-1m", _LOO, dict(ease_l2_grid=(100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0))),
    "beauty": ("beauty", _LOO, dict(ease_l2_grid=(20.0, 50.0, 100.0, 200.0, 500.0))),
    # Sports: 18k items, ~2-7 min per EASE fit on 2 cores; a 3-point grid around Beauty's best.
    "sports": ("sports", _LOO, dict(ease_l2_grid=(20.0, 50.0, 100.0))),
}


def get_config(dataset: str = "ml100k") -> config_dict.ConfigDict:
  if dataset not in _DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(_DATASETS)}")
  loader_name, defaults, overrides = _DATASETS[dataset]
  cfg = config_dict.ConfigDict(dict(defaults))
  cfg.dataset = loader_name
  cfg.tag = dataset
  cfg.models = ("popularity", "ease")
  cfg.update(overrides)
  return cfg
