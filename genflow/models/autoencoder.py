"""Deterministic autoencoders: AE, DenoisingAE (Vincent et al. 2008), and a sampler made by
fitting a Gaussian to the training latents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from genflow.losses import half_sum_squared_error
from genflow.models.base import GenerativeModel
from genflow.nn.nets import Architecture, build_decoder, build_encoder

Noise = Literal["gaussian", "salt_pepper", "masking"]


def corrupt(x: Tensor, noise: Noise, level: float) -> Tensor:
    """Corrupt a batch for denoising training.

    gaussian: x + level * N(0, 1); salt_pepper: a `level` fraction of values set to 0 or 1 at
    random; masking: a `level` fraction of values set to 0 (Vincent et al. 2010, JMLR 11).
    """
    if noise == "gaussian":
        return x + level * torch.randn_like(x)
    hit = torch.rand_like(x) < level
    if noise == "masking":
        return x.masked_fill(hit, 0.0)
    if noise == "salt_pepper":
        salt = (torch.rand_like(x) < 0.5).to(x.dtype)
        return torch.where(hit, salt, x)
    raise ValueError(f"Unknown noise {noise!r}; choose gaussian, salt_pepper or masking.")


def gaussian_fit(
    count: Tensor, total: Tensor, outer: Tensor, covariance: Literal["diag", "full"]
) -> tuple[Tensor, Tensor]:
    """Maximum-likelihood Gaussian from sufficient statistics: n, sum z, sum z z^T.

    Returns the mean and a lower-triangular scale L with L L^T = Sigma (+ a small jitter).
    """
    mean = total / count
    cov = outer / count - torch.outer(mean, mean)
    if covariance == "diag":
        cov = torch.diag(cov.diagonal())
    eye = torch.eye(len(mean), dtype=cov.dtype, device=cov.device)
    return mean, torch.linalg.cholesky(cov + 1e-6 * eye)


def _check_covariance(covariance: str) -> str:
    if covariance not in ("diag", "full"):
        raise ValueError(f"Unknown covariance {covariance!r}; choose diag or full.")
    return covariance


class AE(GenerativeModel):
    """Autoencoder x -> z -> x_hat, trained by reconstruction, and a sampler p(z) = N(m, S)
    fitted to the training latents.

    Loss per example: 0.5 * sum (x_hat - x)^2 ("mse", the seed's) or the binary cross-entropy
    ("bce"), averaged over the batch. For image data the decoder output passes through a sigmoid
    so reconstructions lie in [0, 1] like the data. The latent Gaussian is refit at the end of
    every training epoch from that epoch's latents of the clean inputs, so every checkpoint can
    sample; `fit_latent_gaussian(loader)` refits it with the final weights.

    Args:
        latent_dim: size of z.
        architecture: conv (any even image size), mlp, or seed (the seed's 28x28 conv net).
        hidden_dims: widths of the MLP encoder (the decoder mirrors them).
        channels: width of the first conv layer.
        loss: mse or bce.
        covariance: full or diag covariance of the latent Gaussian.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        latent_dim: int = 16,
        architecture: Architecture = "conv",
        hidden_dims: Sequence[int] = (1024,),
        channels: int = 32,
        loss: Literal["mse", "bce"] = "mse",
        covariance: Literal["diag", "full"] = "full",
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}.")
        if loss not in ("mse", "bce"):
            raise ValueError(f"Unknown loss {loss!r}; choose mse or bce.")
        self.latent_dim = latent_dim
        self.loss_name = loss
        self.covariance = _check_covariance(covariance)
        nets = dict(hidden_dims=hidden_dims, channels=channels)
        self.encoder = build_encoder(architecture, self.data_shape, latent_dim, **nets)
        self.decoder = build_decoder(architecture, latent_dim, self.data_shape, 1, **nets)
        # the fitted latent Gaussian travels in checkpoints
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_scale_tril", torch.eye(latent_dim))
        self.register_buffer("latent_fitted", torch.tensor(False))
        self._reset_latent_stats()

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder}

    # ---- contract -----------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        out = self.decoder(z)
        return torch.sigmoid(out) if self.num_bits is not None else out

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """Decode z ~ N(m, temperature^2 S), the Gaussian fitted to the training latents."""
        self.check_sample_args(num_samples, labels)
        if not bool(self.latent_fitted):
            raise RuntimeError(
                f"{type(self).__name__}.sample() needs the latent Gaussian, which is fitted "
                f"during training (at the end of each epoch). Train the model first, or call "
                f"model.fit_latent_gaussian(train_dataloader)."
            )
        eps = torch.randn(num_samples, self.latent_dim, device=self.device)
        z = self.latent_mean + temperature * eps @ self.latent_scale_tril.T
        return self.decode(z)

    # ---- objective ----------------------------------------------------------------------
    def reconstruction_loss(self, x_in: Tensor, x_target: Tensor) -> tuple[Tensor, Tensor]:
        """Per-example loss of reconstructing x_target from x_in, and the latents of x_in."""
        z = self.encoder(x_in)
        out = self.decoder(z)
        if self.loss_name == "bce":
            loss = F.binary_cross_entropy_with_logits(out, x_target, reduction="none")
            return loss.flatten(1).sum(1), z
        x_hat = torch.sigmoid(out) if self.num_bits is not None else out
        return half_sum_squared_error(x_hat, x_target), z

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, _ = batch
        self.check_batch(x)
        loss, z = self.reconstruction_loss(x, x)
        self._accumulate_latents(z.detach())
        loss = loss.mean()
        self.log_stage("train", {"loss": loss})
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        x, _ = batch
        self.check_batch(x)
        loss, _ = self.reconstruction_loss(x, x)
        self.log_example_means(stage, {"loss": loss}, prog_bar=True)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    # ---- the latent Gaussian ------------------------------------------------------------
    def _reset_latent_stats(self) -> None:
        L = self.latent_dim
        # float64 sums: sum z z^T over an epoch loses precision in float32
        self._stats = [torch.zeros((), dtype=torch.float64), torch.zeros(L, dtype=torch.float64),
                       torch.zeros(L, L, dtype=torch.float64)]  # fmt: skip

    def _accumulate_latents(self, z: Tensor) -> None:
        z = z.double()
        if self._stats[1].device != z.device:
            self._stats = [s.to(z.device) for s in self._stats]
        self._stats[0] += z.shape[0]
        self._stats[1] += z.sum(0)
        self._stats[2] += z.T @ z

    def _finish_latent_fit(self) -> None:
        stats = self._stats
        if self.trainer is not None and self.trainer.world_size > 1:
            stats = [self.trainer.strategy.reduce(s, reduce_op="sum") for s in stats]
        if stats[0] > 1:
            mean, scale_tril = gaussian_fit(*stats, covariance=self.covariance)
            self.latent_mean.copy_(mean)
            self.latent_scale_tril.copy_(scale_tril)
            self.latent_fitted.fill_(True)
        self._reset_latent_stats()

    # the epoch's partial sums travel in checkpoints, so a run resumed mid-epoch fits the same
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["latent_stats"] = [s.cpu() for s in self._stats]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        if "latent_stats" in checkpoint:
            self._stats = [s.to(self.device) for s in checkpoint["latent_stats"]]

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # At the last batch, before validation and checkpointing, so checkpoints can sample.
        if self.trainer.is_last_batch:
            self._finish_latent_fit()

    @torch.no_grad()
    def fit_latent_gaussian(
        self, dataloader, covariance: Literal["diag", "full"] | None = None
    ) -> None:
        """Refit the latent Gaussian over a whole loader of (x, y) batches, in eval mode;
        `covariance` switches between a diagonal and a full fit (and stays for later fits)."""
        if covariance is not None:
            self.covariance = self.hparams["covariance"] = _check_covariance(covariance)
        was_training = self.training
        self.eval()
        self._reset_latent_stats()
        for x, _ in dataloader:
            self._accumulate_latents(self.encoder(x.to(self.device)))
        self._finish_latent_fit()
        self.train(was_training)


class DenoisingAE(AE):
    """Denoising autoencoder (Vincent et al. 2008, ICML): reconstruct the clean x from a
    corrupted copy. The latent Gaussian is fitted to latents of *clean* inputs.

    Args:
        noise: gaussian, salt_pepper or masking.
        noise_level: the Gaussian std, or the fraction of values corrupted.
        **kwargs: the arguments of `AE`.
    """

    def __init__(self, noise: Noise = "gaussian", noise_level: float = 0.3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if noise not in ("gaussian", "salt_pepper", "masking"):
            raise ValueError(f"Unknown noise {noise!r}; choose gaussian, salt_pepper or masking.")
        if noise_level < 0 or (noise != "gaussian" and noise_level > 1):
            raise ValueError(
                f"noise_level must be >= 0 (and <= 1 for a fraction), got {noise_level}."
            )
        self.noise = noise
        self.noise_level = noise_level

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, _ = batch
        self.check_batch(x)
        loss, _ = self.reconstruction_loss(corrupt(x, self.noise, self.noise_level), x)
        with torch.no_grad():
            self._accumulate_latents(self.encoder(x))
        loss = loss.mean()
        self.log_stage("train", {"loss": loss})
        return loss
