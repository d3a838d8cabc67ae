"""Generative adversarial networks with manual alternating optimization: GAN (minimax or
non-saturating), DCGAN networks, WGAN (weight clipping), WGAN-GP, a class-conditional GAN with a
projection discriminator, and BiGAN.

The networks come first, the objectives live in `genflow.losses`, and one LightningModule at
the bottom alternates `n_critic` critic steps with one generator step. Images are modelled in
[-1, 1] (the generator ends in tanh); `sample` and `decode` return the data space ([0, 1]).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.strategies import DDPStrategy
from torch import Tensor, nn

from genflow.losses import (
    discriminator_loss,
    gradient_penalty,
    minimax_generator_loss,
    non_saturating_generator_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from genflow.models.base import GenerativeModel
from genflow.nn.blocks import (
    Norm,
    Upsample,
    add_spectral_norm,
    dcgan_init,
    downsample_conv,
    ema_update,
    norm_2d,
    upsample_conv,
)
from genflow.nn.nets import MLP
from genflow.nn.noise import example_keys, keyed_normal

GANArchitecture = Literal["dcgan", "mlp"]
GeneratorLoss = Literal["non_saturating", "minimax"]


# ---- networks ---------------------------------------------------------------------------------
def dcgan_depth(height: int, width: int) -> int:
    """Number of 2x up-samplings from DCGAN's start size: 64 -> 4, 32 -> 3 (both from 4x4),
    28 -> 2 (from 7x7); any size that halves evenly down to at most 8 works."""
    n = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) > 7:
        height, width, n = height // 2, width // 2, n + 1
    if n == 0 or max(height, width) > 8:
        raise ValueError(
            f"The DCGAN networks need image sides that halve evenly down to 8 or less (28, 32, "
            f"64, ...), got {height << n}x{width << n}. Resize the images or use "
            f"architecture: mlp."
        )
    return n


class DCGANGenerator(nn.Module):
    """Radford et al. 2016 (arXiv:1511.06434): project z to a (k * C, h0, w0) map, then
    up-sample 2x per block with BatchNorm and ReLU, halving the width, ending in tanh.

    (B, in_dim) -> (B, C, H, W) in [-1, 1]; `upsample` picks transposed convolutions (the paper)
    or interpolation + convolution.
    """

    def __init__(
        self,
        in_dim: int,
        data_shape: Sequence[int],
        channels: int = 64,
        upsample: Upsample = "transposed",
    ) -> None:
        super().__init__()
        c, h, w = data_shape
        n = dcgan_depth(h, w)
        widths = [channels * 2 ** (n - 1 - i) for i in range(n)]  # e.g. 512, 256, 128, 64
        self.project = nn.Sequential(
            nn.ConvTranspose2d(in_dim, widths[0], (h >> n, w >> n), bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            blocks += [upsample_conv(a, b, upsample), nn.BatchNorm2d(b), nn.ReLU()]
        blocks += [upsample_conv(widths[-1], c, upsample), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)
        self.apply(dcgan_init)

    def forward(self, z: Tensor) -> Tensor:
        h = self.project(z[:, :, None, None])  # (B, in_dim, 1, 1) -> (B, C0, h0, w0)
        return self.blocks(h)  # -> (B, C, H, W)


class DCGANFeatures(nn.Module):
    """The DCGAN discriminator without its last layer: stride-2 convolutions doubling the width,
    LeakyReLU(0.2), normalization after all but the first. (B, C, H, W) -> (B, out_dim)."""

    def __init__(
        self, data_shape: Sequence[int], channels: int = 64, norm: Norm = "batch"
    ) -> None:
        super().__init__()
        c, h, w = data_shape
        n = dcgan_depth(h, w)
        widths = [c] + [channels * 2**i for i in range(n)]  # e.g. 3, 64, 128, 256, 512
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers += [
                downsample_conv(a, b),
                *([norm_2d(norm, b)] if i else []),
                nn.LeakyReLU(0.2),
            ]
        self.conv = nn.Sequential(*layers, nn.Flatten())
        self.out_dim = widths[-1] * (h >> n) * (w >> n)
        self.apply(dcgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)  # (B, C, H, W) -> (B, C_n * h0 * w0)


class MLPFeatures(nn.Module):
    """Flatten, then an MLP with a nonlinearity after its last layer: (B, *shape) -> (B, out)."""

    def __init__(self, in_shape: Sequence[int], hidden_dims: Sequence[int]) -> None:
        super().__init__()
        *hidden, last = hidden_dims
        self.net = nn.Sequential(nn.Flatten(), MLP(math.prod(in_shape), hidden, last), nn.SiLU())
        self.out_dim = last

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MLPGenerator(nn.Module):
    """(B, in_dim) -> (B, *data_shape): an MLP, ending in tanh for images ([-1, 1])."""

    def __init__(
        self, in_dim: int, data_shape: Sequence[int], hidden_dims: Sequence[int], images: bool
    ):
        super().__init__()
        self.net = nn.Sequential(
            MLP(in_dim, hidden_dims, math.prod(data_shape)),
            nn.Unflatten(1, tuple(data_shape)),
            nn.Tanh() if images else nn.Identity(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class Critic(nn.Module):
    """A discriminator or critic: features h(x), then a linear score. With `num_classes`, the
    projection discriminator of Miyato & Koyama 2018 (arXiv:1802.05637) adds <embed(y), h(x)>."""

    def __init__(self, features: nn.Module, num_classes: int = 0) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(features.out_dim, 1)
        self.embed = nn.Embedding(num_classes, features.out_dim) if num_classes else None

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.features(x)  # (B, F)
        score = self.head(h).squeeze(1)  # (B,)
        if self.embed is not None:
            score = score + (self.embed(y) * h).sum(1)
        return score


class JointCritic(nn.Module):
    """BiGAN's discriminator on (x, z) pairs: features of x and of z, concatenated, then an
    MLP score (Donahue et al. 2017, arXiv:1605.09782)."""

    def __init__(self, x_features: nn.Module, latent_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.x_features = x_features
        self.z_features = MLPFeatures((latent_dim,), (hidden,))
        self.head = MLP(x_features.out_dim + hidden, (hidden,), 1)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        h = torch.cat([self.x_features(x), self.z_features(z)], dim=1)  # (B, F + hidden)
        return self.head(h).squeeze(1)  # (B,)


def build_generator(
    architecture: GANArchitecture, in_dim: int, data_shape: tuple[int, ...], channels: int,
    hidden_dims: Sequence[int], upsample: Upsample,
) -> nn.Module:  # fmt: skip
    """(B, in_dim) -> (B, *data_shape), in [-1, 1] for images."""
    _check_architecture(architecture, data_shape)
    if architecture == "dcgan":
        return DCGANGenerator(in_dim, data_shape, channels, upsample)
    return MLPGenerator(in_dim, data_shape, hidden_dims, images=len(data_shape) == 3)


def build_features(
    architecture: GANArchitecture, data_shape: tuple[int, ...], channels: int,
    hidden_dims: Sequence[int], norm: Norm,
) -> nn.Module:  # fmt: skip
    """(B, *data_shape) -> (B, out_dim) features for a critic or an encoder."""
    _check_architecture(architecture, data_shape)
    if architecture == "dcgan":
        return DCGANFeatures(data_shape, channels, norm)
    return MLPFeatures(data_shape, hidden_dims)


def _check_architecture(architecture: str, data_shape: tuple[int, ...]) -> None:
    if architecture not in ("dcgan", "mlp"):
        raise ValueError(f"Unknown architecture {architecture!r}; choose 'dcgan' or 'mlp'.")
    if architecture == "dcgan" and len(data_shape) != 3:
        raise ValueError(
            f"The DCGAN networks need images (C, H, W), but the data has shape {data_shape}. "
            f"Use architecture: mlp for vector data such as Toy2D."
        )


# ---- the LightningModules -------------------------------------------------------------------
class AlternatingModel(GenerativeModel):
    """Networks trained in turn by manual optimization, one optimizer each: the GANs here and
    the image-to-image GANs (`genflow.models.image2image`).

    Subclasses set `automatic_optimization = False`, `clip_grad_norm` (None or a max norm) and
    `scheduler_interval` ("epoch" or "step"), and make each step with `_optimize`.
    """

    clip_grad_norm: float | None = None
    scheduler_interval: Literal["epoch", "step"] = "epoch"

    def setup(self, stage: str) -> None:
        strategy = self._trainer.strategy if self._trainer is not None else None
        if isinstance(strategy, DDPStrategy) and strategy.world_size > 1:
            if not getattr(strategy, "_ddp_kwargs", {}).get("find_unused_parameters", False):
                raise ValueError(
                    f"{type(self).__name__} steps its generator and critic in turn, so each "
                    f"backward pass leaves the other network's parameters unused, which plain "
                    f"DDP rejects. Run with --trainer.strategy ddp_find_unused_parameters_true."
                )

    def _optimize(self, optimizer, loss_fn: Callable[[], Tensor]) -> Tensor:
        """One step of one network; the other network's parameters get no gradient."""
        with self.toggled_optimizer(optimizer):
            loss = loss_fn()
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            if self.clip_grad_norm is not None:
                self.clip_gradients(optimizer, self.clip_grad_norm, "norm")
            optimizer.step()
        if self.scheduler_interval == "step":
            self._step_scheduler(optimizer)
        return loss.detach()

    def _step_scheduler(self, optimizer) -> None:
        for scheduler in self._schedulers():
            if scheduler.optimizer is optimizer.optimizer:
                scheduler.step()

    def _schedulers(self) -> list:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return schedulers if isinstance(schedulers, list) else [schedulers]

    def on_train_epoch_end(self) -> None:
        # An epoch cut short (max_steps, a stop request) does not count: a run resumed from it
        # finishes the epoch first, as an uninterrupted run would, and steps then.
        if self.scheduler_interval == "epoch" and self.trainer.is_last_batch:
            for scheduler in self._schedulers():
                scheduler.step()


