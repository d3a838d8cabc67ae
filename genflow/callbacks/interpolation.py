"""Interpolation strips through the latent space, written to the run folder and the loggers."""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_only, rank_zero_warn
from torch import Tensor

from genflow.callbacks.grids import _EveryNEpochs
from genflow.latent import Method, decode_path, encode_all, interpolate, random_codes


class Interpolation(_EveryNEpochs):
    """Every N epochs, `num_pairs` rows of `steps` images each: the decoded path from one latent
    code to another (slerp or lerp), written to samples/interpolation-epochNNN.png and sent to
    the loggers' image API under samples/interpolation.

    Works for every model with a latent space (`latent_shape`, `decode`; a GAN's generator).
    With `source="auto"` (the default) the endpoints are encoded validation images when the
    model has an encoder and prior codes when it has none. With `source="prior"` the endpoints
    are standard-normal codes (times `temperature`) drawn with a fixed `seed`, so strips are
    comparable across epochs and the training random state is left as it was. With
    `source="data"` they are the codes `encode(x)` of pairs of images from the first validation
    batch (as many pairs as it holds, up to `num_pairs`); models without an encoder, or runs
    without validation data, fall back to the prior with one warning. (An AE's codes do not
    follow N(0, I): use `source="data"` for it.) Models without a latent space, or whose
    samples are not images, are skipped with one warning. Runs on rank zero only, without
    collectives.

    Args:
        every_n_epochs: draw a strip every N epochs (and after the last).
        num_pairs: rows of the strip, one pair of endpoints each.
        steps: images per row, endpoints included.
        method: slerp (White 2016, arXiv:1609.04468) or lerp.
        source: auto, prior or data, where the endpoints come from.
        temperature: scale of the prior codes.
        seed: seed of the prior codes.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_pairs: int = 8,
        steps: int = 10,
        method: Method = "slerp",
        source: Literal["auto", "prior", "data"] = "auto",
        temperature: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        if num_pairs < 1:
            raise ValueError(f"num_pairs must be >= 1, got {num_pairs}.")
        if steps < 2:
            raise ValueError(f"steps must be >= 2 to include both endpoints, got {steps}.")
        if method not in ("slerp", "lerp"):
            raise ValueError(f"Unknown interpolation method {method!r}; choose slerp or lerp.")
        if source not in ("auto", "prior", "data"):
            raise ValueError(f"Unknown source {source!r}; choose auto, prior or data.")
        self.num_pairs, self.steps, self.method = num_pairs, steps, method
        self.source, self.temperature, self.seed = source, temperature, seed
        self._images: Tensor | None = None  # endpoints for source="data"
        self._skip = False
        self._warned_fallback = False

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        if self.source != "prior" and batch_idx == 0 and self._images is None:
            self._images = batch[0][: 2 * self.num_pairs].detach()

    @rank_zero_only
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._skip or not self._due(trainer):
            return
        try:
            strip = self.make_strip(pl_module)
        except NotImplementedError as error:
            self._skip_with_warning(
                str(error) or f"{type(pl_module).__name__} has no latent space"
            )
            return
        if strip.dim() != 5:
            self._skip_with_warning(f"{type(pl_module).__name__} does not decode to images")
            return
        self._write(trainer, "interpolation", strip.flatten(0, 1), nrow=strip.shape[1])

    def make_strip(self, pl_module: pl.LightningModule) -> Tensor:
        """The decoded paths, (num_pairs, steps, *sample_shape), rows from z0 to z1."""
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # fixed noise; training draws untouched
            torch.manual_seed(self.seed)
            z0, z1 = self.endpoints(pl_module)  # each (P, *latent_shape)
            path = interpolate(z0, z1, self.steps, self.method, batch_dims=1)  # (T, P, ...)
            return decode_path(pl_module, path.transpose(0, 1))  # (P, T, *sample_shape)

    def endpoints(self, pl_module: pl.LightningModule) -> tuple[Tensor, Tensor]:
        """The pairs of codes the rows run between, each (num_pairs, *latent_shape); prior
        codes come from the global random state (`make_strip` seeds it inside a fork)."""
        images = self._images if self.source != "prior" else None
        if images is not None and len(images) >= 2:
            try:
                z = encode_all(pl_module, images)  # (2P, *latent_shape)
                pairs = len(z) // 2
                return z[:pairs], z[pairs : 2 * pairs]
            except NotImplementedError:
                self._warn_fallback(f"{type(pl_module).__name__} has no encoder")
        elif self.source == "data":
            self._warn_fallback("no validation images were seen")
        z = random_codes(pl_module, 2 * self.num_pairs, self.temperature)
        return z[: self.num_pairs], z[self.num_pairs :]

    def _warn_fallback(self, why: str) -> None:
        if self.source == "data" and not self._warned_fallback:
            rank_zero_warn(f"Interpolation(source='data'): {why}; interpolating prior codes.")
            self._warned_fallback = True

    def _skip_with_warning(self, why: str) -> None:
        rank_zero_warn(f"{why.rstrip('.')}; no interpolation strips.")
        self._skip = True
