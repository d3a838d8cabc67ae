"""Evaluation metrics as plain functions and torchmetrics Metrics (no Lightning)."""

from genflow.metrics.likelihood import bits_per_dim
from genflow.metrics.toy import ModeCoverage, mode_coverage

__all__ = ["ModeCoverage", "bits_per_dim", "mode_coverage"]
