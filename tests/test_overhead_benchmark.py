"""experiments/benchmarks/overhead.py on tiny networks and random images: genflow's `fit` path
and the hand-written loop train the same networks on the same batches, and the table reports
both speeds and their ratio."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "experiments" / "benchmarks"))

import overhead  # noqa: E402

CPU = torch.device("cpu")
# Tiny versions of each config's networks (the configs' other settings are kept).
TINY = {
    "vae": {"hidden_dims": [32], "latent_dim": 4},
    "dcgan": {"channels": 8, "latent_dim": 8},
    "realnvp": {"features": 4, "num_blocks": 1},
    "gatedpixelcnn": {"hidden_channels": 4, "num_layers": 2, "head_channels": 4},
}


@pytest.fixture(autouse=True)
def _quiet():
    overhead.quiet()


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", list(TINY))
def test_both_paths_train_the_same_weights_exactly(name, tmp_path):
    """From one initial model and one seed, 3 steps of `Trainer.fit` and 3 steps of the hand
    loop end at bit-identical weights and batch-norm statistics, and training moved them."""
    images = overhead.load_images(24, synthetic=True)
    data = overhead.make_data(name, images, batch_size=8)
    model = overhead.build_model(name, data, TINY[name])
    hand = overhead.hand_trainer(model, CPU)
    initial = _params(model)
    torch.manual_seed(5)
    overhead.genflow_epoch(model, data, CPU, tmp_path)
    torch.manual_seed(5)
    overhead.hand_epoch(hand, data, CPU)
    trained, by_hand = _params(model), _params(hand.net)
    assert trained.keys() == by_hand.keys() == initial.keys()
    for key in trained:
        assert torch.equal(trained[key], by_hand[key]), key
    moved = [k for k in trained if not torch.equal(trained[k], initial[k])]
    weights = [k for k, _ in model.named_parameters()]
    assert set(weights) <= set(moved)  # every parameter took a step (and equality is not vacuous)


def test_a_different_seed_gives_different_weights(tmp_path):
    """The equality above comes from sharing batches and noise, not from a deterministic step:
    the hand loop from another seed ends elsewhere."""
    images = overhead.load_images(24, synthetic=True)
    data = overhead.make_data("vae", images, batch_size=8)
    model = overhead.build_model("vae", data, TINY["vae"])
    hand = overhead.hand_trainer(model, CPU)
    torch.manual_seed(5)
    overhead.genflow_epoch(model, data, CPU, tmp_path)
    torch.manual_seed(6)
    overhead.hand_epoch(hand, data, CPU)
    trained, by_hand = _params(model), _params(hand.net)
    assert any(not torch.equal(trained[k], by_hand[k]) for k in trained)


def test_hand_loop_is_a_copy_that_leaves_the_genflow_model_alone():
    data = overhead.make_data("vae", overhead.load_images(16, synthetic=True), batch_size=8)
    model = overhead.build_model("vae", data, TINY["vae"])
    before = copy.deepcopy(model.state_dict())
    hand = overhead.hand_trainer(model, CPU)
    overhead.hand_epoch(hand, data, CPU)
    assert hand.net is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_benchmark_table_has_every_model_and_the_ratio_of_the_medians(tmp_path):
    images = overhead.load_images(16, synthetic=True)
    results = [
        overhead.benchmark(
            name, images, repeats=2, device=CPU, root=tmp_path, batch_size=8, overrides=TINY[name]
        )  # fmt: skip
        for name in TINY
    ]
    for r in results:
        assert len(r.genflow) == len(r.hand) == 2  # the warm-up epoch is not counted
        assert min(r.genflow + r.hand) > 0 and r.params > 0 and r.batches == 2
        assert r.ratio == pytest.approx(sum(r.genflow) / sum(r.hand))  # median of two = mean
    text = overhead.table(results)
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0] == "| model | params | genflow img/s | hand img/s | ratio (genflow/hand) |"
    assert [row.split(" | ")[0].strip("| ") for row in rows[1:]] == list(TINY)
    for row, r in zip(rows[1:], results, strict=True):
        assert row.endswith(f"| {r.ratio:.3f} |")


def test_main_writes_json_with_one_result_per_model(tmp_path):
    out = tmp_path / "overhead.json"
    record = overhead.main(
        ["--models", "vae", "--batches", "2", "--batch-size", "4", "--repeats", "1",
         "--synthetic", "--out", str(out)]
    )  # fmt: skip
    assert out.is_file() and [r["model"] for r in record["results"]] == ["vae"]
    result = record["results"][0]
    assert result["ratio"] == pytest.approx(result["genflow_median"] / result["hand_median"])
    assert record["machine"]["threads"] == 1


def test_unknown_model_or_part_to_drop_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'glow'"):
        overhead.read_config("glow")
    with pytest.raises(ValueError, match="Cannot drop"):
        overhead.make_trainer(tmp_path, CPU, overhead.EpochTimer(), drop=["progress"])
