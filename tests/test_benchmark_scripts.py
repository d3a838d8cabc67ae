"""The evaluation scripts end to end on small files in the real formats: training the LeNet of
the domain FID, and the cross-family leaderboard."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from formats import write_idx

from genflow.metrics.lenet import load_lenet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import leaderboard  # noqa: E402
import train_lenet  # noqa: E402


def test_train_lenet_trains_saves_and_never_overwrites(tmp_path):
    out = tmp_path / "lenet.pt"
    config = str(ROOT / "experiments" / "vae" / "digits.yaml")
    result = train_lenet.main(["--config", config, "--out", str(out), "--epochs", "15"])
    assert result["test_accuracy"] > 0.9 and result["train_images"] > 1000
    net = load_lenet(out)
    assert net.meta["test_accuracy"] == result["test_accuracy"] and net.image_size == 8
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="left as it is"):
        train_lenet.main(["--config", config, "--out", str(out), "--epochs", "1"])
    assert out.read_bytes() == before


@pytest.mark.slow
def test_leaderboard_runs_end_to_end_and_writes_one_table(tmp_path):
    """The MNIST-10k protocol on random 28x28 IDX files (10,000 images), two cheap entries, a
    few seconds of training each: one table row per model, bits/dim only where defined."""
    rng = np.random.default_rng(0)
    images = write_idx(tmp_path / "images.gz", rng.integers(0, 256, (10000, 28, 28)), True)
    labels = write_idx(tmp_path / "labels.gz", rng.integers(0, 10, 10000), True)
    lenet = tmp_path / "lenet.pt"
    train_lenet.main(["--config", str(ROOT / "experiments/vae/digits.yaml"), "--out", str(lenet)])
    out = tmp_path / "board.md"
    result = leaderboard.main([
        "--images", str(images), "--labels", str(labels), "--minutes", "0.02",
        "--num-samples", "40", "--lenet", str(lenet), "--only", "PPCA (64),DCGAN,WGAN-GP",
        "--out", str(out),
    ])  # fmt: skip
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"PPCA (64)", "DCGAN", "WGAN-GP"}
    assert "bpd" in rows["PPCA (64)"] and "bpd" not in rows["DCGAN"]
    assert all(
        r["fid"] > 0 and r["samples_per_s"] > 0 and r["parameters"] > 0 for r in rows.values()
    )
    assert rows["DCGAN"]["train_seconds"] < 60
    table = out.read_text()
    assert table.count("\n| ") == 5  # header, the training-images reference, three models
    assert result["meta"]["reference_fid"] >= 0
    assert "| DCGAN | gan/dcgan_mnist10k.yaml |" in table and "| - |" in table
    saved = json.loads(out.with_suffix(".json").read_text())
    assert [r["name"] for r in saved["rows"]] == [r["name"] for r in result["rows"]]
    leaderboard.main([
        "--images", str(images), "--labels", str(labels), "--minutes", "0.01",
        "--num-samples", "20", "--lenet", str(lenet), "--only", "PPCA (64)", "--out", str(out),
    ])  # fmt: skip
    assert out.read_text() == table and (tmp_path / "board-1.md").exists()  # never overwritten


def test_leaderboard_table_lists_a_diverged_model_last_with_its_step():
    rows = [
        {"name": "NICE", "config": "flows/nice_mnist.yaml", "overrides": {}, "parameters": 5e6,
         "train_seconds": 30, "epochs": 0.5, "iwae_k": None,
         "diverged": "Training diverged at epoch 0, batch 57 (global step 58): train/loss"},
        {"name": "PPCA", "config": "classical/ppca_mnist.yaml", "overrides": {"method": "em"},
         "parameters": 5e4, "train_seconds": 6, "epochs": 1.0, "iwae_k": None, "bpd": 1.25,
         "fid": 300.0, "samples_per_s": 2e4},
    ]  # fmt: skip
    meta = {"minutes": 3, "threads": 1, "cpu": "x86_64", "cpu_count": 2, "torch": "2",
            "num_samples": 2000, "lenet_test_accuracy": 0.99, "reference_fid": 120.0}  # fmt: skip
    lines = leaderboard.table(rows, meta).splitlines()
    assert lines[-2].startswith("| PPCA | classical/ppca_mnist.yaml, method=em | 0.05 M |")
    assert "| 1.250 | 300.00 | 20,000 |" in lines[-2]
    assert (
        "diverged: Training diverged at epoch 0, batch 57 (global step 58): train/loss | - |"
        in lines[-1]
    )
