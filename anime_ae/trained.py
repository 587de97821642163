"""A trained autoencoder with everything needed to use it: item space, rating transform,
population popularity; recommendation, explanations and holdout analysis for one profile."""
from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any, Optional, Sequence

import jax
import numpy as np

from anime_ae import analysis, recommend
from anime_ae.config import AEConfig
from anime_ae.model import AEOutput
from anime_ae.profiles import SparseProfiles, dense_batch
from anime_ae.ratings import RatingTransform
from recsys_core.train import load_params, save_params


@functools.lru_cache(maxsize=8)
def _jitted_forward(model_config, num_items: int):
  """One compiled eval forward per architecture (shared by every TrainedAE of it)."""
  tf = model_config.make(num_items)
  return jax.jit(lambda p, xr, xp: tf.apply(p, None, xr, xp, False))


@dataclasses.dataclass(frozen=True)
class Recommendation:
  item: int                 # dense item index
  score: float              # final log ranking score
  prob: float               # presence probability
  rating: float             # predicted rating in stars
  because: tuple = ()       # ((profile item, contribution), ...) strongest first


@dataclasses.dataclass
class TrainedAE:
  config: AEConfig
  params: Any
  transform: RatingTransform
  item_ids: np.ndarray              # [I] original item ids (dense index -> id)
  log_popularity: Optional[np.ndarray] = None  # [I] log mean presence prob over training users
  dataset: str = ""                 # the dataset it was trained on (for item names)

  def save(self, path: str) -> str:
    """One .npz (`recsys_core.train.save_params`, no pickle): params, item ids, popularity,
    with the config and rating transform as JSON metadata."""
    tree = {"params": self.params, "item_ids": np.asarray(self.item_ids)}
    if self.log_popularity is not None:
      tree["log_popularity"] = np.asarray(self.log_popularity)
    return save_params(path, tree, {"config": self.config.to_dict(), "dataset": self.dataset,
                                    "transform": dataclasses.asdict(self.transform)})

  @classmethod
  def load(cls, path: str) -> "TrainedAE":
    tree, meta = load_params(path)
    cfg = AEConfig.from_config_dict(meta["config"])
    return cls(cfg, tree["params"], RatingTransform(**meta["transform"]), tree["item_ids"],
               tree.get("log_popularity"), meta.get("dataset", ""))

  @property
  def num_items(self) -> int:
    return len(self.item_ids)

  @functools.cached_property
  def transformed(self):
    return self.config.model.make(self.num_items)

  @functools.cached_property
  def apply_eval(self):
    return recommend.padded_apply(_jitted_forward(self.config.model, self.num_items), self.params)

  def outputs(self, profiles: SparseProfiles, batch_size: int = 512) -> AEOutput:
    """Eval-mode outputs for every profile (numpy, batched)."""
    outs = []
    for s in range(0, profiles.num_profiles, batch_size):
      b = dense_batch(profiles, np.arange(s, min(s + batch_size, profiles.num_profiles)))
      outs.append(self.apply_eval(b["x_rating"], b["x_presence"]))
    return AEOutput(*[np.concatenate([getattr(o, f) for o in outs]) if f not in (
        "log_var_presence", "log_var_rating") else getattr(outs[0], f) for f in AEOutput._fields])

  def set_population_popularity(self, profiles: SparseProfiles, batch_size: int = 512) -> None:
    """Computes log q (niche boost) from the model's presence output over `profiles`."""
    def gen():
      for s in range(0, profiles.num_profiles, batch_size):
        b = dense_batch(profiles, np.arange(s, min(s + batch_size, profiles.num_profiles)))
        yield b["x_rating"], b["x_presence"]
    self.log_popularity = recommend.population_log_popularity(self.apply_eval, gen())

  # --- one profile ----------------------------------------------------------------------
  def encode_profile(self, items: Sequence[int], stars: Sequence[float]):
    """(items [n], normalised values [n], explicit [n], (mean, std)) of one user's profile.

    `stars` NaN = watched but unrated (filled with the user's mean, not ground truth).
    Defined behaviour for awkward profiles: an index outside [0, num_items) raises
    ValueError naming it; a repeated item keeps its last rating (warning); an empty
    profile is allowed and gives the model's cold-start output (warning).
    """
    items = np.asarray(items, np.int64).reshape(-1)
    stars = np.asarray(stars, np.float32).reshape(-1)
    if len(items) != len(stars):
      raise ValueError(f"{len(items)} items but {len(stars)} ratings")
    bad = items[(items < 0) | (items >= self.num_items)]
    if len(bad):
      raise ValueError(f"profile: item indices {bad[:10].tolist()} outside [0, "
                       f"{self.num_items}) (map original ids with `item_ids` first)")
    _, last = np.unique(items[::-1], return_index=True)
    if len(last) < len(items):
      warnings.warn(f"profile: {len(items) - len(last)} repeated items; the last rating of "
                    "each is used", UserWarning, stacklevel=2)
      keep = np.sort(len(items) - 1 - last)
      items, stars = items[keep], stars[keep]
    if len(items) == 0:
      warnings.warn("profile: empty; recommendations are the model's cold-start output",
                    UserWarning, stacklevel=2)
    users = np.zeros(len(items), np.int64)
    values, in_loss, stats = self.transform.transform(users, stars, 1)
    return items, values, ~np.isnan(stars), (float(stats.mean[0]), float(stats.std[0]))

  def recommend(self, items: Sequence[int], stars: Sequence[float],
                plan_to_watch: Optional[Sequence[int]] = None,
                config: Optional[recommend.RecommendConfig] = None,
                explain: bool = True) -> list[Recommendation]:
    """Top-k recommendations for one profile (never its own items; plan-to-watch filtered)."""
    cfg = config or self.config.recommend
    items, values, _, (mean, std) = self.encode_profile(items, stars)
    xr = np.zeros((1, self.num_items), np.float32)
    xp = np.zeros((1, self.num_items), np.float32)
    xr[0, items] = values
    xp[0, items] = 1.0
    out = self.apply_eval(xr, xp)
    ex = recommend.exclusion_mask(self.num_items, items,
                                  None if plan_to_watch is None else np.asarray(plan_to_watch), cfg)
    scores = recommend.ranking_scores(out.item_logits[0], out.rating_pred[0], cfg,
                                      self.log_popularity, ex)
    top = recommend.top_k(scores, cfg.top_k)
    probs = np.exp(recommend.log_softmax_np(out.item_logits[0]))
    stars_pred = self.transform.denormalize(out.rating_pred[0, top], mean, std)
    contrib = None
    if explain and len(top) and len(items):
      contrib = recommend.explain(self.apply_eval, self.num_items, items, values, top, cfg,
                                  self.log_popularity)
    recs = []
    for r, j in enumerate(top):
      because = ()
      if contrib is not None:
        order = np.argsort(-contrib[r])[:cfg.explain_top]
        because = tuple((int(items[k]), float(contrib[r, k])) for k in order)
      recs.append(Recommendation(int(j), float(scores[j]), float(probs[j]), float(stars_pred[r]),
                                 because))
    return recs

  def holdout(self, items: Sequence[int], stars: Sequence[float]) -> analysis.Holdout:
    """The seed's holdout analysis of one profile, all n held-out copies in one batch."""
    items, values, explicit, _ = self.encode_profile(items, stars)
    return analysis.holdout_profile(self.holdout_fn, items, values, explicit)

  @functools.cached_property
  def holdout_fn(self) -> analysis.HoldoutFn:
    return analysis.fast_holdout_fn(self.config.model, self.params, self.num_items)

  def predict_stars(self, profiles: SparseProfiles, batch_size: int = 512) -> np.ndarray:
    """[U, I] predicted ratings in stars for each profile (via its own rating statistics)."""
    out = self.outputs(profiles, batch_size)
    return self.transform.denormalize(out.rating_pred, profiles.stats.mean, profiles.stats.std)
