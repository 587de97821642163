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


def _changed(a, b) -> set:
  """The keys of config block `a` whose values differ in `b`."""
  return {k for k in a if a[k] != b[k]}


def test_retrieval_gpu_recipes_derive_from_the_cpu_ones():
  """`<dataset>_gpu` = the CPU recipe with an accelerator budget; cosine over the whole run."""
  from experiments import train_phoenix_retrieval
  from experiments.configs import phoenix_retrieval as configs
  for name in ("ml1m", "beauty", "sports"):
    cpu, gpu = configs.get_config(name), configs.get_config(name + "_gpu")
    assert (gpu.tag, gpu.dataset, gpu.author) == (name + "_gpu", cpu.dataset, cpu.author)
    assert _changed(cpu.model, gpu.model) == (
        {"history_len"} if name == "ml1m" else {"embedding_dropout"})
    assert train_phoenix_retrieval._model_config(gpu).history_len == gpu.model.history_len
    opt = train_phoenix_retrieval._optimizer_config(gpu).for_run(1000)
    assert (opt.decay, opt.decay_steps) == ("cosine", 1000 - gpu.optimizer.warmup_steps)
  for name in ("beauty", "sports"):
    gpu, cpu = configs.get_config(name + "_gpu"), configs.get_config(name + "_cpu")
    # The CPU variant changes only speed (packing; the same loss) and the epoch budget.
    assert _changed(gpu.model, cpu.model) == {"packed_positions"}
    assert cpu.num_epochs < gpu.num_epochs and cpu.optimizer == gpu.optimizer
    assert train_phoenix_retrieval._model_config(cpu).packed_positions == 1024
  # ml1m_cpu: ml1m_gpu with packing, seen items out of the softmax, an EMA and 70 epochs.
  gpu, cpu = configs.get_config("ml1m_gpu"), configs.get_config("ml1m_cpu")
  assert _changed(gpu.model, cpu.model) == {"packed_positions", "exclude_seen"}
  assert _changed(gpu.optimizer, cpu.optimizer) == {"ema_decay"}
  assert cpu.num_epochs < gpu.num_epochs and cpu.eval_users == 0
  assert train_phoenix_retrieval._model_config(cpu).exclude_seen
  with pytest.raises(ValueError, match="unknown config"):
    configs.get_config("quick_gpu")


@pytest.mark.parametrize("name,result_file", [
    ("beauty_best", "phoenix_retrieval_beauty_best_items14_seed2.json"),
    ("sports_best", "phoenix_retrieval_sports_best_cat2_cat1_cat3_valall_seed3.json"),
    ("ml1m_cpu", "phoenix_retrieval_ml1m_cpu_70ep_seed2.json"),
])
def test_quoted_retrieval_recipes_reproduce_their_result_files(name, result_file):
  """The named recipes (the *_best ones, ml1m_cpu) are the configs that produced the numbers
  the docs quote: every field of the committed run's config except its name, seed and
  whether baselines ran. The wall-clock budget may be larger than the run's, but only where
  that run stopped at its epoch count, i.e. the budget did not shape the result. A model
  field added after the run (absent from its record) must hold RetrievalConfig's default,
  the behaviour before it; so must a config field added after it
  (report.ADDED_CONFIG_FIELDS, filled in by report.with_added_fields)."""
  import dataclasses
  import json
  import pathlib
  from experiments import report
  from experiments.configs import phoenix_retrieval as configs
  from phoenix import training
  path = pathlib.Path(__file__).parent.parent / "experiments" / "results" / result_file
  result = json.loads(path.read_text())
  recorded = report.with_added_fields(result["config"])
  cfg = configs.get_config(name).to_dict()
  assert cfg["tag"] == name
  for key, value in cfg.items():
    if key in ("tag", "seed", "baselines"):
      continue
    assert key in recorded, (
        f"config field {key!r} is absent from {result_file}: register the behaviour before "
        "it in report.ADDED_CONFIG_FIELDS")
    if key == "max_train_seconds" and value != recorded[key]:
      assert result["stopped"] == "num_epochs" and value > recorded[key], (key, value, result)
      continue
    expected = recorded[key]
    if key == "model":
      defaults = {f.name: f.default for f in dataclasses.fields(training.RetrievalConfig)}
      for field in set(value) - set(expected):
        assert value[field] == defaults[field], (field, value[field], defaults[field])
      value = {k: v for k, v in value.items() if k in expected}
    if isinstance(value, tuple):
      value = list(value)
    assert value == expected, (key, value, expected)


def test_phoenix_configs_share_one_optimizer_block():
  """Every Phoenix binary takes the same `--config.optimizer.<key>` overrides (once only the
  retrieval config had `decay_matrices_only`), and each block builds an OptimizerConfig."""
  from experiments.configs import ablate_phoenix, common, compare, phoenix_ranking
  from experiments.configs import phoenix_retrieval
  from recsys_core.train import OptimizerConfig
  ablate = ablate_phoenix.get_config("quick")
  blocks = {"retrieval": phoenix_retrieval.get_config("quick").optimizer,
            "ranking": phoenix_ranking.get_config("quick").optimizer,
            "compare": compare.get_config("tiny_b").phoenix.optimizer,
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