class GAN(AlternatingModel):
    """A generator G and a discriminator D trained by alternating steps (Goodfellow et al. 2014,
    arXiv:1406.2661), with manual optimization.

    Each training batch makes one D step; every `n_critic`-th batch also makes one G step
    (counted in batches, not in Lightning's `global_step`, which counts every optimizer step).
    Losses are per-example values averaged over the batch (see `genflow.losses`). Training noise
    is a pure function of (noise seed, DDP rank, draw number), so each rank draws its own noise
    and a resumed run draws exactly what an uninterrupted one would.

    Args:
        latent_dim: size of z ~ N(0, I).
        loss: generator loss, non_saturating (-log D(G(z))) or minimax (log(1 - D(G(z)))).
        architecture: dcgan (images of side 28, 32, 64, ...) or mlp (any data, e.g. Toy2D).
        channels: DCGAN width: of the generator's last hidden block and the critic's first.
        hidden_dims: MLP widths of both networks.
        upsample: transposed (DCGAN) or nearest / bilinear interpolation + convolution.
        norm_d: normalization in the critic: batch, layer or none.
        spectral_norm: spectral normalization of every critic weight (Miyato et al. 2018).
        n_critic: critic steps per generator step.
        ema_decay: keep an exponential moving average of G's weights with this decay (e.g.
            0.999), saved in checkpoints and used by `sample` and `decode`; None keeps none.
        clip_grad_norm: clip each network's gradient norm to this value before its step.
        optimizer_g / optimizer_d: callables building each optimizer; None gives the family's
            default (GAN: Adam, lr 2e-4, betas (0.5, 0.999), Radford et al. 2016).
        lr_scheduler_g / lr_scheduler_d: optional scheduler callables, stepped by hand.
        scheduler_interval: step schedulers once per epoch, or once per own optimizer step.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        latent_dim: int = 100,
        loss: GeneratorLoss = "non_saturating",
        architecture: GANArchitecture = "dcgan",
        channels: int = 64,
        hidden_dims: Sequence[int] = (256, 256),
        upsample: Upsample = "transposed",
        norm_d: Norm = "batch",
        spectral_norm: bool = False,
        n_critic: int = 1,
        ema_decay: float | None = None,
        clip_grad_norm: float | None = None,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        lr_scheduler_g: LRSchedulerCallable | None = None,
        lr_scheduler_d: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, optimizer=None, lr_scheduler=None)
        self.save_hyperparameters(
            ignore=["optimizer_g", "optimizer_d", "lr_scheduler_g", "lr_scheduler_d"]
        )
        _check_gan_args(latent_dim, n_critic, ema_decay, loss, scheduler_interval)
        self.automatic_optimization = False
        self.latent_dim = latent_dim
        self.loss = loss
        self.n_critic = n_critic
        self.ema_decay = ema_decay
        self.clip_grad_norm = clip_grad_norm
        self.optimizer_g = optimizer_g or self.default_optimizer("g")
        self.optimizer_d = optimizer_d or self.default_optimizer("d")
        self.lr_scheduler_g, self.lr_scheduler_d = lr_scheduler_g, lr_scheduler_d
        self.scheduler_interval = scheduler_interval
        nets = dict(channels=channels, hidden_dims=hidden_dims)
        self.generator = self.build_generator(architecture, upsample, **nets)
        self.discriminator = self.build_critic(architecture, norm_d, **nets)
        if spectral_norm:
            add_spectral_norm(self.discriminator)
        self.generator_ema = (
            copy.deepcopy(self.generator).requires_grad_(False) if ema_decay else None
        )
        # Counters of the alternation and of the noise stream; saved in checkpoints.
        self.critic_steps = self.generator_steps = self.noise_draws = 0
        self.noise_seed = torch.initial_seed() % 2**62

    # ---- family hooks (subclasses override) -----------------------------------------------
    def default_optimizer(self, net: Literal["g", "d"]) -> OptimizerCallable:
        return partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))

    @property
    def generator_in_dim(self) -> int:
        return self.latent_dim

    def build_generator(
        self, architecture: GANArchitecture, upsample: Upsample, **nets
    ) -> nn.Module:
        return build_generator(
            architecture, self.generator_in_dim, self.data_shape, upsample=upsample, **nets
        )

    def build_critic(self, architecture: GANArchitecture, norm: Norm, **nets) -> nn.Module:
        return Critic(build_features(architecture, self.data_shape, norm=norm, **nets))

    def generate(self, z: Tensor, y: Tensor | None = None, ema: bool = False) -> Tensor:
        """G(z) in model space, (B, *data_shape); `ema` uses the averaged weights if kept."""
        net = self.generator_ema if ema and self.generator_ema is not None else self.generator
        return net(z)

    def critic(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """D's score (logit) per example, (B,)."""
        return self.discriminator(x)

    def critic_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The discriminator's per-example loss on a real batch x (model space), (B,)."""
        fake = self.generate(self.training_noise(x.shape[0]), y)
        return discriminator_loss(self.critic(x, y), self.critic(fake, y))

    def generator_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """The generator's per-example loss for a batch the size of x, (B,)."""
        fake_logits = self.critic(self.generate(self.training_noise(x.shape[0]), y), y)
        if self.loss == "minimax":
            return minimax_generator_loss(fake_logits)
        return non_saturating_generator_loss(fake_logits)

    def after_critic_step(self) -> None:
        """Called after every critic step (WGAN clips the weights here)."""

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        return self.generator.parameters()

    def eval_metrics(self, x: Tensor, y: Tensor, z: Tensor) -> dict[str, Tensor]:
        """Per-example validation figures on real x against G(z)."""
        return {
            "loss_d": discriminator_loss(self.critic(x, y), self.critic(self.generate(z, y), y))
        }

    # ---- data space ---------------------------------------------------------------------
    @property
    def _images(self) -> bool:
        return len(self.data_shape) == 3

    def to_model_space(self, x: Tensor) -> Tensor:
        return x * 2 - 1 if self._images else x

    def to_data_space(self, x: Tensor) -> Tensor:
        return ((x + 1) / 2).clamp(0, 1) if self._images else x

    # ---- contract -------------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.latent_dim,)

    @torch.no_grad()
    def decode(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """G(z) in the data space, with the averaged weights when `ema_decay` is set."""
        return self.to_data_space(self.generate(z, labels, ema=True))

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """G(z) for z ~ N(0, temperature^2 I) drawn from the global RNG, in the data space."""
        self.check_sample_args(num_samples, labels)
        z = temperature * torch.randn(num_samples, self.latent_dim, device=self.device)
        return self.decode(z, labels)

    # ---- noise ----------------------------------------------------------------------------
    def noise_generator(self) -> torch.Generator:
        """A generator seeded by (noise seed, rank, draw number): each rank draws its own noise
        and the stream survives checkpoint resume, independently of the global RNG."""
        seed = hash((self.noise_seed, self.global_rank, self.noise_draws)) & (2**63 - 1)
        self.noise_draws += 1
        return torch.Generator(self.device).manual_seed(seed)

    def training_noise(self, n: int) -> Tensor:
        """z ~ N(0, I), (n, latent_dim), from this rank's training noise stream."""
        return torch.randn(
            n, self.latent_dim, generator=self.noise_generator(), device=self.device
        )

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    # ---- training ---------------------------------------------------------------------------
    def configure_optimizers(self):
        opt_g = self.optimizer_g(self.generator_parameters())
        opt_d = self.optimizer_d(self.discriminator.parameters())
        schedulers = [
            make(opt) for make, opt in ((self.lr_scheduler_g, opt_g), (self.lr_scheduler_d, opt_d))
            if make is not None
        ]  # fmt: skip
        return [opt_g, opt_d], schedulers

    def training_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        self.check_batch(x)
        x = self.to_model_space(x)
        opt_g, opt_d = self.optimizers()
        loss_d = self._optimize(opt_d, lambda: self.critic_loss(x, y).mean())
        self.after_critic_step()
        self.critic_steps += 1
        metrics = {"loss_d": loss_d}
        if self.critic_steps % self.n_critic == 0:
            metrics["loss_g"] = self._optimize(opt_g, lambda: self.generator_loss(x, y).mean())
            self.generator_steps += 1
            if self.generator_ema is not None:
                ema_update(self.generator_ema, self.generator, self.ema_decay)
        self.log_stage("train", metrics, prog_bar=True)

    def _eval_step(self, batch, batch_idx: int, stage: str) -> None:
        x, y = batch
        self.check_batch(x)
        # each real example is scored against the fake of its own fixed noise: the same fakes at
        # every evaluation, whatever the batching or the number of DDP ranks
        z = keyed_normal(example_keys(x), (self.latent_dim,))
        self.log_example_means(stage, self.eval_metrics(self.to_model_space(x), y, z))

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, batch_idx, "test")

    # ---- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_counters"] = {
            "critic_steps": self.critic_steps,
            "generator_steps": self.generator_steps,
            "noise_draws": self.noise_draws,
            "noise_seed": self.noise_seed,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        for name, value in checkpoint.get("gan_counters", {}).items():
            setattr(self, name, value)


