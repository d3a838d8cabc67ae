"""Image-to-image acceptance figures (issue 10): pix2pix, CycleGAN and StarGAN on the offline
generated digit domains, each trained for a fixed wall-clock budget on CPU.

Each model is built from its offline config (experiments/image2image/*.yaml, read as the CLI
would, with the DataModule's shape, bits and classes linked in), trained with Lightning's
`max_time` = `--minutes` and the config's `max_epochs` (or `--max-epochs`), whichever ends first
(CycleGAN lays its learning-rate decay out over max_epochs, so the count must be finite), and
scored on the held-out test split by two small CNNs the benchmark trains itself
on the generated (real) images, in seconds:

- a DOMAIN classifier: gray vs coloured (CycleGAN's GrayToColorDigits) or the k colours
  (StarGAN's ColoredDigits);
- a DIGIT classifier (0-9), trained on the images of every domain and fed the per-pixel maximum
  over channels: every palette colour has a 255 component, so that maximum is the gray digit
  itself for real images of any domain, and the classifier judges shape, not colour.

Figures, all on the test split (classifiers' own test accuracies on real images are reported
too, since the figures mean nothing if those are low):

- CycleGAN: A (gray) -> B and B -> A: domain accuracy (fraction classified as the target
  domain), digit accuracy (the source's digit recognised in the translation), cycle error
  mean |F(G(a)) - a| and |G(F(b)) - b| in [0, 1] units, averaged over both directions.
- StarGAN: every test image to every other domain: domain and digit accuracy, and the
  reconstruction error |G(G(x, c), y) - x| in [0, 1] units.
- pix2pix: L1 of G(edges) against the digit vs the L1 of the edges themselves (the trivial
  baseline of returning the input), and the digit accuracy of the translations.

The digits of the generated images are recomputed here exactly as the DataModules draw them
(the same source digits, seed and splits) and checked image for image against the DataModule's
test split, so genflow needs no label accessor.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/benchmarks/image2image.py \
        --models cyclegan,stargan,pix2pix --minutes 15 --out runs/benchmarks/i2i.json
"""

from __future__ import annotations

import argparse
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from mnist10k import machine, quiet, write_json
from torch import Tensor, nn

from genflow.data.base import to_unit
from genflow.data.digits import digits_uint8
from genflow.data.image2image import (
    PALETTE,
    ColoredDigits,
    EdgesToDigits,
    GrayToColorDigits,
    colorize,
    edge_map,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    "pix2pix": "experiments/image2image/pix2pix_edges_digits.yaml",
    "cyclegan": "experiments/image2image/cyclegan_gray_color_digits.yaml",
    "stargan": "experiments/image2image/stargan_colored_digits.yaml",
}
EVAL_BATCH = 128


