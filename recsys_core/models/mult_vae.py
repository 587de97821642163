"""Mult-VAE and Mult-DAE (Liang et al. 2018, "Variational Autoencoders for Collaborative
Filtering") as a pipeline model (`--config.model.name=mult_vae`).

Shape glossary: U users in the batch, I items, H hidden units, Z latent units.

Model (variant "vae", the paper's Mult-VAE^PR; the reference code is the authors' notebook
VAE_ML20M_WWW2018.ipynb in github.com/dawenl/vae_cf):
  x        [U, I]  binary rows (1 where the user has the item)
  h0       [U, I]  x / ||x||_2, then dropout (training only): each entry kept with
                   probability 1 - dropout and scaled by 1 / (1 - dropout)
  h1       [U, H]  tanh(h0 W1 + b1)                          (no such layer when H = 0)
  mu, lv   [U, Z]  the two halves of h1 Wq + bq, one [H, 2Z] layer: mean and log-variance
  z        [U, Z]  mu + eps * exp(lv / 2), eps ~ N(0, I) in training; z = mu in eval mode
  logits   [U, I]  tanh(z W3 + b3) W4 + b4                   (z W4 + b4 when H = 0)
  loss = mean_u [ NLL_u + beta_t KL_u ] + weight_decay * sum over weight matrices ||W||^2
  NLL_u    = -sum_i x_ui log_softmax(logits_u)_i            (multinomial log-likelihood)
  KL_u     = 1/2 sum_k (exp(lv_uk) + mu_uk^2 - 1 - lv_uk)  = KL(N(mu_u, diag e^lv_u) || N(0, I))
  beta_t   = min(anneal_cap, t / T)    t = updates already applied, T = total_anneal_steps
Variant "dae" (Mult-DAE): the encoder ends in one [H, Z] layer with tanh, z is its output (no
sampling, no KL); everything else is the same. Scoring (eval mode: no dropout, z = mu) returns
the logits of the input users' rows (fold-in items under protocol A).

Reference-code facts this follows (checked against public copies of the notebook): weights
Xavier-uniform, biases truncated normal with stddev 0.001; tanh on every layer but the output
(so the DAE's bottleneck is tanh, the VAE's mean/log-variance head is linear); the L2 term is
`2 * l2_regularizer(lam)` over the weight matrices only = lam * sum ||W||^2 (biases excluded);
beta uses the number of updates done before the current one (the first update has beta 0);
anneal_cap 0.2, total_anneal_steps 200000; Adam 1e-3 without gradient clipping, 200 epochs,
validation NDCG@100 every epoch, the best epoch kept; the VAE with lam 0 and the DAE with
lam = 0.01 / batch_size (= 2e-5 at the paper's batch of 500 users: the `dae` recipe of
experiments/configs/mult_vae.py).

Assumptions (not settled by the paper or the notebook):
  * Mult-DAE shape. The notebook's example DAE is [I -> 200 -> I] (p_dims = [200, I]); the
    paper's text gives [I -> 600 -> 200 -> 600 -> I] for both models. `hidden` (default 600)
    follows the paper; hidden=0 gives the notebook's DAE.
  * total_anneal_steps. The notebook's 200000 on ML-20M (116,677 training users, 234 batches
    per epoch, 200 epochs = 46,800 updates) makes beta reach anneal_cap = 0.2 after 40,000
    updates, about 85% of the run. Data of another size needs another T, so T is derived:
    T = round(anneal_fraction * num_steps / anneal_cap), i.e. beta reaches the cap after
    `anneal_fraction` (default 0.85) of the run, and stays there. total_anneal_steps > 0
    sets T directly (200000 reproduces the notebook); anneal_fraction = 0 gives beta =
    anneal_cap from the first update (the notebook's total_anneal_steps = 0).
  * Batches. The notebook's last batch of an epoch is smaller; here every batch has
    min(batch_size, training users) rows and the last one of an epoch is padded with rows of
    weight 0 (losses are weighted means over the real rows), which is the same update.
  * weight_decay is the notebook's lam: the coefficient of sum ||W||^2 added to the per-user
    mean loss (not AdamW's decoupled decay).

Schedules follow phoenix.retrieval.adapter's convention: epochs in the config, steps from the
data: steps_per_epoch = ceil(training users / batch), num_steps = epochs * steps_per_epoch,
evaluations every eval_every_epochs epochs (selection on ctx.selection_metric, the best
evaluated params are tested), checkpoints in ctx.run_dir (a rerun resumes).

The pieces shared with recsys_core.models.recvae live here too: `training_rows`,
`PaddedBatches`, `Schedule`, `AEScorer`, `run_loop`, `fit_info`, `multinomial_nll`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from typing import Any, Callable, Mapping, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from scipy import sparse

from recsys_core import baselines
from recsys_core import train as train_lib
from recsys_core.config import check
from recsys_core.data.types import Interactions
from recsys_core.models.base import FitContext, Fitted

log = logging.getLogger(__name__)

VARIANTS = ("vae", "dae")
# Logging and checkpoint intervals change how a run is recorded, not what it computes.
RUN_ONLY = ("log_every", "checkpoint_every_epochs")
SCORE_CHUNK = 512  # users per jitted scoring call (fewer rows are padded to a power of two)


@dataclasses.dataclass(frozen=True)
class Config:
  """Mult-VAE / Mult-DAE; the defaults are the paper's Mult-VAE^PR settings."""
  variant: str = "vae"                # "vae" (Mult-VAE^PR) or "dae" (Mult-DAE)
  hidden: int = 600                   # H; 0: no hidden layer ([I -> Z -> I])
  latent: int = 200                   # Z
  dropout: float = 0.5                # input dropout rate (training only)
  anneal_cap: float = 0.2             # VAE: the largest beta
  total_anneal_steps: int = 0         # VAE: T; 0 = derived from anneal_fraction (docstring)
  anneal_fraction: float = 0.85       # VAE: beta reaches anneal_cap after this part of the run
  weight_decay: float = 0.0           # lam of lam * sum ||W||^2 (weight matrices only)
  epochs: int = 200
  batch_size: int = 500               # users per update
  learning_rate: float = 1e-3         # Adam
  eval_every_epochs: int = 1
  patience: int = 0                   # evaluations without a gain before stopping (0: never)
  checkpoint_every_epochs: int = 10
  log_every: int = 50                 # steps

  def __post_init__(self):
    check(self.variant in VARIANTS, "model.variant", self.variant, f"one of {VARIANTS}")
    check(self.hidden >= 0, "model.hidden", self.hidden, ">= 0 (0: no hidden layer)")
    for name in ("latent", "epochs", "batch_size", "eval_every_epochs",
                 "checkpoint_every_epochs", "log_every"):
      check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), ">= 1")
    check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "in [0, 1)")
    check(self.anneal_cap >= 0.0, "model.anneal_cap", self.anneal_cap, ">= 0")
    check(self.total_anneal_steps >= 0, "model.total_anneal_steps", self.total_anneal_steps,
          ">= 0 (0: derived from anneal_fraction)")
    check(self.anneal_fraction >= 0.0, "model.anneal_fraction", self.anneal_fraction, ">= 0")
    check(self.weight_decay >= 0.0, "model.weight_decay", self.weight_decay, ">= 0")
    check(self.learning_rate > 0.0, "model.learning_rate", self.learning_rate, "> 0")
    check(self.patience >= 0, "model.patience", self.patience, ">= 0 (0: never stop early)")


