"""The MNIST-10k protocol shared by the benchmark scripts of this folder (../shared/peers.md).

Images 0-7,999 of MNIST's t10k file train, images 8,000-9,999 evaluate, read by genflow's `IDX`
DataModule. Binarized variant (`binarize="dynamic"`): training batches are drawn afresh as
`torch.bernoulli(x)` and the 2,000 evaluation images once with seed 0. 8-bit variant
(`binarize="none"`): images k/255; the script adds its own evaluation noise, drawn once.

A script supplies its model (`build(args, data)`), its evaluation (`evaluate(model, tag)`, a
dict of figures), its peer figures and its report table; this module gives the flags, the data,
a CPU Trainer with Lightning's validation loop off, the timed epochs with evaluations after the
listed ones (`run_epochs`), a wall-clock run (`run_minutes`), the report and the JSON results
(`report`; `print_json` also serves the GAN scripts). Evaluation runs under
`torch.random.fork_rng()` (`timed_eval`), so it neither changes what training draws nor counts
in s/epoch. Scripts `import mnist10k`, which works because running
`.venv/bin/python experiments/benchmarks/<script>.py` puts this folder first on sys.path.

The 8-bit RealNVP script fits as well: `make_data(args, binarize="none")`, its noise added to
`eval_images(data)`, `epoch_line` with `digits=3`, `fmt(..., digits=2)`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import Tensor

from genflow.data import IDX

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
TRAIN_RANGE, TEST_RANGE = (0, 8000), (8000, 10000)

Build = Callable[[argparse.Namespace, IDX], pl.LightningModule]
Evaluate = Callable[[pl.LightningModule, str], dict]  # (model, tag such as "ep10") -> figures


# ---- flags and data ---------------------------------------------------------------------------
def add_protocol_args(p: argparse.ArgumentParser, epochs: str, minutes: float = 0) -> None:
    """--images, --labels (the t10k files), --epochs, --minutes, --threads."""
    p.add_argument("--images", default=str(MNIST / "t10k-images-idx3-ubyte.gz"))
    p.add_argument("--labels", default=str(MNIST / "t10k-labels-idx1-ubyte.gz"))
    p.add_argument("--epochs", default=epochs, help="evaluate after these epochs ('' skips)")
    p.add_argument(
        "--minutes", type=float, default=minutes, help="wall-clock run length (0 skips)"
    )
    p.add_argument("--threads", type=int, default=1)


def add_optimizer_args(p: argparse.ArgumentParser, batch_size: int) -> None:
    """--batch-size, --lr (Adam), --seed (of model initialization and training)."""
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)


def int_list(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def make_data(args: argparse.Namespace, binarize: str = "dynamic") -> IDX:
    """The protocol's split, set up; evaluation images converted (binarized) once with seed 0."""
    data = IDX(
        images=args.images,
        labels=args.labels,
        train_range=TRAIN_RANGE,
        test_range=TEST_RANGE,
        val_size=0,
        binarize=binarize,
        batch_size=args.batch_size,
        eval_batch_size=500,
        seed=0,
    )
    data.setup()
    return data


def model_kwargs(args: argparse.Namespace, data: IDX) -> dict:
    """What every model takes here: the data's shape, bits and classes (as the CLI links them)
    and Adam at --lr."""
    return {
        "data_shape": data.data_shape,
        "num_bits": data.num_bits,
        "num_classes": data.num_classes,
        "optimizer": functools.partial(torch.optim.Adam, lr=args.lr),
    }


def eval_images(data: IDX, limit: int | None = None) -> Tensor:
    """The first `limit` (all 2,000 by default) evaluation images, as the DataModule gives them."""
    return torch.cat([x for x, _ in data.test_dataloader()])[:limit]  # (2000, 1, 28, 28)


def train_images(data: IDX, n: int = 2000) -> Tensor:
    """The first `n` training images, binarized once (seed 0), to show the train/test gap."""
    x = data.train_set.x[:n].to(torch.float32) / 255
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(0))


# ---- training ---------------------------------------------------------------------------------
def make_trainer(
    callbacks: list[pl.Callback], limit_train_batches: int | None = None, **limits
) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,  # evaluation is ours: untimed, under its own RNG
        limit_train_batches=limit_train_batches,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **limits,
    )


