"""Sequential vs fast sampler of genflow's PixelCNNs: identical samples, and the time ratio; and
the parallel multiscale sampler against them.

Purpose: draw `--batch` binary `--size` x `--size` images from a GatedPixelCNN and a PixelCNN
with both samplers under the same seed, in one run: assert that the two samplers give exactly
the same images and report each sampler's seconds and their ratio. "sequential" runs the whole
network for every pixel (what the peer's sampler does: 141 s for 64 binary 28x28 images,
../shared/peers.md); "fast" evaluates every layer at the new pixel only, from caches (Gated
PixelCNN computes each vertical-stack row once). Sampling time does not depend on the weights,
so the models are untrained (seeded); the equality holds for any weights.

"multiscale" is the MultiscalePixelCNN (Reed et al. 2017, arXiv:1703.03664): its base grid
(7x7 for 28x28) is drawn by its Gated PixelCNN's fast or sequential sampler, then each group of
each scale in one network pass (3 per scale doubling for one-channel images), so its two
samplers differ only on the base. Its base has the Gated PixelCNN's width and depth. With
"gated" in the run, the multiscale sampler is also compared with the Gated PixelCNN's naive
(sequential) sampler: the speed-up that the multiscale factorization buys.

Full run (from the repository root, about 6 minutes on one thread of a 2-core CPU, almost all
of it in the sequential samplers):

    .venv/bin/python experiments/benchmarks/pixelcnn_sampling.py --batch 64 --size 28 \
        --models gated,pixelcnn,multiscale --threads 1 --out runs/benchmarks/pixelcnn_sampling.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from mnist10k import write_json

from genflow.models import GatedPixelCNN, MultiscalePixelCNN, PixelCNN

PEER_NAIVE_SECONDS = 141.0  # pytorch-generative's sampler, 64 binary 28x28 (../shared/peers.md)
TARGET_MULTISCALE_SPEEDUP = 50.0  # issue 12: >= 50x faster than naive PixelCNN sampling
MODELS = ("gated", "pixelcnn", "multiscale")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="gated,pixelcnn,multiscale", help=", ".join(MODELS))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=28, help="image side (binary, one channel)")
    p.add_argument("--gated-channels", type=int, default=16)
    p.add_argument("--gated-layers", type=int, default=8)
    p.add_argument("--pixelcnn-channels", type=int, default=32)
    p.add_argument("--pixelcnn-blocks", type=int, default=8)
    p.add_argument("--ms-channels", type=int, default=16, help="multiscale group-net width")
    p.add_argument("--ms-blocks", type=int, default=2, help="residual blocks per group net")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def make_model(name: str, args: argparse.Namespace):
    torch.manual_seed(args.seed)
    shape = (1, args.size, args.size)
    if name == "gated":
        return GatedPixelCNN(
            data_shape=shape, num_bits=1, hidden_channels=args.gated_channels,
            num_layers=args.gated_layers, head_channels=2 * args.gated_channels,
        )  # fmt: skip
    if name == "pixelcnn":
        return PixelCNN(
            data_shape=shape, num_bits=1, hidden_channels=args.pixelcnn_channels,
            num_blocks=args.pixelcnn_blocks, head_channels=args.pixelcnn_channels,
        )  # fmt: skip
    if name == "multiscale":
        return MultiscalePixelCNN(
            data_shape=shape, num_bits=1, hidden_channels=args.ms_channels,
            num_blocks=args.ms_blocks, base_layers=args.gated_layers,
            head_channels=2 * args.ms_channels,
        )  # fmt: skip
    raise ValueError(f"Unknown model {name!r}; choose from {', '.join(MODELS)}.")


def timed_sample(model, args: argparse.Namespace, sampler: str) -> tuple[torch.Tensor, float]:
    torch.manual_seed(args.seed + 1)
    start = time.perf_counter()
    samples = model.sample(args.batch, sampler=sampler)
    return samples, time.perf_counter() - start


def first_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    """Where two sample batches first differ in raster order (image, row, column)."""
    n, _, H, W = a.shape
    diff = (a != b).any(1).flatten(1)  # (n, H * W)
    firsts = [(int(row.nonzero()[0]), k) for k, row in enumerate(diff) if row.any()]
    position, image = min(firsts)
    return f"image {image}, pixel ({position // W}, {position % W})"


def run(name: str, args: argparse.Namespace) -> dict:
    model = make_model(name, args).eval()
    fast, fast_s = timed_sample(model, args, "fast")
    sequential, sequential_s = timed_sample(model, args, "sequential")
    if not torch.equal(fast, sequential):
        raise AssertionError(
            f"{name}: the samplers differ first at {first_difference(fast, sequential)}. Both "
            f"read the same uniforms; a difference means the fast path computes other logits."
        )
    row = {
        "model": type(model).__name__,
        "params": sum(p.numel() for p in model.parameters()),
        "sequential_seconds": sequential_s,
        "fast_seconds": fast_s,
        "ratio": sequential_s / fast_s,
        "identical": True,
        "mean_pixel": fast.mean().item(),
    }
    print(
        f"{row['model']:>14} ({row['params']:,} params): sequential {sequential_s:7.1f} s, "
        f"fast {fast_s:6.2f} s, ratio {row['ratio']:6.1f}x, identical samples",
        flush=True,
    )
    return row


def multiscale_speedup(rows: list[dict]) -> dict:
    """The multiscale (fast) sampler against the Gated PixelCNN's naive and fast samplers, when
    both were run; printed with the target."""
    by_model = {r["model"]: r for r in rows}
    ms, gated = by_model.get("MultiscalePixelCNN"), by_model.get("GatedPixelCNN")
    if ms is None or gated is None:
        return {}
    vs_naive = gated["sequential_seconds"] / ms["fast_seconds"]
    vs_fast = gated["fast_seconds"] / ms["fast_seconds"]
    met = "met" if vs_naive >= TARGET_MULTISCALE_SPEEDUP else "NOT met"
    print(
        f"multiscale sampler: {vs_naive:.0f}x faster than naive Gated PixelCNN sampling "
        f"(target >= {TARGET_MULTISCALE_SPEEDUP:.0f}x: {met}), {vs_fast:.1f}x faster than its "
        f"fast sampler",
        flush=True,
    )
    return {"multiscale_vs_naive": vs_naive, "multiscale_vs_fast": vs_fast}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"{args.batch} binary {args.size}x{args.size} images, {args.threads} thread(s)")
    rows = [run(name.strip(), args) for name in args.models.split(",") if name.strip()]
    results = {
        "config": vars(args),
        "rows": rows,
        **multiscale_speedup(rows),
        "peer_naive_seconds_64x28x28": PEER_NAIVE_SECONDS,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if args.out:
        write_json(results, args.out)
        print(f"results: {args.out}")
    return results


if __name__ == "__main__":
    main()
