"""SASRec (recsys_core/models/sasrec.py): causality, padding, each loss against a hand
computation, the batches, learning through the pipeline, and an exact resume."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import sasrec as configs
from recsys_core import pipeline
from recsys_core.data.sequences import SequenceData
from recsys_core.models import sasrec

MODEL = "recsys_core.models.sasrec"   # the dotted path works with or without a BUILTIN entry


def _net(norm="code", dropout=0.0, max_len=8, num_items=20, num_heads=2):
  cfg = sasrec.Config(max_len=max_len, hidden=16, num_heads=num_heads, num_blocks=2,
                      dropout=dropout, norm=norm)
  net = sasrec.make_net(cfg, num_items)
  params = net.init(jax.random.PRNGKey(0), np.zeros((1, max_len), np.int32))
  # Non-trivial LayerNorm offsets, so that padding slots (LayerNorm(0) = offset) are not 0.
  params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(1), p.shape),
                        params)
  return net, params


# ----------------------------------------------------------------------------------------
# The network.

@pytest.mark.parametrize("norm", sasrec.NORMS)
@pytest.mark.parametrize("training", [False, True])
def test_the_output_at_t_does_not_depend_on_later_items(norm, training):
  net, params = _net(norm, dropout=0.3 if training else 0.0)
  inputs = np.array([[3, 7, 1, 12, 5, 9, 2, 18]], np.int32)
  rng = jax.random.PRNGKey(3)      # the same dropout masks for both inputs
  base = np.asarray(net.encode(params, rng, inputs, training))
  for t in range(7):
    changed = inputs.copy()
    changed[0, t + 1:] = (changed[0, t + 1:] + 5) % 20 + 1
    out = np.asarray(net.encode(params, rng, changed, training))
    np.testing.assert_allclose(out[0, :t + 1], base[0, :t + 1], atol=1e-6)
    assert not np.allclose(out[0, t + 1:], base[0, t + 1:], atol=1e-4)   # later ones do


@pytest.mark.parametrize("norm", sasrec.NORMS)
def test_padding_does_not_change_the_output_at_valid_slots(norm):
  net, params = _net(norm)
  items = np.array([[4, 11, 2]], np.int32)
  alone = np.asarray(net.encode(params, None, items, False))[0]               # L = 3
  padded = np.array([[0, 0, 0, 0, 0, 4, 11, 2]], np.int32)                    # L = 8
  out = np.asarray(net.encode(params, None, padded, False))[0]
  np.testing.assert_allclose(out[5:], alone, atol=1e-5)
  # Whatever the padding slots hold (items marked invalid) changes nothing either.
  garbage = np.array([[7, 19, 3, 3, 1, 4, 11, 2]], np.int32)
  valid = padded > 0
  out2 = np.asarray(net.encode(params, None, garbage, False, valid))[0]
  np.testing.assert_allclose(out2[5:], out[5:], atol=1e-6)
  # Other users of the batch change nothing.
  batch = np.concatenate([padded, [[5, 6, 7, 8, 9, 10, 11, 12]]]).astype(np.int32)
  out3 = np.asarray(net.encode(params, None, batch, False))[0]
  np.testing.assert_allclose(out3[5:], out[5:], atol=1e-6)


def test_the_scorer_scores_every_item_from_the_last_slot():
  cfg = sasrec.Config(max_len=4, hidden=8, num_heads=1)
  net = sasrec.make_net(cfg, 6)
  params = net.init(jax.random.PRNGKey(0), np.zeros((1, 4), np.int32))
  from recsys_core.data.types import Interactions
  x = Interactions(users=np.array([0, 0, 0, 0, 0, 1], np.int32),
                   items=np.array([0, 1, 2, 3, 4, 5], np.int32), ratings=None,
                   order=np.arange(6), user_ids=np.arange(2), item_ids=np.arange(6))
  scores = sasrec.SASRecScorer(cfg, params, 6, batch_size=3).score(x)
  assert scores.shape == (2, 6) and scores.dtype == np.float32
  # User 0 has 5 items: the most recent 4 are read, left-padded to none.
  h = np.asarray(net.encode(params, None, np.array([[2, 3, 4, 5]], np.int32), False))[0, -1]
  table = np.asarray(params["sasrec"]["item_embeddings"])
  np.testing.assert_allclose(scores[0], table @ h, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(sasrec.left_pad(np.array([5]), 4), [0, 0, 0, 6])


# ----------------------------------------------------------------------------------------
# Losses: 1 user, 3 positions (the last one padding), 5 items, fixed logits.

LOGITS = np.array([[[0.5, -1.0, 2.0, 0.0, 1.5],
                    [1.0, 0.2, -0.3, 3.0, -2.0],
                    [9.0, 9.0, 9.0, 9.0, 9.0]]], np.float32)    # [1, 3, 5]
TARGETS = np.array([[2, 3, -1]])                               # slot 2: padding
MASK = TARGETS >= 0


def _nls(x):
  """-log sigmoid(x)."""
  return -math.log(1.0 / (1.0 + math.exp(-x)))


def test_ce_is_the_full_softmax_cross_entropy():
  hand = np.mean([math.log(sum(math.exp(v) for v in LOGITS[0, t])) - LOGITS[0, t, TARGETS[0, t]]
                  for t in (0, 1)])
  got = sasrec.ce_loss(jnp.asarray(LOGITS), jnp.asarray(TARGETS), jnp.asarray(MASK))
  assert float(got) == pytest.approx(hand, rel=1e-6)


def test_bce_is_the_paper_s_loss():
  negatives = np.array([[[0], [4], [1]]])                           # K = 1
  pos = np.take_along_axis(LOGITS, np.maximum(TARGETS, 0)[..., None], -1)[..., 0]
  neg = np.take_along_axis(LOGITS, negatives, -1)
  hand = np.mean([_nls(LOGITS[0, 0, 2]) + _nls(-LOGITS[0, 0, 0]),
                  _nls(LOGITS[0, 1, 3]) + _nls(-LOGITS[0, 1, 4])])
  got = sasrec.bce_loss(jnp.asarray(pos), jnp.asarray(neg), jnp.asarray(MASK))
  assert float(got) == pytest.approx(hand, rel=1e-6)


def test_gbce_follows_gsasrec():
  negatives = np.array([[[0, 1], [4, 0], [1, 2]]])                  # K = 2 of I = 5 items
  alpha = 2 / 4
  beta = sasrec.gbce_beta(2, 5, 0.75)
  assert beta == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))   # 0.625
  assert sasrec.gbce_beta(2, 5, 0.0) == pytest.approx(1.0)         # t = 0: plain BCE
  assert sasrec.gbce_beta(2, 5, 1.0) == pytest.approx(alpha)       # t = 1: beta = alpha
  pos = np.take_along_axis(LOGITS, np.maximum(TARGETS, 0)[..., None], -1)[..., 0]
  neg = np.take_along_axis(LOGITS, negatives, -1)
  hand = np.mean([(beta * _nls(LOGITS[0, 0, 2]) + _nls(-LOGITS[0, 0, 0]) + _nls(-LOGITS[0, 0, 1]))
                  / 3,
                  (beta * _nls(LOGITS[0, 1, 3]) + _nls(-LOGITS[0, 1, 4]) + _nls(-LOGITS[0, 1, 0]))
                  / 3])
  got = sasrec.gbce_loss(jnp.asarray(pos), jnp.asarray(neg), jnp.asarray(MASK), beta)
  assert float(got) == pytest.approx(hand, rel=1e-6)
  # (sigmoid(s)^beta: the positive's log-likelihood scaled by beta.)
  assert -math.log((1 / (1 + math.exp(-0.7))) ** beta) == pytest.approx(beta * _nls(0.7))


def _sampled(neg_ids, log_q=None):
  pos = np.take_along_axis(LOGITS, np.maximum(TARGETS, 0)[..., None], -1)[..., 0]
  neg = LOGITS[..., neg_ids]
  lq = (None, None) if log_q is None else (jnp.asarray(log_q[np.maximum(TARGETS, 0)]),
                                           jnp.asarray(log_q[neg_ids]))
  return float(sasrec.sampled_softmax_loss(jnp.asarray(pos), jnp.asarray(neg),
                                           jnp.asarray(TARGETS), jnp.asarray(neg_ids),
                                           jnp.asarray(MASK), *lq))


def test_sampled_softmax_with_and_without_log_q():
  neg_ids = np.array([0, 2, 2, 4])              # a repeat; item 2 is slot 0's target (a hit)
  log_q = np.log(np.array([0.1, 0.4, 0.2, 0.2, 0.1]) * 4)
  def hand(corr):
    out = []
    for t in (0, 1):
      tgt = TARGETS[0, t]
      p = LOGITS[0, t, tgt] - corr[tgt]
      terms = [p] + [LOGITS[0, t, j] - corr[j] for j in neg_ids if j != tgt]
      out.append(math.log(sum(math.exp(v) for v in terms)) - p)
    return np.mean(out)
  assert _sampled(neg_ids) == pytest.approx(hand(np.zeros(5)), rel=1e-6)
  assert _sampled(neg_ids, log_q) == pytest.approx(hand(log_q), rel=1e-6)
  # Uniform Q shifts every logit alike: log Q changes nothing.
  uniform = np.full(5, np.log(4 / 5))
  assert _sampled(neg_ids, uniform) == pytest.approx(_sampled(neg_ids), rel=1e-6)
  # Every item once as a negative, no correction: the full softmax.
  full = float(sasrec.ce_loss(jnp.asarray(LOGITS), jnp.asarray(TARGETS), jnp.asarray(MASK)))
  assert _sampled(np.arange(5)) == pytest.approx(full, rel=1e-6)


@pytest.mark.parametrize("loss", sasrec.LOSSES)
def test_each_loss_fn_reads_the_network_s_logits(loss):
  """make_loss_fn on a batch: the same value as the hand formula over <h_t, E[j]>."""
  cfg = sasrec.Config(max_len=3, hidden=8, num_heads=1, dropout=0.0, loss=loss,
                      num_negatives=3 if loss == "sampled" else 2, log_q=True)
  net = sasrec.make_net(cfg, 5)
  params = net.init(jax.random.PRNGKey(0), np.zeros((1, 3), np.int32))
  batch = {"inputs": np.array([[0, 2, 5]], np.int32), "targets": np.array([[-1, 4, 1]])}
  if loss == "sampled":
    batch["negatives"] = np.array([1, 3, 0], np.int32)
  elif loss != "ce":
    batch["negatives"] = np.array([[[0, 0], [0, 2], [3, 4]]], np.int32)
  log_q = np.log(np.array([0.1, 0.3, 0.2, 0.2, 0.2]) * 3)
  got, _ = sasrec.make_loss_fn(cfg, net, 5, log_q)(params, jax.random.PRNGKey(1), batch)
  h = np.asarray(net.encode(params, None, batch["inputs"], False))[0]
  logits = h @ np.asarray(params["sasrec"]["item_embeddings"]).T           # [3, 5]
  beta = sasrec.gbce_beta(2, 5, cfg.gbce_t)
  per = []
  for t in (1, 2):
    tgt, s = batch["targets"][0, t], logits[t]
    if loss == "ce":
      per.append(math.log(np.exp(s).sum()) - s[tgt])
    elif loss == "sampled":
      c = [s[tgt] - log_q[tgt]] + [s[j] - log_q[j] for j in batch["negatives"] if j != tgt]
      per.append(math.log(np.exp(c).sum()) - c[0])
    else:
      negs = sum(_nls(-s[j]) for j in batch["negatives"][0, t])
      per.append(_nls(s[tgt]) + negs if loss == "bce" else (beta * _nls(s[tgt]) + negs) / 3)
  assert float(got) == pytest.approx(np.mean(per), rel=1e-5)


def test_both_ways_to_the_negatives_logits_agree():
  """Gathered rows (K D <= I) and all logits then K (K D > I): the same [B, L, K]."""
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
  for num_items, k in ((50, 2), (5, 3)):
    table = jnp.asarray(rng.normal(size=(num_items, 4)), jnp.float32)
    items = rng.integers(0, num_items, size=(2, 3, k))
    want = np.einsum("bld,blkd->blk", np.asarray(h), np.asarray(table)[items])
    got = sasrec._per_slot_logits(h, table, jnp.asarray(items))  # pylint: disable=protected-access
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------
# Batches.

def _data():
  seqs = [np.array([3, 1, 4, 0, 5, 9, 2, 6], np.int32), np.array([7, 8], np.int32),
          np.array([2], np.int32)]
  return SequenceData(seqs, None, np.arange(3), 10)


def test_batches_shift_by_one_left_padded_and_deterministic():
  cfg = sasrec.Config(max_len=4, loss="bce", num_negatives=3)
  b = sasrec.Batches(cfg, _data(), seed=0)
  np.testing.assert_array_equal(b.users, [0, 1])                # user 2 has no target
  out = b.make(np.array([0, 1]), np.random.default_rng([0, 5]))
  np.testing.assert_array_equal(out["inputs"], [[1, 6, 10, 3], [0, 0, 0, 8]])   # index + 1
  np.testing.assert_array_equal(out["targets"], [[5, 9, 2, 6], [-1, -1, -1, 8]])
  assert out["negatives"].shape == (2, 4, 3)
  assert not np.isin(out["negatives"][0], _data().sequences[0]).any()   # unseen items only
  assert not np.isin(out["negatives"][1], [7, 8]).any()
  batcher = sasrec.train_lib.EpochBatcher(2, 2, 0)
  first, again = b.batch_fn(batcher)(3), b.batch_fn(batcher)(3)
  for k in first:
    np.testing.assert_array_equal(first[k], again[k])


def test_random_windows_and_the_other_losses_negatives():
  data = _data()
  cfg = sasrec.Config(max_len=3, window="random", loss="gbce", num_negatives=4)
  out = sasrec.Batches(cfg, data, seed=0).make(np.array([0] * 50), np.random.default_rng(1))
  seq = data.sequences[0]
  starts = set()
  for row in range(50):
    w = out["inputs"][row] - 1
    i = int(np.flatnonzero(seq == w[0])[0])
    np.testing.assert_array_equal(seq[i:i + 3], w)
    np.testing.assert_array_equal(seq[i + 1:i + 4], out["targets"][row])
    starts.add(i)
  assert len(starts) > 2
  assert not (out["negatives"] == out["targets"][..., None]).any()    # gbce: never the target
  cfg = sasrec.Config(max_len=3, loss="sampled", num_negatives=7, negative_sampler="popularity")
  b = sasrec.Batches(cfg, data, seed=0)
  assert b.make(np.array([0, 1]), np.random.default_rng(1))["negatives"].shape == (7,)
  counts = np.bincount(np.concatenate(data.sequences), minlength=10)
  np.testing.assert_allclose(np.exp(b.log_q), 7 * counts / counts.sum(), rtol=1e-5,
                             atol=1e-9)


def test_bad_values_are_refused_naming_the_field():
  with pytest.raises(ValueError, match="model.loss='bpr': must be one of"):
    sasrec.Config(loss="bpr")
  with pytest.raises(ValueError, match="model.hidden=50: must be a multiple of"):
    sasrec.Config(num_heads=4)
  with pytest.raises(ValueError, match="model.norm='post'"):
    sasrec.Config(norm="post")


# ----------------------------------------------------------------------------------------
# Through the pipeline.

def _quick(noise=0.0):
  cfg = configs.get_config("dataset=synthetic,recipe=quick")
  cfg.model.name = MODEL
  cfg.data.synthetic.noise = noise
  return cfg


@pytest.mark.parametrize("arg", ["dataset=synthetic,recipe=quick", "dataset=file",
                                 "dataset=ml1m", "dataset=ml1m,recipe=ce",
                                 "dataset=beauty", "dataset=beauty,recipe=sampled",
                                 "dataset=sports,recipe=sampled"])
def test_every_recipe_parses(arg, tmp_path):
  cfg = configs.get_config(arg)
  cfg.model.name = MODEL
  if "file" in arg:
    cfg.data.path = str(tmp_path)
  elif "synthetic" not in arg:
    cfg.data.dir = str(tmp_path)
  parsed = pipeline.parse(cfg)
  assert parsed.module is sasrec
  if "ml1m" in arg:
    assert (parsed.model.max_len, parsed.model.dropout) == (200, 0.2)
  elif "synthetic" not in arg:
    assert (parsed.model.max_len, parsed.model.dropout) == (50, 0.5)
  with pytest.raises(ValueError, match="unknown recipe 'ce' for dataset 'beauty'"):
    configs.get_config("dataset=beauty,recipe=ce")


def test_learns_the_next_item_rule_where_popularity_cannot(tmp_path):
  record = pipeline.train_and_evaluate(_quick(), runs_root=str(tmp_path))
  assert pipeline.test_metrics(record)["hr@10"] > 0.9
  assert record["model_info"]["stopped"] == "num_epochs"
  popular = dict(_quick(), model={"name": "popularity"}, name="popularity")
  baseline = pipeline.train_and_evaluate(popular, runs_root=str(tmp_path))
  assert pipeline.test_metrics(baseline)["hr@10"] < 0.5


def test_a_stopped_run_resumes_to_the_uninterrupted_result(tmp_path):
  """A time budget of 0 stops at the first evaluation; the rerun (budget None) in the same
  folder ends with the metrics of one uninterrupted call."""
  cfg = _quick(noise=0.3)
  cfg.model.loss = "bce"
  cfg.model.dropout = 0.3
  cfg.model.num_epochs = 10.0        # two evaluations
  whole = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path / "whole"))
  cfg.model.max_seconds = 0.0
  first = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path / "split"))
  assert first["model_info"]["stopped"] == "time_budget"
  assert first["model_info"]["epochs"] == cfg.model.eval_every_epochs
  cfg.model.max_seconds = None
  again = pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path / "split"))
  assert again["run_dir"] == first["run_dir"]
  assert again["model_info"]["stopped"] == "num_epochs"
  assert again["metrics"] == whole["metrics"]
  assert again["model_info"]["eval_history"] == whole["model_info"]["eval_history"]
  assert again["model_info"]["best_step"] == whole["model_info"]["best_step"]
