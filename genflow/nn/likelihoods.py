"""Decoder likelihoods p(x | params): the "head" that turns network outputs into a density.

A head owns `num_params` output channels per data channel. The network emits
(B, C * num_params, ...) and the head reads them as (B, C, ...) per parameter. `log_prob`
returns one value per example, summed over every data dimension, in nats.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def bernoulli_log_prob(x: Tensor, logits: Tensor) -> Tensor:
    """sum log Bernoulli(x; sigmoid(logits)) per example -> (B,)."""
    nll = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return -nll.flatten(1).sum(1)


def gaussian_log_prob(x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """sum log N(x; mu, exp(logvar)) per example -> (B,)."""
    logp = -0.5 * ((x - mu).pow(2) * torch.exp(-logvar) + logvar) - _HALF_LOG_2PI
    return logp.flatten(1).sum(1)


def laplace_log_prob(x: Tensor, loc: Tensor, log_scale: Tensor) -> Tensor:
    """sum log Laplace(x; loc, exp(log_scale)) per example -> (B,)."""
    logp = -(x - loc).abs() * torch.exp(-log_scale) - log_scale - math.log(2.0)
    return logp.flatten(1).sum(1)


class Likelihood(nn.Module):
    """Base head; subclasses set `num_params`, `discrete` and implement the three methods."""

    num_params: int = 1
    discrete: bool = False  # True: a probability mass over {0, 1}; False: a density

    def split(self, params: Tensor) -> tuple[Tensor, ...]:
        return params.chunk(self.num_params, dim=1)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        raise NotImplementedError

    def mean(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, params: Tensor) -> Tensor:
        raise NotImplementedError


class Bernoulli(Likelihood):
    """Bernoulli over binary data; the network emits logits."""

    discrete = True

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        return bernoulli_log_prob(x, params)

    def mean(self, params: Tensor) -> Tensor:
        return torch.sigmoid(params)

    def sample(self, params: Tensor) -> Tensor:
        return torch.bernoulli(torch.sigmoid(params))


class Gaussian(Likelihood):
    """Gaussian with a fixed standard deviation `scale` (scale=1 gives the seed's 0.5 sum (x-mu)^2
    plus the (D/2) ln 2 pi constant that makes it a density)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if scale <= 0:
            raise ValueError(f"Gaussian decoder scale must be > 0, got {scale}.")
        self.logvar = 2.0 * math.log(scale)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        return gaussian_log_prob(x, params, torch.full_like(params, self.logvar))

    def mean(self, params: Tensor) -> Tensor:
        return params

    def sample(self, params: Tensor) -> Tensor:
        return params + math.exp(0.5 * self.logvar) * torch.randn_like(params)


class GaussianLearnedVariance(Likelihood):
    """Gaussian whose per-dimension log-variance is a second network output."""

    num_params = 2

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        mu, logvar = self.split(params)
        return gaussian_log_prob(x, mu, logvar)

    def mean(self, params: Tensor) -> Tensor:
        return self.split(params)[0]

    def sample(self, params: Tensor) -> Tensor:
        mu, logvar = self.split(params)
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class Laplace(Likelihood):
    """Laplace with a learned per-dimension log-scale (a second network output)."""

    num_params = 2

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        loc, log_scale = self.split(params)
        return laplace_log_prob(x, loc, log_scale)

    def mean(self, params: Tensor) -> Tensor:
        return self.split(params)[0]

    def sample(self, params: Tensor) -> Tensor:
        loc, log_scale = self.split(params)
        return torch.distributions.Laplace(loc, log_scale.exp()).sample()


LIKELIHOODS = {
    "bernoulli": Bernoulli,
    "gaussian": Gaussian,
    "gaussian_learned": GaussianLearnedVariance,
    "laplace": Laplace,
}


def get_likelihood(name: str, scale: float = 1.0) -> Likelihood:
    """Build a head by name: bernoulli, gaussian (fixed `scale`), gaussian_learned, laplace."""
    if name not in LIKELIHOODS:
        raise ValueError(
            f"Unknown decoder likelihood {name!r}; choose one of {sorted(LIKELIHOODS)}."
        )
    return Gaussian(scale) if name == "gaussian" else LIKELIHOODS[name]()
