"""Tests of experiments/ablate_phoenix.py and of grok's candidate_positions option."""
import functools
import json
import os

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ablate_phoenix
from experiments.configs import ablate_phoenix as ablate_config
from phoenix import grok
from phoenix import recsys_model

_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})


# ---- steps to threshold -------------------------------------------------------------------

def test_steps_to_threshold_interpolates_between_evaluations():
  steps = [0, 10, 20, 30]
  values = [0.5, 0.6, 0.8, 0.9]
  # 0.7 lies halfway between step 10 (0.6) and step 20 (0.8).
  assert ablate_phoenix.steps_to_threshold(steps, values, 0.7) == pytest.approx(15.0)
  assert ablate_phoenix.steps_to_threshold(steps, values, 0.8) == pytest.approx(20.0)
  assert ablate_phoenix.steps_to_threshold(steps, values, 0.85) == pytest.approx(25.0)
  assert ablate_phoenix.steps_to_threshold(steps, values, 0.4) == 0.0
  assert ablate_phoenix.steps_to_threshold(steps, values, 0.95) is None


def test_steps_to_threshold_uses_the_first_crossing():
  # Crosses at 15, drops below, crosses again later: the first crossing counts.
  steps = [0, 10, 20, 30, 40]
  values = [0.0, 0.5, 1.0, 0.2, 1.0]
  assert ablate_phoenix.steps_to_threshold(steps, values, 0.75) == pytest.approx(15.0)


def test_summarize_runs_threshold_and_relative_change():
  def run(final, curve):
    return {"final_val": {"m": final}, "test": {"m": final},
            "curves": {"step": [0, 10, 20], "m": curve}}
  runs = {"base": [run(0.8, [0.5, 0.7, 0.8]), run(0.8, [0.5, 0.6, 0.8])],
          "new": [run(0.88, [0.5, 0.8, 0.88]), run(0.88, [0.5, 0.8, 0.88])]}
  metrics, comp = ablate_phoenix.summarize_runs(runs, "base", "m", 0.75, ["m"])
  assert comp["threshold"] == pytest.approx(0.6)
  # base: 0.6 reached at step 5 (seed 0: 0.5 -> 0.7) and step 10 (seed 1: exactly 0.6).
  assert metrics["base/steps_to_threshold"]["values"] == pytest.approx([5.0, 10.0])
  assert metrics["new/steps_to_threshold"]["mean"] == pytest.approx(100 / 30)
  assert comp["new"]["final_relative_change"] == pytest.approx(0.1)
  assert comp["new"]["final_paired_diff"]["mean"] == pytest.approx(0.08)
  assert comp["new"]["steps_relative_change"] == pytest.approx((100 / 30) / 7.5 - 1)
  assert metrics["new/final_val_m"] == [0.88, 0.88]


# ---- candidate positions ------------------------------------------------------------------

def _scores(positions: str, perm=None):
  """Candidate outputs [B, C, D] of a tiny transformer over [prefix | candidates]."""
  cfg = grok.TransformerConfig(emb_size=16, key_size=8, num_q_heads=2, num_kv_heads=1,
                               num_layers=2, candidate_positions=positions)
  prefix, c = 5, 6
  x = np.random.default_rng(0).standard_normal((2, prefix + c, 16)).astype(np.float32)
  if perm is not None:
    x = np.concatenate([x[:, :prefix], x[:, prefix:][:, perm]], axis=1)
  f = hk.without_apply_rng(hk.transform(
      lambda x, m: cfg.make()(x, m, prefix).embeddings[:, prefix:]))
  mask = jnp.ones(x.shape[:2], jnp.float32)
  params = _jit(f.init)(jax.random.PRNGKey(0), x, mask)   # same params for both options
  return np.asarray(_jit(f.apply)(params, x, mask))


def test_candidate_positions_shared_is_order_invariant_sequential_is_not():
  perm = np.array([5, 4, 3, 2, 1, 0])
  inv = np.argsort(perm)
  shared, shared_p = _scores("shared"), _scores("shared", perm)
  np.testing.assert_allclose(shared_p[:, inv], shared, atol=1e-5)
  seq, seq_p = _scores("sequential"), _scores("sequential", perm)
  assert np.abs(seq_p[:, inv] - seq).max() > 1e-2
  # The first candidate slot is at the offset under both options: same output there.
  np.testing.assert_allclose(seq[:, 0], shared[:, 0], atol=1e-5)


def test_candidate_positions_default_and_validation():
  cfg = grok.TransformerConfig(emb_size=8, key_size=4, num_q_heads=1, num_kv_heads=1,
                               num_layers=1)
  assert cfg.candidate_positions == "shared"
  with pytest.raises(ValueError, match="candidate_positions"):
    grok.TransformerConfig(emb_size=8, key_size=4, num_q_heads=1, num_kv_heads=1,
                           num_layers=1, candidate_positions="slots")


