"""Write the final metrics of a run as JSON in the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

from genflow.callbacks.grids import run_dir


def read_metrics(path: Path) -> dict[str, float]:
    return json.loads(path.read_text()) if path.exists() else {}


class MetricsFile(pl.Callback):
    """Merge the latest `stage/name` metrics into `<run>/metrics.json` after fit, validate and
    test, so a run folder always holds its final figures."""

    def __init__(self, filename: str = "metrics.json") -> None:
        self.filename = filename

    @rank_zero_only
    def _write(self, trainer: pl.Trainer) -> None:
        path = run_dir(trainer) / self.filename
        metrics = read_metrics(path)
        for key, value in trainer.callback_metrics.items():
            if value.numel() == 1:
                metrics[key] = float(value)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(sorted(metrics.items())), indent=2) + "\n")

    def on_fit_end(self, trainer, pl_module) -> None:
        self._write(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn != "fit":
            self._write(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self._write(trainer)
