"""The `genflow` CLI end to end: every config builds and runs, runs land in their own folders,
checkpoints sample, and mistakes give one clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from formats import (
    write_celeba,
    write_celeba_attributes,
    write_cifar10,
    write_idx,
    write_mnist,
    write_png,
)
from test_image2image_data import NAMES as CELEBA_ATTRIBUTES

from genflow.cli import cli

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "experiments").rglob("*.yaml"))
FAMILY_CONFIGS = [c for c in CONFIGS if c.name != "defaults.yaml"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def data_overrides(config: Path, tmp: Path) -> list[str]:
    """Point configs that need downloaded data at tiny files written in the real formats."""
    text = config.read_text()
    if "genflow.data.MNIST" in text:
        write_mnist(tmp / "data", "MNIST", n_train=40, n_test=20)
        return ["--data.init_args.root", str(tmp / "data")]
    if "genflow.data.CIFAR10" in text:
        write_cifar10(tmp / "data")  # batch 2 keeps the paper-size CIFAR-10 models quick
        return ["--data.init_args.root", str(tmp / "data"), "--data.init_args.batch_size", "2"]
    rng = np.random.default_rng(0)
    image2image = image2image_overrides(text, tmp)
    if image2image is not None:
        return image2image
    if "genflow.data.ImageFolder" in text:  # FFHQ-style: 64 px RGB images directly in a folder
        for i in range(12):
            write_png(
                tmp / "faces" / f"{i}.png", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            )
        return ["--data.init_args.root", str(tmp / "faces"), "--data.init_args.batch_size", "4"]
    if "genflow.data.IDX" in text:
        images = write_idx(tmp / "imgs.gz", rng.integers(0, 256, (30, 28, 28)), compress=True)
        labels = write_idx(tmp / "labels.gz", rng.integers(0, 10, 30), compress=True)
        return [
            "--data.init_args.images",
            str(images),
            "--data.init_args.labels",
            str(labels),
            "--data.init_args.train_range",
            "[0, 20]",
            "--data.init_args.test_range",
            "[20, 30]",
        ]
    return []


def test_every_config_starts_with_a_purpose_and_its_command():
    for config in CONFIGS:
        first, second = config.read_text().splitlines()[:2]
        assert first.startswith("# ") and len(first) > 20, config
        assert "genflow" in second or "loaded before" in second or "make demo" in first, config


def image2image_overrides(text: str, tmp: Path) -> list[str] | None:
    """Tiny folders in the papers' layouts for the image-to-image paper configs, at 64 px."""
    rng = np.random.default_rng(0)
    if "genflow.data.PairedImages" in text:  # pix2pix: side-by-side pairs in train/ and test/
        for split, n in (("train", 4), ("test", 2)):
            for i in range(n):
                write_png(tmp / "pairs" / split / f"{i}.png", rng.integers(0, 256, (64, 128, 3),
                          dtype=np.uint8))  # fmt: skip
        return ["--data.init_args.root", str(tmp / "pairs"), "--data.init_args.size", "64"]
    if "genflow.data.UnpairedImages" in text:  # CycleGAN: trainA/ trainB/ testA/ testB/
        for folder, n in (("trainA", 3), ("trainB", 4), ("testA", 2), ("testB", 2)):
            for i in range(n):
                write_png(tmp / "domains" / folder / f"{i}.png",
                          rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))  # fmt: skip
        return ["--data.init_args.root", str(tmp / "domains"), "--data.init_args.size", "64"]
    if "genflow.data.CelebAAttributes" in text:  # StarGAN: CelebA with real attribute names
        write_celeba(tmp / "data", partition=[0, 0, 0, 0, 1, 1, 2, 2])
        write_celeba_attributes(tmp / "data", CELEBA_ATTRIBUTES, rng.choice([-1, 1], (8, 40)))
        return ["--data.init_args.root", str(tmp / "data"), "--data.init_args.image_size", "64",
                "--data.init_args.batch_size", "2"]  # fmt: skip
    return None


