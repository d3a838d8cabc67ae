"""Objectives as plain tensor functions.

Every function returns one value per example, summed over the data (or latent) dimensions;
the caller averages over the batch. Nothing here knows about Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
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


def reparameterize(
    mu: Tensor, logvar: Tensor, num_samples: int | None = None, eps: Tensor | None = None
) -> Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I); with num_samples, a leading axis (K, B, ...).

    `eps` of that shape, when given, is used instead of a fresh draw (fixed evaluation noise).
    """
    std = torch.exp(0.5 * logvar)
    shape = mu.shape if num_samples is None else (num_samples, *mu.shape)
    if eps is None:
        eps = torch.randn(shape, dtype=mu.dtype, device=mu.device)
    elif eps.shape != shape:
        raise ValueError(f"eps has shape {tuple(eps.shape)}; reparameterize needs {tuple(shape)}.")
    return mu + std * eps


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


# ---- adversarial objectives (Goodfellow et al. 2014, arXiv:1406.2661; Arjovsky et al. 2017,
# arXiv:1701.07875; Gulrajani et al. 2017, arXiv:1704.00028). Each takes critic outputs, one per
# example, and returns the per-example loss (B,); "logits" are pre-sigmoid D outputs.
def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """-log D(x) - log(1 - D(G(z))): the discriminator's cross-entropy, with D = sigmoid."""
    return F.softplus(-real_logits) + F.softplus(fake_logits)


def minimax_generator_loss(fake_logits: Tensor) -> Tensor:
    """log(1 - D(G(z))), the generator's side of the minimax game. Its gradient vanishes where D
    confidently rejects the fakes, which is why the non-saturating loss is the usual choice."""
    return -F.softplus(fake_logits)


def non_saturating_generator_loss(fake_logits: Tensor) -> Tensor:
    """-log D(G(z)): the same fixed point as the minimax loss, strong gradients early on."""
    return F.softplus(-fake_logits)


def wasserstein_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """f(G(z)) - f(x): minimizing it makes f(x) - f(G(z)) estimate the Wasserstein-1 distance."""
    return fake_scores - real_scores


def wasserstein_generator_loss(fake_scores: Tensor) -> Tensor:
    """-f(G(z))."""
    return -fake_scores


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, eps: Tensor
) -> Tensor:
    """(||grad f(x_hat)||_2 - 1)^2 per example at x_hat = eps * x + (1 - eps) * G(z), (B,).

    `eps` holds one interpolation weight per example, shape (B,) (Gulrajani et al. 2017,
    Algorithm 1); the graph is kept so the penalty trains the critic. Multiply by lambda.
    """
    eps = eps.view(-1, *[1] * (real.dim() - 1))  # (B, 1, ..., 1)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2)
