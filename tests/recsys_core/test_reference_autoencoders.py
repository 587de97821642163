"""recsys_core.models.mult_vae (Mult-VAE / Mult-DAE) and recsys_core.models.recvae (RecVAE).

Tested:
  * the multinomial NLL against a hand computation (2 users x 4 items);
  * the Gaussian KL against the closed form of KL(N(mu, Sigma) || N(0, I)) with a diagonal
    Sigma (matrix formula) and a Monte Carlo estimate; the KL annealing schedule (and the
    beta the loss uses at a step); the weight penalty counts weight matrices only;
  * PaddedBatches: every training row once per epoch, padding rows of weight 0;
  * RecVAE's composite prior: its log density equals the log of the weighted sum of the
    three component densities (numpy), its weights sum to 1 (others are refused);
  * RecVAE's alternation: encoder steps leave the decoder (and its optimizer state) alone and
    vice versa, and the old encoder is the encoder after the last encoder step of a cycle;
  * eval-mode scoring is deterministic, training mode is not;
  * each model trained through `pipeline.train_and_evaluate` on a synthetic
    strong-generalisation CSV beats popularity on test NDCG@100.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import sparse

from recsys_core import pipeline
from recsys_core import train as train_lib
from recsys_core.data.types import Interactions
from recsys_core.models import mult_vae
from recsys_core.models import recvae

MULT_VAE = "recsys_core.models.mult_vae"
RECVAE = "recsys_core.models.recvae"


def _interactions(dense: np.ndarray) -> Interactions:
  users, items = np.nonzero(dense)
  return Interactions(users.astype(np.int32), items.astype(np.int32), None, None,
                      np.arange(dense.shape[0]), np.arange(dense.shape[1]), "test")


# ----------------------------------------------------------------------------------------
# Mult-VAE: losses and schedule


def test_multinomial_nll_matches_hand_computation():
  logits = np.array([[1.0, 0.0, -1.0, 2.0],
                     [0.5, 0.5, 0.0, -0.5]], np.float32)
  x = np.array([[1, 0, 0, 1],
                [0, 1, 1, 0]], np.float32)
  # user 0: -(1 + 2) + 2 log(e^1 + e^0 + e^-1 + e^2); user 1: -(0.5 + 0) + 2 log(...)
  lse0 = math.log(math.e + 1.0 + math.exp(-1.0) + math.exp(2.0))
  lse1 = math.log(2 * math.exp(0.5) + 1.0 + math.exp(-0.5))
  want = [2 * lse0 - 3.0, 2 * lse1 - 0.5]
  np.testing.assert_allclose(mult_vae.multinomial_nll(logits, x), want, rtol=1e-6)


def test_gaussian_kl_matches_closed_form_and_monte_carlo():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(3, 4)).astype(np.float32)
  logvar = rng.normal(scale=0.5, size=(3, 4)).astype(np.float32)
  got = np.asarray(mult_vae.gaussian_kl(mu, logvar))
  for u in range(3):
    cov = np.diag(np.exp(logvar[u]).astype(np.float64))
    m = mu[u].astype(np.float64)
    # KL(N(m, S) || N(0, I)) = 1/2 (tr S + m'm - k - log det S)
    closed = 0.5 * (np.trace(cov) + m @ m - len(m) - np.linalg.slogdet(cov)[1])
    assert got[u] == pytest.approx(closed, rel=1e-5)
    z = m + np.sqrt(np.diag(cov)) * rng.normal(size=(200_000, len(m)))
    log_q = -0.5 * np.sum((z - m) ** 2 / np.diag(cov) + np.log(2 * np.pi * np.diag(cov)), 1)
    log_p = -0.5 * np.sum(z ** 2 + np.log(2 * np.pi), 1)
    assert got[u] == pytest.approx(np.mean(log_q - log_p), abs=0.03)


def test_anneal_schedule():
  beta = lambda s, cap=0.2, t=1000: float(mult_vae.anneal_beta(s, cap, t))
  assert beta(0) == 0.0                                    # the first update: beta 0
  assert beta(100) == pytest.approx(0.1)
  assert beta(199) == pytest.approx(0.199)
  assert beta(200) == pytest.approx(0.2) and beta(5000) == pytest.approx(0.2)  # capped
  assert beta(300, cap=1.0) == pytest.approx(0.3)
  assert beta(7, t=0) == pytest.approx(0.2)                # T = 0: the cap throughout
  # T derived from the run: beta reaches the cap after anneal_fraction of the steps.
  cfg = mult_vae.Config(anneal_fraction=0.5, anneal_cap=0.2)
  assert mult_vae.derived_anneal_steps(cfg, 300) == 750
  assert float(mult_vae.anneal_beta(150, 0.2, 750)) == pytest.approx(0.2)
  assert float(mult_vae.anneal_beta(149, 0.2, 750)) < 0.2
  assert mult_vae.derived_anneal_steps(mult_vae.Config(total_anneal_steps=200000), 300) == 200000
  assert mult_vae.derived_anneal_steps(mult_vae.Config(anneal_fraction=0.0), 300) == 0


def test_loss_uses_the_batch_step_beta_and_penalises_weights_only():
  cfg = mult_vae.Config(hidden=8, latent=4, dropout=0.0, weight_decay=0.0)
  net = mult_vae.network(cfg, 6)
  params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 6)), True)
  x = np.eye(6, dtype=np.float32)[:3] + np.eye(6, dtype=np.float32)[3:]
  batch = {"x": x, "weight": np.ones(3, np.float32), "step": np.int32(40)}
  loss_fn = mult_vae.make_loss_fn(cfg, net, total_anneal_steps=100)
  loss, m = loss_fn(params, jax.random.PRNGKey(1), batch)
  assert float(m["beta"]) == pytest.approx(0.2)            # min(0.2, 40 / 100)
  assert float(loss) == pytest.approx(float(m["nll"] + 0.2 * m["kl"]), rel=1e-6)
  batch["step"] = np.int32(10)
  assert float(loss_fn(params, jax.random.PRNGKey(1), batch)[1]["beta"]) == pytest.approx(0.1)
  weights = sum(float(np.sum(np.square(v["w"]))) for v in params.values())
  assert float(mult_vae.weight_l2(params)) == pytest.approx(weights, rel=1e-6)
  cfg_wd = mult_vae.Config(hidden=8, latent=4, dropout=0.0, weight_decay=0.01)
  loss_wd, _ = mult_vae.make_loss_fn(cfg_wd, net, 100)(params, jax.random.PRNGKey(1), batch)
  loss_0, _ = loss_fn(params, jax.random.PRNGKey(1), batch)
  assert float(loss_wd - loss_0) == pytest.approx(0.01 * weights, rel=1e-4)


def test_padded_batches_visit_every_row_once_per_epoch():
  rows = sparse.csr_matrix(np.eye(7, dtype=np.float32))
  batches = mult_vae.PaddedBatches(rows, batch_size=3, seed=5)
  assert batches.steps_per_epoch == 3
  for epoch in range(2):
    seen = []
    for step in range(3 * epoch, 3 * epoch + 3):
      b = batches(step)
      assert b["x"].shape == (3, 7) and int(b["step"]) == step
      n = int(b["weight"].sum())
      assert np.all(b["x"][n:] == 0) and np.all(b["weight"][n:] == 0)
      seen += list(np.argmax(b["x"][:n], axis=1))
    assert sorted(seen) == list(range(7))
  assert not np.array_equal(batches(0)["x"], batches(3)["x"])  # a new order each epoch


# ----------------------------------------------------------------------------------------
# RecVAE: composite prior and alternation


def test_composite_prior_is_the_log_of_the_weighted_density_sum():
  z = np.array([[0.3, -1.2], [2.0, 0.0]])
  mu = np.array([[0.1, -1.0], [1.5, 0.4]])
  logvar = np.array([[-0.5, 0.2], [0.3, -1.0]])
  w = (0.15, 0.75, 0.1)
  pdf = lambda x, m, var: np.exp(-(x - m) ** 2 / (2 * var)) / np.sqrt(2 * np.pi * var)
  want = np.log(w[0] * pdf(z, 0.0, 1.0) + w[1] * pdf(z, mu, np.exp(logvar))
                + w[2] * pdf(z, 0.0, np.exp(10.0)))
  got = recvae.composite_prior_logpdf(jnp.asarray(z, jnp.float32), jnp.asarray(mu, jnp.float32),
                                      jnp.asarray(logvar, jnp.float32), w, 10.0)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(recvae.log_normal(z, mu, logvar), np.log(pdf(z, mu, np.exp(logvar))),
                             rtol=1e-6)


def test_mixture_weights_sum_to_one():
  assert sum(recvae.Config().mixture_weights) == pytest.approx(1.0)
  assert recvae.Config().mixture_weights == pytest.approx((3 / 20, 3 / 4, 1 / 10))
  for bad in ((0.2, 0.75, 0.1), (0.5, 0.5), (0.0, 0.9, 0.1)):
    with pytest.raises(ValueError, match="model.mixture_weights"):
      recvae.Config(mixture_weights=bad)


def _tiny_rows():
  """[20, 12] binary rows, every user with at least one item."""
  x = (np.random.default_rng(0).random((20, 12)) < 0.3).astype(np.float32)
  x[np.arange(20), np.arange(20) % 12] = 1.0
  return x


def _tiny_recvae(**overrides):
  return recvae.Config(hidden=8, latent=4, layers=3, batch_size=10, **overrides), _tiny_rows()


def test_recvae_alternates_encoder_and_decoder_and_copies_the_old_encoder():
  cfg, x = _tiny_recvae(enc_epochs=3, dec_epochs=1)
  batches = mult_vae.PaddedBatches(sparse.csr_matrix(x), cfg.batch_size, seed=0)
  ph = recvae.phases(cfg, batches.steps_per_epoch)
  assert (ph.cycle, ph.encoder_steps) == (8, 6)
  nets = recvae.networks(cfg, 12)
  update, optimizer = recvae.make_update_fn(cfg, nets, ph)
  state = train_lib.init_train_state(recvae.init_params(cfg, nets, 12, 0), optimizer,
                                     jax.random.PRNGKey(1))
  same = lambda a, b: all(np.array_equal(u, v) for u, v in
                          zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  for step in range(16):
    before = state
    state, metrics = update(state, batches(step))
    encoder_step = step % 8 < 6
    assert float(metrics["encoder_phase"]) == float(encoder_step)
    assert same(before.params["decoder"], state.params["decoder"]) == encoder_step, step
    assert same(before.params["encoder"], state.params["encoder"]) != encoder_step, step
    assert same(before.opt_state.decoder, state.opt_state.decoder) == encoder_step, step
    assert same(before.opt_state.encoder, state.opt_state.encoder) != encoder_step, step
    if step % 8 == 5:   # after the last encoder step of a cycle: the prior's copy
      assert same(state.params["old_encoder"], state.params["encoder"])
      assert not same(before.params["old_encoder"], state.params["old_encoder"])
    else:
      assert same(before.params["old_encoder"], state.params["old_encoder"]), step


# ----------------------------------------------------------------------------------------
# Eval mode vs training mode


def test_mult_vae_eval_mode_is_deterministic_and_training_mode_is_not():
  for variant in mult_vae.VARIANTS:
    cfg = mult_vae.Config(variant=variant, hidden=8, latent=4)
    net = mult_vae.network(cfg, 12)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 12)), True)
    x = _interactions(_tiny_rows())
    scorer = mult_vae.AEScorer("t", jax.jit(lambda p, v: net.apply(p, None, v, False).logits),
                               params, 12)
    first, second = scorer.score(x), scorer.score(x)
    assert first.shape == (20, 12) and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    dense = jnp.asarray(x.to_csr().toarray())
    np.testing.assert_allclose(first, net.apply(params, None, dense, False).logits, rtol=1e-5,
                               atol=1e-6)
    a = net.apply(params, jax.random.PRNGKey(1), dense, True).logits
    b = net.apply(params, jax.random.PRNGKey(2), dense, True).logits
    assert not np.allclose(a, b), variant


def test_recvae_eval_mode_is_deterministic_and_training_mode_is_not():
  cfg, x = _tiny_recvae()
  nets = recvae.networks(cfg, 12)
  params = recvae.init_params(cfg, nets, 12, 0)
  scorer = mult_vae.AEScorer("t", recvae.logits_fn(nets), params, 12)
  inputs = _interactions(x)
  np.testing.assert_array_equal(scorer.score(inputs), scorer.score(inputs))
  loss_fn = recvae.make_loss_fn(cfg, nets, recvae.phases(cfg, 2))
  batch = {"x": x, "weight": np.ones(20, np.float32), "step": np.int32(0)}
  assert float(loss_fn(params, jax.random.PRNGKey(1), batch)[0]) != float(
      loss_fn(params, jax.random.PRNGKey(2), batch)[0])


# ----------------------------------------------------------------------------------------
# Through the pipeline


def _write_group_csv(path, num_users=600, num_groups=6, group_size=20, seed=0):
  """Users who each mostly take items of one group (90%), the rest at random: popularity
  knows nothing of the group, an autoencoder can infer it from the fold-in items."""
  rng = np.random.default_rng(seed)
  num_items = num_groups * group_size
  with open(path, "w") as f:
    f.write("user_id,item_id\n")
    for u in range(num_users):
      g = int(rng.integers(num_groups))
      n = int(rng.integers(8, 15))
      own = rng.choice(group_size, size=n, replace=False) + g * group_size
      items = [int(i) if rng.random() < 0.9 else int(rng.integers(num_items)) for i in own]
      f.writelines(f"{1000 + u},{5 + i}\n" for i in sorted(set(items)))
  return str(path)


def _config(csv, model):
  return {"seed": 0, "name": model["name"].rsplit(".", 1)[-1] + "_groups",
          "data": {"name": "file", "path": csv},
          "protocol": {"name": "strong_generalization", "ks": [20, 100], "seed": 1,
                       "selection_metric": "ndcg@100"},
          "model": model}


@pytest.fixture(scope="module")
def group_csv(tmp_path_factory):
  return _write_group_csv(tmp_path_factory.mktemp("data") / "groups.csv")


@pytest.fixture(scope="module")
def popularity_ndcg(group_csv, tmp_path_factory):
  record = pipeline.train_and_evaluate(_config(group_csv, {"name": "popularity"}),
                                       runs_root=str(tmp_path_factory.mktemp("runs")))
  return pipeline.test_metrics(record)["ndcg@100"]


@pytest.mark.parametrize("variant", ["vae", "dae"])
def test_mult_vae_beats_popularity_through_the_pipeline(variant, group_csv, popularity_ndcg,
                                                        tmp_path):
  model = {"name": MULT_VAE, "variant": variant, "hidden": 64, "latent": 16, "epochs": 30,
           "batch_size": 128, "eval_every_epochs": 5, "checkpoint_every_epochs": 30,
           "weight_decay": 2e-5 if variant == "dae" else 0.0}
  record = pipeline.train_and_evaluate(_config(group_csv, model), runs_root=str(tmp_path))
  ndcg = pipeline.test_metrics(record)["ndcg@100"]
  info = record["model_info"]
  assert info["steps_per_epoch"] == 4 and info["num_steps"] == 120   # 480 users / 128
  assert info["best_step"] in range(20, 121, 20)
  assert ndcg > popularity_ndcg + 0.1, (ndcg, popularity_ndcg)


def test_recvae_beats_popularity_through_the_pipeline(group_csv, popularity_ndcg, tmp_path):
  model = {"name": RECVAE, "hidden": 64, "latent": 16, "layers": 3, "epochs": 8,
           "batch_size": 128, "learning_rate": 1e-3, "checkpoint_every_epochs": 8}
  record = pipeline.train_and_evaluate(_config(group_csv, model), runs_root=str(tmp_path))
  ndcg = pipeline.test_metrics(record)["ndcg@100"]
  info = record["model_info"]
  assert info["cycle_steps"] == 16 and info["num_steps"] == 128
  assert ndcg > popularity_ndcg + 0.1, (ndcg, popularity_ndcg)
