"""Typed configs from config files: nested frozen dataclasses built from plain mappings.

Config files (`experiments/configs/*.py`) return `ml_collections.ConfigDict`s, which are easy
to override on the command line but accept any key. The library reads them through
`from_dict(DataclassType, mapping, where)`, which builds the (nested) dataclass and rejects a
key the dataclass does not have, naming its dotted path and the keys it knows: a typo in
`--config.model.lerning_rate=...` fails before any data is loaded.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def plain(values: Any) -> Any:
  """A ConfigDict / mapping / dataclass as nested plain dicts, lists as tuples."""
  if dataclasses.is_dataclass(values) and not isinstance(values, type):
    return {f.name: plain(getattr(values, f.name)) for f in dataclasses.fields(values)}
  if hasattr(values, "to_dict"):
    values = values.to_dict()
  if isinstance(values, Mapping):
    return {str(k): plain(v) for k, v in values.items()}
  if isinstance(values, (list, tuple)):
    return tuple(plain(v) for v in values)
  return values


def from_dict(cls: type[T], values: Any, where: str = "config") -> T:
  """Builds dataclass `cls` from `values` (mapping, ConfigDict or None = defaults).

  Fields that are dataclasses themselves are built recursively from nested mappings.

  Raises:
    ValueError: a key that is not a field of `cls` (message: the dotted path `where.key`
      and the known keys).
  """
  if values is None:
    return cls()
  if isinstance(values, cls):
    return values
  values = plain(values)
  if not isinstance(values, Mapping):
    raise ValueError(f"{where}: expected a section of fields, got {values!r}")
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - set(fields))
  if unknown:
    raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
  hints = typing.get_type_hints(cls)
  kwargs = {}
  for key, value in values.items():
    sub = _dataclass_type(hints.get(key))
    if sub is not None:     # a section: None means its defaults
      kwargs[key] = from_dict(sub, value, f"{where}.{key}")
    else:
      kwargs[key] = _typed(value, hints.get(key), f"{where}.{key}")
  try:
    return cls(**kwargs)
  except (ValueError, TypeError) as e:
    if str(e).startswith(where):   # already names its dotted field
      raise
    raise type(e)(f"{where}: {e}") from None


def _typed(value: Any, hint: Any, where: str) -> Any:
  """`value` checked against the field's annotation `hint` (ints where floats are expected
  become floats). Raises ValueError naming `where` for a value of another type or a
  non-finite float; annotations it does not know are not checked."""
  if _matches(value, hint):
    return float(value) if hint is float and not isinstance(value, bool) else value
  raise ValueError(f"{where}={value!r}: expected {_describe(hint)}")


def _matches(value: Any, hint: Any) -> bool:
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if hint is None or hint is Any or isinstance(hint, typing.TypeVar):
    return True
  if hint is type(None):
    return value is None
  if origin is typing.Union:
    return any(_matches(value, a) for a in args)
  if origin is typing.Literal:
    return value in args
  if hint is bool:
    return isinstance(value, bool)
  if hint is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if hint is float:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))
  if hint is str:
    return isinstance(value, str)
  if hint is tuple or origin is tuple:
    if not isinstance(value, tuple):
      return False
    if len(args) == 2 and args[1] is Ellipsis:
      return all(_matches(v, args[0]) for v in value)
    return not args or (len(args) == len(value) and all(map(_matches, value, args)))
  return True   # other annotations (arrays, callables, dataclass instances): not checked


def _describe(hint: Any) -> str:
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin is typing.Union:
    return " or ".join(_describe(a) for a in args)
  if origin is typing.Literal:
    return "one of " + ", ".join(repr(a) for a in args)
  if hint is type(None):
    return "None"
  if hint is float:
    return "a finite number"
  if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
    return f"a list of {_describe(args[0])}"
  return getattr(hint, "__name__", str(hint))


def _dataclass_type(hint: Any) -> Any:
  """The dataclass type of a field's annotation (also inside Optional[...]), else None."""
  if dataclasses.is_dataclass(hint):
    return hint
  for arg in typing.get_args(hint):
    if dataclasses.is_dataclass(arg):
      return arg
  return None


def check(condition: bool, where: str, value: Any, allowed: str) -> None:
  """Raises ValueError "<where>=<value>: must be <allowed>" unless `condition`."""
  if not condition:
    raise ValueError(f"{where}={value!r}: must be {allowed}")
