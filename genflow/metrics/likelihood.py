"""Likelihood metrics."""

from __future__ import annotations

import math

from torch import Tensor


def bits_per_dim(log_prob: Tensor, num_dims: int) -> Tensor:
    """-log p(x) / (D ln 2): log_prob in nats of the discrete data, D data dimensions."""
    return -log_prob / (num_dims * math.log(2.0))
