"""Tests of anime_ae's pieces on tiny synthetic data (model, losses, ratings, profiles,
recommendation, explanations, holdout analysis)."""
import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anime_ae import analysis, losses, recommend
from anime_ae.config import AEConfig, RatingsConfig
from anime_ae.model import AEOutput, ModelConfig
from anime_ae.profiles import InputDropout, build_profiles, dense_batch, filter_profiles
from anime_ae.ratings import RatingTransform
from anime_ae.training import init_params
from recsys_core.data.types import Interactions

I = 12  # items in the tiny corpus


def _tiny_model(num_items=I, noise=0.1, seed=0):
  cfg = ModelConfig(hidden_dim=16, bottleneck_dim=8, noise_std=noise)
  tf = cfg.make(num_items)
  params = init_params(tf, num_items, seed)
  return tf, params


def _toy_interactions():
  # user 0: rates everything high; user 1: whole scale with one unrated row; user 2: 3 items.
  rows = [(0, 0, 9), (0, 1, 10), (0, 2, 9), (0, 3, 10),
          (1, 0, 2), (1, 4, 5), (1, 5, 8), (1, 6, 10), (1, 7, np.nan),
          (2, 8, 7), (2, 9, 6), (2, 10, 8)]
  u, i, r = zip(*rows)
  return Interactions(users=np.array(u, np.int32), items=np.array(i, np.int32),
                      ratings=np.array(r, np.float32), order=None,
                      user_ids=np.arange(3), item_ids=np.arange(I), source="toy")


# --- model ----------------------------------------------------------------------------


def test_model_shapes_and_named_layers():
  tf, params = _tiny_model()
  x = jnp.ones((3, I))
  out = tf.apply(params, None, x, x, False)
  assert out.item_logits.shape == (3, I) and out.rating_pred.shape == (3, I)
  assert out.bottleneck.shape == (3, 8)
  assert out.log_var_presence.shape == () and out.log_var_rating.shape == ()
  names = set(params)
  assert any(n.endswith("/bottleneck") for n in names)
  assert params["two_head_ae/encoder"]["w"].shape == (2 * I, 16)       # ratings + presence
  for head in ("dec_item", "dec_rating"):
    assert params[f"two_head_ae/{head}_up1"]["w"].shape == (8, 8)     # hidden/2
    assert params[f"two_head_ae/{head}_up2"]["w"].shape == (8, 16)    # hidden


def test_presence_flag_distinguishes_neutral_rating_from_absent():
  tf, params = _tiny_model()
  zero = jnp.zeros((1, I))
  present = zero.at[0, 3].set(1.0)
  a = tf.apply(params, None, zero, zero, False).item_logits
  b = tf.apply(params, None, zero, present, False).item_logits  # rating 0 but in profile
  assert not np.allclose(a, b)


def test_noise_only_in_training():
  tf, params = _tiny_model(noise=0.5)
  x = jax.random.uniform(jax.random.PRNGKey(1), (4, I))
  e1 = tf.apply(params, None, x, x, False)
  e2 = tf.apply(params, jax.random.PRNGKey(7), x, x, False)
  np.testing.assert_array_equal(e1.item_logits, e2.item_logits)  # eval is deterministic
  t1 = tf.apply(params, jax.random.PRNGKey(1), x, x, True)
  t2 = tf.apply(params, jax.random.PRNGKey(2), x, x, True)
  assert not np.allclose(t1.item_logits, t2.item_logits)
  # The noise is added after the bottleneck (the reported bottleneck is noise-free).
  np.testing.assert_allclose(t1.bottleneck, e1.bottleneck, rtol=1e-5, atol=1e-6)
  tf0, params0 = _tiny_model(noise=0.0)
  z1 = tf0.apply(params0, jax.random.PRNGKey(1), x, x, True)
  z2 = tf0.apply(params0, None, x, x, False)
  np.testing.assert_allclose(z1.item_logits, z2.item_logits, rtol=1e-6)


