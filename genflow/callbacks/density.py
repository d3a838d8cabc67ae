"""Pictures of a learned 2D density: exp(log_prob) on a grid as a heat-map, next to a histogram
of the data on the same square, for Toy2D runs. Uses only the model contract (`log_prob`)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor

from genflow.callbacks.grids import _EveryNEpochs, points_to_image

# viridis at 0, 1/4, 1/2, 3/4, 1 (dark blue -> yellow); intermediate values are interpolated
VIRIDIS = torch.tensor(
    [
        [0.267, 0.005, 0.329],
        [0.229, 0.322, 0.546],
        [0.128, 0.567, 0.551],
        [0.369, 0.789, 0.383],
        [0.993, 0.906, 0.144],
    ]
)


def colorize(values: Tensor) -> Tensor:
    """(H, W) values in [0, 1] -> (3, H, W) RGB image through the viridis color map."""
    v = values.detach().float().cpu().clamp(0, 1) * (len(VIRIDIS) - 1)
    low = v.floor().long().clamp(max=len(VIRIDIS) - 2)
    frac = (v - low).unsqueeze(-1)  # (H, W, 1)
    rgb = VIRIDIS[low] * (1 - frac) + VIRIDIS[low + 1] * frac  # (H, W, 3)
    return rgb.permute(2, 0, 1)


def grid_points(extent: float, bins: int) -> Tensor:
    """(bins * bins, 2) centres of a bins x bins grid over [-extent, extent]^2, in image order:
    row 0 is the largest y (y axis up), columns run along x."""
    centres = (torch.arange(bins) + 0.5) / bins * 2 * extent - extent  # (bins,)
    y, x = torch.meshgrid(centres.flip(0), centres, indexing="ij")  # (bins, bins) each
    return torch.stack([x.flatten(), y.flatten()], dim=1)


@torch.no_grad()
def density_grid(model, extent: float, bins: int = 200, chunk: int = 16384) -> Tensor:
    """exp(log_prob) of `model` at the grid centres of `grid_points`, (bins, bins), in the
    model's dtype; sum * (2 extent / bins)^2 is the mass the model puts on the square."""
    points = grid_points(extent, bins).to(device=model.device, dtype=model.dtype)
    log_p = torch.cat([model.log_prob(p) for p in points.split(chunk)])
    return log_p.exp().view(bins, bins)


def data_extent(points: Tensor, margin: float = 1.1) -> float:
    """Half the side of the centred square that holds the data, with a margin."""
    finite = points[torch.isfinite(points).all(1)]
    return float(finite.abs().max().clamp(min=1e-3)) * margin if len(finite) else 1.0


def density_figure(model, points: Tensor, bins: int = 200, extent: float | None = None) -> Tensor:
    """(3, bins, 2 bins + 4) image: the model's density heat-map (left) and a histogram of the
    data `points` (N, 2) on the same square (right, bins / 4 cells a side so that a few
    thousand points fill it), each scaled to its own maximum."""
    extent = extent or data_extent(points)
    density = density_grid(model, extent, bins).float().cpu()
    if not torch.isfinite(density).all():
        raise FloatingPointError("The model's density is not finite on the grid.")
    heat = colorize(density / density.max().clamp(min=1e-30))
    coarse = points_to_image(points, bins=max(1, bins // 4), extent=extent)  # (1, b/4, b/4)
    hist = colorize(F.interpolate(coarse[None], size=(bins, bins), mode="nearest")[0, 0])
    gap = torch.ones(3, bins, 4)  # a white separator
    return torch.cat([heat, gap, hist], dim=2)


def dataset_points(datamodule, n: int) -> Tensor | None:
    """Up to `n` data points (n, 2) from the DataModule's validation split (else training)."""
    dataset = getattr(datamodule, "val_set", None) or getattr(datamodule, "train_set", None)
    if dataset is None:
        return None
    return torch.stack([dataset[i][0] for i in range(min(n, len(dataset)))]).float()


class DensityGrid(_EveryNEpochs):
    """Every N epochs, write `samples/density-epochNNN.png` in the run folder (and send it to
    the logger's image API): the learned density exp(log_prob) as a heat-map next to a
    histogram of `num_points` data points. It is in every run's defaults and acts only on 2D
    data from a DataModule with a model that has `log_prob`; other runs are skipped quietly.

    Args:
        every_n_epochs: how often (and always after the last epoch).
        bins: grid cells per side.
        num_points: data points in the histogram (from the validation split).
    """

    def __init__(self, every_n_epochs: int = 1, bins: int = 200, num_points: int = 5000) -> None:
        super().__init__(every_n_epochs)
        self.bins, self.num_points = bins, num_points
        self._skip = False

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._skip or not self._due(trainer):
            return
        points = (
            dataset_points(trainer.datamodule, self.num_points) if trainer.datamodule else None
        )
        if tuple(getattr(pl_module, "data_shape", ())) != (2,) or points is None:
            self._skip = True
            return
        try:
            image = density_figure(pl_module, points, self.bins)
        except NotImplementedError:  # no likelihood (a GAN): nothing to draw
            self._skip = True
            return
        self._write(trainer, "density", image.unsqueeze(0), nrow=1)
