"""The `genflow` command: LightningCLI with model and data chosen by class from YAML.

    genflow fit --config experiments/vae/digits.yaml
    genflow test --config runs/vae-digits/version_0/config.yaml --ckpt_path .../last.ckpt
    genflow sample --ckpt_path runs/vae-digits/version_0/checkpoints/last.ckpt --num_samples 64

Every run lands in `runs/<name>/<version>/` (config, checkpoints, samples, metrics.json, W&B
files). W&B logs offline unless `--run.wandb online` (or WANDB_MODE=online).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from jsonargparse import Namespace
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from genflow.callbacks.grids import next_free, save_samples
from genflow.metrics.evaluation import check_metrics, evaluate_model
from genflow.metrics.features import build_extractor
from genflow.models.base import GenerativeModel

DEFAULTS = Path(__file__).resolve().parent.parent / "experiments" / "defaults.yaml"
RUN_DIR_ENV = "GENFLOW_RUN_DIR"  # handed from the launching process to its DDP children
DATA_LINKS = ("data_shape", "num_bits", "num_classes")
CKPT_KEYWORDS = ("last", "best", "hpc")  # ckpt_path values Lightning resolves itself


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
        weights_only: bool | None = None,
    ) -> tuple[Path, Path]:
        """Write `num_samples` draws from a checkpoint as a PNG grid and a tensor file (.pt).

        `weights_only` is accepted so a run's config.yaml can be passed as it is; checkpoints
        are always read with weights_only=True.

        Files go to `output_dir`, by default the `samples/` folder of the checkpoint's run;
        existing files are never overwritten.
        """
        load_weights(model, read_checkpoint(ckpt_path), ckpt_path)
        model.to(self.strategy.root_device).eval()
        torch.manual_seed(seed)
        samples = model.sample(num_samples, temperature=temperature)
        run = Path(ckpt_path).resolve().parent.parent
        out = Path(output_dir) if output_dir else run / "samples"
        png, pt = save_samples(samples, out / f"sample-{num_samples}-T{temperature:g}.png", nrow)
        print(f"genflow sample: wrote {png} and {pt}")
        return png, pt

    def evaluate(
        self,
        model: GenerativeModel,
        datamodule: pl.LightningDataModule,
        ckpt_path: str | None = None,
        metrics: list[str] | None = None,
        split: str = "test",
        features: str = "lenet",
        weights: str | None = None,
        num_samples: int = 2000,
        num_importance_samples: int | None = None,
        batch_size: int = 250,
        seed: int = 0,
        output: str | None = None,
        weights_only: bool | None = None,
    ) -> Path:
        """Compute `metrics` of a checkpoint on a split and write them as JSON.

        Args:
            metrics: any of bpd, nll (likelihood models), fid, kid, is, pr (images); default:
                bpd and nll where the model has a likelihood, else fid.
            split: "test" or "val".
            features: feature extractor of fid/kid/is/pr: "lenet" or "inception".
            weights: the LeNet file (experiments/train_lenet.py) or local Inception weights.
            num_samples: generated samples compared with the split.
            num_importance_samples: K of a VAE's IWAE bound (default: the model's own).
            batch_size: samples drawn per model call.
            seed: seed of the samples and of KID's subsets.
            output: JSON path; default `<run>/evaluation.json` (never overwritten: -1, -2, ...).
            weights_only: accepted so a run's config.yaml can be passed as it is; checkpoints
                are always read with weights_only=True.
        """
        checkpoint = read_checkpoint(ckpt_path)
        load_weights(model, checkpoint, ckpt_path)
        model.to(self.strategy.root_device).eval()
        if metrics is None:
            metrics = ["bpd", "nll"] if model.has_likelihood else ["fid"]
        if split not in ("test", "val"):
            raise ValueError(f"split must be 'test' or 'val', got {split!r}.")
        check_metrics(model, metrics, model.data_shape)
        if num_samples < 1 or batch_size < 1:
            raise ValueError(
                f"num_samples and batch_size must be >= 1, got {num_samples} and {batch_size}. "
                f"Pass e.g. --num_samples 2000 --batch_size 250."
            )
        extractor = None
        if set(metrics) - {"bpd", "nll"}:
            extractor = build_extractor(features, weights)
        datamodule.setup("test" if split == "test" else "validate")
        loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
        start = time.perf_counter()
        torch.manual_seed(seed)
        figures = evaluate_model(
            model,
            loader,
            metrics,
            extractor=extractor,
            num_samples=num_samples,
            batch_size=batch_size,
            seed=seed,
            num_importance_samples=num_importance_samples,
        )
        record = {
            "checkpoint": str(Path(ckpt_path).resolve()),
            "model": checkpoint.get("hyper_parameters", {}).get("_class_path")
            or f"{type(model).__module__}.{type(model).__name__}",
            "data": f"{type(datamodule).__module__}.{type(datamodule).__name__}",
            "split": split,
            "epoch": checkpoint.get("epoch"),
            "global_step": checkpoint.get("global_step"),
            "features": features if extractor is not None else None,
            "weights": str(Path(weights).resolve()) if weights and extractor is not None else None,
            "num_samples": num_samples if extractor is not None else None,
            "seed": seed,
            "metrics": figures,
            "seconds": round(time.perf_counter() - start, 3),
        }
        run = Path(ckpt_path).resolve().parent.parent
        path = next_free(Path(output) if output else run / "evaluation.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"genflow evaluate: {json.dumps(figures)}\nwrote {path}")
        return path


def load_weights(model: GenerativeModel, checkpoint: dict, ckpt_path: str | None) -> None:
    """Load a checkpoint's weights, explaining a model/data mismatch instead of listing keys.

    LightningCLI rebuilds the model from the checkpoint's own hyperparameters, so a mismatch
    comes from the data: the config's DataModule links another data shape into the model.
    """
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        saved = checkpoint.get("hyper_parameters", {})
        raise ValueError(
            f"The weights in {ckpt_path} ({saved.get('_class_path', 'unknown model')}, data "
            f"shape {tuple(saved.get('data_shape') or ())}) do not fit the "
            f"{type(model).__name__} built from the config (data shape "
            f"{tuple(model.data_shape)}): the config's data differs from the data the "
            f"checkpoint was trained on. Pass the config of the run that wrote it "
            f"(runs/<name>/<version>/config.yaml), or leave --config out to use the one next "
            f"to the checkpoint. ({str(err).splitlines()[0]})"
        ) from None


class GenflowSaveConfig(SaveConfigCallback):
    """Save the run's config as config.yaml; if the folder already has one (a later validate or
    test in the same run), save config-<stage>.yaml, config-<stage>-1.yaml, ... instead."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if (log_dir / self.config_filename).exists():
            stage = getattr(stage, "value", stage)
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
    launcher, a SLURM job's id, a torchrun rendezvous id, or the next free version_N.

    Processes that an outside launcher (srun, torchrun) started together cannot agree on "the
    next free version" (each would look before the others create it), so they take a name from
    the job they share, or must be given one."""
    if version:
        return Path(root) / name / version
    rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    if rank > 0 and RUN_DIR_ENV in os.environ:
        return Path(os.environ[RUN_DIR_ENV])
    if "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return Path(root) / name / f"slurm_{os.environ['SLURM_JOB_ID']}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "TORCHELASTIC_RUN_ID" in os.environ:
        run_id = os.environ["TORCHELASTIC_RUN_ID"]
        if run_id == "none":
            raise ValueError(
                "torchrun started these processes without a rendezvous id, so they cannot "
                "agree on a run folder. Pass --run.version <name> (the same on every node), or "
                "--rdzv-id <job id> to torchrun (--standalone sets one by itself)."
            )
        return Path(root) / name / f"torchrun_{run_id}"
    return Path(root) / name / next_version(Path(root) / name)


def _option(args: list[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def checkpoint_file(ckpt_path: str | None) -> Path:
    """The path of an existing checkpoint file, or a clear error."""
    path = Path(ckpt_path or "")
    if not ckpt_path or not path.is_file():
        raise FileNotFoundError(
            f"Checkpoint not found: {path.resolve() if ckpt_path else '(none given)'}. Pass "
            f"--ckpt_path with a .ckpt file written by `genflow fit` (they are in "
            f"runs/<name>/<version>/checkpoints/, e.g. last.ckpt)."
        )
    return path


def read_checkpoint(ckpt_path: str | None) -> dict:
    """Load a Lightning checkpoint on CPU with clear errors for a missing or damaged file."""
    path = checkpoint_file(ckpt_path)
    try:
        # memory-mapped: reading the hyperparameters does not read every tensor from disk
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        checkpoint["state_dict"]
    except Exception as err:  # torch raises many types for a damaged file
        # torch's text for a file it refuses to unpickle says it "can still be loaded" with
        # weights_only=False, which would run code from an untrusted file: not passed on
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        weights_only = "weights only" in first.lower().replace("_", " ")
        detail = "it holds more than weights and tensors" if weights_only else first
        raise ValueError(
            f"Could not read the checkpoint {path.resolve()} ({type(err).__name__}: {detail}). "
            f"The file is truncated, corrupt or not a Lightning checkpoint; pick another one "
            f"from the run's checkpoints/ folder."
        ) from None
    return checkpoint


def model_args_from_checkpoint(ckpt_path: str | None) -> list[str]:
    """--model and --data arguments that rebuild the checkpoint's model without its dataset."""
    hparams = dict(read_checkpoint(ckpt_path).get("hyper_parameters", {}))
    class_path = hparams.pop("_class_path", None)
    if class_path is None:
        raise ValueError(
            f"The checkpoint {ckpt_path} does not name its model class (it was not written by "
            f"`genflow fit`). Pass --config with the `model:` and `data:` sections it was "
            f"trained with."
        )
    hparams.pop("_instantiator", None)
    spec = {k: hparams.pop(k) for k in DATA_LINKS if k in hparams}
    model = {"class_path": class_path, "init_args": hparams}
    data = {"class_path": "genflow.data.spec.DataSpec", "init_args": spec}
    return ["--model", json.dumps(model), "--data", json.dumps(data)]


