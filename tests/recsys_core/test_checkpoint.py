"""Checkpoints: round trips, atomic commits, damaged-checkpoint fallback, shape mismatch errors."""
import json
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from recsys_core import train
from recsys_core.train import checkpoint as ckpt_lib


def _state(hidden=4, seed=0, typed_key=False):
  rs = np.random.default_rng(seed)
  params = {"mlp/~/linear_0": {"w": jnp.asarray(rs.normal(size=(3, hidden)), jnp.float32),
                               "b": jnp.zeros((hidden,), jnp.float32)},
            "mlp/~/linear_1": {"w": jnp.asarray(rs.normal(size=(hidden, 1)), jnp.float32)}}
  opt = train.make_optimizer(train.OptimizerConfig(plateau=True))
  rng = jax.random.key(seed) if typed_key else jax.random.PRNGKey(seed)
  return train.init_train_state(params, opt, rng)


def _assert_trees_equal(a, b):
  la, ta = jax.tree.flatten(a)
  lb, tb = jax.tree.flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x, y = jax.random.key_data(x), jax.random.key_data(y)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _bump(state, k):
  return state._replace(params=jax.tree.map(lambda p: p + k, state.params),
                        step=jnp.asarray(k, jnp.int32))


@pytest.mark.parametrize("typed_key", [False, True])
def test_round_trip_and_retention(tmp_path, typed_key):
  mgr = train.CheckpointManager(str(tmp_path / "ck"), max_to_keep=2)
  assert mgr.restore(_state()) is None  # nothing yet
  base = _state(typed_key=typed_key)
  for k in (1, 2, 3):
    mgr.save(k, _bump(base, k), {"best": 0.5 * k, "config": {"lr": 1e-3}})
  assert mgr.all_steps() == [2, 3]
  state, meta, step = mgr.restore(base)
  assert step == 3 and meta == {"best": 1.5, "config": {"lr": 1e-3}}
  _assert_trees_equal(state, _bump(base, 3))
  assert isinstance(state, train.TrainState)
  state2, _, _ = mgr.restore(base, step=2)
  _assert_trees_equal(state2, _bump(base, 2))
  with pytest.raises(train.CheckpointError, match="no checkpoint of step 1 "):
    mgr.restore(base, step=1)  # pruned (max_to_keep=2)


def test_commit_is_atomic_and_leftovers_are_cleaned(tmp_path):
  d = tmp_path / "ck"
  mgr = train.CheckpointManager(str(d))
  mgr.save(5, _state(), {})
  names = os.listdir(d)
  assert names == ["step_00000005"], names  # no tmp dirs left behind
  assert sorted(os.listdir(d / "step_00000005")) == ["COMMIT.json", "arrays", "meta.json"]
  # A save killed before its rename leaves only a .tmp- dir: never listed, removed on reopen.
  (d / ".tmp-step_00000006-deadbeef" / "arrays").mkdir(parents=True)
  assert train.CheckpointManager(str(d)).all_steps() == [5]
  assert not (d / ".tmp-step_00000006-deadbeef").exists()


def _newest_data_file(step_dir):
  files = []
  for root, _, names in os.walk(step_dir / "arrays"):
    files += [os.path.join(root, n) for n in names if "/d/" in os.path.join(root, n)]
  assert files
  return max(files, key=os.path.getsize)


