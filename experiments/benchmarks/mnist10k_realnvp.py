"""MNIST-10k benchmark of genflow's RealNVP against the normflows Glow peer (../shared/peers.md).

Purpose: train `genflow.models.RealNVP` through genflow's own path (the `IDX` DataModule, the
RealNVP LightningModule and a CPU `pytorch_lightning.Trainer`) and report, next to the peer's
figures, test bits/dim at fixed epochs, the figure reached in a fixed wall-clock budget, seconds
per epoch, training images per second, and the fraction of finite samples at temperature 1.

Protocol (MNIST-10k, 8-bit): images 0-7,999 of MNIST's t10k file train, images 8,000-9,999
evaluate. u = (x_uint8 + U[0, 1)) / 256 with the evaluation noise drawn once with seed 0, as
`torch.rand((2000, 1, 28, 28), generator=torch.Generator().manual_seed(0))`, and
bits/dim = (-log p_u(u) + 784 ln 256) / (784 ln 2), the mean over the 2,000 images. A non-finite
log-density on any evaluation image is an error, never averaged away. Training dequantizes
each batch afresh (genflow's RealNVP training step). One CPU thread. Evaluation runs inside
`torch.random.fork_rng()`, so it does not change training; Lightning's validation loop is off
and evaluation time is not counted in s/epoch.

Finite samples: 1,000 latents z ~ N(0, I) (seed 1) are mapped through the inverse flow; an
image counts as finite when all 784 dequantized values u are finite.

Full run (from the repository root; about 22 minutes on one thread of a 2-core CPU: 10 epochs,
then a separate 15-minute wall-clock run, with three evaluations):

    .venv/bin/python experiments/benchmarks/mnist10k_realnvp.py --epochs 5,10 --minutes 15 \\
        --threads 1 --out runs/benchmarks/mnist10k_realnvp.json
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor

from genflow.data import IDX
from genflow.models import RealNVP

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
TRAIN_RANGE, TEST_RANGE = (0, 8000), (8000, 10000)
NOISE_SEED, SAMPLE_SEED, NUM_SAMPLES = 0, 1, 1000

# normflows 1.7.3 multi-scale Glow, L=2, K=4, 64 hidden, 78k params (../shared/peers.md)
PEER = {
    "name": "normflows 1.7.3 Glow (L=2, K=4, 64 hidden, 78k params)",
    "bpd": {5: 3.85, 10: 2.70},
    "finite_samples_t1": 0.29,  # 71 % non-finite after 10 epochs
}


# ---- set-up -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", default=str(MNIST / "t10k-images-idx3-ubyte.gz"))
    p.add_argument("--labels", default=str(MNIST / "t10k-labels-idx1-ubyte.gz"))
    p.add_argument("--epochs", default="5,10", help="evaluate after these epochs ('' skips)")
    p.add_argument("--minutes", type=float, default=15, help="wall-clock run length (0 skips)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scales", type=int, default=2)
    p.add_argument("--features", type=int, default=16, help="feature maps of the s/t ResNets")
    p.add_argument("--blocks", type=int, default=2, help="residual blocks per s/t ResNet")
    p.add_argument("--norm", choices=("batchnorm", "actnorm", "none"), default="batchnorm")
    p.add_argument("--alpha", type=float, default=1e-6, help="alpha of the logit transform")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-batches", type=int, default=None, help="batches per epoch (checks)")
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def int_list(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def make_data(args: argparse.Namespace) -> IDX:
    data = IDX(
        images=args.images,
        labels=args.labels,
        train_range=TRAIN_RANGE,
        test_range=TEST_RANGE,
        val_size=0,
        batch_size=args.batch_size,
        eval_batch_size=500,
        seed=0,
    )
    data.setup()
    return data


def make_model(args: argparse.Namespace, data: IDX) -> RealNVP:
    return RealNVP(
        data_shape=data.data_shape,
        num_bits=data.num_bits,
        num_classes=data.num_classes,
        num_scales=args.scales,
        features=args.features,
        num_blocks=args.blocks,
        norm=args.norm,
        logit_alpha=args.alpha,
        optimizer=functools.partial(torch.optim.Adam, lr=args.lr),
    )


def make_trainer(callbacks: list[pl.Callback], limit: int | None, **limits) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,  # evaluation is the callback's, under its own RNG
        limit_train_batches=limit,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **limits,
    )


# ---- evaluation -------------------------------------------------------------------------------
def eval_inputs(data: IDX) -> Tensor:
    """u = (x_uint8 + U) / 256 of the 2,000 evaluation images, U drawn once with seed 0."""
    x = torch.cat([x for x, _ in data.test_dataloader()])  # (2000, 1, 28, 28), k / 255
    k = torch.round(x * 255)
    return (k + torch.rand(k.shape, generator=torch.Generator().manual_seed(NOISE_SEED))) / 256


@torch.no_grad()
def test_bpd(model: RealNVP, u: Tensor, batch: int = 500) -> float:
    """Mean of (-log p_u(u) + D ln 256) / (D ln 2) over the images, in eval mode."""
    was_training = model.training
    model.eval()
    log_p = torch.cat([model.log_density(ub) for ub in u.split(batch)]).double()
    model.train(was_training)
    if not torch.isfinite(log_p).all():
        bad = int((~torch.isfinite(log_p)).sum())
        raise FloatingPointError(f"non-finite log-density on {bad} of {len(u)} evaluation images")
    d = u[0].numel()
    return ((-log_p + d * math.log(256)) / (d * math.log(2))).mean().item()


@torch.no_grad()
def finite_sample_fraction(model: RealNVP, n: int = NUM_SAMPLES, batch: int = 500) -> float:
    """Fraction of n draws at T = 1 whose dequantized values u are all finite."""
    was_training = model.training
    model.eval()
    z = torch.randn((n, *model.latent_shape), generator=torch.Generator().manual_seed(SAMPLE_SEED))
    u = torch.cat([model.bijection.inverse(zb)[0] for zb in z.split(batch)])
    model.train(was_training)
    return torch.isfinite(u.flatten(1)).all(1).double().mean().item()


def evaluate(model: RealNVP, u: Tensor) -> dict[str, float]:
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        figures = {"bpd": test_bpd(model, u), "finite_samples_t1": finite_sample_fraction(model)}
    return figures | {"eval_seconds": time.perf_counter() - start}


class EpochEval(pl.Callback):
    """Times each training epoch and evaluates after the listed (1-based) epochs."""

    def __init__(self, epochs: list[int], u: Tensor) -> None:
        self.epochs, self.u = set(epochs), u
        self.train_seconds, self.images, self.rows = 0.0, 0, []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: RealNVP) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch[0])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: RealNVP) -> None:
        self.train_seconds += time.perf_counter() - self._start
        epoch = trainer.current_epoch + 1
        if epoch not in self.epochs:
            return
        figures = evaluate(pl_module, self.u)
        self.rows.append({"epoch": epoch, "train_seconds": self.train_seconds} | figures)
        print(f"epoch {epoch:4d}  " + "  ".join(f"{k} {v:.3f}" for k, v in figures.items()))


# ---- the two runs -----------------------------------------------------------------------------
def run_epochs(args: argparse.Namespace, data: IDX, u: Tensor) -> dict:
    """Train to max(epochs) once, evaluating after each listed epoch."""
    epochs = sorted(int_list(args.epochs))
    pl.seed_everything(args.seed, verbose=False)
    model = make_model(args, data)
    callback = EpochEval(epochs, u)
    make_trainer([callback], args.limit_batches, max_epochs=epochs[-1]).fit(model, datamodule=data)
    return {
        "rows": callback.rows,
        "s_per_epoch": callback.train_seconds / epochs[-1],
        "img_per_s": callback.images / callback.train_seconds,
    }


def run_minutes(args: argparse.Namespace, data: IDX, u: Tensor) -> dict:
    """Train for a wall-clock budget (Trainer max_time), then evaluate once."""
    pl.seed_everything(args.seed, verbose=False)
    model = make_model(args, data)
    trainer = make_trainer(
        [], args.limit_batches, max_epochs=-1, max_time={"seconds": 60 * args.minutes}
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    steps_per_epoch = args.limit_batches or math.ceil(len(data.train_set) / args.batch_size)
    epochs = trainer.global_step / steps_per_epoch
    figures = evaluate(model, u)
    print(f"{args.minutes:g} min: {epochs:.1f} epochs, bits/dim {figures['bpd']:.3f}")
    return {"minutes": args.minutes, "fit_seconds": seconds, "epochs": epochs} | figures


# ---- report -----------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    lines = []
    if "epochs" in results:
        run = results["epochs"]
        lines += [
            "| epoch | genflow bits/dim | peer bits/dim | genflow finite samples (T=1) |",
            "|---:|---:|---:|---:|",
        ]
        for row in run["rows"]:
            e = row["epoch"]
            lines.append(
                f"| {e} | {fmt(row['bpd'])} | {fmt(PEER['bpd'].get(e))} | "
                f"{100 * row['finite_samples_t1']:.1f} % |"
            )
        lines.append(
            f"\nTraining speed: {run['s_per_epoch']:.1f} s/epoch, {run['img_per_s']:.0f} img/s. "
            f"Peer at epoch 10: {100 * PEER['finite_samples_t1']:.0f} % finite samples."
        )
    if "minutes" in results:
        m = results["minutes"]
        lines.append(
            f"\n{m['minutes']:g}-minute run: {m['epochs']:.1f} epochs, bits/dim {m['bpd']:.3f}, "
            f"{100 * m['finite_samples_t1']:.1f} % finite samples at T = 1."
        )
    return "\n".join(lines)


def describe(args: argparse.Namespace, model: RealNVP) -> dict:
    return {
        "config": vars(args),
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "noise_seed": NOISE_SEED,
        "peer": PEER,
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = make_data(args)
    u = eval_inputs(data)
    results = describe(args, make_model(args, data))
    print(f"RealNVP, {results['params']:,} params, {args.threads} thread(s)")
    if int_list(args.epochs):
        results["epochs"] = run_epochs(args, data, u)
    if args.minutes > 0:
        results["minutes"] = run_minutes(args, data, u)
    print("\n" + markdown(results))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
        print(f"\nresults: {args.out}")
    return results


if __name__ == "__main__":
    main()