def test_shared_decoder_ablation_has_one_trunk():
  cfg = ModelConfig(hidden_dim=16, bottleneck_dim=8, shared_decoder=True)
  params = init_params(cfg.make(I), I, 0)
  assert "two_head_ae/dec_shared_up1" in params
  assert "two_head_ae/dec_item_up1" not in params


def test_mult_dae_layout_has_one_tanh_code_and_output_layers_on_it():
  """activation tanh, no bottleneck, decoder depth 0: the code is tanh(encoder) and both
  output layers read it directly."""
  cfg = ModelConfig(hidden_dim=16, activation="tanh", use_bottleneck=False, decoder_depth=0,
                    noise_std=0.0)
  tf = cfg.make(I)
  params = init_params(tf, I, 0)
  assert sorted(params) == ["two_head_ae", "two_head_ae/encoder", "two_head_ae/item_logits",
                            "two_head_ae/rating_pred"]
  x = jax.random.uniform(jax.random.PRNGKey(2), (3, I))
  out = tf.apply(params, None, x, x, False)
  enc = params["two_head_ae/encoder"]
  code = np.tanh(np.concatenate([x, x], -1) @ enc["w"] + enc["b"])        # [3, 16]
  np.testing.assert_allclose(out.bottleneck, code, rtol=1e-5, atol=1e-6)
  head = params["two_head_ae/item_logits"]
  np.testing.assert_allclose(out.item_logits, code @ head["w"] + head["b"], rtol=1e-4,
                             atol=1e-5)
  one = init_params(ModelConfig(hidden_dim=16, decoder_depth=1).make(I), I, 0)
  assert params["two_head_ae/item_logits"]["w"].shape == (16, I)
  assert "two_head_ae/dec_item_up2" in one and "two_head_ae/dec_item_up1" not in one
  with pytest.raises(ValueError, match="model.activation must be one of"):
    ModelConfig(activation="relu6")


def test_log_var_scale_lets_adam_move_the_uncertainty_weights_that_much_faster():
  import optax
  x = jax.random.uniform(jax.random.PRNGKey(3), (4, I))
  batch = {"presence": (x > 0.5).astype(jnp.float32), "rating": x,
           "rating_mask": jnp.ones_like(x)}
  loss_fn = losses.LossConfig().make()
  moved = {}
  for scale in (1.0, 100.0):
    tf = ModelConfig(hidden_dim=16, bottleneck_dim=8, noise_std=0.0,
                     log_var_scale=scale).make(I)
    params = init_params(tf, I, 0)
    value = lambda p: loss_fn(tf.apply(p, None, x, x, False), batch)[0]
    opt = optax.adam(1e-3)
    updates, _ = opt.update(jax.grad(value)(params), opt.init(params))
    after = tf.apply(optax.apply_updates(params, updates), None, x, x, False)
    moved[scale] = abs(float(after.log_var_presence))          # from 0 at init
  assert moved[1.0] == pytest.approx(1e-3, rel=0.05)
  assert moved[100.0] == pytest.approx(0.1, rel=0.05)


# --- losses ---------------------------------------------------------------------------


def test_multinomial_nll_hand_computed():
  logits = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
  presence = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  z0 = math.log(math.e ** 1 + math.e ** 2 + 1)
  l0 = -((1 - z0) + (2 - z0)) / 2           # mean over the profile's 2 items
  l1 = -(0 - math.log(3))
  got = float(losses.multinomial_nll(jnp.array(logits), jnp.array(presence)))
  assert got == pytest.approx((l0 + l1) / 2, rel=1e-6)


def test_multinomial_nll_summed_per_profile():
  logits = jnp.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
  presence = jnp.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  logp = np.asarray(jax.nn.log_softmax(logits))
  want = (-(logp[0, 0] + logp[0, 1]) - logp[1, 2]) / 2    # sum per profile, mean over them
  got = float(losses.multinomial_nll(logits, presence, reduction="sum"))
  assert got == pytest.approx(want, rel=1e-6)
  with pytest.raises(ValueError, match="presence_reduction must be"):
    losses.LossConfig(presence_reduction="max")


