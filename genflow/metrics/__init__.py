"""Evaluation metrics as plain functions and torchmetrics Metrics (no Lightning)."""

from genflow.metrics.likelihood import bits_per_dim

__all__ = ["bits_per_dim"]
