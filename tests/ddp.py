"""Run a 2-process CPU DDP fit (gloo) through the real CLI and Lightning's launcher.

Lightning's DDP launcher re-runs the launching script for rank 1, so the script below runs on
both ranks: each saves its final parameters (`rank<r>.pt`) and whatever the model recorded in
an optional `ddp_record` dict attribute (`record<r>.pt`), for tests to compare. With
`test=True` it then runs `trainer.test` on the fitted model and records the logged metrics
under `record["test_metrics"]`; with `validate=True`, `trainer.validate` of the last checkpoint
under `record["val_metrics"]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor

from genflow.metrics.features import FeatureExtractor
from genflow.metrics.likelihood import LogLikelihood
from genflow.metrics.quality import SampleQuality

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, torch
from genflow.cli import cli
flags = {"--ddp-test", "--ddp-validate"}
run = cli([a for a in sys.argv[1:] if a not in flags])
rank = run.trainer.global_rank
torch.save({k: v.cpu() for k, v in run.model.state_dict().items()}, f"rank{rank}.pt")
record = dict(getattr(run.model, "ddp_record", {}))
record["rng_draw"] = torch.rand(4)  # where this rank's global random stream ended up
if "--ddp-test" in sys.argv:
    run.trainer.test(run.model, datamodule=run.datamodule, verbose=False)
    record["test_metrics"] = {k: v.item() for k, v in run.trainer.callback_metrics.items()}
if "--ddp-validate" in sys.argv:  # the whole validation split, from rank 0's last checkpoint
    checkpoint = run.trainer.checkpoint_callback.last_model_path
    run.trainer.limit_val_batches = 1.0
    run.trainer.validate(run.model, datamodule=run.datamodule, ckpt_path=checkpoint, verbose=False)
    metrics = run.trainer.callback_metrics
    record["val_metrics"] = {k: v.item() for k, v in metrics.items() if k.startswith("val/")}
    record["checkpoint"] = checkpoint
torch.save(record, f"record{rank}.pt")
"""


def run_ddp_fit(
    tmp_path: Path,
    config: str,
    *extra: str,
    test: bool = False,
    validate: bool = False,
    timeout: int = 300,
) -> list[dict]:
    """Fit `config` (relative to the repository root) on 2 CPU processes for 1 short epoch;
    return [{"state": state_dict, "record": ddp_record}] for rank 0 and rank 1. The record
    also holds `rng_draw`, four numbers each rank drew from its global stream after the fit.
    With `validate=True` both ranks then validate rank 0's last checkpoint on the whole
    validation split: `record["val_metrics"]` and `record["checkpoint"]` (its path)."""
    (tmp_path / "ddp_fit.py").write_text(SCRIPT)
    args = ["fit", "--config", str(ROOT / config),
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "4",
            "--trainer.limit_val_batches", "2", "--trainer.enable_progress_bar", "false",
            "--run.wandb", "disabled", *extra]  # fmt: skip
    # the fit's logger is finished when cli() returns, so a later stage logs nowhere
    if test or validate:
        args += ["--trainer.logger", "false"]
    args += ["--ddp-test"] * test + ["--ddp-validate"] * validate
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


def assert_identical_parameters(
    ranks: list[dict], batchnorm_stats: bool = True, skip: tuple[str, ...] = ()
) -> None:
    """Every entry of the state dicts of both ranks is bit-for-bit equal. BatchNorm running
    statistics are per rank under DDP on CPU (SyncBatchNorm needs GPUs; DDP re-broadcasts rank
    0's at each step and rank 0 saves the checkpoint): `batchnorm_stats=False` leaves them out,
    as `skip` leaves out other buffers that are per rank by design."""
    rank0, rank1 = ranks[0]["state"], ranks[1]["state"]
    assert rank0.keys() == rank1.keys() and len(rank0) > 0
    for key in rank0:
        if (not batchnorm_stats and key.endswith(BATCHNORM_STATS)) or key.endswith(skip):
            continue
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)


CLI_SCRIPT = """
import sys, torch
from genflow.cli import cli
run = cli(sys.argv[1:])
metrics = {k: v.item() for k, v in run.trainer.callback_metrics.items() if v.numel() == 1}
torch.save(metrics, f"metrics{run.trainer.global_rank}.pt")
"""


def run_ddp_cli(tmp_path: Path, args: list[str], timeout: int = 300) -> list[dict]:
    """Run any `genflow` subcommand on 2 CPU processes; return each rank's logged metrics."""
    (tmp_path / "ddp_cli.py").write_text(CLI_SCRIPT)
    args = [*args, "--trainer.accelerator", "cpu", "--trainer.devices", "2",
            "--trainer.strategy", "ddp", "--run.wandb", "disabled"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PL_DISABLE_FORK": "1"}
    result = subprocess.run(
        [sys.executable, "ddp_cli.py", *args], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    (tmp_path / "stderr.txt").write_text(result.stderr)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(tmp_path / f"metrics{r}.pt") for r in (0, 1)]


# ---- metrics on two gloo ranks, without Lightning -------------------------------------------
class GivenFeatures(FeatureExtractor):
    """'Images' that are already (B, F) features followed by (B, K) logits."""

    name = "given"

    def __init__(self, num_features: int = 5, num_classes: int = 4) -> None:
        super().__init__()
        self.num_features, self.num_classes = num_features, num_classes

    def features(self, x):
        return x[:, : self.num_features]

    def logits(self, x):
        return x[:, self.num_features :]


def metric_data(num_real: int, num_fake: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    real = torch.randn(num_real, 9, generator=g)
    fake = torch.randn(num_fake, 9, generator=g) * 1.5 + 0.3
    log_p = -torch.rand(num_real, generator=g, dtype=torch.float64) * 100
    return real, fake, log_p


def metric_figures(real: Tensor, fake: Tensor, log_p: Tensor, chunk: int = 16) -> dict[str, float]:
    """FID/KID/IS/PR and bits/dim of the rows given (this rank's share under DDP), added in
    batches of `chunk` rows."""
    quality = SampleQuality(
        GivenFeatures(),
        ["fid", "kid", "is", "pr"],
        kid_subset_size=30,
        kid_subsets=20,
        is_splits=3,
    )
    for batch in real.split(chunk):
        quality.update(batch, real=True)
    for batch in fake.split(chunk):
        quality.update(batch, real=False)
    likelihood = LogLikelihood(num_dims=9)
    likelihood.update(log_p)
    return quality.compute() | {k: float(v) for k, v in likelihood.compute().items()}


def _metric_rank(rank: int, init_file: str, out_dir: str, num_real: int, num_fake: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        real, fake, log_p = metric_data(num_real, num_fake)
        # the unpadded split of the evaluation loaders: rank r gets r, r + 2, ...; the ranks
        # hold different numbers of batches, as they do when samples are drawn in chunks
        mine = metric_figures(real[rank::2], fake[rank::2], log_p[rank::2], chunk=16 + 8 * rank)
        torch.save(mine, Path(out_dir) / f"metrics{rank}.pt")
    finally:
        dist.destroy_process_group()


def run_metric_ranks(tmp_path: Path, num_real: int, num_fake: int) -> tuple[list[dict], dict]:
    """(figures of rank 0 and rank 1 of a 2-process gloo group, figures of one process)."""
    args = (str(tmp_path / "init"), str(tmp_path), num_real, num_fake)
    mp.start_processes(_metric_rank, args=args, nprocs=2, start_method="spawn")
    ranks = [torch.load(tmp_path / f"metrics{r}.pt") for r in (0, 1)]
    return ranks, metric_figures(*metric_data(num_real, num_fake))