def test_bernoulli_input_dropout_drops_each_entry_independently():
  drop = InputDropout(rate=0.3, kind="bernoulli")
  lengths = np.array([1, 2, 500, 5000])
  keep = drop.keep_mask(np.random.default_rng(0), lengths)
  assert keep.shape == (lengths.sum(),)
  assert abs(1 - keep.mean() - 0.3) < 0.02
  # Unlike the seed's per-profile fraction, a short profile may lose every entry.
  singles = drop.keep_mask(np.random.default_rng(1), np.ones(2000, np.int64))
  assert 0.25 < 1 - singles.mean() < 0.35
  with pytest.raises(ValueError, match="dropout_kind must be"):
    InputDropout(kind="gaussian")


def test_multinomial_nll_ignores_empty_profiles():
  logits = jnp.array([[1.0, 2.0, 0.0], [5.0, 0.0, 0.0]])
  presence = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  one = losses.multinomial_nll(logits[:1], presence[:1])
  assert float(losses.multinomial_nll(logits, presence)) == pytest.approx(float(one))


def test_rating_loss_ignores_unrated_and_inferred_items():
  pred = jnp.array([[0.5, 3.0, -1.0, 0.0]])
  target = jnp.array([[0.0, 0.0, 0.0, 0.2]])
  mask = jnp.array([[1.0, 0.0, 1.0, 0.0]])  # items 1 (inferred) and 3 (absent) masked
  # Huber(delta=1): 0.5 -> 0.125; -1.0 -> 0.5 (= 0.5 * 1^2 at the boundary).
  assert float(losses.masked_huber(pred, target, mask, 1.0)) == pytest.approx((0.125 + 0.5) / 2)
  changed = pred.at[0, 1].set(100.0).at[0, 3].set(-50.0)
  assert float(losses.masked_huber(changed, target, mask, 1.0)) == pytest.approx((0.125 + 0.5) / 2)
  # Huber is linear beyond delta: |e| = 3 -> delta * (3 - delta/2) = 2.5.
  assert float(losses.masked_huber(jnp.array([[3.0]]), jnp.array([[0.0]]), jnp.array([[1.0]]))) \
      == pytest.approx(2.5)


def test_uncertainty_weighting_matches_kendall_by_hand():
  l_p, l_r, s_p, s_r = 2.0, 0.3, 0.4, -0.7
  sigma2_p, sigma2_r = math.exp(s_p), math.exp(s_r)
  # Kendall et al.: classification 1/sigma^2 L + log sigma; regression 1/(2 sigma^2) L + log sigma.
  hand = l_p / sigma2_p + math.log(math.sqrt(sigma2_p)) + l_r / (2 * sigma2_r) + math.log(
      math.sqrt(sigma2_r))
  assert float(losses.uncertainty_weighted(l_p, l_r, s_p, s_r)) == pytest.approx(hand, rel=1e-6)


def test_loss_config_logs_raw_losses_and_weights():
  out = AEOutput(jnp.array([[1.0, 2.0, 0.0]]), jnp.array([[0.5, 0.0, 0.0]]), jnp.array(0.4),
                 jnp.array(-0.7), jnp.zeros((1, 2)))
  batch = {"presence": jnp.array([[1.0, 1.0, 0.0]]), "rating": jnp.zeros((1, 3)),
           "rating_mask": jnp.array([[1.0, 0.0, 0.0]])}
  total, aux = losses.LossConfig().make()(out, batch)
  assert float(total) == pytest.approx(float(losses.uncertainty_weighted(
      aux["loss_presence"], aux["loss_rating"], 0.4, -0.7)))
  assert float(aux["weight_presence"]) == pytest.approx(math.exp(-0.4))
  fixed, aux2 = losses.LossConfig(weighting="fixed", presence_weight=2.0, rating_weight=3.0
                                  ).make()(out, batch)
  assert float(fixed) == pytest.approx(2 * float(aux2["loss_presence"]) + 3 * 0.125)
  with pytest.raises(ValueError, match="weighting"):
    losses.LossConfig(weighting="nope")


