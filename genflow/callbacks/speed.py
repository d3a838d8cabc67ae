"""Speed options of a run that are not part of the model: channels_last, torch.compile, TF32.

Mixed precision is Lightning's own (`--trainer.precision bf16-mixed`); this callback adds the
rest, applied to the model when a run starts, so checkpoints stay plain (a compiled module keeps
its parameter names: `nn.Module.compile` compiles in place) and `genflow sample` or `evaluate`
of the same checkpoint need none of it.

    trainer:
      precision: bf16-mixed
      callbacks+:
        - class_path: genflow.callbacks.SpeedOptions
          init_args: {channels_last: true, compile: true}
"""

from __future__ import annotations

from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info

MatmulPrecision = Literal["highest", "high", "medium"]


class SpeedOptions(pl.Callback):
    """Apply GPU speed options to the model at the start of fit, validate, test and predict.

    Args:
        channels_last: store 4-D weights (and so the activations of convolutions) as NHWC,
            the layout tensor cores read fastest; images models only gain on GPUs.
        compile: compile the model's networks with `torch.compile` (each family names them in
            `compilable_networks()`; a WGAN-GP critic, differentiated twice, is left out).
            Pair it with `--data.init_args.drop_last true` so the last, smaller training batch
            does not trigger a recompilation.
        compile_options: keyword arguments of `torch.compile`, e.g. `{"mode":
            "max-autotune"}` or `{"backend": "eager"}` to check tracing without code generation.
        matmul_precision: `torch.set_float32_matmul_precision`: "high" lets float32 matrix
            products use TF32 tensor cores (Ampere and later); None leaves it as it is.
    """

    def __init__(
        self,
        channels_last: bool = False,
        compile: bool = False,
        compile_options: dict[str, Any] | None = None,
        matmul_precision: MatmulPrecision | None = None,
    ) -> None:
        if compile_options and not compile:
            raise ValueError(
                "compile_options were given but compile is false: set compile: true to compile "
                "the networks with them, or drop compile_options."
            )
        self.channels_last = channels_last
        self.compile = compile
        self.compile_options = dict(compile_options or {})
        self.matmul_precision = matmul_precision
        self.compiled: list[str] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.matmul_precision is not None:
            torch.set_float32_matmul_precision(self.matmul_precision)
        if self.channels_last:
            pl_module.to(memory_format=torch.channels_last)
        if self.compile and not self.compiled:
            self._compile(pl_module)

    def _compile(self, pl_module: pl.LightningModule) -> None:
        networks = getattr(pl_module, "compilable_networks", dict)()
        if not networks:
            raise ValueError(
                f"{type(pl_module).__name__} has no networks to compile (it is fitted in closed "
                f"form or by EM). Remove compile: true from SpeedOptions for this model."
            )
        for name, network in networks.items():
            network.compile(**self.compile_options)  # in place: parameter names unchanged
            self.compiled.append(name)
        rank_zero_info(f"SpeedOptions: compiled {', '.join(self.compiled)}.")
