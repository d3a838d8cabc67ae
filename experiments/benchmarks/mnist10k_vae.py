"""MNIST-10k benchmark of genflow's Bernoulli VAE against the pythae peer (../shared/peers.md).

Purpose: train `genflow.models.VAE` through genflow's own path (the `IDX` DataModule, the VAE
LightningModule and a CPU `pytorch_lightning.Trainer`) and report, next to the peer's figures,
the test IWAE NLL (K = 1000) and the negative ELBO at fixed epochs, the figure reached in a
fixed wall-clock budget, seconds per epoch and training images per second.

Protocol (MNIST-10k, binarized): images 0-7,999 of MNIST's t10k file train, images 8,000-9,999
evaluate. Training batches are binarized afresh (`torch.bernoulli(x)`); the 2,000 evaluation
images are binarized once as `torch.bernoulli(x_eval, generator=torch.Generator().manual_seed(0))`
(genflow's `IDX(binarize="dynamic", seed=0)` does exactly this). NLL = -mean over the 2,000 images
of the IWAE bound with K = 1000, in nats summed over the 784 pixels. Latent 32, Adam, batch 128,
one CPU thread. Evaluation runs inside `torch.random.fork_rng()` with its own seed, so it neither
disturbs training nor varies between runs; Lightning's validation loop is off for the same reason
(it would draw from the training RNG), and its time is not counted in s/epoch.

Reproduce the figures of experiments/benchmarks/README.md (from the repository root, about
16 minutes on one thread of a 2-core CPU):

    .venv/bin/python experiments/benchmarks/mnist10k_vae.py --arch mlp --hidden 1024 \
        --epochs 10,30,100 --minutes 10 --k 1000 --threads 1 \
        --out runs/benchmarks/mnist10k_vae.json
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
from genflow.models import VAE

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
TRAIN_RANGE, TEST_RANGE = (0, 8000), (8000, 10000)
EVAL_SEED = 1234  # the seed of the importance samples, fixed so figures repeat exactly

# pythae 0.1.2 default MLP VAE, 854k params (../shared/peers.md)
PEER = {
    "name": "pythae 0.1.2, default MLP (784-512-32, 854k params)",
    "iwae_nll": {10: 114.9, 30: 102.1, 100: 97.6},
    "neg_elbo": {100: 104.5},
    "img_per_s": 3900,
}


# ---- set-up -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", default=str(MNIST / "t10k-images-idx3-ubyte.gz"))
    p.add_argument("--labels", default=str(MNIST / "t10k-labels-idx1-ubyte.gz"))
    p.add_argument("--epochs", default="10,30,100", help="evaluate after these epochs ('' skips)")
    p.add_argument("--minutes", type=float, default=0, help="wall-clock run length (0 skips)")
    p.add_argument("--k", type=int, default=1000, help="importance samples of the IWAE bound")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--arch", choices=("mlp", "conv", "seed"), default="mlp")
    p.add_argument("--hidden", default="1024", help="MLP widths, comma-separated")
    p.add_argument("--channels", type=int, default=16, help="first conv width")
    p.add_argument("--latent", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
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
        binarize="dynamic",
        batch_size=args.batch_size,
        eval_batch_size=500,
        seed=0,
    )
    data.setup()
    return data


def make_model(args: argparse.Namespace, data: IDX) -> VAE:
    return VAE(
        data_shape=data.data_shape,
        num_bits=data.num_bits,
        num_classes=data.num_classes,
        latent_dim=args.latent,
        likelihood="bernoulli",
        architecture=args.arch,
        hidden_dims=tuple(int_list(args.hidden)),
        channels=args.channels,
        num_importance_samples=args.k,
        optimizer=functools.partial(torch.optim.Adam, lr=args.lr),
    )


def make_trainer(callbacks: list[pl.Callback], **limits) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,  # evaluation is the callback's, under its own RNG
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **limits,
    )


# ---- evaluation -------------------------------------------------------------------------------
def eval_images(data: IDX) -> Tensor:
    """The 2,000 evaluation images, binarized once with seed 0 by the DataModule."""
    return torch.cat([x for x, _ in data.test_dataloader()])  # (2000, 1, 28, 28)


def train_images(data: IDX, n: int = 2000) -> Tensor:
    """The first `n` training images, binarized once (seed 0) to measure the train/test gap."""
    x = data.train_set.x[:n].to(torch.float32) / 255
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def neg_elbo(model: VAE, x: Tensor, draws: int = 10, batch: int = 500) -> float:
    """-ELBO in nats: single-sample reconstruction term + closed-form KL, mean of `draws`."""
    was_training = model.training
    model.eval()
    terms = [model.elbo_terms(xb) for _ in range(draws) for xb in x.split(batch)]
    model.train(was_training)
    return torch.cat([kl - rec for rec, kl in terms]).mean().item()


def iwae_nll(model: VAE, x: Tensor, k: int, batch: int = 500) -> float:
    """-mean IWAE bound in nats with exactly k importance samples (`VAE.log_prob`)."""
    log_p = torch.cat([model.log_prob(xb, num_samples=k) for xb in x.split(batch)])
    if not torch.isfinite(log_p).all():
        raise FloatingPointError("non-finite IWAE bound on the evaluation images")
    return -log_p.mean().item()


def evaluate(model: VAE, x_eval: Tensor, x_train: Tensor, k: int) -> dict[str, float]:
    """Test IWAE NLL and -ELBO (and train -ELBO) without touching the training RNG."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(EVAL_SEED)
        figures = {
            "iwae_nll": iwae_nll(model, x_eval, k),
            "neg_elbo": neg_elbo(model, x_eval),
            "train_neg_elbo": neg_elbo(model, x_train),
        }
    return figures | {"eval_seconds": time.perf_counter() - start}