class WGAN(GAN):
    """Wasserstein GAN with weight clipping (Arjovsky et al. 2017, arXiv:1701.07875): a critic
    f trained to maximize f(x) - f(G(z)) with every weight clipped to [-clip_value, clip_value]
    after each step; `n_critic` critic steps per generator step, RMSprop with lr 5e-5 by default
    (the paper's Algorithm 1). Validation logs `wasserstein`, the estimate f(x) - f(G(z)).

    Args:
        clip_value: c, the bound of every critic weight.
    """

    def __init__(self, *args, clip_value: float = 0.01, n_critic: int = 5, **kwargs) -> None:
        if clip_value <= 0:
            raise ValueError(f"clip_value must be > 0, got {clip_value}.")
        self.clip_value = clip_value
        super().__init__(*args, n_critic=n_critic, **kwargs)

    def default_optimizer(self, net: Literal["g", "d"]) -> OptimizerCallable:
        return partial(torch.optim.RMSprop, lr=5e-5)

    def critic_loss(self, x: Tensor, y: Tensor) -> Tensor:
        fake = self.generate(self.training_noise(x.shape[0]), y)
        return wasserstein_critic_loss(self.critic(x, y), self.critic(fake, y))

    def generator_loss(self, x: Tensor, y: Tensor) -> Tensor:
        fake = self.generate(self.training_noise(x.shape[0]), y)
        return wasserstein_generator_loss(self.critic(fake, y))

    @torch.no_grad()
    def after_critic_step(self) -> None:
        for p in self.discriminator.parameters():
            p.clamp_(-self.clip_value, self.clip_value)

    def eval_metrics(self, x: Tensor, y: Tensor, z: Tensor) -> dict[str, Tensor]:
        return {"wasserstein": self.critic(x, y) - self.critic(self.generate(z, y), y)}


