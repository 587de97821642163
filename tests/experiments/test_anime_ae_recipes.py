"""experiments/configs/anime_ae.py: each recipe holds, field by field, the AE sections of the
config it replaces (the old `anime_ae.py:eval`, `:full` and `:quick`, copied below from the
file as it was before the pipeline style), and every recipe parses as a pipeline config."""
import dataclasses

import pytest

from anime_ae.config import AEConfig
from experiments.configs import anime_ae
from recsys_core import pipeline

# The old file's `_base()`: the seed's sections (the old "full" config), as literals.
_OLD_BASE = {
    "model": dict(hidden_dim=1024, bottleneck_dim=512, noise_std=0.1, shared_decoder=False,
                  input_norm="none"),
    "loss": dict(huber_delta=1.0, weighting="uncertainty", presence_weight=1.0,
                 rating_weight=1.0),
    "ratings": dict(lo=None, hi=None, neutral=None, tau=None, z_clip=2.0, std_floor=None,
                    dropped_mode="fixed", dropped_rating=2.0, dropped_k=1.5,
                    dropped_in_loss=True),
    "data": dict(min_ratings=30, keep_statuses=None, dropout_rate=0.4, dropout_spread=0.4),
    "train": dict(steps=3000, batch_size=256, learning_rate=5e-4, weight_decay=0.0,
                  clip_norm=None, ema_decay=0.0, plateau=True, plateau_factor=0.5,
                  plateau_patience=10, plateau_cooldown=0, plateau_accumulation_size=25,
                  plateau_min_scale=0.01, seed=0, log_every=100, eval_every=0,
                  checkpoint_every=0),
    "recommend": dict(mix=0.2, niche_boost=0.0, filter_plan_to_watch=True,
                      rating_temperature=0.5, top_k=10, explain_top=3),
}

# The old file's per-argument overrides of `_base()`, as (section, field): value.
_OLD_OVERRIDES = {
    "full": {},
    "quick": {("model", "hidden_dim"): 256, ("model", "bottleneck_dim"): 128,
              ("train", "steps"): 150, ("train", "batch_size"): 128,
              ("train", "learning_rate"): 1e-3, ("train", "log_every"): 50},
    "eval": {("model", "hidden_dim"): 512, ("model", "bottleneck_dim"): 256,
             ("model", "input_norm"): "l2", ("data", "min_ratings"): 1,
             ("data", "dropout_rate"): 0.6, ("train", "steps"): 600,
             ("train", "batch_size"): 256, ("train", "learning_rate"): 1e-3,
             ("train", "log_every"): 50, ("train", "eval_every"): 100},
    # Not in the old file: the Mult-DAE presence path that validation chose (2026-12-08).
    "dae": {("model", "hidden_dim"): 600, ("model", "activation"): "tanh",
            ("model", "use_bottleneck"): False, ("model", "decoder_depth"): 0,
            ("model", "noise_std"): 0.0, ("model", "input_norm"): "l2",
            ("data", "min_ratings"): 1, ("data", "dropout_kind"): "bernoulli",
            ("data", "dropout_rate"): 0.5, ("loss", "presence_reduction"): "sum",
            ("train", "steps"): 600, ("train", "batch_size"): 256,
            ("train", "learning_rate"): 1e-3, ("train", "log_every"): 50,
            ("train", "eval_every"): 100},
}

_RECIPE_OF = {"default": "dae", "v1": "eval", "seed": "full", "quick": "quick"}


def _old(name: str) -> dict:
  sections = {s: dict(fields) for s, fields in _OLD_BASE.items()}
  for (section, field), value in _OLD_OVERRIDES[name].items():
    sections[section][field] = value
  return sections


def test_every_recipe_is_tested():
  assert set(anime_ae.RECIPES) == set(_RECIPE_OF)


@pytest.mark.parametrize("recipe", sorted(_RECIPE_OF))
def test_recipe_holds_the_old_configs_values_field_by_field(recipe):
  """Every field of the old config has its old value; a field added to AEConfig since
  (absent from the old file) has AEConfig's default, the behaviour before it existed."""
  got = anime_ae.get_config(f"recipe={recipe}").model.to_dict()
  assert got.pop("name") == "anime_ae"
  expected = _old(_RECIPE_OF[recipe])
  defaults = AEConfig().to_dict()
  assert set(got) == set(expected) == set(defaults)
  for section, fields in got.items():
    assert set(expected[section]) <= set(fields), section
    for field, value in fields.items():
      want = expected[section].get(field, defaults[section][field])
      assert value == want, (recipe, f"{section}.{field}", value, want)
      assert type(value) is type(want), (recipe, f"{section}.{field}")


def test_seed_recipe_differs_from_aeconfig_defaults_only_in_steps():
  """AEConfig's defaults are the seed's values but for train.steps (2000): the seed recipe
  says 3000 explicitly, so a change of a default shows up in the test above."""
  assert anime_ae.RECIPES["seed"] == {"model.train.steps": 3000}
  assert AEConfig().train.steps == 2000


@pytest.mark.parametrize("recipe", sorted(_RECIPE_OF))
@pytest.mark.parametrize("dataset", ["anime", "ml100k", "synthetic"])
def test_every_recipe_parses(recipe, dataset, tmp_path):
  cfg = anime_ae.get_config(f"dataset={dataset},recipe={recipe}")
  if dataset == "ml100k":
    cfg.data.dir = str(tmp_path)  # parse checks that the folder exists; nothing is read
  parsed = pipeline.parse(cfg)
  assert parsed.model_name == "anime_ae" and parsed.name == f"anime_ae_{dataset}_{recipe}"
  old = _old(_RECIPE_OF[recipe])
  for section, fields in old.items():
    typed = dataclasses.asdict(getattr(parsed.model, section))
    assert {k: typed[k] for k in fields} == fields, section


def test_default_recipe_and_dataset():
  cfg = anime_ae.get_config()
  assert cfg.name == "anime_ae_anime_default" and cfg.data.name == "anime"
  assert cfg.model.model.hidden_dim == 600 and not cfg.model.model.use_bottleneck


@pytest.mark.parametrize("arg", ["quick", "recipe=full", "recipe=eval"])
def test_old_arguments_fail_naming_the_new_ones(arg):
  with pytest.raises(ValueError, match="recipe"):
    anime_ae.get_config(arg)


@pytest.mark.parametrize("dataset", ["anime", "ml100k", "mlsmall"])
def test_v1_recipe_is_the_config_of_the_committed_protocol_a_results(dataset):
  """The old file's :eval ran 400 steps; the committed results overrode it to 600 steps
  validated every 100 (their recorded config): recipe v1 (the default until validation chose
  the Mult-DAE presence path) is what they ran."""
  import json
  import pathlib
  path = (pathlib.Path(__file__).parents[2] / "experiments" / "results"
          / f"anime_ae_eval_{dataset}_strong_generalization.json")
  recorded = json.loads(path.read_text())["config"]
  model = anime_ae.get_config("recipe=v1").model.to_dict()
  for section in ("model", "loss", "ratings", "data", "train", "recommend"):
    for key, value in model[section].items():
      want = recorded[section].get(key, getattr(getattr(AEConfig(), section), key))
      value = list(value) if isinstance(value, tuple) else value
      want = list(want) if isinstance(want, tuple) else want
      assert value == want, (section, key, value, want)
