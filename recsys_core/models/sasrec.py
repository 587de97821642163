"""SASRec (Kang & McAuley 2018, "Self-Attentive Sequential Recommendation") as a pipeline
model (`--config.model.name=recsys_core.models.sasrec`), in dm-haiku.

Network (`SASRecNet`), as the authors' TensorFlow code (github.com/kang205/SASRec) has it:
  x_t = sqrt(D) * E[s_t] + P[t]            item table E (shared with the output, row 0 of the
                                           input table is the padding item, fixed at zero)
                                           + learned positions P; dropout; padding zeroed
  num_blocks blocks, each: causal self-attention (H heads, padding keys masked, no output
  projection) and a point-wise feed-forward (D -> D -> D, ReLU), with residuals; dropout
  on the attention weights and after each feed-forward layer; padding slots zeroed after
  each block
  h = LayerNorm(x)                         the final LayerNorm
  score(t, j) = <h_t, E[j]>                 the score of item j after the first t+1 items
Layer norm: `norm="code"` (default) is the authors' code: pre-LayerNorm on the attention's
queries only (keys and values read the un-normalised input) and the residual added to the
normalised input, in both sub-layers. `norm="pre"` is the paper's equation
g(x) = x + Dropout(g(LayerNorm(x))) (the usual pre-LN transformer; dropout also on the
attention output). Neither is post-LN.

Sequences are left-padded (the paper: padding "to the left"), so the most recent item is
always the last slot; position t of a window of L <= max_len slots reads row
max_len - L + t of P, i.e. positions count back from the most recent item, which makes the
output at a valid slot independent of how much padding precedes it.

Training (`fit`): every training user's sequence (the split's train part, s[:-2] under
leave-one-out: the validation and test items are not in it) gives one window of up to
max_len + 1 items per step (the last ones, or a random window: `window`), as input and
next-item target shifted by one; batches are `EpochBatcher` epochs of users, and every
random draw of a batch (window, negatives) comes from np.random.default_rng([seed, step]),
so a resumed run is bit-identical to an uninterrupted one (CPU). Losses over the valid
target slots (padding masked):
  "bce"      the paper's: per position k (= num_negatives, the paper 1) negatives drawn
             uniformly from the items not in the user's training sequence;
             softplus(-s+) + sum softplus(s-), averaged over positions
  "gbce"     gSASRec (Petrov & Macdonald 2023): k uniform negatives per position (items
             other than the target), the positive's log-sigmoid scaled by
             beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (I - 1), t = gbce_t;
             (beta softplus(-s+) + sum softplus(s-)) / (k + 1)
  "ce"       full softmax cross-entropy over all I items
  "sampled"  sampled softmax: num_negatives items shared by the batch, drawn (with
             replacement) uniformly or by popularity (`negative_sampler`), accidental hits
             removed, and with `log_q` every logit (the positive's too) less log(k q(j)).
             Under the uniform sampler that is one constant shift: log_q changes nothing.
Selection: validation every `eval_every_epochs` on the pipeline's metric; the best
evaluated params are tested. Schedules are in epochs, turned into steps from the data:
steps_per_epoch = training users // batch size (the batch is capped at the number of
training users); Adam with beta2 0.98 and a constant learning rate, as the authors' code.

Scorer (`SASRecScorer`): a user's (most recent max_len) input items -> h at the last slot
-> <h, E[j]> for every item j: [U, I]; the evaluator excludes seen items.

Shape glossary: B batch (users), L window (max_len), D hidden size, H heads, I items,
K negatives per position (bce, gbce), N negatives shared by a batch (sampled), U users.
Item indices: the dense indices 0..I-1 of the data; the network's inputs are index + 1
(0 = padding); targets are item indices, -1 where a slot has none.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from recsys_core import train as train_lib
from recsys_core.config import check
from recsys_core.data.sequences import item_popularity
from recsys_core.data.sequences import next_item_window
from recsys_core.data.sequences import SequenceData
from recsys_core.data.types import Interactions
from recsys_core.models.base import FitContext, Fitted, fit_selecting

LOSSES = ("bce", "ce", "sampled", "gbce")
NORMS = ("code", "pre")
WINDOWS = ("last", "random")
SAMPLERS = ("uniform", "popularity")
# Budgets and logging: they change how long a run goes, not what it computes.
RUN_ONLY = ("max_seconds", "log_every", "checkpoint_every_epochs")
EVAL_BATCH = 256          # users per scoring call
_MASKED = -1e9            # attention logit of a masked key


@dataclasses.dataclass(frozen=True)
class Config:
  """The network, the loss and the schedule (in epochs). Defaults: the paper's Amazon
  settings (experiments/configs/sasrec.py holds the per-dataset recipes)."""
  max_len: int = 50                   # L: the most recent items of a user's history
  num_blocks: int = 2
  num_heads: int = 1
  hidden: int = 50                    # D (a multiple of num_heads)
  dropout: float = 0.5                # embeddings, attention weights, feed-forward
  norm: str = "code"                  # "code" (the authors' code) or "pre" (module docstring)
  loss: str = "bce"                   # one of LOSSES
  num_negatives: int = 1              # bce, gbce: per position; sampled: per batch; ce: unused
  negative_sampler: str = "uniform"   # sampled: "uniform" or "popularity"
  log_q: bool = True                  # sampled: subtract log(k q(j)) from every logit
  gbce_t: float = 0.75                # gbce: calibration t in [0, 1] (0: plain BCE)
  window: str = "last"                # training window per user: "last" or "random"
  batch_size: int = 128               # users per step
  learning_rate: float = 1e-3
  adam_b2: float = 0.98
  num_epochs: float = 200.0
  eval_every_epochs: float = 20.0
  checkpoint_every_epochs: float = 20.0
  patience: int = 0                   # evaluations without a gain before stopping (0: never)
  max_seconds: Optional[float] = None  # wall-clock budget of one call, checked per evaluation
  log_every: int = 50                 # steps

  def __post_init__(self):
    for name in ("max_len", "num_blocks", "num_heads", "hidden", "num_negatives",
                 "batch_size", "log_every"):
      check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), ">= 1")
    check(self.hidden % self.num_heads == 0, "model.hidden", self.hidden,
          f"a multiple of model.num_heads ({self.num_heads})")
    check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "in [0, 1)")
    check(self.norm in NORMS, "model.norm", self.norm, f"one of {NORMS}")
    check(self.loss in LOSSES, "model.loss", self.loss, f"one of {LOSSES}")
    check(self.negative_sampler in SAMPLERS, "model.negative_sampler", self.negative_sampler,
          f"one of {SAMPLERS}")
    check(0.0 <= self.gbce_t <= 1.0, "model.gbce_t", self.gbce_t, "in [0, 1]")
    check(self.window in WINDOWS, "model.window", self.window, f"one of {WINDOWS}")
    check(self.learning_rate > 0, "model.learning_rate", self.learning_rate, "> 0")
    check(0.0 <= self.adam_b2 < 1.0, "model.adam_b2", self.adam_b2, "in [0, 1)")
    check(self.num_epochs > 0, "model.num_epochs", self.num_epochs, "> 0")
    for name in ("eval_every_epochs", "checkpoint_every_epochs"):
      check(getattr(self, name) > 0, f"model.{name}", getattr(self, name), "> 0")
    check(self.patience >= 0, "model.patience", self.patience, ">= 0 (0: never)")
    check(self.max_seconds is None or self.max_seconds >= 0, "model.max_seconds",
          self.max_seconds, ">= 0 or None")


# ----------------------------------------------------------------------------------------
# The network.

def _glorot() -> hk.initializers.Initializer:
  """Glorot (Xavier) uniform: the authors' initialiser of every weight."""
  return hk.initializers.VarianceScaling(1.0, "fan_avg", "uniform")


