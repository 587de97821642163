"""Every experiment binary that tests or users import can be imported in one process: flags
are defined only when a module runs as a binary, or do not collide (absl would raise
DuplicateFlagError, as once happened between ablate_phoenix and recommend_anime)."""
import importlib

import pytest

MODULES = ("ablate_anime_ae", "ablate_phoenix", "bench_ae_flops", "bench_input_pipeline",
           "bench_retrieval_topk", "ablate", "compare", "plots", "recommend_anime", "report",
           "train", "train_phoenix_ranking")


@pytest.mark.parametrize("order", [MODULES, MODULES[::-1]])
def test_binaries_import_together(order):
  for name in order:
    module = importlib.import_module(f"experiments.{name}")
    assert module.__name__ == f"experiments.{name}"


def test_phoenix_configs_share_one_optimizer_block():
  """Every Phoenix binary with a flat config takes the same `--config.optimizer.<key>`
  overrides, and each block builds an OptimizerConfig (the pipeline configs hold every
  OptimizerConfig field: tests/experiments/test_recipes.py)."""
  from experiments.configs import ablate_phoenix, common, phoenix_ranking
  from recsys_core.train import OptimizerConfig
  ablate = ablate_phoenix.get_config("quick")
  blocks = {"ranking": phoenix_ranking.get_config("quick").optimizer,
            "ablate.ranking": ablate.ranking.optimizer,
            "ablate.retrieval": ablate.retrieval.optimizer}
  keys = set(common.optimizer())
  assert {"decay_matrices_only", "ema_decay"} <= keys
  for where, block in blocks.items():
    assert set(block) == keys, where
    block.name, block.weight_decay, block.decay_matrices_only = "adamw", 0.1, True
    assert OptimizerConfig(**block.to_dict()).decay_matrices_only, where
  with pytest.raises(KeyError, match=r"unknown optimizer key\(s\) \['lr'\]"):
    common.optimizer(lr=1e-3)
