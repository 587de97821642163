"""The two-stage Phoenix recommender as a pipeline model (`model.name=phoenix_two_stage`).

  1. retrieval  trained first, in <run>/train/retrieval (phoenix.retrieval.adapter, its own
                schedule and selection), or taken from a finished phoenix_retrieval run
                folder on the same split (`retrieval_run`);
  2. ranking    the ranking transformer trained on candidate lists built the way the second
                stage sees them: each list is a training user's history s[:t], the true next
                engagement(s) s[t:t+P] and `ranker.num_negatives` negatives, of which
                `num_hard_negatives` are drawn from the retrieval model's top
                `num_candidates` for s[:t] (items of s never), the rest uniformly or by
                popularity (`ranker.negative_sampler`). With `retrieval_feature`, each
                candidate's retrieval score enters the ranker's logits (two_stage.fused_logits:
                a trained weight per head on the retrieval logit), so the ranker learns a
                residual on retrieval's order. A retrieval model has seen every training
                next item as a target, so on training prefixes its shortlist and scores are
                far better than on new data; with `held_out_items` = m > 0 a second retrieval
                model is trained without each user's last m training items, and the
                ranker's lists are only those m positions, shortlisted and scored by it (the
                first stage's view of data it has not fitted, as at serving). Labels: click
                for every true
                engagement; favorite / not_interested from ratings where the data has them
                (`ranker.high_threshold` / `low_threshold`);
  3. selection  every evaluation scores the validation users with the two stages
                (phoenix.two_stage.TwoStageScorer) at each blend weight in `alphas`; the
                ranker params and alpha of the best selection metric are kept.

The test record carries retrieval alone on the same users (`retrieval/<metric>`), so the
two-stage gain is paired. Schedules are in epochs of training lists (one per training user
with two or more items), converted to steps from the data as in phoenix.retrieval.adapter.

Shape glossary: B lists, P positives per list, N negatives per list, K candidates, I items.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

import haiku as hk
import jax
import numpy as np

from phoenix import batching
from phoenix import losses
from phoenix.embeddings import make_featurizer
from phoenix.ranking.config import RankingConfig
from phoenix.ranking.model import transform_logits
from phoenix.retrieval import adapter as retrieval_adapter
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.scorer import RetrievalScorer
from phoenix.two_stage import fused_logits, init_fusion, ListRanker, TwoStageScorer
from phoenix.two_stage import top_candidates
from recsys_core import config as config_lib
from recsys_core import runs
from recsys_core import train as train_lib
from recsys_core.config import check
from recsys_core.data.sequences import item_popularity
from recsys_core.data.sequences import SequenceData
from recsys_core.data.types import Interactions
from recsys_core.models.base import FitContext, Fitted, fit_selecting
from recsys_core.train.checkpoint import load_params

RUN_ONLY = tuple(f"retrieval.{f}" for f in retrieval_adapter.RUN_ONLY) + (
    "train.max_seconds", "train.log_every", "train.checkpoint_every_epochs",
    "train.eval_online_params")
STATE_FILE = "two_stage.json"    # <run>/train/two_stage.json: what serving needs to know


@dataclasses.dataclass(frozen=True)
class Config:
  """retrieval: the first stage (ignored with retrieval_run); ranker: the ranking model and
  its list sizes; num_candidates: K, the retrieval shortlist the ranker orders;
  num_hard_negatives: of ranker.num_negatives, how many come from that shortlist; alphas:
  the blend weights selection tries (1.0 = retrieval order)."""
  retrieval: retrieval_adapter.Config = retrieval_adapter.Config()
  retrieval_run: Optional[str] = None
  ranker: RankingConfig = RankingConfig(
      user_mode="shared", history_len=50, num_positives=1, num_negatives=31,
      score_weights=(("click", 1.0),))
  num_candidates: int = 50
  num_hard_negatives: int = 24
  alphas: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)
  retrieval_feature: bool = True
  held_out_items: int = 0
  optimizer: train_lib.OptimizerConfig = train_lib.OptimizerConfig(b2=0.98)
  train: retrieval_adapter.TrainConfig = retrieval_adapter.TrainConfig(
      num_epochs=20.0, eval_every_epochs=2.0)

  def __post_init__(self):
    check(self.num_candidates >= 1, "model.num_candidates", self.num_candidates, ">= 1")
    check(0 <= self.num_hard_negatives <= min(self.num_candidates, self.ranker.num_negatives),
          "model.num_hard_negatives", self.num_hard_negatives,
          f"in [0, min(num_candidates, ranker.num_negatives)] = "
          f"[0, {min(self.num_candidates, self.ranker.num_negatives)}]")
    check(self.held_out_items >= 0, "model.held_out_items", self.held_out_items,
          ">= 0 (0: lists on the first stage's own training prefixes)")
    check(self.ranker.num_positives >= 1, "model.ranker.num_positives",
          self.ranker.num_positives, ">= 1")
    check(len(self.alphas) >= 1 and all(0.0 <= a <= 1.0 for a in self.alphas),
          "model.alphas", self.alphas, "one or more weights in [0, 1]")
    for name in ("warmup_steps", "decay_steps"):
      check(getattr(self.optimizer, name) == 0, f"model.optimizer.{name}",
            getattr(self.optimizer, name), "0: set model.train.*_epochs instead")


def _retrieval_from_run(run_dir: str, ctx: FitContext, authors) -> tuple[RetrievalScorer, dict]:
  """The selected retrieval model of a finished phoenix_retrieval run on the same split."""
  config = runs.load_config(run_dir)
  model = config.get("model", {})
  if model.get("name") != "phoenix_retrieval":
    raise ValueError(f"model.retrieval_run={run_dir}: a run of {model.get('name')!r}, not "
                     "phoenix_retrieval")
  stored = runs.load_data_fingerprint(run_dir)
  if ctx.split_fingerprint and stored != ctx.split_fingerprint:
    raise ValueError(f"model.retrieval_run={run_dir}: trained on split {stored}, this run's "
                     f"split is {ctx.split_fingerprint} (another dataset, protocol or seed)")
  cfg = config_lib.from_dict(RetrievalConfig, model.get("net"), "model.net")
  params, _ = load_params(os.path.join(run_dir, "train", "best_params.npz"))
  scorer = RetrievalScorer.for_items(cfg, params, ctx.train.num_items, authors)
  return scorer, {"retrieval_run": run_dir, "retrieval_author": model.get("author", "none")}


class ListSource:
  """Training lists of the module docstring, a pure function of (seed, step)."""

  def __init__(self, config: Config, data: SequenceData, retrieval: RetrievalScorer,
               featurizer: batching.Featurizer, seed: int):
    """retrieval: the model that shortlists and scores the lists (with held_out_items, the
    one trained without the held-out items)."""
    self.config, self.data, self.retrieval = config, data, retrieval
    self.featurizer, self.seed = featurizer, seed
    self.bcfg = config.ranker.batching_config()
    self.rows = np.flatnonzero(data.lengths() >= 2)                        # training users
    # Cuts t of user u's lists: [first_cut[u], n_u); with held_out_items only the last m.
    m = config.held_out_items
    self.first_cut = (np.maximum(1, data.lengths() - m) if m else np.ones(data.num_users,
                                                                          np.int64))
    self.negative_probs = None
    if config.ranker.negative_sampler == "popularity":
      counts = item_popularity(data)
      self.negative_probs = (counts + 1.0) / (counts + 1.0).sum()

  def cuts(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[B] a random cut t per list: history s[:t], positives from s[t]."""
    return np.array([rng.integers(self.first_cut[u], len(self.data.sequences[u]))
                     for u in users], np.int64)

  def retrieval_scores(self, users: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """[B, I] retrieval scores of every item for the histories s[:t]."""
    prefixes = SequenceData([self.data.sequences[u][:t] for u, t in zip(users, cuts)], None,
                            self.data.user_ids[users], self.data.num_items)
    return self.retrieval.user_representations(prefixes) @ self.retrieval.corpus.T

  def hard_negatives(self, users: np.ndarray, scores: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """[B, H] `num_hard_negatives` of the top-K of `scores` [B, I], items of s excluded."""
    h = self.config.num_hard_negatives
    if h == 0:
      return np.zeros((len(users), 0), np.int32)
    top = top_candidates(scores, [self.data.sequences[u] for u in users],
                         self.config.num_candidates)                      # [B, K]
    pick = np.argsort(rng.random(top.shape), axis=1)[:, :h]                # h of the K
    return np.take_along_axis(top, pick, axis=1)

  def batch(self, rows: np.ndarray, step: int) -> dict:
    rng = np.random.default_rng([self.seed, 23, step])
    users = self.rows[rows]
    cuts = self.cuts(users, rng)
    r = self.config.ranker
    scores = self.retrieval_scores(users, cuts)                            # [B, I]
    ex = batching.ranking_batch(self.data, users, cuts, self.bcfg, r.num_positives,
                                r.num_negatives, rng, self.negative_probs,
                                hard_negatives=self.hard_negatives(users, scores, rng))
    cand = ex.ids.candidate_items                                          # [B, C]
    retrieval = np.where(cand >= 0, np.take_along_axis(scores, np.maximum(cand, 0), axis=1),
                         0.0).astype(np.float32)
    return {"batch": self.featurizer(ex.ids), "labels": ex.labels, "mask": ex.mask,
            "retrieval": retrieval}


def without_last(x: Interactions, data: SequenceData, m: int) -> Interactions:
  """`x` less each user's last m items (in sequence order; at least one item is kept)."""
  keep = [seq[:max(1, len(seq) - m)] for seq in data.sequences]
  lengths = np.array([len(k) for k in keep])
  ratings = None
  if data.ratings is not None:
    ratings = np.concatenate([r[:n] for r, n in zip(data.ratings, lengths)]).astype(np.float32)
  return Interactions(
      users=np.repeat(np.arange(data.num_users), lengths).astype(np.int32),
      items=np.concatenate(keep).astype(np.int32), ratings=ratings,
      order=np.concatenate([np.arange(n) for n in lengths]).astype(np.int64),
      user_ids=x.user_ids, item_ids=x.item_ids,
      source=f"{x.source} without each user's last {m} item(s)")


def select_alpha(scorer: TwoStageScorer, alphas, ctx: FitContext) -> tuple[float, dict]:
  """(alpha, validation metrics) of the best selection metric over `alphas` (ties: the
  first); every alpha's metric is reported as alpha/<alpha>."""
  best, best_metrics, by_alpha = None, None, {}
  for alpha in alphas:
    scorer.alpha = float(alpha)
    metrics = dict(ctx.validate(scorer))
    by_alpha[f"alpha/{alpha:g}"] = metrics[ctx.selection_metric]
    if best is None or metrics[ctx.selection_metric] > best_metrics[ctx.selection_metric]:
      best, best_metrics = float(alpha), metrics
  scorer.clear_cache()
  scorer.alpha = best
  return best, {**best_metrics, "alpha": best, **by_alpha}


def fit(config: Config, ctx: FitContext) -> Fitted:
  """Trains (or loads) retrieval, then the ranker on its candidates; see the docstring."""
  data = SequenceData.from_interactions(ctx.train)
  r_cfg = config.retrieval
  if config.retrieval_run:
    author = runs.load_config(config.retrieval_run).get("model", {}).get("author", "none")
    authors, author_info = retrieval_adapter.item_authors(author, ctx)
    retrieval, retrieval_info = _retrieval_from_run(config.retrieval_run, ctx, authors)
  else:
    authors, author_info = retrieval_adapter.item_authors(r_cfg.author, ctx)
    sub = dataclasses.replace(ctx, run_dir=os.path.join(ctx.run_dir, "retrieval"))
    fitted = retrieval_adapter.fit(r_cfg, sub)
    retrieval, retrieval_info = fitted.scorer, dict(fitted.info)
  retrieval_val = {k: v for k, v in ctx.validate(retrieval).items()}
  list_retrieval = retrieval
  if config.held_out_items:
    if config.retrieval_run:
      raise ValueError("model.held_out_items > 0 trains a second retrieval model in this run; "
                       "it cannot be combined with model.retrieval_run")
    sub = dataclasses.replace(ctx, train=without_last(ctx.train, data, config.held_out_items),
                              run_dir=os.path.join(ctx.run_dir, "retrieval_held_out"))
    list_retrieval = retrieval_adapter.fit(r_cfg, sub).scorer

  featurizer = make_featurizer(config.ranker.emb, authors)
  lists = ListSource(config, data, list_retrieval, featurizer, ctx.seed)
  if not len(lists.rows):
    raise ValueError(f"{ctx.train.source}: no user has 2 or more training items")
  tc = config.train
  batch_size = min(tc.batch_size, len(lists.rows))
  batcher = train_lib.EpochBatcher(len(lists.rows), batch_size, ctx.seed)
  sched = retrieval_adapter.schedule(tc, batcher.steps_per_epoch)
  optimizer = retrieval_adapter.scheduled_optimizer(config.optimizer, sched)
  transformed = hk.without_apply_rng(transform_logits(config.ranker))
  logits_fn = jax.jit(transformed.apply)

  def loss_fn(params, rng, batch):
    del rng
    logits = logits_fn(params["phoenix"], batch["batch"])                  # [B, C, A]
    if config.retrieval_feature:
      logits = fused_logits(logits, batch["retrieval"], params["fusion"])
    return losses.multi_label_sigmoid_loss(logits, batch["labels"], batch["mask"]), {}

  def batch_fn(step: int) -> dict:
    return lists.batch(batcher.indices(step), step)

  params = {"phoenix": transformed.init(jax.random.PRNGKey(ctx.seed), batch_fn(0)["batch"])}
  if config.retrieval_feature:
    temperature = float(losses.temperature_from_log(
        list_retrieval.params["loss"]["log_temperature"]))
    params["fusion"] = init_fusion(temperature, batching.NUM_ACTIONS)
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(ctx.seed + 1))
  update = train_lib.make_update_fn(loss_fn, optimizer, nan_policy="raise")

  def two_stage(p) -> TwoStageScorer:
    return TwoStageScorer(retrieval, ListRanker(config.ranker, p, featurizer,
                                                logits_fn=logits_fn),
                          config.num_candidates, cache_size=64)

  def eval_fn(p) -> dict[str, float]:
    return select_alpha(two_stage(p), config.alphas, ctx)[1]

  result = fit_selecting(
      update, state, batch_fn, ctx, eval_fn, num_steps=sched.num_steps,
      eval_every=sched.eval_every, checkpoint_every=sched.checkpoint_every,
      log_every=tc.log_every, patience=tc.patience, max_seconds=tc.max_seconds,
      eval_online_params=tc.eval_online_params, config=dataclasses.asdict(config))
  scorer = two_stage(result.selected_params)
  alpha, val = select_alpha(scorer, config.alphas, ctx)
  state_file = {"alpha": alpha, "num_candidates": config.num_candidates,
                "retrieval_params": os.path.join(
                    config.retrieval_run, "train", "best_params.npz") if config.retrieval_run
                else os.path.join(ctx.run_dir, "retrieval", "best_params.npz"),
                "ranker_params": os.path.join(ctx.run_dir, "best_params.npz")}
  with open(os.path.join(ctx.run_dir, STATE_FILE), "w") as f:
    json.dump(state_file, f, indent=1)
  info: dict[str, Any] = {
      "val": val, "alpha": alpha, "retrieval_val": retrieval_val,
      "retrieval": retrieval_info, "author_info": author_info,
      "best_step": result.best_step, "final_step": int(result.state.step),
      "steps_per_epoch": sched.steps_per_epoch, "schedule": dataclasses.asdict(sched),
      "batch_size": batch_size, "train_seconds": round(result.train_seconds, 1),
      # Per evaluation: the selection metric at every alpha (alpha/0: the ranker alone).
      "eval_history": [{k: r[k] for k in r
                        if k in ("step", ctx.selection_metric) or k.startswith("alpha")}
                       for r in result.history if r["event"] == "eval"]}
  return Fitted(scorer, info, companions={"retrieval": retrieval})