# ---- models and data from the configs -----------------------------------------------------------
def _import(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def read_config(name: str) -> dict:
    """The parsed YAML of a benchmark model's offline config."""
    if name not in CONFIGS:
        raise ValueError(f"Unknown model {name!r}; choose from {', '.join(CONFIGS)}.")
    return yaml.safe_load((ROOT / CONFIGS[name]).read_text())


def make_data(name: str, overrides: dict | None = None):
    """The config's DataModule, set up; `overrides` replaces init args (tests use size 16)."""
    node = read_config(name)["data"]
    data = _import(node["class_path"])(**(node["init_args"] | (overrides or {})))
    if getattr(data, "images", None) is not None:
        raise ValueError(
            "The benchmark recomputes the digit labels of the bundled digits; leave `images` "
            "unset in the config (an IDX file has no labels here)."
        )
    data.setup()
    return data


def build_model(name: str, data, overrides: dict | None = None) -> pl.LightningModule:
    """The config's model with the data's shape, bits and classes linked in as the CLI does."""
    node = read_config(name)["model"]
    links = dict(data_shape=data.data_shape, num_bits=data.num_bits, num_classes=data.num_classes)
    return _import(node["class_path"])(**links, **(node["init_args"] | (overrides or {})))


# ---- the generated images with their digit and domain labels -----------------------------------
@dataclass
class Split:
    """Images float [0, 1] (N, C, H, W), their domain (N,) and digit (N,) labels; for paired
    data `inputs` are the input images of the pairs (the targets are `x`)."""

    x: Tensor
    domain: Tensor
    digit: Tensor
    inputs: Tensor | None = None

    def __len__(self) -> int:
        return len(self.x)


def _cat(parts: list[Split]) -> Split:
    return Split(*(torch.cat([getattr(p, k) for p in parts]) for k in ("x", "domain", "digit")))


def _source(data) -> tuple[Tensor, Tensor]:
    """All source digits uint8 (N, 1, size, size) as the DataModule has them, and their digits."""
    return data._gray(), digits_uint8(16)[1]


def _train_test(data, x: Tensor, domain: Tensor, digit: Tensor, offset: int = 0):
    """(train, test) Splits of one domain with the DataModule's own seeded split."""
    train, _, test = data._splits(len(x), offset)
    return [Split(to_unit(x[i]), domain[i], digit[i]) for i in (train, test)]


def _gray_color_splits(data: GrayToColorDigits) -> tuple[Split, Split]:
    """Domain A (0): half the digits, gray as RGB; domain B (1): the other half coloured."""
    gray, digit = _source(data)
    g = torch.Generator().manual_seed(data.seed)
    order = torch.randperm(len(gray), generator=g)
    half = len(gray) // 2
    hue = torch.randint(data.num_colors, (len(gray) - half,), generator=g)
    a = gray[order[:half]].expand(-1, 3, -1, -1)  # (N_A, 3, H, W)
    b = colorize(gray[order[half:]], torch.tensor(PALETTE)[hue])  # (N_B, 3, H, W)
    parts = [
        _train_test(data, x, torch.full((len(x),), k), digit[i], offset=k)
        for k, (x, i) in enumerate(((a, order[:half]), (b, order[half:])))
    ]
    train, test = _cat([p[0] for p in parts]), _cat([p[1] for p in parts])
    n_a = len(parts[0][1])
    _check(data.test_set.a.x, test.x[:n_a], "domain A")
    _check(data.test_set.b.x[: len(test) - n_a], test.x[n_a:], "domain B")
    return train, test


def _colored_splits(data: ColoredDigits) -> tuple[Split, Split]:
    """Every digit in one of the k colours, drawn with the seed; the colour is the domain."""
    gray, digit = _source(data)
    g = torch.Generator().manual_seed(data.seed)
    domain = torch.randint(data.num_colors, (len(gray),), generator=g)
    x = colorize(gray, torch.tensor(PALETTE)[domain])  # (N, 3, H, W)
    train, test = _train_test(data, x, domain, digit)
    _check(data.test_set.x, test.x, "the test split")
    return train, test


def _edges_splits(data: EdgesToDigits) -> tuple[Split, Split]:
    """Targets `x` the gray digits, `inputs` their edge maps, one domain (0)."""
    gray, digit = _source(data)
    train, _, test = data._splits(len(gray))
    edges = to_unit(edge_map(gray))
    splits = [
        Split(to_unit(gray[i]), torch.zeros(len(i), dtype=torch.long), digit[i], edges[i])
        for i in (train, test)
    ]
    _check(data.test_set.a.x, splits[1].inputs, "the test inputs")
    _check(data.test_set.b.x, splits[1].x, "the test targets")
    return splits[0], splits[1]


def labelled_splits(data) -> tuple[Split, Split]:
    """(train, test) of the DataModule's generated images with domain and digit labels,
    recomputed as the DataModule draws them and checked against its test split."""
    for cls, splits in (
        (GrayToColorDigits, _gray_color_splits),
        (ColoredDigits, _colored_splits),
        (EdgesToDigits, _edges_splits),
    ):
        if isinstance(data, cls):
            return splits(data)
    raise ValueError(f"No labels for {type(data).__name__}; the benchmark knows {list(CONFIGS)}.")


def _check(theirs: Tensor, ours: Tensor, what: str) -> None:
    if theirs.shape != ours.shape or not torch.equal(to_unit(theirs), ours):
        raise RuntimeError(
            f"The recomputed {what} differs from the DataModule's: genflow.data.image2image "
            f"changed how it draws the generated domains. Update labelled_splits to match."
        )


# ---- classifiers -------------------------------------------------------------------------------
class ChannelMax(nn.Module):
    """(B, C, H, W) -> (B, 1, H, W) max over channels: the gray digit of any palette colour."""

    def forward(self, x: Tensor) -> Tensor:
        return x.amax(1, keepdim=True)


def classifier(in_channels: int, num_classes: int, width: int = 16, gray: bool = False):
    """A small CNN: the image averaged down to 16 x 16 (the digits are 8 x 8 drawings scaled
    up, so no content is lost), three conv layers (two of stride 2) and a linear layer on the
    4 x 4 map, which keeps where strokes are; `gray` first reduces the image to its channel
    maximum (colour-blind, for digits)."""
    c = 1 if gray else in_channels
    layers = [ChannelMax()] if gray else []
    layers += [
        nn.AdaptiveAvgPool2d(16),
        nn.Conv2d(c, width, 3, 1, 1), nn.ReLU(),  # (B, w, 16, 16)
        nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),  # (B, 2w, 8, 8)
        nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(),  # (B, 4w, 4, 4)
        nn.Flatten(), nn.Linear(4 * width * 16, num_classes),
    ]  # fmt: skip
    return nn.Sequential(*layers)


