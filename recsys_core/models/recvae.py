"""RecVAE (Shenbin et al. 2020, "RecVAE: a New Variational Autoencoder for Top-N
Recommendations with Implicit Feedback") as a pipeline model (`--config.model.name=recvae`).

Shape glossary: U users in the batch, I items, H hidden units, Z latent units, L encoder
layers.

Model (as the authors' reference code, github.com/ilya-shenbin/RecVAE, model.py and run.py):
  x        [U, I]  binary rows
  h0       [U, I]  x / ||x||_2, then dropout (encoder phase only, see below)
  h_k      [U, H]  LayerNorm(swish(h_{k-1} W_k + b_k + h_1 + ... + h_{k-1})),  k = 1..L
                   (densely connected: each layer adds the outputs of all earlier ones;
                   swish(a) = a * sigmoid(a); LayerNorm eps 0.1, with scale and offset)
  mu, lv   [U, Z]  h_L W_mu + b_mu, h_L W_lv + b_lv
  z        [U, Z]  mu + eps * exp(lv / 2) in training; z = mu in eval mode
  logits   [U, I]  z W_d + b_d                       (the decoder is one linear layer)
  loss = mean_u [ -sum_i x_ui log_softmax(logits_u)_i + kl_weight_u KL_u ]
  KL_u     = sum_k [log q(z_uk | x_u) - log p(z_uk | x_u)] at the sampled z (one-sample
             Monte Carlo estimate; the composite prior has no closed-form KL)
  kl_weight_u = gamma * |x_u| (|x_u| = the user's number of items), or beta when gamma = 0
  p(z_k | x) = w_1 N(z_k; 0, 1) + w_2 N(z_k; mu_old(x)_k, exp(lv_old(x)_k))
               + w_3 N(z_k; 0, exp(wide_logvar))              (the composite prior)
  with (w_1, w_2, w_3) = mixture_weights = (3/20, 3/4, 1/10), wide_logvar = 10, and
  mu_old, lv_old the encoder under its previous ("old") parameters, applied to the
  un-dropped x and taken as constants (no gradient).
Training alternates (run.py): one cycle = enc_epochs (3) epochs of encoder updates (input
dropout 0.5; the decoder unchanged), then the old encoder is set to the current encoder,
then dec_epochs (1) epochs of decoder updates (no dropout, z still sampled; the encoder
unchanged). Encoder and decoder have separate Adam optimizers (lr 5e-4, no clipping): an
optimizer's state moves only in its own phase. `epochs` (50) counts cycles; validation after
every eval_every_epochs cycles, the best evaluated params tested. Batch 500 users.

Assumptions (not settled by the paper or the reference code; the rest was checked against
copies of the reference code):
  * The mixture is taken per latent dimension (the reference stacks the three elementwise
    log densities and takes logsumexp elementwise before summing over Z), so the prior is a
    product over dimensions of 1-d mixtures, not a mixture of three Z-dimensional Gaussians
    as the paper's formula reads. This module follows the code.
  * The reference's old encoder starts from its own random initialisation until the first
    copy (after the first encoder phase); here it starts as a copy of the encoder, i.e. "the
    previous parameters" at step 0.
  * Weights and biases are initialised as PyTorch's nn.Linear does (uniform in
    +-1/sqrt(fan_in)), the reference's framework default.
  * Batches: the reference's last batch of an epoch is smaller; here it is padded with rows
    of weight 0 (recsys_core.models.mult_vae.PaddedBatches), the same update.
  * The paper's per-dataset settings (gamma, epochs) were tuned on ML-20M, Netflix and MSD;
    the defaults are run.py's (gamma 0.005, 50 cycles of 3 + 1 epochs, lr 5e-4).
  * The phase of an update is a function of its step; the optimizer counts its own updates
    to know it, which equals the step while no step is skipped (nan_policy="raise": a
    non-finite step stops training).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Callable, Mapping, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from recsys_core import train as train_lib
from recsys_core.config import check
from recsys_core.data.types import Interactions
from recsys_core.models.base import FitContext, Fitted
from recsys_core.models.mult_vae import AEScorer
from recsys_core.models.mult_vae import PaddedBatches
from recsys_core.models.mult_vae import Schedule
from recsys_core.models.mult_vae import epoch_schedule
from recsys_core.models.mult_vae import fit_info
from recsys_core.models.mult_vae import l2_normalize
from recsys_core.models.mult_vae import multinomial_nll
from recsys_core.models.mult_vae import run_loop
from recsys_core.models.mult_vae import training_rows

log = logging.getLogger(__name__)

RUN_ONLY = ("log_every", "checkpoint_every_epochs")
NAME = "recvae"


@dataclasses.dataclass(frozen=True)
class Config:
  """RecVAE; the defaults are the reference code's (run.py, model.py)."""
  hidden: int = 600                   # H
  latent: int = 200                   # Z
  layers: int = 5                     # L densely connected encoder layers
  dropout: float = 0.5                # input dropout in the encoder phase
  gamma: float = 0.005                # kl_weight = gamma * |x_u|; 0: a constant beta
  beta: float = 0.0                   # the constant KL weight when gamma = 0
  mixture_weights: tuple[float, ...] = (0.15, 0.75, 0.1)  # standard, old posterior, wide
  wide_logvar: float = 10.0           # log-variance of the wide component
  layer_norm_eps: float = 0.1
  epochs: int = 50                    # cycles of enc_epochs + dec_epochs epochs
  enc_epochs: int = 3
  dec_epochs: int = 1
  batch_size: int = 500               # users per update
  learning_rate: float = 5e-4         # Adam, encoder and decoder alike
  eval_every_epochs: int = 1          # cycles
  patience: int = 0                   # evaluations without a gain before stopping (0: never)
  checkpoint_every_epochs: int = 5    # cycles
  log_every: int = 50                 # steps

  def __post_init__(self):
    for name in ("hidden", "latent", "layers", "epochs", "enc_epochs", "dec_epochs",
                 "batch_size", "eval_every_epochs", "checkpoint_every_epochs", "log_every"):
      check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), ">= 1")
    check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "in [0, 1)")
    check(self.gamma >= 0.0 and self.beta >= 0.0, "model.gamma", (self.gamma, self.beta),
          "gamma >= 0 and beta >= 0")
    weights = tuple(float(w) for w in self.mixture_weights)
    check(len(weights) == 3 and all(w > 0 for w in weights)
          and abs(sum(weights) - 1.0) < 1e-6, "model.mixture_weights", self.mixture_weights,
          "three weights > 0 that sum to 1 (standard, old posterior, wide)")
    check(self.layer_norm_eps > 0.0, "model.layer_norm_eps", self.layer_norm_eps, "> 0")
    check(self.learning_rate > 0.0, "model.learning_rate", self.learning_rate, "> 0")
    check(self.patience >= 0, "model.patience", self.patience, ">= 0 (0: never stop early)")


