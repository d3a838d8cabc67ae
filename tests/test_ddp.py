"""A 2-process DDP run on CPU (gloo) through the real CLI and Lightning's launcher."""

from __future__ import annotations

import pytest
import torch
from ddp import assert_identical_parameters, run_ddp_fit

from genflow.data import Digits
from genflow.data.base import UnpaddedDistributedSampler
from genflow.models import AE


@pytest.mark.slow
def test_vae_ddp_two_processes_leave_identical_parameters(tmp_path):
    ranks = run_ddp_fit(tmp_path, "experiments/vae/digits.yaml")
    assert_identical_parameters(ranks)
    # both ranks agreed on one run folder, handed over by the launching process
    assert [p.name for p in (tmp_path / "runs" / "vae-digits").iterdir()] == ["version_0"]


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
