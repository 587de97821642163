"""Optimizer, jitted update (non-finite guarding), and the resumable batch order."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from recsys_core import train


def _quadratic():
  """loss = sum((w - 1)^2) * scale; scale = batch['scale'] (NaN to inject a bad step)."""
  def loss_fn(params, rng, batch):
    del rng
    loss = jnp.sum((params["w"] - 1.0) ** 2) * batch["scale"]
    return loss, {"w0": params["w"][0]}
  return loss_fn


def _tree_equal(a, b):
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_schedule_warmup_then_cosine():
  cfg = train.OptimizerConfig(learning_rate=0.1, warmup_steps=4, decay="cosine", decay_steps=10,
                              final_lr_factor=0.1)
  lr = [float(train.make_schedule(cfg)(t)) for t in range(20)]
  np.testing.assert_allclose(lr[:4], [0.025, 0.05, 0.075, 0.1], rtol=1e-6)
  np.testing.assert_allclose(lr[4], 0.1, rtol=1e-6)       # decay starts after warm-up
  np.testing.assert_allclose(lr[9], 0.1 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.5))), rtol=1e-5)
  np.testing.assert_allclose(lr[14:], 0.01, rtol=1e-5)     # floor = learning_rate * final factor
  const = train.OptimizerConfig(learning_rate=0.1, warmup_steps=2)
  np.testing.assert_allclose([float(train.make_schedule(const)(t)) for t in (0, 1, 50)],
                             [0.05, 0.1, 0.1], rtol=1e-6)


def test_config_validation():
  with pytest.raises(ValueError, match="adamw"):
    train.OptimizerConfig(name="adam", weight_decay=0.1)
  with pytest.raises(ValueError, match="decay_matrices_only"):
    train.OptimizerConfig(name="adam", decay_matrices_only=True)
  with pytest.raises(ValueError, match="decay_steps"):
    train.OptimizerConfig(decay="cosine", decay_steps=-1)
  with pytest.raises(ValueError, match="for_run"):  # 0 = the whole run, not yet known
    train.make_optimizer(train.OptimizerConfig(decay="cosine"))


def test_decay_matrices_only_leaves_vectors_and_scalars_undecayed():
  # With zero gradients AdamW's update is -lr * wd * param on the decayed leaves only.
  params = {"w": jnp.ones((3, 2)), "b": jnp.ones((2,)), "t": jnp.ones(())}
  zeros = jax.tree.map(jnp.zeros_like, params)
  for only, decayed in ((False, {"w", "b", "t"}), (True, {"w"})):
    opt = train.make_optimizer(train.OptimizerConfig(
        name="adamw", learning_rate=0.1, weight_decay=0.5, decay_matrices_only=only))
    updates, _ = opt.update(zeros, opt.init(params), params, value=jnp.float32(0.0))
    for name, u in updates.items():
      np.testing.assert_allclose(u, -0.05 * params[name] if name in decayed else 0.0 * u,
                                 err_msg=f"{name} (decay_matrices_only={only})")
  with pytest.raises(ValueError, match="not both"):
    train.make_optimizer(train.OptimizerConfig(name="adamw", weight_decay=0.1,
                                               decay_matrices_only=True),
                         weight_decay_mask=lambda p: p)


def test_cosine_over_the_whole_run():
  cfg = train.OptimizerConfig(learning_rate=0.1, warmup_steps=10, decay="cosine",
                              final_lr_factor=0.0).for_run(110)
  assert cfg.decay_steps == 100
  lr = train.make_schedule(cfg)
  assert float(lr(10)) == pytest.approx(0.1) and float(lr(110)) == pytest.approx(0.0, abs=1e-7)
  fixed = train.OptimizerConfig(decay="cosine", decay_steps=7)
  assert fixed.for_run(1000) is fixed
  const = train.OptimizerConfig()
  assert const.for_run(1000) is const


def test_global_norm_clipping_reaches_adam():
  # Adam's first moment after one update is (1 - b1) * (the gradient it was given).
  grads = {"a": jnp.full((4,), 100.0), "b": jnp.full((2,), -50.0)}
  for clip, want_norm in ((0.5, 0.5), (None, float(np.sqrt(4 * 100.0**2 + 2 * 50.0**2)))):
    opt = train.make_optimizer(train.OptimizerConfig(clip_norm=clip, b1=0.9))
    _, st = jax.jit(opt.update)(grads, opt.init(grads), grads, value=jnp.float32(0.0))
    mu = optax.tree_utils.tree_get(st, "mu")
    assert float(optax.global_norm(mu)) == pytest.approx(0.1 * want_norm, rel=1e-5)


def test_reduce_on_plateau_lowers_lr_scale_after_flat_loss():
  cfg = train.OptimizerConfig(learning_rate=0.1, plateau=True, plateau_patience=3,
                              plateau_factor=0.5, clip_norm=None)
  opt = train.make_optimizer(cfg)

  def flat_loss(params, rng, batch):  # the loss never improves
    del rng, batch
    return 0.0 * jnp.sum(params["w"]) + 1.0, {}

  update = train.make_update_fn(flat_loss, opt)
  state = train.init_train_state({"w": jnp.zeros(2)}, opt, jax.random.PRNGKey(0))
  scales = []
  for _ in range(9):
    state, metrics = update(state, None)
    scales.append(float(metrics["lr_scale"]))
  assert scales[0] == 1.0
  assert scales[-1] <= 0.25, scales  # halved at least twice
  assert float(train.plateau_scale(state.opt_state)) == scales[-1]
  assert train.plateau_scale(train.make_optimizer(train.OptimizerConfig()).init({})) is None


def test_plateau_scale_ignores_params_named_scale():
  # LayerNorm/RMSNorm params are called "scale"; Adam's moments mirror them.
  params = {"layer_norm": {"scale": jnp.ones(3), "offset": jnp.zeros(3)}}
  for plateau in (False, True):
    opt = train.make_optimizer(train.OptimizerConfig(plateau=plateau))
    got = train.plateau_scale(opt.init(params))
    assert (got is None) if not plateau else (float(got) == 1.0 and got.shape == ())


def test_improving_loss_keeps_lr_scale():
  opt = train.make_optimizer(train.OptimizerConfig(learning_rate=0.05, plateau=True,
                                                   plateau_patience=2, clip_norm=None))
  update = train.make_update_fn(_quadratic(), opt)
  state = train.init_train_state({"w": jnp.zeros(3)}, opt, jax.random.PRNGKey(0))
  for _ in range(10):
    state, metrics = update(state, {"scale": jnp.float32(1.0)})
  assert float(metrics["lr_scale"]) == 1.0
  assert float(metrics["loss"]) < 3.0


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_nonfinite_step_leaves_params_and_opt_state_unchanged(policy):
  opt = train.make_optimizer(train.OptimizerConfig(learning_rate=0.1, plateau=True))
  update = train.make_update_fn(_quadratic(), opt, nan_policy=policy)
  assert update.nan_policy == policy
  state = train.init_train_state({"w": jnp.zeros(3)}, opt, jax.random.PRNGKey(0))
  good, bad = {"scale": jnp.float32(1.0)}, {"scale": jnp.float32(np.nan)}
  for _ in range(3):
    state, metrics = update(state, good)
    assert int(metrics["skipped"]) == 0
    train.check_finite(metrics, int(state.step) - 1)
  before = state
  state, metrics = update(state, bad)
  assert int(metrics["skipped"]) == 1
  assert _tree_equal(state.params, before.params)
  assert _tree_equal(state.opt_state, before.opt_state)
  assert int(state.step) == 4  # the batch is consumed: data order does not shift
  with pytest.raises(train.NonFiniteError, match="step 3"):
    train.check_finite(metrics, 3)
  state, metrics = update(state, good)  # and training goes on
  assert int(metrics["skipped"]) == 0
  assert not _tree_equal(state.params, before.params)
  assert np.all(np.isfinite(np.asarray(state.params["w"])))


def test_params_ema_is_the_debiased_average_of_the_params_after_each_update():
  decay = 0.6
  opt = train.make_optimizer(train.OptimizerConfig(learning_rate=0.1, ema_decay=decay))
  update = train.make_update_fn(_quadratic(), opt, nan_policy="skip")
  state = train.init_train_state({"w": jnp.zeros(3)}, opt, jax.random.PRNGKey(0))
  assert train.ema_params(state.opt_state, state.params) is None  # no update yet
  assert train.eval_params(state) is state.params
  seen = []
  for scale in (1.0, 2.0, 0.5, 1.0):
    state, _ = update(state, {"scale": jnp.float32(scale)})
    seen.append(np.asarray(state.params["w"]))
  ema, weight = np.zeros(3), 0.0
  for w in seen:
    ema, weight = decay * ema + (1 - decay) * w, decay * weight + (1 - decay)
  averaged = train.eval_params(state)
  np.testing.assert_allclose(np.asarray(averaged["w"]), ema / weight, rtol=1e-5)
  # The average lags the online params on a monotone path towards 1.
  assert np.all(np.asarray(averaged["w"]) < np.asarray(state.params["w"]))
  assert averaged["w"].dtype == state.params["w"].dtype
  # A skipped (non-finite) step does not move the average either.
  after_bad, metrics = update(state, {"scale": jnp.float32(np.nan)})
  assert int(metrics["skipped"]) == 1
  assert _tree_equal(train.eval_params(after_bad), averaged)


def test_params_ema_off_and_validation():
  opt = train.make_optimizer(train.OptimizerConfig(learning_rate=0.1))
  update = train.make_update_fn(_quadratic(), opt)
  state, _ = update(train.init_train_state({"w": jnp.zeros(3)}, opt, jax.random.PRNGKey(0)),
                    {"scale": jnp.float32(1.0)})
  assert train.eval_params(state) is state.params
  for bad in (1.0, -0.1):
    with pytest.raises(ValueError, match="ema_decay"):
      train.OptimizerConfig(ema_decay=bad)
  with pytest.raises(ValueError, match="needs the params"):
    tx = train.params_ema(0.9)
    tx.update({"w": jnp.ones(2)}, tx.init({"w": jnp.ones(2)}))


def test_infinite_gradient_alone_is_caught():
  def loss_fn(params, rng, batch):
    del rng, batch
    return jnp.sum(jnp.sqrt(params["w"])), {}  # finite at 0, gradient inf
  opt = train.make_optimizer(train.OptimizerConfig(clip_norm=None))
  update = train.make_update_fn(loss_fn, opt, nan_policy="skip")
  state = train.init_train_state({"w": jnp.zeros(2)}, opt, jax.random.PRNGKey(0))
  new, metrics = update(state, None)
  assert int(metrics["skipped"]) == 1 and _tree_equal(new.params, state.params)


def test_bad_nan_policy():
  with pytest.raises(ValueError, match="nan_policy"):
    train.make_update_fn(_quadratic(), train.make_optimizer(train.OptimizerConfig()), "ignore")


def test_rng_advances_and_is_deterministic():
  seen = []

  def loss_fn(params, rng, batch):
    del batch
    noise = jax.random.normal(rng, ())
    return jnp.sum(params["w"]) * noise, {"noise": noise}

  opt = train.make_optimizer(train.OptimizerConfig())
  update = train.make_update_fn(loss_fn, opt)
  for _ in range(2):
    state = train.init_train_state({"w": jnp.zeros(2)}, opt, jax.random.PRNGKey(3))
    run = []
    for _ in range(3):
      state, m = update(state, None)
      run.append(float(m["noise"]))
    seen.append(run)
  assert seen[0] == seen[1] and len(set(seen[0])) == 3


def test_epoch_batcher_is_a_pure_function_of_seed_and_step():
  b = train.EpochBatcher(num_examples=50, batch_size=8, seed=7)
  assert b.steps_per_epoch == 6
  seq = [b.indices(s) for s in range(20)]
  # Each epoch: distinct examples, 48 of 50 used.
  for e in range(3):
    epoch = np.concatenate(seq[e * 6:(e + 1) * 6])
    assert len(set(epoch.tolist())) == 48 and epoch.max() < 50
  assert not np.array_equal(seq[0], seq[6])  # reshuffled each epoch
  # A fresh batcher asked at arbitrary steps (as after a resume) gives the same batches.
  fresh = train.EpochBatcher(50, 8, seed=7)
  for s in (13, 2, 19, 0, 7):
    np.testing.assert_array_equal(fresh.indices(s), seq[s])
  assert not np.array_equal(train.EpochBatcher(50, 8, seed=8).indices(0), seq[0])
  with pytest.raises(ValueError):
    train.EpochBatcher(5, 8, 0)
