"""Phoenix: Grok-style ranking and retrieval transformers for recommendation (dm-haiku).

The release's interface: `grok` (transformer), `recsys_model` (ranking),
`recsys_retrieval_model` (two-tower retrieval), `runners` (jitted inference runners).
Shared pieces: `hashing` (hash embedding tables), `embeddings` (their config, featurizer and
lookup), `transformer_fields` (the model fields both configs share), `batching` (ids ->
model batches), `losses`, `authors` (item author attributes of the named datasets).
Per model: `retrieval` (config, model, scorer, task, pipeline adapter) and `ranking`
(config, model, metrics, task). Serving: `inference` (raw ids in, ranked items out; no
training code), `serving` (prefix-cached candidate scoring). See shared/docs/phoenix.md.
"""
