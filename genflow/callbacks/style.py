"""StyleGAN's figures: the style-mixing grid and the truncation strip (Karras et al. 2019,
arXiv:1812.04948, figures 3 and 8), written to the run folder and to the loggers' image API.

Both draw fixed codes from their own seeded generator (`seed`), so figures are comparable
across epochs and the training random state is left as it was, and both use the model's fixed
noise maps. They need a model with StyleGAN's sampling controls (`images_of`, `mix`,
`style_groups`); other models are skipped silently, so the callbacks can sit in shared defaults.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only
from torch import Tensor

from genflow.callbacks.grids import _EveryNEpochs

GROUPS = ("coarse", "middle", "fine")


def _has_style_controls(pl_module: pl.LightningModule) -> bool:
    return all(hasattr(pl_module, name) for name in ("mix", "style_groups", "images_of"))


def _draw_codes(pl_module, n: int, seed: int) -> Tensor:
    """n fixed codes z (n, latent_dim) on the model's device, without touching the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, pl_module.latent_dim, generator=generator).to(pl_module.device)


class _StyleFigure(_EveryNEpochs):
    name = ""

    def __init__(self, every_n_epochs: int, seed: int) -> None:
        super().__init__(every_n_epochs)
        self.seed = seed

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not _has_style_controls(pl_module) or not self._due(trainer):
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                images, nrow = self.make(pl_module)
        finally:
            pl_module.train(was_training)
        self._write(trainer, self.name, images, nrow=nrow)

    def make(self, pl_module) -> tuple[Tensor, int]:
        """The figure's images (N, C, H, W) in [0, 1], row after row, and the row length."""
        raise NotImplementedError


class StyleMixingGrid(_StyleFigure):
    """Every N epochs, the style-mixing figure of Karras et al. 2019 (fig. 3): the top row holds
    `num_b` images of source B (after an empty corner), then for each of the coarse, middle and
    fine layer groups (`style_groups`), `num_a` rows each starting with a source A image followed
    by A with that group's styles copied from each B. Coarse styles from B should bring B's pose
    and overall shape, fine ones little more than its colours (in a trained model).
    Written to samples/style_mixing-epochNNN.png and sent to the loggers as samples/style_mixing.

    Args:
        every_n_epochs: draw the grid every N epochs (and after the last).
        num_a: sources A (rows per group).
        num_b: sources B (columns).
        psi: truncation of every code (1: none; 0.7 gives cleaner but less varied sources).
        seed: seed of the fixed codes.
    """

    name = "style_mixing"

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_a: int = 3,
        num_b: int = 5,
        psi: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs, seed)
        if num_a < 1 or num_b < 1:
            raise ValueError(f"num_a and num_b must be >= 1, got {num_a} and {num_b}.")
        self.num_a, self.num_b, self.psi = num_a, num_b, psi

    def make(self, pl_module) -> tuple[Tensor, int]:
        z = _draw_codes(pl_module, self.num_a + self.num_b, self.seed)
        z_a, z_b = z[: self.num_a], z[self.num_a :]
        b_images = pl_module.images_of(z_b, psi=self.psi)  # (num_b, C, H, W)
        a_images = pl_module.images_of(z_a, psi=self.psi)  # (num_a, C, H, W)
        rows = [torch.cat([torch.zeros_like(b_images[:1]), b_images])]  # empty corner, then B
        for group in GROUPS:
            start, stop = pl_module.style_groups[group]
            for i in range(self.num_a):
                a = z_a[i : i + 1].expand(self.num_b, -1)  # (num_b, latent_dim)
                mixed = pl_module.mix(a, z_b, start, stop, psi=self.psi)  # (num_b, C, H, W)
                rows.append(torch.cat([a_images[i : i + 1], mixed]))
        return torch.cat(rows), self.num_b + 1


class TruncationStrip(_StyleFigure):
    """Every N epochs, the truncation figure of Karras et al. 2019 (fig. 8): `num_rows` fixed
    codes, one per row, drawn at each truncation psi in `psis` (columns): psi = 1 is the
    untruncated sample, psi = 0 the image of the mean w (the same in every row), negative psi
    its opposite. Written to samples/truncation-epochNNN.png and sent to the loggers as
    samples/truncation.

    Args:
        every_n_epochs: draw the strip every N epochs (and after the last).
        num_rows: codes, one per row.
        psis: truncation values, one per column.
        seed: seed of the fixed codes.
    """

    name = "truncation"

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_rows: int = 4,
        psis: Sequence[float] = (1.0, 0.7, 0.5, 0.0, -0.5, -1.0),
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs, seed)
        if num_rows < 1 or not psis:
            raise ValueError(
                f"num_rows must be >= 1 and psis non-empty, got {num_rows} and {list(psis)}."
            )
        self.num_rows, self.psis = num_rows, tuple(float(p) for p in psis)

    def make(self, pl_module) -> tuple[Tensor, int]:
        z = _draw_codes(pl_module, self.num_rows, self.seed)
        columns = [pl_module.images_of(z, psi=psi) for psi in self.psis]  # each (R, C, H, W)
        strip = torch.stack(columns, dim=1)  # (R, P, C, H, W): a row per code
        return strip.flatten(0, 1), len(self.psis)