@pytest.mark.slow
@pytest.mark.parametrize("config", FAMILY_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_config_fits_with_fast_dev_run(config, tmp_path):
    args = [
        "fit",
        "--config",
        str(config),
        "--trainer.fast_dev_run",
        "true",
        "--run.root",
        str(tmp_path / "runs"),
        *QUIET,
        *data_overrides(config, tmp_path),
    ]
    run = cli(args)
    assert run.trainer.state.finished
    assert tuple(run.model.data_shape) == tuple(run.datamodule.data_shape)  # linked from data
    assert run.model.num_bits == run.datamodule.num_bits
    # grids are skipped in a fast_dev_run smoke test (a 32x32 PixelCNN grid takes minutes)
    assert not list(Path(run.trainer.default_root_dir).glob("samples/*.png"))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A real 2-epoch run on the embedded digits, with the default (offline W&B) logger."""
    root = tmp_path_factory.mktemp("runs")
    args = [
        "fit",
        "--config",
        str(ROOT / "experiments/vae/digits.yaml"),
        "--run.root",
        str(root),
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "3",
        "--trainer.limit_val_batches",
        "2",
        *QUIET,
    ]
    run = cli(args)
    return root, Path(run.trainer.default_root_dir), run


def test_run_folder_holds_config_checkpoint_grids_metrics_and_wandb(trained_run):
    root, run_dir, _ = trained_run
    assert run_dir == root / "vae-digits" / "version_0"
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert {p.name for p in (run_dir / "samples").glob("*.png")} >= {
        "samples-epoch001.png",
        "reconstructions-epoch001.png",
    }
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"train/loss", "val/elbo", "val/elbo_bpd"} <= set(metrics)
    assert list((run_dir / "wandb").glob("offline-run-*")), "W&B should log offline by default"
    media = {p.name.split("_")[0] for p in (run_dir / "wandb").rglob("media/images/**/*.png")}
    assert media >= {"samples", "reconstructions"}  # the grids also went to W&B's image API


def test_sample_writes_png_and_tensor_from_the_checkpoint_alone(trained_run):
    _, run_dir, _ = trained_run
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    cli(["sample", "--ckpt_path", ckpt, "--num_samples", "9", *QUIET])
    cli(["sample", "--ckpt_path", ckpt, "--num_samples", "9", *QUIET])  # never overwrites
    pngs = sorted((run_dir / "samples").glob("sample-9-*.png"))
    assert [p.name for p in pngs] == ["sample-9-T1-1.png", "sample-9-T1.png"]
    samples = torch.load(run_dir / "samples" / "sample-9-T1.pt")
    assert samples.shape == (9, 1, 8, 8) and 0 <= samples.min() and samples.max() <= 1


@pytest.mark.parametrize("config", ["ae/digits.yaml", "ae/digits_denoising.yaml"])
def test_autoencoders_sample_from_their_checkpoint(config, tmp_path):
    fit = cli(
        [
            "fit",
            "--config",
            str(ROOT / "experiments" / config),
            "--run.root",
            str(tmp_path),
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "2",
            "--trainer.limit_val_batches",
            "1",
            "--run.wandb",
            "disabled",
            *QUIET,
        ]
    )
    ckpt = fit.trainer.checkpoint_callback.last_model_path
    png, pt = fit.trainer.sample(fit.model, ckpt_path=ckpt, num_samples=4)  # the CLI's method
    cli(["sample", "--ckpt_path", ckpt, "--num_samples", "4", *QUIET])
    assert png.is_file() and torch.load(pt).shape == (4, 1, 8, 8)
    assert len(list(png.parent.glob("sample-4-*.png"))) == 2


def test_test_subcommand_writes_elbo_and_iwae_into_the_run(trained_run, tmp_path):
    root, run_dir, _ = trained_run
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    cli(
        [
            "test",
            "--config",
            str(run_dir / "config.yaml"),
            "--ckpt_path",
            ckpt,
            "--run.version",
            run_dir.name,
            "--model.init_args.num_importance_samples",
            "20",
            "--trainer.limit_test_batches",
            "1",
            *QUIET,
        ]
    )
    cli(
        [
            "validate",
            "--config",
            str(run_dir / "config.yaml"),
            "--ckpt_path",
            ckpt,
            "--run.version",
            run_dir.name,
            "--trainer.limit_val_batches",
            "1",
            *QUIET,
        ]
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"val/elbo", "val/elbo_bpd", "test/elbo", "test/iwae", "test/nll"} <= set(metrics)
    assert metrics["test/iwae"] >= metrics["test/elbo"] - 1.0  # the tighter bound
    assert metrics["test/bpd"] == pytest.approx(-metrics["test/iwae"] / (64 * np.log(2)), rel=1e-4)
    assert (run_dir / "config-test.yaml").is_file()  # the fit config is kept
    assert (run_dir / "config-validate.yaml").is_file()


def test_second_run_gets_a_new_version_and_an_explicit_one_is_protected(trained_run):
    root, run_dir, _ = trained_run
    args = [
        "fit",
        "--config",
        str(ROOT / "experiments/vae/digits.yaml"),
        "--run.root",
        str(root),
        "--trainer.fast_dev_run",
        "true",
        *QUIET,
    ]
    second = cli(args)
    assert Path(second.trainer.default_root_dir).name == "version_1"
    before = (run_dir / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(FileExistsError, match="already holds checkpoints.*--ckpt_path"):
        cli([*args, "--run.version", "version_0"])
    assert (run_dir / "checkpoints" / "last.ckpt").read_bytes() == before


def test_unknown_class_in_yaml_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model:\n  class_path: genflow.models.VAEE\ndata:\n  class_path: genflow.data.Digits\n"
    )
    with pytest.raises(SystemExit):
        cli(["fit", "--config", str(bad), "--run.root", str(tmp_path)])
    assert "genflow.models.VAEE" in capsys.readouterr().err


def test_model_that_does_not_fit_the_data_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"1x28x28.*\(1, 8, 8\)"):
        cli(
            [
                "fit",
                "--config",
                str(ROOT / "experiments/ae/mnist.yaml"),
                "--data",
                "genflow.data.Digits",
                "--run.root",
                str(tmp_path),
            ]
        )


def test_missing_dataset_offline_names_folder_and_switch(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)MNIST.*download=True"):
        cli(
            [
                "fit",
                "--config",
                str(ROOT / "experiments/vae/mnist.yaml"),
                "--data.init_args.root",
                str(tmp_path / "nothing"),
                "--run.root",
                str(tmp_path),
                "--trainer.fast_dev_run",
                "true",
            ]
        )


def test_console_script_reports_missing_checkpoint_without_traceback(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GENFLOW_TRACEBACK"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from genflow.cli import main; main()",
            "sample",
            "--ckpt_path",
            str(tmp_path / "missing.ckpt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "genflow: error: Checkpoint not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_truncated_checkpoint_is_a_clear_error(trained_run, tmp_path):
    _, run_dir, _ = trained_run
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes((run_dir / "checkpoints" / "last.ckpt").read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated, corrupt"):
        cli(["sample", "--ckpt_path", str(broken)])
