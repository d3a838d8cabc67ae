"""Objectives as plain tensor functions.

Every function returns one value per example, summed over the data (or latent) dimensions
(the image-to-image terms at the end average over pixels, the scale their papers' weights
assume); the caller averages over the batch. Nothing here knows about Lightning.
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


def r1_penalty(real_logits: Tensor, reals: Tensor) -> Tensor:
    """||grad_x D(x)||^2 per example at the real data, (B,): the R1 regularizer (Mescheder et
    al. 2018, arXiv:1801.04406, eq. 9, without its gamma / 2). `reals` must require grad and
    `real_logits` (B,) come from it; the graph is kept so the penalty trains D."""
    (grad,) = torch.autograd.grad(real_logits.sum(), reals, create_graph=True)
    return grad.flatten(1).square().sum(1)


# ---- image-to-image objectives (pix2pix, Isola et al. 2017, arXiv:1611.07004; CycleGAN, Zhu et
# al. 2017, arXiv:1703.10593; StarGAN, Choi et al. 2018, arXiv:1711.09020). A PatchGAN scores a
# grid of patches, (B, 1, h, w): the adversarial losses average over that grid, as pix2pix
# averages "all responses to provide the ultimate output of D" (section 2.2.2), and accept (B,)
# scores too. The L1 terms average over pixels, because the papers' weights (lambda = 100 for
# pix2pix, 10 for CycleGAN's cycle) weigh a mean absolute error.
def least_squares_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """(1/2) (D(y) - 1)^2 + (1/2) D(G(x))^2 per example, averaged over a patch grid: LSGAN with
    targets b = 1 for reals and a = 0 for fakes (Mao et al. 2017, arXiv:1611.04076, eq. 2),
    which is also CycleGAN's discriminator objective "divided by 2" (Zhu et al. 2017, sec. 4)."""
    return 0.5 * _patch_mean((real_scores - 1).pow(2)) + 0.5 * _patch_mean(fake_scores.pow(2))


def least_squares_generator_loss(fake_scores: Tensor) -> Tensor:
    """(D(G(x)) - 1)^2 per example, averaged over a patch grid: CycleGAN's generator loss
    (Zhu et al. 2017, sec. 4), to which its lambda = 10 is matched. Mao et al.'s eq. 2 has a
    factor 1/2 here; it only halves the adversarial term's weight against the others."""
    return _patch_mean((fake_scores - 1).pow(2))


def l1_per_example(a: Tensor, b: Tensor) -> Tensor:
    """The mean absolute error over all but the batch axis, (B,): pix2pix's L1 term
    ||y - G(x, z)||_1 (Isola et al. 2017, eq. 3) at the scale its lambda = 100 assumes.
    Multiply by the number of values per example for the summed norm."""
    if a.shape != b.shape:
        raise ValueError(
            f"l1_per_example needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}; "
            f"compare each image with its own translation or reconstruction."
        )
    return _patch_mean((a - b).abs())


def cycle_consistency_loss(x: Tensor, x_rec: Tensor) -> Tensor:
    """||F(G(x)) - x||_1 per example as a mean over pixels (Zhu et al. 2017, eq. 2), for one
    direction; CycleGAN's cycle loss adds both directions and weighs them with lambda = 10."""
    return l1_per_example(x_rec, x)


def identity_loss(x: Tensor, g_of_x: Tensor) -> Tensor:
    """||G(y) - y||_1 per example as a mean over pixels, for y from G's target domain: keeps G
    near the identity there (Taigman et al. 2017, arXiv:1611.02200; Zhu et al. 2017, sec. 5.2,
    weighted 0.5 lambda)."""
    return l1_per_example(g_of_x, x)


def domain_classification_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """StarGAN's domain-classification loss -log D_cls(c | x) per example (Choi et al. 2018,
    eqs. 2-3): the discriminator learns it on reals with their true labels c', the generator on
    fakes G(x, c) with the target labels c.

    Integer labels (B,) are single domains: the cross entropy of logits (B, K). Float labels
    (B, K) of 0 / 1 are attribute sets (CelebA): binary cross entropy with logits, summed over
    the K attributes.
    """
    if not labels.is_floating_point():
        if labels.shape != logits.shape[:1] or logits.dim() != 2:
            raise ValueError(
                f"Integer labels are one domain per example: labels (B,) with logits (B, K); "
                f"got labels {tuple(labels.shape)} and logits {tuple(logits.shape)}. For "
                f"attribute sets give float 0 / 1 labels shaped like the logits."
            )
        return F.cross_entropy(logits, labels, reduction="none")
    if labels.shape != logits.shape:
        raise ValueError(
            f"Float labels are attribute sets shaped like the logits (B, K); got labels "
            f"{tuple(labels.shape)} and logits {tuple(logits.shape)}. For one domain per "
            f"example give int64 labels (B,)."
        )
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").sum(1)


def _patch_mean(t: Tensor) -> Tensor:
    """Mean over all but the batch axis, (B,); a (B,) tensor is returned as it is."""
    return t.flatten(1).mean(1) if t.dim() > 1 else t
