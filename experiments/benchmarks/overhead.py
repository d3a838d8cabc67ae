"""Framework overhead: genflow's `fit` path against a hand-written PyTorch loop (issue 8).

For the VAE, DCGAN, RealNVP and Gated PixelCNN of the MNIST-10k configs, one process trains the
same networks on the same batches twice per repeat: through `pytorch_lightning.Trainer.fit`
with what a real `genflow fit` run has per step (the model's `training_step` and `log_stage`,
a CSV logger writing every 50 steps, the Throughput and DivergenceGuard callbacks, a
ModelCheckpoint at the epoch's end, genflow's DataModule, collate and DataLoader), and through a
plain loop that calls the same networks and the same loss functions of `genflow.losses` with
the optimizer of the config. The hand loop is a deep copy of the genflow model before training,
so both start from the same weights; from the same seed both draw the same batches and noise,
so their weights stay equal step for step (tests/test_overhead_benchmark.py checks it).

Only the training steps of an epoch are timed, in both paths: from the first batch to the end of
the last step (Lightning: `on_train_epoch_start` to `on_train_epoch_end`, before the epoch-end
checkpoint). One warm-up epoch per path is discarded, then `--repeats` epochs alternate genflow /
hand; the table gives the median img/s of each, min..max, and the ratio of the medians.

    .venv/bin/python experiments/benchmarks/overhead.py --models vae,dcgan,realnvp,gatedpixelcnn \
        --repeats 5 --threads 1 --out runs/benchmarks/overhead.json
    .venv/bin/python experiments/benchmarks/overhead.py --models vae --profile

`--clock cpu` times CPU seconds instead of wall seconds: on a busy shared machine its medians
move about 5 % between runs where wall-clock ones move up to 30 %. `--profile` runs one more
genflow epoch under cProfile and prints the framework's functions by inclusive time per step;
`--drop guard,throughput,logger,log` repeats the genflow path with those parts removed, to
measure what each costs.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import functools
import importlib
import math
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from mnist10k import machine, quiet, write_json
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch import Tensor

from genflow.callbacks import DivergenceGuard, MetricsFile, Throughput
from genflow.data.base import TensorImageDataModule
from genflow.data.idx import read_idx
from genflow.losses import (
    dequantize,
    discriminator_loss,
    kl_normal,
    minimax_generator_loss,
    non_saturating_generator_loss,
    reparameterize,
    standard_normal_log_prob,
)
from genflow.models import GAN, VAE, GatedPixelCNN, RealNVP
from genflow.models.base import GenerativeModel

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT.parent / "shared" / "data" / "mnist" / "t10k-images-idx3-ubyte.gz"
LOG_EVERY_N_STEPS = 50  # experiments/defaults.yaml
# wall: elapsed seconds; cpu: this process's CPU seconds, which a busy shared machine disturbs
# far less (one thread, no loader workers, so it is the work done; not for CUDA).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Entry:
    config: str  # relative to the repository root
    batches: int  # default batches per timed epoch: a few seconds per epoch on one CPU thread


MODELS = {
    "vae": Entry("experiments/vae/mnist10k.yaml", 100),
    "dcgan": Entry("experiments/gan/dcgan_mnist10k.yaml", 20),
    "realnvp": Entry("experiments/flows/realnvp_mnist10k.yaml", 8),
    "gatedpixelcnn": Entry("experiments/pixelcnn/mnist10k.yaml", 8),
}
DROPPABLE = ("guard", "throughput", "logger", "log")


# ---- models from the configs --------------------------------------------------------------------
def _import(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _callable_arg(value):
    """A config's {class_path, init_args} node as the callable the CLI would pass (optimizers)."""
    if isinstance(value, dict) and "class_path" in value:
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in value["init_args"].items()}
        return functools.partial(_import(value["class_path"]), **kwargs)
    return value


