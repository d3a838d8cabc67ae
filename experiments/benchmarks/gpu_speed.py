"""GPU speed options (issue 8): fp32 eager against bf16 + channels_last (+ torch.compile).

For DCGAN and RealNVP at their configs' settings on MNIST (1x28x28) and CIFAR-10 (3x32x32)
shapes, each mode trains a fresh model (same seed, same weights) on synthetic uint8 images of
that shape through genflow's real fit path: a `pytorch_lightning.Trainer`, the model's own
`training_step`, the `SpeedOptions` callback and the `Throughput` callback, which times the
steps (CUDA events on GPUs).

| mode | Trainer precision | SpeedOptions | DataModule |
|---|---|---|---|
| `fp32` | 32-true | none (eager) | |
| `bf16` | bf16-mixed | channels_last | |
| `bf16+compile` | bf16-mixed | channels_last, compile | drop_last |

The first `--warmup` steps of each run are not timed: step 0 holds torch.compile's tracing and
code generation (and cuDNN's first calls), reported as `first step s`; compile time is that
minus one steady step. Step 1 is counted with `torch.utils.flop_counter.FlopCounterMode`: every
matrix product and convolution of the whole training step, forward and backward (for the GAN
the D step, with G's forward, and the G step, through D), the usual numerator of a model-FLOPs
utilization; element-wise work (batch norm, activations, Adam) is not counted. TFLOP/s is
that count over the mean timed step, and `% of peak` divides it by the device's dense bf16
tensor-core peak (`--peak-tflops`, or PEAK_TFLOPS by device name) in every
mode, fp32 included, so all rows share one yardstick.

    .venv/bin/python experiments/benchmarks/gpu_speed.py --device cuda --steps 100 \
        --out runs/benchmarks/gpu_speed.json
    OMP_NUM_THREADS=1 .venv/bin/python experiments/benchmarks/gpu_speed.py --device cpu \
        --batch-size 8 --steps 3 --compile-backend eager      # a quick check of the path

The DivergenceGuard of a normal run is left out: it reads every step's loss on the host, a
device synchronization per step; the losses are kept on the device and checked at the end.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from mnist10k import machine, quiet, write_json
from overhead import (
    ROOT,
    TensorImages,
    _callable_arg,
    _import,
    count_params,
    load_images,
)
from torch.utils.flop_counter import FlopCounterMode

from genflow.callbacks import SpeedOptions, Throughput
from genflow.models.base import GenerativeModel

# The configs of each (model, dataset): the papers' training settings where genflow has them.
CONFIGS = {
    ("dcgan", "mnist"): "experiments/gan/dcgan_mnist.yaml",
    ("dcgan", "cifar10"): "experiments/papers/dcgan_cifar10.yaml",
    ("realnvp", "mnist"): "experiments/flows/realnvp_mnist.yaml",
    ("realnvp", "cifar10"): "experiments/papers/realnvp_cifar10.yaml",
}
SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


@dataclass(frozen=True)
class Mode:
    precision: str  # Lightning's Trainer precision
    channels_last: bool
    compile: bool
    drop_last: bool  # a smaller last batch would make the compiled networks recompile


MODES = {
    "fp32": Mode("32-true", channels_last=False, compile=False, drop_last=False),
    "bf16": Mode("bf16-mixed", channels_last=True, compile=False, drop_last=False),
    "bf16+compile": Mode("bf16-mixed", channels_last=True, compile=True, drop_last=True),
}

# Dense (no structured sparsity) bf16 tensor-core peaks in TFLOP/s, matched as substrings of
# torch.cuda.get_device_name(), first match wins. NVIDIA's datasheets list the figures with
# 2:4 sparsity; dense is half of them.
PEAK_TFLOPS = [
    # NVIDIA H200 Tensor Core GPU datasheet (2024): BF16 1,671 TFLOPS with sparsity, H200 NVL.
    ("H200 NVL", 835.5, "NVIDIA H200 datasheet, H200 NVL: 1,671 sparse / 2"),
    # Same datasheet, H200 SXM: BF16 1,979 TFLOPS with sparsity (the H100 SXM figure).
    ("H200", 989.4, "NVIDIA H200 datasheet, H200 SXM: 1,979 sparse / 2"),
    # NVIDIA H100 Tensor Core GPU datasheet: BF16 1,513 TFLOPS with sparsity, H100 PCIe.
    ("H100 PCIe", 756.5, "NVIDIA H100 datasheet, H100 PCIe: 1,513 sparse / 2"),
    # Same datasheet, H100 SXM: BF16 1,979 TFLOPS with sparsity.
    ("H100", 989.4, "NVIDIA H100 datasheet, H100 SXM: 1,979 sparse / 2"),
    # NVIDIA A100 Tensor Core GPU datasheet: BF16 312 TFLOPS dense (624 with sparsity).
    ("A100", 312.0, "NVIDIA A100 datasheet: 312 dense"),
]


def peak_for_name(name: str) -> tuple[float | None, str]:
    """(dense bf16 peak TFLOP/s, its source) of a CUDA device name; (None, why) if unknown."""
    for key, tflops, source in PEAK_TFLOPS:
        if key in name:
            return tflops, source
    return None, f"peak unknown for {name}: pass --peak-tflops"


def device_peak(device: torch.device, override: float | None = None) -> tuple[float | None, str]:
    """The peak of `device`: `override` if given, else PEAK_TFLOPS by name (CUDA only)."""
    if override is not None:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return None, f"peak unknown for {device.type}: pass --peak-tflops"
    return peak_for_name(torch.cuda.get_device_name(device))


# ---- models and data from the configs -----------------------------------------------------------
def read_config(model: str, dataset: str) -> tuple[type[GenerativeModel], dict, dict]:
    """(model class, model init_args, data init_args) of a (model, dataset) config."""
    if (model, dataset) not in CONFIGS:
        known = ", ".join(f"{m}/{d}" for m, d in CONFIGS)
        raise ValueError(f"No config for {model}/{dataset}; choose from {known}.")
    config = yaml.safe_load((ROOT / CONFIGS[model, dataset]).read_text())
    net = config["model"]
    return _import(net["class_path"]), dict(net["init_args"]), config["data"]["init_args"]


def make_data(images: torch.Tensor, batch_size: int, drop_last: bool) -> TensorImages:
    """genflow's in-memory DataModule over the uint8 `images` (no validation split)."""
    data = TensorImages(images, batch_size=batch_size, drop_last=drop_last)
    data.setup()
    return data