# --- rating transform -----------------------------------------------------------------


def test_hybrid_keeps_high_rating_positive_for_generous_user():
  t = RatingTransform(lo=1, hi=10)
  # The docstring's worked examples.
  generous = np.array([9.0, 10.0])
  m, s = generous.mean(), generous.std()
  assert float(t.normalize(9.0, m, s)) == pytest.approx(-0.05 + 0.9 * 2.5 / 3.5, abs=1e-5)
  assert t.normalize(9.0, m, s) > 0.5                        # plain z-score would be -1
  assert (9.0 - m) / s == pytest.approx(-1.0)
  harsh = np.array([3.0, 4.0, 5.0, 6.0])
  assert float(t.normalize(6.0, harsh.mean(), harsh.std())) == pytest.approx(0.181, abs=1e-3)
  assert float(t.normalize(8.0, 6.0, 2.5)) == pytest.approx(0.408, abs=1e-3)
  assert float(t.normalize(3.0, 6.0, 2.5)) == pytest.approx(-0.610, abs=1e-3)
  # Mix weight: low variance -> absolute scale dominates.
  assert t.mix_weight(0.5) == pytest.approx(0.1)
  assert t.mix_weight(2.5) == pytest.approx(6.25 / 8.5)


def test_hybrid_is_monotone_and_denormalize_inverts():
  t = RatingTransform(lo=1, hi=10)
  r = np.linspace(1, 10, 37)
  for mean, std in [(9.5, 0.5), (4.5, 1.1), (6.0, 2.5), (6.5, 0.0)]:
    n = t.normalize(r, mean, std)
    assert np.all(np.diff(n) > 0)
    np.testing.assert_allclose(t.denormalize(n, mean, std), r, atol=0.02)


def test_transform_unrated_gets_user_mean_and_is_masked():
  x = _toy_interactions()
  t = RatingTransform(lo=1, hi=10)
  values, in_loss, stats = t.transform(x.users, x.ratings, x.num_users)
  assert stats.mean[1] == pytest.approx(np.mean([2, 5, 8, 10]))
  row = 8  # (1, 7, nan)
  assert not in_loss[row] and in_loss[:8].all()
  assert values[row] == pytest.approx(
      float(t.normalize(stats.mean[1], stats.mean[1], stats.std[1])))


def test_dropped_unrated_fixed_vs_user_relative():
  users = np.array([0, 0, 0, 0])
  ratings = np.array([8.0, 9.0, 10.0, np.nan], np.float32)
  dropped = np.array([False, False, False, True])
  fixed = RatingTransform(lo=1, hi=10, dropped_mode="fixed", dropped_rating=2.0)
  stars, in_loss = fixed.fill_unrated(users, ratings, fixed.user_stats(users, ratings, 1), dropped)
  assert stars[3] == 2.0 and in_loss[3]
  rel = RatingTransform(lo=1, hi=10, dropped_mode="user_relative", dropped_k=1.5,
                        dropped_in_loss=False)
  st = rel.user_stats(users, ratings, 1)
  stars, in_loss = rel.fill_unrated(users, ratings, st, dropped)
  assert stars[3] == pytest.approx(9.0 - 1.5 * np.std([8, 9, 10]))
  assert not in_loss[3]
  with pytest.raises(ValueError, match="dropped_mode"):
    RatingTransform(dropped_mode="zero")


def test_ratings_config_makes_the_transform_it_describes():
  # Every knob set away from its default reaches the transform; an open scale is inferred from
  # the data (1-5 stars here) and a given end is kept.
  cfg = RatingsConfig(lo=None, hi=None, neutral=3.5, tau=0.7, z_clip=1.5, std_floor=0.3,
                      dropped_mode="user_relative", dropped_rating=1.5, dropped_k=1.0,
                      dropped_in_loss=False)
  t = cfg.make(np.array([2.0, 4.0, np.nan, 5.0], np.float32))
  assert (t.lo, t.hi) == (1.0, 5.0)
  for f in dataclasses.fields(RatingsConfig):
    if f.name not in ("lo", "hi"):
      assert getattr(t, f.name) == getattr(cfg, f.name), f.name
  assert dataclasses.replace(cfg, hi=7.0).make(None).hi == 7.0


