"""Request-level inference for trained Phoenix models: raw item ids in, ranked items out.

The models and batching work on dense item indices and fixed-length, padded arrays; a
serving request holds whatever a caller sends. This module defines what happens to the
awkward cases (BUILD_NOTES.md, "Reliability guarantees"):

  * history longer than the model's `history_len`: the most recent `history_len` items are
    kept (the order is oldest first) and a `PhoenixInputWarning` says how many were dropped;
  * unknown item ids (not in the training vocabulary): `on_unknown="drop"` (default) drops
    them with a warning naming them; `on_unknown="raise"` raises `UnknownItemError`. A
    history whose ids are all unknown is therefore empty;
  * empty history: allowed. The user tower then sees only the user token (the cold-start
    representation), so every empty-history request gets the same ranking. Logged as a
    warning, since it is usually a caller bug;
  * duplicate candidates (ranking): each distinct candidate is scored once (candidate
    isolation makes a candidate's score independent of the others anyway), `score` returns
    a row for every input position (equal rows for duplicates) and `rank` lists each
    distinct candidate once, with a warning;
  * empty candidate list, or no known candidate: `ValueError`.

The models are built from their config, params and item vocabulary alone (no training
code): `PhoenixRetriever` on a `RetrievalScorer` (phoenix.retrieval.scorer), `PhoenixRanker`
on the ranking model's logits (phoenix.ranking.model). `item_authors` gives the items' author
attributes ([I] or [I, F] in vocabulary order, as in training; None = one shared author).

Shape glossary: S history length after truncation, C candidates, A action heads, K top-k,
I items, D embedding size.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from typing import Mapping, Optional, Sequence

import numpy as np

from phoenix.embeddings import make_featurizer
from phoenix.ranking.config import RankingConfig
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.scorer import RetrievalScorer
from phoenix.two_stage import blend
from phoenix.two_stage import ListRanker
from recsys_core import config as config_lib
from recsys_core import runs
from recsys_core.data.sequences import SequenceData
from recsys_core.train.checkpoint import load_params


class PhoenixInputWarning(UserWarning):
  """A request was repaired (truncated, de-duplicated, unknown ids dropped, empty)."""


class UnknownItemError(KeyError):
  """An item id that the model was not trained on (on_unknown="raise")."""

  def __str__(self):
    return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class ItemVocabulary:
  """Original item ids <-> dense indices 0..I-1 (the order of the training data).

  Attributes:
    item_ids: [I] the original id of each dense index (e.g. `Interactions.item_ids`).
  """
  item_ids: np.ndarray

  def __post_init__(self):
    ids = np.asarray(self.item_ids)
    if len(np.unique(ids)) != len(ids):
      raise ValueError("ItemVocabulary: item_ids contain duplicates")
    object.__setattr__(self, "_index", {v: i for i, v in enumerate(ids.tolist())})

  def __len__(self) -> int:
    return len(self.item_ids)

  def lookup(self, ids: Sequence) -> np.ndarray:
    """[n] dense index of each id, -1 where unknown."""
    return np.array([self._index.get(v, -1) for v in np.asarray(ids).tolist()], np.int64)

  def encode(self, ids: Sequence, field: str, on_unknown: str = "drop"
             ) -> tuple[np.ndarray, np.ndarray]:
    """(dense indices [n'] of the known ids, keep mask [n] over the input).

    Unknown ids are dropped with a `PhoenixInputWarning` or raise `UnknownItemError`
    (on_unknown="raise"); `field` names the request field in the message.
    """
    if on_unknown not in ("drop", "raise"):
      raise ValueError(f"on_unknown must be 'drop' or 'raise', got {on_unknown!r}")
    dense = self.lookup(ids)
    keep = dense >= 0
    if not keep.all():
      unknown = np.asarray(ids)[~keep].tolist()
      msg = (f"{field}: {len(unknown)} of {len(ids)} item ids are not in the model's "
             f"vocabulary of {len(self)} items: {unknown[:10]}"
             f"{' ...' if len(unknown) > 10 else ''}")
      if on_unknown == "raise":
        raise UnknownItemError(msg)
      warnings.warn(msg + " (dropped)", PhoenixInputWarning, stacklevel=3)
    return dense[keep].astype(np.int32), keep


def prepare_history(vocab: ItemVocabulary, history: Sequence, history_len: int,
                    ratings: Optional[Sequence[float]] = None, on_unknown: str = "drop"
                    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """A request history (oldest first) -> (dense items [S], ratings [S] or None), S <=
  history_len: unknown ids handled per `on_unknown`, then the most recent `history_len`
  kept. Warns on truncation and on an empty result."""
  if ratings is not None and len(ratings) != len(history):
    raise ValueError(f"history: {len(history)} items but {len(ratings)} ratings")
  items, keep = vocab.encode(history, "history", on_unknown)
  rats = None if ratings is None else np.asarray(ratings, np.float32)[keep]
  if len(items) > history_len:
    warnings.warn(f"history: {len(items)} items is longer than the model's history_len "
                  f"{history_len}; the oldest {len(items) - history_len} were dropped",
                  PhoenixInputWarning, stacklevel=2)
    items = items[-history_len:]
    rats = None if rats is None else rats[-history_len:]
  if len(items) == 0:
    warnings.warn("history: empty (after dropping unknown ids); using the cold-start user "
                  "representation", PhoenixInputWarning, stacklevel=2)
  return items, rats


def _one_user(items: np.ndarray, ratings: Optional[np.ndarray], num_items: int
              ) -> SequenceData:
  return SequenceData([items], None if ratings is None else [ratings], np.ones(1, np.int64),
                      num_items)


def _check_authors(vocab: ItemVocabulary, item_authors: Optional[np.ndarray]) -> None:
  if item_authors is not None and len(item_authors) != len(vocab):
    raise ValueError(f"vocabulary has {len(vocab)} items, item_authors {len(item_authors)}")


class PhoenixRetriever:
  """Top-k recommendations from a trained retrieval model (its config + params)."""

  def __init__(self, cfg: RetrievalConfig, params, vocab: ItemVocabulary,
               item_authors: Optional[np.ndarray] = None):
    _check_authors(vocab, item_authors)
    self.cfg, self.vocab = cfg, vocab
    self.scorer = RetrievalScorer.for_items(cfg, params, len(vocab), item_authors,
                                            batch_size=1)

  @classmethod
  def from_run(cls, run_dir: str, item_authors: Optional[np.ndarray] = None
               ) -> "PhoenixRetriever":
    """The model selected in a run folder of `experiments.train` (phoenix_retrieval): its
    config (config.json), selected params (train/best_params.npz) and items (items.npy).
    A model trained with author attributes needs them as `item_authors`."""
    config = runs.load_config(run_dir)
    model = config.get("model", {})
    if model.get("name") != "phoenix_retrieval":
      raise ValueError(f"{run_dir}: a run of model {model.get('name')!r}, not "
                       "phoenix_retrieval")
    if model.get("author", "none") != "none" and item_authors is None:
      raise ValueError(f"{run_dir}: trained with author attributes {model['author']!r}; "
                       "pass them as item_authors")
    cfg = config_lib.from_dict(RetrievalConfig, model.get("net"), "model.net")
    params, _ = load_params(os.path.join(run_dir, "train", "best_params.npz"))
    return cls(cfg, params, ItemVocabulary(runs.load_items(run_dir)), item_authors)

  def recommend(self, history: Sequence, k: int = 10,
                ratings: Optional[Sequence[float]] = None, exclude_seen: bool = True,
                on_unknown: str = "drop") -> tuple[np.ndarray, np.ndarray]:
    """(original item ids [K], scores [K] descending); seen items excluded by default.

    Exclusion uses the whole request history, not only the kept `history_len` items.
    """
    if int(k) < 1:
      raise ValueError(f"k={k}: must be >= 1")
    items, rats = prepare_history(self.vocab, history, self.cfg.history_len, ratings,
                                  on_unknown)
    user = self.scorer.user_representations(_one_user(items, rats, len(self.vocab)))
    scores = (user @ self.scorer.corpus.T)[0]                              # [I]
    if exclude_seen:
      seen = self.vocab.lookup(history)
      scores = scores.copy()
      scores[seen[seen >= 0]] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    top = np.argsort(-scores, kind="stable")[:k]
    return np.asarray(self.vocab.item_ids)[top], scores[top]


class PhoenixRanker:
  """Scores and ranks a candidate list with a trained ranking model (its config + params).

  action_weights: the ranking score's weight per action head (default: the config's).
  """

  def __init__(self, cfg: RankingConfig, params, vocab: ItemVocabulary,
               action_weights: Optional[Mapping[str, float]] = None,
               item_authors: Optional[np.ndarray] = None):
    _check_authors(vocab, item_authors)
    self.cfg, self.params, self.vocab = cfg, params, vocab
    self.lists = ListRanker(cfg, params, make_featurizer(cfg.emb, item_authors), batch_size=1)
    self.weights = (cfg.weight_vector() if action_weights is None
                    else RankingConfig(
                        score_weights=tuple(action_weights.items())).weight_vector())

  def score(self, history: Sequence, candidates: Sequence,
            ratings: Optional[Sequence[float]] = None, on_unknown: str = "drop",
            retrieval_scores: Optional[Sequence[float]] = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """(kept candidate ids [C'], probabilities [C', A]) in input order; duplicates kept
    (scored once, equal rows); unknown candidates handled per `on_unknown`.
    retrieval_scores [C]: the candidates' retrieval scores, for a model trained with them
    (phoenix_two_stage's retrieval_feature)."""
    if len(candidates) == 0:
      raise ValueError("candidates: empty list")
    items, rats = prepare_history(self.vocab, history, self.cfg.history_len, ratings,
                                  on_unknown)
    cand, keep = self.vocab.encode(candidates, "candidates", on_unknown)
    if len(cand) == 0:
      raise ValueError("candidates: none of the ids is in the model's vocabulary")
    unique, inverse = np.unique(cand, return_inverse=True)
    # Pad to a power of two (>= 8) so that serving compiles once per size class.
    width = max(8, 1 << int(np.ceil(np.log2(len(unique)))))
    c_items = np.full((1, width), -1, np.int32)                            # [1, C_pad]
    c_items[0, :len(unique)] = unique
    r_pad = None
    if retrieval_scores is not None:
      if len(retrieval_scores) != len(candidates):
        raise ValueError(f"retrieval_scores: {len(retrieval_scores)} scores for "
                         f"{len(candidates)} candidates")
      _, first = np.unique(cand, return_index=True)
      r_pad = np.zeros((1, width), np.float32)
      r_pad[0, :len(unique)] = np.asarray(retrieval_scores, np.float32)[keep][first]
    probs = self.lists.probs(_one_user(items, rats, len(self.vocab)), c_items,
                             r_pad)[0, :len(unique)]                       # [C_unique, A]
    kept_ids = np.asarray(candidates)[keep]
    return kept_ids, probs[inverse.reshape(-1)]

  def rank(self, history: Sequence, candidates: Sequence,
           ratings: Optional[Sequence[float]] = None, on_unknown: str = "drop"
           ) -> tuple[np.ndarray, np.ndarray]:
    """(distinct candidate ids [C''] by descending weighted score, scores [C''])."""
    ids, probs = self.score(history, candidates, ratings, on_unknown)
    _, first = np.unique(ids, return_index=True)
    if len(first) < len(ids):
      warnings.warn(f"candidates: {len(ids) - len(first)} duplicates; each distinct "
                    "candidate is ranked once", PhoenixInputWarning, stacklevel=2)
    first = np.sort(first)
    scores = probs[first] @ self.weights                                   # [C'']
    order = np.argsort(-scores, kind="stable")
    return ids[first][order], scores[order]


class TwoStageRecommender:
  """Retrieval's top `num_candidates` (seen items excluded), reordered by the ranking model:
  the order score is `phoenix.two_stage.blend` of both stages' scores with weight `alpha`
  (1 = the retrieval order), exactly as the pipeline evaluated it. Requests are handled as
  by PhoenixRetriever (truncation, unknown ids, empty history)."""

  def __init__(self, retriever: PhoenixRetriever, ranker: PhoenixRanker,
               num_candidates: int = 50, alpha: float = 0.5):
    if len(retriever.vocab) != len(ranker.vocab):
      raise ValueError(f"retriever has {len(retriever.vocab)} items, ranker "
                       f"{len(ranker.vocab)}: both stages need the same vocabulary")
    if int(num_candidates) < 1:
      raise ValueError(f"num_candidates={num_candidates}: must be >= 1")
    blend(np.zeros(1), np.zeros(1), alpha)                                 # checks alpha
    self.retriever, self.ranker = retriever, ranker
    self.num_candidates, self.alpha = int(num_candidates), float(alpha)

  @classmethod
  def from_run(cls, run_dir: str, item_authors: Optional[np.ndarray] = None
               ) -> "TwoStageRecommender":
    """The two stages selected in a phoenix_two_stage run folder (config.json,
    train/two_stage.json with the selected alpha and both stages' params, items.npy)."""
    config = runs.load_config(run_dir)
    model = config.get("model", {})
    if model.get("name") != "phoenix_two_stage":
      raise ValueError(f"{run_dir}: a run of model {model.get('name')!r}, not "
                       "phoenix_two_stage")
    state_path = os.path.join(run_dir, "train", "two_stage.json")
    if not os.path.exists(state_path):
      raise FileNotFoundError(f"{state_path}: not found (the run has not finished)")
    with open(state_path) as f:
      state = json.load(f)
    vocab = ItemVocabulary(runs.load_items(run_dir))
    if model.get("retrieval_run"):
      net = runs.load_config(model["retrieval_run"])["model"]["net"]
    else:
      net = model["retrieval"]["net"]
    r_cfg = config_lib.from_dict(RetrievalConfig, net, "model.retrieval.net")
    k_cfg = RankingConfig.from_dict(model["ranker"])
    r_params, _ = load_params(state["retrieval_params"])
    k_params, _ = load_params(state["ranker_params"])
    return cls(PhoenixRetriever(r_cfg, r_params, vocab, item_authors),
               PhoenixRanker(k_cfg, k_params, vocab, item_authors=item_authors),
               state["num_candidates"], state["alpha"])

  def recommend(self, history: Sequence, k: int = 10,
                ratings: Optional[Sequence[float]] = None, on_unknown: str = "drop"
                ) -> tuple[np.ndarray, np.ndarray]:
    """(original item ids [K], order scores [K] descending), seen items excluded."""
    if int(k) < 1:
      raise ValueError(f"k={k}: must be >= 1")
    ids, retrieval = self.retriever.recommend(history, self.num_candidates, ratings,
                                              exclude_seen=True, on_unknown=on_unknown)
    with warnings.catch_warnings():      # the retriever has already warned about the request
      warnings.simplefilter("ignore", PhoenixInputWarning)
      _, probs = self.ranker.score(history, ids, ratings, on_unknown="drop",
                                   retrieval_scores=retrieval)
    order = blend(retrieval, probs @ self.ranker.weights, self.alpha)      # [K']
    top = np.argsort(-order, kind="stable")[:int(k)]
    return ids[top], order[top].astype(np.float32)