def read_config(name: str) -> tuple[type[GenerativeModel], dict, dict]:
    """(model class, model init_args, data init_args) of a benchmark model's config."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose from {', '.join(MODELS)}.")
    config = yaml.safe_load((ROOT / MODELS[name].config).read_text())
    model = config["model"]
    return _import(model["class_path"]), dict(model["init_args"]), config["data"]["init_args"]


def build_model(
    name: str, data: TensorImageDataModule, overrides: dict | None = None
) -> GenerativeModel:
    """The config's model with the data's shape, bits and classes linked in as the CLI does;
    `overrides` replaces init args (the tests shrink the networks with it)."""
    cls, init_args, _ = read_config(name)
    init_args = {k: _callable_arg(v) for k, v in (init_args | (overrides or {})).items()}
    links = dict(data_shape=data.data_shape, num_bits=data.num_bits, num_classes=data.num_classes)
    return cls(**links, **init_args)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- data: genflow's DataModule, and the same tensors by hand -----------------------------------
class TensorImages(TensorImageDataModule):
    """uint8 images held in memory and served by genflow's own InMemoryDataset, BatchCollate
    and DataLoader settings: what `genflow.data.IDX` serves once it has read its file. The
    evaluation split is one image (validation is off here)."""

    def __init__(self, images: Tensor, **kwargs) -> None:
        super().__init__(val_size=0, **kwargs)
        self.images = images  # (N, C, H, W) uint8

    @property
    def data_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return 10

    def _load_train_test(self):
        y = torch.zeros(len(self.images), dtype=torch.long)
        return (self.images, y), (self.images[:1], y[:1])


def load_images(n: int, synthetic: bool = False, shape: Sequence[int] = (1, 28, 28)) -> Tensor:
    """n uint8 images: MNIST's t10k file (cycled past 10,000) if it is there, else random."""
    if not synthetic and MNIST.is_file():
        x = read_idx(MNIST).unsqueeze(1)  # (10000, 1, 28, 28)
        return x[torch.arange(n) % len(x)]
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=generator)


def make_data(name: str, images: Tensor, batch_size: int | None = None) -> TensorImages:
    """The DataModule of a model's config (its binarization and batch size) over `images`."""
    _, _, data_args = read_config(name)
    data = TensorImages(
        images,
        batch_size=batch_size or data_args["batch_size"],
        binarize=data_args.get("binarize", "none"),
    )
    data.setup()
    return data


def hand_batches(data: TensorImages) -> list[Tensor]:
    """One epoch's shuffled index batches, drawn from the global RNG in the order genflow's
    training loader draws: the epoch's shuffle seed, then the DataLoader iterator's base seed;
    the images are gathered by the loop itself."""
    seed = int(torch.empty((), dtype=torch.int64).random_().item())
    torch.empty((), dtype=torch.int64).random_()  # the iterator's worker base seed
    order = torch.randperm(len(data.images), generator=torch.Generator().manual_seed(seed))
    return list(order.split(data.batch_size))


def hand_batch(images: Tensor, index: Tensor, binarize: str, device: torch.device) -> Tensor:
    """The uint8 batch to the device (a quarter of the float bytes), then k/255 there (a fresh
    Bernoulli draw for dynamic binarization), as genflow's DataModule does after the transfer."""
    x = images[index].to(device, non_blocking=True).to(torch.float32) / 255
    if binarize == "dynamic":
        x = torch.bernoulli(x)
    elif binarize == "threshold":
        x = (x > 0.5).to(x.dtype)
    return x


# ---- the hand-written loops ---------------------------------------------------------------------
def vae_loss(net: VAE, x: Tensor) -> Tensor:
    """beta * KL - E_q[log p(x|z)], one sample, averaged over the batch."""
    mu, logvar = net.encoder(x).chunk(2, dim=1)  # (B, L) each
    z = reparameterize(mu, logvar)
    u = x if net.likelihood.discrete else dequantize(x, net.num_bits)
    volume = 0.0 if net.likelihood.discrete else -net.num_dims * net.num_bits * math.log(2)
    rec = net.likelihood.log_prob(u, net.decoder(z)) + volume
    return (net.beta * kl_normal(mu, logvar) - rec).mean()