# --- profiles, filters, batches, dropout ----------------------------------------------


def test_profiles_are_sparse_uint16_and_small_floats():
  x = _toy_interactions()
  p = build_profiles(x, RatingTransform(lo=1, hi=10))
  assert p.items.dtype == np.uint16 and p.values.dtype == np.float16
  assert p.lengths().tolist() == [4, 5, 3]
  items, values, in_loss = p.profile(1)
  assert items.tolist() == [0, 4, 5, 6, 7] and in_loss.tolist() == [True] * 4 + [False]
  b = dense_batch(p, np.array([1, 0]))
  assert b["presence"].shape == (2, I) and b["presence"].dtype == np.float32
  assert b["presence"][0, [0, 4, 5, 6, 7]].tolist() == [1] * 5 and b["presence"][0].sum() == 5
  np.testing.assert_allclose(b["rating"][0, items], values, rtol=1e-3)
  assert b["rating_mask"][0, 7] == 0 and b["rating_mask"][0, 6] == 1
  np.testing.assert_array_equal(b["x_presence"], b["presence"])  # no dropout requested
  sub = p.subset(np.array([2, 0]))
  assert sub.lengths().tolist() == [3, 4] and sub.profile(0)[0].tolist() == [8, 9, 10]


def test_filter_min_ratings_and_status_noop():
  x = _toy_interactions()
  assert filter_profiles(x, min_ratings=4).tolist() == [0, 1]   # user 1 has 4 explicit + 1 unrated
  assert filter_profiles(x, min_ratings=5).tolist() == []
  # No status column (the anime data): keep_statuses has no effect.
  assert filter_profiles(x, 3, statuses=None, keep_statuses=("completed",)).tolist() == [0, 1, 2]
  statuses = np.array(["completed"] * 4 + ["dropped"] * 5 + ["completed"] * 3)
  assert filter_profiles(x, 3, statuses, ("completed",)).tolist() == [0, 2]


def test_input_dropout_fraction_within_bounds_and_variance():
  d = InputDropout(rate=0.4, spread=0.4)
  assert d.bounds == pytest.approx((0.24, 0.56))
  rng = np.random.default_rng(0)
  lengths = np.full(4000, 200)
  keep = d.keep_mask(rng, lengths)
  dropped = 1 - keep.reshape(4000, 200).mean(1)
  assert dropped.min() >= 0.24 - 1 / 200 and dropped.max() <= 0.56 + 1 / 200
  assert dropped.mean() == pytest.approx(0.4, abs=0.01)
  # Uniform on [0.24, 0.56]: variance (0.32)^2 / 12.
  assert dropped.var() == pytest.approx(0.32 ** 2 / 12, rel=0.1)
  # Short profiles keep at least one item.
  keep = d.keep_mask(rng, np.array([1, 2, 1]))
  assert keep.tolist()[0] and keep.tolist()[3]
  zero = InputDropout(rate=0.0, spread=0.4).keep_mask(rng, np.array([5, 7]))
  assert zero.all()


def test_dense_batch_dropout_only_on_input():
  x = _toy_interactions()
  p = build_profiles(x, RatingTransform(lo=1, hi=10))
  b = dense_batch(p, np.array([0, 1, 2]), InputDropout(0.5, 0.0), np.random.default_rng(0))
  assert b["presence"].sum() == 12                       # targets are the full profiles
  # round(0.5 * n) dropped (numpy rounds half to even): n=4,5,3 -> 2,2,2 dropped.
  assert b["x_presence"].sum(1).tolist() == [2, 3, 1]
  assert np.all(b["x_presence"] <= b["presence"])
  assert np.all(b["x_rating"][b["x_presence"] == 0] == 0)


