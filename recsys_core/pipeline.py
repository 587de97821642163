"""One way through for every model, dataset and protocol.

  record = pipeline.train_and_evaluate(config)      # config: a ConfigDict or mapping

  1. check    every section is built into its typed dataclass (`parse`): unknown keys and
              bad values fail here, before any data is read or anything compiles
  2. run dir  `runs.open_run`: a new folder, or the same config's folder (resume), or a
              clear error naming the fields that differ from the folder's config
  3. data     `data.source.load(config.data)`: a named dataset or the user's own file
  4. split    `protocols.make_split(x, config.protocol)`
  5. fit      `models.get(config.model.name).fit(model_config, FitContext)`: the model
              trains on the training part and selects on the validation part only
  6. test     once, on the test part, through the same `Scorer` interface
  7. record   <run dir>/record.json (the result-file schema of shared/docs/results.md);
              `publish` copies it under experiments/results only when asked

Config sections: `name` (the run's name; default "<model>_<data>"), `seed`, `data`
(`DataConfig`), `protocol` (`ProtocolConfig`), `model` (`name` + the model's own `Config`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any, Optional

from recsys_core import models
from recsys_core import protocols
from recsys_core import results
from recsys_core import runs
from recsys_core.config import check
from recsys_core.config import from_dict
from recsys_core.config import plain
from recsys_core.data import source

log = logging.getLogger(__name__)

DEFAULT_RUNS_ROOT = "runs"
# Fields that change how long or how loudly a run goes, not what it computes: they stay out
# of the run folder's fingerprint (a model module adds its own as RUN_ONLY, relative to
# `model`), so a run stopped by its time budget resumes with a larger one.
RUN_ONLY = ("name", "protocol.batch_size")


@dataclasses.dataclass(frozen=True)
class Parsed:
  """A pipeline config, checked: every section typed."""
  name: str
  seed: int
  data: source.DataConfig
  protocol: protocols.ProtocolConfig
  model_name: str
  model: Any            # the model module's Config
  module: Any           # the model module (Config, fit, optional RUN_ONLY)

  @property
  def run_only(self) -> tuple[str, ...]:
    return RUN_ONLY + tuple(f"model.{f}" for f in getattr(self.module, "RUN_ONLY", ()))

  def defaults(self) -> dict[str, Any]:
    """The config with every field at its dataclass default (for fields added after a run
    folder was made: see runs.open_run)."""
    return {"name": self.name, "seed": 0, "data": plain(source.DataConfig()),
            "protocol": plain(protocols.ProtocolConfig()),
            "model": {"name": self.model_name, **plain(self.module.Config())}}


def parse(config: Any) -> Parsed:
  """Checks and types a pipeline config; nothing is read or trained.

  Raises:
    ValueError: an unknown section, key or model, or a value out of its range (the message
      names the field, e.g. "protocol.ks", and what is allowed).
  """
  values = plain(config)
  known = {"name", "seed", "data", "protocol", "model"}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(f"config: unknown key(s) {unknown}; known: {sorted(known)}")
  model_values = dict(values.get("model") or {})
  model_name = model_values.pop("name", None)
  if not model_name:
    raise ValueError(f"config.model.name is required (built-in: {sorted(models.BUILTIN)})")
  module = models.get(model_name)
  model = from_dict(module.Config, model_values, "model")
  data = from_dict(source.DataConfig, values.get("data"), "data")
  protocol = from_dict(protocols.ProtocolConfig, values.get("protocol"), "protocol")
  data.validate()
  protocol.validate()
  seed = values.get("seed", 0)
  check(isinstance(seed, int) and seed >= 0, "seed", seed, "an integer >= 0")
  name = values.get("name") or f"{model_name.rsplit('.', 1)[-1]}_{data.label}"
  check(bool(name) and os.sep not in name and name not in (".", ".."), "name", name,
        "a folder name (no path separators)")
  return Parsed(name, seed, data, protocol, model_name, model, module)


def run_folder(config: Any, runs_root: str = DEFAULT_RUNS_ROOT,
               on_change: str = "error") -> runs.RunDir:
  """Opens (creates or resumes) the run folder of `config` under `runs_root`."""
  parsed = parse(config)
  return runs.open_run(os.path.join(runs_root, parsed.name), config, parsed.run_only,
                       on_change, parsed.defaults())


def train_and_evaluate(config: Any, runs_root: str = DEFAULT_RUNS_ROOT,
                       on_change: str = "error",
                       run_dir: Optional[str] = None) -> dict[str, Any]:
  """Trains the configured model, selects on validation, tests once, writes the record.

  Args:
    config: the pipeline config (see the module docstring).
    runs_root: folder of the run folders; the run goes to <runs_root>/<config.name>.
    on_change: "error" (default) refuses a run folder that holds another config's run;
      "new" opens a fresh sibling folder instead.
    run_dir: the exact run folder (overrides runs_root/name).

  Returns:
    The result record (also written to <run dir>/record.json): "metrics" holds the test
    metrics and the selected validation metrics ("val/<key>"), "model_info" what the model
    reports of its fit, "run_dir" the folder.
  """
  start = time.perf_counter()
  parsed = parse(config)
  run = runs.open_run(run_dir or os.path.join(runs_root, parsed.name), config,
                      parsed.run_only, on_change, parsed.defaults())
  log.info("run folder %s (config %s)", run.path, run.fingerprint)
  x = source.load(parsed.data)
  split = protocols.make_split(x, parsed.protocol)
  split_fingerprint = split.fingerprint()
  runs.check_data(run, split_fingerprint, x.source)
  runs.save_items(run, source.public_item_ids(parsed.data, split.train.item_ids))
  selection = split.with_validation_users(parsed.protocol.eval_users, parsed.seed)
  log.info("%s: %s, protocol %s", parsed.data.label, split.stats(), split.protocol)

  def validate(scorer) -> dict[str, float]:
    return {k: v for k, v in selection.evaluate(scorer, "val").items() if k != "num_users"}

  ctx = models.FitContext(train=split.train, validate=validate,
                          selection_metric=parsed.protocol.selection_metric,
                          protocol=split.protocol, run_dir=run.train_dir, seed=parsed.seed,
                          data=parsed.data, split_fingerprint=split_fingerprint)
  fit_start = time.perf_counter()
  fitted = parsed.module.fit(parsed.model, ctx)
  fit_seconds = time.perf_counter() - fit_start
  test = split.evaluate(fitted.scorer, "test")
  log.info("%s test: %s", parsed.model_name, test)
  info = dict(fitted.info)
  metrics = {k: v for k, v in test.items() if k != "num_users"}
  val = info.get("val") or {}
  metrics.update({f"val/{k}": v for k, v in val.items() if k in metrics})
  for companion, scorer in fitted.companions.items():
    paired = split.evaluate(scorer, "test")
    log.info("%s (companion) test: %s", companion, paired)
    metrics.update({f"{companion}/{k}": v for k, v in paired.items() if k != "num_users"})
  record = results.make_record(
      name=parsed.name, dataset=parsed.data.label, protocol=split.protocol,
      model=parsed.model_name, config=runs.canonical(config), metrics=metrics,
      seeds=[parsed.seed], wall_seconds=time.perf_counter() - start,
      extra={"num_test_users": test["num_users"], "data_stats": split.stats(),
             "split_fingerprint": split_fingerprint,
             "fit_seconds": round(fit_seconds, 3), "model_info": info,
             "run_dir": run.path, "fingerprint": run.fingerprint})
  runs.write_record(run, record)
  return record


def publish(record: dict[str, Any], results_dir: str, overwrite: bool = False) -> str:
  """Copies a run's record to <results_dir>/<record name>.json, the project's record of
  results; an existing file is replaced only with overwrite=True. Returns the path."""
  path = os.path.join(results_dir, f"{record['name']}.json")
  return results.save_record(record, path, overwrite=overwrite)


def test_metrics(record: dict[str, Any]) -> dict[str, float]:
  """{metric: value} of a record's test metrics (one seed: the value; several: the mean)."""
  return {k: v["mean"] for k, v in record["metrics"].items() if not k.startswith("val/")}
