"""MNIST-10k benchmark of genflow's Gated PixelCNN and PixelCNN against pytorch-generative
(../shared/peers.md).

Purpose: train `genflow.models.GatedPixelCNN` (or `PixelCNN`) through genflow's own path (the
`IDX` DataModule, the LightningModule and a CPU `pytorch_lightning.Trainer`) and report, next to
the peer's figures, the exact test NLL at fixed epochs, the NLL reached in a fixed wall-clock
budget, seconds per epoch, training images per second, and a sample grid (with its sampling
time) in the run folder.

Protocol (MNIST-10k, binarized): images 0-7,999 of MNIST's t10k file train, images 8,000-9,999
evaluate. Training batches are binarized afresh (`torch.bernoulli(x)`); the 2,000 evaluation
images are binarized once as `torch.bernoulli(x_eval, generator=torch.Generator().manual_seed(0))`
(genflow's `IDX(binarize="dynamic", seed=0)` does exactly this). NLL = -mean over the 2,000
images of the exact log-likelihood (`log_prob`), in nats summed over the 784 pixels. Adam 1e-3,
batch 64, one CPU thread, as the peer. Lightning's validation loop is off (evaluation is the
callback's, outside the timed training epochs); evaluation and sampling run under
`torch.random.fork_rng()`, so they do not change what training draws.

Full runs (from the repository root, one thread of a 2-core CPU: about 30 minutes each, 10
epochs (Gated PixelCNN about 53 s per epoch) with evaluations of about 20 s, then a separate
20-minute run):

    .venv/bin/python experiments/benchmarks/mnist10k_pixelcnn.py --model gated \
        --epochs 5,10 --minutes 20 --threads 1 --run-dir runs/benchmarks/mnist10k_gated_pixelcnn
    .venv/bin/python experiments/benchmarks/mnist10k_pixelcnn.py --model pixelcnn \
        --epochs 5,10 --minutes 20 --threads 1 --run-dir runs/benchmarks/mnist10k_pixelcnn
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

from genflow.callbacks.grids import save_grid
from genflow.data import IDX
from genflow.models import GatedPixelCNN, PixelCNN

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
TRAIN_RANGE, TEST_RANGE = (0, 8000), (8000, 10000)
SAMPLE_SEED = 0

# pytorch-generative (d1f0a5c), Bernoulli head, Adam 1e-3, batch 64 (../shared/peers.md)
PEERS = {
    "gated": {
        "name": "pytorch-generative GatedPixelCNN (8 layers x 16 ch, 45k params)",
        "nll": {5: 99.5, 10: 95.8},
        "img_per_s": "100-200",
    },
    "pixelcnn": {
        "name": "pytorch-generative PixelCNN (8 blocks, 32/16 ch, 30k params)",
        "nll": {5: 101.2, 10: 98.9},
        "img_per_s": None,
    },
}
PEER_SAMPLING_SECONDS = 141.0  # its naive sampler, 64 binary 28x28 images


# ---- set-up -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("gated", "pixelcnn"), default="gated")
    p.add_argument("--images", default=str(MNIST / "t10k-images-idx3-ubyte.gz"))
    p.add_argument("--labels", default=str(MNIST / "t10k-labels-idx1-ubyte.gz"))
    p.add_argument("--epochs", default="5,10", help="evaluate after these epochs ('' skips)")
    p.add_argument("--minutes", type=float, default=0, help="wall-clock run length (0 skips)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--channels", type=int, default=None, help="default 16 gated, 32 pixelcnn")
    p.add_argument("--layers", type=int, default=8, help="gated layers / residual blocks")
    p.add_argument("--head", type=int, default=32, help="hidden width of the output layers")
    p.add_argument("--first-kernel", type=int, default=7)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train-batches", type=int, default=None, help="for a quick check")
    p.add_argument("--limit-eval-images", type=int, default=None, help="for a quick check")
    p.add_argument("--num-samples", type=int, default=64)
    p.add_argument("--run-dir", default=None, help="folder for results.json and sample grids")
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


def make_model(args: argparse.Namespace, data: IDX) -> GatedPixelCNN | PixelCNN:
    common = dict(
        data_shape=data.data_shape,
        num_bits=data.num_bits,
        num_classes=data.num_classes,
        first_kernel_size=args.first_kernel,
        head_channels=args.head,
        optimizer=functools.partial(torch.optim.Adam, lr=args.lr),
    )
    if args.model == "gated":
        return GatedPixelCNN(hidden_channels=args.channels or 16, num_layers=args.layers, **common)
    return PixelCNN(hidden_channels=args.channels or 32, num_blocks=args.layers, **common)


def make_trainer(callbacks: list[pl.Callback], args: argparse.Namespace, **limits) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,  # evaluation is the callback's, untimed
        limit_train_batches=args.limit_train_batches,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **limits,
    )


# ---- evaluation -------------------------------------------------------------------------------
def eval_images(data: IDX, limit: int | None) -> Tensor:
    """The 2,000 evaluation images, binarized once with seed 0 by the DataModule."""
    return torch.cat([x for x, _ in data.test_dataloader()])[:limit]  # (2000, 1, 28, 28)


def train_images(data: IDX, n: int = 2000) -> Tensor:
    """The first `n` training images, binarized once (seed 0), to show the train/test gap."""
    x = data.train_set.x[:n].to(torch.float32) / 255
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(0))


def exact_nll(model, x: Tensor, batch: int = 500) -> float:
    """-mean log p(x) in nats per image: the exact autoregressive likelihood (`log_prob`)."""
    log_p = torch.cat([model.log_prob(xb) for xb in x.split(batch)])
    if not torch.isfinite(log_p).all():
        raise FloatingPointError("non-finite log-likelihood on the evaluation images")
    return -log_p.mean().item()


def draw_grid(model, args: argparse.Namespace, name: str) -> dict:
    """Sample a grid with the fast sampler (fixed seed, training RNG untouched), save it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SAMPLE_SEED)
        start = time.perf_counter()
        samples = model.sample(args.num_samples)
        seconds = time.perf_counter() - start
    if args.run_dir:
        png = save_grid(samples, Path(args.run_dir) / f"{name}.png")
        print(f"  samples: {png} ({seconds:.1f} s)")
    return {"sample_seconds": seconds, "sample_mean": samples.mean().item()}


