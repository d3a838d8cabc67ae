"""A 2-process DDP run on CPU (gloo) through the real CLI and Lightning's launcher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

# Lightning's DDP launcher re-runs this script for rank 1, so both ranks save their parameters.
SCRIPT = """
import sys, torch
from genflow.cli import cli
run = cli(sys.argv[1:])
rank = run.trainer.global_rank
torch.save({k: v.cpu() for k, v in run.model.state_dict().items()}, f"rank{rank}.pt")
"""


@pytest.mark.slow
def test_vae_ddp_two_processes_leave_identical_parameters(tmp_path):
    (tmp_path / "ddp_fit.py").write_text(SCRIPT)
    args = ["fit", "--config", str(ROOT / "experiments/vae/digits.yaml"),
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4",
            "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
            "--run.wandb", "disabled"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    result = subprocess.run(
        [sys.executable, "ddp_fit.py", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) > 0
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    # both ranks agreed on one run folder, handed over by the launching process
    assert [p.name for p in (tmp_path / "runs" / "vae-digits").iterdir()] == ["version_0"]
