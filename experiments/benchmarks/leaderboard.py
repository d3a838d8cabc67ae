"""One leaderboard across the families: every model trained for the same wall-clock budget on
one dataset, then scored the same way.

    .venv/bin/python experiments/benchmarks/leaderboard.py --minutes 3 --threads 1 \\
        --out runs/leaderboard/mnist10k.md

Dataset: the MNIST-10k protocol (../shared/data/mnist, t10k images 0-7,999 train, 8,000-9,999
evaluate), 8-bit, so that bits/dim compares across every likelihood model (dequantized
continuous models and 256-way autoregressive ones score the same discrete data). Each entry is
an experiments/ config's `model:` section (overrides noted in the table), with the data's
shape, bits and classes linked in as the CLI does; it trains from seed 0 with the config's
batch size for at most `--minutes` (and at most the config's max_epochs, or --max-epochs) with
Lightning's validation off, then:

- bits/dim: exact test bits/dim for flows, autoregressive models, GMM and PPCA; the IWAE bound
  (K = --iwae-k) for the VAE; "-" where a model has no likelihood;
- FID (LeNet): `--num-samples` samples against the 2,000 evaluation images, in the features of
  a LeNet trained on the 8,000 training images (experiments/train_lenet.py's recipe; reused
  from --lenet when that file exists, never overwritten);
- samples/s: `model.sample` alone, measured while drawing the FID samples.

Everything runs on the CPU with --threads torch threads. The table goes to stdout and to --out
(never overwritten), the figures to the .json beside it.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import time
from pathlib import Path

import mnist10k
import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import ArgumentParser

from genflow.callbacks.divergence import DivergenceGuard
from genflow.callbacks.grids import next_free
from genflow.data import IDX, TensorImageDataModule
from genflow.metrics.evaluation import evaluate_model
from genflow.metrics.lenet import accuracy, load_lenet, save_lenet, train_lenet
from genflow.metrics.quality import SampleQuality
from genflow.models.base import GenerativeModel

ROOT = mnist10k.ROOT
# (name, config, model init_args overrides): one or two models of every family
ENTRIES = [
    ("AE + latent Gaussian", "ae/mnist.yaml", {}),
    ("VAE (conv, learned variance)", "vae/mnist.yaml", {"likelihood": "gaussian_learned"}),
    ("DCGAN", "gan/dcgan_mnist10k.yaml", {}),
    ("WGAN-GP", "gan/wgangp_mnist10k.yaml", {}),
    ("StyleGAN", "gan/stylegan_mnist10k.yaml", {}),
    ("NICE", "flows/nice_mnist.yaml", {}),
    ("RealNVP", "flows/realnvp_mnist10k.yaml", {}),
    ("PixelCNN", "pixelcnn/mnist_binary.yaml", {}),
    ("Gated PixelCNN", "pixelcnn/mnist10k.yaml", {}),
    ("GMM (10, full)", "classical/gmm_digits.yaml", {}),
    ("PPCA (64)", "classical/ppca_mnist.yaml", {}),
]


def load_entry(config: str, overrides: dict) -> tuple[dict, int, int]:
    """(model section with overrides, batch size, max_epochs) of an experiments/ config."""
    cfg = yaml.safe_load((ROOT / "experiments" / config).read_text())
    model = copy.deepcopy(cfg["model"])
    model.setdefault("init_args", {}).update(overrides)
    batch_size = cfg.get("data", {}).get("init_args", {}).get("batch_size", 128)
    return model, batch_size, cfg.get("trainer", {}).get("max_epochs", 1000)


def build_model(section: dict, data: TensorImageDataModule) -> GenerativeModel:
    """The model of a config section, with the data's shape, bits and classes linked in."""
    section = copy.deepcopy(section)
    links = {"data_shape": list(data.data_shape), "num_bits": data.num_bits}
    section["init_args"] |= links | {"num_classes": data.num_classes}
    parser = ArgumentParser()
    # as LightningCLI adds it: a subclass's **kwargs resolve to its parent's parameters minus
    # those it passes itself (WGANGP fixes WGAN's clip_value)
    parser.add_subclass_arguments(GenerativeModel, "model", fail_untyped=False, required=True)
    config = parser.parse_object({"model": section})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return instantiate(config).model


def lenet_for(args: argparse.Namespace, data: IDX) -> tuple[torch.nn.Module, dict]:
    """The LeNet of --lenet, trained on the 8,000 training images when the file is missing."""
    path = Path(args.lenet)
    x_test, y_test = mnist10k.eval_images(data), torch.cat([y for _, y in data.test_dataloader()])
    if not path.exists():
        x = data.train_set.x.float() / 255
        start = time.perf_counter()
        net = train_lenet(x, data.train_set.y, epochs=20, seed=0)
        seconds = time.perf_counter() - start
        save_lenet(net, path, data="MNIST-10k train 0-7999", train_seconds=round(seconds, 1))
    net = load_lenet(path)
    return net, {"lenet": str(path), "lenet_test_accuracy": accuracy(net, x_test, y_test)}


def reference_fid(data: TensorImageDataModule, lenet, num_samples: int) -> float:
    """FID of `num_samples` training images against the evaluation images: the floor a perfect
    model would reach at this sample size in these features."""
    quality = SampleQuality(lenet, ["fid"])
    for x, _ in data.test_dataloader():
        quality.update(x, real=True)
    quality.update(data.train_set.x[:num_samples].float() / 255, real=False)
    return quality.compute()["fid"]


