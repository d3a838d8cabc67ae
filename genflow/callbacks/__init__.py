"""Thin Lightning adapters over the model contract: sample and reconstruction grids, metrics."""

from genflow.callbacks.density import DensityGrid
from genflow.callbacks.divergence import DivergenceGuard
from genflow.callbacks.evaluation import FID, Likelihood
from genflow.callbacks.grids import ReconstructionGrid, SampleGrid, TranslationGrid, save_samples
from genflow.callbacks.interpolation import Interpolation
from genflow.callbacks.metrics_file import MetricsFile
from genflow.callbacks.speed import SpeedOptions
from genflow.callbacks.style import StyleMixingGrid, TruncationStrip
from genflow.callbacks.throughput import Throughput

__all__ = [
    "DensityGrid",
    "DivergenceGuard",
    "FID",
    "Interpolation",
    "Likelihood",
    "MetricsFile",
    "ReconstructionGrid",
    "SampleGrid",
    "SpeedOptions",
    "StyleMixingGrid",
    "Throughput",
    "TranslationGrid",
    "TruncationStrip",
    "save_samples",
]
