"""Phoenix retrieval: the two-tower model trained on next-item prediction.

`config` (RetrievalConfig), `model` (the haiku functions), `scorer` (RetrievalScorer, for
evaluation and serving), `task` (training batches and loss), `adapter` (the pipeline model).
"""
