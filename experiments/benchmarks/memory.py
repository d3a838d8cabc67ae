"""Peak memory of one training step of every genflow model class at its paper config (issue 8).

Each model class is built from the config that holds it at paper size (`FAMILIES` below), with
the config's data description (shape, bits, classes) taken from its DataModule class, and fed
synthetic uint8 images of that shape (the toy 2D sets draw their own points): no downloads. A
one-epoch `pytorch_lightning.Trainer.fit` runs the model's own `training_step`, automatic or
manual optimization alike, with the config's optimizers and schedulers. Warm-up steps come first,
so the optimizer state exists; the GANs warm up through two generator steps (`2 * n_critic`
batches) and the step measured is one that updates both the critic and the generator.

The measured step (from the callback hook `on_train_batch_start` to `on_train_batch_end`: the
forward, backward and optimizer step, with Lightning's logging) runs under `StorageTracker`, a
TorchDispatchMode that counts the bytes of live tensor storages: every storage an op returns is
added, a weakref finalizer on the storage takes it off when it is freed, and the running total is
sampled after every op. Each storage carries a role: parameters, buffers, gradients and optimizer
state (the model's and optimizers' tensors at the step's start, and each new `.grad`), the batch,
and new allocations, split into activations and temporaries of the forward and backward passes
and temporaries of the optimizer step. The peak is kept per phase (forward/backward, optimizer
step) with its breakdown. On CPU this is all there is; on CUDA (`--device cuda`) the table also
gives `torch.cuda.max_memory_allocated` over the same step, which includes the caching
allocator's rounding and the kernels' workspaces that tensor storages do not show.

`torch.distributed._tools.mem_tracker.MemTracker` does work on CPU in torch 2.14, but it refuses
a module called twice at the top level in one step ("multiple iterative calls"), which every GAN
does with its critic, and it files the optimizer step's temporaries under optimizer state;
hence this tracker.

At two or more batch sizes (`--batch-size` and `--more-batch-sizes`) each phase's peak is fitted
by a line in the batch size: the slope is the memory per example, and the larger of the lines at
the config's own batch is the extrapolated peak there. With three sizes the table gives the
largest distance of a measured peak from its line, which shows whether the line holds.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/benchmarks/memory.py --batch-size 16 \
        --more-batch-sizes 8,32 --out runs/benchmarks/memory.json
    OMP_NUM_THREADS=1 .venv/bin/python experiments/benchmarks/memory.py \
        --families GatedPixelCNN --batch-size 2 --more-batch-sizes 1,4   # a 2-minute CPU run
"""

from __future__ import annotations

import argparse
import functools
import importlib
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from mnist10k import machine, quiet, write_json
from torch import Tensor, nn
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

from genflow.data.base import TensorImageDataModule
from genflow.data.toy2d import Toy2D
from genflow.models.base import GenerativeModel

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
MiB = 2**20

# One config per model class (the classes of tests/families.py): the paper-table config where
# experiments/papers has one, else the largest config of that class.
FAMILIES = {
    "AE": "ae/mnist.yaml",
    "DenoisingAE": "ae/digits_denoising.yaml",
    "VAE": "papers/vae_mnist.yaml",
    "GAN": "papers/dcgan_cifar10.yaml",
    "WGAN": "gan/wgan_mnist.yaml",
    "WGANGP": "papers/wgangp_cifar10.yaml",
    "ConditionalGAN": "gan/cgan_mnist.yaml",
    "BiGAN": "gan/bigan_mnist.yaml",
    "CouplingFlow": "flows/coupling_checkerboard.yaml",
    "NICE": "flows/nice_mnist.yaml",
    "RealNVP": "papers/realnvp_cifar10.yaml",
    "GMM": "classical/gmm_digits.yaml",
    "PPCA": "classical/ppca_mnist.yaml",
    "PixelCNN": "papers/pixelcnn_cifar10.yaml",
    "GatedPixelCNN": "papers/gated_pixelcnn_cifar10.yaml",
    "PixelCNNPlusPlus": "papers/pixelcnnpp_cifar10.yaml",
}

# Storage roles. State: what lives across steps. The rest is made and freed within the step.
STATE_ROLES = ("params", "buffers", "grads", "optimizer")
STEP_ROLES = ("batch", "activations", "optimizer_temp")
ROLES = STATE_ROLES + STEP_ROLES
PHASES = ("forward_backward", "optimizer")


