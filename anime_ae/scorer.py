"""The autoencoder on the shared `recsys_core.scoring.Scorer` interface.

`fit(train)` builds sparse profiles of the training users (hybrid rating transform; rows with
NaN rating are "watched, not rated"; implicit data without ratings trains the presence head
only), trains, and computes the population popularity. `score(inputs)` returns, per input user,
scores over all items: the presence logits (`ranking="presence"`, the default for the ranking
protocols, whose targets are presence) or the unified log score with the configured mix and
niche boost (`ranking="unified"`). Seen-item exclusion is the evaluator's.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import numpy as np

from anime_ae import recommend, training
from anime_ae.config import AEConfig
from anime_ae.profiles import SparseProfiles, build_profiles, filter_profiles
from anime_ae.trained import TrainedAE
from recsys_core.data.types import Interactions

log = logging.getLogger(__name__)

RANKINGS = ("presence", "unified")


class AutoencoderScorer:
  """Scorer protocol implementation (fit on training interactions, score inputs)."""

  def __init__(self, config: AEConfig, ranking: str = "presence", name: str = "anime_ae",
               workdir: Optional[str] = None):
    if ranking not in RANKINGS:
      raise ValueError(f"ranking must be one of {RANKINGS}, got {ranking!r}")
    self.config = config
    self.ranking = ranking
    self.name = name
    self.workdir = workdir
    self.model: Optional[TrainedAE] = None
    self.history: list[dict] = []

  def profiles(self, x: Interactions) -> SparseProfiles:
    if self.model is None:
      raise RuntimeError(f"{self.name}: fit (or load) before scoring")
    if x.num_items != self.model.num_items:
      raise ValueError(f"{x.source}: {x.num_items} items, the model has {self.model.num_items}")
    return build_profiles(x, self.model.transform, self._dropped(x))

  def _dropped(self, x: Interactions) -> Optional[np.ndarray]:
    """[N] bool rows to treat as dropped: the unrated ones when
    config.data.treat_unrated_as_dropped (an ablation), else None (nothing dropped)."""
    if not self.config.data.treat_unrated_as_dropped or x.ratings is None:
      return None
    return np.isnan(x.ratings)

  def fit(self, train: Interactions,
          validate: Optional[Callable[["AutoencoderScorer"], dict]] = None,
          best_metric: Optional[str] = None) -> "AutoencoderScorer":
    """Trains on `train`. With `validate(scorer) -> metrics` and `best_metric`, keeps the
    params of the best validation evaluation (every config.train.eval_every steps)."""
    transform = self.config.ratings.make(train.ratings)
    profiles = build_profiles(train, transform, self._dropped(train))
    keep = filter_profiles(train, self.config.data.min_ratings)
    keep = keep[profiles.lengths()[keep] > 0]
    if len(keep) == 0:
      raise ValueError(f"{train.source}: no profile has >= {self.config.data.min_ratings} ratings")
    profiles = profiles.subset(keep)
    log.info("%s: training on %d profiles x %d items", self.name, profiles.num_profiles,
             profiles.num_items)
    eval_fn = None
    if validate is not None:
      eval_fn = lambda params: validate(self._with_params(params, transform, train))
    result = training.train(profiles, self.config, self.workdir, eval_fn, best_metric)
    self.history = result.history
    self.best_step = result.best_step
    self.model = TrainedAE(self.config, result.params, transform, np.asarray(train.item_ids))
    self.model.set_population_popularity(profiles)
    return self

  def _with_params(self, params, transform, train) -> "AutoencoderScorer":
    other = AutoencoderScorer(self.config, self.ranking, self.name)
    other.model = TrainedAE(self.config, params, transform, np.asarray(train.item_ids))
    return other

  def score(self, inputs: Interactions) -> np.ndarray:
    profiles = self.profiles(inputs)  # raises before fit
    out = self.model.outputs(profiles)
    if self.ranking == "presence":
      return np.asarray(out.item_logits, np.float32)
    cfg = self.config.recommend
    return recommend.ranking_scores(out.item_logits, out.rating_pred, cfg,
                                    self.model.log_popularity).astype(np.float32)

  def predict_stars(self, inputs: Interactions) -> np.ndarray:
    """[U_in, I] predicted ratings in stars given each input user's profile."""
    return self.model.predict_stars(self.profiles(inputs))
