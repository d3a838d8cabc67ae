"""Run a 2-process CPU DDP fit (gloo) through the real CLI and Lightning's launcher.

Lightning's DDP launcher re-runs the launching script for rank 1, so the script below runs on
both ranks: each saves its final parameters (`rank<r>.pt`) and whatever the model recorded in
an optional `ddp_record` dict attribute (`record<r>.pt`), for tests to compare. With
`test=True` it then runs `trainer.test` on the fitted model and records the logged metrics
under `record["test_metrics"]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, torch
from genflow.cli import cli
test = "--ddp-test" in sys.argv
run = cli([a for a in sys.argv[1:] if a != "--ddp-test"])
rank = run.trainer.global_rank
torch.save({k: v.cpu() for k, v in run.model.state_dict().items()}, f"rank{rank}.pt")
record = dict(getattr(run.model, "ddp_record", {}))
if test:
    run.trainer.test(run.model, datamodule=run.datamodule, verbose=False)
    record["test_metrics"] = {k: v.item() for k, v in run.trainer.callback_metrics.items()}
torch.save(record, f"record{rank}.pt")
"""


def run_ddp_fit(
    tmp_path: Path, config: str, *extra: str, test: bool = False, timeout: int = 300
) -> list[dict]:
    """Fit `config` (relative to the repository root) on 2 CPU processes for 1 short epoch;
    return [{"state": state_dict, "record": ddp_record}] for rank 0 and rank 1."""
    (tmp_path / "ddp_fit.py").write_text(SCRIPT)
    args = ["fit", "--config", str(ROOT / config),
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4",
            "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
            "--run.wandb", "disabled", *extra]  # fmt: skip
    if test:  # the fit's logger is finished when cli() returns, so the test stage logs nowhere
        args += ["--ddp-test", "--trainer.logger", "false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    result = subprocess.run(
        [sys.executable, "ddp_fit.py", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return [
        {
            "state": torch.load(tmp_path / f"rank{r}.pt"),
            "record": torch.load(tmp_path / f"record{r}.pt"),
        }
        for r in (0, 1)
    ]


BATCHNORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


def assert_identical_parameters(ranks: list[dict], batchnorm_stats: bool = True) -> None:
    """Every entry of the state dicts of both ranks is bit-for-bit equal. BatchNorm running
    statistics are per rank under DDP on CPU (SyncBatchNorm needs GPUs; DDP re-broadcasts rank
    0's at each step and rank 0 saves the checkpoint): `batchnorm_stats=False` leaves them out."""
    rank0, rank1 = ranks[0]["state"], ranks[1]["state"]
    assert rank0.keys() == rank1.keys() and len(rank0) > 0
    for key in rank0:
        if not batchnorm_stats and key.endswith(BATCHNORM_STATS):
            continue
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
