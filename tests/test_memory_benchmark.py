"""experiments/benchmarks/memory.py: the storage tracker counts exactly the bytes it should
(allocations, frees, views, parameters, Adam's state, a known activation), a GAN's measured step
holds both optimizers' state, and the table has a row of positive figures per family."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from families import FAMILIES as EVERY_CLASS
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import memory  # noqa: E402

F32 = 4  # bytes


@pytest.fixture(autouse=True)
def _quiet():
    memory.quiet()


def _nbytes(module: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def test_every_model_class_has_a_config_of_its_own_class():
    assert set(memory.FAMILIES) == set(EVERY_CLASS)
    for family, config in memory.FAMILIES.items():
        model = yaml.safe_load((ROOT / "experiments" / config).read_text())["model"]
        assert model["class_path"].rsplit(".", 1)[1] == family


def test_tracker_counts_allocations_frees_and_views_exactly():
    with memory.StorageTracker() as t:
        a = torch.ones(1000)
        b = a * 2  # both alive: the peak
        assert t.total == 2000 * F32
        del a, b
        assert t.total == 0  # the finalizers took both off
        c = torch.ones(500)
        view = c[:10].view(2, 5)  # shares c's storage: no new bytes
        assert t.total == 500 * F32
    assert t.peak_bytes == 2000 * F32
    assert t.peak_phase == "forward_backward"
    assert view.sum() == 10


def _linear_step(model, optimizer, x):
    loss = model(x).square().mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def test_linear_model_parameters_gradients_and_adam_state():
    """nn.Linear with Adam, one warm-up step, then one tracked step: parameters are numel * 4
    bytes, Adam's state is twice that plus one float32 step count per parameter tensor, the
    gradients reach the parameters' size, and the optimizer step's peak holds all three."""
    model = nn.Linear(64, 32)
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(16, 64)
    _linear_step(model, optimizer, x)
    params = (64 * 32 + 32) * F32
    assert _nbytes(model) == params
    with memory.StorageTracker([model], [optimizer], [x]) as t:
        _linear_step(model, optimizer, x)
    start = t.at_peak["forward_backward"]
    assert start["params"] == params
    assert t.max_role["optimizer"] == 2 * params + 2 * F32  # exp_avg, exp_avg_sq, 2 steps
    assert t.max_role["grads"] == params
    assert t.max_role["batch"] == 16 * 64 * F32
    opt_peak = t.at_peak["optimizer"]
    assert opt_peak["grads"] == params and opt_peak["optimizer"] == 2 * params + 2 * F32
    assert t.peak["optimizer"] >= 4 * params + 2 * F32 + 16 * 64 * F32
    assert t.current["grads"] == 0  # zero_grad(set_to_none) freed them, and the tracker saw it


def test_peak_equals_torch_mem_tracker_on_a_conv_net():
    """Where torch's own MemTracker works (no module called twice), both give the same peak."""
    from torch.distributed._tools.mem_tracker import MemTracker

    def setup():
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8), nn.Flatten(),
            nn.Linear(8 * 8 * 8, 4),
        )  # fmt: skip
        optimizer = torch.optim.Adam(model.parameters(), weight_decay=1e-4)
        x = torch.randn(4, 3, 8, 8)
        _linear_step(model, optimizer, x)
        return model, optimizer, x

    model, optimizer, x = setup()
    reference = MemTracker()
    reference.track_external(model, optimizer, x)
    with reference:
        _linear_step(model, optimizer, x)
    expected = reference.get_tracker_snapshot("peak")[torch.device("cpu")]["Total"]
    model, optimizer, x = setup()
    with memory.StorageTracker([model], [optimizer], [x]) as t:
        _linear_step(model, optimizer, x)
    assert t.peak_bytes == expected


class Scratch(nn.Module):
    """A layer that makes an n-float activation and keeps it for its backward (x * big)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.linear = nn.Linear(4, 1)

    def forward(self, x):
        big = torch.ones(self.n)  # (n,)
        return (self.linear(x).sum() * big).sum()


@pytest.mark.parametrize("n", [10_000, 200_000])
def test_a_known_activation_is_in_the_peak(n):
    """The forward/backward peak holds the n-float tensor (and the product of the same size
    saved with it): it grows by exactly 2 * 4 bytes per extra float."""
    peaks = {}
    for size in (n, 2 * n):
        model = Scratch(size)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(3, 4)
        with memory.StorageTracker([model], [optimizer], [x]) as t:
            model(x).backward()
            optimizer.step()
        assert t.at_peak["forward_backward"]["activations"] >= size * F32
        peaks[size] = t.peak["forward_backward"]
    assert peaks[2 * n] - peaks[n] == 2 * n * F32


def test_line_fit_is_exact_on_a_line():
    intercept, slope = memory.fit_line([2, 4, 8], [3 + 5 * 2, 3 + 5 * 4, 3 + 5 * 8])
    assert intercept == pytest.approx(3) and slope == pytest.approx(5)
    with pytest.raises(ValueError, match="two different batch sizes"):
        memory.fit_line([4, 4], [1, 2])


def test_gan_step_measured_after_both_networks_have_optimizer_state():
    """WGAN-GP (n_critic 5) on the paper config's CIFAR-10 shape, tiny networks: the measured
    step is the 10th, which updates critic and generator, so Adam's state of both networks is
    there (2x their parameters plus a step count per tensor) and so are both gradients."""
    m, model = memory.measure("WGANGP", 2, overrides={"channels": 8, "latent_dim": 8})
    assert model.critic_steps == 10 and model.generator_steps == 2
    params = _nbytes(model)
    tensors = sum(1 for _ in model.parameters())
    assert m.max_role["optimizer"] == 2 * params + tensors * F32
    assert m.max_role["grads"] == params
    assert m.max_role["batch"] == 2 * 3 * 32 * 32 * F32 + 2 * 8  # float images, int64 labels
    assert m.peak_bytes > m.start > 0
    # Lightning's on_before_optimizer_step marked the updates: Adam's temporaries were seen there
    assert m.at_peak["optimizer"]["optimizer_temp"] > 0
    assert m.at_peak["forward_backward"]["optimizer_temp"] == 0


def test_table_has_a_positive_row_per_family(tmp_path):
    out = tmp_path / "memory.json"
    families = ["VAE", "PPCA", "CouplingFlow"]
    record = memory.main(
        ["--families", ",".join(families), "--batch-size", "4", "--more-batch-sizes", "2,8",
         "--out", str(out)]
    )  # fmt: skip
    assert json.loads(out.read_text())["table"] == record["table"]
    rows = [r for r in record["table"].splitlines() if r.startswith("| ") and "---" not in r][1:]
    assert [r.split(" | ")[0][2:] for r in rows] == families
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        params, batch = int(cells[2].replace(",", "")), int(cells[3])
        assert params > 0 and batch == 4
        peak, per_example, at_config = (float(cells[i].replace(",", "")) for i in (8, 10, 12))
        assert peak > 0 and per_example > 0 and at_config >= peak
    for result in record["results"]:
        assert [m["batch_size"] for m in result["measurements"]] == [4, 2, 8]
        assert result["line_error"] is not None and result["line_error"] < 0.05
