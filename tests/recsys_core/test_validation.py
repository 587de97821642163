"""Bad values are refused by the pipeline's parse, before any data is read or anything
compiles, with the dotted field, the value and what is allowed."""
import pytest

from experiments.configs import anime_ae
from experiments.configs import phoenix_retrieval
from recsys_core import pipeline


@pytest.mark.parametrize("field,value,message", [
    ("model.optimizer.learning_rate", -1.0, "model.optimizer: learning_rate must be > 0"),
    ("model.optimizer.b2", 1.0, "model.optimizer: b2 must be in [0, 1)"),
    ("model.train.num_epochs", -2.0, "model.train.num_epochs=-2.0: must be > 0"),
    ("model.train.batch_size", 0, "model.train.batch_size=0: must be >= 1"),
    ("model.train.num_evals", -1, "model.train.num_evals=-1: must be >= 0"),
    ("protocol.eval_users", -5, "protocol.eval_users=-5: must be >= 0"),
    ("protocol.batch_size", 0, "protocol.batch_size=0: must be >= 1"),
])
def test_phoenix_retrieval_values(field, value, message):
  cfg = phoenix_retrieval.get_config("dataset=synthetic,recipe=quick")
  node = cfg
  *parents, leaf = field.split(".")
  for key in parents:
    node = node[key]
  node[leaf] = value
  with pytest.raises(ValueError) as e:
    pipeline.parse(cfg)
  assert message in str(e.value)


@pytest.mark.parametrize("field,value,message", [
    ("learning_rate", -1.0, "model.train: train.learning_rate=-1.0: must be > 0"),
    ("steps", 0, "model.train: train.steps=0: must be >= 1"),
    ("batch_size", -3, "model.train: train.batch_size=-3: must be >= 1"),
])
def test_autoencoder_values(field, value, message):
  cfg = anime_ae.get_config("dataset=anime,recipe=quick")
  cfg.model.train[field] = value
  with pytest.raises(ValueError) as e:
    pipeline.parse(cfg)
  assert message in str(e.value)
