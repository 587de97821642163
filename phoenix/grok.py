"""Grok-style decoder transformer used by the Phoenix ranking and retrieval models.

Interface kept from X's public Phoenix release (shared/docs/phoenix.md §1): `TransformerConfig`
with `.make()`, `Transformer(embeddings, mask, candidate_start_offset)`,
`make_recsys_attn_mask`, and haiku parameter names
`transformer/decoder_layer_{i}/{rms_norm*, multi_head_attention/{query,key,value,linear}/w,
linear, linear_v, linear_1}`.

Differences from the release (§2, §3):
- Trainable initialisation by default (variance scaling, RMSNorm scale 1); the release's
  all-zero init is kept only as `zero_init=True`, for loading release weights.
- Every candidate gets the same rotary position (`candidate_start_offset`, right after the
  last history item), so a candidate's output depends only on the prefix and itself. The
  release's sequential candidate positions (offset, offset+1, ...; scores depend on the
  slot) remain available as `candidate_positions="sequential"`, for the ablation only.
- Optional learnable attention temperature applied BEFORE the soft cap.
- `Transformer.extend` scores new tokens (candidates) against the cached keys/values of a
  prefix, with the same modules and parameters as `Transformer.__call__` (phoenix/serving.py).

Shape glossary: B batch, T sequence length, D model size, H query heads, K key/value heads,
G = H // K query heads per key/value head, d key size, M cached (memory) positions.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

# Soft cap of the attention logits: logits -> CAP * tanh(logits / CAP).
ATTN_LOGIT_CAP = 30.0
# Learnable temperature: temperature = MIN_TEMPERATURE + softplus(raw parameter).
MIN_TEMPERATURE = 0.1
ROPE_BASE = 10000
# TransformerConfig.candidate_positions values.
CANDIDATE_POSITIONS = ("shared", "sequential")
_MASKED_LOGIT = -1e30


def ffn_size(emb_size: int, widening_factor: float) -> int:
  """Hidden size of the gated feed-forward: int(widening*D)*2//3 rounded up to a multiple of 8."""
  size = int(widening_factor * emb_size) * 2 // 3
  return size + (8 - size) % 8


def make_recsys_attn_mask(seq_len: int, candidate_start_offset: int,
                          dtype=jnp.float32) -> jax.Array:
  """[1, 1, T, T] attention mask (1 = may attend) with candidate isolation.

  Positions < `candidate_start_offset` (user + history) attend causally among themselves.
  Each candidate (position >= offset) attends to every position < offset and to itself,
  never to another candidate.
  """
  query = jnp.arange(seq_len)[:, None]
  key = jnp.arange(seq_len)[None, :]
  mask = (key <= query) & ((key < candidate_start_offset) | (key == query))
  return mask.astype(dtype)[None, None]


def _weight_init(zero_init: bool) -> hk.initializers.Initializer:
  if zero_init:
    return hk.initializers.Constant(0.0)
  return hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal")


def temperature_raw_init() -> float:
  """The raw parameter value for which the effective temperature is exactly 1."""
  return float(np.log(np.expm1(1.0 - MIN_TEMPERATURE)))


def effective_temperature(raw: jax.Array) -> jax.Array:
  """Effective attention temperature (>= MIN_TEMPERATURE) of the raw learned parameter."""
  return MIN_TEMPERATURE + jax.nn.softplus(raw)


class Linear(hk.Module):
  """Linear layer with float32 parameters computed in the input's dtype (no bias by default)."""

  def __init__(self, output_size: int, with_bias: bool = False, zero_init: bool = False,
               name: Optional[str] = None):
    super().__init__(name=name)
    self.output_size = output_size
    self.with_bias = with_bias
    self.zero_init = zero_init

  def __call__(self, inputs: jax.Array) -> jax.Array:
    dtype = inputs.dtype
    w = hk.get_parameter("w", [inputs.shape[-1], self.output_size], jnp.float32,
                         init=_weight_init(self.zero_init))
    out = jnp.dot(inputs, w.astype(dtype))
    if self.with_bias:
      b = hk.get_parameter("b", [self.output_size], jnp.float32, init=jnp.zeros)
      out = out + b.astype(dtype)
    return out


