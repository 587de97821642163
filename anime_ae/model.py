"""The two-head denoising autoencoder (dm-haiku), as in the seed's Flax `Recommender`.

  input  [B, 2I] = concat(normalised ratings [B, I], presence flags [B, I])
  encoder Dense(hidden) -> swish -> Dense(bottleneck, name "bottleneck")
  z = bottleneck + N(0, noise_std^2)  (training only; apply with is_training=False is deterministic)
  presence head: Dense(hidden/2) -> swish -> Dense(hidden) -> swish -> Dense(I)  = item_logits
  rating head:   Dense(hidden/2) -> swish -> Dense(hidden) -> swish -> Dense(I)  = rating_pred
  log_var_presence, log_var_rating: learnable scalars (Kendall et al. 2018 uncertainty weights)

`shared_decoder=True` (an ablation) runs one Dense(hidden/2) -> Dense(hidden) trunk for both
output layers instead of two separate heads.

The presence path can also be built like the reference autoencoders (Mult-DAE: one wide tanh
layer, no bottleneck, output layers straight from the code): `activation` ("swish" or
"tanh"), `use_bottleneck` (False: the hidden layer is the code z), `decoder_depth` (2: the
seed's Dense(hidden/2) -> Dense(hidden) per head; 1: Dense(hidden); 0: none, the output layers
read z).

Shape glossary: B batch, I items (corpus), H hidden, Z bottleneck.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp


ACTIVATIONS = {"swish": jax.nn.swish, "tanh": jnp.tanh}


class AEOutput(NamedTuple):
  item_logits: jax.Array       # [B, I] presence logits (softmax over the corpus)
  rating_pred: jax.Array       # [B, I] predicted normalised rating
  log_var_presence: jax.Array  # [] learnable log-variance of the presence task
  log_var_rating: jax.Array    # [] learnable log-variance of the rating task
  bottleneck: jax.Array        # [B, Z] bottleneck activations (before the noise)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of the autoencoder (defaults: the seed's)."""
  hidden_dim: int = 1024
  bottleneck_dim: int = 512
  noise_std: float = 0.1
  shared_decoder: bool = False
  # "l2": divide each input row by the L2 norm of its presence vector, sqrt(|profile|)
  # (Mult-VAE's input normalisation; not in the seed). "none": the seed's raw input.
  input_norm: str = "none"
  activation: str = "swish"
  use_bottleneck: bool = True
  decoder_depth: int = 2
  # log sigma^2 = log_var_scale * (its parameter): Adam moves a parameter by about the
  # learning rate per step, so at scale 1 and lr 1e-3 the uncertainty weights barely leave
  # their start in a 600-step run; a larger scale lets them settle (Kendall et al.'s optimum).
  log_var_scale: float = 1.0

  def __post_init__(self):
    if self.input_norm not in ("none", "l2"):
      raise ValueError(f"input_norm must be 'none' or 'l2', got {self.input_norm!r}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"model.activation must be one of {sorted(ACTIVATIONS)}, got "
                       f"{self.activation!r}")
    if self.decoder_depth not in (0, 1, 2):
      raise ValueError(f"model.decoder_depth must be 0, 1 or 2, got {self.decoder_depth}")
    if not self.log_var_scale > 0:
      raise ValueError(f"model.log_var_scale must be > 0, got {self.log_var_scale}")

  def make(self, num_items: int) -> hk.Transformed:
    """Returns the haiku-transformed forward fn(x_rating, x_presence, is_training) -> AEOutput."""
    cfg = self

    def forward(x_rating, x_presence, is_training: bool = False, encoder_pre=None):
      return TwoHeadAE(cfg, num_items)(x_rating, x_presence, is_training, encoder_pre)

    return hk.transform(forward)


