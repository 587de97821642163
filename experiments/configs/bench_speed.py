"""Config of the three speed benchmarks of the "Scale and speed" issue.

  experiments/bench_ae_flops.py        --config experiments/configs/bench_speed.py[:tiny]
  experiments/bench_retrieval_topk.py  --config experiments/configs/bench_speed.py[:tiny]
  experiments/bench_input_pipeline.py  --config experiments/configs/bench_speed.py[:tiny]
  experiments/bench_retrieval_loss.py  --config experiments/configs/bench_speed.py[:tiny]

Each binary reads its own section (ae_flops, retrieval, input_pipeline, retrieval_loss).
"full" (default) is the recorded run; "tiny" is a seconds-long smoke run (the tests use it).
Every figure is measured in `rounds` interleaved rounds (each round times every variant once,
so background load on the shared machine hits all variants alike); the median over rounds is
the reported figure, all per-round values are kept in the result file.
"""
from ml_collections import config_dict


def get_config(arg: str = "full") -> config_dict.ConfigDict:
  c = config_dict.ConfigDict()
  # AE training step (experiments/configs/anime_ae.py:full sizes, 7390 items of the anime
  # subsample) against a square float32 matmul.
  c.ae_flops = config_dict.ConfigDict(dict(
      ae_config="full",            # the anime_ae config variant whose model/train is timed
      num_items=7390,              # I (the embedded anime subsample's corpus)
      profile_density=0.014,       # fraction of items present in a synthetic profile (~104/7390)
      batch_sizes=(256, 1024),     # the first is the config's; the others are diagnostics
      matmul_n=2048,               # n x n @ n x n float32, 2 n^3 FLOPs
      rounds=5, reps=2, warmup=1, seed=0))
  # Top-k (k=100) over N unit vectors of dimension D for a batch of user vectors.
  c.retrieval = config_dict.ConfigDict(dict(
      num_items=1 << 20, dim=128, num_users=64, top_k=100,
      dtypes=("float32", "bfloat16"),
      block=1 << 16,               # corpus block of the blocked scan (must divide num_items)
      approx_recall_target=0.95,
      rounds=5, reps=2, warmup=1, seed=0))
  # AE training step fed by the real host pipeline vs device-resident batches.
  c.input_pipeline = config_dict.ConfigDict(dict(
      ae_config="full", min_ratings=30, prefetch_depth=2,
      steps=3,                     # training steps per variant per round
      rounds=3, warmup=1, seed=0))
  # Phoenix retrieval training step, packed loss positions vs all B*S slots (Amazon Beauty
  # shape: 12,101 items, lengths 5..13 in a window of 50; the model (model.net) of the
  # experiments/configs/phoenix_retrieval.py recipe named by its config argument).
  c.retrieval_loss = config_dict.ConfigDict(dict(
      recipe="dataset=beauty,recipe=best", num_users=22363, num_items=12101, min_len=5, max_len=13,
      batch_size=128, packed_positions=1024,
      rounds=5, reps=4, warmup=1, seed=0))
  if arg == "tiny":
    c.ae_flops.update(dict(num_items=64, batch_sizes=(16,), matmul_n=64, rounds=2, reps=1))
    c.ae_flops.model_override = config_dict.ConfigDict(dict(hidden_dim=32, bottleneck_dim=16))
    c.retrieval.update(dict(num_items=4096, dim=16, num_users=4, top_k=10, block=1024,
                            rounds=2, reps=1))
    c.input_pipeline.update(dict(steps=2, rounds=2))
    c.input_pipeline.model_override = config_dict.ConfigDict(dict(hidden_dim=32,
                                                                  bottleneck_dim=16))
    c.input_pipeline.batch_size = 32
    c.retrieval_loss.update(dict(recipe="dataset=synthetic,recipe=quick", num_users=64,
                                 num_items=300, min_len=3, max_len=6, batch_size=16,
                                 packed_positions=96, rounds=2, reps=2))
  elif arg != "full":
    raise ValueError(f"unknown config {arg!r}: use full or tiny")
  c.name = arg
  return c
