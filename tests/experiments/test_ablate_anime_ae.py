"""Tests of the autoencoder ablations (experiments/ablate_anime_ae.py, anime_ae/ablation.py) and
of the seed's old architecture (anime_ae/legacy.py), on a tiny synthetic population."""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anime_ae import ablation, legacy
from anime_ae.scorer import AutoencoderScorer
from anime_ae.trained import TrainedAE
from experiments import ablate_anime_ae
from experiments.configs import ablate_anime_ae as ablate_configs
from experiments.configs import baselines as baselines_config
from recsys_core.data.types import Interactions
from recsys_core.scoring import Scorer

N_USERS, N_ITEMS = 90, 30
TYPES = np.array(["TV", "OVA", "Movie", "Special", "ONA", "TV"] * 5)


def _population(seed=0) -> Interactions:
  """90 users over 30 items (ids 100..129) in 3 taste clusters; ratings 6-10, ~20% unrated."""
  rng = np.random.default_rng(seed)
  users, items, ratings = [], [], []
  for u in range(N_USERS):
    pool = np.arange(N_ITEMS)[(np.arange(N_ITEMS) % 3) == (u % 3)]
    chosen = np.concatenate([rng.choice(pool, 8, replace=False),
                             rng.choice(N_ITEMS, 8, replace=False)])
    for i in np.unique(chosen):
      users.append(u)
      items.append(i)
      ratings.append(np.nan if rng.random() < 0.2 else float(rng.integers(6, 11)))
  return Interactions(np.asarray(users, np.int32), np.asarray(items, np.int32),
                      np.asarray(ratings, np.float32), None, np.arange(N_USERS),
                      np.arange(100, 100 + N_ITEMS), "synthetic")


@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("ablate"))
  cfg = ablate_configs.get_config("quick")
  # An extra ablation whose variants both equal the baseline config (dropout 0.4 is the
  # baseline's): run_ablations must reuse the architecture ablation's "new" runs.
  cfg.ablations.same = dict(protocol="ranking", baseline="a", order=("a", "b"),
                            variants={"a": {}, "b": {"data": {"dropout_rate": 0.4}}})
  pcfg = baselines_config.get_config("anime")
  x = _population()
  data = {"ranking": ablate_anime_ae.ranking_data(x, pcfg), "mae": ablate_anime_ae.mae_data(x)}
  lines = []
  paths = ablate_anime_ae.run_ablations(cfg, ["architecture", "same"], [0, 1], data, out,
                                        (x.item_ids, TYPES), pcfg, say=lines.append)
  return cfg, out, paths, lines


def test_result_structure_variants_seeds_curves(ablation_run):
  cfg, out, paths, _ = ablation_run
  r = json.load(open(paths["architecture"]))
  assert r["name"] == "ablation_ae_architecture" and r["seeds"] == [0, 1]
  assert r["variants"] == ["new", "legacy"] and r["baseline"] == "new"
  for v in ("new", "legacy"):
    for k in ablation.RANK_METRICS:
      vals = r["metrics"][f"{v}/{k}"]["values"]
      assert len(vals) == 2 and all(0.0 <= x <= 1.0 for x in vals)
    assert len(r["runs"][v]) == 2
    share = r["metrics"][f"{v}/top{cfg.type_share_k}_share_non_tv"]["values"]
    assert len(share) == 2 and all(0.0 <= x <= 1.0 for x in share)
    for run in r["runs"][v]:
      steps = run["eval_steps"]
      assert steps == sorted(set(steps)) and steps[-1] == cfg.train.steps
      assert run["best_step"] in steps
      assert len(run["eval"]["ndcg@100"]) == len(steps)
    c = r["curves"][v]
    assert c["steps"] == sorted(c["steps"]) and len(c["mean"]) == len(c["steps"])
  diff = r["metrics"]["legacy/diff/ndcg@100"]["values"]
  new, old = r["metrics"]["new/ndcg@100"]["values"], r["metrics"]["legacy/ndcg@100"]["values"]
  np.testing.assert_allclose(diff, np.subtract(old, new), atol=1e-12)
  assert os.path.getsize(os.path.join(out, "plots", "ablation_ae_architecture.png")) > 1000


