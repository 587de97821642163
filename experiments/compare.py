r"""Several models on the same splits, each trained with its own recipe: the pipeline in a
loop (recsys_core.comparison).

  python -m experiments.compare --dataset=ml100k --models=popularity,ease,anime_ae \
      --seeds=0,1,2 --data_dir=../shared/data
  python -m experiments.compare --dataset=beauty --seeds=2 --data_dir=../shared/data \
      --models=popularity,ease,phoenix_retrieval:best --results_dir=experiments/results

A model is "<name>[:<recipe>]" of experiments/configs/<name>.py (recipe "default" when
omitted). Each (model, seed) is one run folder runs/<model>_<dataset>_<recipe>_seed<seed>,
the name a standalone `experiments.train` run of that seed uses, so finished runs are
reused. Under strong generalisation the seed is also the split seed; leave-one-out splits
have none. The record (runs/compare_<dataset>.json; with --results_dir also
<results_dir>/compare_<dataset>_<protocol>.json) holds each model's metrics over its seeds,
the split fingerprints, and the metrics of the model's own result file where one has the
same config fingerprint. `python -m experiments.report` regenerates the tables from it.
"""
import importlib
import os

from absl import app
from absl import flags

from experiments import common as binaries
from experiments.configs import common
from recsys_core import comparison
from recsys_core import pipeline
from recsys_core import results
from recsys_core import runs

FLAGS = flags.FLAGS
_KEYS = {"strong_generalization": ("recall@20", "recall@50", "ndcg@100"),
         "leave_one_out": ("hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr")}


def define_flags() -> None:
  """The binary's flags (defined only when it runs as a binary, so that tests can import
  this module beside experiments.train, which has flags of the same names)."""
  flags.DEFINE_string("dataset", None, "A row of experiments/configs/datasets.py.")
  flags.DEFINE_list("models", ["popularity", "ease", "anime_ae"],
                    "Models as <name>[:<recipe>] (experiments/configs/<name>.py).")
  flags.DEFINE_list("seeds", ["0"], "Seeds (strong generalisation: also split seeds).")
  flags.DEFINE_string("data_dir", None, "Folder of the dataset folders (config.data.dir); "
                      "not needed for anime or synthetic.")
  flags.DEFINE_string("runs_root", pipeline.DEFAULT_RUNS_ROOT, "Folder of the run folders.")
  flags.DEFINE_string("results_dir", None, "Also write the comparison record there (e.g. "
                      "experiments/results).")
  flags.DEFINE_bool("overwrite", False, "Replace an existing result file.")
  flags.DEFINE_string("name", None, "The record's name (default compare_<dataset>_<protocol>).")
  flags.DEFINE_string("own_runs_dir", results.RECORD_DIR,
                      "Where the models' own result files are looked up.")
  flags.DEFINE_list("references", [], "<model spec>=<result file> of a model's own earlier "
                    "runs with one value per seed, shown beside the comparison's values.")


def model_configs(dataset: str, spec: str, seeds: list[int], data_dir):
  """[pipeline config per seed] of model spec "<name>[:<recipe>]" on `dataset`."""
  name, _, recipe = spec.partition(":")
  recipe = recipe or "default"
  try:
    module = importlib.import_module(f"experiments.configs.{name}")
  except ModuleNotFoundError:
    raise ValueError(f"--models: no config file experiments/configs/{name}.py") from None
  out = []
  for seed in seeds:
    cfg = common.with_seed(module.get_config(f"dataset={dataset},recipe={recipe}"), seed)
    if data_dir:
      cfg.data.dir = data_dir
    pipeline.parse(cfg)  # every config checked before the first model trains
    out.append(cfg)
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    seeds = binaries.parse_seeds(FLAGS.seeds)
    configs = {spec: model_configs(FLAGS.dataset, spec, seeds, FLAGS.data_dir)
               for spec in FLAGS.models}
    protocol = next(iter(configs.values()))[0].protocol.name
    name = FLAGS.name or f"compare_{FLAGS.dataset}_{protocol}"
    target = runs.result_target(FLAGS.results_dir, name, FLAGS.overwrite)
    bad = [item for item in FLAGS.references if "=" not in item]
    if bad:
      raise ValueError(f"--references: {bad[0]!r} is not <model spec>=<result file>")
    references = dict(item.split("=", 1) for item in FLAGS.references)
    for spec, path in references.items():
      if spec not in configs or not os.path.isfile(path):
        raise ValueError(f"--references: {spec}={path}: needs a model of --models and an "
                         "existing result file")
  except (ValueError, FileExistsError) as e:
    raise app.UsageError(str(e)) from None
  record = comparison.run(configs, name=name, runs_root=FLAGS.runs_root,
                          own_runs_dir=FLAGS.own_runs_dir, references=references)
  results.save_record(record, os.path.join(FLAGS.runs_root, f"{name}.json"))
  print(comparison.table(record, _KEYS[protocol]))
  if target:
    print("wrote", results.save_record(record, target, overwrite=FLAGS.overwrite))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("dataset")
  app.run(main)
