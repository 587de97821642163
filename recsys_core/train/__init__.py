"""Shared training utilities: state, optimizer, jitted update, data order, checkpoints, loop.

  state = init_train_state(params, make_optimizer(opt_cfg), jax.random.PRNGKey(seed))
  update = make_update_fn(loss_fn, make_optimizer(opt_cfg), nan_policy="raise")
  batcher = EpochBatcher(num_examples, batch_size, seed)
  result = fit(update, state, lambda s: make_batch(batcher.indices(s)), LoopConfig(...),
               workdir, eval_fn=..., config=...)
  params, meta = load_params(f"{workdir}/best_params.npz")   # inference

Guarantees (tested in tests/test_train_*.py, tests/test_checkpoint*.py):
  * kill -9 at any point, then `fit` again with the same arguments: resumes from the newest
    complete checkpoint and ends bit-identical (CPU) to an uninterrupted run.
  * a damaged/partial newest checkpoint is logged, moved aside, and the previous one used;
    a checkpoint of a different model raises CheckpointMismatchError naming the paths and
    both shapes.
  * non-finite loss/gradients never change params; nan_policy="raise" raises
    NonFiniteError(step) before anything later is saved, "skip" skips the batch.
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
from recsys_core.train.update import NonFiniteError
from recsys_core.train.update import check_finite
from recsys_core.train.update import make_update_fn

Checkpointer = CheckpointManager  # alias

__all__ = [
    "CheckpointError", "CheckpointManager", "CheckpointMismatchError", "Checkpointer",
    "EpochBatcher", "FitResult", "LoopConfig", "NonFiniteError", "OptimizerConfig",
    "TIMING_KEYS", "TrainState", "check_finite", "config_diff", "ema_params", "eval_params", "fit",
    "init_train_state", "load_params", "make_optimizer", "make_schedule", "make_update_fn",
    "matrices_only_mask", "params_ema", "plateau_scale",
    "save_params", "verify_checkpoint_dir",
]
