"""The two-stage recommender (phoenix/two_stage.py, phoenix/ranking/adapter.py,
phoenix.inference.TwoStageRecommender): candidates, the blend, hard negatives, the scorer
against a hand-built rerank, and the pipeline run that serves what it evaluated."""
import json
import os

import jax
import numpy as np
import pytest

from experiments.configs import phoenix_two_stage as configs
from phoenix import batching
from phoenix import inference
from phoenix import two_stage
from phoenix.embeddings import EmbeddingConfig
from phoenix.embeddings import make_featurizer
from phoenix.ranking import adapter
from phoenix.ranking.config import RankingConfig
from phoenix.ranking.model import transform_logits
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.scorer import RetrievalScorer
from phoenix.retrieval.task import RetrievalTask
from recsys_core import pipeline
from recsys_core import runs
from recsys_core.data.sequences import SequenceData
from recsys_core.data.synthetic import synthetic_sequences

NUM_ITEMS = 30


def _emb():
  return EmbeddingConfig(emb_size=16, user_table_size=64, item_table_size=128,
                         author_table_size=16)


@pytest.fixture(scope="module")
def small():
  """(interactions, data, retrieval scorer, list ranker) of untrained small models."""
  x = synthetic_sequences(8, NUM_ITEMS, 5, 9, seed=3)
  data = SequenceData.from_interactions(x)
  r_cfg = RetrievalConfig(emb=_emb(), num_layers=1, num_q_heads=2, num_kv_heads=1,
                          key_size=8, history_len=6, pooling="last")
  task = RetrievalTask(r_cfg, data, data.lengths(), None, batch_size=2)
  r_params = task.fns.init(jax.random.PRNGKey(0), task.example_batch()["batch"])
  retrieval = RetrievalScorer.for_items(r_cfg, r_params, NUM_ITEMS, batch_size=4)
  k_cfg = RankingConfig(emb=_emb(), num_layers=1, num_q_heads=2, num_kv_heads=1, key_size=8,
                        history_len=6, num_positives=1, num_negatives=4, user_mode="shared",
                        score_weights=(("click", 1.0),))
  featurizer = make_featurizer(k_cfg.emb, None)
  ids = batching.ranking_batch(data, np.arange(2), np.array([2, 3]), k_cfg.batching_config(),
                               1, 4, np.random.default_rng(0)).ids
  k_params = {"phoenix": transform_logits(k_cfg).init(jax.random.PRNGKey(1), featurizer(ids))}
  ranker = two_stage.ListRanker(k_cfg, k_params, featurizer, batch_size=4)
  return x, data, retrieval, ranker


def test_top_candidates_exclude_seen_items_in_descending_order():
  scores = np.array([[0.1, 0.9, 0.5, 0.7, 0.3], [5.0, 4.0, 3.0, 2.0, 1.0]], np.float32)
  top = two_stage.top_candidates(scores, [np.array([1]), np.array([0, 2])], k=3)
  np.testing.assert_array_equal(top, [[3, 2, 4], [1, 3, 4]])
  assert two_stage.top_candidates(scores, [np.array([], int)] * 2, k=9).shape == (2, 5)


def test_blend_runs_from_the_ranker_order_to_the_retrieval_order():
  retrieval = np.array([3.0, 2.0, 1.0, 0.0])
  rank = np.array([0.1, 0.2, 0.9, 0.4])
  assert list(np.argsort(-two_stage.blend(retrieval, rank, 1.0))) == [0, 1, 2, 3]
  assert list(np.argsort(-two_stage.blend(retrieval, rank, 0.0))) == [2, 3, 1, 0]
  # Scale-free: multiplying one stage's scores by 100 changes nothing.
  np.testing.assert_allclose(two_stage.blend(retrieval * 100, rank, 0.5),
                             two_stage.blend(retrieval, rank, 0.5))
  with pytest.raises(ValueError, match="alpha=1.5: must be in"):
    two_stage.blend(retrieval, rank, 1.5)


