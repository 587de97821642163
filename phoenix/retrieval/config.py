"""`RetrievalConfig`: everything that defines a Phoenix retrieval model and its training.

The model fields (phoenix.transformer_fields.TransformerFields: hash embeddings and
transformer), then the data, loss and read-out fields. It builds the release's
`PhoenixRetrievalModelConfig` (`model_config`) and the batching rules (`batching_config`).
Serving needs only this config, the params and the items (phoenix.retrieval.scorer).

Shape glossary: B batch, S history length (history_len), I items, D embedding size.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from phoenix import batching
from phoenix.transformer_fields import TransformerFields


@dataclasses.dataclass(frozen=True)
class RetrievalConfig(TransformerFields):
  """Everything that defines a retrieval model and its training: the TransformerFields, then
  data, loss and read-out fields."""
  # Data.
  history_len: int = 200
  user_mode: str = "shared"
  window: str = "last"
  # Loss.
  loss: str = "full"                   # "full" | "sampled"
  num_negatives: int = 1024            # sampled: negatives drawn per step
  negative_sampler: str = "uniform"    # "uniform" | "popularity" (count ** alpha)
  sampler_alpha: float = 0.75
  num_in_batch: int = 256              # sampled: in-batch negatives (other rows' targets)
  log_q: bool = True
  init_temperature: float = 0.05
  learn_temperature: bool = True
  loss_positions: int = 0              # 0: every prefix; k: k random valid positions per row
  # 0: the loss is computed over all B*S (row, position) slots, padding included. M > 0:
  # the batch's valid target positions are packed into M slots first (a random M of them
  # when there are more; the count dropped is logged as `positions_dropped`). Same loss
  # when nothing is dropped, at M/(B*S) of the softmax cost: short sequences (Amazon, mean
  # length 9 in a window of 50) leave most slots empty.
  packed_positions: int = 0
  # User read-out: "mean" = the release's build_user_representation (masked mean over
  # [user | history]); "last" = the output at the last history position (SASRec-style).
  pooling: str = "mean"
  # Training only: dropout on the user tower's input embeddings (user and history hash
  # embeddings), the regulariser SASRec uses on ML-1M. 0 = off (the release has none).
  embedding_dropout: float = 0.0
  # Training only: dropout on every transformer block's attention and feed-forward outputs
  # (TransformerConfig.dropout_rate), SASRec's other dropout site. 0 = off.
  block_dropout: float = 0.0
  # Full softmax only: drop the items already in a loss row's history prefix (positions
  # 0..s for the target at s) from that row's softmax, except the target itself. The
  # evaluation ranks with seen items excluded, so pushing them down is wasted effort, and
  # it pushes down their neighbours (same brand or category) with them. False = the
  # plain softmax over every item.
  exclude_seen: bool = False

  def model_config(self):
    from phoenix.recsys_retrieval_model import (  # pylint: disable=g-import-not-at-top
        PhoenixRetrievalModelConfig)
    return PhoenixRetrievalModelConfig(
        model=dataclasses.replace(self.transformer_config(), dropout_rate=self.block_dropout),
        emb_size=self.emb.emb_size, history_seq_len=self.history_len,
        candidate_seq_len=1, fprop_dtype=jnp.dtype(self.fprop_dtype),
        hash_config=self.emb.hash_config(),
        normalize_before_projection=self.normalize_before_projection, pooling=self.pooling)

  def batching_config(self) -> batching.BatchingConfig:
    return batching.BatchingConfig(history_len=self.history_len, user_mode=self.user_mode,
                                   pad_side="right")

  def __post_init__(self):
    if self.loss_positions and self.packed_positions:
      raise ValueError("loss_positions and packed_positions are alternatives; set one "
                       f"(got {self.loss_positions} and {self.packed_positions})")
    if self.packed_positions < 0:
      raise ValueError(f"packed_positions must be >= 0, got {self.packed_positions}")
    if self.exclude_seen and self.loss != "full":
      raise ValueError(f"exclude_seen needs loss='full', got loss={self.loss!r}")
