"""Phoenix: Grok-style ranking and retrieval transformers for recommendation (dm-haiku).

Modules: `grok` (transformer), `recsys_model` (ranking), `recsys_retrieval_model` (two-tower
retrieval), `runners` (jitted inference runners), `hashing` (hash embedding tables),
`serving` (prefix-cached candidate scoring). See shared/docs/phoenix.md.
"""
