"""Config of experiments/bench_phoenix.py (Phoenix ranking forward and cached-serving speed).

  --config experiments/configs/bench_phoenix.py          the recorded run
  --config experiments/configs/bench_phoenix.py:quick    a seconds-long smoke run

models.<name>: the transformer and sequence shapes timed by the ranking-forward benchmark
(demo = the release's demo config; large = a deeper/longer one). serving: the prefix-cached
scorer against the full sequence for one user with many candidates, on models[serving.model].
"""
from ml_collections import config_dict


def _model(emb_size, num_layers, num_heads, key_size, history, candidates):
  return config_dict.ConfigDict(dict(
      emb_size=emb_size, num_layers=num_layers, num_q_heads=num_heads, num_kv_heads=num_heads,
      key_size=key_size, widening_factor=2.0, attn_output_multiplier=key_size ** -0.5,
      history_seq_len=history, candidate_seq_len=candidates,
      normalize_before_projection=True, learnable_temperature=False))


def get_config(arg: str = "full") -> config_dict.ConfigDict:
  c = config_dict.ConfigDict()
  c.models = config_dict.ConfigDict(dict(
      demo=_model(128, 2, 2, 64, history=32, candidates=8),
      large=_model(128, 4, 4, 32, history=127, candidates=64)))
  c.num_actions = 19
  c.latency_batch = 1
  c.throughput_batch = 64
  c.warmup = 3              # untimed calls first (the first one compiles)
  c.repeats = 30            # timed calls; the median is reported
  # fprop dtype: float32 unless bfloat16 is faster on this machine, decided by timing both
  # on models[dtype_probe_model] at the throughput batch.
  c.dtypes = ("float32", "bfloat16")
  c.dtype_probe_model = "large"
  c.serving = config_dict.ConfigDict(dict(
      model="large", num_candidates=1024, block_sizes=(128, 256, 512, 1024), repeats=10))
  c.seed = 0
  if arg == "quick":
    c.repeats = 3
    c.warmup = 1
    c.throughput_batch = 4
    c.serving.num_candidates = 64
    c.serving.block_sizes = (16, 64)
    c.serving.repeats = 2
  elif arg != "full":
    raise ValueError(f"unknown config {arg!r}: full | quick")
  return c