def test_the_weighted_score_orders_as_the_weights_say(small):
  _, data, _, ranker = small
  cand = np.tile(np.arange(5), (data.num_users, 1))
  probs = ranker.probs(data, cand)                                        # [U, 5, A]
  click, fav = batching.CLICK, batching.FAVORITE
  np.testing.assert_allclose(ranker.scores(data, cand), probs[..., click], rtol=1e-6)
  ranker.weights = np.zeros(batching.NUM_ACTIONS, np.float32)
  ranker.weights[click], ranker.weights[fav] = -1.0, 2.0
  try:
    np.testing.assert_allclose(ranker.scores(data, cand),
                               2 * probs[..., fav] - probs[..., click], rtol=1e-5)
  finally:
    ranker.weights = ranker.cfg.weight_vector()


def test_the_scorer_equals_a_hand_built_rerank(small):
  x, data, retrieval, ranker = small
  k = 6
  scorer = two_stage.TwoStageScorer(retrieval, ranker, k, alpha=0.3)
  scores = scorer.score(x)
  full = retrieval.score(x)
  for u in range(data.num_users):
    masked = full[u].copy()
    masked[data.sequences[u]] = -np.inf
    cand = np.argsort(-masked, kind="stable")[:k]
    rank = ranker.scores(SequenceData([data.sequences[u]], None, data.user_ids[[u]],
                                      NUM_ITEMS), cand[None])[0]
    order_score = 0.7 * two_stage.standardize(rank) + 0.3 * two_stage.standardize(full[u, cand])
    want = cand[np.argsort(-order_score, kind="stable")]
    unseen = np.setdiff1d(np.arange(NUM_ITEMS), data.sequences[u])
    got = unseen[np.argsort(-scores[u, unseen], kind="stable")][:k]
    np.testing.assert_array_equal(got, want)
    # Every other unseen item is below the K candidates, in the retrieval order.
    rest = np.setdiff1d(unseen, cand)
    assert scores[u, rest].max() < scores[u, cand].min()
    np.testing.assert_array_equal(np.argsort(-scores[u, rest]), np.argsort(-full[u, rest]))


def test_hard_negatives_never_hold_the_user_s_items(small):
  _, data, retrieval, _ = small
  cfg = adapter.Config(ranker=RankingConfig(emb=_emb(), history_len=6, num_positives=1,
                                            num_negatives=6, user_mode="shared"),
                       num_candidates=8, num_hard_negatives=5)
  source = adapter.ListSource(cfg, data, retrieval, make_featurizer(_emb(), None), seed=0)
  users = np.arange(data.num_users)
  cuts = np.full(data.num_users, 3)
  hard = source.hard_negatives(users, source.retrieval_scores(users, cuts),
                               np.random.default_rng(0))
  assert hard.shape == (data.num_users, 5)
  for u in users:
    assert not set(hard[u]) & set(data.sequences[u].tolist())
    # Drawn from retrieval's top 8 for the history s[:3], the user's items excluded.
    prefix = SequenceData([data.sequences[u][:3]], None, data.user_ids[[u]], NUM_ITEMS)
    s = (retrieval.user_representations(prefix) @ retrieval.corpus.T)[0]
    s[data.sequences[u]] = -np.inf
    assert set(hard[u]) <= set(np.argsort(-s)[:8].tolist())
  ex = batching.ranking_batch(data, users, cuts, source.bcfg, 1, 6,
                              np.random.default_rng(1), hard_negatives=hard)
  for j, u in enumerate(users):
    cand = ex.ids.candidate_items[j]
    positive = cand[ex.labels[j, :, batching.CLICK] > 0]
    assert list(positive) == [data.sequences[u][3]]                       # the target
    negatives = cand[ex.labels[j, :, batching.CLICK] == 0]
    assert len(set(negatives.tolist())) == 6
    assert not set(negatives.tolist()) & set(data.sequences[u].tolist())
    assert set(hard[u]) <= set(negatives.tolist())


def test_held_out_lists_cut_only_the_last_items_and_their_retrieval_never_saw_them(small):
  x, data, retrieval, _ = small
  held = adapter.without_last(x, data, 2)
  kept = SequenceData.from_interactions(held)
  for u in range(data.num_users):
    np.testing.assert_array_equal(kept.sequences[u], data.sequences[u][:-2])
  cfg = adapter.Config(ranker=RankingConfig(emb=_emb(), history_len=6, num_positives=1,
                                            num_negatives=4, user_mode="shared"),
                       num_candidates=6, num_hard_negatives=2, held_out_items=2)
  source = adapter.ListSource(cfg, data, retrieval, make_featurizer(_emb(), None), seed=0)
  lengths = data.lengths()
  users = np.repeat(np.arange(data.num_users), 50)
  cuts = source.cuts(users, np.random.default_rng(0))
  assert np.all(cuts >= lengths[users] - 2) and np.all(cuts < lengths[users])
  assert set(cuts - lengths[users]) == {-2, -1}              # both held-out positions
  batch = source.batch(np.arange(len(source.rows)), step=0)
  assert batch["retrieval"].shape == (len(source.rows), 5)
  with pytest.raises(ValueError, match="model.held_out_items=-1"):
    adapter.Config(held_out_items=-1)


