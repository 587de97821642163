"""`RankingConfig`: a Phoenix ranking model (the shared TransformerFields), its data rules
(history, action thresholds, candidate lists) and the weights of its ranking score.

The ranking score of a candidate is sum_a w_a p_a over the action heads' probabilities, with
the weights `score_weights` (default `DEFAULT_SCORE_WEIGHTS`; `weight_vector` gives [A]).

Shape glossary: S history length (history_len), C candidates (num_positives +
num_negatives), A action heads (19), D embedding size.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import jax.numpy as jnp
import numpy as np

from phoenix import batching
from phoenix.recsys_model import PhoenixModelConfig
from phoenix.transformer_fields import TransformerFields

DEFAULT_SCORE_WEIGHTS = {"favorite": 1.0, "click": 0.5, "not_interested": -1.0}


@dataclasses.dataclass(frozen=True)
class RankingConfig(TransformerFields):
  """A ranking model (the TransformerFields), its data rules and training."""
  history_len: int = 64
  user_mode: str = "id"
  high_threshold: Optional[float] = 4.0
  low_threshold: Optional[float] = 2.0
  num_positives: int = 8                # true next engagements per list
  num_negatives: int = 24               # sampled negatives per list
  negative_sampler: str = "uniform"     # "uniform" | "popularity"
  score_weights: tuple = tuple(DEFAULT_SCORE_WEIGHTS.items())

  @classmethod
  def from_dict(cls, fields: Mapping[str, Any], **overrides):
    m = dict(fields, **overrides)
    m["score_weights"] = tuple(tuple(w) for w in m["score_weights"])   # JSON lists
    return super().from_dict(m)

  def rules(self) -> batching.ActionRules:
    return batching.ActionRules(self.high_threshold, self.low_threshold)

  def batching_config(self) -> batching.BatchingConfig:
    return batching.BatchingConfig(history_len=self.history_len, rules=self.rules(),
                                   user_mode=self.user_mode, pad_side="left")

  def model_config(self) -> PhoenixModelConfig:
    return PhoenixModelConfig(model=self.transformer_config(), emb_size=self.emb.emb_size,
                              num_actions=batching.NUM_ACTIONS,
                              history_seq_len=self.history_len,
                              candidate_seq_len=self.num_positives + self.num_negatives,
                              fprop_dtype=jnp.dtype(self.fprop_dtype),
                              hash_config=self.emb.hash_config(),
                              normalize_before_projection=self.normalize_before_projection)

  def weight_vector(self) -> np.ndarray:
    w = np.zeros(batching.NUM_ACTIONS, np.float32)
    for name, value in self.score_weights:
      w[batching.ACTIONS.index(name)] = value
    return w