# ----------------------------------------------------------------------------------------
# Losses and the annealing schedule.

def l2_normalize(x: jax.Array) -> jax.Array:
  """[U, I] rows divided by their L2 norm (tf.nn.l2_normalize: all-zero rows stay zero)."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))


def multinomial_nll(logits: jax.Array, x: jax.Array) -> jax.Array:
  """[U] -sum_i x_ui log_softmax(logits_u)_i: the multinomial negative log-likelihood."""
  return -jnp.sum(jax.nn.log_softmax(logits, axis=-1) * x, axis=-1)


def gaussian_kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
  """[U] KL(N(mu, diag exp(logvar)) || N(0, I)) = 1/2 sum_k (e^lv + mu^2 - 1 - lv)."""
  return 0.5 * jnp.sum(jnp.exp(logvar) + mu ** 2 - 1.0 - logvar, axis=-1)


def anneal_beta(step, anneal_cap: float, total_anneal_steps: int):
  """beta = min(anneal_cap, step / total_anneal_steps), step = updates already applied;
  anneal_cap from the start when total_anneal_steps is 0."""
  if total_anneal_steps <= 0:
    return jnp.asarray(anneal_cap, jnp.float32)
  return jnp.minimum(jnp.float32(anneal_cap),
                     jnp.asarray(step, jnp.float32) / jnp.float32(total_anneal_steps))


def derived_anneal_steps(config: Config, num_steps: int) -> int:
  """T: config.total_anneal_steps, or round(anneal_fraction * num_steps / anneal_cap)
  (beta reaches the cap after anneal_fraction of the run); 0 (beta = cap throughout) when
  anneal_fraction or anneal_cap is 0."""
  if config.total_anneal_steps:
    return int(config.total_anneal_steps)
  if config.anneal_fraction <= 0.0 or config.anneal_cap <= 0.0:
    return 0
  return max(1, int(round(config.anneal_fraction * num_steps / config.anneal_cap)))


def weight_l2(params: Any) -> jax.Array:
  """sum of squares of the weight matrices (haiku leaves named "w"; biases excluded)."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  squares = [jnp.sum(jnp.square(v)) for path, v in leaves
             if getattr(path[-1], "key", None) == "w"]
  return jnp.sum(jnp.stack(squares)) if squares else jnp.float32(0.0)