def flow_loss(net: RealNVP, x: Tensor) -> Tensor:
    """-log P(x) of uniformly dequantized data through the whole bijection, batch mean."""
    z, log_det = net.bijection(dequantize(x, net.num_bits))
    log_p = standard_normal_log_prob(z) + log_det - net.num_dims * net.num_bits * math.log(2)
    return -log_p.mean()


def pixelcnn_loss(net: GatedPixelCNN, x: Tensor) -> Tensor:
    """-log p(x), a Bernoulli or a 2^b-way softmax per sub-pixel, batch mean."""
    levels = 2**net.num_bits
    k = torch.round(x * (levels - 1))  # (B, C, H, W) integer levels
    params = net.net(2 * x - 1, None)
    if levels == 2:
        log_p = -F.binary_cross_entropy_with_logits(params, k, reduction="none")
    else:
        B, C, H, W = x.shape
        log_p = params.view(B, C, levels, H, W).log_softmax(2).gather(2, k.long().unsqueeze(2))
    return -log_p.flatten(1).sum(1).mean()


class HandTrainer:
    """One optimizer, one loss: zero_grad, backward, step."""

    def __init__(self, net: GenerativeModel, loss: Callable[[GenerativeModel, Tensor], Tensor]):
        self.net, self.loss = net, loss

    def start(self) -> None:
        """A fresh optimizer, as each `Trainer.fit` builds one from `configure_optimizers`."""
        self.net.train()
        self.optimizer = self.net.optimizer(self.net.parameters())

    def step(self, x: Tensor) -> Tensor:
        loss = self.loss(self.net, x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


class HandGAN(HandTrainer):
    """One D step per batch and a G step every n_critic-th, as `GAN.training_step` alternates;
    the noise comes from the model's own stream (`training_noise`) so both paths draw alike."""

    def __init__(self, net: GAN) -> None:
        super().__init__(net, loss=None)
        self.critic_steps = 0

    def start(self) -> None:
        self.net.train()
        self.opt_g = self.net.optimizer_g(self.net.generator.parameters())
        self.opt_d = self.net.optimizer_d(self.net.discriminator.parameters())

    def step(self, x: Tensor) -> Tensor:
        G, D, n = self.net.generator, self.net.discriminator, len(x)
        x = x * 2 - 1  # [0, 1] -> G's [-1, 1]
        with torch.no_grad():
            fake = G(self.net.training_noise(n))
        loss_d = discriminator_loss(D(x), D(fake)).mean()
        _update(self.opt_d, loss_d)
        self.critic_steps += 1
        if self.critic_steps % self.net.n_critic == 0:
            D.requires_grad_(False)  # G's step needs no gradient of D's weights
            logits = D(G(self.net.training_noise(n)))
            minimax = self.net.loss == "minimax"
            gen_loss = minimax_generator_loss if minimax else non_saturating_generator_loss
            _update(self.opt_g, gen_loss(logits).mean())
            D.requires_grad_(True)
        return loss_d.detach()


def _update(optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def hand_trainer(model: GenerativeModel, device: torch.device) -> HandTrainer:
    """A hand loop over a deep copy of `model` (call before training it, so both start equal)."""
    net = copy.deepcopy(model).to(device)
    if isinstance(net, GAN):
        if type(net) is not GAN:
            raise ValueError(f"The hand loop writes out GAN's steps only, not {type(net)}.")
        return HandGAN(net)
    for cls, loss in ((VAE, vae_loss), (RealNVP, flow_loss), (GatedPixelCNN, pixelcnn_loss)):
        if isinstance(net, cls):
            return HandTrainer(net, loss)
    raise ValueError(f"No hand-written loop for {type(net).__name__}.")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_epoch(
    trainer: HandTrainer, data: TensorImages, device: torch.device, clock: str = "wall"
) -> float:
    """One epoch of the hand loop; returns the seconds of its training steps. Like a real
    run it keeps the loss every LOG_EVERY_N_STEPS steps (read back with .item())."""
    trainer.start()
    batches, history = hand_batches(data), []
    _sync(device)
    start = CLOCKS[clock]()
    for i, index in enumerate(batches):
        loss = trainer.step(hand_batch(data.images, index, data.binarize, device))
        if (i + 1) % LOG_EVERY_N_STEPS == 0:
            history.append(loss.item())
    _sync(device)
    return CLOCKS[clock]() - start


# ---- genflow's fit path -------------------------------------------------------------------------
class EpochTimer(pl.Callback):
    """Seconds from the start of the training epoch to the end of its last step, before any
    epoch-end work (first in the callback list; checkpointing comes later by design)."""

    def __init__(self, clock: str = "wall") -> None:
        self.clock, self.seconds = CLOCKS[clock], 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync(pl_module.device)
        self._start = self.clock()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync(pl_module.device)
        self.seconds = self.clock() - self._start


def make_trainer(
    root: Path, device: torch.device, timer: EpochTimer, drop: Sequence[str] = ()
) -> pl.Trainer:
    """A one-epoch Trainer with the per-step parts of experiments/defaults.yaml (see the module
    docstring); sample grids (epoch-end only), validation and the progress bar are off."""
    unknown = set(drop) - set(DROPPABLE)
    if unknown:
        raise ValueError(f"Cannot drop {sorted(unknown)}; choose from {', '.join(DROPPABLE)}.")
    callbacks = [timer, ModelCheckpoint(root / "checkpoints", save_last=True, save_top_k=0)]
    callbacks += [] if "guard" in drop else [DivergenceGuard()]
    callbacks += [MetricsFile()] + ([] if "throughput" in drop else [Throughput()])
    return pl.Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=1,
        log_every_n_steps=LOG_EVERY_N_STEPS,
        logger=False if "logger" in drop else CSVLogger(root, name="", version=""),
        callbacks=callbacks,
        default_root_dir=root,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )


def genflow_epoch(
    model: GenerativeModel,
    data: TensorImages,
    device: torch.device,
    root: Path,
    drop: Sequence[str] = (),
    clock: str = "wall",
) -> float:
    """One epoch of `Trainer.fit`; returns the seconds of its training steps. Dropping "log"
    makes `log_stage` a no-op for this epoch (a measurement of what logging costs)."""
    timer = EpochTimer(clock)
    trainer = make_trainer(root, device, timer, drop)
    if "log" not in drop:
        trainer.fit(model, datamodule=data)
        return timer.seconds
    model.log_stage = lambda *args, **kwargs: None
    try:
        trainer.fit(model, datamodule=data)
    finally:
        del model.log_stage
    return timer.seconds


# ---- the benchmark ------------------------------------------------------------------------------
@dataclass
class Result:
    model: str
    params: int
    batch_size: int
    batches: int
    genflow: list[float] = field(default_factory=list)  # img/s per repeat
    hand: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.genflow) / statistics.median(self.hand)

    def as_dict(self) -> dict:
        medians = {k: statistics.median(getattr(self, k)) for k in ("genflow", "hand")}
        return (
            self.__dict__ | {f"{k}_median": v for k, v in medians.items()} | {"ratio": self.ratio}
        )