# ---- the tracker ----------------------------------------------------------------------------
def _storages(t: Tensor) -> list[torch.UntypedStorage]:
    """The storage of a plain tensor; none for tensors without one (sparse, wrappers)."""
    try:
        return [t.untyped_storage()]
    except (RuntimeError, NotImplementedError):
        return []


class StorageTracker(TorchDispatchMode):
    """Live bytes of tensor storages by role, and their peak per phase, while it is entered.

    `modules` and `optimizers` name the state alive before the step: their parameters,
    buffers, gradients and optimizer state are counted from the start and keep their roles, and
    each `.grad` that backward accumulates becomes a gradient. `batch` tensors are counted as
    the batch. Every other storage an op returns while the mode is on is an activation (or an
    optimizer temporary inside `Optimizer.step`). Tensors alive before the step that none of
    these reach are not seen (Lightning's few logged scalars).

    The peak is sampled after every op, when the op's inputs and outputs are both alive; scratch
    memory inside one kernel is not a tensor and is not seen.
    """

    def __init__(
        self,
        modules: Iterable[nn.Module] = (),
        optimizers: Iterable[torch.optim.Optimizer] = (),
        batch: Iterable[Tensor] = (),
    ) -> None:
        super().__init__()
        self.modules, self.optimizers, self.batch = list(modules), list(optimizers), list(batch)
        self._live: dict[int, list] = {}  # storage key -> [bytes, role, weakref]
        self.current = dict.fromkeys(ROLES, 0)
        self.start_total = 0
        self.peak = {p: 0 for p in PHASES}  # total bytes at each phase's peak
        self.at_peak = {p: dict.fromkeys(ROLES, 0) for p in PHASES}
        self.peak_op = dict.fromkeys(PHASES, "")
        self.max_role = dict.fromkeys(ROLES, 0)  # each role's own largest figure in the step
        self._in_optimizer = False
        self._handles: list = []

    # -- bookkeeping --
    @property
    def total(self) -> int:
        return sum(self.current.values())

    @property
    def phase(self) -> str:
        return "optimizer" if self._in_optimizer else "forward_backward"

    def track(self, t: Tensor, role: str, retag: bool = False) -> None:
        """Count `t`'s storage under `role` if new (or resized); `retag` moves a known one."""
        for st in _storages(t):
            key, nbytes = st._cdata, st.nbytes()
            entry = self._live.get(key)
            if entry is None:
                ref = weakref.ref(st, functools.partial(self._freed, key))
                self._live[key] = [nbytes, role, ref]
                self._add(role, nbytes)
                continue
            if entry[0] != nbytes:  # resized in place (an out= op)
                self._add(entry[1], nbytes - entry[0])
                entry[0] = nbytes
            if retag and entry[1] != role:
                self._add(entry[1], -entry[0])
                self._add(role, entry[0])
                entry[1] = role

    def _add(self, role: str, nbytes: int) -> None:
        self.current[role] += nbytes
        self.max_role[role] = max(self.max_role[role], self.current[role])

    def _freed(self, key: int, _ref) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            self._add(entry[1], -entry[0])

    def _sample(self, op: str) -> None:
        total, phase = self.total, self.phase
        if total > self.peak[phase]:
            self.peak[phase] = total
            self.at_peak[phase] = dict(self.current)
            self.peak_op[phase] = op

    # -- the dispatch mode --
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        role = "optimizer_temp" if self._in_optimizer else "activations"
        tree_map_only(Tensor, functools.partial(self.track, role=role), out)
        self._sample(str(func))
        return out

    def __enter__(self) -> StorageTracker:
        for module in self.modules:
            self._track_module(module)
        for optimizer in self.optimizers:
            self._track_optimizer_state(optimizer)
        for t in self.batch:
            self.track(t, "batch")
        self._handles += [
            register_optimizer_step_pre_hook(self._optimizer_pre_hook),
            register_optimizer_step_post_hook(self._optimizer_post_hook),
        ]
        self.start_total = self.total
        self.max_role = dict(self.current)
        for phase in PHASES:
            self.peak[phase], self.at_peak[phase] = self.start_total, dict(self.current)
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        super().__exit__(*exc)

    def _track_module(self, module: nn.Module) -> None:
        for p in module.parameters():
            self.track(p, "params")
            if p.grad is not None:
                self.track(p.grad, "grads")
            if p.requires_grad:
                self._handles.append(p.register_post_accumulate_grad_hook(self._grad_hook))
        for b in module.buffers():
            self.track(b, "buffers")

    def _grad_hook(self, p: Tensor) -> None:
        # backward's gradient buffer becomes p.grad (made as a temporary, now kept): retag it
        self.track(p.grad, "grads", retag=True)

    def _track_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, Tensor):
                    self.track(value, "optimizer", retag=True)

    def begin_optimizer(self) -> None:
        """The optimizer's update starts: what is made from here to the end of `step` is an
        optimizer temporary."""
        self._in_optimizer = True

    def _optimizer_pre_hook(self, optimizer, args, kwargs) -> None:
        # A step given a closure (Lightning always passes one) runs the closure's forward and
        # backward first; Lightning's `on_before_optimizer_step` then calls begin_optimizer.
        if len(args) < 2 and kwargs.get("closure") is None:  # args: (optimizer, closure?)
            self.begin_optimizer()

    def _optimizer_post_hook(self, optimizer, args, kwargs) -> None:
        self._track_optimizer_state(optimizer)  # state made lazily in this step
        self._in_optimizer = False

    # -- results --
    @property
    def peak_phase(self) -> str:
        return max(PHASES, key=lambda p: self.peak[p])

    @property
    def peak_bytes(self) -> int:
        return self.peak[self.peak_phase]