# ----------------------------------------------------------------------------------------
# The network.

class Outputs(NamedTuple):
  logits: jax.Array              # [U, I]
  mu: Optional[jax.Array]        # [U, Z] (None for the DAE)
  logvar: Optional[jax.Array]    # [U, Z] (None for the DAE)


def network(config: Config, num_items: int) -> hk.Transformed:
  """apply(params, rng, x [U, I], training: bool) -> Outputs; rng may be None when not
  training (eval mode draws nothing)."""
  glorot = hk.initializers.VarianceScaling(1.0, "fan_avg", "uniform")
  bias = hk.initializers.TruncatedNormal(0.001)
  dense = lambda size, name: hk.Linear(size, w_init=glorot, b_init=bias, name=name)

  def forward(x, training: bool) -> Outputs:
    h = l2_normalize(x)
    if training and config.dropout > 0.0:
      h = hk.dropout(hk.next_rng_key(), config.dropout, h)
    if config.hidden:
      h = jnp.tanh(dense(config.hidden, "encoder_hidden")(h))
    mu = logvar = None
    if config.variant == "vae":
      stats = dense(2 * config.latent, "encoder_gaussian")(h)
      mu, logvar = stats[:, :config.latent], stats[:, config.latent:]
      z = mu
      if training:
        z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(hk.next_rng_key(), mu.shape)
    else:
      z = jnp.tanh(dense(config.latent, "encoder_code")(h))
    h = z
    if config.hidden:
      h = jnp.tanh(dense(config.hidden, "decoder_hidden")(h))
    return Outputs(dense(num_items, "decoder_logits")(h), mu, logvar)

  return hk.transform(forward)


def make_loss_fn(config: Config, net: hk.Transformed, total_anneal_steps: int):
  """loss_fn(params, rng, batch) -> (loss, metrics) for `make_update_fn`; batch holds
  "x" [B, I], "weight" [B] (0 for padding rows) and "step" [] (updates already applied)."""

  def loss_fn(params, rng, batch):
    x, weight = batch["x"], batch["weight"]
    out = net.apply(params, rng, x, True)
    mean = lambda v: jnp.sum(v * weight) / jnp.maximum(jnp.sum(weight), 1.0)
    nll = mean(multinomial_nll(out.logits, x))
    loss, metrics = nll, {"nll": nll}
    if config.variant == "vae":
      kl = mean(gaussian_kl(out.mu, out.logvar))
      beta = anneal_beta(batch["step"], config.anneal_cap, total_anneal_steps)
      loss = loss + beta * kl
      metrics.update(kl=kl, beta=beta)
    if config.weight_decay:
      loss = loss + config.weight_decay * weight_l2(params)
    return loss, metrics

  return loss_fn


# ----------------------------------------------------------------------------------------
# Shared with recvae: data, batches, schedule, scorer, loop.

