"""Configs for experiments/ablate_phoenix.py (the Phoenix ablations of issue #6).

Use as `--config experiments/configs/ablate_phoenix.py:<name>` with <name> one of
  quick  tiny synthetic data (rated sequences for ranking, item i -> i+1 for retrieval),
         a dozen steps per run; seconds; tests
  full   the real run: ranking on the embedded anime subsample (no --data_dir needed; each
         user's items in a seeded random order, as in configs/phoenix_ranking.py:anime),
         retrieval on ML-1M (SASRec version; needs --data_dir)

Sections:
  ranking     data, training schedule and the base model of ablations 1-3
              (`model` maps 1:1 onto phoenix.ranking.config.RankingConfig, `model.emb`
              onto phoenix.embeddings.EmbeddingConfig); `primary_metric` is the validation
              metric of the curves, `threshold_fraction` x the baseline variant's final
              mean primary metric is the threshold of "steps to threshold". Validation
              curves on the first `max_eval_lists` validation lists (0 = all); test metrics
              on all test lists.
  retrieval   the same for ablation 4 (`model` maps onto
              phoenix.retrieval.config.RetrievalConfig).
  ablations   per ablation: its kind ("ranking" | "positions" | "retrieval"), the baseline
              variant, and per variant the model fields it overrides. Variants with equal
              resulting configs share their training runs (the ranking baseline is trained
              once per seed for ablations 1-3).
"""
import dataclasses

from ml_collections import config_dict

from experiments.configs import common
from experiments.configs import phoenix_ranking
from phoenix.retrieval import adapter


def _ranking_model(**overrides):
  """experiments/configs/phoenix_ranking.py's model, smaller, with the position option."""
  emb = dict(emb_size=32)
  emb.update(overrides.pop("emb", {}))
  model = dict(key_size=16, history_len=32, high_threshold=8.0, low_threshold=4.0,
               candidate_positions="shared")
  model.update(overrides)
  return phoenix_ranking._model(emb=emb, **model)  # pylint: disable=protected-access


def _retrieval_model(**overrides):
  """The pipeline's retrieval model defaults (phoenix.retrieval.adapter.Config().net),
  smaller, sampled softmax."""
  net = dataclasses.asdict(adapter.Config().net)
  net["emb"].update(dict(emb_size=32, user_table_size=1 << 12, author_table_size=1 << 10),
                    **overrides.pop("emb", {}))
  net.update(dict(num_layers=1, key_size=16, history_len=50, window="random", loss="sampled"),
             **overrides)
  return net


def _ablations(neg_counts, nologq_count):
  retrieval = {f"neg{n}": dict(num_negatives=n, log_q=True) for n in neg_counts}
  retrieval[f"neg{nologq_count}_nologq"] = dict(num_negatives=nologq_count, log_q=False)
  retrieval["order"] = tuple(retrieval)
  return config_dict.ConfigDict(dict(
      normalization=dict(kind="ranking", baseline="norm_on", variants=dict(
          norm_on=dict(normalize_before_projection=True),
          norm_off=dict(normalize_before_projection=False))),
      temperature=dict(kind="ranking", baseline="temp_off", variants=dict(
          temp_off=dict(learnable_attention_temperature=False),
          temp_on=dict(learnable_attention_temperature=True))),
      candidate_positions=dict(kind="positions", baseline="shared", variants=dict(
          shared=dict(candidate_positions="shared"),
          sequential=dict(candidate_positions="sequential"))),
      retrieval=dict(kind="retrieval", baseline=f"neg{nologq_count}",
                     variants={k: v for k, v in retrieval.items() if k != "order"},
                     variant_order=retrieval["order"]),
  ))


def get_config(name: str = "full") -> config_dict.ConfigDict:
  cfg = config_dict.ConfigDict()
  cfg.tag = name
  cfg.seeds = (0, 1, 2)
  cfg.ranking = config_dict.ConfigDict(dict(
      dataset="anime", author="genre", data_seed=0, batch_size=64, num_steps=300,
      eval_every=10, max_eval_lists=2000, primary_metric="auc/favorite",
      threshold_fraction=0.95, optimizer=common.optimizer(warmup_steps=20),
      model=_ranking_model()))
  # Candidate-position ablation: permutations of the validation lists measured on the
  # untrained (init) and the trained models of each seed.
  cfg.positions = config_dict.ConfigDict(dict(num_random_permutations=1))
  # Retrieval on ML-1M (SASRec version, 6,040 users, 3,416 items): ml-latest-small's 610
  # users made HR@10 too noisy (standard error ~0.007 at 0.03) to separate the variants.
  # 400 steps of 64 users (~4 epochs), validation on a fixed 2,000-user subset, test on all.
  cfg.retrieval = config_dict.ConfigDict(dict(
      dataset="ml-1m", batch_size=64, num_steps=400, eval_every=40,
      eval_users=2000, ks=(10,), primary_metric="ndcg@10", threshold_fraction=0.95,
      optimizer=common.optimizer(learning_rate=3e-3, warmup_steps=20),
      model=_retrieval_model()))
  cfg.ablations = _ablations((64, 256, 1024), 1024)
  # Run order (ConfigDict sorts its keys) and variant order within each ablation.
  cfg.order = ("normalization", "temperature", "candidate_positions", "retrieval")
  if name == "quick":
    cfg.seeds = (0, 1)
    r = cfg.ranking
    r.dataset = "synthetic"
    r.author = "none"
    r.batch_size = 16
    r.num_steps = 12
    r.eval_every = 4
    r.optimizer = common.optimizer(learning_rate=3e-3)
    r.model = config_dict.ConfigDict(_ranking_model(
        emb=dict(emb_size=16, user_table_size=256, item_table_size=256, author_table_size=16),
        num_layers=1, num_q_heads=2, num_kv_heads=1, key_size=8, history_len=8,
        num_positives=2, num_negatives=6, high_threshold=4.0, low_threshold=2.0))
    t = cfg.retrieval
    t.dataset = "synthetic"
    t.synthetic = config_dict.ConfigDict(dict(num_users=120, num_items=40, min_len=8,
                                              max_len=16, noise=0.0))
    t.batch_size = 16
    t.num_steps = 12
    t.eval_every = 4
    t.ks = (10,)
    t.optimizer = common.optimizer(learning_rate=3e-3)
    t.model = config_dict.ConfigDict(_retrieval_model(
        emb=dict(emb_size=16, user_table_size=64, item_table_size=256, author_table_size=16),
        num_q_heads=2, num_kv_heads=1, key_size=8, history_len=12, num_in_batch=16,
        init_temperature=0.1))
    cfg.ablations = _ablations((8, 32), 32)
  elif name != "full":
    raise ValueError(f"unknown config {name!r}; known: quick, full")
  return cfg
