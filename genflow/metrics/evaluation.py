"""Evaluate a model through the model contract only (`sample`, `log_prob`): the driver shared by
`genflow evaluate`, the metric callbacks and the leaderboard (no Lightning).

- Likelihood metrics (`bpd`, `nll`) score every example of an evaluation loader once with
  `log_prob` (exact, or the IWAE bound for VAEs) in float32 with autocast off.
- Sample-quality metrics (`fid`, `kid`, `is`, `pr`) compare `num_samples` generated images with
  the loader's images through a feature extractor. The samples are drawn in chunks, chunk i with
  its own seed in a forked RNG, and rank r of R draws the chunks i = r, r + R, ...: the set of
  samples, and so every figure, is the same whatever the number of ranks, and drawing them does
  not disturb the caller's random stream.
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from genflow.metrics.features import FeatureExtractor
from genflow.metrics.likelihood import LogLikelihood
from genflow.metrics.quality import METRICS as QUALITY
from genflow.metrics.quality import SampleQuality

LIKELIHOOD = ("bpd", "nll")
ALL_METRICS = LIKELIHOOD + QUALITY


def model_device(model: nn.Module) -> torch.device:
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


def has_likelihood(model: nn.Module) -> bool:
    return bool(getattr(model, "has_likelihood", hasattr(model, "log_prob")))


def check_metrics(model: nn.Module, metrics: Sequence[str], data_shape: Sequence[int]) -> None:
    """Refuse, with the reason and the alternatives, metrics this model or data cannot give."""
    name = type(model).__name__
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown or not metrics:
        raise ValueError(f"Unknown metrics {unknown}: choose from {list(ALL_METRICS)}.")
    image = len(data_shape) == 3
    available = [m for m in ALL_METRICS if (m in LIKELIHOOD and has_likelihood(model)) or (
        m in QUALITY and image
    )]  # fmt: skip
    if any(m in LIKELIHOOD for m in metrics) and not has_likelihood(model):
        raise ValueError(
            f"{name} has no likelihood, so bits/dim and NLL are not defined for it (only "
            f"likelihood models have them: VAE (IWAE bound), flows, autoregressive models, GMM, "
            f"PPCA). Metrics {name} can give here: {available}."
        )
    if any(m in QUALITY for m in metrics) and not image:
        raise ValueError(
            f"FID/KID/IS/precision-recall compare images through an image classifier's "
            f"features; this data has shape {tuple(data_shape)}. Metrics {name} can give here: "
            f"{available}."
        )


def chunk_sizes(num_samples: int, batch_size: int) -> list[int]:
    """Sizes of the chunks in which `num_samples` samples are drawn."""
    if num_samples < 1 or batch_size < 1:
        raise ValueError(
            f"num_samples and batch_size must be >= 1, got {num_samples} and {batch_size}."
        )
    return [min(batch_size, num_samples - s) for s in range(0, num_samples, batch_size)]


def chunk_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index) % (2**63)


@torch.no_grad()
def generate(
    model: nn.Module,
    num_samples: int,
    batch_size: int = 250,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[Tensor]:
    """This rank's share of `num_samples` draws, chunk by chunk (see the module docstring)."""
    device = model_device(model)
    devices = [device] if device.type == "cuda" else []
    for index, size in enumerate(chunk_sizes(num_samples, batch_size)):
        if index % world_size != rank:
            continue
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(chunk_seed(seed, index))
            yield model.sample(size)


def log_prob(model: nn.Module, x: Tensor, num_importance_samples: int | None = None) -> Tensor:
    """`model.log_prob(x)` in float32 with autocast off (K importance samples where given)."""
    kwargs = {}
    if num_importance_samples is not None:
        if "num_samples" not in inspect.signature(model.log_prob).parameters:
            raise ValueError(
                f"num_importance_samples applies to models with an importance-weighted bound "
                f"(VAE); {type(model).__name__}.log_prob is exact. Leave it unset."
            )
        kwargs["num_samples"] = num_importance_samples
    device = model_device(model)
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        return model.log_prob(x.to(device, torch.float32), **kwargs)


def _images(batch) -> Tensor:
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def evaluate_model(
    model: nn.Module,
    loader: Iterable,
    metrics: Sequence[str],
    *,
    extractor: FeatureExtractor | None = None,
    num_samples: int = 2000,
    batch_size: int = 250,
    seed: int = 0,
    num_importance_samples: int | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """The chosen metrics of `model` on the images of `loader` (one process); with sample
    metrics also `samples_per_s`, the speed of `model.sample` alone."""
    data_shape = tuple(_images(next(iter(loader))).shape[1:])
    check_metrics(model, metrics, data_shape)
    was_training = model.training
    model.eval()
    device = model_device(model)
    out: dict[str, float] = {}
    likelihood = [m for m in metrics if m in LIKELIHOOD]
    quality_names = [m for m in metrics if m in QUALITY]
    lik = LogLikelihood(num_dims=int(torch.tensor(data_shape).prod())).to(device)
    quality = None
    if quality_names:
        if extractor is None:
            raise ValueError("Sample-quality metrics need a feature extractor (features=...).")
        quality = SampleQuality(extractor.to(device), quality_names, seed=seed).to(device)
    try:
        for batch in tqdm(loader, desc="real data", disable=not progress, leave=False):
            x = _images(batch).to(device)
            if likelihood:
                lik.update(log_prob(model, x, num_importance_samples))
            if quality is not None:
                quality.update(x, real=True)
        if likelihood:
            out |= {k: float(v) for k, v in lik.compute().items() if k in likelihood}
        if quality is not None:
            chunks = generate(model, num_samples, batch_size, seed)
            total = len(chunk_sizes(num_samples, batch_size))
            sampling = 0.0  # seconds spent in model.sample, features excluded
            bar = tqdm(total=total, desc="samples", disable=not progress)
            while True:
                start = time.perf_counter()
                fake = next(chunks, None)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                sampling += time.perf_counter() - start
                if fake is None:
                    break
                quality.update(fake.to(device).clamp(0, 1), real=False)
                bar.update()
            bar.close()
            out |= quality.compute() | {"samples_per_s": num_samples / sampling}
    finally:
        model.train(was_training)
    return out
