"""Shared core of the library: data, splits, metrics, baselines, training utilities.

Both model packages (`phoenix`, `anime_ae`) import from here; this package imports neither.
"""
