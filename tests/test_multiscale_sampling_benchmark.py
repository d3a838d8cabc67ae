"""The multiscale sampling benchmark end to end on tiny images: every sampler timed, the
multiscale one making 3 group passes per scale, the naive time estimated from a few rows when
asked, and the JSON written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import multiscale_sampling  # noqa: E402

TINY = ["--batch", "4", "--size", "16", "--gated-channels", "4", "--gated-layers", "2",
        "--ms-channels", "4", "--ms-blocks", "1", "--ms-base-layers", "2"]  # fmt: skip


def test_benchmark_times_three_samplers_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = multiscale_sampling.main([*TINY, "--out", str(out)])
    rows = {r["sampler"]: r for r in result["rows"]}
    assert set(rows) == {"naive", "fast", "multiscale"}
    assert all(r["seconds"] > 0 and r["params"] > 0 for r in rows.values())
    assert rows["naive"]["estimated_from_rows"] is None  # the full image was sampled
    ms = rows["multiscale"]
    assert ms["base_grid"] == [4, 4] and ms["scales"] == 2 and ms["group_passes"] == 6
    # 256 full passes against 16 fast base steps and 6 group passes: faster even this small
    assert result["multiscale_vs_naive"] > 1
    assert json.loads(out.read_text())["rows"][2]["group_passes"] == 6


def test_naive_time_is_estimated_from_a_few_rows():
    torch.set_num_threads(1)
    result = multiscale_sampling.main([*TINY, "--naive-rows", "2"])
    naive = result["rows"][0]
    assert naive["estimated_from_rows"] == 2 and naive["seconds"] > 0
