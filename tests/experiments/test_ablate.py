"""experiments/ablate.py: variants of one recipe through the pipeline, paired by seed."""
import pytest

from experiments import ablate
from experiments.configs import ease
from recsys_core import comparison


def test_variant_text_is_read_as_literals_where_they_parse():
  assert ablate.parse_variant("base:") == ("base", {})
  label, over = ablate.parse_variant("v:model.l2_grid=(5.0, 50.0),model.x=True,data.name=file")
  assert label == "v"
  assert over == {"model.l2_grid": (5.0, 50.0), "model.x": True, "data.name": "file"}
  with pytest.raises(ValueError, match="expected <label>:<field>=<value>"):
    ablate.parse_variant("no_colon")
  with pytest.raises(ValueError, match="is not <field>=<value>"):
    ablate.parse_variant("v:model.l2_grid")


def test_variants_are_checked_before_anything_trains():
  base = ease.get_config("dataset=synthetic,recipe=quick")
  with pytest.raises(KeyError, match="model.l2_gird"):
    ablate.variant_configs(base, ["base:", "v:model.l2_gird=(1.0,)"], [0])
  with pytest.raises(ValueError, match="model.l2_grid"):
    ablate.variant_configs(base, ["base:", "v:model.l2_grid=(-1.0,)"], [0])
  with pytest.raises(ValueError, match="given twice"):
    ablate.variant_configs(base, ["base:", "base:model.l2_grid=(1.0,)"], [0])


def test_paired_differences_are_the_per_seed_differences(tmp_path):
  base = ease.get_config("dataset=synthetic,recipe=quick")
  configs = ablate.variant_configs(base, ["base:", "tiny_l2:model.l2_grid=(0.5,)"], [0, 1])
  assert [c.name for c in configs["tiny_l2"]] == ["ease_synthetic_quick_tiny_l2_seed0",
                                                  "ease_synthetic_quick_tiny_l2_seed1"]
  record = comparison.run(configs, name="a", runs_root=str(tmp_path))
  diffs = ablate.paired_differences(record, "base")
  got = record["models"]["tiny_l2"]["metrics"]["ndcg@10"]["values"]
  ref = record["models"]["base"]["metrics"]["ndcg@10"]["values"]
  assert diffs["tiny_l2"]["ndcg@10"]["values"] == pytest.approx([a - b for a, b in zip(got, ref)])
  assert got != ref    # the variant changed the model
