"""A 2-process DDP run on CPU (gloo) through the real CLI and Lightning's launcher."""

from __future__ import annotations

import pytest
from ddp import assert_identical_parameters, run_ddp_fit


@pytest.mark.slow
def test_vae_ddp_two_processes_leave_identical_parameters(tmp_path):
    ranks = run_ddp_fit(tmp_path, "experiments/vae/digits.yaml")
    assert_identical_parameters(ranks)
    # both ranks agreed on one run folder, handed over by the launching process
    assert [p.name for p in (tmp_path / "runs" / "vae-digits").iterdir()] == ["version_0"]
