"""Normalizing flows with exact likelihoods: NICE (Dinh et al. 2014, arXiv:1410.8516), Real NVP
(Dinh et al. 2016, arXiv:1605.08803) and the seed's fully connected coupling flow.

Likelihood accounting for discrete data x = k / (2^b - 1) (the DataModule's [0, 1] values):
u = (k + U) / 2^b is the uniformly dequantized value in [0, 1)^D, the flow models the density
of u (after the logit transform, whose log-det is part of the flow), and

    log P(x) >= E_U[log p(u)] - D * b * ln 2        (Theis et al. 2016, arXiv:1511.01844)

is reported in nats of the discrete data, so bits/dim = -log P(x) / (D ln 2) compare with the
papers' figures. Continuous data (num_bits None) is modelled as it is. Training draws fresh
noise U per batch; evaluation and `log_prob` use noise that is a fixed function of each example
(`hashed_uniform`), so figures repeat exactly and do not depend on batches or DDP ranks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from genflow.losses import dequantize, standard_normal_log_prob
from genflow.metrics.likelihood import bits_per_dim
from genflow.models.base import GenerativeModel
from genflow.nn.flows import (
    AdditiveCoupling,
    AffineCoupling,
    DiagonalScaling,
    FactorOut,
    FlowLayer,
    FlowSequential,
    LogitTransform,
    Reshape,
    ResNetST,
    Squeeze,
    TanhMLPST,
    Unsqueeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    mlp,
    normalization,
    quantize,
    random_complemented_masks,
    standard_logistic_log_prob,
    standard_logistic_sample,
)
from genflow.nn.noise import bin_levels, fixed_dequantize

Prior = Literal["normal", "logistic"]
Norm = Literal["none", "actnorm", "batchnorm"]


class FlowModel(GenerativeModel):
    """What every flow shares: data handling, the likelihood, sampling, encode/decode, training.

    A subclass builds `flow`, the bijection from model space (after the logit transform) to the
    latent, and passes it to `_set_flow`. `bijection` is then logit + flow, the whole map from
    dequantized data u to the latent z, with log p(u) = log p_Z(z) + log|det dz/du|.

    Args:
        logit_alpha: apply the logit transform logit(alpha + (1 - 2 alpha) u) to the dequantized
            data; None models u in [0, 1) directly. Only for discrete data.
        prior: the base distribution, standard normal or standard logistic (NICE on MNIST).
        noise_seed: seed of the fixed evaluation noise (`hashed_uniform`).
    """

    logs_likelihood_in_validation = True

    def __init__(
        self,
        data_shape: Sequence[int],
        num_bits: int | None,
        num_classes: int,
        logit_alpha: float | None,
        prior: Prior,
        noise_seed: int,
        optimizer: OptimizerCallable,
        lr_scheduler: LRSchedulerCallable | None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, optimizer, lr_scheduler)
        if prior not in ("normal", "logistic"):
            raise ValueError(f"Unknown prior {prior!r}; choose normal or logistic.")
        if logit_alpha is not None and num_bits is None:
            raise ValueError(
                "The logit transform maps [0, 1] data, but this data is continuous (num_bits "
                "None). Set logit_alpha: null for continuous data such as Toy2D."
            )
        self.prior, self.noise_seed = prior, noise_seed
        self.logit = LogitTransform(logit_alpha) if logit_alpha is not None else None
        self.ddp_record: dict[str, float] = {}  # last evaluation figures, synced over ranks

    def _set_flow(self, flow: FlowLayer) -> None:
        self.flow = flow
        pre = [] if self.logit is None else [self.logit]
        self.bijection = FlowSequential(*pre, flow)

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"flow": self.flow}

    # ---- data space <-> model space -----------------------------------------------------------
    @property
    def _log_bin_volume(self) -> float:
        """log volume of one discrete value's bin in u-space, -D b ln 2 (0 if continuous)."""
        return 0.0 if self.num_bits is None else -self.num_dims * self.num_bits * math.log(2)

    def fixed_noise_input(self, x: Tensor) -> Tensor:
        """u with the example's fixed noise (evaluation), or x itself for continuous data."""
        return x if self.num_bits is None else fixed_dequantize(x, self.num_bits, self.noise_seed)

    def _model_input(self, x: Tensor, noise: Tensor | None) -> Tensor:
        if self.num_bits is None:
            return x
        if noise is None:
            return dequantize(x, self.num_bits)
        return (bin_levels(x, self.num_bits) + noise) / 2**self.num_bits

    def _to_data(self, u: Tensor) -> Tensor:
        u = u.reshape(-1, *self.data_shape)
        return u if self.num_bits is None else quantize(u, self.num_bits)

    # ---- likelihood -----------------------------------------------------------------------
    def prior_log_prob(self, z: Tensor) -> Tensor:
        if self.prior == "logistic":
            return standard_logistic_log_prob(z)
        return standard_normal_log_prob(z)

    def log_density(self, u: Tensor) -> Tensor:
        """log p(u), (B,), of model-space input u (dequantized data in [0, 1), or continuous
        data), differentiable, in the current train/eval mode."""
        z, log_det = self.bijection(u)
        return self.prior_log_prob(z) + log_det

    def log_likelihood(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        """log P(x) in nats of the data as yielded, (B,), differentiable: log p(u) - D b ln 2
        with u = (k + noise) / 2^b (fresh uniform noise when None) for discrete data."""
        return self.log_density(self._model_input(x, noise)) + self._log_bin_volume

    @contextmanager
    def _evaluating(self):
        """Eval mode inside (batch norm uses its running averages), the previous mode after."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        """log P(x), (B,), in eval mode, without gradients, with each example's fixed noise."""
        with self._evaluating():
            return self.log_density(self.fixed_noise_input(x)) + self._log_bin_volume

    # ---- latent space ---------------------------------------------------------------------
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return self.data_shape

    def encode(self, x: Tensor) -> Tensor:
        """z of x; discrete values are taken at the centre of their bin, (k + 1/2) / 2^b."""
        if self.num_bits is not None:
            x = (bin_levels(x, self.num_bits) + 0.5) / 2**self.num_bits
        with self._evaluating():
            return self.bijection(x)[0].reshape(-1, *self.latent_shape)

    def decode(self, z: Tensor) -> Tensor:
        """x of z; for discrete data the value of the bin the flow maps z into, so
        decode(encode(x)) == x exactly. Both run in eval mode."""
        with self._evaluating():
            return self._to_data(self.bijection.inverse(z)[0])

    @torch.no_grad()
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """decode(z), z ~ prior scaled by `temperature`: exact draws of the discrete data at
        T = 1 (the dequantized draw u falls into the bin of the value returned)."""
        self.check_sample_args(num_samples, labels)
        shape = (num_samples, *self.latent_shape)
        if self.prior == "logistic":
            z = standard_logistic_sample(shape, device=self.device)
        else:
            z = torch.randn(shape, device=self.device)
        return self.decode(temperature * z.to(self.dtype))

    # ---- training -------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, _ = batch
        self.check_batch(x)
        log_p = self.log_likelihood(x)
        loss = -log_p.mean()  # a non-finite loss is caught by the DivergenceGuard callback
        self.log_stage("train", {"loss": loss, "bpd": bits_per_dim(log_p, self.num_dims).mean()})
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        x, _ = batch
        self.check_batch(x)
        log_p = self.log_density(self.fixed_noise_input(x)) + self._log_bin_volume
        self.log_likelihood_metrics(stage, log_p)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _record(self, stage: str) -> None:
        metrics = self.trainer.callback_metrics
        self.ddp_record |= {k: float(v) for k, v in metrics.items() if k.startswith(stage)}

    def on_validation_end(self) -> None:
        self._record("val/")

    def on_test_end(self) -> None:
        self._record("test/")


# ---- the seed's fully connected coupling flow -------------------------------------------------
class CouplingFlow(FlowModel):
    """The seed's fully connected affine coupling flow for 2D and tabular data.

    Each layer is c(x) = b*x + (1-b)*(x*exp(s(b*x)) + t(b*x)) with s and t tanh MLPs; the masks b
    are drawn at random for each pair of layers and complemented within the pair, so each pair
    transforms every coordinate (Dinh et al. 2016 for the coupling). Images are flattened.

    Args:
        num_layers: number of coupling layers (even).
        hidden_dims: widths of the hidden layers of s and of t.
        tanh_scale: bound s as scale * tanh(s_raw).
        norm: a normalization layer after every coupling (none, actnorm, batchnorm).
        mask_seed: seed of the random masks (they are also saved in checkpoints).
        logit_alpha: logit transform for discrete data (see FlowModel); None for continuous.
        prior: base distribution.
        noise_seed: seed of the fixed evaluation noise.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (2,),
        num_bits: int | None = None,
        num_classes: int = 1,
        num_layers: int = 8,
        hidden_dims: Sequence[int] = (64, 64),
        tanh_scale: bool = True,
        norm: Norm = "none",
        mask_seed: int = 0,
        logit_alpha: float | None = None,
        prior: Prior = "normal",
        noise_seed: int = 0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(
            data_shape, num_bits, num_classes, logit_alpha, prior, noise_seed, optimizer,
            lr_scheduler,
        )  # fmt: skip
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        dim = self.num_dims
        masks = random_complemented_masks(
            dim, num_layers, torch.Generator().manual_seed(mask_seed)
        )
        layers: list[FlowLayer] = [Reshape(self.data_shape, (dim,))]
        for b in masks:
            layers.append(AffineCoupling((dim,), b, TanhMLPST(dim, hidden_dims), tanh_scale))
            layers += normalization(norm, dim)
        self._set_flow(FlowSequential(*layers))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.num_dims,)


# ---- NICE -------------------------------------------------------------------------------------
class NICE(FlowModel):
    """NICE (Dinh et al. 2014, arXiv:1410.8516): additive couplings on alternating halves of
    the flattened data, ReLU MLP shift networks, and a final diagonal scaling layer.

    The paper's MNIST model: 4 couplings, 5 hidden layers of 1000 units, a standard logistic
    prior, data dequantized to [0, 1) without a logit transform (section 5.1).

    Args:
        num_couplings: number of additive coupling layers.
        hidden_dims: widths of the hidden layers of each shift network m.
        logit_alpha: logit transform of the dequantized data; None (the paper) models [0, 1).
        prior: logistic (the paper, MNIST) or normal.
        noise_seed: seed of the fixed evaluation noise.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        num_couplings: int = 4,
        hidden_dims: Sequence[int] = (1000,) * 5,
        logit_alpha: float | None = None,
        prior: Prior = "logistic",
        noise_seed: int = 0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(
            data_shape, num_bits, num_classes, logit_alpha, prior, noise_seed, optimizer,
            lr_scheduler,
        )  # fmt: skip
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if num_couplings < 1:
            raise ValueError(f"num_couplings must be >= 1, got {num_couplings}.")
        dim = self.num_dims
        layers: list[FlowLayer] = [Reshape(self.data_shape, (dim,))]
        for i in range(num_couplings):
            shift = mlp(dim, hidden_dims, dim, nn.ReLU)
            layers.append(AdditiveCoupling(alternating_mask(dim, i % 2), shift))
        layers.append(DiagonalScaling((dim,)))
        self._set_flow(FlowSequential(*layers))

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.num_dims,)


