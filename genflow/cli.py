"""The `genflow` command: LightningCLI with model and data chosen by class from YAML.

    genflow fit --config experiments/vae/digits.yaml
    genflow test --config runs/vae-digits/version_0/config.yaml --ckpt_path .../last.ckpt
    genflow sample --ckpt_path runs/vae-digits/version_0/checkpoints/last.ckpt --num_samples 64

Every run lands in `runs/<name>/<version>/` (config, checkpoints, samples, metrics.json, W&B
files). W&B logs offline unless `--run.wandb online` (or WANDB_MODE=online).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import Namespace
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from genflow.callbacks.grids import save_samples
from genflow.models.base import GenerativeModel

DEFAULTS = Path(__file__).resolve().parent.parent / "experiments" / "defaults.yaml"
RUN_DIR_ENV = "GENFLOW_RUN_DIR"  # handed from the launching process to its DDP children
DATA_LINKS = ("data_shape", "num_bits", "num_classes")


class GenflowTrainer(pl.Trainer):
    """Lightning's Trainer plus `sample`, which writes draws from a checkpoint."""

    def sample(
        self,
        model: GenerativeModel,
        ckpt_path: str | None = None,
        num_samples: int = 64,
        temperature: float = 1.0,
        seed: int = 0,
        nrow: int | None = None,
        output_dir: str | None = None,
        datamodule: pl.LightningDataModule | None = None,
    ) -> tuple[Path, Path]:
        """Write `num_samples` draws from a checkpoint as a PNG grid and a tensor file (.pt).

        Files go to `output_dir`, by default the `samples/` folder of the checkpoint's run;
        existing files are never overwritten.
        """
        if not ckpt_path:
            raise ValueError("genflow sample needs --ckpt_path PATH to the checkpoint to draw from.")
        load_checkpoint_weights(model, ckpt_path)
        model.to(self.strategy.root_device).eval()
        torch.manual_seed(seed)
        samples = model.sample(num_samples, temperature=temperature)
        run = Path(ckpt_path).resolve().parent.parent
        out = Path(output_dir) if output_dir else run / "samples"
        png, pt = save_samples(samples, out / f"sample-{num_samples}-T{temperature:g}.png", nrow)
        print(f"genflow sample: wrote {png} and {pt}")
        return png, pt


def load_checkpoint_weights(model: torch.nn.Module, ckpt_path: str) -> None:
    """Load a Lightning checkpoint's weights with a clear error when the file is unusable."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint not found: {path.resolve()}. Pass the path of a .ckpt file written by "
            f"`genflow fit` (they are in runs/<name>/<version>/checkpoints/, e.g. last.ckpt)."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint["state_dict"]
    except Exception as err:  # torch raises many types for a damaged file
        raise RuntimeError(
            f"Could not read the checkpoint {path.resolve()} ({type(err).__name__}: {err}). The "
            f"file is truncated, corrupt or not a Lightning checkpoint; pick another one from "
            f"the run's checkpoints/ folder."
        ) from None
    model.load_state_dict(state)


class GenflowSaveConfig(SaveConfigCallback):
    """Save the run's config as config.yaml; if the folder already has one (a later validate or
    test in the same run), save config-<stage>.yaml, config-<stage>-1.yaml, ... instead."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if (log_dir / self.config_filename).exists():
            name, i = f"config-{stage}.yaml", 0
            while (log_dir / name).exists():
                i += 1
                name = f"config-{stage}-{i}.yaml"
            self.config_filename = name
        super().setup(trainer, pl_module, stage)


def next_version(root: Path) -> str:
    taken = [int(p.name[8:]) for p in root.glob("version_*") if p.name[8:].isdigit()]
    return f"version_{max(taken, default=-1) + 1}"


def resolve_run_dir(root: str, name: str, version: str | None) -> Path:
    """runs/<name>/<version>: an explicit version, the one handed to a DDP child by its
    launcher, a SLURM job's id, or the next free version_N."""
    if version:
        return Path(root) / name / version
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    if rank > 0 and RUN_DIR_ENV in os.environ:
        return Path(os.environ[RUN_DIR_ENV])
    if "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return Path(root) / name / f"slurm_{os.environ['SLURM_JOB_ID']}"
    return Path(root) / name / next_version(Path(root) / name)


