"""Phoenix ranking: the candidate-isolated ranking model trained on candidate lists.

`config` (RankingConfig), `model` (the haiku logits function), `metrics` (per-head and list
metrics), `task` (splits, batches, loss, evaluation).
"""
