"""Phoenix retrieval: the two-tower model trained on next-item prediction (see adapter)."""
