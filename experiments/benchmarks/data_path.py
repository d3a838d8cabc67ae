"""Training data path: genflow's in-memory uint8 batches transformed on the device, against the
classic per-item PIL pipeline.

Purpose: images per second of one training epoch — iterate the loader, move each batch to the
device, make it final (float [0, 1], random horizontal flip, dynamic binarization for the
MNIST-shaped set) — on synthetic uint8 data of MNIST's shape (60,000 x 1x28x28) and CIFAR-10's
(50,000 x 3x32x32), so neither the network nor ../shared is needed. Paths compared:

- genflow, on device: what a Trainer runs. `InMemoryDataset` gathers a whole batch by one tensor
  index, the loader yields it as uint8 (`keep_batch`), the batch is copied to the device and
  `DataModule.transform_batch(batch, train=True)` (the `on_after_batch_transfer` hook) flips,
  converts and binarizes it there in a few vectorized ops.
- genflow, CPU collate: `dm.train_dataloader()` taken outside a Trainer; the same transform runs
  in the collate on the CPU, then the float batch is copied.
- classic: a torchvision-style Dataset that returns one PIL image per index through
  `transforms.Compose([RandomHorizontalFlip(), ToTensor()])`, then `torch.bernoulli` per item,
  stacked by the default collate; the float batch is copied to the device.

Each loader runs with `--workers` worker processes (the platform's default start method) and is
built afresh per epoch, so worker start-up counts as it does in a one-epoch run. Paths alternate
within each repeat; the table gives the median of `--repeats` epochs and each path's speed
relative to the classic one with the same number of workers.

Full run (from the repository root; about 4 minutes on one thread of a 2-core CPU):

    .venv/bin/python experiments/benchmarks/data_path.py --threads 1 \\
        --out runs/benchmarks/data_path.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch
from mnist10k import write_json
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from genflow.data.base import Batch, Binarize, TensorImageDataModule, keep_batch

SHAPES: dict[str, tuple[tuple[int, int, int], int, Binarize]] = {
    # name: (image shape, training images, binarization of training batches)
    "mnist": ((1, 28, 28), 60000, "dynamic"),
    "cifar": ((3, 32, 32), 50000, "none"),
}
CLASSIC = "classic per-item PIL"
PATHS = ("genflow on device", "genflow CPU collate", CLASSIC)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", default="mnist,cifar", help="comma-separated: mnist, cifar")
    p.add_argument("--num", type=int, default=0, help="images per epoch (0: the real set's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", default="0,2", help="comma-separated DataLoader worker counts")
    p.add_argument("--repeats", type=int, default=3, help="epochs per path; the median counts")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


# ---- the data: synthetic uint8 images --------------------------------------------------------
def synthetic_images(shape: tuple[int, int, int], n: int, seed: int) -> Batch:
    """`n` uniform uint8 images (n, C, H, W) and int64 labels in 0..9, fixed by `seed`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=g)
    return x, torch.randint(0, 10, (n,), generator=g)


class SyntheticImages(TensorImageDataModule):
    """A genflow DataModule over given uint8 training images (and a 10-image test split)."""

    def __init__(self, x: Tensor, y: Tensor, **kwargs) -> None:
        super().__init__(val_size=0, **kwargs)
        self.x, self.y = x, y

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return 10

    def _load_train_test(self) -> tuple[Batch, Batch]:
        return (self.x, self.y), (self.x[:10], self.y[:10])


