"""Sample and reconstruction grids written to the run folder and to the logger's image API."""

from __future__ import annotations

import math
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only, rank_zero_warn
from torch import Tensor
from torchvision.utils import make_grid, save_image


def points_to_image(points: Tensor, bins: int = 128, extent: float | None = None) -> Tensor:
    """A 2D histogram of (N, 2) points as a (1, bins, bins) image in [0, 1], y axis up."""
    points = points.detach().float().cpu()
    finite = points[torch.isfinite(points).all(1)]
    extent = extent or float(finite.abs().max().clamp(min=1e-3)) * 1.05 if len(finite) else 1.0
    hist, _ = torch.histogramdd(finite, bins=[bins, bins], range=[-extent, extent] * 2)
    image = hist.T.flip(0)  # rows are y, top row is the largest y
    return (image / image.max().clamp(min=1)).unsqueeze(0)


def to_grid(samples: Tensor, nrow: int | None = None) -> Tensor:
    """A (C, H, W) image in [0, 1] of a batch of images, or of 2D points as a histogram."""
    if samples.dim() == 2 and samples.shape[1] == 2:
        return points_to_image(samples)
    nrow = nrow or max(1, int(math.sqrt(samples.shape[0])))
    return make_grid(samples.detach().float().clamp(0, 1).cpu(), nrow=nrow, padding=1)


def next_free(path: Path) -> Path:
    """`path`, or `path` with -1, -2, ... before its suffix: never overwrite a file."""
    candidate, i = path, 0
    while candidate.exists():
        i += 1
        candidate = path.with_name(f"{path.stem}-{i}{path.suffix}")
    return candidate


def save_grid(samples: Tensor, png: Path, nrow: int | None = None) -> Path:
    """Write a PNG grid of images (or a 2D histogram of points) without overwriting; return it."""
    png = next_free(Path(png))
    png.parent.mkdir(parents=True, exist_ok=True)
    save_image(to_grid(samples, nrow), png)
    return png


def save_samples(samples: Tensor, png: Path, nrow: int | None = None) -> tuple[Path, Path]:
    """Write a PNG grid and the raw tensor (.pt) next to it; return both paths."""
    png = save_grid(samples, png, nrow)
    tensor_path = png.with_suffix(".pt")
    torch.save(samples.detach().cpu(), tensor_path)
    return png, tensor_path


def log_image(trainer: pl.Trainer, key: str, image: Tensor) -> None:
    """Send an image to every logger that has an image API (W&B, TensorBoard)."""
    for logger in trainer.loggers:
        if hasattr(logger, "log_image"):  # WandbLogger
            logger.log_image(key, images=[image], step=trainer.global_step)
        elif hasattr(getattr(logger, "experiment", None), "add_image"):  # TensorBoard
            logger.experiment.add_image(key, image, global_step=trainer.global_step)


def run_dir(trainer: pl.Trainer) -> Path:
    """The run folder, as `trainer.log_dir` finds it but without its broadcast, so that
    rank-zero-only code can call it without a collective that the other ranks never join."""
    if not trainer.loggers:
        return Path(trainer.default_root_dir)
    logger = trainer.loggers[0]
    if isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return Path(logger.log_dir)
    return Path(logger.save_dir or trainer.default_root_dir)


class _EveryNEpochs(pl.Callback):
    def __init__(self, every_n_epochs: int) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}.")
        self.every_n_epochs = every_n_epochs

    def _due(self, trainer: pl.Trainer) -> bool:
        if trainer.fast_dev_run:  # a smoke test of the loop, like Lightning's own logging
            return False
        epoch = trainer.current_epoch + 1
        return epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs

    def _write(self, trainer: pl.Trainer, name: str, image_batch: Tensor, nrow=None) -> None:
        path = run_dir(trainer) / "samples" / f"{name}-epoch{trainer.current_epoch:03d}.png"
        save_grid(image_batch, path, nrow)
        log_image(trainer, f"samples/{name}", to_grid(image_batch, nrow))


class SampleGrid(_EveryNEpochs):
    """Draw `num_samples` from the model every N epochs with fixed noise (`seed`), so grids are
    comparable across epochs, without disturbing the training random state."""

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 64,
        temperature: float = 1.0,
        seed: int = 0,
        nrow: int | None = None,
        num_points: int = 2000,
    ) -> None:
        super().__init__(every_n_epochs)
        self.num_samples = num_samples
        self.num_points = num_points  # for 2D data, drawn as a histogram
        self.temperature = temperature
        self.seed = seed
        self.nrow = nrow

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._due(trainer):
            return
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            was_training = pl_module.training
            pl_module.eval()
            try:
                vectors = len(getattr(pl_module, "data_shape", (0, 0, 0))) == 1
                n = self.num_points if vectors else self.num_samples
                samples = pl_module.sample(n, temperature=self.temperature)
            finally:
                pl_module.train(was_training)
        self._write(trainer, "samples", samples, self.nrow)


class ReconstructionGrid(_EveryNEpochs):
    """A row of originals from the first validation batch above their reconstructions
    decode(encode(x)). Models without an encoder are skipped with one warning."""

    def __init__(self, every_n_epochs: int = 1, num_images: int = 8) -> None:
        super().__init__(every_n_epochs)
        self.num_images = num_images
        self._batch: Tensor | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        if batch_idx == 0 and self._batch is None:
            self._batch = batch[0][: self.num_images].detach()

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._batch is None or not self._due(trainer) or self._batch.dim() != 4:
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                x = self._batch.to(pl_module.device)
                x_hat = pl_module.decode(pl_module.encode(x))
        except NotImplementedError:
            rank_zero_warn(f"{type(pl_module).__name__} has no encoder; no reconstruction grid.")
            self._batch = torch.empty(0)
            return
        finally:
            pl_module.train(was_training)
        both = torch.cat([x, x_hat.reshape_as(x)])  # originals in the top row
        self._write(trainer, "reconstructions", both, nrow=len(x))


class TranslationGrid(_EveryNEpochs):
    """For image-to-image models (those with `translation_rows`): rows of kept evaluation
    inputs, their translations and, for CycleGAN and StarGAN, the reconstructions back, one
    column per image. Other models are skipped silently, so it can sit in the defaults."""

    def __init__(self, every_n_epochs: int = 1, num_images: int = 8) -> None:
        super().__init__(every_n_epochs)
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}.")
        self.num_images = num_images

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        rows_of = getattr(pl_module, "translation_rows", None)
        if rows_of is None or not self._due(trainer):
            return
        was_training = pl_module.training
        pl_module.eval()
        try:
            rows = rows_of(self.num_images)
        finally:
            pl_module.train(was_training)
        if not rows:
            return
        channels = max(row.shape[1] for row in rows)  # gray inputs beside colour outputs
        rows = [row.expand(-1, channels, -1, -1) if row.shape[1] == 1 else row for row in rows]
        self._write(trainer, "translations", torch.cat(rows), nrow=len(rows[0]))
