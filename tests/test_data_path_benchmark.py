"""experiments/benchmarks/data_path.py end to end on a few hundred synthetic images: every path
yields the same images in final batches, and a speed for each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import data_path  # noqa: E402


@pytest.mark.slow  # 12 of its 24 loaders start 2 workers: 2-17 s on a shared CPU
def test_every_path_yields_the_same_final_batches_and_a_speed(tmp_path, capsys):
    out = tmp_path / "data_path.json"
    args = ["--num", "300", "--batch-size", "64", "--workers", "0,2", "--repeats", "2"]
    result = data_path.main([*args, "--device", "cpu", "--out", str(out)])
    rows = result["rows"]
    assert len(rows) == 2 * 2 * len(data_path.PATHS)  # shapes x worker counts x paths
    assert {(r["shape"], r["path"], r["workers"]) for r in rows} == {
        (s, p, w) for s in ("mnist", "cifar") for p in data_path.PATHS for w in (0, 2)
    }
    for row in rows:
        shape = tuple(row["image"])
        assert row["images_all_repeats"] == [300, 300]  # one whole epoch, every repeat
        first, last = row["first_batch"], row["last_batch"]
        assert first["shape"] == [64, *shape] and last["shape"] == [300 % 64, *shape]
        assert first["dtype"] == last["dtype"] == "float32" and first["device"] == "cpu"
        assert 0 <= first["min"] < first["max"] <= 1
        assert first["binary"] == (row["shape"] == "mnist")  # dynamic bits vs k/255 colours
        assert row["images_per_s"] > 0 and len(row["seconds"]) == 2
    classic = [r for r in rows if r["path"] == data_path.CLASSIC]
    assert all(r["vs_classic"] == 1 for r in classic)
    assert json.loads(out.read_text())["rows"] == json.loads(json.dumps(rows))
    printed = capsys.readouterr().out
    assert printed.count("| mnist 1x28x28 |") == printed.count("| cifar 3x32x32 |") == 6
