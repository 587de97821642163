"""The model registry: every model the pipeline trains and evaluates, by name.

A model is a module that defines
  Config                      a frozen dataclass: the fields of `config.model` less `name`
  fit(config, ctx) -> Fitted  trains on ctx.train, selects on ctx.validate, returns a Scorer
(see `recsys_core.models.base`). `get(name)` finds it: the short names of `BUILTIN`, or any
dotted module path (`--config.model.name=my_package.my_model`), so a new model is one file
and needs no edit here. The library's two models live in their own packages; only their
module paths are named below, nothing of them is imported until asked for.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from recsys_core.models.base import FitContext
from recsys_core.models.base import Fitted

BUILTIN = {
    "popularity": "recsys_core.models.popularity",
    "ease": "recsys_core.models.ease",
    "mult_vae": "recsys_core.models.mult_vae",
    "recvae": "recsys_core.models.recvae",
    "sasrec": "recsys_core.models.sasrec",
    "anime_ae": "anime_ae.adapter",
    "phoenix_retrieval": "phoenix.retrieval.adapter",
    "phoenix_two_stage": "phoenix.ranking.adapter",
}


def get(name: str) -> ModuleType:
  """The model module registered as `name` (a short name or a dotted module path).

  Raises:
    ValueError: no such model (the message lists the built-in names), or the module lacks
      `Config` or `fit`.
  """
  path = BUILTIN.get(name, name)
  if "." not in path:
    raise ValueError(f"model.name={name!r}: unknown model; built-in: {sorted(BUILTIN)}, or a "
                     "dotted module path that defines Config and fit")
  try:
    module = importlib.import_module(path)
  except ModuleNotFoundError as e:
    if path in (e.name or "") or (e.name or "").startswith(path.split(".")[0]):
      raise ValueError(f"model.name={name!r}: no module {path!r} ({e}); built-in: "
                       f"{sorted(BUILTIN)}") from None
    raise
  for attr in ("Config", "fit"):
    if not hasattr(module, attr):
      raise ValueError(f"model.name={name!r}: module {path} defines no {attr!r}")
  return module


__all__ = ["BUILTIN", "FitContext", "Fitted", "get"]