def figures_text(figures: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.2f}" for k, v in figures.items())


class EpochEval(pl.Callback):
    """Times each training epoch and evaluates after the listed (1-based) epochs."""

    def __init__(self, epochs: list[int], x_eval: Tensor, x_train: Tensor, k: int) -> None:
        self.epochs, self.x_eval, self.x_train, self.k = set(epochs), x_eval, x_train, k
        self.train_seconds, self.rows = 0.0, []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: VAE) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: VAE) -> None:
        self.train_seconds += time.perf_counter() - self._start
        epoch = trainer.current_epoch + 1
        if epoch not in self.epochs:
            return
        figures = evaluate(pl_module, self.x_eval, self.x_train, self.k)
        self.rows.append({"epoch": epoch, "train_seconds": self.train_seconds} | figures)
        print(f"epoch {epoch:4d}  {figures_text(figures)}", flush=True)


# ---- the two runs -----------------------------------------------------------------------------
def run_epochs(args: argparse.Namespace, data: IDX, x_eval: Tensor, x_train: Tensor) -> dict:
    """Train to max(epochs) once, evaluating after each listed epoch."""
    epochs = sorted(int_list(args.epochs))
    pl.seed_everything(args.seed, verbose=False)
    model = make_model(args, data)
    callback = EpochEval(epochs, x_eval, x_train, args.k)
    make_trainer([callback], max_epochs=epochs[-1]).fit(model, datamodule=data)
    seconds = callback.train_seconds / epochs[-1]
    return {
        "rows": callback.rows,
        "s_per_epoch": seconds,
        "img_per_s": len(data.train_set) / seconds,
    }


def run_minutes(args: argparse.Namespace, data: IDX, x_eval: Tensor, x_train: Tensor) -> dict:
    """Train for a wall-clock budget (Trainer max_time), then evaluate once."""
    pl.seed_everything(args.seed, verbose=False)
    model = make_model(args, data)
    trainer = make_trainer([], max_epochs=-1, max_time={"seconds": 60 * args.minutes})
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    steps_per_epoch = math.ceil(len(data.train_set) / args.batch_size)
    figures = evaluate(model, x_eval, x_train, args.k)
    epochs = trainer.global_step / steps_per_epoch
    print(f"{args.minutes:g} min: {epochs:.1f} epochs, IWAE NLL {figures['iwae_nll']:.2f}")
    return {"minutes": args.minutes, "fit_seconds": seconds, "epochs": epochs} | figures


# ---- report -----------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def epoch_table(run: dict) -> list[str]:
    lines = [
        "| epoch | genflow IWAE NLL | peer IWAE NLL | genflow −ELBO | peer −ELBO | "
        "genflow train −ELBO |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in run["rows"]:
        e = row["epoch"]
        lines.append(
            f"| {e} | {fmt(row['iwae_nll'])} | {fmt(PEER['iwae_nll'].get(e))} | "
            f"{fmt(row['neg_elbo'])} | {fmt(PEER['neg_elbo'].get(e))} | "
            f"{fmt(row['train_neg_elbo'])} |"
        )
    lines.append(
        f"\nTraining speed: {run['s_per_epoch']:.2f} s/epoch, {run['img_per_s']:.0f} img/s "
        f"(peer ≈{PEER['img_per_s']} img/s)."
    )
    return lines


def minutes_line(run: dict) -> str:
    return (
        f"\n{run['minutes']:g}-minute run: {run['epochs']:.1f} epochs, IWAE NLL "
        f"{run['iwae_nll']:.1f}, −ELBO {run['neg_elbo']:.1f} (train −ELBO "
        f"{run['train_neg_elbo']:.1f})."
    )


def markdown(results: dict) -> str:
    lines = epoch_table(results["epochs"]) if "epochs" in results else []
    if "minutes" in results:
        lines.append(minutes_line(results["minutes"]))
    return "\n".join(lines)


def describe(args: argparse.Namespace, model: VAE) -> dict:
    return {
        "config": vars(args),
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "eval_seed": EVAL_SEED,
        "peer": PEER,
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = make_data(args)
    x_eval, x_train = eval_images(data), train_images(data)
    results = describe(args, make_model(args, data))
    print(f"{args.arch} VAE, {results['params']:,} params, {args.threads} thread(s)")
    if int_list(args.epochs):
        results["epochs"] = run_epochs(args, data, x_eval, x_train)
    if args.minutes > 0:
        results["minutes"] = run_minutes(args, data, x_eval, x_train)
    print("\n" + markdown(results))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
        print(f"\nresults: {args.out}")
    return results


if __name__ == "__main__":
    main()