# ---- models and data from the configs -------------------------------------------------------
def _import(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _init_arg(value):
    """A config's {class_path, init_args} node as the callable the CLI passes (optimizers,
    schedulers); lists become tuples (betas)."""
    if isinstance(value, dict) and "class_path" in value:
        kwargs = {k: _init_arg(v) for k, v in value.get("init_args", {}).items()}
        return functools.partial(_import(value["class_path"]), **kwargs)
    return tuple(value) if isinstance(value, list) else value


def read_config(family: str) -> dict:
    if family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}; choose from {', '.join(FAMILIES)}.")
    return yaml.safe_load((EXPERIMENTS / FAMILIES[family]).read_text())


class SyntheticImages(TensorImageDataModule):
    """Random uint8 images of a given shape, served by genflow's own loaders and batch
    transform (uint8 to k/255 on the device, binarization as configured)."""

    def __init__(self, shape: Sequence[int], n: int, **kwargs) -> None:
        super().__init__(val_size=0, **kwargs)
        self.shape = tuple(shape)
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(
            0, 256, (n, *self.shape), dtype=torch.uint8, generator=generator
        )

    @property
    def data_shape(self) -> tuple[int, ...]:
        return self.shape

    @property
    def num_classes(self) -> int:
        return 10

    def _load_train_test(self):
        y = torch.arange(len(self.images)) % 10
        return (self.images, y), (self.images[:1], y[:1])


def make_data(config: dict, batch_size: int, n: int) -> pl.LightningDataModule:
    """`n` examples shaped like the config's data, served in batches of `batch_size`. The
    config's DataModule class gives the description without touching its files."""
    data = config["data"]
    cls, args = _import(data["class_path"]), dict(data.get("init_args", {}))
    if issubclass(cls, Toy2D):
        return Toy2D(args.get("name", "moons"), num_train=n, num_val=1, num_test=1,
                     batch_size=batch_size)  # fmt: skip
    described = cls(**args)
    return SyntheticImages(
        described.data_shape, n, batch_size=batch_size,
        binarize=getattr(described, "binarize", "none"), hflip=getattr(described, "hflip", False),
    )  # fmt: skip


def build_model(config: dict, data: pl.LightningDataModule, overrides: dict | None = None):
    """The config's model with the data's shape, bits and classes linked in as the CLI does;
    `overrides` replaces init args (the tests shrink the networks with it)."""
    model = config["model"]
    init_args = {k: _init_arg(v) for k, v in (model["init_args"] | (overrides or {})).items()}
    links = dict(data_shape=data.data_shape, num_bits=data.num_bits, num_classes=data.num_classes)
    return _import(model["class_path"])(**links, **init_args)