def test_config_from_config_dict_rejects_unknown_keys():
  import ml_collections
  cd = ml_collections.ConfigDict({"model": {"hidden_dim": 32, "bottleneck_dim": 4},
                                  "train": {"steps": 3}, "recommend": {"mix": 0.5}})
  cfg = AEConfig.from_config_dict(cd)
  assert cfg.model.hidden_dim == 32 and cfg.train.steps == 3 and cfg.recommend.mix == 0.5
  assert cfg.loss.weighting == "uncertainty" and cfg.data.dropout_rate == 0.4
  with pytest.raises(ValueError, match="hiden_dim"):
    AEConfig.from_config_dict({"model": {"hiden_dim": 3}})


def test_train_config_is_adam_with_reduce_on_plateau():
  import optax
  from anime_ae.config import TrainConfig
  opt = TrainConfig().make()
  assert opt.name == "adam" and opt.learning_rate == 5e-4 and opt.plateau  # the seed's
  assert TrainConfig(weight_decay=0.01).make().name == "adamw"
  from recsys_core.train import make_optimizer
  params = {"w": jnp.ones(3)}
  o = make_optimizer(TrainConfig(plateau_patience=1, plateau_accumulation_size=1,
                                 plateau_factor=0.5).make())
  state = o.init(params)
  for _ in range(4):  # a loss that never improves halves the learning-rate scale
    _, state = o.update({"w": jnp.ones(3)}, state, params, value=jnp.asarray(1.0))
  assert float(optax.tree_utils.tree_get(state, "scale")) < 1.0


def _toy_training_setup(seed: int, log_every: int):
  """20 users x 6 random rated items and a 6-step config for a tiny model."""
  from anime_ae.config import TrainConfig
  rng = np.random.default_rng(seed)
  users = np.repeat(np.arange(20), 6).astype(np.int32)
  items = np.concatenate([rng.choice(I, 6, replace=False) for _ in range(20)]).astype(np.int32)
  x = Interactions(users, items, rng.integers(1, 11, len(users)).astype(np.float32), None,
                   np.arange(20), np.arange(I), "toy")
  base = AEConfig(model=ModelConfig(hidden_dim=16, bottleneck_dim=8),
                  train=TrainConfig(steps=6, batch_size=8, log_every=log_every))
  return base, build_profiles(x, base.ratings.make(x.ratings))


def test_sparse_and_dense_input_pipelines_train_identically():
  from anime_ae.config import TrainConfig
  from anime_ae.training import train
  base, profiles = _toy_training_setup(seed=0, log_every=3)
  runs = {}
  for mode in ("sparse", "dense"):
    cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, input_pipeline=mode))
    runs[mode] = train(profiles, cfg)
  losses_of = lambda r: [h["loss"] for h in r.history if h["event"] == "train"]
  assert losses_of(runs["sparse"]) == losses_of(runs["dense"])
  jax.tree.map(np.testing.assert_array_equal, runs["sparse"].params, runs["dense"].params)
  with pytest.raises(ValueError, match="input_pipeline"):
    TrainConfig(input_pipeline="csv")


def test_ema_decay_returns_the_parameter_average_without_changing_training():
  from anime_ae.training import train
  base, profiles = _toy_training_setup(seed=1, log_every=1)
  with_decay = lambda d: dataclasses.replace(base, train=dataclasses.replace(base.train,
                                                                             ema_decay=d))
  online, averaged = train(profiles, base), train(profiles, with_decay(0.9))
  # The average is read, never trained on: the loss curve is the same ...
  losses_of = lambda r: [h["loss"] for h in r.history if h["event"] == "train"]
  assert losses_of(online) == losses_of(averaged)
  # ... but the returned params are the average of the trajectory, not its last point.
  diff = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), online.params,
                      averaged.params)
  assert max(jax.tree.leaves(diff)) > 1e-6
  # A vanishing decay averages over the last step only: the online params again.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), online.params,
               train(profiles, with_decay(1e-9)).params)
  cfg = AEConfig.from_config_dict({"train": {"ema_decay": 0.99}})
  assert cfg.train.make().ema_decay == 0.99


