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
import math

import mnist10k
import torch
from torch import Tensor

from genflow.data import IDX
from genflow.models import RealNVP

NOISE_SEED, SAMPLE_SEED, NUM_SAMPLES = 0, 1, 1000

# normflows 1.7.3 multi-scale Glow, L=2, K=4, 64 hidden, 78k params (../shared/peers.md)
PEER = {
    "name": "normflows 1.7.3 Glow (L=2, K=4, 64 hidden, 78k params)",
    "bpd": {5: 3.85, 10: 2.70},
    "finite_samples_t1": 0.29,  # 71 % non-finite after 10 epochs
}


# ---- model ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mnist10k.add_protocol_args(p, epochs="5,10", minutes=15)
    p.add_argument("--scales", type=int, default=2)
    p.add_argument("--features", type=int, default=16, help="feature maps of the s/t ResNets")
    p.add_argument("--blocks", type=int, default=2, help="residual blocks per s/t ResNet")
    p.add_argument("--norm", choices=("batchnorm", "actnorm", "none"), default="batchnorm")
    p.add_argument("--alpha", type=float, default=1e-6, help="alpha of the logit transform")
    mnist10k.add_optimizer_args(p, batch_size=64)
    p.add_argument("--limit-batches", type=int, default=None, help="batches per epoch (checks)")
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def make_model(args: argparse.Namespace, data: IDX) -> RealNVP:
    return RealNVP(
        num_scales=args.scales,
        features=args.features,
        num_blocks=args.blocks,
        norm=args.norm,
        logit_alpha=args.alpha,
        **mnist10k.model_kwargs(args, data),
    )


# ---- evaluation -------------------------------------------------------------------------------
def eval_inputs(data: IDX) -> Tensor:
    """u = (x_uint8 + U) / 256 of the 2,000 evaluation images, U drawn once with seed 0."""
    k = torch.round(mnist10k.eval_images(data) * 255)  # (2000, 1, 28, 28), from k / 255
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


def evaluate(model: RealNVP, tag: str, u: Tensor) -> dict[str, float]:
    """Test bits/dim and the finite-sample fraction, without touching the training RNG."""

    def figures() -> dict[str, float]:
        return {"bpd": test_bpd(model, u), "finite_samples_t1": finite_sample_fraction(model)}

    return mnist10k.timed_eval(figures)


# ---- report -----------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    return mnist10k.fmt(value, digits=2)


def epoch_table(run: dict) -> list[str]:
    lines = [
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
    return lines


def minutes_line(run: dict) -> str:
    return (
        f"\n{run['minutes']:g}-minute run: {run['epochs']:.1f} epochs, bits/dim {run['bpd']:.3f}, "
        f"{100 * run['finite_samples_t1']:.1f} % finite samples at T = 1."
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    data = mnist10k.make_data(args, binarize="none")
    score = functools.partial(evaluate, u=eval_inputs(data))
    extra = {"noise_seed": NOISE_SEED, "peer": PEER}
    results = mnist10k.describe(args, make_model(args, data), extra)
    print(f"RealNVP, {results['params']:,} params, {args.threads} thread(s)")
    limit, line = args.limit_batches, functools.partial(mnist10k.epoch_line, digits=3)
    results |= mnist10k.run_epochs(args, data, make_model, score, limit, line)
    headline = ("bits/dim", "bpd", 3)
    results |= mnist10k.run_minutes(args, data, make_model, score, headline, limit)
    mnist10k.report(results, mnist10k.markdown(results, epoch_table, minutes_line), args.out)
    return results


if __name__ == "__main__":
    main()