def test_variant_configs_really_differ(ablation_run):
  _, _, paths, _ = ablation_run
  a = json.load(open(paths["architecture"]))
  assert a["config"]["variants"]["legacy"]["arch"] == "legacy"
  assert a["config"]["variants"]["new"]["arch"] == "two_head"
  # The old model's attenuation is one of the grid values, chosen per seed on validation.
  assert all(v in (0.0, 0.1) for v in a["legacy_attenuation"]["legacy"])
  assert "loss_presence" not in a["runs"]["legacy"][0]["train"]


def test_identical_configs_are_run_once(ablation_run):
  _, _, paths, lines = ablation_run
  assert sum("reused" in l for l in lines) == 4  # "a", "b" == "new", 2 seeds each
  same = json.load(open(paths["same"]))["metrics"]
  new = json.load(open(paths["architecture"]))["metrics"]["new/ndcg@100"]["values"]
  assert same["a/ndcg@100"]["values"] == new == same["b/ndcg@100"]["values"]


def test_merge_rejects_unknown_keys_and_keeps_base():
  cfg = ablate_configs.get_config("quick")
  with pytest.raises(KeyError, match="model.noise"):
    ablation.merge(cfg, {"model": {"noise": 0.0}})
  v = ablation.merge(cfg, {"data": {"dropout_rate": 0.6}})
  assert v.data.dropout_rate == 0.6 and cfg.data.dropout_rate == 0.4


def test_every_ablation_variant_builds_a_valid_config():
  cfg = ablate_configs.get_config("anime")
  assert set(cfg.ablations) == {"noise", "dropout", "heads", "weighting", "architecture",
                                "dropped"}
  for name, spec in cfg.ablations.items():
    assert spec.order[0] == spec.baseline and sorted(spec.order) == sorted(spec.variants)
    for v in spec.order:
      vc = ablation.merge(ablate_anime_ae._base(cfg), spec.variants[v])
      ae = ablation.ae_config(vc, 0)
      if name == "noise":
        assert ae.model.noise_std == {"on": 0.1, "off": 0.0}[v]
      if name == "dropout":
        assert ae.data.dropout_rate == {"rate_20": 0.2, "rate_40": 0.4, "rate_60": 0.6}[v]
      if name == "weighting":
        assert ae.loss.weighting == v
      if name == "heads":
        assert ae.model.shared_decoder == (v == "shared")
      if name == "dropped":
        assert ae.data.treat_unrated_as_dropped == (v != "unrated_mean")


def test_type_shares_by_hand():
  scores = np.array([[5., 4., 3., 2.], [1., 2., 3., 4.]])
  inputs = Interactions(np.array([0, 1], np.int32), np.array([0, 3], np.int32), None, None,
                        np.arange(2), np.arange(4))
  types = np.array(["TV", "OVA", "Movie", "TV"])
  s = ablation.type_shares(scores, inputs, types, k=2)
  # user 0 (item 0 seen): items 1, 2 = OVA, Movie; user 1 (item 3 seen): items 2, 1.
  assert s["OVA"] == 0.5 and s["Movie"] == 0.5 and "TV" not in s and s["non_tv"] == 1.0


def test_curve_summary_mean_std_on_common_steps():
  c = ablation.curve_summary([[1, 2, 3], [1, 2]], [[0.1, 0.3, 0.9], [0.3, 0.5]])
  assert c["steps"] == [1, 2]
  np.testing.assert_allclose(c["mean"], [0.2, 0.4])
  np.testing.assert_allclose(c["std"], [0.1, 0.1])


# --- the dropped option --------------------------------------------------------------------

def test_treat_unrated_as_dropped_changes_only_unrated_rows():
  x = _population()
  base = ablate_configs.get_config("quick")
  fixed = ablation.merge(base, {"data": {"treat_unrated_as_dropped": True},
                                "ratings": {"dropped_mode": "fixed", "dropped_rating": 2.0}})

  def profiles(cfg):  # the scorer's encoding of x (training and scored inputs alike)
    ae = ablation.ae_config(cfg, 0)
    scorer = AutoencoderScorer(ae)
    scorer.model = TrainedAE(ae, None, ae.ratings.make(x.ratings), x.item_ids)
    return scorer.profiles(x), scorer._dropped(x)

  (p_off, d_off), (p_on, d_on) = profiles(base), profiles(fixed)
  assert d_off is None and (d_on == np.isnan(x.ratings)).all()
  unrated = np.zeros(len(p_off.items), bool)
  for u in range(x.num_users):  # rows are sorted by (user, item) in the profiles
    s, e = p_off.offsets[u], p_off.offsets[u + 1]
    rows = np.flatnonzero(x.users == u)
    order = np.argsort(x.items[rows])
    unrated[s:e] = np.isnan(x.ratings[rows][order])
  assert unrated.any() and not unrated.all()
  v_off, v_on = p_off.values.astype(np.float32), p_on.values.astype(np.float32)
  np.testing.assert_array_equal(v_off[~unrated], v_on[~unrated])
  assert (v_on[unrated] < v_off[unrated]).all()          # 2 stars < the user's mean
  assert p_on.in_loss[unrated].all() and not p_off.in_loss[unrated].any()


