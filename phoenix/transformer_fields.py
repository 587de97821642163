"""`TransformerFields`: the model fields that RetrievalConfig and RankingConfig share.

Flat and JSON-friendly (a config file's or a result file's `model` section maps onto them
1:1, with `emb` as a dict): the hash embeddings (phoenix.embeddings.EmbeddingConfig) and the
transformer's sizes and options (phoenix.grok.TransformerConfig).

Shape glossary: D embedding size (emb.emb_size).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from phoenix.embeddings import EmbeddingConfig
from phoenix.grok import TransformerConfig


@dataclasses.dataclass(frozen=True)
class TransformerFields:
  """The model fields shared by RetrievalConfig and RankingConfig (flat, JSON-friendly).

  num_layers=0 is the no-transformer ablation (reduce blocks only).
  """
  emb: EmbeddingConfig = EmbeddingConfig()
  num_layers: int = 2
  num_q_heads: int = 2
  num_kv_heads: int = 2
  key_size: int = 32
  widening_factor: float = 4.0
  learnable_attention_temperature: bool = False
  normalize_before_projection: bool = True
  fprop_dtype: str = "float32"

  @classmethod
  def from_dict(cls, fields: Mapping[str, Any], **overrides):
    """The config from flat fields with `emb` as a dict (a config file's or a result
    file's `model`); keyword overrides win."""
    m = dict(fields, **overrides)
    m["emb"] = EmbeddingConfig(**dict(m["emb"]))
    return cls(**m)

  def transformer_config(self) -> TransformerConfig:
    return TransformerConfig(emb_size=self.emb.emb_size, key_size=self.key_size,
                             num_q_heads=self.num_q_heads, num_kv_heads=self.num_kv_heads,
                             num_layers=self.num_layers, widening_factor=self.widening_factor,
                             learnable_temperature=self.learnable_attention_temperature)