def test_sequential_serving_matches_full_model():
  """Transformer.extend gives sequential positions too: prefix-cached scoring == __call__."""
  tcfg = grok.TransformerConfig(emb_size=16, key_size=8, num_q_heads=2, num_kv_heads=1,
                                num_layers=1, candidate_positions="sequential")
  mcfg = recsys_model.PhoenixModelConfig(model=tcfg, emb_size=16, num_actions=3,
                                         history_seq_len=4, candidate_seq_len=5,
                                         fprop_dtype=jnp.float32)
  batch, emb = recsys_model.create_example_batch(2, 16, 4, 5, 3)

  def full(b, e):
    return mcfg.make()(b, e).logits

  def cached(b, e):
    model = mcfg.make()
    return model.score_candidates(model.encode_prefix(b, e), b, e).logits

  f = hk.without_apply_rng(hk.transform(full))
  params = _jit(f.init)(jax.random.PRNGKey(0), batch, emb)
  g = hk.without_apply_rng(hk.transform(cached))
  np.testing.assert_allclose(_jit(g.apply)(params, batch, emb), _jit(f.apply)(params, batch, emb),
                             atol=1e-4)


def test_ablation_ranking_config_threads_candidate_positions():
  cfg = ablate_config.get_config("quick")
  m = ablate_phoenix.ranking_model_config(cfg.ranking.model.to_dict(),
                                          candidate_positions="sequential")
  assert m.model_config().model.candidate_positions == "sequential"
  assert ablate_phoenix.ranking_model_config(
      cfg.ranking.model.to_dict()).model_config().model.candidate_positions == "shared"


def test_permute_candidates_roundtrip():
  rng = np.random.default_rng(0)
  from phoenix import batching
  b, c, s = 3, 4, 2
  ids = batching.IdBatch(np.ones(b), np.zeros((b, s), np.int32),
                         np.zeros((b, s, batching.NUM_ACTIONS), np.float32),
                         np.zeros((b, s), np.int32), rng.integers(0, 50, (b, c)),
                         np.ones((b, c), np.int32))
  labels = rng.random((b, c, batching.NUM_ACTIONS)).astype(np.float32)
  lists = batching.RankingExample(ids, labels, np.ones_like(labels), rng.random((b, c)))
  perm = ablate_phoenix.list_permutations(lists, 1, 0)
  assert set(perm) == {"reversed", "random_0"}
  for p in perm.values():
    out = ablate_phoenix.permute_candidates(lists, p)
    np.testing.assert_array_equal(out.ids.candidate_items,
                                  np.take_along_axis(ids.candidate_items, p, 1))
    np.testing.assert_array_equal(out.labels[1, 2], labels[1, p[1, 2]])


# ---- the quick config end to end ----------------------------------------------------------

def test_quick_normalization_ablation_end_to_end(tmp_path):
  cfg = ablate_config.get_config("quick")
  cfg.ranking.model.num_layers = 0    # reduce blocks only: compiles fast; norm still differs
  cfg.ranking.num_steps = 6
  cfg.ranking.eval_every = 3
  paths = ablate_phoenix.run(cfg, ["normalization"], [0, 1], out_dir=str(tmp_path))
  with open(paths["normalization"]) as f:
    r = json.load(f)
  assert r["name"] == "ablation_phoenix_normalization" and r["seeds"] == [0, 1]
  assert r["complete"] and r["seeds_done"] == {"norm_on": [0, 1], "norm_off": [0, 1]}
  assert r["config"]["ablation"]["variants"]["norm_off"] == {
      "normalize_before_projection": False}
  for variant in ("norm_on", "norm_off"):
    runs = r["runs"][variant]
    assert [x["seed"] for x in runs] == [0, 1]
    for x in runs:
      assert x["curves"]["step"] == [0, 3, 6]
      assert all(0.0 <= v <= 1.0 for v in x["curves"]["auc/favorite"])
    vals = r["metrics"][f"{variant}/final_val_auc/favorite"]["values"]
    assert len(vals) == 2 and all(0.0 <= v <= 1.0 for v in vals)
    assert vals == [x["curves"]["auc/favorite"][-1] for x in runs]
    assert len(r["metrics"][f"{variant}/steps_to_threshold"]["values"]) == 2
  # The variants are different models: different curves under the same seed.
  assert (r["runs"]["norm_on"][0]["curves"]["auc/favorite"]
          != r["runs"]["norm_off"][0]["curves"]["auc/favorite"])
  thr = r["comparison"]["threshold"]
  assert thr == pytest.approx(0.95 * np.mean(r["metrics"]["norm_on/final_val_auc/favorite"][
      "values"]))
  assert os.path.getsize(tmp_path / "plots" / "ablation_phoenix_normalization.png") > 1000


def test_attention_temperatures_reads_the_learned_scalars():
  raw = grok.temperature_raw_init()
  params = {"phoenix": {"m/transformer/decoder_layer_0/multi_head_attention": {
      "attention_temperature_raw": np.float32(raw)},
      "m/transformer/decoder_layer_1/multi_head_attention": {
          "attention_temperature_raw": np.float32(-30.0)},
      "m/transformer/decoder_layer_0/linear": {"w": np.zeros((2, 2))}}}
  temps = ablate_phoenix.attention_temperatures(params)
  assert list(temps) == ["m/transformer/decoder_layer_0/multi_head_attention",
                         "m/transformer/decoder_layer_1/multi_head_attention"]
  assert list(temps.values()) == pytest.approx([1.0, grok.MIN_TEMPERATURE], abs=1e-5)
  assert ablate_phoenix.attention_temperatures({"phoenix": {"a": {"w": np.ones(2)}}}) == {}
