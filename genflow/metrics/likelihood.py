"""Likelihood metrics."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric


def bits_per_dim(log_prob: Tensor, num_dims: int) -> Tensor:
    """-log p(x) / (D ln 2): log_prob in nats of the discrete data, D data dimensions."""
    return -log_prob / (num_dims * math.log(2.0))


class LogLikelihood(Metric):
    """The exact mean log-likelihood of a split as `nll` (nats per example) and `bpd`.

    The per-example values are summed in float64 and the sums added across DDP ranks, so with
    the DataModules' unpadded evaluation sampler the figures equal the single-process ones
    whatever the number of ranks. A non-finite value raises instead of being averaged away.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, num_dims: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_dims = num_dims
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, log_prob: Tensor) -> None:
        log_prob = log_prob.detach().flatten().to(torch.float64)
        bad = ~torch.isfinite(log_prob)
        if bad.any():
            raise FloatingPointError(
                f"log p(x) is not finite for {int(bad.sum())} of {log_prob.numel()} examples: "
                f"the model has diverged or the data is outside its support (check the data's "
                f"range and num_bits)."
            )
        self.total += log_prob.sum()
        self.count += log_prob.numel()

    def compute(self) -> dict[str, Tensor]:
        mean = self.total / self.count
        return {"nll": -mean, "bpd": bits_per_dim(mean, self.num_dims)}