def build_model(
    model: str, dataset: str, data: TensorImages, overrides: dict | None = None
) -> GenerativeModel:
    """The config's model with the data's shape and bits linked in as the CLI links them;
    `overrides` replaces init args (the tests shrink the networks with it)."""
    cls, init_args, _ = read_config(model, dataset)
    init_args = {k: _callable_arg(v) for k, v in (init_args | (overrides or {})).items()}
    links = dict(data_shape=data.data_shape, num_bits=data.num_bits, num_classes=data.num_classes)
    return cls(**links, **init_args)


# ---- callbacks of the measurement ---------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TimedThroughput(Throughput):
    """genflow's Throughput over the batches from index `warmup` on: the steps after warm-up."""

    def __init__(self, warmup: int) -> None:
        super().__init__()
        self.warmup = warmup

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx >= self.warmup:
            super().on_train_batch_start(trainer, pl_module, batch, batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx >= self.warmup:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class FirstStep(pl.Callback):
    """Wall seconds of batch 0, the device synchronized on both sides: compilation, cuDNN's
    first calls and the step itself."""

    seconds = math.nan

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            _sync(pl_module.device)
            self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == 0:
            _sync(pl_module.device)
            self.seconds = time.perf_counter() - self._start


class StepFlops(pl.Callback):
    """FLOPs of the whole training step of batch `at`, counted by `FlopCounterMode`: the
    matrix products and convolutions of every forward and backward pass the step makes."""

    def __init__(self, at: int) -> None:
        self.at, self.flops = at, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx == self.at:
            self._counter = FlopCounterMode(display=False)
            self._counter.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx == self.at:
            self._counter.__exit__(None, None, None)
            self.flops = self._counter.get_total_flops()


class LossRecord(pl.Callback):
    """Every step's `train/...` figures, kept as device tensors (no host synchronization)."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.steps.append(dict(pl_module.last_train_metrics))

    def finite(self) -> bool:
        values = [torch.as_tensor(v).float() for step in self.steps for v in step.values()]
        return bool(torch.isfinite(torch.stack(values)).all())

    def last(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.steps[-1].items()}


# ---- one run ------------------------------------------------------------------------------------
@dataclass
class Result:
    model: str
    dataset: str
    mode: str
    batch_size: int
    params: int
    warmup: int
    steps: int  # timed steps
    steps_run: int  # warm-up and timed
    step_seconds: float  # mean over the timed steps
    img_per_s: float
    flops: int  # of one training step
    first_step_seconds: float
    finite: bool
    compiled: list[str] = field(default_factory=list)  # the networks SpeedOptions compiled
    last_losses: dict[str, float] = field(default_factory=dict)

    @property
    def tflops(self) -> float:
        return self.flops / self.step_seconds / 1e12

    @property
    def compile_seconds(self) -> float | None:
        """torch.compile's time: the first step less a steady one (None without compile)."""
        return self.first_step_seconds - self.step_seconds if "compile" in self.mode else None

    def as_dict(self) -> dict:
        return asdict(self) | {"tflops": self.tflops, "compile_seconds": self.compile_seconds}


def make_trainer(mode: Mode, device: torch.device, root: Path, callbacks: list) -> pl.Trainer:
    """One epoch, training steps only: no validation, checkpoint, logger or progress bar."""
    return pl.Trainer(
        accelerator=device.type,
        devices=1,
        precision=mode.precision,
        max_epochs=1,
        logger=False,
        callbacks=callbacks,
        default_root_dir=root,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )


def run_mode(
    model: str,
    dataset: str,
    mode_name: str,
    *,
    steps: int,
    device: torch.device,
    root: Path,
    warmup: int = 3,
    batch_size: int | None = None,
    compile_backend: str | None = None,
    overrides: dict | None = None,
) -> Result:
    """Train a fresh model (seed 0) for `warmup + steps` steps in one mode; time the last
    `steps`, count the FLOPs of step 1 (after compilation, before the timed steps)."""
    if warmup < 2:
        raise ValueError(
            f"warmup must be at least 2 (step 0 compiles, step 1 counts FLOPs), got {warmup}."
        )
    mode = MODES[mode_name]
    batch_size = batch_size or read_config(model, dataset)[2]["batch_size"]
    images = load_images((warmup + steps) * batch_size, synthetic=True, shape=SHAPES[dataset])
    data = make_data(images, batch_size, mode.drop_last)
    torch.manual_seed(0)
    net = build_model(model, dataset, data, overrides)
    options = {"backend": compile_backend} if mode.compile and compile_backend else None
    if mode.compile:
        torch._dynamo.reset()  # each compiled run starts from dynamo's empty cache
    speed = SpeedOptions(mode.channels_last, mode.compile, options)
    timer, first, flops, losses = TimedThroughput(warmup), FirstStep(), StepFlops(1), LossRecord()
    trainer = make_trainer(mode, device, root, [speed, first, flops, timer, losses])
    trainer.fit(net, datamodule=data)
    metrics = trainer.callback_metrics
    return Result(
        model, dataset, mode_name, batch_size, count_params(net), warmup, steps,
        steps_run=len(losses.steps),
        step_seconds=float(metrics["train/step_seconds"]),
        img_per_s=float(metrics["train/img_per_s"]),
        flops=flops.flops,
        first_step_seconds=first.seconds,
        finite=losses.finite(),
        compiled=speed.compiled,
        last_losses=losses.last(),
    )  # fmt: skip


# ---- the table ----------------------------------------------------------------------------------
HEADER = (
    "| model | mode | ms/step | img/s | speed-up vs fp32 | TFLOP/s | % of peak | GFLOP/step "
    "| first step s | compile s |"
)


def _row(r: Result, fp32: Result | None, peak: float | None) -> str:
    speedup = f"{fp32.step_seconds / r.step_seconds:.2f}×" if fp32 else "–"
    share = f"{100 * r.tflops / peak:.2f} %" if peak else "peak unknown"
    compile_s = "–" if r.compile_seconds is None else f"{r.compile_seconds:.2f}"
    return (
        f"| {r.model} / {r.dataset} | {r.mode} | {1000 * r.step_seconds:.2f} | "
        f"{r.img_per_s:,.0f} | {speedup} | {r.tflops:.3f} | {share} | {r.flops / 1e9:.3f} | "
        f"{r.first_step_seconds:.2f} | {compile_s} |"
    )


def table(results: list[Result], peak: float | None) -> str:
    """Markdown rows in run order; speed-ups against the fp32 row of the same model/dataset."""
    fp32 = {(r.model, r.dataset): r for r in results if r.mode == "fp32"}
    lines = [HEADER, "|---|---|" + "---:|" * 8]
    lines += [_row(r, fp32.get((r.model, r.dataset)), peak) for r in results]
    return "\n".join(lines)


# ---- command line -------------------------------------------------------------------------------
def _names(text: str, known, what: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"Unknown {what} {unknown or text!r}; choose from {', '.join(known)}.")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="dcgan,realnvp", help="comma-separated: dcgan,realnvp")
    p.add_argument("--datasets", default="mnist,cifar10", help="shapes: mnist,cifar10")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: " + ",".join(MODES))
    p.add_argument("--steps", type=int, default=50, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (at least 2)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--compile-backend", default=None, help="torch.compile backend (inductor)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak TFLOP/s")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet()
    models = _names(args.models, {m for m, _ in CONFIGS}, "models")
    datasets = _names(args.datasets, SHAPES, "datasets")
    modes = _names(args.modes, MODES, "modes")
    device = torch.device(args.device)
    peak, source = device_peak(device, args.peak_tflops)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for dataset in datasets:
                for mode in modes:
                    result = run_mode(
                        model, dataset, mode, steps=args.steps, device=device, root=Path(tmp),
                        warmup=args.warmup, batch_size=args.batch_size,
                        compile_backend=args.compile_backend,
                    )  # fmt: skip
                    results.append(result)
                    print(table(results, peak).splitlines()[-1], flush=True)
    info = machine(args.threads, device) | {
        "device": args.device,
        "compile_backend": args.compile_backend or "inductor",
        "peak_tflops": peak,
        "peak_source": source,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    print(f"\n{info}\n\n{table(results, peak)}")
    record = {"machine": info, "results": [r.as_dict() for r in results]}
    if args.out:
        write_json(record, args.out)
    return record


if __name__ == "__main__":
    main()
