"""recsys_core.runs: run-folder fingerprints, resuming, refusing a changed config.

Tested: the fingerprint ignores exactly the run-only fields (and list/tuple and key order);
`open_run` writes config.json in a new folder, resumes the same config, refuses another
config with ConfigChangedError naming every differing field (old -> new), opens <path>-2,
<path>-3 with on_change="new", refuses a non-empty non-run folder and an unreadable
config.json; `check_writable` names the flag it checks.
"""
import json
import os
import stat

import pytest

from recsys_core import runs
from recsys_core.runs import ConfigChangedError

RUN_ONLY = ("name", "protocol.batch_size")


def _config(**changes):
  cfg = {"name": "r", "seed": 0,
         "protocol": {"name": "leave_one_out", "ks": [5, 10], "batch_size": 100},
         "model": {"name": "ease", "l2_grid": [1.0, 10.0]}}
  for dotted, value in changes.items():
    node = cfg
    *parents, leaf = dotted.split("__")
    for key in parents:
      node = node[key]
    node[leaf] = value
  return cfg


def test_fingerprint_ignores_run_only_fields():
  base = runs.fingerprint(_config(), RUN_ONLY)
  assert runs.fingerprint(_config(name="other"), RUN_ONLY) == base
  assert runs.fingerprint(_config(protocol__batch_size=7), RUN_ONLY) == base


def test_fingerprint_sees_other_fields():
  base = runs.fingerprint(_config(), RUN_ONLY)
  assert runs.fingerprint(_config(protocol__ks=[5]), RUN_ONLY) != base
  assert runs.fingerprint(_config(model__l2_grid=[1.0, 20.0]), RUN_ONLY) != base
  assert runs.fingerprint(_config(seed=1), RUN_ONLY) != base
  # A run-only field is ignored only when listed.
  assert runs.fingerprint(_config(name="other")) != runs.fingerprint(_config())


def test_fingerprint_ignores_key_order_and_list_vs_tuple():
  cfg = _config()
  reordered = {k: cfg[k] for k in reversed(list(cfg))}
  reordered["model"] = {"l2_grid": (1.0, 10.0), "name": "ease"}
  assert runs.fingerprint(reordered, RUN_ONLY) == runs.fingerprint(cfg, RUN_ONLY)


def test_canonical_drops_nested_run_only_field():
  out = runs.canonical(_config(), RUN_ONLY)
  assert "name" not in out
  assert "batch_size" not in out["protocol"]
  assert out["protocol"]["ks"] == [5, 10]


def test_new_folder_writes_config_json(tmp_path):
  path = str(tmp_path / "runs" / "a")
  run = runs.open_run(path, _config(), RUN_ONLY)
  assert run.path == path and not run.resumed
  with open(os.path.join(path, runs.CONFIG_FILE)) as f:
    stored = json.load(f)
  assert stored["fingerprint"] == run.fingerprint == runs.fingerprint(_config(), RUN_ONLY)
  assert stored["config"] == runs.canonical(_config(), RUN_ONLY)
  assert stored["run_only"] == list(RUN_ONLY)
  assert run.train_dir == os.path.join(path, "train")
  assert run.record_path == os.path.join(path, "record.json")


def test_same_config_resumes(tmp_path):
  path = str(tmp_path / "a")
  first = runs.open_run(path, _config(), RUN_ONLY)
  again = runs.open_run(path, _config(), RUN_ONLY)
  assert again.resumed and again.path == path and again.fingerprint == first.fingerprint
  # A changed run-only field still resumes.
  budget = runs.open_run(path, _config(protocol__batch_size=5), RUN_ONLY)
  assert budget.resumed and budget.path == path


def test_other_config_is_refused_naming_each_field(tmp_path):
  path = str(tmp_path / "a")
  runs.open_run(path, _config(), RUN_ONLY)
  changed = _config(model__l2_grid=[1.0, 20.0], protocol__ks=[5], seed=3)
  with pytest.raises(ConfigChangedError) as e:
    runs.open_run(path, changed, RUN_ONLY)
  msg = str(e.value)
  assert path in msg
  assert "model.l2_grid: [1.0, 10.0] -> [1.0, 20.0]" in msg
  assert "protocol.ks: [5, 10] -> [5]" in msg
  assert "seed: 0 -> 3" in msg
  assert "protocol.batch_size" not in msg and "protocol.name" not in msg
  assert isinstance(e.value, ValueError)


def test_added_field_shows_absent(tmp_path):
  path = str(tmp_path / "a")
  runs.open_run(path, _config(), RUN_ONLY)
  changed = _config()
  changed["model"]["extra"] = 1
  with pytest.raises(ConfigChangedError, match=r"model\.extra: <absent> -> 1"):
    runs.open_run(path, changed, RUN_ONLY)


