"""`RetrievalScorer`: a trained retrieval model behind `recsys_core.scoring.Scorer`.

scores = <user, item>: the user representation is `build_user_representation` of the input
history (the most recent `history_len` items); the items are the candidate tower over every
item, computed once. Built from the config, the params and the featurized corpus, without
any training code: serving (phoenix.inference) and evaluation
(`recsys_core.evaluation.evaluate_leave_one_out`, which ranks with seen items excluded) use
the same scorer; `RetrievalTask.scorer(params)` builds one that shares the task's
featurizer, corpus and jitted functions.

Shape glossary: B batch (users per call), S history length, I items, D embedding size.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from phoenix import batching
from phoenix.embeddings import make_featurizer
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.model import RetrievalFns
from recsys_core.data.sequences import SequenceData
from recsys_core.data.types import Interactions


def make_corpus_batch(featurizer: batching.Featurizer, num_items: int):
  """The candidate tower's input for every item: a `RecsysBatch` of one row whose C = I
  candidates are items 0..I-1, as device arrays."""
  all_items = np.arange(num_items, dtype=np.int32)
  return jax.tree.map(jnp.asarray, featurizer.candidates_only(all_items))


class RetrievalScorer:
  """`recsys_core.scoring.Scorer` over a trained retrieval model: scores = <user, item>.

  The user representation is `build_user_representation` of the input history (the most
  recent `history_len` items); items are the candidate tower over every item.

  Attributes:
    corpus: [I, D] float32 item representations.
  """

  name = "phoenix_retrieval"

  def __init__(self, cfg: RetrievalConfig, params, featurizer: batching.Featurizer,
               corpus_batch, batch_size: int = 256, fns: Optional[RetrievalFns] = None):
    """cfg, params: the model; featurizer: ids -> hashes (phoenix.embeddings); corpus_batch:
    `make_corpus_batch` of the items; fns: the model's functions (default: built from cfg;
    pass them to share the compiled functions between scorers)."""
    self.cfg = cfg
    self.params = params
    self.featurizer = featurizer
    self.batch_size = batch_size
    self.bcfg = cfg.batching_config()
    fns = fns or RetrievalFns(cfg)
    p = params["phoenix"]
    self._users = jax.jit(fns.users)
    corpus, _ = jax.jit(fns.candidates)(p, corpus_batch)
    self.corpus = np.asarray(corpus[0], np.float32)               # [I, D]

  @classmethod
  def for_items(cls, cfg: RetrievalConfig, params, num_items: int,
                item_authors: Optional[np.ndarray] = None, batch_size: int = 256
                ) -> "RetrievalScorer":
    """A scorer over items 0..I-1 (I = num_items) with their author attributes ([I] or
    [I, F], as in training; None = one shared author)."""
    featurizer = make_featurizer(cfg.emb, item_authors)
    return cls(cfg, params, featurizer, make_corpus_batch(featurizer, num_items), batch_size)

  def fit(self, train: Interactions) -> "RetrievalScorer":
    del train
    return self

  def user_representations(self, data: SequenceData) -> np.ndarray:
    """[U, D] user representations of the users' full sequences (the most recent
    history_len items of each)."""
    out = []
    p = self.params["phoenix"]
    for start in range(0, data.num_users, self.batch_size):
      users = np.arange(start, min(start + self.batch_size, data.num_users))
      ids = batching.history_batch(data, users, self.bcfg)
      batch = batching.pad_batch(self.featurizer(ids), self.batch_size)
      reps = np.asarray(self._users(p, batch), np.float32)[:len(users)]
      out.append(reps)
    return np.concatenate(out) if out else np.zeros((0, self.corpus.shape[1]), np.float32)

  def score(self, inputs: Interactions) -> np.ndarray:
    data = SequenceData.from_interactions(inputs)
    return self.user_representations(data) @ self.corpus.T
