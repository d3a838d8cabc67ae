"""Multiscale vs PixelCNN sampling time: naive and fast Gated PixelCNN samplers, and the
parallel multiscale sampler (MultiscalePixelCNN, Reed et al. 2017, arXiv:1703.03664).

Purpose: draw `--batch` binary `--size` x `--size` images, one timed run each, and report
seconds and the speed-up over naive sampling. "naive" runs the whole Gated PixelCNN for every
pixel (the family's "sequential" sampler); "fast" is its caching sampler; "multiscale" draws a
base grid with the fast sampler and then every group of every scale in one network pass
(3 passes per scale doubling for one-channel images). Sampling time does not depend on the
weights, so the models are untrained (seeded). By default the multiscale model has the Gated
PixelCNN's width and depth in its base model (`--ms-channels`, `--ms-base-layers`).

The naive sampler costs one full forward pass per pixel; with `--naive-rows R` (< size) only
the first R rows are run, exactly as the sequential sampler runs them, and the time is scaled
by size / R (the output says "estimated"). Full run (from the repository root; the naive
sampler takes 2-4 minutes on one thread of a shared 2-core CPU, everything else seconds; with
`--naive-rows 7` the run takes about a minute):

    .venv/bin/python experiments/benchmarks/multiscale_sampling.py --batch 64 --size 28 \
        --threads 1 --out runs/benchmarks/multiscale_sampling.json
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from mnist10k import write_json

from genflow.models import GatedPixelCNN
from genflow.models.multiscale_ar import GroupNet, MultiscalePixelCNN
from genflow.nn.autoregressive import sample_bernoulli

TARGET_SPEEDUP = 50.0  # issue 12: multiscale >= 50x faster than naive PixelCNN sampling


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=28, help="image side (binary, one channel)")
    p.add_argument("--gated-channels", type=int, default=16)
    p.add_argument("--gated-layers", type=int, default=8)
    p.add_argument("--ms-channels", type=int, default=16)
    p.add_argument("--ms-blocks", type=int, default=2, help="residual blocks per group net")
    p.add_argument("--ms-base-layers", type=int, default=8)
    p.add_argument("--ms-base-size", type=int, default=None, help="default: 7 for 28")
    p.add_argument("--naive-rows", type=int, default=0, help="rows to time (0: all)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def make_models(args: argparse.Namespace) -> tuple[GatedPixelCNN, MultiscalePixelCNN]:
    shape = (1, args.size, args.size)
    torch.manual_seed(args.seed)
    gated = GatedPixelCNN(
        data_shape=shape, num_bits=1, hidden_channels=args.gated_channels,
        num_layers=args.gated_layers, head_channels=2 * args.gated_channels,
    )  # fmt: skip
    torch.manual_seed(args.seed)
    multiscale = MultiscalePixelCNN(
        data_shape=shape, num_bits=1, base_size=args.ms_base_size,
        hidden_channels=args.ms_channels, num_blocks=args.ms_blocks,
        base_layers=args.ms_base_layers, head_channels=2 * args.ms_channels,
    )  # fmt: skip
    return gated.eval(), multiscale.eval()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def naive_rows(model: GatedPixelCNN, batch: int, rows: int) -> None:
    """The sequential sampler's work on the first `rows` rows: the whole network per pixel,
    then a Bernoulli draw into the live input (binary, one channel)."""
    _, H, W = model.data_shape
    x = torch.full((batch, 1, H, W), -1.0)  # level 0 in the network's [-1, 1] space
    u = torch.rand(batch, H, W)
    for i in range(rows):
        for j in range(W):
            logits = model.net(x)[:, :, i, j]  # (B, 1)
            x[:, :, i, j] = 2 * sample_bernoulli(logits, u[:, i, j, None]).float() - 1


def naive_seconds(model: GatedPixelCNN, args: argparse.Namespace) -> tuple[float, int]:
    """Seconds of naive sampling of the whole image, and the rows actually run."""
    rows = args.naive_rows if 0 < args.naive_rows < args.size else args.size
    torch.manual_seed(args.seed + 1)
    if rows == args.size:
        return timed(lambda: model.sample(args.batch, sampler="sequential")), rows
    return timed(lambda: naive_rows(model, args.batch, rows)) * args.size / rows, rows


def group_passes(model: MultiscalePixelCNN, args: argparse.Namespace) -> tuple[float, int]:
    """Seconds of one multiscale sample() call and the group-network passes it made."""
    calls = []
    hooks = [
        m.register_forward_hook(lambda *_: calls.append(1))
        for m in model.modules()
        if isinstance(m, GroupNet)
    ]
    torch.manual_seed(args.seed + 1)
    seconds = timed(lambda: model.sample(args.batch))
    for hook in hooks:
        hook.remove()
    return seconds, len(calls)


def params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    gated, multiscale = make_models(args)
    print(f"{args.batch} binary {args.size}x{args.size} images, {args.threads} thread(s)")
    naive_s, rows = naive_seconds(gated, args)
    torch.manual_seed(args.seed + 1)
    fast_s = timed(lambda: gated.sample(args.batch, sampler="fast"))
    ms_s, passes = group_passes(multiscale, args)
    estimated = rows < args.size
    rows_out = [
        {"sampler": "naive", "model": "GatedPixelCNN", "params": params(gated),
         "seconds": naive_s, "estimated_from_rows": rows if estimated else None},
        {"sampler": "fast", "model": "GatedPixelCNN", "params": params(gated), "seconds": fast_s},
        {"sampler": "multiscale", "model": "MultiscalePixelCNN", "params": params(multiscale),
         "seconds": ms_s, "base_grid": list(multiscale.base_shape[1:]),
         "scales": multiscale.scales, "group_passes": passes},
    ]  # fmt: skip
    print("| sampler    | model              |    params |  seconds | vs naive |")
    print("|------------|--------------------|----------:|---------:|---------:|")
    for row in rows_out:
        row["speedup_vs_naive"] = naive_s / row["seconds"]
        estimate = row.get("estimated_from_rows")
        note = f" (estimated from {rows} of {args.size} rows)" if estimate else ""
        print(
            f"| {row['sampler']:<10} | {row['model']:<18} | {row['params']:>9,} | "
            f"{row['seconds']:8.3f} | {row['speedup_vs_naive']:7.1f}x |{note}"
        )
    speedup = rows_out[2]["speedup_vs_naive"]
    print(
        f"multiscale: base {multiscale.base_shape[1]}x{multiscale.base_shape[2]}, "
        f"{multiscale.scales} scale(s), {passes} group passes; {speedup:.0f}x faster than naive "
        f"(target >= {TARGET_SPEEDUP:.0f}x: {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}), "
        f"{fast_s / ms_s:.1f}x faster than fast"
    )
    results = {
        "config": vars(args),
        "rows": rows_out,
        "multiscale_vs_naive": speedup,
        "multiscale_vs_fast": fast_s / ms_s,
        "target_vs_naive": TARGET_SPEEDUP,
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
