r"""FLOPs and achieved fraction of matmul peak of the autoencoder training step.

  nice python -m experiments.bench_ae_flops --config experiments/configs/bench_speed.py
      # writes runs/results/bench_ae_flops_cpu.json; the recorded run adds
      # --results_dir experiments/results (and --overwrite to replace it)

The step is `recsys_core.train.make_update_fn` on `anime_ae.training.make_loss_fn` at the
sizes of experiments/configs/anime_ae.py:recipe=seed (I items, H hidden, Z bottleneck, batch B),
with the config's optimizer (Adam + reduce-on-plateau), on device-resident batches whose
profiles hold `profile_density * I` items (the FLOP count does not depend on the density).

FLOP count (matmuls only; a dense layer [B, n] @ [n, m] is 2 B n m FLOPs):
  forward F = 2 B * sum over layers of n*m, layers (two heads, shared_decoder=False):
      encoder 2I x H, bottleneck H x Z, per head: Z x H/2, H/2 x H, H x I
  training, convention: 3F (forward + dX + dW, each the forward's cost)
  training, exact:      3F - 2 B (2I) H  (no dX for the encoder: its input is data)
Elementwise work (swish, log-softmax over I, Huber, Adam over every parameter, the
non-finite guard) is not counted; it is what separates the step from matmul speed.
`xla_flops` is XLA's own count (`compile().cost_analysis()["flops"]`) of the step, a
cross-check (it includes the elementwise FLOPs).

fraction_of_peak = (exact step FLOPs / step seconds) / (matmul FLOPs / matmul seconds), both
timed in the same process in interleaved rounds; medians over rounds. Variants:
  as_trained   the step exactly as anime_ae.training.train builds it (batch B, no donation)
  donated      the same math with the state's buffers donated (donate=True: Adam updates in
               place instead of allocating a fresh params/opt_state every step)
  grad_only    value_and_grad of the loss alone (no optimizer, no guard): the matmul-bound part
and the donated step at the diagnostic batch sizes (larger B: the per-step optimizer cost is
amortised over more FLOPs). `fraction_of_peak` is the faster of as_trained and donated (the
variants that do the training step's exact math); `ae_flops.variants` selects the variants
(tests time as_trained alone).

Recorded (experiments/results/bench_ae_flops_cpu.json, 2-core CPU under shared load):
the step runs at 0.56 of the matmul's FLOP/s, value_and_grad alone at 0.85 and the step at
B=1024 at 0.86; XLA's FLOP count is within 2.4% of the exact formula. So about a third of the
step at B=256 is not matmul work but the optimizer's elementwise, memory-bound work over the
~32M parameters (Adam moments, the non-finite guard's jnp.where copies of params and
opt_state, the global norm); a larger batch amortises it. Donation did not help here.
The encoder's dense [B, 2I] input is ~1.4% non-zero, and its layer is ~47% of the forward
FLOPs: a sparse encoder (gather of W rows) would remove most of those (an anime_ae change).

Shape glossary: B batch, I items, H hidden, Z bottleneck.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from anime_ae import training
from anime_ae.config import AEConfig
from experiments import common
from experiments.configs import anime_ae as anime_ae_configs
from recsys_core.train import init_train_state, make_optimizer, make_update_fn

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The binary's flags (defined only when run as a binary, so tests can import the module)."""
  common.define_bench_flags("bench_ae_flops_cpu")


