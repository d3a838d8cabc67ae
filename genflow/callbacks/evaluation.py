"""Metric callbacks: sample quality (FID, KID, IS, precision/recall) and likelihood, logged as
`val/fid`, `val/kid`, `val/bpd`, ... every N epochs. Thin adapters over `genflow.metrics`.

Both read the validation batches Lightning already feeds the model, so under DDP each rank sees
its disjoint, unpadded share of the split and the torchmetrics states add up to the figures of
one process. `FID` extracts the real statistics once (the first due validation) and keeps them;
each evaluation draws a fixed number of samples in seeded chunks split across the ranks
(`genflow.metrics.evaluation.generate`), so the figures do not depend on the number of ranks.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities import rank_zero_info

from genflow.callbacks.grids import _EveryNEpochs
from genflow.metrics.evaluation import check_metrics, generate, log_prob
from genflow.metrics.features import build_extractor
from genflow.metrics.likelihood import LogLikelihood
from genflow.metrics.quality import SampleQuality


class _ValidationMetric(_EveryNEpochs):
    """Runs on the validation after epochs N, 2N, ... and the last one of a fit, and on every
    `genflow validate`; never in the sanity check or a fast_dev_run."""

    def _due(self, trainer: pl.Trainer) -> bool:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return False
        return trainer.state.fn != TrainerFn.FITTING or super()._due(trainer)


class FID(_ValidationMetric):
    """FID (and optionally KID, IS, precision/recall) of `num_samples` samples against the
    validation split, every `every_n_epochs` epochs.

    Args:
        every_n_epochs: evaluation period in epochs.
        num_samples: samples per evaluation, split across the ranks.
        features: "lenet" (a domain classifier, the usual choice for MNIST-like data) or
            "inception".
        weights: the LeNet file written by experiments/train_lenet.py (required for "lenet"),
            or local Inception weights.
        metrics: any of "fid", "kid", "is", "pr".
        batch_size: samples drawn per model call.
        seed: seed of the samples (the same draws every evaluation) and of KID's subsets.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        num_samples: int = 2000,
        features: str = "lenet",
        weights: str | None = None,
        metrics: Sequence[str] = ("fid", "kid"),
        batch_size: int = 250,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_epochs)
        if num_samples < 2:
            raise ValueError(f"FID needs num_samples >= 2, got {num_samples}.")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.features, self.weights, self.metric_names = features, weights, tuple(metrics)
        self.quality: SampleQuality | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        check_metrics(pl_module, self.metric_names, pl_module.data_shape)
        if self.quality is None:
            extractor = build_extractor(self.features, self.weights)
            self.quality = SampleQuality(extractor, self.metric_names, seed=self.seed)
        self.quality.to(pl_module.device)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._collect_real = self._due(trainer) and not self.quality.has_real

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
        if self._collect_real:
            self.quality.update(batch[0], real=True)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not self._due(trainer):
            return
        rank, world = trainer.global_rank, trainer.world_size
        for fake in generate(pl_module, self.num_samples, self.batch_size, self.seed, rank, world):
            self.quality.update(fake.clamp(0, 1), real=False)
        for name, value in self.quality.compute().items():
            pl_module.log(f"val/{name}", value, on_epoch=True, prog_bar=name == "fid")
        self.quality.reset_fake()


class Likelihood(_ValidationMetric):
    """val/bpd and val/nll of `log_prob` (the IWAE bound for a VAE, with K importance samples)
    over the whole validation split, every `every_n_epochs` epochs, autocast off.

    Exact-likelihood models (flows, autoregressive, GMM, PPCA) already log these in their own
    validation; for them this callback says so once and does nothing.
    """

    def __init__(self, every_n_epochs: int = 1, num_importance_samples: int | None = None):
        super().__init__(every_n_epochs)
        self.num_importance_samples = num_importance_samples
        self.metric: LogLikelihood | None = None
        self.active = True

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        check_metrics(pl_module, ["bpd"], pl_module.data_shape)
        self.active = not pl_module.logs_likelihood_in_validation
        if not self.active:
            rank_zero_info(
                f"Likelihood callback: {type(pl_module).__name__} logs val/bpd and val/nll in "
                f"its own validation already; the callback adds nothing."
            )
        self.metric = LogLikelihood(pl_module.num_dims).to(pl_module.device)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
        if self.active and self._due(trainer):
            self.metric.update(log_prob(pl_module, batch[0], self.num_importance_samples))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not (self.active and self._due(trainer)):
            return
        for name, value in self.metric.compute().items():
            pl_module.log(f"val/{name}", value, on_epoch=True, prog_bar=name == "bpd")
        self.metric.reset()
