"""`genflow evaluate` on a checkpoint of every family, the FID and Likelihood callbacks, and
metrics over DDP ranks equal to one process."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from ddp import run_ddp_cli, run_metric_ranks
from families import FAMILIES, LATER_FAMILIES
from test_cli import QUIET, data_overrides

from genflow.cli import cli
from genflow.data import Digits
from genflow.metrics.lenet import save_lenet, train_lenet

ROOT = Path(__file__).resolve().parent.parent
# metrics asked of one checkpoint of every model class genflow has (tests/families.py)
METRICS = {
    "AE": ["fid", "kid"],
    "DenoisingAE": ["fid"],
    "VAE": ["bpd", "nll", "fid", "kid", "is", "pr"],
    "GAN": ["fid", "is"],
    "WGAN": ["fid"],
    "WGANGP": ["fid"],
    "ConditionalGAN": ["fid"],
    "BiGAN": ["fid"],
    "CouplingFlow": ["bpd", "nll"],
    "NICE": ["bpd", "fid"],
    "RealNVP": ["bpd", "nll", "fid"],
    "GMM": ["bpd", "fid"],
    "PPCA": ["bpd", "fid"],
    "PixelCNN": ["bpd", "fid"],
    "GatedPixelCNN": ["bpd", "fid"],
    "PixelCNNPlusPlus": ["bpd", "fid"],
    "StyleGAN": ["fid"],
    "PixelRNN": ["bpd", "nll"],  # sampling reruns the network per pixel: slow for FID here
    "MultiscalePixelCNN": ["bpd", "nll", "fid"],
}
EVALUATED = FAMILIES | {k: v for k, v in LATER_FAMILIES.items() if k in METRICS}
CASES = {name: (*EVALUATED[name], METRICS[name]) for name in EVALUATED}
CASES["VAE-toy2d"] = ("vae/toy2d.yaml", [], ["bpd"])
SHORT_FIT = [
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
    "--trainer.limit_val_batches", "1", "--trainer.callbacks", "[]", *QUIET,
    "--run.wandb", "disabled",
]  # fmt: skip


@pytest.fixture(scope="module")
def lenet_path(tmp_path_factory) -> Path:
    data = Digits()
    data.setup()
    net = train_lenet(data.train_set.x.float() / 255, data.train_set.y, epochs=15)
    return save_lenet(net, tmp_path_factory.mktemp("lenet") / "digits.pt")


def fit(tmp_path: Path, config: str, *extra: str) -> Path:
    """A two-step fit; returns its last.ckpt."""
    path = ROOT / "experiments" / config
    args = ["fit", "--config", str(path), "--run.root", str(tmp_path / "runs"), *SHORT_FIT]
    args += ["--trainer.callbacks+=ModelCheckpoint", "--trainer.callbacks.save_last=true"]
    run = cli([*args, *data_overrides(path, tmp_path), *extra])
    return Path(run.trainer.default_root_dir) / "checkpoints" / "last.ckpt"


def evaluate(ckpt: Path, *extra: str) -> dict:
    cli(["evaluate", "--ckpt_path", str(ckpt), "--trainer.enable_progress_bar", "false", *extra])
    newest = max(ckpt.parent.parent.glob("evaluation*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(newest.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("family", list(CASES))
def test_evaluate_works_on_a_checkpoint_of_every_family(family, tmp_path, lenet_path):
    config, extra, metrics = CASES[family]
    ckpt = fit(tmp_path, config, *extra)
    record = evaluate(
        ckpt, "--metrics", json.dumps(metrics), "--weights", str(lenet_path),
        "--num_samples", "24", "--batch_size", "12",
    )  # fmt: skip
    names = {"pr": ["precision", "recall"], "kid": ["kid", "kid_std"], "is": ["is", "is_std"]}
    assert {n for m in metrics for n in names.get(m, [m])} <= set(record["metrics"])
    assert all(math.isfinite(v) for v in record["metrics"].values()), record["metrics"]
    assert record["checkpoint"] == str(ckpt.resolve()) and record["split"] == "test"
    assert record["model"].endswith(family.split("-")[0])
    if "nll" in metrics:  # bits/dim is nll / (D ln 2)
        shape = torch.load(ckpt, weights_only=True)["hyper_parameters"]["data_shape"]
        m = record["metrics"]
        assert m["bpd"] == pytest.approx(m["nll"] / (math.prod(shape) * math.log(2)), rel=1e-9)
    if "fid" in metrics:
        assert record["features"] == "lenet" and record["num_samples"] == 24
        assert record["metrics"]["fid"] > 0


@pytest.fixture(scope="module")
def gan_ckpt(tmp_path_factory) -> Path:
    return fit(tmp_path_factory.mktemp("gan"), "gan/dcgan_mnist.yaml")


def test_evaluate_refuses_metrics_a_model_cannot_give(gan_ckpt, tmp_path, lenet_path):
    with pytest.raises(ValueError, match="GAN has no likelihood, so bits/dim and NLL are not"):
        evaluate(gan_ckpt, "--metrics", "[bpd]")
    toy = fit(tmp_path, "flows/coupling_moons.yaml")
    with pytest.raises(ValueError, match=r"this data has shape \(2,\)"):
        evaluate(toy, "--metrics", "[fid]", "--weights", str(lenet_path))
    with pytest.raises(ValueError, match="Unknown metrics"):
        evaluate(toy, "--metrics", "[sharpness]")
    with pytest.raises(ValueError, match="needs the weights of a LeNet"):
        evaluate(gan_ckpt, "--metrics", "[fid]")
    assert not list(gan_ckpt.parent.parent.glob("evaluation*.json"))


def test_evaluate_never_overwrites_and_checks_the_checkpoint(gan_ckpt, tmp_path, lenet_path):
    args = ["--metrics", "[fid]", "--weights", str(lenet_path), "--num_samples", "10"]
    first = evaluate(gan_ckpt, *args)
    second = evaluate(gan_ckpt, *args, "--seed", "1")
    files = sorted(p.name for p in gan_ckpt.parent.parent.glob("evaluation*.json"))
    assert files == ["evaluation-1.json", "evaluation.json"]
    assert first["metrics"]["fid"] != second["metrics"]["fid"] and second["seed"] == 1
    vae_config = ROOT / "experiments" / "vae" / "digits.yaml"
    with pytest.raises(ValueError, match=r"data shape \(1, 28, 28\)\) do not fit the GAN built"):
        cli(["evaluate", "--config", str(vae_config), "--ckpt_path", str(gan_ckpt)])
    lone = tmp_path / "lone" / "checkpoints" / "x.ckpt"
    lone.parent.mkdir(parents=True)
    lone.write_bytes(gan_ckpt.read_bytes())
    with pytest.raises(FileNotFoundError, match="No config.yaml next to the checkpoint"):
        evaluate(lone)


@pytest.mark.slow
def test_fid_and_likelihood_callbacks_log_during_fit(tmp_path, lenet_path):
    fid = {"class_path": "genflow.callbacks.FID",
           "init_args": {"weights": str(lenet_path), "num_samples": 40, "batch_size": 20,
                         "metrics": ["fid", "kid", "pr"]}}  # fmt: skip
    likelihood = {"class_path": "genflow.callbacks.Likelihood",
                  "init_args": {"num_importance_samples": 16}}  # fmt: skip
    config = ROOT / "experiments" / "vae" / "digits.yaml"
    run = cli([
        "fit", "--config", str(config), "--run.root", str(tmp_path / "runs"), *SHORT_FIT,
        "--trainer.max_epochs", "2", "--trainer.limit_val_batches", "3",
        "--trainer.callbacks", json.dumps([fid, likelihood]),
    ])  # fmt: skip
    logged = {k: float(v) for k, v in run.trainer.callback_metrics.items()}
    assert {"val/fid", "val/kid", "val/kid_std", "val/precision", "val/recall"} <= set(logged)
    assert logged["val/fid"] > 0
    # the IWAE bound (K = 16) is at least the ELBO, so its bits/dim are at most the ELBO's
    assert logged["val/bpd"] <= logged["val/elbo_bpd"] + 1e-6
    assert logged["val/nll"] == pytest.approx(logged["val/bpd"] * 64 * math.log(2), rel=1e-6)


def test_metrics_over_two_ranks_equal_one_process_on_an_uneven_split(tmp_path):
    """FID, KID, IS, precision/recall and bits/dim with 101 real and 67 generated examples
    shared unevenly by two gloo ranks equal the one-process figures."""
    ranks, single = run_metric_ranks(tmp_path, num_real=101, num_fake=67)
    for rank in ranks:
        assert rank.keys() == single.keys()
        for key, value in single.items():
            assert rank[key] == pytest.approx(value, abs=1e-6, rel=0), key


@pytest.mark.slow
def test_fid_callback_under_ddp_equals_one_process(tmp_path, lenet_path):
    """`genflow validate` of one RealNVP checkpoint on 2 processes and on 1: Digits' 359 test
    images (180/179 per rank) and 50 samples drawn in chunks split 3/2 across the ranks. The
    sample metrics agree to 1e-6 absolute; bits/dim and NLL to 1e-6 relative (the per-example
    log-likelihoods come from float32 convolutions over differently composed batches, which
    differ in the last bits)."""
    ckpt = fit(tmp_path, "flows/realnvp_digits.yaml")
    fid = {"class_path": "genflow.callbacks.FID",
           "init_args": {"weights": str(lenet_path), "num_samples": 50, "batch_size": 10,
                         "metrics": ["fid", "kid", "is", "pr"]}}  # fmt: skip
    args = ["validate", "--config", str(ckpt.parent.parent / "config.yaml"),
            "--ckpt_path", str(ckpt), "--trainer.callbacks", json.dumps([fid]),
            "--data.init_args.val_size", "0", "--run.root", str(tmp_path / "eval"),
            "--trainer.limit_val_batches", "1.0", *QUIET]  # fmt: skip
    two = run_ddp_cli(tmp_path, args)
    one = cli([*args, "--run.wandb", "disabled"]).trainer.callback_metrics
    keys = ["val/fid", "val/kid", "val/is", "val/precision", "val/recall", "val/bpd", "val/nll"]
    for rank in two:
        for key in keys:
            assert rank[key] == pytest.approx(float(one[key]), abs=1e-6, rel=1e-6), key
    assert float(one["val/fid"]) > 0 and float(one["val/bpd"]) > 0
    assert torch.isfinite(torch.tensor([float(one[k]) for k in keys])).all()


def test_validate_before_fit_then_fit_gives_the_same_exact_means():
    """`trainer.validate` first (a baseline figure, as users do) then `fit` on the same model:
    the per-example mean metrics made under validate's inference mode must not break fit's
    validation, and each figure is still the exact mean of log_prob over the split."""
    import pytorch_lightning as pl

    from genflow.models import GatedPixelCNN

    data = Digits(batch_size=64, binarize="none", seed=0)
    data.setup()
    torch.manual_seed(0)
    model = GatedPixelCNN(data_shape=data.data_shape, num_bits=data.num_bits,
                          hidden_channels=8, num_layers=2, head_channels=8)  # fmt: skip

    def trainer(**kwargs):
        return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, accelerator="cpu", **kwargs)  # fmt: skip

    def exact_bpd() -> float:
        x = torch.cat([b for b, _ in data.val_dataloader()])
        return float(model.bits_per_dim(x).mean())

    before = trainer().validate(model, data.val_dataloader(), verbose=False)[0]["val/bpd"]
    assert before == pytest.approx(exact_bpd(), rel=1e-6)
    fitted = trainer(max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0)
    fitted.fit(model, datamodule=data)
    after = float(fitted.callback_metrics["val/bpd"])
    assert after == pytest.approx(exact_bpd(), rel=1e-6) and after != before