def _layer_norm(name: str) -> hk.LayerNorm:
  return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, eps=1e-8, name=name)


class SASRecNet(hk.Module):
  """The SASRec encoder and its item table (module docstring)."""

  def __init__(self, num_items: int, max_len: int, hidden: int, num_blocks: int,
               num_heads: int, dropout: float, norm: str = "code", name: str = "sasrec"):
    super().__init__(name=name)
    self.num_items, self.max_len, self.hidden = num_items, max_len, hidden
    self.num_blocks, self.num_heads, self.dropout, self.norm = (num_blocks, num_heads,
                                                                dropout, norm)

  def item_table(self) -> jax.Array:
    """[I, D] item embeddings (input and output)."""
    return hk.get_parameter("item_embeddings", [self.num_items, self.hidden], jnp.float32,
                            init=_glorot())

  def _drop(self, x: jax.Array, is_training: bool) -> jax.Array:
    if is_training and self.dropout > 0:
      return hk.dropout(hk.next_rng_key(), self.dropout, x)
    return x

  def _attention(self, queries: jax.Array, keys: jax.Array, valid: jax.Array,
                 is_training: bool, block: int) -> jax.Array:
    """Causal multi-head attention [B, L, D] (no output projection, as the authors')."""
    b, l, d = queries.shape
    h = self.num_heads
    dense = lambda name: hk.Linear(d, w_init=_glorot(), name=f"block{block}_{name}")
    split = lambda x: x.reshape(b, l, h, d // h)
    q, k, v = split(dense("q")(queries)), split(dense("k")(keys)), split(dense("v")(keys))
    logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(d // h)   # [B, H, L, L]
    allowed = jnp.tril(jnp.ones((l, l), bool))[None, None] & valid[:, None, None, :]
    weights = jax.nn.softmax(jnp.where(allowed, logits, _MASKED), axis=-1)
    weights = self._drop(weights, is_training)
    return jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(b, l, d)

  def _feed_forward(self, x: jax.Array, is_training: bool, block: int) -> jax.Array:
    d = x.shape[-1]
    y = jax.nn.relu(hk.Linear(d, w_init=_glorot(), name=f"block{block}_ff1")(x))
    y = self._drop(y, is_training)
    return self._drop(hk.Linear(d, w_init=_glorot(), name=f"block{block}_ff2")(y), is_training)

  def __call__(self, inputs: jax.Array, is_training: bool,
               valid: Optional[jax.Array] = None) -> jax.Array:
    """[B, L, D] h at every slot of `inputs` [B, L] (item index + 1, 0 = padding; L <=
    max_len). `valid` [B, L] (default inputs > 0) says which slots hold items."""
    l = inputs.shape[1]
    if l > self.max_len:
      raise ValueError(f"window of {l} slots > max_len {self.max_len}")
    valid = inputs > 0 if valid is None else valid
    table = self.item_table()
    padded = jnp.concatenate([jnp.zeros((1, self.hidden), table.dtype), table])   # [I+1, D]
    positions = hk.get_parameter("positions", [self.max_len, self.hidden], jnp.float32,
                                 init=_glorot())
    mask = valid[..., None].astype(jnp.float32)                             # [B, L, 1]
    x = padded[inputs] * math.sqrt(self.hidden) + positions[self.max_len - l:][None]
    x = self._drop(x, is_training) * mask
    for i in range(self.num_blocks):
      if self.norm == "code":
        q = _layer_norm(f"block{i}_attention_norm")(x)
        x = q + self._attention(q, x, valid, is_training, i)
        f = _layer_norm(f"block{i}_ff_norm")(x)
        x = f + self._feed_forward(f, is_training, i)
      else:
        a = _layer_norm(f"block{i}_attention_norm")(x)
        x = x + self._drop(self._attention(a, a, valid, is_training, i), is_training)
        x = x + self._feed_forward(_layer_norm(f"block{i}_ff_norm")(x), is_training, i)
      x = x * mask
    return _layer_norm("final_norm")(x)


@dataclasses.dataclass(frozen=True)
class NetFns:
  """The transformed network: init(rng, inputs), encode(params, rng, inputs, is_training,
  valid=None) -> [B, L, D], table(params) -> [I, D]."""
  init: Callable
  encode: Callable
  table: Callable


def make_net(config: Config, num_items: int) -> NetFns:
  def net():
    return SASRecNet(num_items, config.max_len, config.hidden, config.num_blocks,
                     config.num_heads, config.dropout, config.norm)

  def forward(inputs, is_training, valid=None):
    return net()(inputs, is_training, valid)

  def table():
    return net().item_table()

  fwd = hk.transform(forward)
  tab = hk.without_apply_rng(hk.transform(table))
  init = lambda rng, inputs: fwd.init(rng, inputs, False)
  return NetFns(init=init, encode=fwd.apply, table=tab.apply)


# ----------------------------------------------------------------------------------------
# Losses: logits in, a scalar out; `mask` [B, L] marks the slots that have a target.

def _masked_mean(per_slot: jax.Array, mask: jax.Array) -> jax.Array:
  mask = mask.astype(jnp.float32)
  return jnp.sum(per_slot * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def bce_loss(pos: jax.Array, neg: jax.Array, mask: jax.Array) -> jax.Array:
  """The paper's loss: -log sigmoid(s+) - sum_k log(1 - sigmoid(s-_k)) per slot, averaged
  over the masked slots. pos [B, L], neg [B, L, K]."""
  per = jax.nn.softplus(-pos) + jnp.sum(jax.nn.softplus(neg), axis=-1)
  return _masked_mean(per, mask)


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
  """gSASRec's beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (I - 1)."""
  alpha = num_negatives / max(num_items - 1, 1)
  return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce_loss(pos: jax.Array, neg: jax.Array, mask: jax.Array, beta: float) -> jax.Array:
  """gBCE: -(beta log sigmoid(s+) + sum_k log(1 - sigmoid(s-_k))) / (K + 1) per slot,
  averaged over the masked slots. pos [B, L], neg [B, L, K]."""
  per = beta * jax.nn.softplus(-pos) + jnp.sum(jax.nn.softplus(neg), axis=-1)
  return _masked_mean(per / (neg.shape[-1] + 1), mask)


def ce_loss(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
  """Softmax cross-entropy over all items: logits [B, L, I], targets [B, L] (any value
  where mask is 0)."""
  safe = jnp.where(mask, targets, 0)
  target_logit = jnp.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]
  return _masked_mean(jax.nn.logsumexp(logits, axis=-1) - target_logit, mask)


def sampled_softmax_loss(pos: jax.Array, neg: jax.Array, targets: jax.Array,
                         neg_ids: jax.Array, mask: jax.Array,
                         log_q_pos: Optional[jax.Array] = None,
                         log_q_neg: Optional[jax.Array] = None) -> jax.Array:
  """Softmax over each slot's target and N shared negatives; a negative equal to the
  slot's target is removed (accidental hit). With log Q given, every logit has its log Q
  (log of the item's expected count among the negatives) subtracted.

  pos [B, L] target logits, neg [B, L, N] negative logits, targets [B, L], neg_ids [N],
  log_q_pos [B, L], log_q_neg [N].
  """
  if log_q_pos is not None:
    pos = pos - log_q_pos
    neg = neg - log_q_neg
  neg = jnp.where(neg_ids[None, None, :] == targets[..., None], -jnp.inf, neg)
  log_z = jax.nn.logsumexp(jnp.concatenate([pos[..., None], neg], axis=-1), axis=-1)
  return _masked_mean(log_z - pos, mask)


# ----------------------------------------------------------------------------------------
# Batches (host, numpy).

def left_pad(seq: np.ndarray, length: int) -> np.ndarray:
  """[length] int32: the most recent `length` entries of seq as network inputs (index + 1),
  left-padded with 0."""
  tail = np.asarray(seq, np.int64)[max(0, len(seq) - length):]
  out = np.zeros(length, np.int32)
  out[length - len(tail):] = tail + 1
  return out


class Batches:
  """Training batches of one split: deterministic in (seed, step)."""

  def __init__(self, config: Config, data: SequenceData, seed: int):
    self.config, self.data, self.seed = config, data, seed
    self.num_items = data.num_items
    self.users = np.flatnonzero(data.lengths() >= 2)     # users with a next-item target
    counts = item_popularity(data)
    if config.negative_sampler == "popularity":
      q = counts / max(counts.sum(), 1.0)
    else:
      q = np.full(self.num_items, 1.0 / self.num_items)
    self.sampler_probs = q
    # log of each item's expected count among the N shared negatives ("sampled").
    self.log_q = np.log(np.maximum(config.num_negatives * q, 1e-12)).astype(np.float32)

  def make(self, users: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """{"inputs": [B, L] int32 (index + 1, 0 = padding), "targets": [B, L] int32 (-1 =
    none), and the loss's negatives: "negatives" [B, L, K] (bce, gbce) or [N] (sampled)}."""
    cfg = self.config
    l, b = cfg.max_len, len(users)
    inputs = np.zeros((b, l), np.int32)
    targets = np.full((b, l), -1, np.int32)
    for row, u in enumerate(users):
      seq = self.data.sequences[u]
      start, stop = next_item_window(len(seq), l, rng, cfg.window)
      w = seq[start:stop]
      n = len(w) - 1
      inputs[row, l - n:] = w[:-1] + 1
      targets[row, l - n:] = w[1:]
    out = {"inputs": inputs, "targets": targets}
    k = cfg.num_negatives
    if cfg.loss == "bce":
      out["negatives"] = self._unseen_negatives(users, (b, l, k), rng)
    elif cfg.loss == "gbce":
      # Uniform over the items other than the slot's target: draw from I - 1 and skip it.
      draw = rng.integers(0, self.num_items - 1, size=(b, l, k))
      tgt = np.maximum(targets, 0)[..., None]
      out["negatives"] = (draw + (draw >= tgt)).astype(np.int32)
    elif cfg.loss == "sampled":
      out["negatives"] = rng.choice(self.num_items, size=k, p=self.sampler_probs
                                    ).astype(np.int32)
    return out

  def _unseen_negatives(self, users: np.ndarray, shape: tuple[int, int, int],
                        rng: np.random.Generator) -> np.ndarray:
    """Uniform items not in each user's training sequence (redrawn until unseen)."""
    seen = np.zeros((len(users), self.num_items), bool)
    for row, u in enumerate(users):
      seen[row, self.data.sequences[u]] = True
    rows = np.broadcast_to(np.arange(len(users))[:, None, None], shape)
    neg = rng.integers(0, self.num_items, size=shape)
    bad = seen[rows, neg]
    for _ in range(1000):
      if not bad.any():
        break
      neg[bad] = rng.integers(0, self.num_items, size=int(bad.sum()))
      bad = seen[rows, neg]
    return neg.astype(np.int32)          # a user who has seen every item keeps seen ones

  def batch_fn(self, batcher: train_lib.EpochBatcher) -> Callable[[int], dict]:
    """batch_fn(step) for recsys_core.train.fit."""
    def fn(step: int) -> dict:
      return self.make(self.users[batcher.indices(step)],
                       np.random.default_rng([self.seed, step]))
    return fn


def _per_slot_logits(h: jax.Array, table: jax.Array, items: jax.Array) -> jax.Array:
  """[B, L, K] <h_t, E[items[b, t, k]]>: gathered rows, or all I logits then K of them
  where that holds fewer floats (K D > I)."""
  if items.shape[-1] * h.shape[-1] > table.shape[0]:
    return jnp.take_along_axis(h @ table.T, items, axis=-1)
  return jnp.einsum("bld,blkd->blk", h, table[items])


def make_loss_fn(config: Config, net: NetFns, num_items: int, log_q: np.ndarray):
  """loss_fn(params, rng, batch) -> (loss, metrics) of `config.loss`."""
  beta = gbce_beta(config.num_negatives, num_items, config.gbce_t)
  log_q = jnp.asarray(log_q)

  def loss_fn(params, rng, batch):
    h = net.encode(params, rng, batch["inputs"], True)                   # [B, L, D]
    table = net.table(params)                                            # [I, D]
    targets = batch["targets"]
    mask = targets >= 0
    safe = jnp.maximum(targets, 0)
    if config.loss == "ce":
      return ce_loss(h @ table.T, safe, mask), {"positions": jnp.sum(mask)}
    pos = jnp.sum(h * table[safe], axis=-1)                              # [B, L]
    negs = batch["negatives"]
    if config.loss == "sampled":
      neg = h @ table[negs].T                                            # [B, L, N]
      lq = (log_q[safe], log_q[negs]) if config.log_q else (None, None)
      loss = sampled_softmax_loss(pos, neg, targets, negs, mask, *lq)
    elif config.loss == "bce":
      loss = bce_loss(pos, _per_slot_logits(h, table, negs), mask)
    else:
      loss = gbce_loss(pos, _per_slot_logits(h, table, negs), mask, beta)
    return loss, {"positions": jnp.sum(mask)}

  return loss_fn


# ----------------------------------------------------------------------------------------
# Scoring.

class SASRecScorer:
  """`recsys_core.scoring.Scorer` of trained params: h at the last slot of each user's
  (most recent max_len) input items, scored against every item: [U, I]."""

  name = "sasrec"

  def __init__(self, config: Config, params: Any, num_items: int,
               encode_last: Optional[Callable] = None, batch_size: int = EVAL_BATCH):
    self.config, self.params, self.batch_size = config, params, batch_size
    self.num_items = num_items
    net = make_net(config, num_items)
    self._encode_last = encode_last or make_encode_last(net)
    self.items = np.asarray(net.table(params), np.float32)                # [I, D]

  def fit(self, train: Interactions) -> "SASRecScorer":
    del train
    return self

  def user_representations(self, data: SequenceData) -> np.ndarray:
    """[U, D] h at the last slot of each user's sequence."""
    out = []
    for start in range(0, data.num_users, self.batch_size):
      rows = range(start, min(start + self.batch_size, data.num_users))
      inputs = np.zeros((self.batch_size, self.config.max_len), np.int32)
      for i, u in enumerate(rows):
        inputs[i] = left_pad(data.sequences[u], self.config.max_len)
      out.append(np.asarray(self._encode_last(self.params, inputs))[:len(rows)])
    return (np.concatenate(out) if out
            else np.zeros((0, self.config.hidden), np.float32))

  def score(self, inputs: Interactions) -> np.ndarray:
    return self.user_representations(SequenceData.from_interactions(inputs)) @ self.items.T


def make_encode_last(net: NetFns) -> Callable:
  """jitted (params, inputs [B, L]) -> [B, D]: h at the last slot, without dropout."""
  return jax.jit(lambda params, inputs: net.encode(params, None, inputs, False)[:, -1])


# ----------------------------------------------------------------------------------------
# Fit.

@dataclasses.dataclass(frozen=True)
class Schedule:
  """The epoch schedule in steps for a dataset."""
  steps_per_epoch: int
  num_steps: int
  eval_every: int
  checkpoint_every: int


def schedule(config: Config, per_epoch: int) -> Schedule:
  steps = lambda epochs: max(1, int(round(epochs * per_epoch)))
  return Schedule(per_epoch, steps(config.num_epochs), steps(config.eval_every_epochs),
                  steps(config.checkpoint_every_epochs))


def fit(config: Config, ctx: FitContext) -> Fitted:
  """Trains on ctx.train (resumable in ctx.run_dir), selects on ctx.validate, returns the
  best evaluated model's scorer."""
  data = SequenceData.from_interactions(ctx.train)
  batches = Batches(config, data, ctx.seed)
  if not len(batches.users):
    raise ValueError(f"{ctx.train.source}: no user has 2 or more training items")
  if config.loss == "gbce" and data.num_items < 2:
    raise ValueError("model.loss='gbce' needs at least 2 items")
  batch_size = min(config.batch_size, len(batches.users))
  batcher = train_lib.EpochBatcher(len(batches.users), batch_size, ctx.seed)
  sched = schedule(config, batcher.steps_per_epoch)
  net = make_net(config, data.num_items)
  optimizer = train_lib.make_optimizer(train_lib.OptimizerConfig(
      learning_rate=config.learning_rate, b2=config.adam_b2))
  params = net.init(jax.random.PRNGKey(ctx.seed),
                    np.zeros((1, config.max_len), np.int32))
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(ctx.seed + 1))
  loss_fn = make_loss_fn(config, net, data.num_items, batches.log_q)
  update = train_lib.make_update_fn(loss_fn, optimizer, nan_policy="raise")
  encode_last = make_encode_last(net)
  scorer = lambda p: SASRecScorer(config, p, data.num_items, encode_last)

  validate = lambda p: ctx.validate(scorer(p))
  result = fit_selecting(
      update, state, batches.batch_fn(batcher), ctx, validate, num_steps=sched.num_steps,
      eval_every=sched.eval_every, checkpoint_every=sched.checkpoint_every,
      log_every=config.log_every, patience=config.patience, max_seconds=config.max_seconds,
      config=dataclasses.asdict(config))
  reason = result.end_reason
  info: dict[str, Any] = {
      "val": dict(result.best_metrics or {}),
      "best_step": result.best_step, "final_step": int(result.state.step),
      "steps_per_epoch": sched.steps_per_epoch,
      "epochs": int(result.state.step) / sched.steps_per_epoch,
      "best_epoch": (result.best_step or 0) / sched.steps_per_epoch,
      "schedule": dataclasses.asdict(sched), "batch_size": batch_size,
      "train_users": int(len(batches.users)),
      "params": sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params)),
      "train_seconds": round(result.train_seconds, 1),
      "stopped": "num_epochs" if reason in (None, "num_steps") else reason,
      "eval_history": [{k: r[k] for k in r if k in ("step", ctx.selection_metric, "hr@10",
                                                     "ndcg@10")}
                       for r in result.history if r["event"] == "eval"]}
  return Fitted(scorer(result.selected_params), info)