class TwoHeadAE(hk.Module):
  """Encoder with a noisy bottleneck and two decoder heads (presence, rating)."""

  def __init__(self, config: ModelConfig, num_items: int, name: Optional[str] = None):
    super().__init__(name=name or "two_head_ae")
    self.config = config
    self.num_items = num_items

  def __call__(self, x_rating, x_presence, is_training: bool = False,
               encoder_pre=None) -> AEOutput:
    """x_rating, x_presence [B, I] -> AEOutput. `encoder_pre` [B, H], if given, replaces the
    input layer's output (x @ w + b): see `holdout_forward`; the inputs are then unused."""
    cfg = self.config
    if encoder_pre is None:
      x = jnp.concatenate([x_rating, x_presence], axis=-1)               # [B, 2I]
      if cfg.input_norm == "l2":
        x = x * jax.lax.rsqrt(jnp.maximum(x_presence.sum(-1, keepdims=True), 1.0))
      encoder_pre = hk.Linear(cfg.hidden_dim, name="encoder")(x)          # [B, H]
    act = ACTIVATIONS[cfg.activation]
    h = act(encoder_pre)                                                   # [B, H]
    bottleneck = (hk.Linear(cfg.bottleneck_dim, name="bottleneck")(h)     # [B, Z]
                  if cfg.use_bottleneck else h)
    z = bottleneck
    if is_training and cfg.noise_std > 0:
      z = z + cfg.noise_std * jax.random.normal(hk.next_rng_key(), z.shape, z.dtype)
    trunk = lambda prefix: _trunk(z, cfg.hidden_dim, prefix, cfg.decoder_depth, act)
    if cfg.shared_decoder:
      d1 = d2 = trunk("dec_shared")
    else:
      d1, d2 = trunk("dec_item"), trunk("dec_rating")
    item_logits = hk.Linear(self.num_items, name="item_logits")(d1)       # [B, I]
    rating_pred = hk.Linear(self.num_items, name="rating_pred")(d2)       # [B, I]
    scale = cfg.log_var_scale
    log_var_presence = scale * hk.get_parameter("log_var_presence", (), init=jnp.zeros)
    log_var_rating = scale * hk.get_parameter("log_var_rating", (), init=jnp.zeros)
    return AEOutput(item_logits, rating_pred, log_var_presence, log_var_rating, bottleneck)


def holdout_forward(config: ModelConfig, num_items: int):
  """Jitted fn(params, items [n], values [n], valid [n]) -> (pred_rating [n], log_prob [n]):
  for each profile item k, the model's outputs at k given the profile without k.

  All n leave-one-out copies in one batch, using the input layer's linearity: with
  raw = x @ w for the full profile x, the copy without item k has raw - w[k] * value_k -
  w[I + k] (its rating and presence rows), so no [n, 2I] input is built and the input matmul
  is replaced by n row subtractions. `valid` marks real entries (the rest is padding).
  """
  tf = config.make(num_items)

  def fn(params, items, values, valid):
    w = params["two_head_ae/encoder"]["w"]                                 # [2I, H]
    b = params["two_head_ae/encoder"]["b"]                                 # [H]
    own = (w[items] * values[:, None] + w[num_items + items]) * valid[:, None]  # [n, H]
    raw = own.sum(0, keepdims=True) - own                                  # [n, H]
    if config.input_norm == "l2":
      raw = raw * jax.lax.rsqrt(jnp.maximum(valid.sum() - 1.0, 1.0))
    out = tf.apply(params, None, None, None, False, raw + b)
    rows = jnp.arange(items.shape[0])
    return (out.rating_pred[rows, items],
            jax.nn.log_softmax(out.item_logits, axis=-1)[rows, items])

  return jax.jit(fn)


def _trunk(z, hidden: int, prefix: str, depth: int = 2, act=jax.nn.swish):
  """A decoder head minus its output layer: depth 2 is Dense(hidden/2) -> act ->
  Dense(hidden) -> act (the seed's), 1 is Dense(hidden) -> act, 0 is z itself."""
  if depth == 0:
    return z
  if depth == 2:
    z = act(hk.Linear(max(hidden // 2, 1), name=f"{prefix}_up1")(z))
  return act(hk.Linear(hidden, name=f"{prefix}_up2")(z))