class WGANGP(WGAN):
    """WGAN with a gradient penalty instead of weight clipping (Gulrajani et al. 2017,
    arXiv:1704.00028): the critic loss adds lambda * (||grad f(x_hat)|| - 1)^2 at random
    interpolates x_hat, one weight per example. Defaults follow the paper's Algorithm 1: lambda
    10, n_critic 5, Adam lr 1e-4, betas (0, 0.9). The critic has no BatchNorm, which would make
    the per-example penalty depend on the batch; `norm_d` is layer (or none).

    Args:
        gp_weight: lambda.
    """

    def __init__(self, *args, gp_weight: float = 10.0, norm_d: Norm = "layer", **kwargs) -> None:
        if norm_d == "batch":
            raise ValueError(
                "WGAN-GP penalizes the critic's gradient per example, which BatchNorm couples "
                "across the batch (Gulrajani et al. 2017, section 4). Use norm_d: layer or none."
            )
        if gp_weight < 0:
            raise ValueError(f"gp_weight (lambda) must be >= 0, got {gp_weight}.")
        self.gp_weight = gp_weight
        super().__init__(*args, norm_d=norm_d, clip_value=math.inf, **kwargs)

    def default_optimizer(self, net: Literal["g", "d"]) -> OptimizerCallable:
        return partial(torch.optim.Adam, lr=1e-4, betas=(0.0, 0.9))

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator}  # the penalty differentiates the critic twice

    def critic_loss(self, x: Tensor, y: Tensor) -> Tensor:
        fake = self.generate(self.training_noise(x.shape[0]), y)
        eps = torch.rand(x.shape[0], generator=self.noise_generator(), device=self.device)
        penalty = gradient_penalty(lambda v: self.critic(v, y), x, fake, eps)
        return (
            wasserstein_critic_loss(self.critic(x, y), self.critic(fake, y))
            + self.gp_weight * penalty
        )

    def after_critic_step(self) -> None:
        pass