def train_classifier(
    net: nn.Module, x: Tensor, y: Tensor, epochs: int = 20, batch_size: int = 64, seed: int = 0
) -> nn.Module:
    """Adam 2e-3 on cross-entropy, shuffled mini-batches from a fixed seed; returns `net` in
    eval mode."""
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    net.train()
    for _ in range(epochs):
        for index in torch.randperm(len(x), generator=g).split(batch_size):
            loss = F.cross_entropy(net(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return net.eval()


@torch.no_grad()
def predict(net: nn.Module, x: Tensor) -> Tensor:
    """(N,) predicted classes, in evaluation batches."""
    return torch.cat([net(b).argmax(1) for b in x.split(EVAL_BATCH)])


def accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of `x` that `net` assigns to class `y`: a classifier's accuracy, or a
    translation's domain / digit accuracy when `y` is the target domain / source digit."""
    return (predict(net, x) == y).float().mean().item()


@dataclass
class Classifiers:
    digit: nn.Module
    domain: nn.Module | None
    digit_accuracy: float  # on the real test images
    domain_accuracy: float | None


def train_classifiers(
    train: Split, test: Split, domains: int, epochs: int = 20, width: int = 16, seed: int = 0
) -> Classifiers:
    """The digit classifier (colour-blind, all domains) and, with more than one domain, the
    domain classifier, each with its accuracy on the real test images."""
    c = train.x.shape[1]
    torch.manual_seed(seed)
    digit = train_classifier(classifier(c, 10, width, gray=True), train.x, train.digit, epochs)
    domain = None
    if domains > 1:
        domain = train_classifier(classifier(c, domains, width), train.x, train.domain, epochs)
    return Classifiers(
        digit,
        domain,
        accuracy(digit, test.x, test.digit),
        None if domain is None else accuracy(domain, test.x, test.domain),
    )


# ---- translation figures -----------------------------------------------------------------------
def translate(model, x: Tensor, target: Tensor | int | None) -> Tensor:
    """model.translate over evaluation batches, in eval mode (no dropout)."""
    model.eval()
    if target is None or isinstance(target, int):
        return torch.cat([model.translate(b, target) for b in x.split(EVAL_BATCH)])
    pairs = zip(x.split(EVAL_BATCH), target.split(EVAL_BATCH), strict=True)
    return torch.cat([model.translate(b, t) for b, t in pairs])


def mean_l1(x: Tensor, y: Tensor) -> float:
    """Mean absolute error per pixel, in the units of the images ([0, 1])."""
    return (x - y).abs().mean().item()


def translation_figures(
    clf: Classifiers, fakes: Tensor, targets: Tensor, digits: Tensor
) -> dict[str, float]:
    """Domain accuracy of translations `fakes` aimed at `targets`, and digit accuracy against
    the source images' `digits`."""
    out = {"digit_acc": accuracy(clf.digit, fakes, digits)}
    if clf.domain is not None:
        out["domain_acc"] = accuracy(clf.domain, fakes, targets)
    return out


def cyclegan_figures(model, test: Split, clf: Classifiers) -> dict[str, float]:
    """Both directions: A -> B (target 1) and B -> A (target 0), pooled over all test images;
    the cycle error averages |F(G(a)) - a| and |G(F(b)) - b|."""
    a, b = test.domain == 0, test.domain == 1
    fake_b, fake_a = translate(model, test.x[a], 1), translate(model, test.x[b], 0)
    fakes = torch.cat([fake_b, fake_a])
    targets = torch.cat([torch.ones(len(fake_b)), torch.zeros(len(fake_a))]).long()
    digits = torch.cat([test.digit[a], test.digit[b]])
    cycle_a = mean_l1(translate(model, fake_b, 0), test.x[a])
    cycle_b = mean_l1(translate(model, fake_a, 1), test.x[b])
    return translation_figures(clf, fakes, targets, digits) | {
        "a_to_b_domain_acc": accuracy(clf.domain, fake_b, targets[: len(fake_b)]),
        "b_to_a_domain_acc": accuracy(clf.domain, fake_a, targets[len(fake_b) :]),
        "cycle_a": cycle_a,
        "cycle_b": cycle_b,
        "cycle": (cycle_a + cycle_b) / 2,
    }


def stargan_figures(model, test: Split, clf: Classifiers, k: int) -> dict[str, float]:
    """Every test image to each of the k - 1 other domains (y + s) mod k; the reconstruction
    error translates back to the source domain y."""
    fakes, targets, recs = [], [], []
    for s in range(1, k):
        target = (test.domain + s) % k
        fake = translate(model, test.x, target)
        fakes.append(fake)
        targets.append(target)
        recs.append(mean_l1(translate(model, fake, test.domain), test.x))
    figures = translation_figures(
        clf, torch.cat(fakes), torch.cat(targets), test.digit.repeat(k - 1)
    )
    return figures | {"rec": sum(recs) / len(recs)}


def pix2pix_figures(model, test: Split, clf: Classifiers) -> dict[str, float]:
    """L1 of G(edges) against the digits, the trivial baseline's L1, and digit accuracy."""
    fakes = translate(model, test.inputs, None)
    return {
        "l1": mean_l1(fakes, test.x),
        "l1_input": mean_l1(test.inputs, test.x),
        "digit_acc": accuracy(clf.digit, fakes, test.digit),
    }


def figures(name: str, model, data, test: Split, clf: Classifiers) -> dict[str, float]:
    if name == "cyclegan":
        return cyclegan_figures(model, test, clf)
    if name == "stargan":
        return stargan_figures(model, test, clf, data.num_classes)
    return pix2pix_figures(model, test, clf)


# ---- training ----------------------------------------------------------------------------------
def fit(model, data, minutes: float, max_epochs: int) -> dict:
    """Train for `minutes` of wall clock (Lightning's max_time) or `max_epochs`, whichever ends
    first; validation, logging and checkpoints off (the evaluation is ours)."""
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        max_epochs=max_epochs,
        max_time={"seconds": 60 * minutes},
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    steps_per_epoch = max(1, len(trainer.train_dataloader))
    batches = trainer.fit_loop.epoch_loop.batch_progress.total.completed
    return {"fit_seconds": seconds, "epochs": batches / steps_per_epoch}


@dataclass
class Result:
    model: str
    minutes: float
    max_epochs: int
    epochs: float = 0.0
    fit_seconds: float = 0.0
    figures: dict = field(default_factory=dict)
    classifiers: dict = field(default_factory=dict)


def run_model(
    name: str,
    minutes: float,
    max_epochs: int | None = None,
    data_overrides: dict | None = None,
    model_overrides: dict | None = None,
    classifier_epochs: int = 20,
    classifier_width: int = 16,
    seed: int = 0,
) -> Result:
    """Classifiers on the real images, the model trained from `seed`, then its figures.
    `max_epochs` None takes the config's (CycleGAN's learning-rate decay is laid out over it)."""
    if max_epochs is None:
        max_epochs = read_config(name).get("trainer", {}).get("max_epochs", 10)
    if max_epochs < 1:
        raise ValueError(
            f"max_epochs must be >= 1, got {max_epochs}: CycleGAN lays its learning-rate decay "
            f"out over max_epochs (with -1 its rate is 0 from the start), so give a count."
        )
    data = make_data(name, data_overrides)
    train, test = labelled_splits(data)
    domains = data.num_classes if name == "stargan" else (2 if name == "cyclegan" else 1)
    clf = train_classifiers(train, test, domains, classifier_epochs, classifier_width, seed)
    pl.seed_everything(seed, verbose=False)
    model = build_model(name, data, model_overrides)
    trained = fit(model, data, minutes, max_epochs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        scores = figures(name, model, data, test, clf)
    accs = {"digit_clf_acc": clf.digit_accuracy, "domain_clf_acc": clf.domain_accuracy}
    return Result(
        name, minutes, max_epochs, trained["epochs"], trained["fit_seconds"], scores, accs
    )


# ---- report ------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(results: list[Result]) -> str:
    lines = [
        "| model | minutes | epochs | domain acc | digit acc | cycle/rec error | L1 | "
        "baseline L1 | classifiers (domain / digit) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        f, c = r.figures, r.classifiers
        error = f.get("cycle", f.get("rec"))
        lines.append(
            f"| {r.model} | {r.fit_seconds / 60:.1f} | {r.epochs:.1f} | "
            f"{_fmt(f.get('domain_acc'))} | {_fmt(f.get('digit_acc'))} | {_fmt(error)} | "
            f"{_fmt(f.get('l1'))} | {_fmt(f.get('l1_input'))} | "
            f"{_fmt(c['domain_clf_acc'])} / {_fmt(c['digit_clf_acc'])} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="pix2pix,cyclegan,stargan", help=",".join(CONFIGS))
    p.add_argument("--minutes", type=float, default=15.0, help="wall-clock training per model")
    p.add_argument(
        "--max-epochs", type=int, default=None,
        help="stop earlier after this many epochs; default the config's trainer.max_epochs",
    )  # fmt: skip
    p.add_argument("--classifier-epochs", type=int, default=20)
    p.add_argument("--size", type=int, default=None, help="image side; default the config's")
    p.add_argument(
        "--base-channels", type=int, default=None, help="network width; default the config's"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON file for the results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    quiet()
    start = time.perf_counter()
    results = []
    for name in [m for m in args.models.split(",") if m]:
        data = {} if args.size is None else {"size": args.size}
        model = {} if args.base_channels is None else {"base_channels": args.base_channels}
        result = run_model(
            name, args.minutes, args.max_epochs, data, model, args.classifier_epochs,
            seed=args.seed,
        )  # fmt: skip
        results.append(result)
        print(table(results[-1:]).splitlines()[-1], flush=True)
    info = machine(args.threads) | {"wall_seconds": time.perf_counter() - start}
    print(f"\n{info}\n\n{table(results)}")
    record = {"machine": info, "args": vars(args), "results": [r.__dict__ for r in results]}
    if args.out:
        write_json(record, args.out)
    return record


if __name__ == "__main__":
    main()
