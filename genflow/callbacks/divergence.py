"""Stop a run whose training loss becomes NaN or infinite, and say where and why.

Flows (a log-determinant that overflows) and GANs (a discriminator that wins outright) are where
this happens; without a guard the run goes on writing NaN weights into its checkpoints. The
guard checks the step's loss and every `train/...` figure the model logged at that step; on the
first non-finite one it raises `FloatingPointError` naming the step, the term and the family's
likely cause. Raising (rather than asking the trainer to stop) keeps Lightning from saving the
diverged weights: the run folder keeps its last good checkpoint.
"""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch import Tensor

# Likely causes by family, found through the model's class hierarchy (first match wins).
HINTS = {
    "WGAN": "the critic's scores ran away: with weight clipping, lower the learning rate "
    "(RMSprop 5e-5 in the paper) or use WGANGP",
    "GAN": "the discriminator overpowered the generator or the learning rates are too high: "
    "lower them (2e-4 with Adam beta1 0.5 is the DCGAN setting), set clip_grad_norm, or try "
    "WGANGP",
    "FlowModel": "the log-determinant overflowed: lower the learning rate, keep ActNorm or batch "
    "norm in the couplings, clip gradients (--trainer.gradient_clip_val 100) or raise "
    "logit_alpha",
    "VAE": "the decoder's scale or the KL term overflowed: lower the learning rate or clip "
    "gradients (--trainer.gradient_clip_val)",
}
DEFAULT_HINT = "lower the learning rate or clip gradients (--trainer.gradient_clip_val)"


def likely_cause(model: pl.LightningModule) -> str:
    for cls in type(model).__mro__:
        if cls.__name__ in HINTS:
            return HINTS[cls.__name__]
    return DEFAULT_HINT


def _non_finite(value) -> bool:
    if isinstance(value, Tensor):
        return value.numel() > 0 and not bool(torch.isfinite(value.detach()).all())
    return isinstance(value, float) and not math.isfinite(value)


def _all_finite(values) -> bool:
    tensors = [v.detach() for v in values if isinstance(v, Tensor) and v.numel() > 0]
    floats = [v for v in values if isinstance(v, float)]
    if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
        return False
    return all(math.isfinite(v) for v in floats)


class DivergenceGuard(pl.Callback):
    """Raise on the first non-finite training loss, naming step, term and likely cause, and
    refuse to write a checkpoint whose weights are no longer finite.

    Args:
        check_every_n_steps: check the losses every N training batches. Each check reads one
            flag back from the device, a synchronization on GPUs; a larger N lets the host run
            ahead and names the first checked step after the divergence (the weights stay NaN,
            so it is still caught). Checkpoints are checked whatever N is.
    """

    def __init__(self, check_every_n_steps: int = 1) -> None:
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}.")
        self.check_every_n_steps = check_every_n_steps

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if batch_idx % self.check_every_n_steps:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        terms = {"loss (returned by training_step)": loss} if loss is not None else {}
        # every step's figures, logged or not (GenerativeModel.log_stage keeps them)
        logged = getattr(pl_module, "last_train_metrics", {})
        terms |= {f"train/{k}": v for k, v in logged.items()}
        if _all_finite(terms.values()):  # one read-back from the device, however many terms
            return
        bad = [name for name, value in terms.items() if _non_finite(value)]
        if bad:
            raise FloatingPointError(
                _diagnosis(trainer, pl_module, f"batch {batch_idx} (global step "
                           f"{trainer.global_step}): {', '.join(bad)} became NaN or infinite")
            )  # fmt: skip

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        """Refuse to save weights that are already NaN: an update can break them while the
        loss that drove it was still finite (the loss shows it only at the next step)."""
        state = checkpoint.get("state_dict", {})
        bad = [k for k, v in state.items() if v.is_floating_point() and _non_finite(v)]
        if bad:
            names = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise FloatingPointError(
                _diagnosis(trainer, pl_module, f"global step {trainer.global_step}: "
                           f"{names} became NaN or infinite in the last update, before any "
                           "loss did; this checkpoint was not saved")
            )  # fmt: skip


def _diagnosis(trainer: pl.Trainer, pl_module: pl.LightningModule, what: str) -> str:
    """One paragraph: where it diverged and in what, the family's likely cause, and the last
    good checkpoint (Lightning saves nothing more, since the run stops with an exception)."""
    checkpoint = getattr(trainer.checkpoint_callback, "last_model_path", "") or "none yet"
    return (
        f"Training diverged at epoch {trainer.current_epoch}, {what}. Likely cause for "
        f"{type(pl_module).__name__}: {likely_cause(pl_module)}. The run stopped before saving "
        f"the diverged weights; the last good checkpoint is {checkpoint}."
    )