class ConditionalGAN(GAN):
    """Class-conditional GAN (Mirza & Osindero 2014, arXiv:1411.1784): G(z, y) reads a learned
    class embedding concatenated to z; the critic is a projection discriminator (Miyato &
    Koyama 2018, arXiv:1802.05637). Fakes are drawn for the labels of the real batch.
    `sample(n)` without labels cycles through the classes (0, 1, ..., 0, 1, ...), so a grid of
    n = k * num_classes samples has equal numbers of each class.

    Args:
        embed_dim: size of the generator's class embedding.
    """

    conditional = True

    def __init__(self, *args, embed_dim: int = 32, **kwargs) -> None:
        self.embed_dim = embed_dim
        super().__init__(*args, **kwargs)
        self.class_embedding = nn.Embedding(self.num_classes, embed_dim)

    @property
    def generator_in_dim(self) -> int:
        return self.latent_dim + self.embed_dim

    def build_critic(self, architecture: GANArchitecture, norm: Norm, **nets) -> nn.Module:
        features = build_features(architecture, self.data_shape, norm=norm, **nets)
        return Critic(features, num_classes=self.num_classes)

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.generator.parameters()
        yield from self.class_embedding.parameters()

    def generate(self, z: Tensor, y: Tensor | None = None, ema: bool = False) -> Tensor:
        if y is None:
            raise NotImplementedError(
                "ConditionalGAN generates for given classes: pass labels=... to sample() or "
                "decode(); tools that decode latent codes without labels do not apply to it."
            )
        net = self.generator_ema if ema and self.generator_ema is not None else self.generator
        return net(torch.cat([z, self.class_embedding(y)], dim=1))

    def critic(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.discriminator(x, y)

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        self.check_sample_args(num_samples)
        if labels is None:
            labels = torch.arange(num_samples, device=self.device) % self.num_classes
        labels = torch.as_tensor(labels, device=self.device).long()
        if labels.shape != (num_samples,) or labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"labels must be {num_samples} class indices in [0, {self.num_classes}), got "
                f"shape {tuple(labels.shape)} with values {labels.min()}..{labels.max()}. Pass "
                f"one label per sample (or none for classes 0, 1, ... in turn), each below "
                f"num_classes."
            )
        return super().sample(num_samples, labels=labels, temperature=temperature)