def test_config_refuses_more_hard_negatives_than_the_shortlist():
  with pytest.raises(ValueError, match="model.num_hard_negatives=40: must be in"):
    adapter.Config(num_candidates=30, num_hard_negatives=40)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  cfg = configs.get_config("dataset=synthetic,recipe=quick")
  cfg.model.alphas = (0.0,)          # the ranker alone orders the shortlist
  cfg.model.held_out_items = 3       # and learns on a second retrieval model's shortlists
  return pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path_factory.mktemp("runs")))


@pytest.mark.slow
def test_the_ranker_learns_to_order_the_shortlist(run):
  """Item i is followed by i+1; retrieval's top 10 holds it, and the ranker alone (alpha 0)
  must put it first among 10 candidates, 5 of them retrieval's own near misses."""
  metrics = pipeline.test_metrics(run)
  assert metrics["retrieval/hr@10"] > 0.9             # the shortlist holds the target
  assert metrics["mrr"] > 0.8 and run["model_info"]["alpha"] == 0.0
  assert run["model_info"]["retrieval_val"]["hr@10"] == pytest.approx(
      metrics["retrieval/hr@10"], abs=0.1)


@pytest.mark.slow
def test_the_run_serves_what_it_evaluated(run):
  recommender = inference.TwoStageRecommender.from_run(run["run_dir"])
  state = json.load(open(os.path.join(run["run_dir"], "train", adapter.STATE_FILE)))
  assert (recommender.alpha, recommender.num_candidates) == (state["alpha"], 10)
  ids, scores = recommender.recommend(history=[5, 6, 7], k=3)
  assert ids[0] == 8 and list(scores) == sorted(scores, reverse=True)
  assert not {5, 6, 7} & set(ids.tolist())
  with pytest.raises(ValueError, match="not phoenix_two_stage"):
    inference.TwoStageRecommender.from_run(_fake_retrieval_run(run, "0" * 16))


def _fake_retrieval_run(run, fingerprint):
  """A run folder that looks like a phoenix_retrieval run on another split."""
  path = os.path.join(os.path.dirname(run["run_dir"]), f"fake_{fingerprint[:4]}")
  folder = runs.open_run(path, {"model": {"name": "phoenix_retrieval"}}, ())
  runs.check_data(folder, fingerprint, "a test")
  return path


@pytest.mark.slow
def test_a_retrieval_run_of_another_split_is_refused(run, tmp_path):
  cfg = configs.get_config("dataset=synthetic,recipe=quick")
  cfg.model.retrieval_run = _fake_retrieval_run(run, "f" * 16)
  with pytest.raises(ValueError, match=r"trained on split ffff.*this run's split is"):
    pipeline.train_and_evaluate(cfg, runs_root=str(tmp_path))


def test_the_retrieval_feature_adds_the_retrieval_logit_per_head(small):
  _, data, _, ranker = small
  cand = np.tile(np.arange(5), (data.num_users, 1))
  retrieval = np.linspace(-1, 1, data.num_users * 5).reshape(data.num_users, 5)
  plain = ranker.probs(data, cand)
  fusion = two_stage.init_fusion(2.0, batching.NUM_ACTIONS)      # logits stay unsaturated
  fusion["w"][batching.CLICK] = 0.5
  fused = two_stage.ListRanker(ranker.cfg, {**ranker.params, "fusion": fusion},
                               ranker.featurizer, batch_size=4)
  logit = lambda p: np.log(p) - np.log1p(-p)
  got = logit(fused.probs(data, cand, retrieval))
  want = logit(plain) + fusion["w"] * (retrieval / 2.0)[..., None]
  np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
  with pytest.raises(ValueError, match="takes the retrieval scores"):
    fused.probs(data, cand)