def layer_shapes(num_items: int, hidden: int, bottleneck: int,
                 shared_decoder: bool = False) -> list[tuple[str, int, int]]:
  """(name, fan_in, fan_out) of every dense layer of anime_ae.model.TwoHeadAE."""
  half = max(hidden // 2, 1)
  layers = [("encoder", 2 * num_items, hidden), ("bottleneck", hidden, bottleneck)]
  heads = ["dec_shared"] if shared_decoder else ["dec_item", "dec_rating"]
  for h in heads:
    layers += [(f"{h}_up1", bottleneck, half), (f"{h}_up2", half, hidden)]
  layers += [("item_logits", hidden, num_items), ("rating_pred", hidden, num_items)]
  return layers


def ae_flops(num_items: int, hidden: int, bottleneck: int, batch: int,
             shared_decoder: bool = False) -> dict[str, int]:
  """Matmul FLOPs of one forward pass and of one training step (see the module docstring)."""
  layers = layer_shapes(num_items, hidden, bottleneck, shared_decoder)
  forward = 2 * batch * sum(n * m for _, n, m in layers)
  first = 2 * batch * layers[0][1] * layers[0][2]
  return {"forward": forward, "train_3x": 3 * forward, "train_exact": 3 * forward - first,
          "params": sum(n * m + m for _, n, m in layers) + 2}


def xla_flops(jitted, *args) -> Optional[float]:
  """XLA's FLOP count of jitted(*args), or None when the backend reports none."""
  try:
    cost = jitted.lower(*args).compile().cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or "flops" not in cost:
    return None
  return float(cost["flops"])


def synthetic_batch(batch: int, num_items: int, density: float, seed: int) -> dict:
  """A dense training batch [B, I] (anime_ae.profiles.dense_batch keys), on the device."""
  rng = np.random.default_rng(seed)
  presence = (rng.random((batch, num_items)) < density).astype(np.float32)   # [B, I]
  presence[:, 0] = 1.0                                                       # no empty profile
  rating = (presence * rng.normal(size=presence.shape)).astype(np.float32)   # [B, I]
  keep = presence * (rng.random(presence.shape) > 0.4)                       # input dropout
  return jax.device_put({"x_rating": rating * keep, "x_presence": keep.astype(np.float32),
                         "presence": presence, "rating": rating, "rating_mask": presence})


# The `ae_config` names of experiments/configs/bench_speed.py (recorded in the result files)
# -> the recipe of experiments/configs/anime_ae.py with the same AE sections.
RECIPE_OF = {"full": "seed", "eval": "default", "quick": "quick"}


def ae_config(name: str, override: Optional[Mapping[str, Any]] = None) -> AEConfig:
  """The AE sections of `name` ("full", "eval", "quick", a recipe name, or a config argument
  "recipe=..."), `override` set on its model section."""
  arg = name if "=" in name else f"recipe={RECIPE_OF.get(name, name)}"
  c = anime_ae_configs.get_config(arg).model
  if override:
    c.model.update(dict(override))
  return AEConfig.from_config_dict(c)


class StepTimer:
  """One way of running the AE step: `run(reps)` times reps calls, returns seconds per call."""

  def __init__(self, ae: AEConfig, num_items: int, batch: dict, donate: bool,
               grad_only: bool = False):
    self.batch = batch
    transformed = ae.model.make(num_items)
    optimizer = make_optimizer(ae.train.make())
    params = training.init_params(transformed, num_items, ae.train.seed)
    self.state = init_train_state(params, optimizer, jax.random.PRNGKey(1))
    loss_fn = training.make_loss_fn(transformed, ae)
    if grad_only:
      grad = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))
      self.jitted = grad
      self._call = lambda: grad(self.state.params, self.state.rng, self.batch)
    else:
      update = make_update_fn(loss_fn, optimizer, donate=donate)
      self.jitted = update.jitted

      def call():
        self.state, metrics = update(self.state, self.batch)
        return metrics

      self._call = call
    self.grad_only = grad_only

  def flops_args(self):
    if self.grad_only:
      return (self.state.params, self.state.rng, self.batch)
    return (self.state, self.batch)

  def run(self, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
      out = self._call()
    jax.block_until_ready((out, self.state))
    return (time.perf_counter() - t0) / reps


def matmul_timer(n: int, seed: int) -> Callable[[int], float]:
  """run(reps) -> seconds per float32 [n, n] @ [n, n] (2 n^3 FLOPs), inputs on the device."""
  ka, kb = jax.random.split(jax.random.PRNGKey(seed))
  a = jax.random.normal(ka, (n, n), jnp.float32)
  b = jax.random.normal(kb, (n, n), jnp.float32)
  mm = jax.jit(jnp.matmul)

  def run(reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
      out = mm(a, b)
    jax.block_until_ready(out)
    return (time.perf_counter() - t0) / reps

  return run


def run_benchmark(cfg: Any, log: Callable[[str], None] = print) -> dict[str, Any]:
  """Runs the benchmark described by `cfg` (the ae_flops section); returns the figures."""
  override = cfg.get("model_override")
  ae = ae_config(cfg.ae_config, override.to_dict() if override else None)
  m, i = ae.model, int(cfg.num_items)
  b0 = ae.train.batch_size if not cfg.get("model_override") else int(cfg.batch_sizes[0])
  batch_sizes = [b0] + [int(b) for b in cfg.batch_sizes if int(b) != b0]
  batches = {b: synthetic_batch(b, i, cfg.profile_density, cfg.seed) for b in batch_sizes}
  wanted = tuple(cfg.get("variants") or ("as_trained", "donated", "grad_only"))
  makers = {"as_trained": lambda: StepTimer(ae, i, batches[b0], donate=False),
            "donated": lambda: StepTimer(ae, i, batches[b0], donate=True),
            "grad_only": lambda: StepTimer(ae, i, batches[b0], donate=False, grad_only=True)}
  unknown = sorted(set(wanted) - set(makers))
  if unknown or "as_trained" not in wanted:
    raise ValueError(f"ae_flops.variants {wanted}: must include 'as_trained' and only "
                     f"{sorted(makers)}")
  timers = {k: makers[k]() for k in makers if k in wanted}
  for b in batch_sizes[1:]:
    timers[f"donated_b{b}"] = StepTimer(ae, i, batches[b], donate=True)
  bsize = {k: (int(k.split("_b")[1]) if "_b" in k else b0) for k in timers}
  counts = {k: ae_flops(i, m.hidden_dim, m.bottleneck_dim, bsize[k], m.shared_decoder)
            for k in timers}
  xla = {k: xla_flops(t.jitted, *t.flops_args()) for k, t in timers.items()}
  matmul = matmul_timer(int(cfg.matmul_n), cfg.seed)
  mm_flops = 2 * int(cfg.matmul_n) ** 3
  for _ in range(cfg.warmup):   # compiles everything
    matmul(1)
    for t in timers.values():
      t.run(1)
  per_round = {"matmul": []}
  per_round.update({k: [] for k in timers})
  for r in range(cfg.rounds):
    per_round["matmul"].append(matmul(cfg.reps))
    for k, t in timers.items():
      per_round[k].append(t.run(cfg.reps))
    log(f"round {r}: " + ", ".join(f"{k} {v[-1] * 1e3:.1f} ms" for k, v in per_round.items()))
  med = {k: float(np.median(v)) for k, v in per_round.items()}
  mm_rate = mm_flops / med["matmul"]
  out = {"matmul_flops": mm_flops, "matmul_flops_per_s": mm_rate,
         "step_flops_exact": counts["as_trained"]["train_exact"],
         "step_flops_3x": counts["as_trained"]["train_3x"],
         "forward_flops": counts["as_trained"]["forward"],
         "num_params": counts["as_trained"]["params"],
         "xla_flops": xla["as_trained"], "batch_size": b0,
         "seconds": med, "seconds_per_round": per_round, "variants": {}}
  for k in timers:
    # grad_only does no dX-free saving differently: same exact count (forward + backward).
    rate = counts[k]["train_exact"] / med[k]
    out["variants"][k] = {"batch_size": bsize[k], "step_seconds": med[k],
                          "step_flops_exact": counts[k]["train_exact"],
                          "xla_flops": xla[k], "flops_per_s": rate,
                          "fraction_of_peak": rate / mm_rate}
  # Headline: the faster of the two variants doing the training step's exact math.
  same_math = [k for k in ("as_trained", "donated") if k in timers]
  out["best_step_variant"] = max(same_math, key=lambda k: out["variants"][k]["fraction_of_peak"])
  out["fraction_of_peak"] = out["variants"][out["best_step_variant"]]["fraction_of_peak"]
  out["fraction_of_peak_as_trained"] = out["variants"]["as_trained"]["fraction_of_peak"]
  if "grad_only" in timers:
    out["fraction_of_peak_grad_only"] = out["variants"]["grad_only"]["fraction_of_peak"]
  if xla["as_trained"]:
    out["xla_over_exact"] = xla["as_trained"] / counts["as_trained"]["train_exact"]
  return out


def main(argv):
  del argv
  out = common.start_bench()  # name and folder checked before any work
  cfg = FLAGS.config
  start = time.perf_counter()
  res = run_benchmark(cfg.ae_flops)
  best = res["variants"][res["best_step_variant"]]
  metrics = {"fraction_of_peak": res["fraction_of_peak"],
             "step_flops_per_s": best["flops_per_s"],
             "matmul_flops_per_s": res["matmul_flops_per_s"],
             "step_seconds": best["step_seconds"]}
  for k, v in res["variants"].items():
    metrics[f"{k}/fraction_of_peak"] = v["fraction_of_peak"]
    metrics[f"{k}/step_seconds"] = v["step_seconds"]
  common.write_bench_result(out, cfg.ae_flops, dataset="synthetic", model="anime_ae",
                            metrics=metrics, figures=res, start=start)


if __name__ == "__main__":
  define_flags()
  app.run(main)