def benchmark(
    name: str,
    images: Tensor,
    repeats: int,
    device: torch.device,
    root: Path,
    batch_size: int | None = None,
    overrides: dict | None = None,
    drop: Sequence[str] = (),
    clock: str = "wall",
) -> Result:
    """Warm-up epoch of each path, then `repeats` alternating timed epochs over `images`."""
    data = make_data(name, images, batch_size)
    model = build_model(name, data, overrides)
    hand = hand_trainer(model, device)
    n = len(images)
    result = Result(name, count_params(model), data.batch_size, math.ceil(n / data.batch_size))
    for r in range(repeats + 1):
        seconds_g = genflow_epoch(model, data, device, root / name / f"fit{r}", drop, clock)
        seconds_h = hand_epoch(hand, data, device, clock)
        if r > 0:  # the first of each is the warm-up
            result.genflow.append(n / seconds_g)
            result.hand.append(n / seconds_h)
    return result


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def table(results: list[Result]) -> str:
    lines = [
        "| model | params | genflow img/s | hand img/s | ratio (genflow/hand) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.params:,} | {_fmt(r.genflow)} | {_fmt(r.hand)} | {r.ratio:.3f} |"
        )
    return "\n".join(lines)


# ---- profile ------------------------------------------------------------------------------------
def profile_epoch(
    name: str, images: Tensor, device: torch.device, root: Path, batch_size: int | None = None,
    top: int = 30,
) -> str:  # fmt: skip
    """One warm-up and one cProfiled genflow epoch: the framework's and genflow's functions by
    inclusive time, in ms per step (cProfile inflates Python-heavy code; compare with --drop)."""
    data = make_data(name, images, batch_size)
    model = build_model(name, data)
    genflow_epoch(model, data, device, root / "profile0")
    profiler = cProfile.Profile()
    profiler.enable()
    seconds = genflow_epoch(model, data, device, root / "profile1")
    profiler.disable()
    steps = math.ceil(len(images) / data.batch_size)
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    wanted = ("genflow/", "pytorch_lightning/", "lightning_fabric/", "torch/utils/data/")
    rows = [
        (ct, nc, f"{Path(file).parent.name}/{Path(file).name}:{line} {fn}")
        for (file, line, fn), (_, nc, _, ct, _) in stats.items()
        if any(w in file for w in wanted)
    ]
    rows += [
        (ct, nc, f"{fn}")
        for (file, _, fn), (_, nc, _, ct, _) in stats.items()
        if fn in ("<method 'backward' of 'torch._C._TensorBase' objects>", "<method 'item' of "
                  "'torch._C.TensorBase' objects>", "<built-in method torch.isfinite>")
    ]  # fmt: skip
    rows.sort(reverse=True)
    out = [
        f"{name}: {steps} steps, {1000 * seconds / steps:.2f} ms/step under cProfile",
        "| ms/step | calls/step | function |",
        "|---:|---:|---|",
    ]
    out += [f"| {1000 * ct / steps:.3f} | {nc / steps:.1f} | {fn} |" for ct, nc, fn in rows[:top]]
    return "\n".join(out)