def run_config_of(ckpt_path: str | None) -> Path:
    """The config.yaml of the run that wrote a checkpoint (runs/<name>/<version>/)."""
    # only whether it exists: the file is read (with a clear error if damaged) once parsed
    config = checkpoint_file(ckpt_path).resolve().parent.parent / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(
            f"No config.yaml next to the checkpoint's run folder ({config}). Pass --config with "
            f"the `model:` and `data:` sections the checkpoint was trained with."
        )
    return config


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
        commands = {k: v for k, v in LightningCLI.subcommands().items() if k != "predict"}
        return {**commands, "sample": {"model", "datamodule"}, "evaluate": {"model", "datamodule"}}

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        args = list(sys.argv[1:] if args is None else args)
        given = {a.split("=")[0] for a in args}
        if args[:1] == ["sample"] and not given & {"-c", "--config", "--model", "-h", "--help"}:
            args += model_args_from_checkpoint(_option(args, "--ckpt_path"))
        if args[:1] == ["evaluate"] and not given & {"-c", "--config", "--model", "-h", "--help"}:
            # first, so that the options given on the command line override the run's config
            args[1:1] = ["--config", str(run_config_of(_option(args, "--ckpt_path")))]
        self.config = parser.parse_args(args)

    def _parse_ckpt_path(self) -> None:
        """Lightning rebuilds the model from the checkpoint's hyperparameters: read the file
        with a clear error first, and remember a config of another model family."""
        self._other_family = None
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and ckpt_path not in CKPT_KEYWORDS and not ckpt_path.startswith("registry"):
            saved = read_checkpoint(ckpt_path).get("hyper_parameters", {}).get("_class_path")
            given = _class_name(self.config[subcommand].get("model"))
            if saved and given and saved.rsplit(".", 1)[-1] != given:
                self._other_family = (ckpt_path, saved, given)
        super()._parse_ckpt_path()

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as err:
            # jsonargparse wraps a model's own message in its report on every Union subtype
            reason = next((ln.strip(" -") for ln in str(err).splitlines() if "  - " in ln), "")
            if not getattr(self, "_other_family", None):
                if reason and str(err).startswith("Does not validate"):
                    raise ValueError(reason) from None
                raise
            ckpt_path, saved, given = self._other_family
            raise ValueError(
                f"The checkpoint {ckpt_path} holds a model of class {saved}, but the config "
                f"builds {given}. A checkpoint restores its own model, which does not fit this "
                f"config's data ({reason or str(err).splitlines()[0]}). Pass the config of the "
                f"run that wrote it (runs/<name>/<version>/config.yaml)."
            ) from None

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
                compute_fn=lambda dm, attr=attr: getattr(dm, attr, None), apply_on="instantiate",
            )  # fmt: skip

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        if config.get("model") is None:
            raise ValueError(
                f"genflow {self.subcommand}: no model given. Pass --config with a `model:` "
                f"section (e.g. experiments/vae/digits.yaml or a run's config.yaml)"
                + (
                    ", or --ckpt_path of a checkpoint written by genflow fit."
                    if self.subcommand == "sample"
                    else "."
                )
            )
        if config.get("data") is None and self.subcommand != "sample":
            raise ValueError(
                f"genflow {self.subcommand}: no data given. Pass --config with a `data:` section "
                f"(e.g. class_path: genflow.data.Digits)."
            )
        if self.subcommand in ("sample", "evaluate"):
            config.trainer.logger = False
            config.trainer.callbacks = []
            return
        run = resolve_run_dir(config.run.root, self._run_name(config), config.run.version)
        self._guard_existing_run(run, config)
        os.environ[RUN_DIR_ENV] = str(run)
        config.trainer.default_root_dir = str(run)
        self._place_loggers(config, run)
        for callback in _as_list(config.trainer.callbacks):
            if _class_name(callback) == "ModelCheckpoint" and not callback.init_args.get(
                "dirpath"
            ):
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
        modes = ("offline", "online", "disabled", "dryrun", "run")
        for given, source in ((config.run.wandb, "--run.wandb"),
                              (os.environ.get("WANDB_MODE"), "WANDB_MODE")):  # fmt: skip
            if given is not None and given not in modes:
                raise ValueError(
                    f"{source} must be offline, online or disabled, got {given!r}. W&B logs "
                    f"offline by default; --run.wandb online uploads as the run goes."
                )
        mode = os.environ.get("WANDB_MODE", config.run.wandb)
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


