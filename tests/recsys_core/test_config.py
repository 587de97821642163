"""recsys_core.config: typed configs built from mappings (`from_dict`, `plain`, `check`).

Tested: nested dataclasses are built from nested mappings (also from a ConfigDict and inside
Optional[...]), an unknown key (top-level or nested) is rejected with its dotted path and the
known keys, None means "the defaults", lists become tuples, and `check`'s message format.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import pytest
from ml_collections import config_dict

from recsys_core import config as config_lib
from recsys_core.config import from_dict


@dataclasses.dataclass(frozen=True)
class Train:
  learning_rate: float = 1e-3
  steps: int = 10


@dataclasses.dataclass(frozen=True)
class Model:
  name: str = "m"
  train: Train = Train()
  sizes: tuple[int, ...] = (1, 2)
  extra: Optional[Train] = None


@dataclasses.dataclass(frozen=True)
class Top:
  seed: int = 0
  model: Model = Model()


def test_builds_nested_dataclasses():
  cfg = from_dict(Top, {"seed": 3, "model": {"name": "x", "train": {"learning_rate": 0.5}}})
  assert isinstance(cfg, Top)
  assert isinstance(cfg.model, Model)
  assert isinstance(cfg.model.train, Train)
  assert cfg == Top(seed=3, model=Model(name="x", train=Train(learning_rate=0.5, steps=10)))


def test_builds_dataclass_inside_optional():
  cfg = from_dict(Model, {"extra": {"steps": 7}})
  assert cfg.extra == Train(steps=7)


def test_builds_from_config_dict():
  cd = config_dict.ConfigDict({"seed": 1, "model": {"train": {"steps": 4}, "sizes": [8]}})
  cfg = from_dict(Top, cd)
  assert cfg == Top(seed=1, model=Model(train=Train(steps=4), sizes=(8,)))


def test_instance_is_returned_unchanged():
  model = Model(name="given")
  assert from_dict(Model, model) is model


def test_rejects_unknown_nested_key_with_dotted_path():
  with pytest.raises(ValueError) as e:
    from_dict(Model, {"train": {"lerning_rate": 0.1}}, "model")
  msg = str(e.value)
  assert "model.train: unknown key(s) ['lerning_rate']" in msg
  assert "known: ['learning_rate', 'steps']" in msg


def test_rejects_unknown_key_two_levels_down_with_default_where():
  with pytest.raises(ValueError, match=r"config\.model\.train: unknown key\(s\) \['stepz'\]"):
    from_dict(Top, {"model": {"train": {"stepz": 1}}})


def test_rejects_unknown_top_level_keys_sorted():
  with pytest.raises(ValueError) as e:
    from_dict(Top, {"zeta": 1, "alpha": 2, "seed": 0}, "cfg")
  assert "cfg: unknown key(s) ['alpha', 'zeta']; known: ['model', 'seed']" in str(e.value)


def test_rejects_a_value_where_a_section_is_expected():
  with pytest.raises(ValueError, match=r"model\.train: expected a section of fields"):
    from_dict(Model, {"train": 3}, "model")


def test_none_means_defaults():
  assert from_dict(Top, None) == Top()
  assert from_dict(Top, {"model": None}) == Top()
  assert from_dict(Top, {"model": {"train": None, "name": "n"}}) == Top(model=Model(name="n"))


def test_lists_become_tuples():
  cfg = from_dict(Model, {"sizes": [3, 4, 5]})
  assert cfg.sizes == (3, 4, 5)
  assert isinstance(cfg.sizes, tuple)
  nested = config_lib.plain({"a": [[1, 2], [3]]})
  assert nested == {"a": ((1, 2), (3,))}
  assert all(isinstance(v, tuple) for v in nested["a"])


def test_plain_of_a_dataclass_is_nested_dicts():
  assert config_lib.plain(Top()) == {
      "seed": 0,
      "model": {"name": "m", "train": {"learning_rate": 1e-3, "steps": 10}, "sizes": (1, 2),
                "extra": None}}


def test_check_message_names_field_value_and_rule():
  config_lib.check(True, "a.b", 1, "anything")
  with pytest.raises(ValueError) as e:
    config_lib.check(False, "protocol.ks", (), "a non-empty list")
  assert str(e.value) == "protocol.ks=(): must be a non-empty list"