class BiGAN(GAN):
    """Bidirectional GAN (Donahue et al. 2017, arXiv:1605.09782; also ALI, Dumoulin et al.
    2017): an encoder E learns the inverse of G by fooling a discriminator on (x, z) pairs,
    real (x, E(x)) against fake (G(z), z). G and E share one optimizer and are trained with
    the labels flipped (the non-saturating form). `encode(x)` is E(x); `decode(encode(x))` is
    the reconstruction G(E(x)).
    """

    def __init__(self, *args, architecture: GANArchitecture = "dcgan", **kwargs) -> None:
        super().__init__(*args, architecture=architecture, **kwargs)
        nets = dict(channels=self.hparams.channels, hidden_dims=self.hparams.hidden_dims)
        features = build_features(architecture, self.data_shape, norm="batch", **nets)
        self.encoder = nn.Sequential(features, nn.Linear(features.out_dim, self.latent_dim))

    def build_critic(self, architecture: GANArchitecture, norm: Norm, **nets) -> nn.Module:
        features = build_features(architecture, self.data_shape, norm=norm, **nets)
        return JointCritic(features, self.latent_dim)

    def generator_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.generator.parameters()
        yield from self.encoder.parameters()

    def compilable_networks(self) -> dict[str, nn.Module]:
        return super().compilable_networks() | {"encoder": self.encoder}

    def _pair_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.training_noise(x.shape[0])
        return self.discriminator(x, self.encoder(x)), self.discriminator(self.generate(z), z)

    def critic_loss(self, x: Tensor, y: Tensor) -> Tensor:
        return discriminator_loss(*self._pair_logits(x))

    def generator_loss(self, x: Tensor, y: Tensor) -> Tensor:
        real_logits, fake_logits = self._pair_logits(x)
        return discriminator_loss(fake_logits, real_logits)  # labels flipped

    def eval_metrics(self, x: Tensor, y: Tensor, z: Tensor) -> dict[str, Tensor]:
        real = self.discriminator(x, self.encoder(x))
        fake = self.discriminator(self.generate(z), z)
        reconstruction = self.generate(self.encoder(x))
        return {
            "loss_d": discriminator_loss(real, fake),
            "rec_l1": (self.to_data_space(reconstruction) - self.to_data_space(x))
            .abs()
            .flatten(1)
            .mean(1),
        }

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        return self.encoder(self.to_model_space(x))


def _check_gan_args(latent_dim, n_critic, ema_decay, loss, scheduler_interval) -> None:
    if latent_dim < 1:
        raise ValueError(f"latent_dim must be >= 1, got {latent_dim}.")
    if n_critic < 1:
        raise ValueError(
            f"n_critic (critic steps per generator step) must be >= 1, got {n_critic}. Use 1 "
            f"for GAN/DCGAN and 5 for WGAN and WGAN-GP (the papers' settings)."
        )
    if ema_decay is not None and not 0 < ema_decay < 1:
        raise ValueError(
            f"ema_decay must lie in (0, 1) or be None, got {ema_decay}. Use e.g. 0.999 to keep "
            f"an exponential moving average of the generator, or leave it unset for none."
        )
    if loss not in ("non_saturating", "minimax"):
        raise ValueError(f"Unknown loss {loss!r}; choose 'non_saturating' or 'minimax'.")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(
            f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}."
        )