class PILImages(Dataset):
    """The classic per-item dataset, as torchvision's MNIST and CIFAR10 are: a PIL image per
    index through a transform, then a per-item Bernoulli draw when binarizing."""

    def __init__(self, x: Tensor, y: Tensor, mode: Binarize) -> None:
        # torchvision's layout: (N, H, W) for gray images, (N, H, W, C) for colour ones.
        self.data = x.squeeze(1).numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()
        self.targets = y.tolist()
        self.mode = mode
        self.transform = transforms.Compose(
            [transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        )

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x = self.transform(Image.fromarray(self.data[index]))
        if self.mode == "dynamic":
            x = torch.bernoulli(x)
        return x, self.targets[index]


# ---- the paths: a loader and what happens to each batch on the device ------------------------
def genflow_device(dm: SyntheticImages, workers: int, device: str):
    """The loader and per-batch step as a Trainer runs them with this DataModule."""
    loader = DataLoader(
        dm.train_set, batch_size=dm.batch_size, shuffle=True, num_workers=workers,
        pin_memory=dm.pin_memory, collate_fn=keep_batch,
    )  # fmt: skip
    return loader, lambda batch: dm.transform_batch(to_device(batch, device), train=True)


def genflow_collate(dm: SyntheticImages, workers: int, device: str):
    dm.num_workers = workers
    return dm.train_dataloader(), lambda batch: to_device(batch, device)


def classic(dm: SyntheticImages, workers: int, device: str):
    dataset = PILImages(dm.train_set.x, dm.train_set.y, dm.binarize)
    loader = DataLoader(
        dataset, batch_size=dm.batch_size, shuffle=True, num_workers=workers,
        pin_memory=dm.pin_memory,
    )  # fmt: skip
    return loader, lambda batch: to_device(batch, device)


MAKERS = dict(zip(PATHS, (genflow_device, genflow_collate, classic), strict=True))


def to_device(batch: Iterable[Tensor], device: str) -> Batch:
    x, y = batch
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed_epoch(loader: DataLoader, step: Callable[[Batch], Batch], device: str) -> dict:
    """One pass over `loader`, each batch through `step`: seconds, images, and what the first
    and last batches look like (checked after the clock stops)."""
    sync(device)
    start = time.perf_counter()
    n, first, last = 0, None, None
    for batch in loader:
        x, _ = step(batch)
        n += len(x)
        first = x if first is None else first
        last = x
    sync(device)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": n, "first": first, "last": last}


def describe(x: Tensor) -> dict:
    return {
        "shape": list(x.shape),
        "dtype": str(x.dtype).removeprefix("torch."),
        "device": str(x.device),
        "min": x.min().item(),
        "max": x.max().item(),
        "binary": bool(((x == 0) | (x == 1)).all()),
    }


def measure(name: str, args: argparse.Namespace) -> list[dict]:
    """Every path and worker count on one shape, alternating within each repeat."""
    shape, default_n, mode = SHAPES[name]
    x, y = synthetic_images(shape, args.num or default_n, args.seed)
    dm = SyntheticImages(
        x, y, batch_size=args.batch_size, binarize=mode, hflip=True,
        pin_memory=torch.device(args.device).type == "cuda",
    )  # fmt: skip
    dm.setup()
    cases = [(path, w) for w in args.workers for path in PATHS]
    runs: dict[tuple[str, int], list[dict]] = {case: [] for case in cases}
    for _ in range(args.repeats):
        for path, workers in cases:
            loader, step = MAKERS[path](dm, workers, args.device)
            runs[path, workers].append(timed_epoch(loader, step, args.device))
    rows = []
    for (path, workers), epochs in runs.items():
        seconds = statistics.median(e["seconds"] for e in epochs)
        images = epochs[0]["images"]
        rows.append({
            "shape": name, "image": list(shape), "binarize": mode, "hflip": True,
            "path": path, "workers": workers, "images": images,
            "images_all_repeats": [e["images"] for e in epochs],
            "seconds": [e["seconds"] for e in epochs], "median_seconds": seconds,
            "images_per_s": images / seconds,
            "first_batch": describe(epochs[0]["first"]), "last_batch": describe(epochs[0]["last"]),
        })  # fmt: skip
    for row in rows:
        base = next(r for r in rows if r["path"] == CLASSIC and r["workers"] == row["workers"])
        row["vs_classic"] = row["images_per_s"] / base["images_per_s"]
    return rows


def table(rows: list[dict], args: argparse.Namespace) -> str:
    head = (
        f"One epoch, batch {args.batch_size}, median of {args.repeats}, device {args.device}, "
        f"{args.threads} main thread(s), {platform.machine()} ({os.cpu_count()} cores), "
        f"torch {torch.__version__}.\n\n"
        "| data | path | workers | images | s/epoch | img/s | vs classic |\n"
        "|---|---|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r['shape']} {'x'.join(map(str, r['image']))} | {r['path']} | {r['workers']} | "
        f"{r['images']:,} | {r['median_seconds']:.2f} | {r['images_per_s']:,.0f} | "
        f"{r['vs_classic']:.1f}x |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n\n" + "\n".join(best_ratios(rows)) + "\n"


def best_ratios(rows: list[dict]) -> list[str]:
    """Per data shape: the fastest genflow path against the fastest classic one."""
    out = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        ours = max((r for r in rows if r["shape"] == shape and r["path"] != CLASSIC),
                   key=lambda r: r["images_per_s"])  # fmt: skip
        theirs = max((r for r in rows if r["shape"] == shape and r["path"] == CLASSIC),
                     key=lambda r: r["images_per_s"])  # fmt: skip
        out.append(
            f"{shape}: fastest genflow ({ours['path']}, {ours['workers']} workers) "
            f"{ours['images_per_s'] / theirs['images_per_s']:.1f}x the fastest classic "
            f"({theirs['workers']} workers)."
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    torch.set_num_threads(args.threads)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rows = [row for name in args.shapes.split(",") if name.strip() for row in measure(name, args)]
    print(table(rows, args), flush=True)
    results = {
        "config": vars(args),
        "rows": rows,
        "summary": best_ratios(rows),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(args.device)
        if torch.device(args.device).type == "cuda"
        else platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if args.out:
        write_json(results, args.out)
        print(f"results: {args.out}")
    return results


if __name__ == "__main__":
    main()
