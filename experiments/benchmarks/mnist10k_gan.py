"""MNIST-10k benchmark of genflow's GANs: train a config for a wall-clock budget through the
`genflow fit` path and report training speed, epochs reached and the sample grids written.

Protocol (../shared/peers.md): images 0-7,999 of MNIST's t10k file train (8-bit, as k/255);
images 8,000-9,999 are the evaluation split. One CPU thread. The run folder keeps a sample grid
per epoch (fixed noise, `samples/samples-epochNNN.png`), the checkpoint and metrics.json, whose
`train/img_per_s` is the speed of the training steps alone (the Throughput callback).
Sample-quality figures (LeNet-FID against the peers) come with the evaluation metrics.

Reproduce the figures of experiments/benchmarks/README.md (from the repository root, 10 minutes
each on one thread):

    .venv/bin/python experiments/benchmarks/mnist10k_gan.py \
        --config experiments/gan/dcgan_mnist10k.yaml
    .venv/bin/python experiments/benchmarks/mnist10k_gan.py \
        --config experiments/gan/wgangp_mnist10k.yaml
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
from mnist10k import print_json

from genflow.cli import cli

ROOT = Path(__file__).resolve().parents[2]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="a GAN config on the MNIST-10k IDX files")
    p.add_argument("--minutes", type=float, default=10.0, help="wall-clock training budget")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", default="runs/benchmarks", help="where the run folder goes")
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def max_time(minutes: float) -> str:
    seconds = int(round(60 * minutes))
    return f"00:{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    run = cli([
        "fit", "--config", args.config, "--trainer.max_time", max_time(args.minutes),
        "--trainer.max_epochs", "-1", "--run.root", args.root, "--run.wandb", "disabled",
        "--trainer.enable_progress_bar", "false",
    ])  # fmt: skip
    seconds = time.perf_counter() - start
    run_dir = Path(run.trainer.default_root_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    steps_per_epoch = math.ceil(len(run.datamodule.train_set) / run.datamodule.batch_size)
    grids = sorted((run_dir / "samples").glob("samples-epoch*.png"))
    results = {
        "config": args.config,
        "model": type(run.model).__name__,
        "params": sum(p.numel() for p in run.model.parameters()),
        "minutes": args.minutes,
        "wall_seconds": seconds,
        "epochs": run.trainer.current_epoch,
        "batches": run.model.critic_steps,
        "epochs_exact": run.model.critic_steps / steps_per_epoch,
        "img_per_s": metrics.get("train/img_per_s"),
        "run_dir": str(run_dir),
        "last_grid": str(grids[-1]) if grids else None,
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    print_json(results, args.out)
    return results


if __name__ == "__main__":
    main()
