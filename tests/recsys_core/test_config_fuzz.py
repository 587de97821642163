"""Fuzz tests over the pipeline configs' fields (hypothesis, derandomised): any value set on
any field of any model's config either parses or raises ValueError
whose message names the field; never another exception, and nothing is read or written.

Cases: 300 per model config (popularity, ease, anime_ae, phoenix_retrieval, mult_vae,
recvae, sasrec): 2,100 in all.
"""
import math

from hypothesis import HealthCheck, given, settings, strategies as st
import pytest

from experiments.configs import anime_ae, ease, mult_vae, phoenix_retrieval, popularity
from experiments.configs import recvae, sasrec
from recsys_core import pipeline
from recsys_core.data import source

CONFIGS = {"popularity": popularity, "ease": ease, "anime_ae": anime_ae,
           "phoenix_retrieval": phoenix_retrieval, "mult_vae": mult_vae, "recvae": recvae,
           "sasrec": sasrec}

VALUES = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.text(max_size=8), st.sampled_from(["", "none", "full", "l2"]),
    st.tuples(st.integers(-5, 5)), st.tuples())


def _leaves(d, prefix=""):
  for k, v in d.items():
    path = f"{prefix}.{k}" if prefix else k
    if isinstance(v, dict):
      yield from _leaves(v, path)
    else:
      yield path


def _set(d, path, value):
  *parents, leaf = path.split(".")
  for key in parents:
    d = d[key]
  d[leaf] = value


@pytest.fixture(autouse=True)
def no_reading(monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError("parse must not read data")
  monkeypatch.setattr(source, "read", refuse)
  monkeypatch.setattr(source, "load", refuse)


@pytest.mark.parametrize("model", sorted(CONFIGS))
def test_any_value_on_any_field_parses_or_names_the_field(model):
  base = CONFIGS[model].get_config("dataset=synthetic,recipe=default").to_dict()
  fields = [f for f in _leaves(base) if f not in ("model.name", "name")]

  @settings(max_examples=300, deadline=None, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck))
  @given(field=st.sampled_from(fields), value=VALUES)
  def check(field, value):
    cfg = CONFIGS[model].get_config("dataset=synthetic,recipe=default").to_dict()
    _set(cfg, field, value)
    try:
      pipeline.parse(cfg)
    except ValueError as e:
      leaf = field.split(".")[-1]
      assert leaf in str(e) or field.split(".")[0] in str(e), (field, value, str(e))
  check()
