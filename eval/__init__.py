"""Evaluation toolkit: metrics, baselines, method registry, tables and plots (backend side)."""