def test_on_change_new_opens_numbered_siblings(tmp_path):
  path = str(tmp_path / "a")
  first = runs.open_run(path, _config(), RUN_ONLY, on_change="new")
  second = runs.open_run(path, _config(seed=1), RUN_ONLY, on_change="new")
  assert first.path == path
  assert second.path == f"{path}-2" and not second.resumed
  assert os.path.exists(os.path.join(second.path, runs.CONFIG_FILE))
  third = runs.open_run(path, _config(seed=2), RUN_ONLY, on_change="new")
  assert third.path == f"{path}-3" and not third.resumed
  # The second config again: found in its sibling and resumed there.
  back = runs.open_run(path, _config(seed=1), RUN_ONLY, on_change="new")
  assert back.path == f"{path}-2" and back.resumed
  # The first folder is untouched.
  with open(os.path.join(path, runs.CONFIG_FILE)) as f:
    assert json.load(f)["fingerprint"] == first.fingerprint


def test_on_change_must_be_known(tmp_path):
  with pytest.raises(ValueError, match="on_change"):
    runs.open_run(str(tmp_path / "a"), _config(), RUN_ONLY, on_change="overwrite")


def test_non_empty_folder_without_config_is_refused(tmp_path):
  folder = tmp_path / "a"
  folder.mkdir()
  (folder / "notes.txt").write_text("mine")
  with pytest.raises(ConfigChangedError, match="not a run folder"):
    runs.open_run(str(folder), _config(), RUN_ONLY)
  assert not (folder / runs.CONFIG_FILE).exists()


def test_empty_existing_folder_is_used(tmp_path):
  folder = tmp_path / "a"
  folder.mkdir()
  run = runs.open_run(str(folder), _config(), RUN_ONLY)
  assert not run.resumed and (folder / runs.CONFIG_FILE).exists()


def test_unreadable_config_json_is_refused(tmp_path):
  folder = tmp_path / "a"
  folder.mkdir()
  (folder / runs.CONFIG_FILE).write_text("{not json")
  with pytest.raises(ConfigChangedError, match="unreadable"):
    runs.open_run(str(folder), _config(), RUN_ONLY)


def test_write_record(tmp_path):
  run = runs.open_run(str(tmp_path / "a"), _config(), RUN_ONLY)
  path = runs.write_record(run, {"name": "r", "metrics": {"hr@5": 0.5}})
  assert path == run.record_path
  with open(path) as f:
    assert json.load(f) == {"name": "r", "metrics": {"hr@5": 0.5}}


def test_check_writable_cannot_create(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(ValueError, match=r"--results_dir=.*cannot create"):
    runs.check_writable(str(blocker / "sub"), "--results_dir")


def test_check_writable_read_only_folder(tmp_path):
  folder = tmp_path / "ro"
  folder.mkdir()
  os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
  try:
    if os.access(folder, os.W_OK):
      pytest.skip("chmod does not stop writing here (running as root)")
    with pytest.raises(ValueError, match=r"--results_dir=.*not writable"):
      runs.check_writable(str(folder), "--results_dir")
  finally:
    os.chmod(folder, stat.S_IRWXU)


def test_check_writable_creates_missing_folder(tmp_path):
  folder = tmp_path / "new" / "deeper"
  runs.check_writable(str(folder), "--results_dir")
  assert folder.is_dir()


def test_check_writable_not_writable_message(tmp_path, monkeypatch):
  # The same branch as above without relying on chmod (which root ignores).
  folder = tmp_path / "ro"
  folder.mkdir()
  monkeypatch.setattr(runs.os, "access", lambda path, mode: False)
  with pytest.raises(ValueError) as e:
    runs.check_writable(str(folder), "--results_dir")
  assert str(e.value) == f"--results_dir={str(folder)!r}: the folder is not writable"


def test_a_field_added_later_at_its_default_still_resumes(tmp_path):
  """A folder made before a config field existed lacks it in config.json: read as its
  default (the behaviour from before the field), the run resumes; another value does not."""
  old = {"model": {"lr": 0.1}, "seed": 0}
  first = runs.open_run(str(tmp_path / "r"), old)
  defaults = {"model": {"lr": 1.0, "min_steps": 0}, "seed": 0}
  now = {"model": {"lr": 0.1, "min_steps": 0}, "seed": 0}
  again = runs.open_run(str(tmp_path / "r"), now, defaults=defaults)
  assert again.resumed and again.path == first.path
  with pytest.raises(runs.ConfigChangedError, match="model.min_steps: 0 -> 1500"):
    runs.open_run(str(tmp_path / "r"), {"model": {"lr": 0.1, "min_steps": 1500}, "seed": 0},
                  defaults=defaults)
