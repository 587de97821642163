"""Phoenix: Grok-style ranking and retrieval transformers for recommendation (dm-haiku).

Models and inference: `grok` (transformer), `recsys_model` (ranking), `recsys_retrieval_model`
(two-tower retrieval), `runners` (jitted inference runners), `hashing` (hash embedding
tables), `serving` (prefix-cached candidate scoring). Training: `batching`, `losses`,
`training`. See shared/docs/phoenix.md.
"""
