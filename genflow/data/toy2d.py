"""Two-dimensional toy densities, the standard test bed for flows and other density models."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from genflow.data.base import BaseDataModule, InMemoryDataset

Toy2DName = Literal["moons", "8gaussians", "checkerboard", "2spirals", "pinwheel", "rings"]


def _rotate(x: Tensor, angle: Tensor) -> Tensor:
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([x[:, 0] * cos - x[:, 1] * sin, x[:, 0] * sin + x[:, 1] * cos], dim=1)


def _polar(radius: Tensor, angle: Tensor) -> Tensor:
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)


def moons(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Two interleaved unit half circles, the lower one shifted by (1, -0.5); noise std 0.05."""
    t = torch.rand(n, generator=generator) * math.pi
    upper = torch.rand(n, generator=generator) < 0.5
    outer = torch.stack([t.cos(), t.sin()], dim=1)
    inner = torch.stack([1 - t.cos(), 0.5 - t.sin()], dim=1)
    x = torch.where(upper[:, None], outer, inner)
    return x + 0.05 * torch.randn(n, 2, generator=generator)


EIGHT_GAUSSIANS_STD = 0.04


def eight_gaussian_centers() -> Tensor:
    """The (8, 2) centres of `eight_gaussians`: radius 2, 45 degrees apart, the first at (2, 0)."""
    return _polar(torch.full((8,), 2.0), torch.arange(8) * math.pi / 4)


def eight_gaussians(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Eight equal Gaussians of std 0.04 centred on the circle of radius 2, 45 degrees apart."""
    mode = torch.randint(8, (n,), generator=generator)
    noise = EIGHT_GAUSSIANS_STD * torch.randn(n, 2, generator=generator)
    return eight_gaussian_centers()[mode] + noise


def checkerboard(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Uniform on the 8 dark squares of a 4x4 board of side-2 squares covering [-4, 4]^2."""
    row = torch.randint(4, (n,), generator=generator)
    col = 2 * torch.randint(2, (n,), generator=generator) + row % 2  # row + col is even: dark
    corner = torch.stack([row, col], dim=1) * 2.0 - 4
    return corner + 2 * torch.rand(n, 2, generator=generator)


def two_spirals(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Two opposite Archimedean spirals of 1.5 turns, radius up to pi; noise std 0.1."""
    t = torch.rand(n, generator=generator).sqrt() * 3 * math.pi  # sqrt: even density along arcs
    sign = torch.randint(2, (n, 1), generator=generator) * 2 - 1
    return sign * _polar(t / 3, t) + 0.1 * torch.randn(n, 2, generator=generator)


def pinwheel(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Five curved arms (Johnson et al., 2016, arXiv:1603.06277): radial std 0.3, tangential
    std 0.05, twist rate 0.25, scaled by 2."""
    arm = torch.randint(5, (n,), generator=generator)
    x = torch.randn(n, 2, generator=generator) * torch.tensor([0.3, 0.05]) + torch.tensor([1.0, 0])
    angle = arm * 2 * math.pi / 5 + 0.25 * x[:, 0].exp()
    return 2 * _rotate(x, angle)


def rings(n: int, generator: torch.Generator | None = None) -> Tensor:
    """Four concentric circles of radius 0.75, 1.5, 2.25, 3, uniform along their total length;
    noise std 0.08."""
    radii = torch.tensor([0.75, 1.5, 2.25, 3.0])
    ring = torch.multinomial(radii, n, replacement=True, generator=generator)
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    return _polar(radii[ring], angle) + 0.08 * torch.randn(n, 2, generator=generator)


TOY2D: dict[str, Callable[[int, torch.Generator | None], Tensor]] = {
    "moons": moons,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "2spirals": two_spirals,
    "pinwheel": pinwheel,
    "rings": rings,
}


def sample_toy2d(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """`n` float32 points (n, 2) of the toy density `name` (a key of `TOY2D`)."""
    if name not in TOY2D:
        raise ValueError(f"Unknown toy density {name!r}; choose one of {', '.join(TOY2D)}.")
    return TOY2D[name](n, generator).to(torch.float32)


class Toy2D(BaseDataModule):
    """Samples of a 2D toy density (moons, 8 Gaussians, checkerboard, two spirals, pinwheel,
    rings), the usual test bed of normalizing flows (e.g. Grathwohl et al., 2019, FFJORD,
    arXiv:1810.01367).

    Each split is drawn once at setup from its own generator, seeded from `seed`, so the data
    are fixed per seed. x is continuous float32 (B, 2): num_bits is None; y is zeros.

    Args:
        name: which density.
        num_train: number of training points.
        num_val: number of validation points.
        num_test: number of test points.
        batch_size: training batch size.
        **kwargs: the other loader arguments of `BaseDataModule`.
    """

    def __init__(
        self,
        name: Toy2DName = "moons",
        num_train: int = 10000,
        num_val: int = 2000,
        num_test: int = 2000,
        batch_size: int = 256,
        **kwargs,
    ) -> None:
        super().__init__(batch_size=batch_size, **kwargs)
        if name not in TOY2D:
            raise ValueError(f"Unknown toy density {name!r}; choose one of {', '.join(TOY2D)}.")
        self.name = name
        self.sizes = (num_train, num_val, num_test)

    @property
    def data_shape(self) -> tuple[int]:
        return (2,)

    @property
    def num_classes(self) -> int:
        return 1

    @property
    def num_bits(self) -> None:
        return None

    def _split(self, k: int) -> InMemoryDataset:
        # 3 * seed + k gives every (seed, split) pair its own stream, and no two pairs share one.
        generator = torch.Generator().manual_seed(3 * self.seed + k)
        n = self.sizes[k]
        return InMemoryDataset(
            sample_toy2d(self.name, n, generator), torch.zeros(n, dtype=torch.long)
        )

    def _load(self) -> None:
        self.train_set, self.val_set, self.test_set = (self._split(k) for k in range(3))