# ---- one measured step through Trainer.fit --------------------------------------------------
class MeasureStep(pl.Callback):
    """Runs batch number `index` of the epoch under a `StorageTracker` (and, on CUDA, between
    a reset and a read of the allocator's peak)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.tracker: StorageTracker | None = None
        self.cuda_peak = self.cuda_start = None
        self.seconds = 0.0
        self.active = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx != self.index:
            return
        tensors = [t for t in batch if isinstance(t, Tensor)]
        self.tracker = StorageTracker([pl_module], trainer.optimizers, tensors)
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
            torch.cuda.reset_peak_memory_stats(pl_module.device)
            self.cuda_start = torch.cuda.memory_allocated(pl_module.device)
        self._start = time.perf_counter()
        self.tracker.__enter__()
        self.active = True

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.active:
            self.tracker.begin_optimizer()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.active:  # leave no dispatch mode on the stack when the step fails
            self.tracker.__exit__(None, None, None)
            self.active = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not self.active:
            return
        self.tracker.__exit__(None, None, None)
        self.active = False
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
            self.cuda_peak = torch.cuda.max_memory_allocated(pl_module.device)
        self.seconds = time.perf_counter() - self._start


def steps_to_run(model: GenerativeModel) -> tuple[int, int]:
    """(batches in the epoch, index of the measured one): for a GAN the second step that also
    updates the generator, so both optimizers have state; else the second step."""
    n_critic = int(getattr(model, "n_critic", 1))
    return 2 * n_critic, 2 * n_critic - 1


@dataclass
class Measurement:
    batch_size: int
    peak: dict[str, int]  # phase -> bytes at that phase's peak
    at_peak: dict[str, dict[str, int]]  # phase -> role -> bytes at that peak
    peak_op: dict[str, str]
    max_role: dict[str, int]  # role -> its own largest figure in the step
    start: int  # bytes alive when the step began
    cuda_peak: int | None = None
    cuda_start: int | None = None
    seconds: float = 0.0

    @property
    def peak_phase(self) -> str:
        return max(PHASES, key=lambda p: self.peak[p])

    @property
    def peak_bytes(self) -> int:
        return self.peak[self.peak_phase]


def measure(
    family: str, batch_size: int, device: str = "cpu", overrides: dict | None = None
) -> tuple[Measurement, GenerativeModel]:
    """Build the family's paper-config model afresh and measure one training step at
    `batch_size`; returns the measurement and the trained model."""
    config = read_config(family)
    torch.manual_seed(0)
    probe_data = make_data(config, batch_size, batch_size)
    model = build_model(config, probe_data, overrides)
    batches, index = steps_to_run(model)
    data = make_data(config, batch_size, batches * batch_size)
    probe = MeasureStep(index)
    trainer = pl.Trainer(
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        max_epochs=1,
        limit_train_batches=batches,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
    )
    trainer.fit(model, datamodule=data)
    t = probe.tracker
    if t is None:
        raise RuntimeError(f"{family}: the epoch ended before batch {index}; nothing measured.")
    result = Measurement(
        batch_size, dict(t.peak), {p: dict(v) for p, v in t.at_peak.items()}, dict(t.peak_op),
        dict(t.max_role), t.start_total, probe.cuda_peak, probe.cuda_start, probe.seconds,
    )  # fmt: skip
    return result, model


# ---- lines in the batch size ----------------------------------------------------------------
def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of ys on xs; needs two distinct xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("A line in the batch size needs at least two different batch sizes.")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return my - slope * mx, slope


@dataclass
class FamilyResult:
    family: str
    config: str
    params: int  # parameter count
    config_batch: int
    measurements: list[Measurement]
    per_example: float | None = None  # bytes per example of the forward/backward peak's line
    extrapolated: float | None = None  # bytes at the config's batch
    line_error: float | None = None  # largest |measured - line| / measured, over phases and sizes
    lines: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def main(self) -> Measurement:
        return self.measurements[0]

    def as_dict(self) -> dict:
        return asdict(self)


def extrapolate(result: FamilyResult) -> None:
    """Fit each phase's peak by a line in the batch size: the larger line at the config's batch
    is the extrapolated peak, and the forward/backward line's slope the memory per example (the
    optimizer step's peak holds no activations, so it hardly moves with the batch)."""
    ms = result.measurements
    if len({m.batch_size for m in ms}) < 2:
        return
    xs = [m.batch_size for m in ms]
    errors = []
    for phase in PHASES:
        ys = [m.peak[phase] for m in ms]
        a, b = fit_line(xs, ys)
        result.lines[phase] = (a, b)
        errors += [abs(y - (a + b * x)) / y for x, y in zip(xs, ys, strict=True) if y > 0]
    at = {p: a + b * result.config_batch for p, (a, b) in result.lines.items()}
    result.extrapolated = max(at.values())
    result.per_example = result.lines["forward_backward"][1]
    result.line_error = max(errors) if len(xs) > 2 else None