def training_rows(train: Interactions) -> sparse.csr_matrix:
  """[U_train, I] binary CSR of the training users that have at least one item."""
  rows = baselines.binary_matrix(train)
  rows = rows[np.flatnonzero(np.diff(rows.indptr) > 0)]
  if rows.shape[0] == 0:
    raise ValueError(f"{train.source}: no training user has an item")
  return rows


class PaddedBatches:
  """batch_fn(step) for `train.fit`: the rows of batch `step`, a pure function of (seed, step).

  Epoch e visits every row once, in the order `EpochBatcher(...).permutation(e)`, in
  steps_per_epoch = ceil(rows / batch_size) batches of batch_size rows; the last batch of an
  epoch is padded with all-zero rows of weight 0, so jitted steps see one shape and no row is
  dropped. Returns {"x": [B, I] float32, "weight": [B] float32, "step": [] int32}.
  """

  def __init__(self, rows: sparse.csr_matrix, batch_size: int, seed: int):
    self.rows = rows
    self.batch_size = min(int(batch_size), rows.shape[0])
    self.order = train_lib.EpochBatcher(rows.shape[0], self.batch_size, seed)
    self.steps_per_epoch = -(-rows.shape[0] // self.batch_size)

  def indices(self, step: int) -> np.ndarray:
    """The row indices of batch `step` (fewer than batch_size in an epoch's last batch)."""
    epoch, pos = divmod(int(step), self.steps_per_epoch)
    perm = self.order.permutation(epoch)
    return perm[pos * self.batch_size:(pos + 1) * self.batch_size]

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    idx = self.indices(step)
    x = np.zeros((self.batch_size, self.rows.shape[1]), np.float32)
    x[:len(idx)] = self.rows[idx].toarray()
    weight = np.zeros(self.batch_size, np.float32)
    weight[:len(idx)] = 1.0
    return {"x": x, "weight": weight, "step": np.int32(step)}


class Schedule(NamedTuple):
  """A run's schedule in steps (from the config's epochs and the number of training users)."""
  train_users: int
  batch_size: int
  steps_per_epoch: int
  num_steps: int
  eval_every: int
  checkpoint_every: int


def epoch_schedule(batches: PaddedBatches, epochs: int, eval_every_epochs: int,
                   checkpoint_every_epochs: int, steps_per_unit: int = 1) -> Schedule:
  """Steps of `epochs` units of `steps_per_unit` epochs each (RecVAE: one unit is an encoder
  and a decoder phase)."""
  per = batches.steps_per_epoch * steps_per_unit
  return Schedule(batches.rows.shape[0], batches.batch_size, batches.steps_per_epoch,
                  epochs * per, eval_every_epochs * per, checkpoint_every_epochs * per)


class AEScorer:
  """A trained autoencoder on the Scorer interface: score(inputs) = [U_in, I] logits of the
  inputs' binary rows, in eval mode (deterministic). `fit(train)` retrains from scratch with
  the model's config (no validation; the last params), through `refit`."""

  def __init__(self, name: str, logits_fn: Callable[[Any, jax.Array], jax.Array], params: Any,
               num_items: int, refit: Optional[Callable[[Interactions], Any]] = None):
    self.name = name
    self.logits_fn = logits_fn        # jitted (params, x [U, I]) -> [U, I]
    self.params = params
    self.num_items = int(num_items)
    self._refit = refit

  def fit(self, train: Interactions) -> "AEScorer":
    if self._refit is None:
      raise RuntimeError(f"{self.name}: this scorer cannot be refitted")
    self.params = self._refit(train)
    self.num_items = train.num_items
    return self

  def score(self, inputs: Interactions) -> np.ndarray:
    if inputs.num_items != self.num_items:
      raise ValueError(f"{inputs.source}: {inputs.num_items} items, the model has "
                       f"{self.num_items}")
    rows = baselines.binary_matrix(inputs)
    out = np.empty((rows.shape[0], self.num_items), np.float32)
    for start in range(0, rows.shape[0], SCORE_CHUNK):
      chunk = rows[start:start + SCORE_CHUNK].toarray()
      size = min(SCORE_CHUNK, 1 << max(3, (len(chunk) - 1).bit_length()))
      x = np.zeros((size, self.num_items), np.float32)
      x[:len(chunk)] = chunk
      out[start:start + len(chunk)] = np.asarray(self.logits_fn(self.params, x))[:len(chunk)]
    return out


def run_loop(update, state, batches: PaddedBatches, sched: Schedule, *, log_every: int,
             patience: int, workdir: Optional[str], eval_fn, best_metric: Optional[str],
             config: Mapping[str, Any]) -> train_lib.FitResult:
  """`recsys_core.train.fit` over sched.num_steps (a temporary workdir when None), with best
  selection on `best_metric` when eval_fn is given; two checkpoints kept."""
  loop = train_lib.LoopConfig(
      num_steps=sched.num_steps, log_every=max(1, min(log_every, sched.num_steps)),
      eval_every=sched.eval_every, checkpoint_every=sched.checkpoint_every,
      keep_checkpoints=2, best_metric=best_metric if eval_fn is not None else None,
      patience=(patience or None) if eval_fn is not None else None, progress_bar=False)
  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="refae_"))
    return train_lib.fit(update, state, batches, loop, workdir, eval_fn=eval_fn,
                         config=dict(config))


