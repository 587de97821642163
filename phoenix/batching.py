"""From interaction data to Phoenix `RecsysBatch`es (host-side numpy).

Two layers:
  1. *Id batches* (`IdBatch`): dense item indices, user ids, multi-hot actions and product
     surfaces, built from per-user sequences with the rules below. Pure numpy, testable
     without a model.
  2. *Featurisation* (`Featurizer`): ids -> hashes -> `RecsysBatch` (the model's input);
     the embedding lookup (hashes -> `RecsysEmbeddings`) happens inside the model
     function through `phoenix.hashing`.

Rules (all configurable through `BatchingConfig`):
  * Items. Dense item index i (0..I-1) is the post id i+1 (post id 0 is padding).
  * Authors. One "author" per item from an item attribute where the data has one
    (Amazon: brand or a category from `*_item2attributes.json`; ML-1M: the first genre of
    movies.dat; anime: the first genre; ml-latest-small: the first genre of movies.csv),
    given as `item_authors [I]` with 0 = unknown. Author id = attribute + 1, so every
    item has a non-padding author; items with an unknown attribute share author id 1.
    Without attributes every item has the single shared author 1. Several attributes
    (`item_authors [I, F]`, e.g. Amazon brand and leaf category) split the author hash
    slots between them: field f fills slots f*n/F .. (f+1)*n/F - 1 of the n =
    num_author_hashes slots with hashes of its own id (offset by f * FIELD_ID_STRIDE, so
    equal attribute values of different fields are different ids).
  * Users. `user_mode="id"`: the user's original id is hashed (a learned per-user
    embedding); "shared": every user is user 1 (the model sees only the history).
  * History actions, multi-hot over `phoenix.runners.ACTIONS` (19 heads):
      - every interaction sets `click`;
      - with ratings: rating >= high_threshold sets `favorite`, rating <= low_threshold
        sets `not_interested` (unrated interactions, NaN, set click only);
      - pure sequences (no ratings): click only.
  * Product surface: a constant (`product_surface`, default 1) for every history item
    and candidate; none of our data sets record a surface.
  * Length. Histories keep the most recent `history_len` items (truncation from the left)
    and are padded to `history_len` (post id 0, no action bits, surface 0). Right padding
    (default; valid items at positions 0..n-1, oldest first) keeps a prefix's positions
    identical whether or not later items are present, which is what makes the all-prefix
    retrieval training below exact. Left padding (valid items at the end) puts the most
    recent item right before the candidates, whatever the history length: used for
    ranking, where every candidate sits at the position after the history.

Retrieval training on every prefix (`retrieval_training_batch`): the retrieval user tower is
a *causal* transformer over [user | history] followed by a masked mean. For a window of
L+1 consecutive items x_0..x_L, the history is x_0..x_{L-1} and the target of prefix
x_0..x_t is x_{t+1}. Because attention is causal, the tower's per-position outputs for the
full window equal those of every prefix on its own, and the masked mean over a prefix is a
cumulative sum divided by a count; `phoenix.retrieval.task` therefore trains all L prefixes
of a window with one transformer pass (`targets [B, L]`, -1 where no target). The window is
the most recent one of the training sequence (`window="last"`, as SASRec does) or, for longer
sequences, a random one per epoch (`window="random"`): `recsys_core.data.sequences.
next_item_window`.

The per-user sequences (`SequenceData`) and the generic window helpers live in
`recsys_core.data.sequences`; this module adds what is Phoenix's own: actions, product
surfaces, hashes and the `RecsysBatch` layout.

Shape glossary: B batch, S history length (history_len), C candidates, A action heads (19),
I items, F author fields.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from recsys_core.data.sequences import next_item_window
from recsys_core.data.sequences import SequenceData

# The 19 engagement heads, in the order of phoenix.runners.ACTIONS (tests check equality).
ACTIONS = ("favorite", "reply", "repost", "photo_expand", "click", "profile_click", "vqv",
           "share", "share_via_dm", "share_via_copy_link", "dwell", "quote", "quoted_click",
           "follow_author", "not_interested", "block_author", "mute_author", "report",
           "dwell_time")
NUM_ACTIONS = len(ACTIONS)
FAVORITE = ACTIONS.index("favorite")
CLICK = ACTIONS.index("click")
NOT_INTERESTED = ACTIONS.index("not_interested")


@dataclasses.dataclass(frozen=True)
class ActionRules:
  """How interactions become multi-hot action bits (see the module docstring).

  Thresholds are on the data's own rating scale (ml-latest-small: 0.5-5, anime: 1-10);
  None disables the head.
  """
  high_threshold: Optional[float] = 4.0
  low_threshold: Optional[float] = 2.0

  def defined_heads(self, has_ratings: bool) -> np.ndarray:
    """[A] bool: the heads these rules can set on this data (the ranking loss masks)."""
    heads = np.zeros(NUM_ACTIONS, bool)
    heads[CLICK] = True
    if has_ratings:
      heads[FAVORITE] = self.high_threshold is not None
      heads[NOT_INTERESTED] = self.low_threshold is not None
    return heads


def action_bits(ratings: Optional[np.ndarray], n: int, rules: ActionRules) -> np.ndarray:
  """[n, A] float32 multi-hot actions for n interactions with the given ratings ([n] or None)."""
  bits = np.zeros((n, NUM_ACTIONS), np.float32)
  bits[:, CLICK] = 1.0
  if ratings is not None:
    r = np.asarray(ratings, np.float64)
    with np.errstate(invalid="ignore"):
      if rules.high_threshold is not None:
        bits[:, FAVORITE] = r >= rules.high_threshold
      if rules.low_threshold is not None:
        bits[:, NOT_INTERESTED] = r <= rules.low_threshold
  return bits


def label_masks(ratings: Optional[np.ndarray], n: int, rules: ActionRules,
                is_positive: np.ndarray) -> np.ndarray:
  """[n, A] float32: which heads have a defined label for n ranking candidates.

  Defined heads (`rules.defined_heads`) are labelled for every candidate, except that a
  positive with an unknown rating (NaN) has no favorite/not_interested label.
  Sampled negatives are labelled 0 on every defined head (no engagement at all).
  """
  heads = rules.defined_heads(ratings is not None)
  mask = np.broadcast_to(heads.astype(np.float32), (n, NUM_ACTIONS)).copy()
  if ratings is not None:
    unknown = np.isnan(np.asarray(ratings, np.float64)) & np.asarray(is_positive, bool)
    mask[unknown, FAVORITE] = 0.0
    mask[unknown, NOT_INTERESTED] = 0.0
  return mask


# ----------------------------------------------------------------------------------------
# Id batches.

class IdBatch(NamedTuple):
  """A batch in ids, before hashing. -1 = padding in item arrays.

  user_ids [B]; history_items [B,S]; history_actions [B,S,A]; history_surface [B,S];
  candidate_items [B,C]; candidate_surface [B,C].
  """
  user_ids: np.ndarray
  history_items: np.ndarray
  history_actions: np.ndarray
  history_surface: np.ndarray
  candidate_items: np.ndarray
  candidate_surface: np.ndarray


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
  history_len: int = 50
  rules: ActionRules = ActionRules()
  product_surface: int = 1
  user_mode: str = "id"          # "id" | "shared"
  pad_side: str = "right"        # "right" | "left" (see the module docstring)

  def __post_init__(self):
    if self.pad_side not in ("right", "left"):
      raise ValueError(f"pad_side must be 'right' or 'left', got {self.pad_side!r}")
    if self.user_mode not in ("id", "shared"):
      raise ValueError(f"user_mode must be 'id' or 'shared', got {self.user_mode!r}")
    if self.history_len < 1:
      raise ValueError("history_len must be >= 1")


def history_block(seqs: Sequence[np.ndarray], ratings: Optional[Sequence[np.ndarray]],
                  cfg: BatchingConfig, length: Optional[int] = None):
  """Truncated/padded histories: (items [B,S] -1 padded, actions [B,S,A], surface [B,S])."""
  length = cfg.history_len if length is None else length
  b = len(seqs)
  items = np.full((b, length), -1, np.int32)
  actions = np.zeros((b, length, NUM_ACTIONS), np.float32)
  surface = np.zeros((b, length), np.int32)
  for i, seq in enumerate(seqs):
    tail = np.asarray(seq)[max(0, len(seq) - length):]
    n = len(tail)
    sl = slice(0, n) if cfg.pad_side == "right" else slice(length - n, length)
    items[i, sl] = tail
    r = None
    if ratings is not None:
      r = np.asarray(ratings[i])[max(0, len(seq) - length):]
    actions[i, sl] = action_bits(r, n, cfg.rules)
    surface[i, sl] = cfg.product_surface
  return items, actions, surface


def user_id_array(user_ids: np.ndarray, cfg: BatchingConfig) -> np.ndarray:
  if cfg.user_mode == "shared":
    return np.ones(len(user_ids), np.int64)
  return np.asarray(user_ids, np.int64)


def history_batch(data: SequenceData, users: np.ndarray, cfg: BatchingConfig,
                  ends: Optional[np.ndarray] = None) -> IdBatch:
  """Histories (items before `ends[u]`, default the whole sequence), no candidates."""
  users = np.asarray(users)
  seqs, rats = [], None if data.ratings is None else []
  for j, u in enumerate(users):
    end = len(data.sequences[u]) if ends is None else int(ends[j])
    seqs.append(data.sequences[u][:end])
    if rats is not None:
      rats.append(data.ratings[u][:end])
  items, actions, surface = history_block(seqs, rats, cfg)
  empty = np.zeros((len(users), 0), np.int32)
  return IdBatch(user_id_array(data.user_ids[users], cfg), items, actions, surface, empty,
                 empty)


# ----------------------------------------------------------------------------------------
# Retrieval: windows with next-item targets at every position.

class RetrievalExample(NamedTuple):
  """ids: history windows (IdBatch without candidates); targets [B,S] next item, -1 = none."""
  ids: IdBatch
  targets: np.ndarray


def retrieval_training_batch(data: SequenceData, users: np.ndarray, cfg: BatchingConfig,
                             rng: np.random.Generator, window: str = "last",
                             ends: Optional[np.ndarray] = None) -> RetrievalExample:
  """Windows of the users' training sequences with a next-item target at every position.

  For user u with training sequence s (s = data.sequences[u][:ends[u]]), take L+1
  consecutive items w (L = history_len): the last L+1 (window="last") or, when s is
  longer, ones ending at a uniformly random position (window="random"); the history is
  w[:-1] and the targets are w[1:]. Shorter sequences are right-padded (targets -1).
  """
  length = cfg.history_len
  users = np.asarray(users)
  b = len(users)
  hist_seqs, rats = [], None if data.ratings is None else []
  targets = np.full((b, length), -1, np.int32)
  for j, u in enumerate(users):
    end = len(data.sequences[u]) if ends is None else int(ends[j])
    seq = data.sequences[u][:end]
    start, stop = next_item_window(len(seq), length, rng, window)
    w = seq[start:stop]
    hist_seqs.append(w[:-1])
    n = len(w) - 1
    if cfg.pad_side == "right":
      targets[j, :n] = w[1:]
    elif n:
      targets[j, length - n:] = w[1:]
    if rats is not None:
      rats.append(data.ratings[u][:end][start:stop][:-1])
  items, actions, surface = history_block(hist_seqs, rats, cfg)
  empty = np.zeros((b, 0), np.int32)
  ids = IdBatch(user_id_array(data.user_ids[users], cfg), items, actions, surface, empty, empty)
  return RetrievalExample(ids, targets)


# ----------------------------------------------------------------------------------------
# Ranking: candidate lists of the true next engagements plus sampled negatives.

class RankingExample(NamedTuple):
  """ids: histories + candidates; labels/mask [B,C,A]; relevance [B,C] graded gain."""
  ids: IdBatch
  labels: np.ndarray
  mask: np.ndarray
  relevance: np.ndarray


def sample_negatives(rng: np.random.Generator, num: int, num_items: int, exclude: set,
                     probs: Optional[np.ndarray] = None) -> np.ndarray:
  """`num` distinct items not in `exclude`, uniform or ~ probs."""
  out: list[int] = []
  taken = set(exclude)
  while len(out) < num:
    draw = rng.choice(num_items, size=2 * (num - len(out)) + 8, p=probs)
    for it in draw.tolist():
      if it not in taken:
        taken.add(it)
        out.append(it)
        if len(out) == num:
          break
  return np.array(out, np.int32)


def ranking_batch(data: SequenceData, users: np.ndarray, cuts: np.ndarray, cfg: BatchingConfig,
                  num_positives: int, num_negatives: int, rng: np.random.Generator,
                  negative_probs: Optional[np.ndarray] = None,
                  relevance_gains: tuple = (2.0, 1.0, 0.0),
                  hard_negatives: Optional[np.ndarray] = None) -> RankingExample:
  """Candidate lists for ranking.

  For user u with cut t = cuts[j]: history = s[:t] (truncated to the most recent
  history_len), positives = s[t:t+num_positives] (the true next engagements), negatives =
  `num_negatives` items the user never interacted with (anywhere in s): first the row's
  `hard_negatives` (e.g. a retrieval model's top-K for s[:t]; [B, H] with -1 padding,
  H <= num_negatives; any item of s among them is dropped), the rest drawn uniformly or
  ~ negative_probs. The C = num_positives + num_negatives candidates are shuffled;
  missing positives (end of sequence) are padding (-1, mask 0).

  Labels: positives get their history action bits (click; favorite / not_interested from
  the rating); negatives get 0 on every defined head. Mask: `label_masks`.
  Relevance (for NDCG): favorite -> gains[0], other positive that is not
  not_interested -> gains[1], not_interested or negative -> gains[2].
  """
  users = np.asarray(users)
  b = len(users)
  c = num_positives + num_negatives
  cand = np.full((b, c), -1, np.int32)
  labels = np.zeros((b, c, NUM_ACTIONS), np.float32)
  mask = np.zeros((b, c, NUM_ACTIONS), np.float32)
  relevance = np.zeros((b, c), np.float32)
  hist_seqs, rats = [], None if data.ratings is None else []
  for j, u in enumerate(users):
    seq = data.sequences[u]
    t = int(cuts[j])
    hist_seqs.append(seq[:t])
    pos = seq[t:t + num_positives]
    r_pos = None
    if rats is not None:
      rats.append(data.ratings[u][:t])
      r_pos = data.ratings[u][t:t + num_positives]
    seen = set(seq.tolist())
    hard = np.zeros(0, np.int32)
    if hard_negatives is not None:
      row = np.asarray(hard_negatives[j])
      hard = row[(row >= 0) & ~np.isin(row, seq)][:num_negatives].astype(np.int32)
    neg = np.concatenate([hard, sample_negatives(
        rng, num_negatives - len(hard), data.num_items, seen | set(hard.tolist()),
        negative_probs)])
    items = np.concatenate([pos, neg]).astype(np.int32)
    n_pos = len(pos)
    lab = np.zeros((len(items), NUM_ACTIONS), np.float32)
    lab[:n_pos] = action_bits(r_pos, n_pos, cfg.rules)
    is_pos = np.arange(len(items)) < n_pos
    r_all = None
    if r_pos is not None:
      r_all = np.concatenate([r_pos, np.zeros(len(neg), np.float32)])
    m = label_masks(r_all, len(items), cfg.rules, is_pos)
    rel = np.full(len(items), relevance_gains[2], np.float32)
    rel[:n_pos] = np.where(lab[:n_pos, FAVORITE] > 0, relevance_gains[0],
                           np.where(lab[:n_pos, NOT_INTERESTED] > 0, relevance_gains[2],
                                    relevance_gains[1]))
    perm = rng.permutation(len(items))
    k = len(items)
    cand[j, :k] = items[perm]
    labels[j, :k] = lab[perm]
    mask[j, :k] = m[perm]
    relevance[j, :k] = rel[perm]
  h_items, h_actions, h_surface = history_block(hist_seqs, rats, cfg)
  surface = np.where(cand >= 0, cfg.product_surface, 0).astype(np.int32)
  ids = IdBatch(user_id_array(data.user_ids[users], cfg), h_items, h_actions, h_surface, cand,
                surface)
  return RankingExample(ids, labels, mask, relevance)


# ----------------------------------------------------------------------------------------
# Featurisation: ids -> hashes -> RecsysBatch.

HashFn = Callable[[np.ndarray, int], np.ndarray]  # ids [...] (0 = pad) -> [..., n] hashes
FIELD_ID_STRIDE = 1 << 32  # author id offset between attribute fields of item_authors [I, F]


@dataclasses.dataclass
class Featurizer:
  """Turns `IdBatch`es into `RecsysBatch`es.

  Attributes:
    item_authors: [I] int attribute id per item (0 = unknown), [I, F] for F attribute
      fields (num_author_hashes must be a multiple of F), or None (shared author).
    hash_ids: (ids, num_hashes) -> [..., num_hashes] int32 hashes; id 0 must map to all-0
      (padding) and every other id to non-zero hashes. (A subclass may override `hash`
      instead, to hash each id kind differently: phoenix.embeddings does.)
    num_user_hashes, num_item_hashes, num_author_hashes: as in HashConfig.
  """
  item_authors: Optional[np.ndarray]
  hash_ids: HashFn
  num_user_hashes: int = 2
  num_item_hashes: int = 2
  num_author_hashes: int = 2

  # [I, F] author ids per item (attr + 1 + f * FIELD_ID_STRIDE), or None: derived once.
  _author_table: Optional[np.ndarray] = dataclasses.field(init=False, repr=False, default=None)

  def __post_init__(self):
    if self.item_authors is None:
      return
    authors = np.asarray(self.item_authors)
    if authors.ndim not in (1, 2) or not np.issubdtype(authors.dtype, np.integer):
      raise ValueError(f"item_authors must be an int array [I] or [I, F], got "
                       f"{authors.dtype} {authors.shape}")
    authors = authors.reshape(len(authors), -1).astype(np.int64)             # [I, F]
    if self.num_author_hashes % authors.shape[1]:
      raise ValueError(f"num_author_hashes ({self.num_author_hashes}) must be a multiple of "
                       f"the number of author fields ({authors.shape[1]})")
    self._author_table = authors + 1 + np.arange(authors.shape[1]) * FIELD_ID_STRIDE

  def hash(self, kind: str, ids: np.ndarray, num_hashes: int) -> np.ndarray:
    """ids [...] of one kind ("user" / "item" / "author") -> [..., num_hashes] hashes."""
    del kind  # one hash function for every kind here; see phoenix.embeddings for per-kind
    return self.hash_ids(ids, num_hashes)

  def post_ids(self, items: np.ndarray) -> np.ndarray:
    """Dense item index (-1 = pad) -> post id (0 = pad)."""
    return np.where(items >= 0, items + 1, 0).astype(np.int64)

  def author_ids(self, items: np.ndarray) -> np.ndarray:
    """Dense item index [...] (-1 = pad) -> author ids [..., F] (F = 1 without fields):
    0 = pad, else attr + 1 (1 = unknown / the shared author) + f * FIELD_ID_STRIDE."""
    if self._author_table is None:
      return np.where(items >= 0, 1, 0).astype(np.int64)[..., None]
    return np.where((items >= 0)[..., None], self._author_table[np.maximum(items, 0)], 0)

  def author_hashes(self, items: np.ndarray) -> np.ndarray:
    """Dense item index [...] -> [..., num_author_hashes] author hashes (fields side by side)."""
    ids = self.author_ids(items)                                             # [..., F]
    per_field = self.num_author_hashes // ids.shape[-1]
    return np.concatenate([self.hash("author", ids[..., f], per_field)
                           for f in range(ids.shape[-1])], axis=-1)

  def __call__(self, ids: IdBatch):
    from phoenix.recsys_model import RecsysBatch  # pylint: disable=g-import-not-at-top
    return RecsysBatch(
        user_hashes=self.hash("user", np.asarray(ids.user_ids, np.int64), self.num_user_hashes),
        history_post_hashes=self.hash("item", self.post_ids(ids.history_items),
                                      self.num_item_hashes),
        history_author_hashes=self.author_hashes(ids.history_items),
        history_actions=np.asarray(ids.history_actions, np.float32),
        history_product_surface=np.asarray(ids.history_surface, np.int32),
        candidate_post_hashes=self.hash("item", self.post_ids(ids.candidate_items),
                                        self.num_item_hashes),
        candidate_author_hashes=self.author_hashes(ids.candidate_items),
        candidate_product_surface=np.asarray(ids.candidate_surface, np.int32),
    )

  def candidates_only(self, items: np.ndarray, product_surface: int = 1):
    """A batch of one row whose candidates are `items` [C] (for the candidate tower)."""
    items = np.asarray(items, np.int32)[None, :]
    empty_items = np.full((1, 1), -1, np.int32)
    ids = IdBatch(np.ones(1, np.int64), empty_items, np.zeros((1, 1, NUM_ACTIONS), np.float32),
                  np.zeros((1, 1), np.int32), items,
                  np.where(items >= 0, product_surface, 0).astype(np.int32))
    return self(ids)


def pad_rows(x: np.ndarray, rows: int, value=0) -> np.ndarray:
  """Pads axis 0 of x to `rows` with `value` (keeps jitted shapes fixed)."""
  if len(x) == rows:
    return x
  pad = np.full((rows - len(x),) + x.shape[1:], value, dtype=x.dtype)
  return np.concatenate([x, pad], axis=0)


def pad_batch(batch, rows: int):
  """A NamedTuple batch (`RecsysBatch`, `IdBatch`) with every field padded to `rows` rows."""
  return type(batch)(*[pad_rows(np.asarray(f), rows) for f in batch])
