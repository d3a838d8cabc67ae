"""Convolutional building blocks of the adversarial family: 2x up- and down-sampling, DCGAN
weight initialization, spectral normalization and exponential moving averages of weights."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

Upsample = Literal["transposed", "nearest", "bilinear"]
Norm = Literal["batch", "layer", "none"]


def upsample_conv(in_channels: int, out_channels: int, mode: Upsample = "transposed") -> nn.Module:
    """A 2x up-sampling convolution, (B, C_in, H, W) -> (B, C_out, 2H, 2W).

    `transposed` is DCGAN's 4x4 stride-2 transposed convolution. `nearest` and `bilinear`
    interpolate first and then apply a 3x3 convolution, whose kernel overlaps evenly everywhere,
    so they avoid the checkerboard artifacts of uneven overlap (Odena et al. 2016, Distill,
    "Deconvolution and Checkerboard Artifacts").
    """
    if mode == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)
    if mode not in ("nearest", "bilinear"):
        raise ValueError(
            f"Unknown upsample {mode!r}; choose 'transposed', 'nearest' or 'bilinear'."
        )
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode=mode),
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
    )


def downsample_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """DCGAN's 4x4 stride-2 convolution, (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""
    return nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False)


def norm_2d(kind: Norm, channels: int) -> nn.Module:
    """BatchNorm, a per-example LayerNorm over (C, H, W) (GroupNorm with one group: the
    normalization WGAN-GP's critic may use, since a batch-wise norm breaks the per-example
    gradient penalty), or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {kind!r}; choose 'batch', 'layer' or 'none'.")


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016 (arXiv:1511.06434), section 4: conv weights ~ N(0, 0.02); BatchNorm
    scales ~ N(1, 0.02), shifts 0. Use as `net.apply(dcgan_init)`."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def add_spectral_norm(net: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018, arXiv:1802.05957) of every conv and linear
    weight of `net`, in place; returns `net`."""
    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            spectral_norm(module)
    return net


@torch.no_grad()
def ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model for every floating parameter and buffer
    (integer buffers such as BatchNorm's step count are copied)."""
    for avg, new in zip(_tensors(average), _tensors(model), strict=True):
        if avg.is_floating_point():
            avg.lerp_(new.to(avg.dtype), 1.0 - decay)
        else:
            avg.copy_(new)


def _tensors(module: nn.Module) -> list[Tensor]:
    return [*module.parameters(), *module.buffers()]
