"""End-to-end tests of anime_ae on a tiny anime-format dataset: training through
recsys_core.train, the report, the model file, the recommend binary and the Scorer."""
import gzip
import os

import numpy as np
import pytest

from anime_ae.config import AEConfig
from anime_ae.scorer import AutoencoderScorer
from anime_ae.trained import TrainedAE
from experiments.configs.anime_ae import get_config
from recsys_core.data.types import Interactions
from recsys_core.scoring import Scorer

N_USERS, N_ITEMS = 24, 16


def _write_tiny_anime(folder):
  """anime_recommendations_5k_subsample/ with 24 users over 16 items (ids 1..16)."""
  rng = np.random.default_rng(0)
  d = os.path.join(folder, "anime_recommendations_5k_subsample")
  os.makedirs(d)
  hist, rat = ["User_ID\tAnime_ID\tFeedback"], ["User_ID\tAnime_ID\tFeedback"]
  for u in range(1, N_USERS + 1):
    items = rng.choice(np.arange(1, N_ITEMS + 1), size=rng.integers(6, 12), replace=False)
    for k, i in enumerate(sorted(items)):
      hist.append(f"{u}\t{i}\t1")
      if k % 4 != 3:  # every 4th item: watched, not rated
        rat.append(f"{u}\t{i}\t{rng.integers(1, 11)}")
  info = ["anime_ids\tname\tgenre\ttype\tepisodes\trating\tmembers"]
  info += [f"{i}\tShow {i}\tAction\tTV\t12\t7.5\t{1000 - i}" for i in range(1, N_ITEMS + 1)]
  for name, lines in (("anime_history.dat.gz", hist), ("anime_ratings.dat.gz", rat),
                      ("anime_info.dat.gz", info)):
    with gzip.open(os.path.join(d, name), "wt") as f:
      f.write("\n".join(lines) + "\n")
  return folder


def _tiny_config(data_dir=None):
  c = get_config("dataset=anime,recipe=quick")
  c.data.dir = data_dir
  m = c.model
  m.model.hidden_dim = 16
  m.model.bottleneck_dim = 8
  m.data.min_ratings = 3
  m.train.steps = 4
  m.train.batch_size = 8
  m.train.log_every = 2
  m.recommend.top_k = 3
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from anime_ae.pipeline import Holdout, train_and_report
  root = tmp_path_factory.mktemp("anime")
  data_dir = _write_tiny_anime(str(root / "data"))
  lines = []
  report = train_and_report(_tiny_config(data_dir), str(root / "work"), Holdout(profiles=4),
                            out=lines.append)
  return root, data_dir, report, "\n".join(lines)


def test_train_and_report_prints_the_seed_tables(trained):
  root, _, report, text = trained
  for heading in ("EVALUATION SET HOLDOUT VALIDATION", "Per-Item Rating Prediction Stats",
                  "Median error", "Per-Profile Aggregated Stats", "PROFILE HOLDOUT",
                  "TOP-3 RECOMMENDATIONS", "because you have", "BOTTLENECK STATISTICS"):
    assert heading in text
  assert "Show " in text                                    # names from anime_info
  assert report["num_heldout_profiles"] == 4
  assert len(report["recommendations"]) == 3
  work = root / "work"
  assert (work / "model.npz").exists() and (work / "report.json").exists()
  assert (work / "train" / "metrics.jsonl").exists()       # recsys_core.train outputs
  assert any((work / "train" / "checkpoints").iterdir())
  rec = report["train"]
  for key in ("loss_presence", "loss_rating", "weight_presence", "weight_rating", "lr_scale"):
    assert key in rec


def test_saved_model_round_trips_and_never_recommends_profile(trained):
  root, _, _, _ = trained
  model = TrainedAE.load(str(root / "work" / "model.npz"))
  assert model.dataset == "anime" and model.num_items == N_ITEMS
  assert model.log_popularity is not None
  items, stars = np.array([0, 1, 2]), np.array([9.0, np.nan, 3.0])
  recs = model.recommend(items, stars, plan_to_watch=np.array([3, 4]))
  got = {r.item for r in recs}
  assert not got & {0, 1, 2, 3, 4}
  for r in recs:
    assert {k for k, _ in r.because} <= {0, 1, 2}


def test_recommend_binary_and_unknown_id_errors(trained, tmp_path):
  from experiments import recommend_anime
  root, data_dir, _, _ = trained
  model = TrainedAE.load(str(root / "work" / "model.npz"))
  items, stars = recommend_anime.parse_profile(model, ["1:9", "2", "3:4.5"])
  assert items.tolist() == [0, 1, 2] and np.isnan(stars[1]) and stars[2] == 4.5
  csv_path = tmp_path / "p.csv"
  csv_path.write_text("item_id,rating\n1,9\n999,7\n")
  with pytest.raises(recommend_anime.ProfileError, match=r"p.csv line 3: unknown item id 999"):
    recommend_anime.parse_profile(model, csv_path=str(csv_path))
  with pytest.raises(recommend_anime.ProfileError, match="unknown item id 77"):
    recommend_anime.parse_profile(model, ["77:5"])
  with pytest.raises(recommend_anime.ProfileError, match="outside"):
    recommend_anime.parse_profile(model, ["1:11"])
  bad_header = tmp_path / "h.csv"
  bad_header.write_text("id,score\n1,9\n")
  with pytest.raises(recommend_anime.ProfileError, match="line 1"):
    recommend_anime.parse_profile(model, csv_path=str(bad_header))


