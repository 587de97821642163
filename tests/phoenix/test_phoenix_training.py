"""Phoenix training: all-prefix user tower = per-prefix build_user_representation; a quick
retrieval run learns an obvious sequential pattern; ranking metrics by hand."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phoenix import batching
from phoenix.authors import item_authors_for
from phoenix.embeddings import EmbeddingConfig
from phoenix.ranking.config import RankingConfig
from phoenix.ranking.metrics import list_ndcg
from phoenix.ranking.task import RankingTask
from phoenix.retrieval.config import RetrievalConfig
from phoenix.retrieval.model import prefix_pool
from phoenix.retrieval.task import pack_positions
from phoenix.retrieval.task import RetrievalTask
from recsys_core.data.sequences import SequenceData
from recsys_core.data.synthetic import synthetic_sequences


def _tiny_cfg(**kw):
  emb = EmbeddingConfig(emb_size=16, user_table_size=64, item_table_size=128,
                        author_table_size=16)
  base = dict(emb=emb, num_layers=1, num_q_heads=2, num_kv_heads=1, key_size=8,
              history_len=6, init_temperature=0.1)
  base.update(kw)
  return RetrievalConfig(**base)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_prefix_representations_equal_per_prefix_user_representation(pooling):
  x = synthetic_sequences(4, 30, 3, 9, seed=1)
  data = SequenceData.from_interactions(x)
  task = RetrievalTask(_tiny_cfg(user_mode="id", pooling=pooling), data,
                       data.lengths(), None, batch_size=4)
  users = np.arange(4)
  ex = task.make_batch(users, np.random.default_rng(0))
  params = task.fns.init(jax.random.PRNGKey(0), ex["batch"])["phoenix"]
  prefix, valid = task.fns.prefix_users(params, ex["batch"])
  users_fn = jax.jit(task.fns.users)
  hist = ex["batch"]
  for s in range(hist.history_post_hashes.shape[1]):
    # Truncate the history to positions 0..s (padding after).
    keep = (np.arange(hist.history_post_hashes.shape[1]) <= s)
    cut = hist._replace(
        history_post_hashes=np.where(keep[None, :, None], hist.history_post_hashes, 0),
        history_author_hashes=np.where(keep[None, :, None], hist.history_author_hashes, 0),
        history_actions=np.where(keep[None, :, None], hist.history_actions, 0),
        history_product_surface=np.where(keep[None, :], hist.history_product_surface, 0))
    full = users_fn(params, cut)
    ok = np.asarray(valid[:, s])
    np.testing.assert_allclose(np.asarray(prefix[:, s])[ok], np.asarray(full)[ok], atol=2e-5)


def test_prefix_pool_by_hand():
  out = jnp.array([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
  mask = jnp.array([[True, True, False]])
  pooled, count = prefix_pool(out, mask)
  np.testing.assert_allclose(np.asarray(pooled[0, 0]), [1, 0], atol=1e-6)
  np.testing.assert_allclose(np.asarray(pooled[0, 1]), [2 ** -0.5, 2 ** -0.5], atol=1e-6)
  np.testing.assert_allclose(np.asarray(pooled[0, 2]), [2 ** -0.5, 2 ** -0.5], atol=1e-6)
  np.testing.assert_array_equal(np.asarray(count[0]), [1, 2, 2])


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_loss_is_finite_and_has_gradients(loss):
  x = synthetic_sequences(8, 30, 4, 9, seed=2)
  data = SequenceData.from_interactions(x)
  cfg = _tiny_cfg(loss=loss, num_negatives=16, num_in_batch=8, loss_positions=3)
  task = RetrievalTask(cfg, data, data.lengths() - 2, None, batch_size=8)
  batch = task.make_batch(np.arange(8), np.random.default_rng(0))
  params = task.fns.init(jax.random.PRNGKey(0), batch["batch"])
  (value, aux), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(params, None, batch)
  assert np.isfinite(float(value)) and float(value) > 0
  assert float(jnp.abs(grads["loss"]["log_temperature"])) > 0
  norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads["phoenix"])]
  assert sum(n > 0 for n in norms) > len(norms) // 2


@pytest.mark.parametrize("packed_positions", [0, 24])
def test_exclude_seen_drops_the_history_prefix_from_the_full_softmax(packed_positions):
  """exclude_seen: each loss row's softmax leaves out the items of its history prefix (not
  its target), packed or not; recomputed here from the users and the corpus."""
  x = synthetic_sequences(8, 12, 3, 7, seed=6)   # 12 items: many repeats
  data = SequenceData.from_interactions(x)
  kw = dict(history_len=8, packed_positions=packed_positions)
  task = RetrievalTask(_tiny_cfg(exclude_seen=True, **kw), data,
                       data.lengths() - 2, None, 8)
  plain = RetrievalTask(_tiny_cfg(**kw), data, data.lengths() - 2, None, 8)
  batch = task.make_batch(np.arange(8), np.random.default_rng(0))
  params = task.fns.init(jax.random.PRNGKey(0), batch["batch"])
  value = float(task.loss_fn(params, None, batch)[0])
  hist, targets = batch["history_items"], batch["targets"]
  p = params["phoenix"]
  users = np.asarray(task.fns.prefix_users(p, batch["batch"])[0])       # [B,S,D]
  corpus = np.asarray(task.fns.candidates(p, task.corpus_batch)[0][0])  # [I,D]
  logits = users @ corpus.T / float(task.fns.temperature(params))      # [B,S,I]
  terms, removed = [], 0
  for b, s in zip(*np.nonzero(targets >= 0)):
    keep = np.ones(data.num_items, bool)
    keep[hist[b, :s + 1]] = False
    keep[targets[b, s]] = True
    removed += (~keep).sum()
    row = logits[b, s]
    terms.append(np.log(np.exp(row[keep]).sum()) - row[targets[b, s]])
  assert removed > 0
  np.testing.assert_allclose(value, np.mean(terms), rtol=1e-4)
  plain_batch = {k: v for k, v in batch.items() if k != "history_items"}
  assert float(plain.loss_fn(params, None, plain_batch)[0]) > value
  with pytest.raises(ValueError, match="exclude_seen needs loss='full'"):
    _tiny_cfg(exclude_seen=True, loss="sampled")


def test_list_ndcg_by_hand():
  scores = np.array([[0.9, 0.1, 0.5]])
  rel = np.array([[0.0, 2.0, 1.0]])
  valid = np.ones((1, 3), bool)
  # Ranking: item0 (gain 0), item2 (gain 1), item1 (gain 3).
  dcg = 1 / np.log2(3) + 3 / np.log2(4)
  ideal = 3 + 1 / np.log2(3)
  np.testing.assert_allclose(list_ndcg(scores, rel, valid), [dcg / ideal])


def test_quick_training_beats_untrained_on_an_obvious_pattern():
  """Item i is followed by i+1: a few dozen full-softmax steps lift validation HR@10."""
  from recsys_core import evaluation, splits
  from recsys_core import train as train_lib
  x = synthetic_sequences(96, 120, 6, 12, seed=3)
  split = splits.leave_one_out_split(x)
  data = SequenceData.from_interactions(x)
  ends = np.where(split.val_targets >= 0, data.lengths() - 2, data.lengths())
  cfg = _tiny_cfg(history_len=10, emb=EmbeddingConfig(
      emb_size=32, user_table_size=64, item_table_size=1024, author_table_size=16))
  task = RetrievalTask(cfg, data, ends, None, batch_size=32)
  batcher = train_lib.EpochBatcher(len(task.train_users), 32, 0)
  optimizer = train_lib.make_optimizer(train_lib.OptimizerConfig(learning_rate=1e-2))
  params = task.fns.init(jax.random.PRNGKey(0), task.example_batch()["batch"])
  state = train_lib.init_train_state(params, optimizer, jax.random.PRNGKey(1))
  update = train_lib.make_update_fn(task.loss_fn, optimizer)

  def val_hr(p):
    return evaluation.evaluate_leave_one_out(task.scorer(p, batch_size=96), split.val_inputs,
                                             split.val_targets, ks=(10,))["hr@10"]

  before = val_hr(params)
  batch_fn = task.batch_fn(batcher)
  for step in range(60):
    state, metrics = update(state, batch_fn(step))
  after = val_hr(state.params)
  assert np.isfinite(float(metrics["loss"]))
  assert before < 0.25
  assert after > before + 0.4, (before, after)


def _ranking_task(**kw):
  from phoenix.ranking.data import synthetic_rated
  x = synthetic_rated(num_users=40, num_items=30, length=14)
  data = SequenceData.from_interactions(x)
  emb = EmbeddingConfig(emb_size=16, user_table_size=64, item_table_size=128,
                        author_table_size=16)
  base = dict(emb=emb, num_layers=1, num_q_heads=2, num_kv_heads=1, key_size=8,
              history_len=6, num_positives=2, num_negatives=4)
  base.update(kw)
  return RankingTask(RankingConfig(**base), data, None, batch_size=8)


def test_ranking_split_lists_and_popularity_prior():
  task = _ranking_task()
  split = task.split
  # Test positives are the last 2 items, validation the 2 before; training never sees them.
  for u in range(3):
    full = split.test.sequences[u]
    assert len(split.train.sequences[u]) == len(full) - 4
    test_pos = set(full[-2:].tolist())
    listed = task.test_lists.ids.candidate_items[u]
    clicked = task.test_lists.labels[u, :, batching.CLICK] > 0
    assert set(listed[clicked].tolist()) == test_pos
  heads = [batching.ACTIONS[a] for a in np.flatnonzero(task.heads)]
  assert heads == ["favorite", "click", "not_interested"]
  # Favorite = an engaged even item here: the per-item prior ranks it well above chance.
  prior = task.popularity_prior(passes=2)
  m = task.evaluate(task.prior_probs(prior, task.test_lists), task.test_lists)
  assert m["auc/favorite"] > 0.7
  assert np.isfinite(m["ndcg"]) and 0 < m["ndcg"] <= 1


@pytest.mark.parametrize("layers", [1, 0])
def test_ranking_loss_finite_with_and_without_transformer(layers):
  task = _ranking_task(num_layers=layers)
  params = task.init(jax.random.PRNGKey(0))
  batch = task.make_batch(task.train_rows[:8], np.random.default_rng(0))
  (loss, aux), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(params, None, batch)
  assert np.isfinite(float(loss)) and set(aux) == {"loss/favorite", "loss/click",
                                                    "loss/not_interested"}
  assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree.leaves(grads))
  if layers == 0:
    assert not any("decoder_layer" in k for k in params["phoenix"])


def test_embedding_dropout_only_in_the_training_loss():
  x = synthetic_sequences(4, 30, 3, 9, seed=1)
  data = SequenceData.from_interactions(x)
  tasks = {r: RetrievalTask(_tiny_cfg(embedding_dropout=r), data, data.lengths(),
                            None, batch_size=4) for r in (0.0, 0.5)}
  batch = tasks[0.0].make_batch(np.arange(4), np.random.default_rng(0))
  params = tasks[0.0].fns.init(jax.random.PRNGKey(0), batch["batch"])
  loss = {r: [float(t.loss_fn(params, jax.random.PRNGKey(k), batch)[0]) for k in (1, 2)]
          for r, t in tasks.items()}
  assert loss[0.0][0] == loss[0.0][1]                 # no dropout: the rng is unused
  assert loss[0.5][0] != loss[0.5][1]                 # dropout: the rng matters
  assert loss[0.5][0] != loss[0.0][0]
  # Evaluation (the scorer's user tower) never drops.
  users = {r: np.asarray(t.fns.prefix_users(params["phoenix"], batch["batch"])[0])
           for r, t in tasks.items()}
  np.testing.assert_array_equal(users[0.0], users[0.5])


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_packed_positions_give_the_same_loss_and_gradients(loss):
  """Packing the valid target slots (short sequences in a long window) changes the cost, not
  the loss: same value and gradients as the unpacked B*S computation."""
  x = synthetic_sequences(8, 30, 3, 6, seed=4)   # sequences much shorter than 10
  data = SequenceData.from_interactions(x)
  common = dict(loss=loss, num_negatives=16, num_in_batch=8, history_len=10)
  plain = RetrievalTask(_tiny_cfg(**common), data, data.lengths() - 2, None, 8)
  packed = RetrievalTask(_tiny_cfg(packed_positions=24, **common), data,
                         data.lengths() - 2, None, 8)
  b_plain = plain.make_batch(np.arange(8), np.random.default_rng(0))
  b_packed = packed.make_batch(np.arange(8), np.random.default_rng(0))
  n_valid = int((b_plain["targets"] >= 0).sum())
  assert n_valid < 24 < b_plain["targets"].size
  assert int(b_packed["positions_dropped"]) == 0 and int(b_packed["packed_valid"].sum()) == n_valid
  params = plain.fns.init(jax.random.PRNGKey(0), b_plain["batch"])
  grad = jax.value_and_grad(lambda p, t, b: t.loss_fn(p, None, b), has_aux=True)
  (v1, aux1), g1 = grad(params, plain, b_plain)
  (v2, aux2), g2 = grad(params, packed, b_packed)
  np.testing.assert_allclose(float(v1), float(v2), rtol=1e-5)
  assert int(aux1["positions"]) == int(aux2["positions"]) == n_valid
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_pack_positions_drops_at_random_and_counts():
  targets = np.full((3, 5), -1)
  targets[0, :4] = 1
  targets[2, :3] = 2
  out = pack_positions(targets, 5, np.random.default_rng(0))
  assert int(out["positions_dropped"]) == 2
  assert out["packed_valid"].all()
  kept = out["packed"]
  assert len(set(kept.tolist())) == 5 and (targets.reshape(-1)[kept] >= 0).all()
  out = pack_positions(targets, 10, np.random.default_rng(0))
  np.testing.assert_array_equal(out["packed"][:7], [0, 1, 2, 3, 10, 11, 12])
  np.testing.assert_array_equal(out["packed_valid"], np.arange(10) < 7)
  with pytest.raises(ValueError, match="alternatives"):
    _tiny_cfg(loss_positions=2, packed_positions=8)


def test_block_dropout_makes_the_training_loss_rng_dependent_only():
  x = synthetic_sequences(8, 30, 4, 9, seed=2)
  data = SequenceData.from_interactions(x)
  task = RetrievalTask(_tiny_cfg(block_dropout=0.3), data, data.lengths() - 2, None, 8)
  plain = RetrievalTask(_tiny_cfg(), data, data.lengths() - 2, None, 8)
  batch = task.make_batch(np.arange(8), np.random.default_rng(0))
  params = task.fns.init(jax.random.PRNGKey(0), batch["batch"])
  l1 = float(task.loss_fn(params, jax.random.PRNGKey(1), batch)[0])
  l2 = float(task.loss_fn(params, jax.random.PRNGKey(2), batch)[0])
  assert abs(l1 - l2) > 1e-4
  assert float(task.loss_fn(params, jax.random.PRNGKey(1), batch)[0]) == l1
  # Evaluation (users) is the dropout-free model: same as the plain config's.
  np.testing.assert_allclose(np.asarray(task.fns.users(params["phoenix"], batch["batch"])),
                             np.asarray(plain.fns.users(params["phoenix"], batch["batch"])),
                             atol=1e-6)


def test_loss_positions_select_k_valid_slots_per_row_in_the_packed_form():
  x = synthetic_sequences(6, 30, 4, 9, seed=5)
  data = SequenceData.from_interactions(x)
  task = RetrievalTask(_tiny_cfg(loss_positions=2), data, data.lengths() - 2, None, 6)
  batch = task.make_batch(np.arange(6), np.random.default_rng(0))
  b, s = batch["targets"].shape
  rows, cols = np.divmod(batch["packed"], s)
  np.testing.assert_array_equal(rows, np.repeat(np.arange(b), 2))
  assert (batch["targets"][rows, cols] >= 0).all() and batch["packed_valid"].all()


def test_configs_round_trip_through_from_dict():
  import dataclasses
  r = _tiny_cfg(block_dropout=0.1, packed_positions=8)
  assert RetrievalConfig.from_dict(dataclasses.asdict(r)) == r
  assert RetrievalConfig.from_dict(dataclasses.asdict(r), history_len=3).history_len == 3
  k = RankingConfig(num_layers=0)
  d = dataclasses.asdict(k)
  d["score_weights"] = [list(w) for w in d["score_weights"]]    # as JSON gives it back
  assert RankingConfig.from_dict(d) == k


def test_two_author_fields_from_the_amazon_attribute_file(tmp_path):
  # brand+category: an [I, 2] attribute array whose fields fill separate author hash slots.
  folder = tmp_path / "amazon_beauty_seq"
  folder.mkdir()
  # Items 1, 2 share brand 9 (brands only ever come first); categories 3 / 4.
  (folder / "Beauty_item2attributes.json").write_text(
      '{"1": [9, 3], "2": [9, 4], "3": [3], "4": [4, 3]}')
  ids = np.array([1, 2, 3, 4])
  brand, _ = item_authors_for("beauty", "brand", ids, str(tmp_path))
  both, info = item_authors_for("beauty", "brand+category", ids, str(tmp_path))
  assert both.shape == (4, 2) and info["author"] == "brand+category"
  np.testing.assert_array_equal(both[:, 0], brand)
  assert both[0, 0] == both[1, 0] and both[0, 1] != both[1, 1]   # same brand, other category
  # "category:L" picks a level of the category list. Top levels: 3, 4, 3, 4; the most
  # specific: 3, 4, 3, 3 (item 4's list is [4, 3]).
  top, top_info = item_authors_for("beauty", "category:0", ids, str(tmp_path))
  assert top[0] == top[2] != top[1] == top[3] and top_info["author"] == "category:0"
  assert both[3, 1] == both[0, 1] != both[1, 1]
  np.testing.assert_array_equal(
      item_authors_for("beauty", "category:-1", ids, str(tmp_path))[0], both[:, 1])
  three, _ = item_authors_for("beauty", "brand+category+category:0", ids,
                              str(tmp_path))
  np.testing.assert_array_equal(three, np.concatenate([both, top[:, None]], axis=1))
  for bad in ("category:x", "brand:1", "category:", "category:--1"):
    with pytest.raises(ValueError, match="only 'category' takes a level"):
      item_authors_for("beauty", bad, ids, str(tmp_path))
  x = synthetic_sequences(4, 4, 3, 6, seed=0)
  data = SequenceData.from_interactions(x)
  cfg = _tiny_cfg(emb=EmbeddingConfig(emb_size=16, user_table_size=64,
                                      item_table_size=128, author_table_size=64,
                                      num_author_hashes=4))
  task = RetrievalTask(cfg, data, data.lengths(), both, batch_size=4)
  hashes = np.asarray(task.corpus_batch.candidate_author_hashes)[0]      # [I, 4]
  # Items 0 and 1 (same brand): equal brand slots, different category slots.
  np.testing.assert_array_equal(hashes[0, :2], hashes[1, :2])
  assert (hashes[0, 2:] != hashes[1, 2:]).any()
  batch = task.make_batch(np.arange(4), np.random.default_rng(0))
  params = task.fns.init(jax.random.PRNGKey(0), batch["batch"])
  assert np.isfinite(float(task.loss_fn(params, jax.random.PRNGKey(1), batch)[0]))
