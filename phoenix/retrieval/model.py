"""The retrieval model as pure haiku functions (params passed in; no data, no training state).

  * the user tower (`PhoenixRetrievalModel`, causal transformer over [user | history],
    masked mean or last-position read-out, L2 norm): `RetrievalFns.users` on the full
    history; `RetrievalFns.prefix_users` on every prefix of a window at once, whose
    per-position transformer outputs are pooled with a cumulative masked mean
    (`prefix_pool`): for a causal transformer this equals `build_user_representation` of
    each prefix on its own (tested);
  * the candidate tower (`build_candidate_representation`): `RetrievalFns.candidates`;
  * the learnable softmax temperature: `RetrievalFns.temperature`.

Parameters are one pytree {"phoenix": <haiku params>, "loss": {"log_temperature": []}};
"phoenix" loads into the runners (phoenix.runners).

Shape glossary: B batch, S history length, C candidates, I items, D embedding size.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import haiku as hk
import jax
import jax.numpy as jnp

from phoenix import losses
from phoenix.embeddings import lookup_embeddings
from phoenix.retrieval.config import RetrievalConfig


def prefix_pool(outputs: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Cumulative masked mean, L2-normalised: [B, T, D], [B, T] -> [B, T, D], [B, T] counts.

  Row t is the normalised mean of the valid outputs at positions 0..t: for a causal
  transformer, the user representation of the prefix ending at t.
  """
  m = mask.astype(jnp.float32)[..., None]
  csum = jnp.cumsum(outputs.astype(jnp.float32) * m, axis=1)
  count = jnp.cumsum(m, axis=1)
  mean = csum / jnp.maximum(count, 1.0)
  norm = jnp.sqrt(jnp.maximum(jnp.sum(mean * mean, axis=-1, keepdims=True), 1e-12))
  return mean / norm, count[..., 0]


def _retrieval_model(cfg: RetrievalConfig):
  return cfg.model_config().make()


def prefix_user_representations(model, batch, emb, pooling: Optional[str] = None,
                                is_training: bool = False) -> tuple[jax.Array, jax.Array]:
  """User representation of every prefix of the history: [B, S, D] (L2-normalised), [B, S].

  pooling="mean": row s is `build_user_representation` of the batch truncated to history
  positions 0..s (right-padded histories; the user token is included in every prefix).
  pooling="last": row s is the L2-normalised transformer output at history position s (the
  SASRec read-out; `build_user_representation` with pooling="last" of the truncated batch).
  Valid where the history position s holds an item. pooling=None: the model's own.
  is_training: the transformer's block dropout on (needs an rng).
  """
  pooling = pooling or model.config.pooling
  embeddings, mask = model.user_history_inputs(batch, emb)
  outputs = model.model(embeddings, mask, candidate_start_offset=None,
                        is_training=is_training).embeddings
  if pooling == "mean":
    pooled, _ = prefix_pool(outputs, mask)
  elif pooling == "last":
    pooled = outputs.astype(jnp.float32)
    pooled = pooled / jnp.sqrt(jnp.maximum(jnp.sum(pooled * pooled, -1, keepdims=True), 1e-12))
  else:
    raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
  return pooled[:, 1:], mask[:, 1:]


class RetrievalFns:
  """The haiku-transformed functions of a retrieval model (pure; params passed in)."""

  def __init__(self, cfg: RetrievalConfig):
    self.cfg = cfg
    ecfg = cfg.emb

    def prefix_users(batch, is_training: bool = False):
      model = _retrieval_model(cfg)
      emb = lookup_embeddings(batch, ecfg)
      if is_training and cfg.embedding_dropout > 0:
        drop = lambda x: hk.dropout(hk.next_rng_key(), cfg.embedding_dropout, x)
        emb = dataclasses.replace(
            emb, user_embeddings=drop(emb.user_embeddings),
            history_post_embeddings=drop(emb.history_post_embeddings),
            history_author_embeddings=drop(emb.history_author_embeddings))
      return prefix_user_representations(model, batch, emb, is_training=is_training)

    def users(batch):
      model = _retrieval_model(cfg)
      return model.build_user_representation(batch, lookup_embeddings(batch, ecfg))[0]

    def candidates(batch):
      model = _retrieval_model(cfg)
      return model.build_candidate_representation(batch, lookup_embeddings(batch, ecfg))

    def init_all(batch):
      model = _retrieval_model(cfg)
      emb = lookup_embeddings(batch, ecfg)
      u = prefix_user_representations(model, batch, emb)
      c = model.build_candidate_representation(batch, emb)
      model.build_user_representation(batch, emb)
      return u, c

    self._init = hk.transform(init_all)
    self.prefix_users = hk.without_apply_rng(hk.transform(prefix_users)).apply
    # prefix_users_train(params, rng, batch): with embedding and block dropout when configured.
    self.prefix_users_train = functools.partial(hk.transform(prefix_users).apply,
                                                is_training=True)
    self.users = hk.without_apply_rng(hk.transform(users)).apply
    self.candidates = hk.without_apply_rng(hk.transform(candidates)).apply

  def init(self, rng: jax.Array, batch) -> dict:
    model_params = self._init.init(rng, batch)
    return {"phoenix": model_params,
            "loss": {"log_temperature": jnp.asarray(math.log(self.cfg.init_temperature),
                                                    jnp.float32)}}

  def temperature(self, params) -> jax.Array:
    log_t = params["loss"]["log_temperature"]
    if not self.cfg.learn_temperature:
      log_t = jax.lax.stop_gradient(log_t)
    return losses.temperature_from_log(log_t)
