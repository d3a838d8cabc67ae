"""The autoregressive sampling benchmark end to end on tiny images: both samplers of each model
give identical samples, the multiscale sampler is compared with the Gated PixelCNN's naive one,
and the JSON is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import pixelcnn_sampling  # noqa: E402

TINY = ["--batch", "4", "--size", "16", "--gated-channels", "4", "--gated-layers", "2",
        "--pixelcnn-channels", "4", "--pixelcnn-blocks", "1", "--ms-channels", "4",
        "--ms-blocks", "1"]  # fmt: skip


def test_every_sampler_is_timed_identical_and_multiscale_is_compared_with_naive(tmp_path):
    out = tmp_path / "bench.json"
    result = pixelcnn_sampling.main([*TINY, "--out", str(out)])
    rows = {r["model"]: r for r in result["rows"]}
    assert set(rows) == {"GatedPixelCNN", "PixelCNN", "MultiscalePixelCNN"}
    assert all(r["identical"] and r["fast_seconds"] > 0 for r in rows.values())
    # 256 full passes of the Gated PixelCNN against 16 base steps and 6 group passes
    ms, gated = rows["MultiscalePixelCNN"], rows["GatedPixelCNN"]
    assert result["multiscale_vs_naive"] == pytest.approx(
        gated["sequential_seconds"] / ms["fast_seconds"]
    )
    assert result["multiscale_vs_naive"] > 1
    assert json.loads(out.read_text())["multiscale_vs_naive"] == result["multiscale_vs_naive"]


def test_without_the_gated_model_there_is_no_naive_comparison():
    result = pixelcnn_sampling.main([*TINY, "--models", "multiscale"])
    assert "multiscale_vs_naive" not in result and len(result["rows"]) == 1
    with pytest.raises(ValueError, match="Unknown model 'gatd'; choose from gated, pixelcnn"):
        pixelcnn_sampling.main([*TINY, "--models", "gatd"])