# ---- Real NVP ---------------------------------------------------------------------------------
def _coupling(shape, mask, features, num_blocks, tanh_scale, checkerboard) -> AffineCoupling:
    c = shape[0]
    net = ResNetST(c + int(checkerboard), c, features, num_blocks)
    return AffineCoupling(shape, mask, net, tanh_scale, mask_input=checkerboard)


def realnvp_scale(
    shape: tuple[int, int, int],
    num_scales: int,
    features: int,
    num_blocks: int,
    norm: str,
    tanh_scale: bool,
) -> FlowLayer:
    """One scale of Real NVP's multi-scale architecture (section 3.6), recursively.

    Final scale: 4 couplings with alternating checkerboard masks. Other scales: 3 checkerboard
    couplings, squeeze, 3 couplings with alternating channel masks, factor out half of the
    channels, the next scale on the other half, unsqueeze (so the latent has the data shape).
    Each coupling is followed by the chosen normalization.
    """
    c, h, w = shape
    args = (features, num_blocks, tanh_scale)

    def block(shape, mask, checkerboard) -> list[FlowLayer]:
        return [_coupling(shape, mask, *args, checkerboard), *normalization(norm, shape[0])]

    checker = [checkerboard_mask(h, w, i % 2) for i in range(4 if num_scales == 1 else 3)]
    layers = [layer for m in checker for layer in block(shape, m, True)]
    if num_scales == 1:
        return FlowSequential(*layers)
    squeezed = (4 * c, h // 2, w // 2)
    layers.append(Squeeze())
    layers += [
        layer for i in range(3) for layer in block(squeezed, channel_mask(4 * c, i % 2), False)
    ]
    inner = realnvp_scale(
        (2 * c, h // 2, w // 2), num_scales - 1, features, num_blocks, norm, tanh_scale
    )
    layers += [FactorOut(inner), Unsqueeze()]
    return FlowSequential(*layers)


class RealNVP(FlowModel):
    """Real NVP (Dinh et al. 2016, arXiv:1605.08803) for images: affine couplings with
    checkerboard and channel-wise masks, squeeze, factor-out of half the variables at each
    scale, ResNet s/t networks, batch normalization (or ActNorm) inside the flow with its
    log-det, tanh-scaled s, on logit(alpha + (1 - 2 alpha) u) of the dequantized data.

    The paper's CIFAR-10 model (section 4.1): 2 scales (it "downscales only once"), 8 residual
    blocks of 64 feature maps, alpha = 0.05, batch normalization; 3.49 bits/dim on the test set
    (Table 1).

    Args:
        num_scales: number of scales; height and width must divide by 2^(num_scales - 1).
        features: feature maps of the s/t ResNets.
        num_blocks: residual blocks per s/t ResNet.
        norm: normalization after every coupling: batchnorm (the paper), actnorm or none.
        tanh_scale: bound s as scale * tanh(s_raw).
        logit_alpha: alpha of the logit transform (discrete data only).
        prior: base distribution.
        noise_seed: seed of the fixed evaluation noise.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (3, 32, 32),
        num_bits: int | None = 8,
        num_classes: int = 10,
        num_scales: int = 2,
        features: int = 64,
        num_blocks: int = 8,
        norm: Norm = "batchnorm",
        tanh_scale: bool = True,
        logit_alpha: float | None = 0.05,
        prior: Prior = "normal",
        noise_seed: int = 0,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(
            data_shape, num_bits, num_classes, logit_alpha, prior, noise_seed, optimizer,
            lr_scheduler,
        )  # fmt: skip
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        _check_realnvp_args(self.data_shape, num_scales, features, num_blocks)
        flow = realnvp_scale(self.data_shape, num_scales, features, num_blocks, norm, tanh_scale)
        self._set_flow(flow)


def _check_realnvp_args(shape: tuple[int, ...], num_scales: int, features: int, blocks: int):
    if len(shape) != 3:
        raise ValueError(
            f"RealNVP models images (C, H, W), but the data has shape {shape}. Use CouplingFlow "
            f"for vector data such as Toy2D."
        )
    if num_scales < 1 or features < 1 or blocks < 0:
        raise ValueError(
            f"RealNVP needs num_scales >= 1, features >= 1 and num_blocks >= 0, got "
            f"{num_scales}, {features}, {blocks}."
        )
    step = 2 ** (num_scales - 1)
    if shape[1] % step or shape[2] % step:
        raise ValueError(
            f"RealNVP with num_scales={num_scales} squeezes {num_scales - 1} time(s), so height "
            f"and width must divide by {step}, but the images are {shape[1]}x{shape[2]}. Lower "
            f"num_scales."
        )