def fit_info(result: train_lib.FitResult, sched: Schedule, **extra) -> dict[str, Any]:
  """What the result record says of a fit: schedule, best step and its validation metrics."""
  trains = [r for r in result.history if r["event"] == "train"]
  best = result.best_step
  return {"best_step": best,
          "best_epoch": None if best is None else round(best / sched.steps_per_epoch, 3),
          "val": {k: v for k, v in (result.best_metrics or {}).items()
                  if not k.startswith("online_")},
          "end_reason": result.end_reason, "train_seconds": round(result.train_seconds, 3),
          "final_train": {k: v for k, v in (trains[-1] if trains else {}).items()
                          if k not in ("event", "wall_time")},
          **sched._asdict(), **extra}


# ----------------------------------------------------------------------------------------
# Training.

def train(config: Config, data: Interactions, seed: int, workdir: Optional[str] = None,
          validate: Optional[Callable[[AEScorer], Mapping[str, float]]] = None,
          selection_metric: Optional[str] = None) -> tuple[AEScorer, dict[str, Any]]:
  """Trains on `data` (resumable in `workdir`); with `validate` keeps the params of the best
  evaluation on `selection_metric`. Returns (scorer, info)."""
  rows = training_rows(data)
  batches = PaddedBatches(rows, config.batch_size, seed)
  sched = epoch_schedule(batches, config.epochs, config.eval_every_epochs,
                         config.checkpoint_every_epochs)
  anneal_steps = derived_anneal_steps(config, sched.num_steps) if config.variant == "vae" else 0
  net = network(config, data.num_items)
  params = net.init(jax.random.PRNGKey(seed), jnp.zeros((1, data.num_items)), True)
  optimizer = train_lib.make_optimizer(
      train_lib.OptimizerConfig(learning_rate=config.learning_rate, clip_norm=None))
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(seed + 1))
  update = train_lib.make_update_fn(make_loss_fn(config, net, anneal_steps), optimizer)
  logits_fn = jax.jit(lambda p, x: net.apply(p, None, x, False).logits)
  name = f"mult_{config.variant}"
  refit = lambda other: train(config, other, seed)[0].params
  scorer_of = lambda p: AEScorer(name, logits_fn, p, data.num_items, refit)
  eval_fn = None if validate is None else (lambda p: validate(scorer_of(p)))
  log.info("%s: %d training users x %d items, %d steps (%d per epoch), T=%d", name,
           sched.train_users, data.num_items, sched.num_steps, sched.steps_per_epoch,
           anneal_steps)
  result = run_loop(update, state, batches, sched, log_every=config.log_every,
                    patience=config.patience, workdir=workdir, eval_fn=eval_fn,
                    best_metric=selection_metric,
                    config={"model": dataclasses.asdict(config), "schedule": sched._asdict(),
                            "num_items": data.num_items, "total_anneal_steps": anneal_steps})
  info = fit_info(result, sched, variant=config.variant, total_anneal_steps=anneal_steps)
  return scorer_of(result.selected_params), info


def fit(config: Config, ctx: FitContext) -> Fitted:
  """Trains on ctx.train, selects on ctx.validate, checkpoints in ctx.run_dir."""
  scorer, info = train(config, ctx.train, ctx.seed, ctx.run_dir, ctx.validate,
                       ctx.selection_metric)
  return Fitted(scorer, info)