# ----------------------------------------------------------------------------------------
# Densities and the composite prior.

LOG_2PI = math.log(2.0 * math.pi)


def log_normal(x: jax.Array, mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """Elementwise log N(x; mu, exp(logvar))."""
  return -0.5 * (logvar + LOG_2PI + (x - mu) ** 2 / jnp.exp(logvar))


def composite_prior_logpdf(z: jax.Array, post_mu: jax.Array, post_logvar: jax.Array,
                           weights=(0.15, 0.75, 0.1), wide_logvar: float = 10.0) -> jax.Array:
  """[U, Z] elementwise log p(z_k | x) of the composite prior:
  log(w_1 N(z; 0, 1) + w_2 N(z; post_mu, e^post_logvar) + w_3 N(z; 0, e^wide_logvar))."""
  zeros = jnp.zeros_like(z)
  parts = [log_normal(z, zeros, zeros),
           log_normal(z, post_mu, post_logvar),
           log_normal(z, zeros, zeros + wide_logvar)]
  parts = [p + math.log(w) for p, w in zip(parts, weights)]
  return jax.scipy.special.logsumexp(jnp.stack(parts, axis=-1), axis=-1)


# ----------------------------------------------------------------------------------------
# Networks.

def _linear(size: int, fan_in: int, name: str) -> hk.Linear:
  """PyTorch nn.Linear's initialisation: weights and biases uniform in +-1/sqrt(fan_in)."""
  bound = 1.0 / math.sqrt(fan_in)
  init = hk.initializers.RandomUniform(-bound, bound)
  return hk.Linear(size, w_init=init, b_init=init, name=name)


class Networks(NamedTuple):
  encoder: hk.Transformed   # apply(params, x [U, I], mask [U, I] | None) -> (mu, logvar)
  decoder: hk.Transformed   # apply(params, z [U, Z]) -> logits [U, I]


def networks(config: Config, num_items: int) -> Networks:
  """The encoder (dropout as a given [U, I] mask of 0 and 1 / (1 - rate), or None) and the
  decoder, both without rng."""

  def encode(x, mask=None):
    h = l2_normalize(x)
    if mask is not None:
      h = h * mask
    outputs = []
    for k in range(config.layers):
      pre = _linear(config.hidden, num_items if k == 0 else config.hidden, f"fc{k + 1}")(h)
      pre = pre + sum(outputs) if outputs else pre
      h = hk.LayerNorm(axis=-1, create_scale=True, create_offset=True,
                       eps=config.layer_norm_eps, name=f"ln{k + 1}")(jax.nn.swish(pre))
      outputs.append(h)
    return (_linear(config.latent, config.hidden, "mu")(h),
            _linear(config.latent, config.hidden, "logvar")(h))

  def decode(z):
    return _linear(num_items, config.latent, "decoder")(z)

  return Networks(hk.without_apply_rng(hk.transform(encode)),
                  hk.without_apply_rng(hk.transform(decode)))


def init_params(config: Config, nets: Networks, num_items: int, seed: int) -> dict[str, Any]:
  """{"encoder", "decoder", "old_encoder"}: the old encoder starts as a copy of the encoder."""
  k_enc, k_dec = jax.random.split(jax.random.PRNGKey(seed))
  encoder = nets.encoder.init(k_enc, jnp.zeros((1, num_items)))
  decoder = nets.decoder.init(k_dec, jnp.zeros((1, config.latent)))
  return {"encoder": encoder, "decoder": decoder,
          "old_encoder": jax.tree.map(jnp.array, encoder)}


# ----------------------------------------------------------------------------------------
# Alternating training.

class Phases(NamedTuple):
  """Which updates train what: step s is an encoder update iff s % cycle < encoder_steps."""
  cycle: int            # steps of one encoder + decoder cycle
  encoder_steps: int    # the first encoder_steps steps of a cycle update the encoder

  def is_encoder_step(self, step):
    return (step % self.cycle) < self.encoder_steps


def phases(config: Config, steps_per_epoch: int) -> Phases:
  return Phases((config.enc_epochs + config.dec_epochs) * steps_per_epoch,
                config.enc_epochs * steps_per_epoch)


def make_loss_fn(config: Config, nets: Networks, ph: Phases):
  """loss_fn(params, rng, batch) -> (loss, metrics); batch as PaddedBatches gives it."""
  weights = tuple(float(w) for w in config.mixture_weights)
  keep = 1.0 - config.dropout

  def loss_fn(params, rng, batch):
    x, weight = batch["x"], batch["weight"]
    k_drop, k_z = jax.random.split(rng)
    encoder_phase = ph.is_encoder_step(batch["step"])
    dropped = jax.random.bernoulli(k_drop, keep, x.shape).astype(x.dtype) / keep
    mask = jnp.where(encoder_phase, dropped, jnp.ones_like(x))
    mu, logvar = nets.encoder.apply(params["encoder"], x, mask)
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(k_z, mu.shape)
    nll = multinomial_nll(nets.decoder.apply(params["decoder"], z), x)      # [B]
    old_mu, old_logvar = nets.encoder.apply(jax.lax.stop_gradient(params["old_encoder"]), x)
    log_q = log_normal(z, mu, logvar)
    log_p = composite_prior_logpdf(z, old_mu, old_logvar, weights, config.wide_logvar)
    kl = jnp.sum(log_q - log_p, axis=-1)                                     # [B]
    kl_weight = config.gamma * jnp.sum(x, axis=-1) if config.gamma else config.beta
    mean = lambda v: jnp.sum(v * weight) / jnp.maximum(jnp.sum(weight), 1.0)
    loss = mean(nll + kl_weight * kl)
    return loss, {"nll": mean(nll), "kl": mean(kl),
                  "encoder_phase": encoder_phase.astype(jnp.float32)}

  return loss_fn


class AlternatingState(NamedTuple):
  count: jax.Array      # [] int32 updates so far (= the step while none is skipped)
  encoder: Any          # the encoder's optimizer state
  decoder: Any          # the decoder's optimizer state


def alternating_optimizer(opt_config: train_lib.OptimizerConfig,
                          ph: Phases) -> optax.GradientTransformation:
  """Two optimizers (make_optimizer(opt_config) each): the encoder's applies in encoder
  steps, the decoder's in decoder steps; the other part gets zero updates and its optimizer
  state does not move (as two torch optimizers stepped in turn). "old_encoder" never
  changes here (the update function copies it)."""
  enc_opt = train_lib.make_optimizer(opt_config)
  dec_opt = train_lib.make_optimizer(opt_config)

  def init_fn(params):
    return AlternatingState(jnp.zeros((), jnp.int32), enc_opt.init(params["encoder"]),
                            dec_opt.init(params["decoder"]))

  def update_fn(grads, state, params=None):
    on_encoder = ph.is_encoder_step(state.count)
    pick = lambda flag, new, old: jax.tree.map(lambda n, o: jnp.where(flag, n, o), new, old)
    zeros = lambda tree: jax.tree.map(jnp.zeros_like, tree)
    enc_up, enc_state = enc_opt.update(grads["encoder"], state.encoder, params["encoder"])
    dec_up, dec_state = dec_opt.update(grads["decoder"], state.decoder, params["decoder"])
    updates = {"encoder": pick(on_encoder, enc_up, zeros(enc_up)),
               "decoder": pick(on_encoder, zeros(dec_up), dec_up),
               "old_encoder": zeros(grads["old_encoder"])}
    return updates, AlternatingState(state.count + 1,
                                     pick(on_encoder, enc_state, state.encoder),
                                     pick(on_encoder, state.decoder, dec_state))

  return optax.GradientTransformation(init_fn, update_fn)


def make_update_fn(config: Config, nets: Networks, ph: Phases):
  """`train.make_update_fn` of the loss and the alternating optimizer, then the old-encoder
  copy: after the last encoder update of a cycle (step % cycle == encoder_steps)
  old_encoder := encoder (the reference's update_prior()). Returns (update, optimizer)."""
  optimizer = alternating_optimizer(
      train_lib.OptimizerConfig(learning_rate=config.learning_rate, clip_norm=None), ph)
  inner = train_lib.make_update_fn(make_loss_fn(config, nets, ph), optimizer)

  @jax.jit
  def copy_old(state: train_lib.TrainState) -> train_lib.TrainState:
    now = (state.step % ph.cycle) == ph.encoder_steps
    params = state.params
    old = jax.tree.map(lambda e, o: jnp.where(now, e, o), params["encoder"],
                       params["old_encoder"])
    return state._replace(params={**params, "old_encoder": old})

  def update(state, batch):
    state, metrics = inner(state, batch)
    return copy_old(state), metrics

  update.nan_policy = inner.nan_policy
  return update, optimizer


def logits_fn(nets: Networks) -> Callable[[Any, jax.Array], jax.Array]:
  """Eval mode: logits = decoder(mu(x)), no dropout, no sampling (jitted)."""
  return jax.jit(lambda p, x: nets.decoder.apply(p["decoder"],
                                                 nets.encoder.apply(p["encoder"], x)[0]))


# ----------------------------------------------------------------------------------------
# Training.

def train(config: Config, data: Interactions, seed: int, workdir: Optional[str] = None,
          validate: Optional[Callable[[AEScorer], Mapping[str, float]]] = None,
          selection_metric: Optional[str] = None) -> tuple[AEScorer, dict[str, Any]]:
  """Trains on `data` (resumable in `workdir`); with `validate` keeps the params of the best
  evaluation on `selection_metric`. Returns (scorer, info)."""
  batches = PaddedBatches(training_rows(data), config.batch_size, seed)
  cycle_epochs = config.enc_epochs + config.dec_epochs
  sched: Schedule = epoch_schedule(batches, config.epochs, config.eval_every_epochs,
                                   config.checkpoint_every_epochs, cycle_epochs)
  ph = phases(config, batches.steps_per_epoch)
  nets = networks(config, data.num_items)
  update, optimizer = make_update_fn(config, nets, ph)
  state = train_lib.init_train_state(init_params(config, nets, data.num_items, seed),
                                     optimizer, jax.random.PRNGKey(seed + 1))
  scoring = logits_fn(nets)
  refit = lambda other: train(config, other, seed)[0].params
  scorer_of = lambda p: AEScorer(NAME, scoring, p, data.num_items, refit)
  eval_fn = None if validate is None else (lambda p: validate(scorer_of(p)))
  log.info("%s: %d training users x %d items, %d steps (%d per epoch, cycles of %d)", NAME,
           sched.train_users, data.num_items, sched.num_steps, sched.steps_per_epoch,
           ph.cycle)
  result = run_loop(update, state, batches, sched, log_every=config.log_every,
                    patience=config.patience, workdir=workdir, eval_fn=eval_fn,
                    best_metric=selection_metric,
                    config={"model": dataclasses.asdict(config), "schedule": sched._asdict(),
                            "num_items": data.num_items})
  best_cycle = None if result.best_step is None else round(result.best_step / ph.cycle, 3)
  info = fit_info(result, sched, best_cycle=best_cycle, cycle_steps=ph.cycle,
                  encoder_steps=ph.encoder_steps)
  return scorer_of(result.selected_params), info


def fit(config: Config, ctx: FitContext) -> Fitted:
  """Trains on ctx.train, selects on ctx.validate, checkpoints in ctx.run_dir."""
  scorer, info = train(config, ctx.train, ctx.seed, ctx.run_dir, ctx.validate,
                       ctx.selection_metric)
  return Fitted(scorer, info)
