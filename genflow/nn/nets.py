"""Encoders and decoders shared by the latent-variable families (AE, VAE, ...).

Every encoder maps (B, *data_shape) -> (B, out_dim); every decoder maps (B, latent_dim) ->
(B, C * num_params, H, W) for images or (B, D * num_params) for vectors, where num_params is
the number of likelihood parameters per data dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

from torch import Tensor, nn

Architecture = Literal["conv", "mlp", "seed"]
SEED_SHAPE = (1, 28, 28)


class MLP(nn.Sequential):
    """Linear layers with SiLU between them; `hidden=()` gives a single linear map."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int) -> None:
        dims = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(pairwise(dims)):
            layers.append(nn.Linear(a, b))
            if i < len(dims) - 2:
                layers.append(nn.SiLU())
        super().__init__(*layers)


def num_downsamples(height: int, width: int, min_size: int = 4) -> int:
    """How many stride-2 halvings keep both sides even and at least `min_size`."""
    n = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) // 2 >= min_size:
        height, width, n = height // 2, width // 2, n + 1
    return n


def _widths(channels: int, n: int, max_channels: int = 256) -> list[int]:
    return [min(channels * 2**i, max_channels) for i in range(n + 1)]


class ConvEncoder(nn.Module):
    """3x3 stem, then stride-2 4x4 convolutions that halve the image and double the width,
    then one linear layer. Works for any even-sided image size (8, 16, 28, 32, 64, ...)."""

    def __init__(self, data_shape: Sequence[int], out_dim: int, channels: int = 32) -> None:
        super().__init__()
        c, h, w = data_shape
        n = num_downsamples(h, w)
        widths = _widths(channels, n)
        layers: list[nn.Module] = [nn.Conv2d(c, widths[0], 3, padding=1), nn.SiLU()]
        for a, b in pairwise(widths):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.SiLU()]
        self.conv = nn.Sequential(*layers)
        feat = widths[-1] * (h >> n) * (w >> n)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(feat, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.conv(x))  # (B, C, H, W) -> (B, out_dim)


class ConvDecoder(nn.Module):
    """The mirror of ConvEncoder: linear, then stride-2 transposed convolutions, 3x3 output."""

    def __init__(
        self, latent_dim: int, data_shape: Sequence[int], num_params: int, channels: int = 32
    ) -> None:
        super().__init__()
        c, h, w = data_shape
        n = num_downsamples(h, w)
        widths = _widths(channels, n)[::-1]
        self.start_shape = (widths[0], h >> n, w >> n)
        self.fc = nn.Sequential(nn.Linear(latent_dim, math.prod(self.start_shape)), nn.SiLU())
        layers: list[nn.Module] = []
        for a, b in pairwise(widths):
            layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(widths[-1], c * num_params, 3, padding=1))
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(-1, *self.start_shape)  # (B, latent) -> (B, C0, h0, w0)
        return self.deconv(h)  # -> (B, C * num_params, H, W)


class SeedEncoder(nn.Sequential):
    """The seed's 28x28 encoder: 1x28x28 -> 32x24x24 -> 32x20x20 -> 32x9x9 -> 32x4x4 -> dx1x1."""

    def __init__(self, out_dim: int, in_channels: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 32, 5), nn.ReLU(),  # 32 x 24 x 24
            nn.Conv2d(32, 32, 5), nn.ReLU(),  # 32 x 20 x 20
            nn.Conv2d(32, 32, 4, stride=2), nn.ReLU(),  # 32 x 9 x 9
            nn.Conv2d(32, 32, 3, stride=2), nn.ReLU(),  # 32 x 4 x 4
            nn.Conv2d(32, out_dim, 4),  # d x 1 x 1
            nn.Flatten(),  # d
        )  # fmt: skip


class SeedDecoder(nn.Sequential):
    """The mirror of SeedEncoder with transposed convolutions: d -> dx1x1 -> ... -> Cx28x28."""

    def __init__(self, latent_dim: int, out_channels: int = 1) -> None:
        super().__init__(
            nn.Unflatten(1, (latent_dim, 1, 1)),
            nn.ConvTranspose2d(latent_dim, 32, 4), nn.ReLU(),  # 32 x 4 x 4
            nn.ConvTranspose2d(32, 32, 3, stride=2), nn.ReLU(),  # 32 x 9 x 9
            nn.ConvTranspose2d(32, 32, 4, stride=2), nn.ReLU(),  # 32 x 20 x 20
            nn.ConvTranspose2d(32, 32, 5), nn.ReLU(),  # 32 x 24 x 24
            nn.ConvTranspose2d(32, out_channels, 5),  # C x 28 x 28
        )  # fmt: skip


def _check_architecture(architecture: str, data_shape: tuple[int, ...]) -> None:
    if architecture not in ("conv", "mlp", "seed"):
        raise ValueError(f"Unknown architecture {architecture!r}; choose 'conv', 'mlp' or 'seed'.")
    if architecture == "seed" and tuple(data_shape) != SEED_SHAPE:
        raise ValueError(
            f"The 'seed' architecture is built for 1x28x28 images (MNIST), but the data has "
            f"shape {tuple(data_shape)}. Use architecture: conv (any even image size) or "
            f"mlp, or train the seed architecture on an MNIST-family dataset."
        )
    if architecture == "conv" and len(data_shape) != 3:
        raise ValueError(
            f"The 'conv' architecture needs images (C, H, W), but the data has shape "
            f"{tuple(data_shape)}. Use architecture: mlp for vector data such as Toy2D."
        )


def build_encoder(
    architecture: Architecture,
    data_shape: Sequence[int],
    out_dim: int,
    hidden_dims: Sequence[int] = (1024,),
    channels: int = 32,
) -> nn.Module:
    """(B, *data_shape) -> (B, out_dim) for the named architecture."""
    data_shape = tuple(data_shape)
    _check_architecture(architecture, data_shape)
    if architecture == "seed":
        return SeedEncoder(out_dim)
    if architecture == "conv":
        return ConvEncoder(data_shape, out_dim, channels)
    return nn.Sequential(nn.Flatten(), MLP(math.prod(data_shape), hidden_dims, out_dim))


def build_decoder(
    architecture: Architecture,
    latent_dim: int,
    data_shape: Sequence[int],
    num_params: int = 1,
    hidden_dims: Sequence[int] = (1024,),
    channels: int = 32,
) -> nn.Module:
    """(B, latent_dim) -> (B, C * num_params, H, W), or (B, D * num_params) for vectors."""
    data_shape = tuple(data_shape)
    _check_architecture(architecture, data_shape)
    if architecture == "seed":
        return SeedDecoder(latent_dim, data_shape[0] * num_params)
    if architecture == "conv":
        return ConvDecoder(latent_dim, data_shape, num_params, channels)
    out_shape = (data_shape[0] * num_params, *data_shape[1:])
    mlp = MLP(latent_dim, tuple(hidden_dims)[::-1], math.prod(out_shape))
    return nn.Sequential(mlp, nn.Unflatten(1, out_shape))
