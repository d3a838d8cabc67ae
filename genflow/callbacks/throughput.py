"""Training speed in examples per second, logged once per epoch."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch


class Throughput(pl.Callback):
    """Log `train/img_per_s` (examples per second of training steps, on this rank) and
    `train/step_seconds` at the end of each training epoch.

    Only the time inside training steps counts (from batch start to batch end), so validation,
    checkpoints and sample grids do not dilute the figure. On CUDA the steps are timed with
    CUDA events read once at the epoch's end, so timing never makes the host wait for the
    device. Under DDP the figure is per rank; the run's throughput is that times the world size.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._seconds, self._examples, self._steps = 0.0, 0, 0
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._reset()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if pl_module.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            self._events.append((start, torch.cuda.Event(enable_timing=True)))
        else:
            self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if pl_module.device.type == "cuda":
            self._events[-1][1].record()
        else:
            self._seconds += time.perf_counter() - self._start
        self._examples += len(batch[0])
        self._steps += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._events:
            torch.cuda.synchronize(pl_module.device)
            self._seconds = sum(start.elapsed_time(end) for start, end in self._events) / 1000
        if self._steps == 0 or self._seconds == 0:
            return
        speed = {
            "train/img_per_s": self._examples / self._seconds,
            "train/step_seconds": self._seconds / self._steps,
        }
        pl_module.log_dict(speed, on_step=False, on_epoch=True, rank_zero_only=True)
