"""The multi-process launch paths of the README, on 2 CPU processes (gloo) standing in for GPUs:
torchrun, and a SLURM job step (srun's environment, set by hand on one machine). Each rank
trains on its half of every epoch, so a run on 2 processes takes half the steps of 1."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from genflow.cli import resolve_run_dir
from genflow.data import Digits

ROOT = Path(__file__).resolve().parent.parent
FIT = ["fit", "--config", str(ROOT / "experiments" / "vae" / "digits.yaml"),
       "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
       "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1",
       "--trainer.enable_progress_bar", "false", "--run.wandb", "disabled"]  # fmt: skip
GENFLOW = [sys.executable, "-c", "from genflow.cli import main; main()"]


def steps_per_epoch(world_size: int) -> int:
    """Batches of 64 (the config's) in each rank's share of Digits' training split."""
    data = Digits(batch_size=64)
    data.setup()
    return math.ceil(math.ceil(len(data.train_set) / world_size) / data.batch_size)


def finished_run(folder: Path) -> dict:
    checkpoint = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)
    assert (folder / "config.yaml").is_file() and (folder / "metrics.json").is_file()
    return checkpoint


def clean_env() -> dict[str, str]:
    drop = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "GENFLOW_RUN_DIR", "SLURM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return env | {"OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}


@pytest.mark.slow
def test_torchrun_launch_trains_on_two_processes_in_one_run_folder(tmp_path):
    """`torchrun --standalone --nproc-per-node 2 genflow fit ...`: Lightning takes the world from
    torchrun's environment, and both ranks write to runs/<name>/torchrun_<rendezvous id>."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "--no-python"]  # fmt: skip
    result = subprocess.run(
        [*torchrun, *GENFLOW[:1], *GENFLOW[1:], *FIT, "--run.root", str(tmp_path / "runs")],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (folder,) = (tmp_path / "runs" / "vae-digits").iterdir()
    assert folder.name.startswith("torchrun_")
    assert finished_run(folder)["global_step"] == steps_per_epoch(2) < steps_per_epoch(1)


@pytest.mark.slow
def test_slurm_job_step_trains_on_two_tasks_in_the_jobs_run_folder(tmp_path):
    """Two tasks with the environment `srun --ntasks-per-node 2` gives them: Lightning's SLURM
    environment builds the world from it, and the run folder is named after the job."""
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "genflow-test", "SLURM_NTASKS": "2",
             "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1", "SLURM_NODEID": "0",
             "SLURM_NODELIST": "127.0.0.1"}  # fmt: skip
    slurm["MASTER_PORT"] = str(29500 + os.getpid() % 1000)
    tasks = [
        subprocess.Popen(
            [*GENFLOW, *FIT, "--run.root", str(tmp_path / "runs")],
            cwd=tmp_path,
            env=clean_env() | slurm | {"SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for r in (0, 1)
    ]
    outputs = [task.communicate(timeout=300) for task in tasks]
    for task, (_, stderr) in zip(tasks, outputs, strict=True):
        assert task.returncode == 0, stderr[-3000:]
    (folder,) = (tmp_path / "runs" / "vae-digits").iterdir()
    assert folder.name == "slurm_4242"
    assert finished_run(folder)["global_step"] == steps_per_epoch(2) < steps_per_epoch(1)


def test_torchrun_without_a_rendezvous_id_asks_for_a_run_version(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with pytest.raises(ValueError, match="Pass --run.version <name> .* or --rdzv-id"):
        resolve_run_dir(str(tmp_path), "vae", None)
    assert resolve_run_dir(str(tmp_path), "vae", "mine") == tmp_path / "vae" / "mine"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job7")
    assert resolve_run_dir(str(tmp_path), "vae", None) == tmp_path / "vae" / "torchrun_job7"
    assert not (tmp_path / "vae").exists()  # nothing created while deciding