def test_awkward_profiles_have_defined_behaviour(trained):
  root, _, _, _ = trained
  model = TrainedAE.load(str(root / "work" / "model.npz"))
  with pytest.raises(ValueError, match=r"item indices \[16, -1\] outside \[0, 16\)"):
    model.recommend([0, 16, -1], [5.0, 5.0, 5.0])
  # A repeated item keeps its last rating: same output as the profile without the first copy.
  with pytest.warns(UserWarning, match="1 repeated items"):
    dup = model.recommend([2, 0, 2], [1.0, 8.0, 9.0], explain=False)
  want = model.recommend([0, 2], [8.0, 9.0], explain=False)
  assert [(r.item, round(r.score, 5)) for r in dup] == [(r.item, round(r.score, 5))
                                                        for r in want]
  # Empty profile: the cold-start ranking, finite, every item eligible.
  with pytest.warns(UserWarning, match="empty"):
    cold = model.recommend([], [], explain=False)
  assert len(cold) == 3 and all(np.isfinite(r.score) for r in cold)


def test_scorer_protocol_fit_score_and_ratings():
  rng = np.random.default_rng(1)
  users = np.repeat(np.arange(12), 5).astype(np.int32)
  items = np.concatenate([rng.choice(10, 5, replace=False) for _ in range(12)]).astype(np.int32)
  ratings = rng.integers(1, 6, len(users)).astype(np.float32)
  train = Interactions(users, items, ratings, None, np.arange(12), np.arange(10), "toy")
  cfg = AEConfig.from_config_dict(_tiny_config().model)
  scorer = AutoencoderScorer(cfg)
  assert isinstance(scorer, Scorer)
  with pytest.raises(RuntimeError, match="fit"):
    scorer.score(train)
  scorer.fit(train)
  inputs = train.select(train.users < 3)
  inputs = Interactions(inputs.users, inputs.items, inputs.ratings, None, np.arange(3),
                        np.arange(10), "in")
  s = scorer.score(inputs)
  assert s.shape == (3, 10) and s.dtype == np.float32 and np.isfinite(s).all()
  stars = scorer.predict_stars(inputs)
  assert stars.shape == (3, 10) and stars.min() >= 1 and stars.max() <= 5  # ml scale inferred
  unified = AutoencoderScorer(cfg, ranking="unified")
  unified.model = scorer.model
  assert unified.score(inputs).shape == (3, 10)


def test_train_and_report_checks_its_arguments_before_reading_data(tmp_path):
  from anime_ae.pipeline import Holdout, train_and_report
  from experiments.configs import ease
  with pytest.raises(ValueError, match=r"holdout.profiles=0: must be >= 1"):
    Holdout(profiles=0)
  with pytest.raises(ValueError, match=r"holdout.example_profile=-1"):
    Holdout(example_profile=-1)
  with pytest.raises(ValueError, match="train_and_report trains anime_ae"):
    train_and_report(ease.get_config("recipe=quick"), str(tmp_path))
  bad = _tiny_config()
  bad.model.model.input_norm = "l3"
  with pytest.raises(ValueError, match="input_norm"):
    train_and_report(bad, str(tmp_path))
  assert not any(tmp_path.iterdir())


def test_recommend_anime_reads_and_prints_myanimelist_ids():
  """An anime model answers in the public dataset's ids (MAL anime_id) by default; the
  subsample's re-indexed ids (6 = Death Note = MAL 1535, 82 = FMA:B = MAL 5114) by --ids."""
  import types
  from experiments import recommend_anime
  model = types.SimpleNamespace(item_ids=np.array([6, 82]), dataset="anime",
                                transform=types.SimpleNamespace(lo=1.0, hi=10.0))
  public = recommend_anime.interface_ids(model, "mal", None)
  assert public.tolist() == [1535, 5114]
  items, stars = recommend_anime.parse_profile(model, ["5114:9", "1535"], ids=public)
  assert items.tolist() == [1, 0] and stars[0] == 9 and np.isnan(stars[1])
  with pytest.raises(recommend_anime.ProfileError, match="unknown item id 6"):
    recommend_anime.parse_profile(model, ["6:9"], ids=public)
  assert recommend_anime.interface_ids(model, "model", None).tolist() == [6, 82]
  other = types.SimpleNamespace(item_ids=np.array([6, 82]), dataset="ml-100k")
  assert recommend_anime.interface_ids(other, "mal", None).tolist() == [6, 82]


def test_the_holdout_report_refuses_data_without_ratings(tmp_path):
  """On implicit data (no rating at all) the report used to print MAE nan and predicted
  ratings; it now stops before training, saying why and what to run instead."""
  from anime_ae.pipeline import train_and_report
  from experiments.configs.anime_ae import get_config
  cfg = get_config("dataset=synthetic,recipe=quick")
  with pytest.raises(ValueError, match="has no ratings.*experiments.train"):
    train_and_report(cfg, str(tmp_path / "w"))
  assert not (tmp_path / "w" / "train").exists()
