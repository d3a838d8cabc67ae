"""The model contract every genflow family implements (see the architecture contract)."""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Mapping, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.trainer.states import TrainerFn
from torch import Tensor, nn
from torchmetrics.aggregation import MeanMetric

from genflow.metrics.likelihood import bits_per_dim


class GenerativeModel(pl.LightningModule):
    """Base class of every genflow model.

    The data description (`data_shape`, `num_bits`, `num_classes`) is linked in from the
    DataModule by the CLI, so configs never state a shape twice. Families implement what
    applies of `sample`, `log_prob`, `encode`/`decode` and `latent_shape`; callbacks and the
    `evaluate` command use only these.

    Args:
        data_shape: shape of one example, e.g. (1, 28, 28) or (2,).
        num_bits: bits per value of the discrete data (8, or 1 for binarized data); None for
            continuous data.
        num_classes: number of class labels the data carries.
        optimizer: a callable that builds the optimizer from the parameters.
        lr_scheduler: optional callable that builds a scheduler from the optimizer.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        if num_bits is not None and num_bits < 1:
            raise ValueError(f"num_bits must be >= 1 or None (continuous data), got {num_bits}.")
        self.data_shape = tuple(int(s) for s in data_shape)
        self.num_bits = num_bits
        self.num_classes = num_classes
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self._example_means = nn.ModuleDict()  # "stage/name" -> MeanMetric, made on first use
        self.last_train_metrics: dict[str, Tensor | float] = {}  # this step's, see log_stage

    # ---- the contract -------------------------------------------------------------------
    def sample(
        self, num_samples: int, *, labels: Tensor | None = None, temperature: float = 1.0
    ) -> Tensor:
        """`num_samples` draws in the data space ([0, 1] images or 2D points)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement sample().")

    def log_prob(self, x: Tensor) -> Tensor:
        """(B,) log-likelihood in nats of the discrete data as the DataModule yields it."""
        raise NotImplementedError(
            f"{type(self).__name__} has no tractable likelihood or bound, so log_prob() and "
            f"bits/dim are not defined for it; evaluate it with sample-based metrics instead."
        )

    def encode(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no encoder.")

    def decode(self, z: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no decoder.")

    @property
    def latent_shape(self) -> tuple[int, ...]:
        raise NotImplementedError(f"{type(self).__name__} has no latent space.")

    @property
    def has_likelihood(self) -> bool:
        """Whether `log_prob` is defined (exactly, or as the IWAE bound)."""
        return type(self).log_prob is not GenerativeModel.log_prob

    #: Whether validation already logs `val/bpd` and `val/nll` of `log_prob` (exact models do,
    #: through `log_likelihood_metrics`); the `Likelihood` callback serves the others.
    logs_likelihood_in_validation: bool = False

    #: Whether `sample` honours class labels; families that learn p(x | y) set it.
    conditional: bool = False

    def compilable_networks(self) -> dict[str, nn.Module]:
        """The neural networks that do the model's work, by attribute name, for the
        `SpeedOptions` callback to compile; none for the closed-form models. A family whose
        training differentiates a network twice (a gradient penalty) leaves that one out:
        compiled graphs do not support double backward."""
        return {}

    # ---- helpers shared by the families ---------------------------------------------------
    @property
    def num_dims(self) -> int:
        """D, the number of data dimensions."""
        return math.prod(self.data_shape)

    def bits_per_dim(self, x: Tensor) -> Tensor:
        """(B,) bits per dimension, -log_prob(x) / (D ln 2)."""
        return bits_per_dim(self.log_prob(x), self.num_dims)

    def check_sample_args(self, num_samples: int, labels: Tensor | None = None) -> None:
        """Fail clearly on a sample count below 1, or on labels that the model would ignore."""
        bad = isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral)
        if bad or num_samples < 1:
            raise ValueError(
                f"num_samples must be a whole number >= 1, got {num_samples!r}. Ask for at "
                f"least one sample (CLI: --num_samples 64)."
            )
        if labels is not None and not self.conditional:
            raise ValueError(
                f"{type(self).__name__} is unconditional: it learns p(x) without classes, so it "
                f"cannot sample given labels. Leave labels out, or train a class-conditional "
                f"model (ConditionalGAN, or a PixelCNN family with conditional: true)."
            )

    def check_batch(self, x: Tensor) -> None:
        """Fail clearly when a batch does not have the shape the model was built for."""
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{type(self).__name__} was built for data of shape {self.data_shape} but got a "
                f"batch of shape {tuple(x.shape[1:])}. Build the model with the DataModule's "
                f"data_shape (the CLI links it automatically; in Python pass "
                f"data_shape=datamodule.data_shape)."
            )

    def log_stage(self, stage: str, metrics: Mapping[str, Tensor | float], **kwargs) -> None:
        """Log `metrics` under `stage/name` keys; evaluation stages are synced across ranks.

        Training figures go to Lightning only on the steps its logger writes (every
        `log_every_n_steps`) and on the last batch of each epoch (so epoch-end readers of
        `trainer.callback_metrics` see the epoch's last figures): each `self.log` call costs
        about half a millisecond of Python, several percent of a small model's step. The
        progress bar therefore refreshes them every `log_every_n_steps`. Every step's figures
        stay readable, detached, in `last_train_metrics` (the `DivergenceGuard` checks them).
        """
        on_step = stage == "train"
        if on_step:
            self.last_train_metrics = {
                k: v.detach() if isinstance(v, Tensor) else v for k, v in metrics.items()
            }
            if not self._logger_writes_this_step():
                return
        self.log_dict(
            {f"{stage}/{k}": v for k, v in metrics.items()},
            on_step=on_step,
            on_epoch=not on_step,
            sync_dist=not on_step,
            prog_bar=kwargs.pop("prog_bar", False),
            **kwargs,
        )

    def _logger_writes_this_step(self) -> bool:
        """Whether Lightning writes this training step's logs (outside a fit: always)."""
        trainer = self._trainer
        if trainer is None or trainer.fast_dev_run or trainer.is_last_batch:
            return True
        # Lightning's own test; it has no public name, so fall back to logging every step
        return getattr(trainer._logger_connector, "should_update_logs", True)

    def log_example_means(
        self, stage: str, per_example: Mapping[str, Tensor], prog_bar: bool = False
    ) -> None:
        """Log `stage/name` as the exact mean of per-example values (B,) over the whole split.

        Sums and counts accumulate in float64 torchmetrics states that are added up across DDP
        ranks at the epoch's end, and the DataModules hand each rank a disjoint, unpadded share
        of the evaluation split, so the figure equals the single-process one whatever the
        number of ranks and however unevenly the split divides. A non-finite value is an
        error, never averaged away.
        """
        for name, values in per_example.items():
            key = f"{stage}/{name}"
            values = values.detach().flatten().to(torch.float64)
            if not torch.isfinite(values).all():
                raise FloatingPointError(
                    f"{key} is not finite for {int((~torch.isfinite(values)).sum())} of "
                    f"{values.numel()} examples: the model has diverged or the data is outside "
                    f"its support. Lower the learning rate or check the data's range."
                )
            attribute = key.replace("/", "__")
            if attribute not in self._example_means:
                metric = MeanMetric(nan_strategy="error").set_dtype(torch.float64)
                self._example_means[attribute] = metric.to(values.device)
            metric = self._example_means[attribute]
            metric.update(values)
            self.log(
                key,
                metric,
                on_step=False,
                on_epoch=True,
                prog_bar=prog_bar,
                metric_attribute=f"_example_means.{attribute}",
            )

    def log_likelihood_metrics(self, stage: str, log_p: Tensor) -> None:
        """Log `stage/nll` (nats per example) and `stage/bpd` of exact log-likelihoods (B,),
        as exact means over the whole split (`log_example_means`)."""
        metrics = {"bpd": bits_per_dim(log_p, self.num_dims), "nll": -log_p}
        self.log_example_means(stage, metrics, prog_bar=stage == "val")

    # ---- DDP: each rank draws its own training noise --------------------------------------
    def on_fit_start(self) -> None:
        """Give each DDP rank its own random stream. seed_everything seeds every rank alike
        (and a resumed run restores rank 0's RNG state on every rank), so the ranks would
        otherwise draw identical reparameterization noise, dequantization noise, dynamic
        binarizations and dropout masks on their different batches. All ranks draw one number
        from their identical streams and reseed with it plus their rank: reproducible, and a
        single process is left untouched."""
        if self.trainer.world_size > 1:
            base = int(torch.randint(2**62, (1,)))
            torch.manual_seed(base + self.global_rank)
        # Metrics made by an earlier `trainer.validate` / `test` hold inference-mode tensors,
        # which fit's validation (run under no_grad) may not update in place: start afresh.
        self._example_means.clear()

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        """Free the previous step's gradients before this step's forward pass. Lightning zeroes
        them only after `training_step` (so they can accumulate), which keeps a second copy of
        the parameters' size alive through every forward pass; without accumulation they are
        dead by now. Manual optimization (the GANs) zeroes its own before each backward."""
        if self.trainer.accumulate_grad_batches == 1:
            for optimizer in self.trainer.optimizers:
                optimizer.zero_grad(set_to_none=True)

    # ---- checkpoints: resume draws exactly the random numbers an uninterrupted run would ----
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "python": random.getstate(),
            "numpy": _numpy_state_to_torch(np.random.get_state()),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Only when a fit resumes: loading weights to sample or evaluate keeps the caller's seed.
        resuming = self._trainer is not None and self.trainer.state.fn == TrainerFn.FITTING
        states = checkpoint.get("rng_states")
        if not resuming or states is None:
            return
        torch.set_rng_state(states["torch"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
        random.setstate(states["python"])
        np.random.set_state(_numpy_state_from_torch(states["numpy"]))

    def configure_optimizers(self):
        optimizer = self.optimizer(self.parameters())
        if self.lr_scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": self.lr_scheduler(optimizer)}


# numpy's RNG state holds an ndarray, which checkpoints loaded with weights_only=True refuse.
def _numpy_state_to_torch(state: tuple) -> tuple:
    name, keys, *rest = state
    return (name, torch.from_numpy(keys.astype(np.int64)), *rest)


def _numpy_state_from_torch(state: tuple) -> tuple:
    name, keys, *rest = state
    return (name, keys.numpy().astype(np.uint32), *rest)