@pytest.mark.parametrize("damage", ["truncate", "delete", "flip", "no_commit", "bad_meta"])
def test_damaged_latest_falls_back_to_previous(tmp_path, caplog, damage):
  d = tmp_path / "ck"
  mgr = train.CheckpointManager(str(d), max_to_keep=3)
  base = _state()
  mgr.save(10, _bump(base, 10), {"n": 10})
  mgr.save(20, _bump(base, 20), {"n": 20})
  latest = d / "step_00000020"
  if damage == "truncate":
    path = _newest_data_file(latest)
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)
  elif damage == "delete":
    os.remove(_newest_data_file(latest))
  elif damage == "flip":
    path = _newest_data_file(latest)
    with open(path, "r+b") as f:
      f.seek(os.path.getsize(path) // 2)
      byte = f.read(1)
      f.seek(-1, 1)
      f.write(bytes([byte[0] ^ 0xFF]))
  elif damage == "no_commit":  # e.g. a copy that stopped half-way
    os.remove(latest / "COMMIT.json")
  else:
    (latest / "meta.json").write_text("{not json")
  with pytest.raises(train.CheckpointError):
    train.verify_checkpoint_dir(str(latest))
  with caplog.at_level(logging.WARNING):
    state, meta, step = mgr.restore(base)
  assert step == 10 and meta == {"n": 10}
  _assert_trees_equal(state, _bump(base, 10))
  assert any("step_00000020" in r.getMessage() and "damaged" in r.getMessage()
             for r in caplog.records), [r.getMessage() for r in caplog.records]
  # The damaged one is moved aside: a later save of step 20 works and becomes the latest.
  assert mgr.all_steps() == [10]
  assert any(n.startswith("damaged-step_00000020") for n in os.listdir(d))
  mgr.save(20, _bump(base, 21), {"n": 21})
  assert mgr.restore(base)[1] == {"n": 21}


def test_all_damaged_raises(tmp_path):
  mgr = train.CheckpointManager(str(tmp_path / "ck"))
  mgr.save(1, _state(), {})
  os.remove(tmp_path / "ck" / "step_00000001" / "COMMIT.json")
  with pytest.raises(train.CheckpointError, match="no intact checkpoint"):
    mgr.restore(_state())


def test_shape_mismatch_names_path_and_both_shapes(tmp_path):
  mgr = train.CheckpointManager(str(tmp_path / "ck"))
  mgr.save(1, _state(hidden=4), {})
  with pytest.raises(train.CheckpointMismatchError) as err:
    mgr.restore(_state(hidden=6))
  msg = str(err.value)
  assert (".params['mlp/~/linear_0']['w']: shape (3, 4) in the checkpoint, "
          "(3, 6) in the model") in msg
  assert "(4,) in the checkpoint, (6,) in the model" in msg  # the bias, and adam's moments
  assert mgr.all_steps() == [1]  # a config error is not damage: nothing is moved aside


def test_missing_and_extra_params_are_named(tmp_path):
  mgr = train.CheckpointManager(str(tmp_path / "ck"))
  state = _state()
  mgr.save(1, state.params, {})
  other = dict(state.params)
  other["extra"] = {"w": jnp.zeros((2,))}
  del other["mlp/~/linear_1"]
  with pytest.raises(train.CheckpointMismatchError) as err:
    mgr.restore(other)
  msg = str(err.value)
  assert "['extra']['w']: missing in the checkpoint" in msg
  assert "['mlp/~/linear_1']['w']: in the checkpoint (shape (4, 1)) but not in the model" in msg


def test_save_load_params_round_trip_without_target(tmp_path):
  params = {"enc": {"w": np.arange(6, dtype=np.float32).reshape(2, 3),
                    "b16": jnp.ones((3,), jnp.bfloat16)},
            "log_var": np.float32(0.5), "ids": np.arange(4, dtype=np.int32)}
  path = str(tmp_path / "p" / "best.npz")
  train.save_params(path, params, {"step": 7, "metric": "ndcg", "config": {"x": [1, 2]}})
  got, meta = train.load_params(path)
  assert meta == {"step": 7, "metric": "ndcg", "config": {"x": [1, 2]}}
  assert got["enc"]["b16"].dtype == jnp.bfloat16
  _assert_trees_equal(got, jax.tree.map(np.asarray, params))
  got2, _ = train.load_params(path, target=params)  # with a target: its structure
  _assert_trees_equal(got2, jax.tree.map(np.asarray, params))
  with pytest.raises(train.CheckpointMismatchError, match=r"\['enc'\]\['w'\]: shape \(2, 3\)"):
    train.load_params(path, target={**params, "enc": {**params["enc"], "w": np.zeros((2, 4))}})
  assert os.listdir(tmp_path / "p") == ["best.npz"]  # no tmp file left


def test_save_params_overwrites_atomically_and_damage_is_detected(tmp_path):
  path = str(tmp_path / "p.npz")
  train.save_params(path, {"w": np.zeros(3, np.float32)}, {"v": 1})
  train.save_params(path, {"w": np.ones(300, np.float32)}, {"v": 2})
  got, meta = train.load_params(path)
  assert meta == {"v": 2} and got["w"].shape == (300,)
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size - 40)
  with pytest.raises(train.CheckpointError, match="damaged"):
    train.load_params(path)


def test_params_file_never_needs_pickle(tmp_path):
  path = str(tmp_path / "p.npz")
  train.save_params(path, {"w": np.zeros(3, np.float32)}, {"v": 1})
  with np.load(path, allow_pickle=False) as z:  # would raise on any object array
    for k in z.files:
      assert z[k].dtype != object
  meta = json.loads(str(np.load(path, allow_pickle=False)[ckpt_lib._SPEC_KEY]))
  assert meta["metadata"] == {"v": 1}


def test_optax_states_round_trip(tmp_path):
  params = {"w": jnp.ones((2, 2))}
  opt = train.make_optimizer(train.OptimizerConfig(name="adamw", weight_decay=0.1, plateau=True))
  st = opt.init(params)
  mgr = train.CheckpointManager(str(tmp_path / "ck"))
  mgr.save(0, {"opt": st, "none": None, "empty": ()}, {})
  got, _, _ = mgr.restore({"opt": st, "none": None, "empty": ()})
  _assert_trees_equal(got, {"opt": st, "none": None, "empty": ()})
  assert (type(optax.tree_utils.tree_get(got, "scale"))
          is type(optax.tree_utils.tree_get(st, "scale")))
