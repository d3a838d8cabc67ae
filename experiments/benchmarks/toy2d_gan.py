"""Mode coverage of a GAN on Toy2D's 8 gaussians, trained through `genflow fit`.

Trains experiments/gan/toy2d.yaml (or another Toy2D config given with --config), then draws
10,000 samples with a fixed seed and reports `genflow.metrics.mode_coverage`: how many of the 8
modes hold at least 1% of the samples within 3 standard deviations, and the fraction of samples
within 3 standard deviations of their nearest mode (Srivastava et al. 2017; Metz et al. 2017).

    .venv/bin/python experiments/benchmarks/toy2d_gan.py      # about 2 minutes on one thread
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch
from mnist10k import print_json

from genflow.cli import cli
from genflow.data.toy2d import EIGHT_GAUSSIANS_STD, eight_gaussian_centers
from genflow.metrics import mode_coverage


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="experiments/gan/toy2d.yaml")
    p.add_argument("--samples", type=int, default=10_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--root", default="runs/benchmarks")
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    run = cli(["fit", "--config", args.config, "--run.root", args.root, "--run.wandb", "disabled",
               "--trainer.enable_progress_bar", "false"])  # fmt: skip
    seconds = time.perf_counter() - start
    model = run.model.eval()
    torch.manual_seed(1)
    coverage = mode_coverage(
        model.sample(args.samples), eight_gaussian_centers(), EIGHT_GAUSSIANS_STD
    )
    results = {
        "config": args.config,
        "fit_seconds": seconds,
        "epochs": run.trainer.current_epoch,
        "run_dir": run.trainer.default_root_dir,
        **asdict(coverage),
    }
    print_json(results, args.out)
    return results


if __name__ == "__main__":
    main()