def run_family(
    family: str, batch_sizes: Sequence[int], device: str = "cpu", overrides: dict | None = None
) -> FamilyResult:
    measurements, model = [], None
    for b in batch_sizes:
        m, model = measure(family, b, device, overrides)
        measurements.append(m)
    config = read_config(family)
    result = FamilyResult(
        family, FAMILIES[family], sum(p.numel() for p in model.parameters()),
        int(config["data"]["init_args"]["batch_size"]), measurements,
    )  # fmt: skip
    extrapolate(result)
    return result


# ---- the table ------------------------------------------------------------------------------
def _mib(nbytes: float | None, digits: int = 1) -> str:
    return "–" if nbytes is None else f"{nbytes / MiB:,.{digits}f}"


def table(results: Sequence[FamilyResult]) -> str:
    """One row per family: the state at the step's peak, the peak and where it falls, and
    (with two or more batch sizes) the per-example slope and the peak at the config's batch."""
    cuda = any(r.main.cuda_peak is not None for r in results)
    head = (
        "| family | config | params | batch | params+buffers MiB | grads MiB | optimizer MiB "
        "| act. & temp. MiB | peak step MiB | peak in | per-example MiB | config batch "
        "| peak at config batch MiB | line error |"
    )
    head += " CUDA peak MiB |" if cuda else ""
    lines = [head, "|" + "---|" * 2 + "---:|" * 12 + ("---:|" if cuda else "")]
    for r in results:
        m = r.main
        snap = m.at_peak[m.peak_phase]
        moving = m.peak_bytes - sum(snap[k] for k in STATE_ROLES)
        error = "–" if r.line_error is None else f"{100 * r.line_error:.1f} %"
        row = (
            f"| {r.family} | {r.config} | {r.params:,} | {m.batch_size} "
            f"| {_mib(snap['params'] + snap['buffers'])} | {_mib(snap['grads'])} "
            f"| {_mib(snap['optimizer'])} | {_mib(moving)} | {_mib(m.peak_bytes)} "
            f"| {m.peak_phase.replace('_', '/')} | {_mib(r.per_example, 3)} | {r.config_batch} "
            f"| {_mib(r.extrapolated)} | {error} |"
        )
        row += f" {_mib(m.cuda_peak)} |" if cuda else ""
        lines.append(row)
    return "\n".join(lines)


# ---- command line ---------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated class names")
    p.add_argument("--batch-size", type=int, default=16, help="the batch of the table's figures")
    p.add_argument(
        "--more-batch-sizes", default="", help="comma-separated: fit a line in the batch size"
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet()
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise SystemExit(f"Unknown families {unknown}; choose from {', '.join(FAMILIES)}.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "--device cuda asked for, but torch sees no CUDA device; use --device cpu."
        )
    more = [int(b) for b in args.more_batch_sizes.split(",") if b]
    sizes = [args.batch_size] + [b for b in more if b != args.batch_size]
    results = []
    for family in families:
        start = time.perf_counter()
        results.append(run_family(family, sizes, args.device))
        print(table(results[-1:]).splitlines()[-1], f"({time.perf_counter() - start:.0f} s)",
              flush=True)  # fmt: skip
    info = machine(args.threads, args.device) | {"device": args.device, "batch_sizes": sizes}
    print(f"\n{info}\n\n{table(results)}")
    record = {"machine": info, "results": [r.as_dict() for r in results], "table": table(results)}
    if args.out:
        write_json(record, args.out)
    return record


if __name__ == "__main__":
    main()