def run_entry(args, name: str, config: str, overrides: dict, lenet) -> dict:
    section, batch_size, max_epochs = load_entry(config, overrides)
    max_epochs = args.max_epochs or max_epochs
    args.batch_size = batch_size
    data = mnist10k.make_data(args, binarize="none")
    pl.seed_everything(0, verbose=False)
    model = build_model(section, data)
    trainer = mnist10k.make_trainer(  # the guard stops a model whose loss turns NaN
        [DivergenceGuard()], max_time={"seconds": args.minutes * 60}, max_epochs=max_epochs
    )
    start = time.perf_counter()
    row = {
        "name": name,
        "config": config,
        "overrides": overrides,
        "model": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    try:
        trainer.fit(model, train_dataloaders=data.train_dataloader())
    except FloatingPointError as err:  # a diverged model is a result, not a crash of the board
        row["diverged"] = str(err).split(". ")[0]
    if hasattr(model, "fit_latent_gaussian") and "diverged" not in row:  # the AE's sampler
        model.fit_latent_gaussian(data.train_dataloader())
    row |= {
        "train_seconds": time.perf_counter() - start,
        "epochs": (trainer.fit_loop.total_batch_idx + 1) / trainer.num_training_batches,
        "steps": trainer.global_step,
        "iwae_k": None,
    }
    if "diverged" in row:
        return row
    metrics = (["bpd"] if model.has_likelihood else []) + ["fid"]
    k = args.iwae_k if "num_samples" in inspect.signature(model.log_prob).parameters else None
    evaluation_start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        figures = evaluate_model(
            model, data.test_dataloader(), metrics, extractor=lenet,
            num_samples=args.num_samples, batch_size=250, seed=0,
            num_importance_samples=k, progress=False,
        )  # fmt: skip
    return row | {"iwae_k": k, "eval_seconds": time.perf_counter() - evaluation_start} | figures


def mnist10k_caption(meta: dict) -> str:
    return (
        f"MNIST-10k (8-bit), {meta['minutes']:g} min budget per model, {meta['threads']} CPU "
        f"thread(s), {meta['cpu']} ({meta['cpu_count']} cores), torch {meta['torch']}; "
        f"FID: {meta['num_samples']} samples vs the 2,000 evaluation images in LeNet "
        f"features (test accuracy {meta['lenet_test_accuracy']:.3f})."
    )


def table(rows: list[dict], meta: dict, caption: str | None = None) -> str:
    """The leaderboard in markdown, best FID first, under `caption` (by default the MNIST-10k
    run's, from `meta`); `meta["reference_fid"]` is the training-images row."""
    lines = [
        mnist10k_caption(meta) if caption is None else caption,
        "",
        "| model | config | parameters | train time | epochs | bits/dim | FID (LeNet) | "
        "samples/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        f"| *training images (reference)* | - | - | - | - | - | {meta['reference_fid']:.2f} | - |",
    ]
    for r in sorted(rows, key=lambda r: r.get("fid", math.inf)):
        bpd = "-"
        if "bpd" in r:
            bpd = f"{r['bpd']:.3f}" + (f" (IWAE K={r['iwae_k']})" if r["iwae_k"] else "")
        config = r["config"] + "".join(f", {k}={v}" for k, v in r["overrides"].items())
        fid, speed = (
            (f"{r['fid']:.2f}", f"{r['samples_per_s']:,.0f}")
            if "fid" in r
            else (f"diverged: {r['diverged']}", "-")
        )
        lines.append(
            f"| {r['name']} | {config} | {r['parameters'] / 1e6:.2f} M | "
            f"{r['train_seconds'] / 60:.1f} min | {r['epochs']:.1f} | {bpd} | {fid} | {speed} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    mnist10k.add_protocol_args(p, epochs="")
    p.set_defaults(minutes=3.0)
    p.add_argument("--num-samples", type=int, default=2000, help="FID samples per model")
    p.add_argument("--iwae-k", type=int, default=100, help="importance samples of the VAE bound")
    p.add_argument("--lenet", default=str(ROOT / "runs" / "lenet" / "mnist10k.pt"))
    p.add_argument("--only", default="", help="comma-separated entry names (default: all)")
    p.add_argument(
        "--max-epochs", type=int, default=None,
        help="epoch cap for every model instead of each config's (-1: only --minutes limits)",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="markdown table path (never overwritten)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.batch_size = 128
    data = mnist10k.make_data(args, binarize="none")
    lenet, lenet_meta = lenet_for(args, data)
    lenet_meta["reference_fid"] = reference_fid(data, lenet, args.num_samples)
    chosen = {s.strip() for s in args.only.split(",") if s.strip()}
    rows = []
    for name, config, overrides in ENTRIES:
        if chosen and name not in chosen:
            continue
        row = run_entry(args, name, config, overrides, lenet)
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta = mnist10k.describe(args, lenet, lenet_meta)
    meta |= {"minutes": args.minutes, "threads": args.threads, "num_samples": args.num_samples}
    text = table(rows, meta)
    print(text)
    if args.out:
        out = next_free(Path(args.out))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        mnist10k.write_json({"meta": meta, "rows": rows}, out.with_suffix(".json"))
        print(f"wrote {out}")
    return {"meta": meta, "rows": rows}


if __name__ == "__main__":
    main()
