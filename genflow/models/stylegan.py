"""StyleGAN: a style-based generator trained as a non-saturating GAN with lazy R1, style mixing
regularization, a moving average of the generator and a tracked mean w for truncation.

The networks and the math live in `genflow.nn.stylegan`; this module holds the objective and the
sampling controls. `StyleGAN` subclasses `GAN`, so the alternation, the generator's moving average,
the noise stream and its counters, checkpoints, validation figures and DDP behaviour are the GAN
family's.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from genflow.losses import discriminator_loss, non_saturating_generator_loss, r1_penalty
from genflow.models.gan import GAN
from genflow.nn.stylegan import (
    RESOLUTIONS,
    NoiseMode,
    StyleDiscriminator,
    StyleGANGenerator,
    broadcast_ws,
    mix_styles,
    style_mixing_crossovers,
    truncate,
)


class StyleGAN(GAN):
    """StyleGAN (Karras et al. 2019, arXiv:1812.04948) with the modulated / demodulated
    convolutions, skip generator and residual discriminator of StyleGAN2 (Karras et al. 2020,
    arXiv:1912.04958); networks in `genflow.nn.stylegan`.

    Training: the non-saturating loss; the R1 penalty (gamma / 2) ||grad D(x)||^2 on reals,
    computed lazily on every `r1_interval`-th critic step and then weighted by `r1_interval`
    (Karras et al. 2020, sec. 3.1, "lazy regularization"); style mixing regularization, each
    fake with probability `style_mixing_prob` from two codes crossed at a random layer (Karras
    et al. 2019, sec. 3.1); the mean w tracked as w_avg <- lerp(mean of the batch's w, w_avg,
    `w_avg_beta`, 0.995 as in the official code) on each generator step (a buffer, saved in
    checkpoints). Defaults are the papers': Adam with lr 0.002, betas (0, 0.99) for both
    networks (Karras et al. 2020, appendix B), the mapping network's learning rate times 0.01
    through its equalized-LR multiplier (2019, appendix C), R1 gamma 10 (2019, FFHQ) every 16
    steps, mixing probability 0.9.

    Sampling (with the averaged generator when `ema_decay` is set): `sample(n, psi=...)`
    truncates w towards w_avg; `mix(z_a, z_b, crossover)` takes the styles from `crossover` on
    from z_b; the per-layer noise is fresh ("random"), the fixed maps saved with the weights
    ("const") or off ("none"). `latent_shape` is w's, (w_dim,): `decode(w)` draws the image of w
    at every layer. The model space is [-1, 1]; the generator ends without tanh, so
    `to_data_space` clamps its images.

    Args:
        size: image side, 28, 32 or 64; None takes it from data_shape, which it must match.
        latent_dim: size of z ~ N(0, I).
        w_dim: size of w (and of the mapping network's hidden layers).
        mapping_layers: depth of the mapping network.
        mapping_lr_multiplier: learning-rate multiplier of the mapping network.
        channels: feature width of the full-resolution blocks (doubled per halving of the side).
        max_channels: cap on the feature width.
        r1_gamma: gamma of the R1 penalty; 0 turns it off.
        r1_interval: compute R1 on every this many critic steps (1: every step, not lazy).
        style_mixing_prob: probability that a training fake mixes two codes.
        w_avg_beta: decay of the tracked mean w.
        mbstd_group_size: group size of the discriminator's minibatch standard deviation.
        ema_decay, clip_grad_norm, optimizer_*, lr_scheduler_*, scheduler_interval: as `GAN`.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        size: int | None = None,
        latent_dim: int = 512,
        w_dim: int = 512,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        channels: int = 32,
        max_channels: int = 256,
        r1_gamma: float = 10.0,
        r1_interval: int = 16,
        style_mixing_prob: float = 0.9,
        w_avg_beta: float = 0.995,
        mbstd_group_size: int = 4,
        ema_decay: float | None = 0.999,
        clip_grad_norm: float | None = None,
        optimizer_g: OptimizerCallable | None = None,
        optimizer_d: OptimizerCallable | None = None,
        lr_scheduler_g: LRSchedulerCallable | None = None,
        lr_scheduler_d: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
    ) -> None:
        _check_style_args(r1_gamma, r1_interval, style_mixing_prob, w_avg_beta, w_dim)
        self.size = stylegan_size(data_shape, size)
        self.nets = dict(channels=channels, max_channels=max_channels)
        self.mbstd_group_size = mbstd_group_size
        self._mapping_args = dict(
            w_dim=w_dim, mapping_layers=mapping_layers, lr_multiplier=mapping_lr_multiplier
        )
        # GAN builds both networks through `build_generator` and `build_critic` (below), and
        # keeps the generator's moving average
        super().__init__(
            data_shape, num_bits, num_classes, latent_dim=latent_dim, n_critic=1,
            ema_decay=ema_decay, clip_grad_norm=clip_grad_norm, optimizer_g=optimizer_g,
            optimizer_d=optimizer_d, lr_scheduler_g=lr_scheduler_g, lr_scheduler_d=lr_scheduler_d,
            scheduler_interval=scheduler_interval,
        )  # fmt: skip
        # only StyleGAN's own arguments (not GAN's architecture choices, which it does not
        # take), so that load_from_checkpoint rebuilds it
        self.hparams.clear()
        self.save_hyperparameters(
            ignore=["optimizer_g", "optimizer_d", "lr_scheduler_g", "lr_scheduler_d"]
        )
        self.w_dim, self.num_ws = w_dim, self.generator.num_ws
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.style_mixing_prob, self.w_avg_beta = style_mixing_prob, w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    # ---- GAN hooks ----------------------------------------------------------------------------
    def default_optimizer(self, net: Literal["g", "d"]) -> OptimizerCallable:
        return partial(torch.optim.Adam, lr=0.002, betas=(0.0, 0.99), eps=1e-8)

    def build_generator(self, architecture, upsample, **nets) -> nn.Module:
        return StyleGANGenerator(
            self.size, self.data_shape[0], self.latent_dim, self._mapping_args["w_dim"],
            self._mapping_args["mapping_layers"], self._mapping_args["lr_multiplier"], **self.nets,
        )  # fmt: skip

    def build_critic(self, architecture, norm, **nets) -> nn.Module:
        return StyleDiscriminator(
            self.size, self.data_shape[0], mbstd_group_size=self.mbstd_group_size, **self.nets
        )

    def compilable_networks(self) -> dict[str, nn.Module]:
        # the two parts are called on their own; R1 differentiates the critic twice
        return {"mapping": self.generator.mapping, "synthesis": self.generator.synthesis}

    def generate(
        self,
        z: Tensor,
        y: Tensor | None = None,
        ema: bool = False,
        *,
        psi: float = 1.0,
        noise_mode: NoiseMode = "random",
    ) -> Tensor:
        """G(z) in model space, one w for every layer, truncated by `psi` towards w_avg."""
        return self.synthesize(self.to_w(z, ema), ema, psi=psi, noise_mode=noise_mode)

    def critic_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of D on reals and mixed-style fakes, plus on every `r1_interval`-th
        critic step (r1_gamma / 2) * r1_interval * R1 (lazy regularization), (B,)."""
        fake, _ = self.training_fakes(x.shape[0])
        lazy_r1 = self.r1_gamma > 0 and self.critic_steps % self.r1_interval == 0
        x = x.detach().requires_grad_(lazy_r1)
        real_logits = self.critic(x)
        loss = discriminator_loss(real_logits, self.critic(fake.detach()))
        if lazy_r1:
            r1 = r1_penalty(real_logits, x)
            loss = loss + (self.r1_gamma / 2) * self.r1_interval * r1
            if self._trainer is not None:
                self.log("train/r1", r1.detach().mean(), on_step=True, on_epoch=False)
        return loss

    def generator_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """-log D(G(z)) for mixed-style fakes, (B,); also moves the tracked mean w."""
        fake, w = self.training_fakes(x.shape[0])
        self.track_w_avg(w)
        return non_saturating_generator_loss(self.critic(fake))

    def eval_metrics(self, x: Tensor, y: Tensor, z: Tensor) -> dict[str, Tensor]:
        # the fixed noise maps: the same fakes at every evaluation, like the fixed z
        fake = self.generate(z, ema=False, noise_mode="const")
        return {"loss_d": discriminator_loss(self.critic(x), self.critic(fake))}

    # ---- training ---------------------------------------------------------------------------
    def training_fakes(self, n: int) -> tuple[Tensor, Tensor]:
        """n fakes with style mixing regularization and fresh noise, all drawn from this rank's
        training noise stream; returns them and the first code's w, (n, w_dim)."""
        rng = self.noise_generator()
        z = torch.randn(2, n, self.latent_dim, generator=rng, device=self.device)
        w = self.generator.mapping(z.flatten(0, 1)).unflatten(0, (2, n))  # (2, n, w_dim)
        crossover = style_mixing_crossovers(n, self.num_ws, self.style_mixing_prob, rng)
        ws = mix_styles(
            broadcast_ws(w[0], self.num_ws), broadcast_ws(w[1], self.num_ws), crossover
        )
        return self.generator.synthesis(ws, "random", rng), w[0]

    @torch.no_grad()
    def track_w_avg(self, w: Tensor) -> None:
        """w_avg <- w_avg + (1 - beta) (mean of w over the batch - w_avg). Under DDP the batch
        mean is averaged over the ranks first (w_dim numbers), so every rank keeps the same
        w_avg and truncation means the same thing on each."""
        mean = w.detach().mean(0)
        if self._trainer is not None and self.trainer.world_size > 1:
            mean = self.trainer.strategy.reduce(mean, reduce_op="mean")
        self.w_avg.lerp_(mean.to(self.w_avg.dtype), 1 - self.w_avg_beta)

    # ---- sampling controls ----------------------------------------------------------------------
    def _net(self, ema: bool) -> StyleGANGenerator:
        return self.generator_ema if ema and self.generator_ema is not None else self.generator

    def to_w(self, z: Tensor, ema: bool = True) -> Tensor:
        """The mapping network's w of each z: (B, latent_dim) -> (B, w_dim)."""
        return self._net(ema).mapping(z)

    def synthesize(
        self, w: Tensor, ema: bool = True, *, psi: float = 1.0, noise_mode: NoiseMode = "const"
    ) -> Tensor:
        """Images in model space of w (B, w_dim), used at every layer, or of per-layer styles
        ws (B, num_ws, w_dim); each style is first truncated by `psi` towards w_avg."""
        ws = broadcast_ws(w, self.num_ws) if w.dim() == 2 else w
        return self._net(ema).synthesis(truncate(ws, self.w_avg, psi), noise_mode)

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        labels: Tensor | None = None,
        temperature: float = 1.0,
        psi: float = 1.0,
        noise_mode: NoiseMode = "random",
    ) -> Tensor:
        """G(z) for z ~ N(0, temperature^2 I) from the global RNG, w truncated by `psi`, in the
        data space; the averaged generator when `ema_decay` is set."""
        self.check_sample_args(num_samples, labels)
        z = temperature * torch.randn(num_samples, self.latent_dim, device=self.device)
        return self.images_of(z, psi=psi, noise_mode=noise_mode)

    @torch.no_grad()
    def random_latents(
        self, num_codes: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """w = f(z) of z ~ N(0, temperature^2 I), (num_codes, w_dim): codes of `latent_shape`
        drawn as the generator sees them (w is not normal), for interpolation figures;
        `generator` draws z on the CPU."""
        z = temperature * torch.randn(num_codes, self.latent_dim, generator=generator)
        return self.to_w(z.to(self.device))

    @torch.no_grad()
    def decode(
        self, w: Tensor, labels: Tensor | None = None, *, psi: float = 1.0,
        noise_mode: NoiseMode = "const",
    ) -> Tensor:  # fmt: skip
        """The image of w (B, w_dim) at every layer (or of ws (B, num_ws, w_dim)), in the data
        space, with the fixed noise maps so that paths through W change only with w."""
        return self.to_data_space(self.synthesize(w, True, psi=psi, noise_mode=noise_mode))

    @torch.no_grad()
    def images_of(self, z: Tensor, *, psi: float = 1.0, noise_mode: NoiseMode = "const") -> Tensor:
        """Images of given codes z (B, latent_dim) in the data space, w truncated by `psi`, with
        the averaged generator; the fixed noise maps by default, as for figures."""
        return self.to_data_space(self.generate(z, ema=True, psi=psi, noise_mode=noise_mode))

    @torch.no_grad()
    def mix(
        self,
        z_a: Tensor,
        z_b: Tensor,
        crossover: int,
        stop: int | None = None,
        *,
        psi: float = 1.0,
        noise_mode: NoiseMode = "const",
    ) -> Tensor:
        """Style mixing at sampling time: z_a's styles with layers [crossover, stop) (to the
        end when stop is None) from z_b, in the data space. z_a, z_b (B, latent_dim); the
        groups of `style_groups` give the paper's coarse / middle / fine crossovers."""
        stop = self.num_ws if stop is None else stop
        if not 0 <= crossover <= stop <= self.num_ws:
            raise ValueError(
                f"Need 0 <= crossover <= stop <= num_ws = {self.num_ws}, got crossover "
                f"{crossover} and stop {stop}. Layers are numbered 0 (4x4) to {self.num_ws - 1}; "
                f"style_groups lists the coarse, middle and fine ranges."
            )
        ws_a, ws_b = (broadcast_ws(self.to_w(z), self.num_ws) for z in (z_a, z_b))
        ws = mix_styles(ws_a, ws_b, crossover, stop)
        return self.to_data_space(self.synthesize(ws, True, psi=psi, noise_mode=noise_mode))

    @property
    def style_groups(self) -> dict[str, tuple[int, int]]:
        """Style indices [start, stop) of the coarse, middle and fine layers."""
        return self.generator.synthesis.style_groups()

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.w_dim,)