# ---- command line -------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated: " + ",".join(MODELS)
    )
    p.add_argument("--batches", type=int, default=None, help="batches per timed epoch")
    p.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--clock", default="wall", choices=tuple(CLOCKS), help="see CLOCKS")
    p.add_argument("--synthetic", action="store_true", help="random images even if MNIST is there")
    p.add_argument("--drop", default="", help=f"genflow parts to remove: {','.join(DROPPABLE)}")
    p.add_argument("--profile", action="store_true", help="cProfile a genflow epoch per model")
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet()
    device = torch.device(args.device)
    if args.clock == "cpu" and device.type == "cuda":
        raise ValueError("--clock cpu times the CPU's work only; use --clock wall with cuda.")
    names = [m for m in args.models.split(",") if m]
    drop = [d for d in args.drop.split(",") if d]
    results, profiles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            batches = args.batches or MODELS[name].batches
            batch_size = args.batch_size or read_config(name)[2]["batch_size"]
            images = load_images(batches * batch_size, args.synthetic)
            torch.manual_seed(0)
            result = benchmark(
                name, images, args.repeats, device, Path(tmp), batch_size, drop=drop,
                clock=args.clock,
            )  # fmt: skip
            results.append(result)
            print(table(results[-1:]).splitlines()[-1], flush=True)
            if args.profile:
                profiles.append(profile_epoch(name, images, device, Path(tmp), batch_size))
    info = machine(args.threads, device) | {"device": args.device, "clock": args.clock}
    info["drop"] = drop
    print(f"\n{info}\n\n{table(results)}")
    for text in profiles:
        print(f"\n{text}")
    record = {"machine": info, "results": [r.as_dict() for r in results], "profiles": profiles}
    if args.out:
        write_json(record, args.out)
    return record


if __name__ == "__main__":
    main()