# --- the old architecture ------------------------------------------------------------------

def test_legacy_model_shapes_and_layers():
  cfg = legacy.LegacyConfig(hidden_dim=8, num_layers=2)
  tf = cfg.make(10)
  params = tf.init(jax.random.PRNGKey(0), jnp.zeros((1, 10)))
  assert set(params) == {"hidden_0", "hidden_1", "output"}  # no bottleneck, one output
  assert params["hidden_0"]["w"].shape == (10, 8) and params["hidden_1"]["w"].shape == (8, 8)
  assert params["output"]["w"].shape == (8, 10)
  y = tf.apply(params, jnp.ones((3, 10)))
  assert y.shape == (3, 10)
  h = jnp.tanh(jnp.tanh(jnp.ones((3, 10)) @ params["hidden_0"]["w"] + params["hidden_0"]["b"])
               @ params["hidden_1"]["w"] + params["hidden_1"]["b"])
  np.testing.assert_allclose(y, h @ params["output"]["w"] + params["output"]["b"], rtol=1e-5)


def test_legacy_weighted_mse_by_hand():
  pred = jnp.array([[0.5, 0.0, -0.2]])
  target = jnp.array([[1.0, 0.0, 0.0]])
  presence = jnp.array([[1.0, 0.0, 0.0]])
  q = jnp.array([2.0, 0.5, 0.5])
  # weights: 2*10, 0.5*1, 0.5*1; errors^2: 0.25, 0, 0.04.
  expected = (20 * 0.25 + 0.5 * 0.0 + 0.5 * 0.04) / (20 + 0.5 + 0.5)
  got = legacy.weighted_mse(pred, target, presence, q, profile_weight=10.0)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  # profile_weight 1 and uniform q: the plain MSE.
  np.testing.assert_allclose(legacy.weighted_mse(pred, target, presence, jnp.ones(3), 1.0),
                             (0.25 + 0.04) / 3, rtol=1e-6)


def test_legacy_popularity_weights_and_attenuation():
  counts = np.array([99, 9, 0])
  q = legacy.popularity_weights(counts, 0.5)
  np.testing.assert_allclose(q.mean(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(q / q[0], [1.0, np.sqrt(10), 10.0], rtol=1e-5)  # (c+1)^-1/2
  np.testing.assert_array_equal(legacy.popularity_weights(counts, 0.0), np.ones(3))
  log_pop = legacy.log_popularity(counts, 99)
  np.testing.assert_allclose(log_pop, np.log([1.0, 0.1, 0.01]), rtol=1e-5)
  scores = np.array([[0.9, 0.7, 0.5]], np.float32)
  assert legacy.attenuate(scores, log_pop, 0.0) is scores  # identity
  att = legacy.attenuate(scores, log_pop, 0.1)
  np.testing.assert_allclose(att, scores - 0.1 * log_pop, rtol=1e-6)
  assert np.argmax(att) == 2 and np.argmax(scores) == 0  # the rare item overtakes


def test_legacy_scorer_fits_and_scores_through_the_protocol():
  x = _population()
  ae = ablation.ae_config(ablate_configs.get_config("quick"), 0)
  s = legacy.LegacyScorer(ae, legacy.LegacyConfig(hidden_dim=8))
  assert isinstance(s, Scorer)
  with pytest.raises(RuntimeError, match="fit"):
    s.score(x)
  s.fit(x)
  inputs = x.select(x.users < 5)
  inputs = dataclasses.replace(inputs, user_ids=np.arange(5))
  raw = s.outputs(inputs)
  assert raw.shape == (5, N_ITEMS) and np.isfinite(raw).all()
  np.testing.assert_array_equal(s.score(inputs), raw)                 # attenuation 0
  np.testing.assert_allclose(s.with_attenuation(0.2).score(inputs),
                             raw - 0.2 * s.log_popularity[None], rtol=1e-6)
  assert [r["step"] for r in s.history if r["event"] == "train"][-1] == ae.train.steps