def evaluate(model, x_eval: Tensor, x_train: Tensor, args, name: str) -> dict[str, float]:
    start = time.perf_counter()
    figures = {"nll": exact_nll(model, x_eval), "train_nll": exact_nll(model, x_train)}
    figures["bpd"] = figures["nll"] / (784 * math.log(2))
    figures["eval_seconds"] = time.perf_counter() - start
    return figures | draw_grid(model, args, name)


class EpochEval(pl.Callback):
    """Times each training epoch and evaluates after the listed (1-based) epochs."""

    def __init__(self, epochs: list[int], x_eval: Tensor, x_train: Tensor, args) -> None:
        self.epochs, self.x_eval, self.x_train, self.args = set(epochs), x_eval, x_train, args
        self.train_seconds, self.rows = 0.0, []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        self.train_seconds += time.perf_counter() - self._start
        epoch = trainer.current_epoch + 1
        if epoch not in self.epochs:
            return
        figures = evaluate(pl_module, self.x_eval, self.x_train, self.args, f"samples-ep{epoch}")
        self.rows.append({"epoch": epoch, "train_seconds": self.train_seconds} | figures)
        print(f"epoch {epoch:3d}  NLL {figures['nll']:.2f}  train NLL {figures['train_nll']:.2f}")


# ---- the two runs -----------------------------------------------------------------------------
def run_epochs(args: argparse.Namespace, data: IDX, x_eval: Tensor, x_train: Tensor) -> dict:
    """Train to max(epochs) once, evaluating after each listed epoch."""
    epochs = sorted(int_list(args.epochs))
    pl.seed_everything(args.seed, verbose=False)
    model = make_model(args, data)
    callback = EpochEval(epochs, x_eval, x_train, args)
    make_trainer([callback], args, max_epochs=epochs[-1]).fit(model, datamodule=data)
    seconds = callback.train_seconds / epochs[-1]
    images = len(data.train_set) if args.limit_train_batches is None else (
        args.limit_train_batches * args.batch_size
    )  # fmt: skip
    return {"rows": callback.rows, "s_per_epoch": seconds, "img_per_s": images / seconds}


def run_minutes(args: argparse.Namespace, data: IDX, x_eval: Tensor, x_train: Tensor) -> dict:
    """Train for a wall-clock budget (Trainer max_time), then evaluate once."""
    pl.seed_everything(args.seed, verbose=False)
    model = make_model(args, data)
    trainer = make_trainer([], args, max_epochs=-1, max_time={"seconds": 60 * args.minutes})
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    steps_per_epoch = math.ceil(len(data.train_set) / args.batch_size)
    epochs = trainer.global_step / steps_per_epoch
    figures = evaluate(model, x_eval, x_train, args, f"samples-{args.minutes:g}min")
    print(f"{args.minutes:g} min: {epochs:.1f} epochs, NLL {figures['nll']:.2f}")
    return {"minutes": args.minutes, "fit_seconds": seconds, "epochs": epochs} | figures


# ---- report -----------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def markdown(results: dict, peer: dict) -> str:
    lines = []
    if "epochs" in results:
        run = results["epochs"]
        lines += [
            "| epoch | genflow test NLL | peer test NLL | genflow train NLL |",
            "|---:|---:|---:|---:|",
        ]
        for row in run["rows"]:
            e, peer_nll = row["epoch"], peer["nll"].get(row["epoch"])
            lines.append(
                f"| {e} | {fmt(row['nll'])} | {fmt(peer_nll)} | {fmt(row['train_nll'])} |"
            )
        lines.append(
            f"\nTraining speed: {run['s_per_epoch']:.1f} s/epoch, {run['img_per_s']:.0f} img/s "
            f"(peer {peer['img_per_s'] or '–'} img/s)."
        )
    if "minutes" in results:
        m = results["minutes"]
        lines.append(
            f"\n{m['minutes']:g}-minute run: {m['epochs']:.1f} epochs, test NLL {m['nll']:.1f} "
            f"(train NLL {m['train_nll']:.1f}); {results['config']['num_samples']} samples in "
            f"{m['sample_seconds']:.1f} s with the fast sampler (the peer's naive sampler: "
            f"{PEER_SAMPLING_SECONDS:.0f} s for 64)."
        )
    return "\n".join(lines)


def describe(args: argparse.Namespace, model) -> dict:
    return {
        "config": vars(args),
        "model": type(model).__name__,
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "peer": PEERS[args.model],
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = make_data(args)
    x_eval = eval_images(data, args.limit_eval_images)
    x_train = train_images(data, args.limit_eval_images or 2000)
    results = describe(args, make_model(args, data))
    print(f"{results['model']}, {results['params']:,} params, {args.threads} thread(s)")
    if int_list(args.epochs):
        results["epochs"] = run_epochs(args, data, x_eval, x_train)
    if args.minutes > 0:
        results["minutes"] = run_minutes(args, data, x_eval, x_train)
    print("\n" + markdown(results, PEERS[args.model]))
    if args.run_dir:
        out = Path(args.run_dir) / "results.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nresults: {out}")
    return results


if __name__ == "__main__":
    main()
