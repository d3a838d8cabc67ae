"""The divergence guard (on by default): a run whose loss turns NaN stops at once, says at which
step, in which term and why, and keeps its last good checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_cli import data_overrides

from genflow.callbacks.divergence import DivergenceGuard, likely_cause
from genflow.cli import cli
from genflow.models import GAN, WGAN, RealNVP

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_EVERY_STEP = json.dumps([
    {"class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
     "init_args": {"save_last": True, "save_top_k": 0, "every_n_train_steps": 1}},
    {"class_path": "genflow.callbacks.DivergenceGuard"},
])  # fmt: skip


def unstable_fit(tmp_path: Path, config: str, lr: str, *extra: str) -> list[str]:
    """A config made unstable by a learning rate far too high (both optimizers of a GAN)."""
    path = ROOT / "experiments" / config
    optimizers = ["optimizer_g", "optimizer_d"] if "gan/" in config else ["optimizer"]
    rates = [a for o in optimizers for a in (f"--model.init_args.{o}.init_args.lr", lr)]
    return [
        "fit", "--config", str(path), "--run.root", str(tmp_path / "runs"),
        "--run.wandb", "disabled", "--trainer.enable_progress_bar", "false",
        "--trainer.max_epochs", "2", "--trainer.callbacks", CHECKPOINT_EVERY_STEP,
        *rates, *data_overrides(path, tmp_path), *extra,
    ]  # fmt: skip


def test_a_diverging_vae_stops_naming_step_term_and_cause_and_keeps_the_last_good_checkpoint(
    tmp_path,
):
    with pytest.raises(FloatingPointError) as err:
        cli(unstable_fit(tmp_path, "vae/digits.yaml", "1000"))
    message = str(err.value)
    assert "Training diverged at epoch 0, batch 1 (global step 2)" in message
    assert "train/kl" in message and "loss (returned by training_step)" in message
    assert "Likely cause for VAE" in message and "lower the learning rate" in message
    last = tmp_path / "runs" / "vae-digits" / "version_0" / "checkpoints" / "last.ckpt"
    assert str(last) in message
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["global_step"] == 1  # the step before the divergence, never the NaN one
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


# Flows and GANs are where training diverges. Each config here is made deliberately unstable
# by its learning rate; (config, lr, extra args, the step and term named, the family's cause).
# The rates are large enough that the first updates break the model on any CPU: at a rate
# where divergence takes a few steps (RealNVP at 10), the step it happens at depends on the
# processor's floating-point rounding (step 4 on one machine, step 5 on another).
UNSTABLE = {
    "RealNVP": ("flows/realnvp_digits.yaml", "1000", [], "batch 1 (global step 2)",
                "train/bpd", "the log-determinant overflowed"),
    # Two optimizer steps per batch. The update of batch 1 breaks the discriminator's batch
    # norm statistics while every loss is still finite: the guard refuses to save them.
    "DCGAN": ("gan/dcgan_mnist.yaml", "1e8", ["--data.init_args.batch_size", "8"],
              "global step 4", "discriminator.features.conv.3.running_var became NaN or "
              "infinite in the last update, before any loss did", "the discriminator overpowered"),
}  # fmt: skip


@pytest.mark.parametrize("family", list(UNSTABLE))
def test_an_unstable_flow_or_gan_stops_at_the_step_it_diverged_and_keeps_the_last_good_weights(
    family, tmp_path
):
    config, lr, extra, step, term, cause = UNSTABLE[family]
    with pytest.raises(FloatingPointError) as err:
        cli(unstable_fit(tmp_path, config, lr, *extra))
    message = str(err.value)
    assert f"Training diverged at epoch 0, {step}" in message
    assert term in message and cause in message
    (last,) = (tmp_path / "runs").glob("*/version_0/checkpoints/last.ckpt")
    assert f"the last good checkpoint is {last}." in message
    checkpoint = torch.load(last, weights_only=True)
    diverged_at = int(step.split("global step ")[1].rstrip(")"))
    assert 0 < checkpoint["global_step"] < diverged_at  # saved before the NaN step, never after
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def test_the_console_script_prints_the_diagnosis_without_a_traceback(tmp_path):
    args = unstable_fit(tmp_path, "vae/digits.yaml", "1000")
    result = subprocess.run(
        [sys.executable, "-c", "from genflow.cli import main; main()", *args],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "genflow: error: Training diverged at epoch 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_guard_is_on_by_default_and_hints_per_family():
    defaults = (ROOT / "experiments" / "defaults.yaml").read_text()
    assert "genflow.callbacks.DivergenceGuard" in defaults
    shape = {"data_shape": (1, 8, 8), "num_bits": 8}
    assert "log-determinant" in likely_cause(RealNVP(**shape, num_scales=1, features=4))
    assert "discriminator overpowered" in likely_cause(GAN(**shape, architecture="mlp"))
    assert "weight clipping" in likely_cause(WGAN(**shape, architecture="mlp"))
    with pytest.raises(ValueError, match="check_every_n_steps must be >= 1"):
        DivergenceGuard(check_every_n_steps=0)
