"""GPU speed options, exercised on CPU: bf16 autocast, channels_last, torch.compile (in place,
so checkpoints keep their parameter names), and what each family lets the compiler have."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from families import FAMILIES
from test_cli import QUIET, data_overrides

from genflow.callbacks import SpeedOptions
from genflow.cli import cli
from genflow.models import GMM, VAE, WGANGP

ROOT = Path(__file__).resolve().parent.parent
TWO_STEPS = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
             "--trainer.limit_val_batches", "1", "--run.wandb", "disabled", *QUIET]  # fmt: skip


def speed_fit(tmp_path: Path, family: str, options: dict, *extra: str):
    config, family_args = FAMILIES[family]
    path = ROOT / "experiments" / config
    callbacks = [{"class_path": "genflow.callbacks.SpeedOptions", "init_args": options},
                 {"class_path": "genflow.callbacks.DivergenceGuard"}]  # fmt: skip
    return cli([
        "fit", "--config", str(path), "--run.root", str(tmp_path / "runs"), *TWO_STEPS,
        "--trainer.callbacks", json.dumps(callbacks), *data_overrides(path, tmp_path),
        *family_args, *extra,
    ])  # fmt: skip


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ("GMM", "PPCA")])
def test_every_network_family_trains_in_bf16_with_channels_last(family, tmp_path):
    """bf16 autocast on CPU (the same Lightning plugin as on GPUs) and NHWC weights: two steps
    with finite losses (the divergence guard is on) and finite weights, still NHWC."""
    run = speed_fit(tmp_path, family, {"channels_last": True}, "--trainer.precision", "bf16-mixed")
    assert run.trainer.global_step >= 2
    model = run.model
    assert all(torch.isfinite(p).all() for p in model.parameters())
    convs = [p for p in model.parameters() if p.dim() == 4 and p.shape[-1] > 1]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights stay fp32


def test_compile_is_in_place_so_checkpoints_keep_their_names(tmp_path):
    """The compiled VAE trains and its checkpoint loads into a plain VAE."""
    options = {"compile": True, "compile_options": {"backend": "eager"}}
    run = speed_fit(tmp_path, "VAE", options)
    (speed,) = [c for c in run.trainer.callbacks if isinstance(c, SpeedOptions)]
    assert speed.compiled == ["encoder", "decoder"]
    assert run.model.encoder._compiled_call_impl is not None
    checkpoint = tmp_path / "compiled.ckpt"
    run.trainer.save_checkpoint(checkpoint)
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert not any("_orig_mod" in key for key in state)
    keep = ("data_shape", "num_bits", "latent_dim", "likelihood", "architecture", "hidden_dims")
    plain = VAE(**{k: v for k, v in run.model.hparams.items() if k in keep})
    plain.load_state_dict(state)
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(value, run.model.state_dict()[key], rtol=0, atol=0)


def test_wgan_gp_compiles_its_generator_and_keeps_the_twice_differentiated_critic_eager(tmp_path):
    options = {"compile": True, "compile_options": {"backend": "eager"}}
    run = speed_fit(tmp_path, "WGANGP", options)
    (speed,) = [c for c in run.trainer.callbacks if isinstance(c, SpeedOptions)]
    assert speed.compiled == ["generator"]
    assert run.trainer.global_step >= 2
    assert (
        "discriminator"
        not in WGANGP(data_shape=(1, 8, 8), architecture="mlp").compilable_networks()
    )


def test_speed_options_refuse_what_cannot_work():
    with pytest.raises(ValueError, match="has no networks to compile.*Remove compile: true"):
        SpeedOptions(compile=True)._compile(GMM(data_shape=(1, 8, 8), num_components=2))
    with pytest.raises(ValueError, match="compile_options were given but compile is false"):
        SpeedOptions(compile_options={"mode": "max-autotune"})


def test_throughput_counts_the_examples_of_the_timed_steps(tmp_path):
    config, _ = FAMILIES["VAE"]
    callbacks = [{"class_path": "genflow.callbacks.Throughput"}]
    path = ROOT / "experiments" / config
    run = cli([
        "fit", "--config", str(path), "--run.root", str(tmp_path / "runs"), *TWO_STEPS,
        "--trainer.callbacks", json.dumps(callbacks), "--data.init_args.batch_size", "16",
    ])  # fmt: skip
    metrics = run.trainer.callback_metrics
    speed, seconds = float(metrics["train/img_per_s"]), float(metrics["train/step_seconds"])
    assert speed > 0 and 0 < seconds < 60
    assert speed * seconds == pytest.approx(16, rel=1e-4)  # two full batches of 16 per step


def test_the_readme_speed_command_parses_and_trains(tmp_path):
    """The README's flags (compiled with the eager backend here: inductor takes ~40 s on CPU)."""
    config, _ = FAMILIES["GAN"]
    path = ROOT / "experiments" / config
    run = cli([
        "fit", "--config", str(path), "--run.root", str(tmp_path / "runs"), *TWO_STEPS,
        "--trainer.precision", "bf16-mixed",
        "--trainer.callbacks+=genflow.callbacks.SpeedOptions",
        "--trainer.callbacks.channels_last=true", "--trainer.callbacks.compile=true",
        '--trainer.callbacks.compile_options={"backend": "eager"}',
        "--data.init_args.drop_last", "true", "--data.init_args.batch_size", "8",
        *data_overrides(path, tmp_path),
    ])  # fmt: skip
    (speed,) = [c for c in run.trainer.callbacks if isinstance(c, SpeedOptions)]
    assert speed.channels_last and speed.compiled == ["generator", "discriminator"]
    assert run.trainer.global_step == 4  # two batches, a critic and a generator step each
