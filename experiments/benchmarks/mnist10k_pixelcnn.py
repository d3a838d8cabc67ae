"""MNIST-10k benchmark of genflow's autoregressive models: Gated PixelCNN and PixelCNN against
pytorch-generative (../shared/peers.md), and PixelRNN (Row LSTM, Diagonal BiLSTM) and the
parallel multiscale model next to them at the same epochs.

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

PixelRNN (the paper's MNIST size, 7 layers of h = 16; `--channels` is 2h) and the multiscale
model (7x7 Gated PixelCNN base, then two scales of three group networks) have no peer; the
table shows genflow's Gated PixelCNN figures beside them. PixelRNN samples by rerunning its
network per sub-pixel, so its grids are small:

    .venv/bin/python experiments/benchmarks/mnist10k_pixelcnn.py --model rowlstm --lr 0.002 \
        --epochs 1,2 --minutes 0 --num-samples 8 --threads 1 \
        --run-dir runs/benchmarks/mnist10k_rowlstm
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from pathlib import Path

import mnist10k
import torch
from mnist10k import fmt
from torch import Tensor

from genflow.callbacks.grids import save_grid
from genflow.data import IDX
from genflow.models import GatedPixelCNN, MultiscalePixelCNN, PixelCNN, PixelRNN

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
# genflow's Gated PixelCNN of `--model gated --lr 0.002` (experiments/benchmarks/README.md), the
# reference for the models no peer implements
GATED = {"name": "genflow GatedPixelCNN (8 layers x 16 ch, Adam 2e-3)", "nll": {5: 95.8, 10: 93.8},
         "img_per_s": None}  # fmt: skip
MODELS = ("gated", "pixelcnn", "rowlstm", "diagonal", "multiscale")


# ---- model ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="gated")
    mnist10k.add_protocol_args(p, epochs="5,10")
    p.add_argument(
        "--channels", type=int, default=None,
        help="default 16 gated, 32 pixelcnn / PixelRNN (2h), 32 multiscale",
    )  # fmt: skip
    p.add_argument(
        "--layers", type=int, default=None,
        help="gated layers / residual blocks (8), LSTM layers (7), multiscale base layers (8)",
    )  # fmt: skip
    p.add_argument("--head", type=int, default=32, help="hidden width of the output layers")
    p.add_argument("--first-kernel", type=int, default=7)
    mnist10k.add_optimizer_args(p, batch_size=64)
    p.add_argument("--limit-train-batches", type=int, default=None, help="for a quick check")
    p.add_argument("--limit-eval-images", type=int, default=None, help="for a quick check")
    p.add_argument("--num-samples", type=int, default=64)
    p.add_argument("--run-dir", default=None, help="folder for results.json and sample grids")
    return p.parse_args(argv)


def make_model(args: argparse.Namespace, data: IDX):
    common = dict(
        first_kernel_size=args.first_kernel,
        head_channels=args.head,
        **mnist10k.model_kwargs(args, data),
    )
    if args.model == "gated":
        return GatedPixelCNN(
            hidden_channels=args.channels or 16, num_layers=args.layers or 8, **common
        )
    if args.model in ("rowlstm", "diagonal"):
        layer = "row" if args.model == "rowlstm" else "diagonal"
        return PixelRNN(
            layer=layer, hidden_channels=args.channels or 32, num_layers=args.layers or 7, **common
        )
    if args.model == "multiscale":
        return MultiscalePixelCNN(
            hidden_channels=args.channels or 32, base_layers=args.layers or 8, **common
        )
    return PixelCNN(hidden_channels=args.channels or 32, num_blocks=args.layers or 8, **common)


# ---- evaluation -------------------------------------------------------------------------------
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


def evaluate(model, tag: str, x_eval: Tensor, x_train: Tensor, args) -> dict[str, float]:
    """Exact test and train NLL (and test bits/dim), then a sample grid `samples-{tag}`."""

    def figures() -> dict[str, float]:
        nll = exact_nll(model, x_eval)
        return {
            "nll": nll,
            "train_nll": exact_nll(model, x_train),
            "bpd": nll / (784 * math.log(2)),
        }

    return mnist10k.timed_eval(figures) | draw_grid(model, args, f"samples-{tag}")


def epoch_line(epoch: int, figures: dict[str, float]) -> str:
    return f"epoch {epoch:3d}  NLL {figures['nll']:.2f}  train NLL {figures['train_nll']:.2f}"


# ---- report -----------------------------------------------------------------------------------
def epoch_table(run: dict, peer: dict) -> list[str]:
    lines = [
        f"| epoch | genflow test NLL | {peer['name']} test NLL | genflow train NLL |",
        "|---:|---:|---:|---:|",
    ]
    for row in run["rows"]:
        e, peer_nll = row["epoch"], peer["nll"].get(row["epoch"])
        lines.append(f"| {e} | {fmt(row['nll'])} | {fmt(peer_nll)} | {fmt(row['train_nll'])} |")
    lines.append(
        f"\nTraining speed: {run['s_per_epoch']:.1f} s/epoch, {run['img_per_s']:.0f} img/s "
        f"(peer {peer['img_per_s'] or '–'} img/s)."
    )
    return lines


def minutes_line(run: dict, num_samples: int) -> str:
    return (
        f"\n{run['minutes']:g}-minute run: {run['epochs']:.1f} epochs, test NLL {run['nll']:.1f} "
        f"(train NLL {run['train_nll']:.1f}); {num_samples} samples in "
        f"{run['sample_seconds']:.1f} s with the fast sampler (the peer's naive sampler: "
        f"{PEER_SAMPLING_SECONDS:.0f} s for 64)."
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = mnist10k.make_data(args)
    x_eval = mnist10k.eval_images(data, args.limit_eval_images)
    x_train = mnist10k.train_images(data, args.limit_eval_images or 2000)
    model = make_model(args, data)
    extra = {"model": type(model).__name__, "peer": PEERS.get(args.model, GATED)}
    results = mnist10k.describe(args, model, extra)
    print(f"{results['model']}, {results['params']:,} params, {args.threads} thread(s)")
    score = functools.partial(evaluate, x_eval=x_eval, x_train=x_train, args=args)
    limit = args.limit_train_batches
    results |= mnist10k.run_epochs(args, data, make_model, score, limit, epoch_line)
    results |= mnist10k.run_minutes(args, data, make_model, score, ("NLL", "nll", 2), limit)
    table = functools.partial(epoch_table, peer=PEERS.get(args.model, GATED))
    line = functools.partial(minutes_line, num_samples=args.num_samples)
    out = Path(args.run_dir) / "results.json" if args.run_dir else None
    mnist10k.report(results, mnist10k.markdown(results, table, line), out)
    return results


if __name__ == "__main__":
    main()
