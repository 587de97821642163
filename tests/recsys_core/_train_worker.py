"""A tiny MLP regression trained with recsys_core.train, for the training-loop tests.

In-process: `make_run(...)` returns what `fit` needs. As a script (the kill/resume test):
  python tests/recsys_core/_train_worker.py WORKDIR NUM_STEPS [STEP_SLEEP_SECONDS]
trains in WORKDIR (resuming if it holds a checkpoint), then writes WORKDIR/final_params.npz
and WORKDIR/result.json. STEP_SLEEP_SECONDS slows batch_fn down so the test can kill the
process mid-run.
"""
from __future__ import annotations

import functools
import json
import os
import sys
import time
from typing import Any, NamedTuple, Optional

from absl import logging
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from recsys_core import train

NUM_EXAMPLES, NUM_FEATURES, BATCH = 96, 6, 16


class Run(NamedTuple):
  update: Any
  state: train.TrainState
  batch_fn: Any
  eval_fn: Any
  config: dict


@functools.lru_cache(maxsize=None)
def _model(seed: int, nan_policy: str, hidden: int, opt: Optional[train.OptimizerConfig]):
  """Data, jitted update/eval and the initial state; cached so tests share compilations."""
  rs = np.random.default_rng(seed)
  x = rs.normal(size=(NUM_EXAMPLES, NUM_FEATURES)).astype(np.float32)
  y = (x @ rs.normal(size=(NUM_FEATURES,)) + 0.1 * rs.normal(size=NUM_EXAMPLES)).astype(np.float32)
  x_val, y_val = x[:32] + 0.05, y[:32]

  def forward(inputs, is_training):
    init = hk.initializers.RandomNormal(0.3)  # compiles much faster than truncated normal
    h = jax.nn.relu(hk.Linear(hidden, w_init=init, name="hidden")(inputs))
    if is_training:  # uses the step rng, so rng handling is part of what must resume exactly
      h = hk.dropout(hk.next_rng_key(), 0.1, h)
    return hk.Linear(1, w_init=init, name="out")(h)[:, 0]

  model = hk.transform(forward)

  def loss_fn(params, rng, batch):
    pred = model.apply(params, rng, batch["x"], True)
    mse = jnp.mean((pred - batch["y"]) ** 2)
    return mse, {"mse": mse}

  @jax.jit
  def val_mse(params):
    return jnp.mean((model.apply(params, None, x_val, False) - y_val) ** 2)

  def eval_fn(params):
    return {"val_mse": float(val_mse(params))}

  opt = opt or train.OptimizerConfig(name="adamw", learning_rate=1e-2, weight_decay=1e-4,
                                     clip_norm=1.0, warmup_steps=5, decay="cosine",
                                     decay_steps=200)
  optimizer = train.make_optimizer(opt)
  params = jax.jit(model.init, static_argnums=2)(jax.random.PRNGKey(seed), x[:BATCH], True)
  state = train.init_train_state(params, optimizer, jax.random.PRNGKey(seed + 1))
  update = train.make_update_fn(loss_fn, optimizer, nan_policy=nan_policy)
  config = {"seed": seed, "hidden": hidden, "opt": opt}
  return x, y, update, state, eval_fn, config


def make_run(seed: int = 0, nan_at: Optional[int] = None, nan_policy: str = "raise",
             step_sleep: float = 0.0, hidden: int = 8,
             opt: Optional[train.OptimizerConfig] = None) -> Run:
  """A deterministic run: data, model, optimizer and batch order all follow `seed`.

  `nan_at`: batch_fn(nan_at) returns NaN inputs (so that step's loss is NaN).
  """
  x, y, update, state, eval_fn, config = _model(seed, nan_policy, hidden, opt)
  batcher = train.EpochBatcher(NUM_EXAMPLES, BATCH, seed)

  def batch_fn(step):
    if step_sleep:
      time.sleep(step_sleep)
    idx = batcher.indices(step)
    bx = x[idx]
    if nan_at is not None and step == nan_at:
      bx = bx * np.float32("nan")
    return {"x": bx, "y": y[idx]}

  return Run(update, state, batch_fn, eval_fn, config)


def loop_config(num_steps: int, **overrides) -> train.LoopConfig:
  kw = dict(num_steps=num_steps, log_every=5, eval_every=10, checkpoint_every=10,
            keep_checkpoints=3, best_metric="val_mse", best_mode="min", progress_bar=False)
  kw.update(overrides)
  return train.LoopConfig(**kw)


def main(argv):
  workdir, num_steps = argv[1], int(argv[2])
  step_sleep = float(argv[3]) if len(argv) > 3 else 0.0
  logging.set_verbosity(logging.INFO)  # "Resumed ... at step N" goes to stderr
  run = make_run(step_sleep=step_sleep)
  result = train.fit(run.update, run.state, run.batch_fn, loop_config(num_steps), workdir,
                     eval_fn=run.eval_fn, config=run.config)
  train.save_params(os.path.join(workdir, "final_params.npz"), result.state.params)
  with open(os.path.join(workdir, "result.json"), "w") as f:
    json.dump({"best_step": result.best_step, "best_metrics": result.best_metrics,
               "final_step": int(result.state.step)}, f)


if __name__ == "__main__":
  main(sys.argv)