def cli(args: list[str] | None = None) -> GenflowCLI:
    """Parse `args` (default: sys.argv), run the subcommand, and return the CLI object."""
    defaults = os.environ.get("GENFLOW_DEFAULTS", str(DEFAULTS))
    default_files = [defaults] if Path(defaults).is_file() else []
    sub_kwargs = {"default_config_files": default_files}
    try:
        return GenflowCLI(
            GenerativeModel,
            None,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_class=GenflowTrainer,
            save_config_callback=GenflowSaveConfig,
            parser_kwargs={
                "description": "genflow: train, test and sample deep generative models.",
                **{name: dict(sub_kwargs) for name in GenflowCLI.subcommands()},
            },
            args=args,
        )
    finally:
        _finish_wandb()


def _finish_wandb() -> None:
    """Close this process's W&B run, so the next run in the same process gets its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


# Mistakes a user can fix; the console script prints their message without a traceback.
USER_ERRORS = (
    ValueError, FileNotFoundError, FileExistsError, NotImplementedError, FloatingPointError,
)  # fmt: skip


def main() -> None:
    """Entry point of the `genflow` console script (GENFLOW_TRACEBACK=1 shows tracebacks)."""
    try:
        cli()
    except (*USER_ERRORS, ModuleNotFoundError) as err:
        # a missing package is the user's to fix only where genflow names its install command
        unexplained = isinstance(err, ModuleNotFoundError) and "pip install" not in str(err)
        if os.environ.get("GENFLOW_TRACEBACK") or unexplained:
            raise
        sys.stderr.write(f"genflow: error: {err}\n(set GENFLOW_TRACEBACK=1 for the traceback)\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