def _class_name(node: Any) -> str:
    path = node.get("class_path", "") if isinstance(node, (dict, Namespace)) else ""
    return str(path).rsplit(".", 1)[-1]


def _as_list(node: Any) -> list:
    if node is None or isinstance(node, bool):
        return []
    return list(node) if isinstance(node, list) else [node]


class GenflowCLI(LightningCLI):
    """LightningCLI with data shape/bits/classes linked into the model, a `sample`
    subcommand, and every run in its own folder `runs/<name>/<version>/`."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), "sample": {"model", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run.root", type=str, default="runs", help="Folder of all runs.")
        parser.add_argument(
            "--run.name", type=str | None, default=None,
            help="Run name; default <model>-<data>, e.g. vae-digits.",
        )  # fmt: skip
        parser.add_argument(
            "--run.version", type=str | None, default=None,
            help="Version folder; default the next free version_N.",
        )  # fmt: skip
        parser.add_argument(
            "--run.wandb", type=str, default="offline",
            help="W&B mode: offline (default), online, or disabled. WANDB_MODE=online also works.",
        )  # fmt: skip
        for attr in DATA_LINKS:
            parser.link_arguments(
                "data", f"model.init_args.{attr}",
                compute_fn=lambda dm, attr=attr: getattr(dm, attr), apply_on="instantiate",
            )  # fmt: skip

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        if self.subcommand == "sample":
            config.trainer.logger = False
            return
        run = resolve_run_dir(config.run.root, self._run_name(config), config.run.version)
        self._guard_existing_run(run, config)
        os.environ[RUN_DIR_ENV] = str(run)
        config.trainer.default_root_dir = str(run)
        self._place_loggers(config, run)
        for callback in _as_list(config.trainer.callbacks):
            if _class_name(callback) == "ModelCheckpoint" and not callback.init_args.get("dirpath"):
                callback.init_args.dirpath = str(run / "checkpoints")

    def _run_name(self, config: Namespace) -> str:
        if config.run.name:
            return config.run.name
        model, data = _class_name(config.model), _class_name(config.get("data"))
        return "-".join(n.lower() for n in (model, data) if n) or "genflow"

    def _guard_existing_run(self, run: Path, config: Namespace) -> None:
        ckpts = run / "checkpoints"
        resuming = config.get("ckpt_path")
        if self.subcommand == "fit" and not resuming and ckpts.is_dir() and any(ckpts.iterdir()):
            raise FileExistsError(
                f"The run folder {run} already holds checkpoints from an earlier run. Nothing was "
                f"overwritten: choose another --run.version (or leave it unset for the next free "
                f"one), or resume that run with --ckpt_path {ckpts}/last.ckpt."
            )

    def _place_loggers(self, config: Namespace, run: Path) -> None:
        mode = os.environ.get("WANDB_MODE", config.run.wandb)
        if mode not in ("offline", "online", "disabled", "dryrun", "run"):
            raise ValueError(f"--run.wandb must be offline, online or disabled, got {mode!r}.")
        loggers = _as_list(config.trainer.logger)
        for logger in loggers:
            args, kind = logger.init_args, _class_name(logger)
            args.save_dir = str(run)
            if kind == "WandbLogger":
                args.offline = mode != "online"
                args.name = args.get("name") or f"{run.parent.name}/{run.name}"
            elif kind in ("CSVLogger", "TensorBoardLogger"):
                args.name, args.version = "", ""
        if mode == "disabled":
            kept = [lg for lg in loggers if _class_name(lg) != "WandbLogger"]
            config.trainer.logger = kept or False


def main(args: list[str] | None = None) -> GenflowCLI:
    """Entry point of the `genflow` console script."""
    defaults = os.environ.get("GENFLOW_DEFAULTS", str(DEFAULTS))
    default_files = [defaults] if Path(defaults).is_file() else []
    sub_kwargs = {"default_config_files": default_files}
    return GenflowCLI(
        GenerativeModel,
        None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_class=GenflowTrainer,
        save_config_callback=GenflowSaveConfig,
        parser_kwargs={name: dict(sub_kwargs) for name in GenflowCLI.subcommands()},
        args=args,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
