"""Shared training utilities: state, optimizer, jitted update, data order, checkpoints, loop.

  state = init_train_state(params, make_optimizer(opt_cfg), jax.random.PRNGKey(seed))
  update = make_update_fn(loss_fn, make_optimizer(opt_cfg), nan_policy="raise")
  batcher = EpochBatcher(num_examples, batch_size, seed)
  result = fit(update, state, lambda s: make_batch(batcher.indices(s)), LoopConfig(...),
               workdir, eval_fn=..., config=...)
  params, meta = load_params(f"{workdir}/best_params.npz")   # inference

Guarantees (tested in tests/recsys_core/test_train_*.py, tests/recsys_core/test_checkpoint*.py,
tests/recsys_core/test_train_reliability.py):
  * kill -9 at any point, then `fit` again with the same arguments: resumes from the newest
    complete checkpoint and ends bit-identical (CPU) to an uninterrupted run.
  * a damaged/partial newest checkpoint is moved aside and the previous one used, with a
    WARNING naming both steps (LoopConfig keeps 3 checkpoints by default, so there is one to
    fall back to); a checkpoint of a different model raises CheckpointMismatchError naming
    the paths and both shapes.
  * never a silent restart from step 0: if checkpoints were written but none is intact,
    `fit` raises CheckpointError naming the folder and what was set aside, and leaves the
    rest of the workdir as it was; `fit(..., on_damaged="restart")` starts over instead.
  * a torn metrics.jsonl line (cut by a kill) is dropped with a WARNING naming file and line.
  * non-finite loss/gradients never change params; nan_policy="raise" raises
    NonFiniteError(step) before anything later is saved, "skip" skips the batch.
  * a train loss that runs away (LoopConfig.divergence_factor, default 1e3 x the lowest so
    far; None: off) or stops being finite raises DivergenceError(step, loss, best), a
    NonFiniteError, before that step is recorded, evaluated or checkpointed: the newest
    checkpoint is the last good one, and metrics.jsonl gets a "diverged" record.
"""
from recsys_core.train.checkpoint import CheckpointError
from recsys_core.train.checkpoint import CheckpointManager
from recsys_core.train.checkpoint import CheckpointMismatchError
from recsys_core.train.checkpoint import load_params
from recsys_core.train.checkpoint import save_params
from recsys_core.train.checkpoint import verify_checkpoint_dir
from recsys_core.train.data import EpochBatcher
from recsys_core.train.loop import FitResult
from recsys_core.train.loop import LoopConfig
from recsys_core.train.loop import TIMING_KEYS
from recsys_core.train.loop import config_diff
from recsys_core.train.loop import fit
from recsys_core.train.optim import OptimizerConfig
from recsys_core.train.optim import ema_params
from recsys_core.train.optim import eval_params
from recsys_core.train.optim import make_optimizer
from recsys_core.train.optim import make_schedule
from recsys_core.train.optim import matrices_only_mask
from recsys_core.train.optim import params_ema
from recsys_core.train.optim import plateau_scale
from recsys_core.train.state import TrainState
from recsys_core.train.state import init_train_state
from recsys_core.train.update import DivergenceError
from recsys_core.train.update import NonFiniteError
from recsys_core.train.update import check_finite
from recsys_core.train.update import make_update_fn

Checkpointer = CheckpointManager  # alias

__all__ = [
    "CheckpointError", "CheckpointManager", "CheckpointMismatchError", "Checkpointer",
    "DivergenceError", "EpochBatcher", "FitResult", "LoopConfig", "NonFiniteError",
    "OptimizerConfig",
    "TIMING_KEYS", "TrainState", "check_finite", "config_diff", "ema_params", "eval_params", "fit",
    "init_train_state", "load_params", "make_optimizer", "make_schedule", "make_update_fn",
    "matrices_only_mask", "params_ema", "plateau_scale",
    "save_params", "verify_checkpoint_dir",
]
