"""experiments/benchmarks/gpu_speed.py on CPU, tiny networks, the eager compile backend: every
mode trains through genflow's fit path, FLOPs are the same in every mode and match a hand
count, and the table and JSON have a row per run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import gpu_speed  # noqa: E402

CPU = torch.device("cpu")
TINY = {"dcgan": {"channels": 8, "latent_dim": 8}, "realnvp": {"features": 4, "num_blocks": 1}}


@pytest.fixture(autouse=True)
def _quiet():
    gpu_speed.quiet()


def run(model, dataset, mode, tmp_path, overrides=None, steps=2, warmup=2, batch_size=4):
    return gpu_speed.run_mode(
        model, dataset, mode, steps=steps, warmup=warmup, device=CPU, root=tmp_path,
        batch_size=batch_size, compile_backend="eager",
        overrides=TINY.get(model) if overrides is None else overrides,
    )  # fmt: skip


@pytest.mark.parametrize(("model", "dataset"), [("dcgan", "mnist"), ("realnvp", "cifar10")])
def test_every_mode_trains_the_requested_steps_with_the_same_flops(model, dataset, tmp_path):
    results = [run(model, dataset, mode, tmp_path) for mode in gpu_speed.MODES]
    for r in results:
        assert r.steps_run == 4 and r.steps == 2  # 2 warm-up + 2 timed steps
        assert r.finite and all(map(torch.isfinite, map(torch.tensor, r.last_losses.values())))
        assert r.step_seconds > 0 and r.tflops > 0
        assert r.img_per_s * r.step_seconds == pytest.approx(4, rel=1e-4)  # batch 4 per step
    assert results[0].flops > 0
    assert len({r.flops for r in results}) == 1  # bf16, channels_last, compile: the same math
    assert len({r.params for r in results}) == 1
    assert [r.compile_seconds is None for r in results] == [True, True, False]
    networks = {"dcgan": ["generator", "discriminator"], "realnvp": ["flow"]}[model]
    assert [r.compiled for r in results] == [[], [], networks]


def linear_flops(batch: int, n_in: int, n_out: int) -> int:
    """One forward pass of a linear layer (or one backward product of it): 2 B in out."""
    return 2 * batch * n_in * n_out


def test_gan_step_flops_match_a_hand_count(tmp_path):
    """An MLP GAN on 28x28 images: G = Linear(L, h), SiLU, Linear(h, 784); D = Linear(784, h),
    SiLU, Linear(h, 1). Each backward product costs one forward, and autograd makes only those
    whose operand needs a gradient (Lightning's toggle freezes the network not being trained):

    D step: G forward (g1 + g2); D forward on reals and fakes 2 (d1 + d2); backward: weights
    2 (d1 + d2), inputs of the second layer 2 d2 (the images and G's frozen fakes need none).
    G step: G and D forward (g1 + g2 + d1 + d2); backward through D's inputs (d1 + d2, no
    weight gradients), G's weights (g1 + g2) and its second layer's input (g2).
    Total 3 g1 + 4 g2 + 6 d1 + 8 d2.
    """
    B, L, h, D = 4, 8, 16, 784
    overrides = {"architecture": "mlp", "hidden_dims": [h], "latent_dim": L}
    g1, g2 = linear_flops(B, L, h), linear_flops(B, h, D)
    d1, d2 = linear_flops(B, D, h), linear_flops(B, h, 1)
    for mode in ("fp32", "bf16"):
        r = run("dcgan", "mnist", mode, tmp_path, overrides, steps=1, batch_size=B)
        assert r.flops == 3 * g1 + 4 * g2 + 6 * d1 + 8 * d2, mode


def test_table_and_json_have_a_row_per_run_and_say_when_the_peak_is_unknown(tmp_path):
    out = tmp_path / "gpu_speed.json"
    record = gpu_speed.main(
        ["--models", "realnvp", "--datasets", "mnist", "--modes", "fp32,bf16", "--steps", "1",
         "--warmup", "2", "--batch-size", "2", "--device", "cpu", "--out", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    rows = record["results"]
    assert [(r["model"], r["dataset"], r["mode"]) for r in rows] == [
        ("realnvp", "mnist", "fp32"),
        ("realnvp", "mnist", "bf16"),
    ]
    assert rows[0]["flops"] == rows[1]["flops"] > 0
    assert record["machine"]["peak_tflops"] is None
    results = [gpu_speed.Result(**{k: v for k, v in r.items() if k not in ("tflops",
               "compile_seconds")}) for r in rows]  # fmt: skip
    lines = gpu_speed.table(results, peak=None).splitlines()
    assert lines[0] == gpu_speed.HEADER and len(lines) == 4
    assert all("| peak unknown |" in line for line in lines[2:])
    assert lines[2].startswith("| realnvp / mnist | fp32 |") and "| 1.00× |" in lines[2]


def test_share_of_peak_and_speed_up_in_the_table():
    common = dict(model="dcgan", dataset="mnist", batch_size=4, params=1, warmup=2, steps=1,
                  steps_run=3, img_per_s=1.0, first_step_seconds=1.0, finite=True)  # fmt: skip
    fp32 = gpu_speed.Result(mode="fp32", step_seconds=0.02, flops=10**12, **common)
    bf16 = gpu_speed.Result(mode="bf16+compile", step_seconds=0.01, flops=10**12, **common)
    assert bf16.tflops == pytest.approx(100.0)
    assert bf16.compile_seconds == pytest.approx(0.99)
    lines = gpu_speed.table([fp32, bf16], peak=1000.0).splitlines()
    assert "| 2.00× | 100.000 | 10.00 % |" in lines[3]  # 100 of 1000 TFLOP/s
    assert "| 50.000 | 5.00 % |" in lines[2]


def test_peak_table_by_device_name():
    assert gpu_speed.peak_for_name("NVIDIA H200")[0] == 989.4
    assert gpu_speed.peak_for_name("NVIDIA H200 NVL")[0] == 835.5
    assert gpu_speed.peak_for_name("NVIDIA H100 80GB HBM3")[0] == 989.4
    assert gpu_speed.peak_for_name("NVIDIA H100 PCIe")[0] == 756.5
    assert gpu_speed.peak_for_name("NVIDIA A100-SXM4-80GB")[0] == 312.0
    peak, why = gpu_speed.peak_for_name("Tesla T4")
    assert peak is None and "peak unknown" in why and "--peak-tflops" in why
    assert gpu_speed.device_peak(CPU) == (None, "peak unknown for cpu: pass --peak-tflops")
    assert gpu_speed.device_peak(CPU, 50.0) == (50.0, "--peak-tflops")


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="No config for glow/mnist"):
        gpu_speed.read_config("glow", "mnist")
    with pytest.raises(ValueError, match="warmup must be at least 2"):
        run("dcgan", "mnist", "fp32", tmp_path, warmup=1)
    with pytest.raises(ValueError, match="Unknown modes.*choose from fp32, bf16, bf16\\+compile"):
        gpu_speed.main(["--modes", "fp16", "--device", "cpu"])
