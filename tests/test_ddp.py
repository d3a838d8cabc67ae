"""A 2-process DDP run on CPU (gloo) through the real CLI and Lightning's launcher."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from ddp import ROOT, assert_identical_parameters, run_ddp_fit
from families import ALL_FAMILIES as FAMILIES
from test_cli import data_overrides

from genflow.cli import cli
from genflow.data import Digits
from genflow.data.base import UnpaddedDistributedSampler
from genflow.models import AE

# GANs need the strategy that tolerates a network without gradient in half of the steps
GAN_STRATEGY = ["--trainer.strategy", "ddp_find_unused_parameters_true"]
HAS_BATCHNORM = {"GAN", "WGAN", "WGANGP", "ConditionalGAN", "BiGAN", "RealNVP", "Pix2Pix"}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_trains_and_evaluates_under_two_process_ddp(family, tmp_path):
    """Both ranks end with identical parameters (BatchNorm running statistics stay per rank on
    CPU) and their random streams differ, so each rank drew its own training noise. Then both
    ranks validate the run's last checkpoint on the whole validation split (split unevenly
    between them where its size is odd), and every `val/` figure equals that of `genflow
    validate` on one process: evaluation noise belongs to the example, not to the rank."""
    config, extra = FAMILIES[family]
    path = ROOT / "experiments" / config
    strategy = GAN_STRATEGY if "gan/" in config or "image2image/" in config else []
    data = data_overrides(path, tmp_path)
    ranks = run_ddp_fit(
        tmp_path, f"experiments/{config}", *data, *extra, *strategy,
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1", validate=True,
    )  # fmt: skip
    # the image translators keep their first validation inputs to show, per rank; StyleGAN's
    # critic keeps a running minibatch deviation for evaluation, per rank like BatchNorm's
    per_rank = ("example_inputs", "example_targets", "examples_kept", "running_stddev")
    assert_identical_parameters(ranks, family not in HAS_BATCHNORM, skip=per_rank)
    draws = [r["record"]["rng_draw"] for r in ranks]
    assert not torch.equal(draws[0], draws[1])
    if family == "VAE":  # both ranks agreed on one run folder, handed over by the launcher
        assert [p.name for p in (tmp_path / "runs" / "vae-digits").iterdir()] == ["version_0"]

    checkpoint = Path(ranks[0]["record"]["checkpoint"])
    assert checkpoint.is_file() and ranks[1]["record"]["checkpoint"] == str(checkpoint)
    one = cli([
        "validate", "--config", str(checkpoint.parent.parent / "config.yaml"),
        "--ckpt_path", str(checkpoint), "--run.root", str(tmp_path / "one"),
        "--trainer.devices", "1", "--trainer.strategy", "auto",
        "--trainer.limit_val_batches", "1.0", "--run.wandb", "disabled",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]).trainer.callback_metrics  # fmt: skip
    expected = {k: float(v) for k, v in one.items() if k.startswith("val/")}
    assert expected and all(math.isfinite(v) for v in expected.values())
    for rank in ranks:
        got = rank["record"]["val_metrics"]
        assert got.keys() == expected.keys()
        for key, value in expected.items():  # float32 nets on differently composed batches
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.slow
def test_test_metrics_under_ddp_equal_one_process_on_an_uneven_split(tmp_path):
    """Digits' 359 test images split 180/179 over two ranks: no padding, no double count."""
    ranks = run_ddp_fit(tmp_path, "experiments/ae/digits.yaml", test=True)
    assert_identical_parameters(ranks)
    data = Digits()
    data.setup()
    assert len(data.test_set) % 2 == 1
    model = AE(data_shape=data.data_shape, latent_dim=8, architecture="conv", covariance="full")
    model.load_state_dict(ranks[0]["state"])
    model.eval()
    with torch.no_grad():
        losses = [model.reconstruction_loss(x, x)[0] for x, _ in data.test_dataloader()]
    expected = torch.cat(losses).double().mean().item()
    for rank in ranks:
        assert rank["record"]["test_metrics"]["test/loss"] == pytest.approx(expected, rel=1e-6)


def test_unpadded_sampler_gives_every_index_once_across_ranks():
    dataset = list(range(11))
    shares = [list(UnpaddedDistributedSampler(dataset, num_replicas=3, rank=r)) for r in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert [len(UnpaddedDistributedSampler(dataset, 3, r)) for r in range(3)] == [4, 4, 3]
