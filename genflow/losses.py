"""Objectives as plain tensor functions.

Every function returns one value per example, summed over the data (or latent) dimensions;
the caller averages over the batch. Nothing here knows about Lightning.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def dequantize(x: Tensor, num_bits: int) -> Tensor:
    """Map discrete values k / (2^b - 1) in [0, 1] to u = (k + U[0, 1)) / 2^b in [0, 1).

    A density p on u bounds the probability of k from below:
    log P(k) >= E_U[log p(u)] - D * b * ln 2 (Theis et al. 2016, arXiv:1511.01844).
    """
    levels = 2**num_bits
    k = torch.round(x * (levels - 1))
    return (k + torch.rand_like(x)) / levels


def kl_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) in closed form, summed per example -> (B,).

    Kingma & Welling 2014 (arXiv:1312.6114), appendix B.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).flatten(1).sum(1)


def reparameterize(mu: Tensor, logvar: Tensor, num_samples: int | None = None) -> Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I); with num_samples, a leading axis (K, B, ...)."""
    std = torch.exp(0.5 * logvar)
    shape = mu.shape if num_samples is None else (num_samples, *mu.shape)
    return mu + std * torch.randn(shape, dtype=mu.dtype, device=mu.device)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over all but the leading (batch) axes."""
    return -0.5 * (z.pow(2) + math.log(2 * math.pi)).flatten(1).sum(1)


def log_mean_exp(t: Tensor, dim: int = 0) -> Tensor:
    """log(mean(exp(t))) along dim, computed stably: the IWAE estimator's outer step."""
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


def half_sum_squared_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """0.5 * sum((x_hat - x)^2) per example: the seed's autoencoder loss.

    This is a Gaussian negative log-density with unit variance *without* its (D/2) ln(2 pi)
    constant and without discretization, so it is a reconstruction loss, never an NLL.
    """
    return 0.5 * (x_hat - x).pow(2).flatten(1).sum(1)
