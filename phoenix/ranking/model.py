"""The ranking model as a pure haiku function: `PhoenixModel` logits of candidate lists.

`transform_logits(cfg)`: hk.transform of RecsysBatch -> logits [B, C, A], the embeddings
from the hash tables (phoenix.embeddings). Parameters: {"phoenix": <its haiku params>};
"phoenix" loads into the runners (phoenix.runners).

Shape glossary: B lists, S history length, C candidates, A action heads (19).
"""
from __future__ import annotations

import haiku as hk

from phoenix.embeddings import lookup_embeddings
from phoenix.ranking.config import RankingConfig


def transform_logits(cfg: RankingConfig) -> hk.Transformed:
  """hk.transform of batch (RecsysBatch) -> logits [B, C, A] of the model `cfg` defines."""

  def forward(batch):
    model = cfg.model_config().make()
    return model(batch, lookup_embeddings(batch, cfg.emb)).logits

  return hk.transform(forward)