class RMSNorm(hk.Module):
  """RMS normalisation over the last axis, computed in float32, with a learned scale."""

  def __init__(self, eps: float = 1e-5, zero_init: bool = False, name: Optional[str] = None):
    super().__init__(name=name)
    self.eps = eps
    self.zero_init = zero_init

  def __call__(self, inputs: jax.Array) -> jax.Array:
    scale = hk.get_parameter("scale", [inputs.shape[-1]], jnp.float32,
                             init=jnp.zeros if self.zero_init else jnp.ones)
    x = inputs.astype(jnp.float32)
    x = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.eps)
    return (scale * x).astype(inputs.dtype)


def rms_norm(x: jax.Array, zero_init: bool = False, name: Optional[str] = None) -> jax.Array:
  return RMSNorm(zero_init=zero_init, name=name)(x)


# The release's name for the RMSNorm helper (it is not a LayerNorm).
layer_norm = rms_norm


def apply_rotary(x: jax.Array, positions: jax.Array, base: int = ROPE_BASE) -> jax.Array:
  """Rotary position embedding of x [B, T, heads, d] at `positions` [B or 1, T]."""
  d = x.shape[-1]
  inv_freq = 1.0 / (base ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
  phase = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, d/2]
  phase = jnp.concatenate([phase, phase], axis=-1)[:, :, None, :]
  xf = x.astype(jnp.float32)
  x1, x2 = jnp.split(xf, 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  return (xf * jnp.cos(phase) + rotated * jnp.sin(phase)).astype(x.dtype)


class KVMemory(NamedTuple):
  """Keys and values of M already-processed positions of one layer (rotary applied).

  keys, values: [B, M, K, d]; mask: [B, M] bool, the positions that may be attended.
  """
  keys: jax.Array
  values: jax.Array
  mask: jax.Array


class MultiHeadAttention(hk.Module):
  """Grouped-query self-attention with rotary positions, soft-capped float32 softmax.

  Two ways to call it, sharing projections, parameters and the attention-weight math:
  - `memory=None`: the queries attend to the keys of `x` itself under `mask` [B, 1, T, T].
  - `memory=KVMemory`: each query attends to the memory (where `memory.mask`) and to its own
    key only (where `mask` [B, T] is set): candidate scoring against a cached prefix.
  Returns (output [B, T, D], KVMemory of x's own keys/values).
  """

  def __init__(self, num_q_heads: int, num_kv_heads: int, key_size: int, *, model_size: int,
               attn_output_multiplier: float = 1.0, learnable_temperature: bool = False,
               zero_init: bool = False, name: Optional[str] = None):
    super().__init__(name=name)
    if num_q_heads % num_kv_heads:
      raise ValueError(f"num_q_heads={num_q_heads} is not a multiple of "
                       f"num_kv_heads={num_kv_heads}")
    self.num_q_heads = num_q_heads
    self.num_kv_heads = num_kv_heads
    self.key_size = key_size
    self.model_size = model_size
    self.attn_output_multiplier = attn_output_multiplier
    self.learnable_temperature = learnable_temperature
    self.zero_init = zero_init

  @hk.name_like("__call__")
  def _project(self, x, num_heads, name):
    y = Linear(num_heads * self.key_size, zero_init=self.zero_init, name=name)(x)
    return y.reshape(*x.shape[:-1], num_heads, self.key_size)

  def _attention_weights(self, logits: jax.Array, mask: jax.Array, dtype) -> jax.Array:
    """Softmax weights (in `dtype`) of raw q.k logits; `mask` broadcasts against logits."""
    logits = logits.astype(jnp.float32) * self.attn_output_multiplier
    if self.learnable_temperature:
      raw = hk.get_parameter("attention_temperature_raw", [], jnp.float32,
                             init=hk.initializers.Constant(temperature_raw_init()))
      logits = logits / effective_temperature(raw)  # before the cap, so the cap still bounds
    logits = ATTN_LOGIT_CAP * jnp.tanh(logits / ATTN_LOGIT_CAP)
    logits = jnp.where(mask, logits, _MASKED_LOGIT)
    return jax.nn.softmax(logits, axis=-1).astype(dtype)

  def __call__(self, x: jax.Array, mask: jax.Array, positions: jax.Array,
               memory: Optional[KVMemory] = None) -> tuple[jax.Array, KVMemory]:
    b, t, _ = x.shape
    q = apply_rotary(self._project(x, self.num_q_heads, "query"), positions)
    k = apply_rotary(self._project(x, self.num_kv_heads, "key"), positions)
    v = self._project(x, self.num_kv_heads, "value")
    q = q.reshape(b, t, self.num_kv_heads, self.num_q_heads // self.num_kv_heads, self.key_size)
    if memory is None:
      logits = jnp.einsum("bthgd,bshd->bhgts", q, k)
      weights = self._attention_weights(logits, mask[:, :, None, :, :] > 0, x.dtype)
      attn = jnp.einsum("bhgts,bshd->bthgd", weights, v)
    else:
      m = memory.keys.shape[1]
      logits = jnp.concatenate([jnp.einsum("bthgd,bshd->bhgts", q, memory.keys),
                                jnp.einsum("bthgd,bthd->bhgt", q, k)[..., None]], axis=-1)
      full_mask = jnp.concatenate(
          [jnp.broadcast_to(memory.mask[:, None, None, None, :], (b, 1, 1, t, m)),
           mask[:, None, None, :, None]], axis=-1)
      weights = self._attention_weights(logits, full_mask, x.dtype)
      attn = (jnp.einsum("bhgts,bshd->bthgd", weights[..., :m], memory.values)
              + jnp.einsum("bhgt,bthd->bthgd", weights[..., m], v))
    attn = attn.reshape(b, t, self.num_q_heads * self.key_size)
    out = Linear(self.model_size, zero_init=self.zero_init, name="linear")(attn)
    return out, KVMemory(keys=k, values=v, mask=None)


class DecoderLayer(hk.Module):
  """Pre/post-RMSNorm attention and gated-GELU feed-forward blocks with residual adds."""

  def __init__(self, config: "TransformerConfig", name: Optional[str] = None):
    super().__init__(name=name)
    self.config = config

  def __call__(self, h: jax.Array, mask: jax.Array, positions: jax.Array,
               memory: Optional[KVMemory] = None, dropout_rate: float = 0.0
               ) -> tuple[jax.Array, KVMemory]:
    cfg = self.config
    zero = cfg.zero_init

    def drop(x):  # on each block's output, before its residual add (training only)
      return hk.dropout(hk.next_rng_key(), dropout_rate, x) if dropout_rate > 0 else x

    attn, kv = MultiHeadAttention(
        cfg.num_q_heads, cfg.num_kv_heads, cfg.key_size, model_size=h.shape[-1],
        attn_output_multiplier=cfg.attn_output_multiplier,
        learnable_temperature=cfg.learnable_temperature, zero_init=zero,
        name="multi_head_attention")(rms_norm(h, zero, "rms_norm"), mask, positions, memory)
    h = h + drop(rms_norm(attn, zero, "rms_norm_1"))
    x = rms_norm(h, zero, "rms_norm_2")
    hidden = ffn_size(h.shape[-1], cfg.widening_factor)
    h_v = Linear(hidden, zero_init=zero, name="linear_v")(x)
    h_w1 = jax.nn.gelu(Linear(hidden, zero_init=zero, name="linear")(x))
    dense = Linear(h.shape[-1], zero_init=zero, name="linear_1")(h_w1 * h_v)
    return h + drop(rms_norm(dense, zero, "rms_norm_3")), kv


class TransformerOutput(NamedTuple):
  """embeddings: [B, T, D]; memory: per layer, the KVMemory of the T positions (mask = the
  padding mask), for `Transformer.extend`."""
  embeddings: jax.Array
  memory: Optional[tuple[KVMemory, ...]] = None


@dataclasses.dataclass
class TransformerConfig:
  """Transformer hyper-parameters (field names and defaults as in the release).

  learnable_temperature: one learned temperature per layer dividing the attention logits
    before the soft cap (improvement §3; off = the plain model).
  zero_init: the release's all-zero init of weights and norm scales. The model cannot train
    from it; use it only as a shape template for loading release weights.
  candidate_positions: rotary positions of the candidates (positions >= the
    candidate_start_offset). "shared" (default): every candidate at the offset, so a
    candidate's output does not depend on its slot. "sequential": the release's behaviour,
    candidate j at offset + j (known defect §2.2; kept only to measure it).
  dropout_rate: dropout on the attention and feed-forward block outputs before each
    residual add, applied only in `Transformer.__call__(..., is_training=True)` (needs an
    rng). 0 = none (the release).
  """
  emb_size: int
  key_size: int
  num_q_heads: int
  num_kv_heads: int
  num_layers: int
  widening_factor: float = 4.0
  attn_output_multiplier: float = 1.0
  name: Optional[str] = None
  learnable_temperature: bool = False
  zero_init: bool = False
  candidate_positions: str = "shared"
  dropout_rate: float = 0.0

  def __post_init__(self):
    if self.candidate_positions not in CANDIDATE_POSITIONS:
      raise ValueError(f"candidate_positions must be one of {CANDIDATE_POSITIONS}, "
                       f"got {self.candidate_positions!r}")

  def make(self) -> "Transformer":
    return Transformer(self, name=self.name)


class Transformer(hk.Module):
  """Stack of decoder layers (`transformer/decoder_layer_{i}`)."""

  def __init__(self, config: TransformerConfig, name: Optional[str] = None):
    super().__init__(name=name)
    self.config = config

  @hk.name_like("__call__")
  def _layers(self):
    return [DecoderLayer(self.config, name=f"decoder_layer_{i}")
            for i in range(self.config.num_layers)]

  def __call__(self, embeddings: jax.Array, mask: jax.Array,
               candidate_start_offset: Optional[int] = None,
               is_training: bool = False) -> TransformerOutput:
    """embeddings [B, T, D], mask [B, T] (1 = valid token) -> TransformerOutput.

    With `candidate_start_offset`, positions >= offset are candidates: isolated by
    `make_recsys_attn_mask` and all given the rotary position `candidate_start_offset`
    (with config.candidate_positions="sequential": offset, offset+1, ..., as in the release).
    Without it the mask is plain causal and positions are 0..T-1. `is_training` turns on
    config.dropout_rate (inside hk.transform with an rng).
    """
    _, seq_len, _ = embeddings.shape
    dtype = embeddings.dtype
    positions = jnp.arange(seq_len)[None, :]
    if candidate_start_offset is None:
      attn_mask = jnp.tril(jnp.ones((1, 1, seq_len, seq_len), dtype))
    else:
      attn_mask = make_recsys_attn_mask(seq_len, candidate_start_offset, dtype)
      if self.config.candidate_positions == "shared":
        positions = jnp.minimum(positions, candidate_start_offset)
    full_mask = mask[:, None, None, :].astype(dtype) * attn_mask
    h = embeddings
    memory = []
    rate = self.config.dropout_rate if is_training else 0.0
    for layer in self._layers():
      h, kv = layer(h, full_mask, positions, dropout_rate=rate)
      memory.append(kv._replace(mask=mask.astype(bool)))
    return TransformerOutput(embeddings=h, memory=tuple(memory))

  @hk.name_like("__call__")
  def extend(self, embeddings: jax.Array, mask: jax.Array,
             memory: tuple[KVMemory, ...]) -> TransformerOutput:
    """Runs new tokens embeddings [B, C, D] (mask [B, C]) against a cached prefix.

    Each new token attends to the M cached positions and to itself only, at rotary position
    M (M + j for token j with candidate_positions="sequential"): exactly what the
    candidates of `__call__(prefix + candidates, ..., offset=M)` compute.
    """
    b, c, _ = embeddings.shape
    m = memory[0].keys.shape[1]
    if self.config.candidate_positions == "shared":
      positions = jnp.full((1, c), m)
    else:
      positions = m + jnp.arange(c)[None, :]
    h = embeddings
    for layer, mem in zip(self._layers(), memory):
      h, _ = layer(h, mask.astype(bool), positions, mem)
    return TransformerOutput(embeddings=h)
