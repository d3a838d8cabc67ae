"""`make demo`: train a Bernoulli VAE on the embedded 8x8 digits, then test it.

Writes a sample grid, a reconstruction grid and metrics.json (test ELBO, IWAE NLL and bits/dim
with K=1000) into runs/demo/<version>/, and prints where they are. No download, CPU only.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from genflow.cli import cli

CONFIG = str(Path(__file__).parent / "vae" / "digits.yaml")


def run_demo(extra: list[str]) -> Path:
    os.environ.setdefault("WANDB_SILENT", "true")
    start = time.perf_counter()
    fit = cli(["fit", "--config", CONFIG, "--run.name", "demo", *extra])
    run = Path(fit.trainer.default_root_dir)
    last = fit.trainer.checkpoint_callback.last_model_path
    cli(["test", "--config", CONFIG, "--run.name", "demo", "--run.version", run.name,
          "--ckpt_path", last, *extra])  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    print(f"\ngenflow demo finished in {time.perf_counter() - start:.0f} s. Run folder: {run}")
    for key in ("test/elbo", "test/iwae", "test/nll", "test/bpd", "test/elbo_bpd"):
        print(f"  {key:14s} {metrics[key]:.4f}")
    for png in sorted((run / "samples").glob("*.png"))[-2:]:
        print(f"  grid: {png}")
    print(f"  metrics: {run / 'metrics.json'}\n  checkpoint: {last}")
    return run


if __name__ == "__main__":
    run_demo(sys.argv[1:])
