"""Every experiment binary that tests or users import can be imported in one process: flags
are defined only when a module runs as a binary, or do not collide (absl would raise
DuplicateFlagError, as once happened between ablate_phoenix and recommend_anime)."""
import importlib

import pytest

MODULES = ("ablate_anime_ae", "ablate_phoenix", "bench_ae_flops", "bench_input_pipeline",
           "bench_retrieval_topk", "compare_models", "plots", "recommend_anime", "report",
           "train_phoenix_ranking", "train_phoenix_retrieval")


@pytest.mark.parametrize("order", [MODULES, MODULES[::-1]])
def test_binaries_import_together(order):
  for name in order:
    module = importlib.import_module(f"experiments.{name}")
    assert module.__name__ == f"experiments.{name}"
