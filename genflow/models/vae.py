"""Variational autoencoder (Kingma & Welling 2014, arXiv:1312.6114) with the importance-weighted
bound of Burda et al. 2016 (arXiv:1509.00519) as its log-likelihood estimate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from genflow.losses import (
    dequantize,
    kl_normal,
    log_mean_exp,
    reparameterize,
    standard_normal_log_prob,
)
from genflow.metrics.likelihood import bits_per_dim
from genflow.models.base import GenerativeModel
from genflow.nn.likelihoods import gaussian_log_prob, get_likelihood
from genflow.nn.nets import Architecture, build_decoder, build_encoder
from genflow.nn.noise import example_keys, fixed_dequantize, keyed_normal


class VAE(GenerativeModel):
    """Variational autoencoder with a diagonal-Gaussian encoder and a chosen decoder likelihood.

    Loss per example: beta * KL(q(z|x) || N(0, I)) - E_q[log p(x|z)], summed over data and
    latent dimensions, averaged over the batch. With a continuous decoder (gaussian,
    gaussian_learned, laplace) on discrete data the model works on uniformly dequantized data and
    subtracts D * num_bits * ln 2, so every reported figure is a bound on the log-probability of
    the discrete data in nats, and bits/dim follow. `log_prob` is the IWAE bound with K samples.

    Args:
        latent_dim: size of z.
        likelihood: decoder p(x|z): bernoulli (binarized data), gaussian (fixed
            `decoder_scale`; scale 1 is the seed's 0.5 * sum (x - mu)^2 plus its constant),
            gaussian_learned (per-pixel variance), laplace (per-pixel scale).
        beta: weight of the KL term (Higgins et al. 2017); 1 gives the ELBO.
        decoder_scale: standard deviation of the fixed-variance Gaussian decoder.
        architecture: conv (any even image size), mlp, or seed (the seed's 28x28 conv net).
        hidden_dims: widths of the MLP encoder (the decoder mirrors them).
        channels: width of the first conv layer (doubling at each down-sampling).
        num_importance_samples: K used by `log_prob` and the test-time IWAE bound.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 1,
        num_classes: int = 10,
        latent_dim: int = 32,
        likelihood: Literal["bernoulli", "gaussian", "gaussian_learned", "laplace"] = "bernoulli",
        beta: float = 1.0,
        decoder_scale: float = 1.0,
        architecture: Architecture = "conv",
        hidden_dims: Sequence[int] = (1024,),
        channels: int = 32,
        num_importance_samples: int = 100,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        _check_vae_args(latent_dim, beta, num_importance_samples, likelihood, num_bits)
        self.latent_dim = latent_dim
        self.beta = beta
        self.num_importance_samples = num_importance_samples
        self.likelihood = get_likelihood(likelihood, decoder_scale)
        nets = dict(hidden_dims=hidden_dims, channels=channels)
        self.encoder = build_encoder(architecture, self.data_shape, 2 * latent_dim, **nets)
        self.decoder = build_decoder(
            architecture, latent_dim, self.data_shape, self.likelihood.num_params, **nets
        )

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    # ---- model space --------------------------------------------------------------------
    @property
    def _dequantizes(self) -> bool:
        return self.num_bits is not None and not self.likelihood.discrete

    def _to_model_space(self, x: Tensor) -> Tensor:
        """Discrete data dequantized: fresh noise in training, the example's own in evaluation."""
        if not self._dequantizes:
            return x
        return (
            dequantize(x, self.num_bits) if self.training else fixed_dequantize(x, self.num_bits)
        )

    @property
    def _log_bin_volume(self) -> float:
        """log of the bin volume each discrete value occupies in model space (0 if none)."""
        return -self.num_dims * self.num_bits * math.log(2) if self._dequantizes else 0.0

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (B, latent_dim)."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x|z) in nats of the data as yielded, (B,) (a bound when dequantizing)."""
        u = self._to_model_space(x)
        return self.likelihood.log_prob(u, self.decoder(z)) + self._log_bin_volume

    def elbo_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Single-sample E_q[log p(x|z)] and the closed-form KL, each (B,). In evaluation the
        posterior sample uses the example's fixed noise (`genflow.nn.noise`), so validation
        figures repeat exactly and do not depend on batching or the number of ranks."""
        mu, logvar = self.posterior(x)
        eps = (
            None if self.training else keyed_normal(example_keys(x), mu.shape[1:], dtype=mu.dtype)
        )
        z = reparameterize(mu, logvar, eps=eps)
        return self.log_likelihood(x, z), kl_normal(mu, logvar)

    # ---- contract -----------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(x)[0]

    def decode(self, z: Tensor) -> Tensor:
        mean = self.likelihood.mean(self.decoder(z))
        return mean.clamp(0, 1) if self.num_bits is not None else mean

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """Decoder means at z ~ N(0, temperature^2 I) for images (the usual picture of a VAE);
        draws from p(x|z) for continuous vector data, whose noise is part of the model."""
        self.check_sample_args(num_samples, labels)
        z = temperature * torch.randn(num_samples, self.latent_dim, device=self.device)
        if self.num_bits is None:
            return self.likelihood.sample(self.decoder(z))
        return self.decode(z)

    @torch.no_grad()
    def log_prob(self, x: Tensor, num_samples: int | None = None, max_rows: int = 8192) -> Tensor:
        """IWAE lower bound on log p(x) with exactly K = num_samples importance samples, (B,).

        Runs in eval mode without gradients (the previous mode is restored). The K samples go
        through the decoder in chunks of max(1, max_rows // B) samples of the whole batch, so any
        K fits in memory; memory grows with max(max_rows, B) rows. Sample i of an example is
        the i-th draw of that example's fixed noise stream, so the bound is a fixed function of
        the example, whatever the batch, chunking or number of DDP ranks.
        """
        K = self.num_importance_samples if num_samples is None else num_samples
        if K < 1:
            raise ValueError(
                f"The IWAE bound needs K >= 1 importance samples, got K = {K}. Pass "
                f"num_importance_samples >= 1 (e.g. 100, or 5000 for published figures)."
            )
        was_training = self.training
        self.eval()
        try:
            mu, logvar = self.posterior(x)
            keys = example_keys(x)
            chunk = max(1, max_rows // x.shape[0])
            log_w = [
                self._log_weights(x, mu, logvar, keys, s, min(chunk, K - s))
                for s in range(0, K, chunk)
            ]
            return log_mean_exp(torch.cat(log_w), dim=0)
        finally:
            self.train(was_training)

    def _log_weights(
        self, x: Tensor, mu: Tensor, logvar: Tensor, keys: Tensor, first: int, k: int
    ) -> Tensor:
        """log p(x, z_i) - log q(z_i|x) for samples i = first .. first+k-1, (k, B)."""
        latent = mu.shape[1]
        eps = keyed_normal(keys, (k, latent), start=first * latent, dtype=mu.dtype)
        z = reparameterize(mu, logvar, num_samples=k, eps=eps.transpose(0, 1))  # (k, B, L)
        flat_z = z.flatten(0, 1)  # (k*B, L)
        x_rep = x.expand(k, *x.shape).flatten(0, 1)  # (k*B, *data_shape)
        log_px_z = self.log_likelihood(x_rep, flat_z).view(k, -1)
        log_pz = standard_normal_log_prob(flat_z).view(k, -1)
        log_qz = gaussian_log_prob(flat_z, mu.repeat(k, 1), logvar.repeat(k, 1)).view(k, -1)
        return log_px_z + log_pz - log_qz

    # ---- training -----------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, _ = batch
        self.check_batch(x)
        rec, kl = self.elbo_terms(x)
        loss = (self.beta * kl - rec).mean()
        self.log_stage("train", {"loss": loss, "rec": -rec.mean(), "kl": kl.mean()})
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        x, _ = batch
        self.check_batch(x)
        rec, kl = self.elbo_terms(x)
        elbo = rec - kl
        elbo_bpd = bits_per_dim(elbo, self.num_dims)
        metrics = {"elbo": elbo, "kl": kl, "elbo_bpd": elbo_bpd}
        # The tighter IWAE bound is worth its K decoder passes only here; the `Likelihood`
        # callback adds val/bpd and val/nll of it every N epochs where wanted.
        if stage == "test":
            iwae = self.log_prob(x)
            metrics |= {"iwae": iwae, "nll": -iwae, "bpd": bits_per_dim(iwae, self.num_dims)}
        self.log_example_means(stage, metrics, prog_bar=stage == "val")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")


def _check_vae_args(
    latent_dim: int, beta: float, k: int, likelihood: str, num_bits: int | None
) -> None:
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}.")
    if beta < 0:
        raise ValueError(f"beta weighs the KL term and must be >= 0, got {beta}.")
    if k < 1:
        raise ValueError(f"num_importance_samples (K) must be >= 1, got {k}.")
    if likelihood == "bernoulli" and num_bits != 1:
        raise ValueError(
            f"A Bernoulli decoder models binary data, but the data has num_bits={num_bits}. "
            f"Binarize it (data init_args: binarize: dynamic) or choose likelihood: gaussian, "
            f"gaussian_learned or laplace, which model {num_bits}-bit data through dequantization."
        )
