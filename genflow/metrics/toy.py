"""Sample-quality figures for 2D mixtures with known modes (e.g. Toy2D's 8 gaussians)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ModeCoverage:
    """`modes_covered` of `num_modes` modes hold at least `min_fraction` of the samples within
    `k_sigma` standard deviations; `high_quality` is the fraction of all samples that lie
    within `k_sigma` of their nearest mode."""

    modes_covered: int
    num_modes: int
    high_quality: float
    per_mode: tuple[float, ...]


def mode_coverage(
    samples: Tensor, centers: Tensor, std: float, k_sigma: float = 3.0, min_fraction: float = 0.01
) -> ModeCoverage:
    """The mode-collapse measure of Srivastava et al. 2017 (VEEGAN, arXiv:1705.07761) and
    Metz et al. 2017 (unrolled GAN, arXiv:1611.02163) on a mixture of isotropic Gaussians.

    A sample is high quality when it lies within `k_sigma * std` of its nearest centre; a mode
    is covered when at least `min_fraction` of all samples are high-quality samples of it.
    Non-finite samples count as low quality.

    >>> centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    >>> c = mode_coverage(torch.tensor([[0.1, 0.0], [0.0, 0.2], [5.0, 5.0]]), centers, std=0.1)
    >>> c.modes_covered, round(c.high_quality, 3), [round(f, 3) for f in c.per_mode]
    (1, 0.667, [0.667, 0.0])
    """
    samples = samples.detach().float().cpu()
    distance = torch.cdist(samples.nan_to_num(nan=torch.inf), centers.float())  # (N, M)
    nearest_distance, nearest = distance.min(dim=1)
    good = nearest_distance <= k_sigma * std  # inf and nan compare False
    counts = torch.bincount(nearest[good], minlength=len(centers)).float() / len(samples)
    return ModeCoverage(
        modes_covered=int((counts >= min_fraction).sum()),
        num_modes=len(centers),
        high_quality=good.float().mean().item(),
        per_mode=tuple(counts.tolist()),
    )