# --- recommendation -------------------------------------------------------------------


def _random_outputs(seed=0, n=50):
  rng = np.random.default_rng(seed)
  return rng.normal(size=n) * 3, rng.normal(size=n)


def test_mix_extremes_reproduce_single_head_orderings():
  logits, rating = _random_outputs()
  cfg0 = recommend.RecommendConfig(mix=0.0)
  cfg1 = recommend.RecommendConfig(mix=1.0)
  s0 = recommend.ranking_scores(logits, rating, cfg0)
  s1 = recommend.ranking_scores(logits, rating, cfg1)
  np.testing.assert_array_equal(np.argsort(-s0), np.argsort(-rating))
  np.testing.assert_array_equal(np.argsort(-s1), np.argsort(-logits))
  mid = recommend.ranking_scores(logits, rating, recommend.RecommendConfig(mix=0.5))
  assert not np.array_equal(np.argsort(-mid), np.argsort(-rating))
  # Geometric mean: log score = m log p + (1-m) log sigmoid(r/T).
  p = np.exp(recommend.log_softmax_np(logits))
  sig = 1 / (1 + np.exp(-rating / 0.5))
  np.testing.assert_allclose(np.exp(mid), p ** 0.5 * sig ** 0.5, rtol=1e-6)


def test_niche_boost_zero_is_identity_and_boosts_surprising_items():
  logits, rating = _random_outputs(1)
  log_pop = np.log(np.random.default_rng(2).dirichlet(np.ones(50)))
  base = recommend.ranking_scores(logits, rating, recommend.RecommendConfig(niche_boost=0.0),
                                  log_pop)
  np.testing.assert_array_equal(
      base, recommend.ranking_scores(logits, rating, recommend.RecommendConfig()))
  boosted = recommend.ranking_scores(logits, rating, recommend.RecommendConfig(niche_boost=1.0),
                                     log_pop)
  surprise = recommend.log_softmax_np(logits) - log_pop
  np.testing.assert_allclose(boosted - base, surprise)
  with pytest.raises(ValueError, match="popularity"):
    recommend.ranking_scores(logits, rating, recommend.RecommendConfig(niche_boost=0.5))


def test_profile_and_plan_to_watch_never_recommended():
  logits, rating = _random_outputs(3)
  profile = np.argsort(-logits)[:5]          # the model's favourites are in the profile
  ptw = np.argsort(-logits)[5:8]
  on = recommend.RecommendConfig(mix=1.0, filter_plan_to_watch=True)
  ex = recommend.exclusion_mask(50, profile, ptw, on)
  top = recommend.top_k(recommend.ranking_scores(logits, rating, on, exclude=ex), 50)
  assert len(top) == 42 and not set(top) & set(profile) and not set(top) & set(ptw)
  off = dataclasses.replace(on, filter_plan_to_watch=False)
  ex = recommend.exclusion_mask(50, profile, ptw, off)
  top = recommend.top_k(recommend.ranking_scores(logits, rating, off, exclude=ex), 3)
  assert top.tolist() == ptw.tolist() and not set(top) & set(profile)


def test_explanations_batched_match_one_at_a_time():
  tf, params = _tiny_model(num_items=30, noise=0.1, seed=3)
  apply_eval = recommend.jit_apply_eval(tf, params)
  items = np.array([1, 4, 7, 11, 20])
  values = np.array([0.5, -0.2, 0.9, 0.1, -0.7], np.float32)
  targets = np.array([2, 9, 25])
  cfg = recommend.RecommendConfig(mix=0.3, niche_boost=0.5)
  log_pop = np.log(np.full(30, 1 / 30))
  got = recommend.explain(apply_eval, 30, items, values, targets, cfg, log_pop)
  assert got.shape == (3, 5)

  def score_of(it, va):
    xr = np.zeros((1, 30), np.float32)
    xp = np.zeros((1, 30), np.float32)
    xr[0, it], xp[0, it] = va, 1
    out = tf.apply(params, None, xr, xp, False)
    return recommend.ranking_scores(np.asarray(out.item_logits), np.asarray(out.rating_pred),
                                    cfg, log_pop)[0]

  full = score_of(items, values)
  for k in range(5):
    keep = np.arange(5) != k
    without = score_of(items[keep], values[keep])
    np.testing.assert_allclose(got[:, k], full[targets] - without[targets], rtol=1e-4, atol=1e-5)


