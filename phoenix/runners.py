"""Jitted inference runners for the Phoenix ranking and retrieval models.

Interface kept from X's public Phoenix release (shared/docs/phoenix.md §1). Unlike the
release, the runners load trained checkpoints (`checkpoint_path`, a
`recsys_core.train.save_params` file, shape-checked against the model), are jitted, and rank
by a configurable weighted sum of action probabilities rather than by P(favorite) alone.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from phoenix.recsys_model import (PhoenixModelConfig, RecsysBatch, RecsysEmbeddings,
                                  create_example_batch)
from phoenix.recsys_retrieval_model import (PhoenixRetrievalModelConfig, RetrievalOutput,
                                            create_example_corpus)
from recsys_core.train import load_params

__all__ = [
    "ACTIONS", "DEFAULT_ACTION_WEIGHTS", "ModelRunner", "RankingOutput",
    "RecsysInferenceRunner", "RecsysRetrievalInferenceRunner", "RetrievalModelRunner",
    "create_example_batch", "create_example_corpus",
]

ACTIONS = [
    "favorite", "reply", "repost", "photo_expand", "click", "profile_click", "vqv", "share",
    "share_via_dm", "share_via_copy_link", "dwell", "quote", "quoted_click", "follow_author",
    "not_interested", "block_author", "mute_author", "report", "dwell_time",
]

# Default ranking weights: positive engagements add, negative feedback subtracts. Starting
# values to tune on data, not fitted ones.
DEFAULT_ACTION_WEIGHTS: dict[str, float] = {
    "favorite": 1.0, "reply": 2.0, "repost": 1.5, "photo_expand": 0.2, "click": 0.3,
    "profile_click": 0.5, "vqv": 0.3, "share": 1.5, "share_via_dm": 1.5,
    "share_via_copy_link": 1.0, "dwell": 0.5, "quote": 1.5, "quoted_click": 0.3,
    "follow_author": 3.0, "not_interested": -5.0, "block_author": -10.0, "mute_author": -8.0,
    "report": -20.0, "dwell_time": 0.2,
}


class RankingOutput(NamedTuple("_RankingOutput", [
    ("scores", Any), ("ranked_indices", Any), *[(f"p_{a}", Any) for a in ACTIONS],
    ("weighted_scores", Any)])):
  """scores: sigmoid probabilities [B, C, A]; ranked_indices [B, C]: candidates by descending
  weighted score (padded candidates last); p_<action> [B, C] per action; weighted_scores
  [B, C] = scores @ action weights."""


def action_weight_vector(weights: Optional[Mapping[str, float]] = None) -> np.ndarray:
  """[A] float32 weights in ACTIONS order (missing actions weigh 0); None = the defaults."""
  weights = DEFAULT_ACTION_WEIGHTS if weights is None else weights
  unknown = set(weights) - set(ACTIONS)
  if unknown:
    raise ValueError(f"unknown actions in the ranking weights: {sorted(unknown)}")
  return np.array([weights.get(a, 0.0) for a in ACTIONS], np.float32)


@dataclasses.dataclass
class _Runner:
  """Holds a model config; its parameters come from `checkpoint_path` or a fresh init."""
  model: PhoenixModelConfig | PhoenixRetrievalModelConfig
  bs_per_device: float = 2.0
  rng_seed: int = 42
  checkpoint_path: Optional[str] = None

  def example_inputs(self) -> tuple[RecsysBatch, RecsysEmbeddings]:
    """A random batch of the configured shapes (bs_per_device per local device)."""
    cfg = self.model
    hc = cfg.hash_config
    return create_example_batch(
        max(1, int(self.bs_per_device * jax.local_device_count())), cfg.emb_size,
        cfg.history_seq_len, cfg.candidate_seq_len, getattr(cfg, "num_actions", len(ACTIONS)),
        hc.num_user_hashes, hc.num_item_hashes, hc.num_author_hashes,
        cfg.product_surface_vocab_size)

  def _init_fn(self, batch, embeddings):
    raise NotImplementedError

  def load_or_init(self) -> tuple[Any, dict]:
    """(params, metadata): loaded from `checkpoint_path` (shape-checked; CheckpointMismatchError
    if it belongs to another model/config), else initialised with `rng_seed`."""
    init = hk.transform(self._init_fn).init
    rng = jax.random.PRNGKey(self.rng_seed)
    if self.checkpoint_path:
      target = jax.eval_shape(init, rng, *self.example_inputs())
      params, metadata = load_params(self.checkpoint_path, target=target)
      return jax.device_put(params), metadata
    return jax.jit(init)(rng, *self.example_inputs()), {}


@dataclasses.dataclass
class ModelRunner(_Runner):
  """Ranking model runner: `model` is a PhoenixModelConfig."""

  def _init_fn(self, batch, embeddings):
    return self.model.make()(batch, embeddings)

  def apply(self, params, batch: RecsysBatch, embeddings: RecsysEmbeddings) -> jax.Array:
    """Logits [B, C, A] (traceable; call under jit)."""
    return hk.without_apply_rng(hk.transform(self._init_fn)).apply(
        params, batch, embeddings).logits


def _rank(runner: ModelRunner, params, batch: RecsysBatch, embeddings: RecsysEmbeddings,
          weights: jax.Array) -> RankingOutput:
  probs = jax.nn.sigmoid(runner.apply(params, batch, embeddings).astype(jnp.float32))
  weighted = probs @ weights  # [B, C]
  valid = batch.candidate_post_hashes[:, :, 0] != 0
  ranked = jnp.argsort(-jnp.where(valid, weighted, -jnp.inf), axis=-1)
  return RankingOutput(scores=probs, ranked_indices=ranked, weighted_scores=weighted,
                       **{f"p_{a}": probs[..., i] for i, a in enumerate(ACTIONS)})


_RANK_FUNCTIONS: dict[str, Callable[..., RankingOutput]] = {}


def _rank_function(runner: ModelRunner) -> Callable[..., RankingOutput]:
  """The jitted rank of the runner's model config, shared by runners of equal configs (a
  runner for a new checkpoint of the same model does not compile again)."""
  key = repr(runner.model)
  if key not in _RANK_FUNCTIONS:
    _RANK_FUNCTIONS[key] = jax.jit(functools.partial(_rank, runner))
  return _RANK_FUNCTIONS[key]


@dataclasses.dataclass
class RecsysInferenceRunner:
  """Ranks candidates: sigmoid action probabilities, weighted sum, descending order."""
  runner: ModelRunner
  name: str
  action_weights: Optional[Mapping[str, float]] = None

  def initialize(self) -> "RecsysInferenceRunner":
    if self.runner.model.num_actions != len(ACTIONS):
      raise ValueError(f"the model predicts {self.runner.model.num_actions} actions; the "
                       f"runner's outputs name the {len(ACTIONS)} of ACTIONS")
    self.params, self.metadata = self.runner.load_or_init()
    self.set_action_weights(self.action_weights)
    self._rank = _rank_function(self.runner)
    return self

  def set_action_weights(self, action_weights: Optional[Mapping[str, float]]) -> None:
    """Changes the ranking weights (None = DEFAULT_ACTION_WEIGHTS); no recompilation."""
    self.action_weights = action_weights
    self.weights = jnp.asarray(action_weight_vector(action_weights))

  def rank(self, batch: RecsysBatch, recsys_embeddings: RecsysEmbeddings) -> RankingOutput:
    return self._rank(self.params, batch, recsys_embeddings, self.weights)


@dataclasses.dataclass
class RetrievalModelRunner(_Runner):
  """Retrieval model runner: `model` is a PhoenixRetrievalModelConfig."""

  def _init_fn(self, batch, embeddings):
    model = self.model.make()
    return (model.build_user_representation(batch, embeddings),
            model.build_candidate_representation(batch, embeddings))

  def apply_method(self, method: str, params, *args):
    """`PhoenixRetrievalModel.<method>(*args)` with `params` (traceable; call under jit)."""
    fn = lambda *a: getattr(self.model.make(), method)(*a)
    return hk.without_apply_rng(hk.transform(fn)).apply(params, *args)


@dataclasses.dataclass
class RecsysRetrievalInferenceRunner:
  """Encodes users and candidates and retrieves the exact top-k of a corpus."""
  runner: RetrievalModelRunner
  name: str

  def initialize(self) -> "RecsysRetrievalInferenceRunner":
    self.params, self.metadata = self.runner.load_or_init()
    self.corpus_embeddings = self.corpus_post_ids = self.corpus_mask = None
    apply = self.runner.apply_method
    self._encode_user = jax.jit(
        lambda p, b, e: apply("build_user_representation", p, b, e)[0])
    self._encode_candidates = jax.jit(
        lambda p, b, e: apply("build_candidate_representation", p, b, e))
    self._retrieve = jax.jit(
        lambda p, b, e, corpus, mask, top_k: apply("__call__", p, b, e, corpus, top_k, mask),
        static_argnames="top_k")
    return self

  def encode_user(self, batch: RecsysBatch, recsys_embeddings: RecsysEmbeddings) -> jax.Array:
    """User representations [B, D], L2-normalised."""
    return self._encode_user(self.params, batch, recsys_embeddings)

  def encode_candidates(self, batch: RecsysBatch,
                        recsys_embeddings: RecsysEmbeddings) -> tuple[jax.Array, jax.Array]:
    """(candidate representations [B, C, D] L2-normalised, validity mask [B, C])."""
    return self._encode_candidates(self.params, batch, recsys_embeddings)

  def set_corpus(self, corpus_embeddings: np.ndarray, corpus_post_ids: np.ndarray,
                 corpus_mask: Optional[np.ndarray] = None) -> None:
    """Stores the corpus [N, D] (e.g. `encode_candidates` outputs), its post ids [N] and an
    optional [N] bool mask of retrievable items."""
    corpus_embeddings = jnp.asarray(corpus_embeddings, jnp.float32)
    if len(corpus_post_ids) != corpus_embeddings.shape[0]:
      raise ValueError(f"{len(corpus_post_ids)} post ids for {corpus_embeddings.shape[0]} "
                       f"corpus embeddings")
    self.corpus_embeddings = corpus_embeddings
    self.corpus_post_ids = np.asarray(corpus_post_ids)
    self.corpus_mask = None if corpus_mask is None else jnp.asarray(corpus_mask, bool)

  def retrieve(self, batch: RecsysBatch, recsys_embeddings: RecsysEmbeddings,
               top_k: int = 100, corpus_embeddings: Optional[np.ndarray] = None,
               corpus_mask: Optional[np.ndarray] = None) -> RetrievalOutput:
    """Exact top-k over `corpus_embeddings` (default: the `set_corpus` corpus and mask)."""
    if corpus_embeddings is None:
      if self.corpus_embeddings is None:
        raise ValueError("no corpus: call set_corpus() or pass corpus_embeddings")
      corpus_embeddings = self.corpus_embeddings
      corpus_mask = self.corpus_mask if corpus_mask is None else corpus_mask
    if corpus_mask is None:  # one compiled function for masked and unmasked corpora
      corpus_mask = jnp.ones(corpus_embeddings.shape[0], bool)
    return self._retrieve(self.params, batch, recsys_embeddings, corpus_embeddings,
                          corpus_mask, top_k=top_k)

  def post_ids(self, top_k_indices: np.ndarray) -> np.ndarray:
    """Corpus post ids of `retrieve` indices into the `set_corpus` corpus (-1 stays -1)."""
    idx = np.asarray(top_k_indices)
    return np.where(idx >= 0, self.corpus_post_ids[np.maximum(idx, 0)], -1)