def timed_eval(figures: Callable[[], dict], seed: int | None = None) -> dict:
    """`figures()` under a forked RNG (seeded when `seed` is given), plus its `eval_seconds`."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        out = figures()
    return out | {"eval_seconds": time.perf_counter() - start}


def epoch_line(epoch: int, figures: dict, digits: int = 2) -> str:
    return f"epoch {epoch:4d}  " + "  ".join(f"{k} {v:.{digits}f}" for k, v in figures.items())


class EpochEval(pl.Callback):
    """Times each training epoch, counts its images, evaluates after the listed (1-based) epochs.

    `rows` holds one dict per evaluation: epoch, cumulative training seconds, the figures.
    """

    def __init__(
        self, epochs: list[int], evaluate: Evaluate, line: Callable[[int, dict], str] = epoch_line
    ) -> None:
        self.epochs, self.evaluate, self.line = set(epochs), evaluate, line
        self.train_seconds, self.images, self.rows = 0.0, 0, []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.images += len(batch[0])

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.train_seconds += time.perf_counter() - self._start
        epoch = trainer.current_epoch + 1
        if epoch not in self.epochs:
            return
        figures = self.evaluate(pl_module, f"ep{epoch}")
        self.rows.append({"epoch": epoch, "train_seconds": self.train_seconds} | figures)
        print(self.line(epoch, figures), flush=True)


def run_epochs(
    args: argparse.Namespace,
    data: IDX,
    build: Build,
    evaluate: Evaluate,
    limit_train_batches: int | None = None,
    line: Callable[[int, dict], str] = epoch_line,
) -> dict:
    """Train to max(--epochs) once from --seed, evaluating after each listed epoch.

    Returns {"epochs": {"rows", "s_per_epoch", "img_per_s"}}, or {} when --epochs lists none.
    """
    epochs = sorted(int_list(args.epochs))
    if not epochs:
        return {}
    pl.seed_everything(args.seed, verbose=False)
    model = build(args, data)
    callback = EpochEval(epochs, evaluate, line)
    trainer = make_trainer([callback], limit_train_batches, max_epochs=epochs[-1])
    trainer.fit(model, datamodule=data)
    seconds = callback.train_seconds
    run = {"rows": callback.rows, "s_per_epoch": seconds / epochs[-1]}
    return {"epochs": run | {"img_per_s": callback.images / seconds}}


def run_minutes(
    args: argparse.Namespace,
    data: IDX,
    build: Build,
    evaluate: Evaluate,
    headline: tuple[str, str, int],
    limit_train_batches: int | None = None,
) -> dict:
    """Train from --seed for --minutes of wall clock (Trainer max_time), then evaluate once.

    Prints the epochs reached and the `headline` figure (label, key, digits). Returns
    {"minutes": {"minutes", "fit_seconds", "epochs", figures...}}, or {} when --minutes is 0.
    """
    if args.minutes <= 0:
        return {}
    pl.seed_everything(args.seed, verbose=False)
    model = build(args, data)
    trainer = make_trainer(
        [], limit_train_batches, max_epochs=-1, max_time={"seconds": 60 * args.minutes}
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    steps_per_epoch = limit_train_batches or math.ceil(len(data.train_set) / args.batch_size)
    epochs = trainer.global_step / steps_per_epoch
    figures = evaluate(model, f"{args.minutes:g}min")
    label, key, digits = headline
    print(f"{args.minutes:g} min: {epochs:.1f} epochs, {label} {figures[key]:.{digits}f}")
    run = {"minutes": args.minutes, "fit_seconds": seconds, "epochs": epochs}
    return {"minutes": run | figures}


# ---- results ----------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def describe(args: argparse.Namespace, model: torch.nn.Module, extra: dict) -> dict:
    """The run's settings, parameter count and machine, then `extra` (seeds, peer figures)."""
    return {
        "config": vars(args),
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    } | extra


def markdown(
    results: dict, epoch_table: Callable[[dict], list[str]], minutes_line: Callable[[dict], str]
) -> str:
    """The report: the script's table of the epochs run, then its line on the minutes run."""
    lines = epoch_table(results["epochs"]) if "epochs" in results else []
    if "minutes" in results:
        lines.append(minutes_line(results["minutes"]))
    return "\n".join(lines)


def write_json(results: dict, path: str | Path) -> None:
    """Write `results` (indented; what JSON cannot hold as its str) to `path`, making folders."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=2, default=str))


def print_json(results: dict, path: str | Path | None) -> None:
    """Print `results` as indented JSON, and write them to `path` when one is given."""
    print(json.dumps(results, indent=2, default=str))
    if path:
        write_json(results, path)


def report(results: dict, table: str, path: str | Path | None) -> None:
    """Print the report table, then write the results to `path` when one is given."""
    print("\n" + table)
    if path:
        write_json(results, path)
        print(f"\nresults: {path}")


def quiet() -> None:
    """Silence Lightning's info lines and its warnings about small runs, which say nothing
    about what a benchmark measures."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="pytorch_lightning")
    warnings.filterwarnings("ignore", message=".*(num_workers|log_every_n_steps|LeafSpec).*")


def machine(threads: int, device: str | torch.device | None = None) -> dict:
    """Where a benchmark ran: platform, cores, torch threads, versions, load average, and the
    GPU's name for a CUDA device."""
    info = {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "load_average": os.getloadavg(),
    }
    if device is not None and torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