# --- holdout analysis and bottleneck statistics -----------------------------------------


@pytest.mark.parametrize("input_norm", ["none", "l2"])
def test_holdout_batched_matches_loop_and_tables(input_norm):
  cfg = ModelConfig(hidden_dim=16, bottleneck_dim=8, input_norm=input_norm)
  tf = cfg.make(30)
  params = init_params(tf, 30, 4)
  apply_eval = recommend.jit_apply_eval(tf, params)
  items = np.array([0, 3, 5, 8, 13, 21, 29])
  values = np.linspace(-1, 1, 7).astype(np.float32)
  explicit = np.array([True, True, False, True, True, True, False])
  slow = analysis.holdout_profile_loop(recommend.jit_apply_eval(tf, params, pad=False), 30,
                                       items, values, explicit)
  for fn in (analysis.fast_holdout_fn(cfg, params, 30),
             analysis.batched_holdout_fn(apply_eval, 30, chunk=3)):
    fast = analysis.holdout_profile(fn, items, values, explicit)
    np.testing.assert_allclose(fast.pred_rating, slow.pred_rating, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast.prob, slow.prob, rtol=1e-4)
  assert len(fast.abs_error) == 5
  t = analysis.profile_table(fast)
  assert t["rating_abs_error"]["mean"] == pytest.approx(fast.abs_error.mean(), rel=1e-6)
  assert "Mean absolute error" in analysis.format_profile_table(t)


def test_evaluation_set_tables_and_bottleneck_stats():
  rng = np.random.default_rng(0)
  n = 60
  users = rng.integers(0, 6, n).astype(np.int32)
  items = rng.integers(0, 30, n).astype(np.int32)
  ratings = rng.integers(1, 11, n).astype(np.float32)
  ratings[::7] = np.nan
  x = Interactions(users, items, ratings, None, np.arange(6), np.arange(30), "rand")
  p = build_profiles(x, RatingTransform(lo=1, hi=10))
  tf, params = _tiny_model(num_items=30, seed=5)
  apply_eval = recommend.jit_apply_eval(tf, params)
  holdout_fn = analysis.batched_holdout_fn(apply_eval, 30)
  t = analysis.evaluation_set_holdout(holdout_fn, p, range(6))
  assert t["n_items"] == int(p.lengths().sum())
  errs = []
  for u in range(6):
    it, va, ex = p.profile(u)
    errs.append(analysis.holdout_profile(holdout_fn, it, va, ex).abs_error)
  allerr = np.concatenate(errs)
  assert t["per_item_rating_abs_error"]["median"] == pytest.approx(np.median(allerr), rel=1e-5)
  assert t["per_item_rating_abs_error"]["max"] == pytest.approx(allerr.max(), rel=1e-5)
  assert "EVALUATION SET HOLDOUT" in analysis.format_evaluation_table(t)
  b = analysis.bottleneck_stats(apply_eval, p, np.arange(6), batch_size=4)
  z = np.asarray(tf.apply(params, None, *[dense_batch(p, np.arange(6))[k]
                                          for k in ("x_rating", "x_presence")], False).bottleneck)
  assert b["dim"] == 8 and b["n_profiles"] == 6
  assert b["std"] == pytest.approx(z.std(), rel=1e-4)
  assert b["per_dim_std"]["max"] == pytest.approx(z.std(0).max(), rel=1e-4)
