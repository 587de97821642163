"""absl binaries and config files that train, evaluate, compare and benchmark the models."""
