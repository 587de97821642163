r"""Trains and evaluates any model on any dataset under its protocol: one pipeline call.

  python -m experiments.train --config experiments/configs/ease.py:dataset=ml100k \
      --config.data.dir=../shared/data
  python -m experiments.train --config experiments/configs/phoenix_retrieval.py:dataset=file \
      --config.data.path=events.csv --config.data.time_col=timestamp

Writes runs/<config.name>/ (config.json with the config's fingerprint, train/ checkpoints
and metrics.jsonl, record.json). Rerunning the same config resumes; a changed config is
refused, naming the fields, unless --on_change=new. The project's record under
experiments/results/ is written only with --results_dir, never over a file without
--overwrite.
"""
import json

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from recsys_core import pipeline
from recsys_core import runs

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "experiments/configs/<model>.py:dataset=<name>,recipe=<name>")
_RUNS_ROOT = flags.DEFINE_string("runs_root", pipeline.DEFAULT_RUNS_ROOT,
                                 "Folder of the run folders (runs/<config.name>/).")
_ON_CHANGE = flags.DEFINE_enum("on_change", "error", runs.ON_CHANGE,
                               "When the run folder holds another config's run: refuse "
                               "(error) or use a fresh sibling folder (new).")
_RESULTS_DIR = flags.DEFINE_string("results_dir", None, "Also write the record to "
                                   "<results_dir>/<config.name>.json (e.g. experiments/results).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing result file.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cfg = _CONFIG.value
  try:
    name = pipeline.parse(cfg).name  # every field checked before any data is read
    target = runs.result_target(_RESULTS_DIR.value, name, _OVERWRITE.value)
    run = pipeline.run_folder(cfg, _RUNS_ROOT.value, _ON_CHANGE.value)
  except (ValueError, FileExistsError, runs.ConfigChangedError) as e:
    raise app.UsageError(str(e)) from None
  record = pipeline.train_and_evaluate(cfg, run_dir=run.path)
  print(json.dumps({"model": record["model"], "dataset": record["dataset"],
                    "test": {k: round(v, 4) for k, v in pipeline.test_metrics(record).items()}}))
  print(f"run folder: {record['run_dir']}")
  if target:
    logging.info("wrote %s", pipeline.publish(record, _RESULTS_DIR.value, _OVERWRITE.value))
    print(f"result file: {target}")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
