r"""One model's recipe against variants of it, on the same splits and seeds: the pipeline in
a loop (recsys_core.comparison), with each variant's difference to the first, paired by seed.

  python -m experiments.ablate --config experiments/configs/phoenix_retrieval.py:dataset=beauty \
      --config.data.dir=../shared/data --seeds=0,1,2 \
      --variant=base: --variant="nodrop:model.net.block_dropout=0.0,model.net.embedding_dropout=0.0"

--variant is "<label>:<field>=<value>,..." (an empty list = the config as given); values are
read as Python literals where they parse (0.5, True, (1, 2)), else as strings. Each variant
and seed is a run folder runs/<config.name>_<label>_seed<seed>; finished runs are reused.
"""
import ast
import os
import re

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments import common as binaries
from experiments.configs import common
from recsys_core import comparison
from recsys_core import pipeline
from recsys_core import results
from recsys_core import runs

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The binary's flags (only when it runs as a binary: other binaries share the names)."""
  config_flags.DEFINE_config_file("config", None, "experiments/configs/<model>.py:<args>")
  flags.DEFINE_multi_string("variant", None, "<label>:<field>=<value>,... (repeat).")
  flags.DEFINE_list("seeds", ["0"], "Seeds (strong generalisation: also split seeds).")
  flags.DEFINE_string("runs_root", pipeline.DEFAULT_RUNS_ROOT, "Folder of the run folders.")
  flags.DEFINE_string("results_dir", None, "Also write the record there.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing result file.")


def parse_variant(text: str) -> tuple[str, dict]:
  """"label:a.b=1,c=x" -> ("label", {"a.b": 1, "c": "x"})."""
  label, sep, body = text.partition(":")
  if not sep or not label:
    raise ValueError(f"--variant={text!r}: expected <label>:<field>=<value>,...")
  overrides = {}
  # A comma starts a new field only before "<field>=": values may hold commas, e.g. (1, 2).
  for part in filter(None, re.split(r",(?=\s*[A-Za-z_][\w.]*\s*=)", body)):
    key, eq, value = part.partition("=")
    if not eq:
      raise ValueError(f"--variant={text!r}: {part!r} is not <field>=<value>")
    try:
      overrides[key.strip()] = ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
      overrides[key.strip()] = value.strip()
  return label, overrides


def variant_configs(base, variants: list[str], seeds: list[int]) -> dict[str, list]:
  """{label: [pipeline config per seed]}; every config checked before anything trains."""
  out = {}
  for text in variants:
    label, overrides = parse_variant(text)
    if label in out:
      raise ValueError(f"--variant: label {label!r} given twice")
    configs = []
    for seed in seeds:
      cfg = common.apply(base.copy_and_resolve_references(), overrides)
      cfg.name = f"{base.name}_{label}"
      cfg = common.with_seed(cfg, seed)
      pipeline.parse(cfg)
      configs.append(cfg)
    out[label] = configs
  return out


def paired_differences(record: dict, base: str) -> dict[str, dict]:
  """{label: {metric: summary of (variant - base) over the shared seeds}}."""
  models = record["models"]
  ref = models[base]["metrics"]
  out = {}
  for label, m in models.items():
    if label != base:
      out[label] = {k: results.summarize(
          [a - b for a, b in zip(m["metrics"][k]["values"], ref[k]["values"])])
                    for k in m["metrics"]}
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    seeds = binaries.parse_seeds(FLAGS.seeds)
    if not FLAGS.variant or len(FLAGS.variant) < 2:
      raise ValueError("--variant: give the base and at least one variant")
    configs = variant_configs(FLAGS.config, FLAGS.variant, seeds)
    name = f"ablate_{FLAGS.config.name}"
    target = runs.result_target(FLAGS.results_dir, name, FLAGS.overwrite)
  except (ValueError, KeyError, FileExistsError) as e:
    raise app.UsageError(str(e)) from None
  record = comparison.run(configs, name=name, runs_root=FLAGS.runs_root)
  base = next(iter(configs))
  record["paired_differences"] = paired_differences(record, base)
  keys = ["ndcg@10", "hr@10"] if record["protocol"] == "leave_one_out" else ["ndcg@100",
                                                                             "recall@20"]
  print(comparison.table(record, keys))
  for label, diffs in record["paired_differences"].items():
    print(f"{label} - {base}: " + ", ".join(
        f"{k} {diffs[k]['mean']:+.4f} ± {diffs[k]['std']:.4f}" for k in keys))
  results.save_record(record, os.path.join(FLAGS.runs_root, f"{name}.json"))
  if target:
    print("wrote", results.save_record(record, target, overwrite=FLAGS.overwrite))


if __name__ == "__main__":
  define_flags()
  flags.mark_flag_as_required("config")
  app.run(main)