def stylegan_size(data_shape: Sequence[int], size: int | None) -> int:
    """The image side: `size`, or data_shape's; square images of side 28, 32 or 64 only."""
    shape = tuple(int(s) for s in data_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(
            f"StyleGAN generates square images (C, H, H), but data_shape is {shape}. Use "
            f"image data of side 28, 32 or 64, or a GAN with architecture: mlp for vectors."
        )
    if size is not None and size != shape[1]:
        raise ValueError(
            f"size {size} does not match the data's side {shape[1]} (data_shape {shape}). Leave "
            f"size unset to take the data's, or resize the data."
        )
    side = shape[1]
    if side not in RESOLUTIONS:
        raise ValueError(
            f"StyleGAN is built for images of side {', '.join(map(str, RESOLUTIONS))}, got "
            f"{side}. Resize the images (e.g. the folder DataModule's image_size) to one of them."
        )
    return side


def _check_style_args(r1_gamma, r1_interval, style_mixing_prob, w_avg_beta, w_dim) -> None:
    if r1_gamma < 0:
        raise ValueError(f"r1_gamma must be >= 0 (0 turns R1 off), got {r1_gamma}.")
    if r1_interval < 1:
        raise ValueError(
            f"r1_interval must be >= 1 critic steps, got {r1_interval}. Use 16 (Karras et al. "
            f"2020) for lazy R1, or 1 to compute it on every step."
        )
    if not 0 <= style_mixing_prob <= 1:
        raise ValueError(f"style_mixing_prob must lie in [0, 1], got {style_mixing_prob}.")
    if not 0 <= w_avg_beta < 1:
        raise ValueError(f"w_avg_beta must lie in [0, 1), got {w_avg_beta} (the paper: 0.995).")
    if w_dim < 1:
        raise ValueError(f"w_dim must be >= 1, got {w_dim}.")
