"""Resume is exact: N steps, stop, resume from last.ckpt to 2N equals an uninterrupted 2N-step
run bit for bit, for every model class, through the real `genflow fit` CLI on CPU, both when the
stop falls at an epoch's end and inside an epoch.

Compared: the weights and buffers (EMA weights and the EM state are among them), every
optimizer's state (GANs have two), the LR schedulers, the GAN alternation and noise counters,
the EM log-likelihood history, an autoencoder's partial latent sums, the RNG states, the
training loader's place in its epoch, and the step and epoch counters.

Mid-epoch, Lightning continues from a checkpoint only with data loaders that have a
`state_dict`: genflow's training loader (`ResumableDataLoader`) saves the epoch's shuffle seed and
how many batches it handed out, and a resumed epoch serves exactly the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from families import ALL_FAMILIES as FAMILIES
from test_cli import QUIET, data_overrides

from genflow.cli import cli

ROOT = Path(__file__).resolve().parent.parent
STEPS_PER_EPOCH = 3
FIT = [
    "--trainer.limit_train_batches", str(STEPS_PER_EPOCH), "--trainer.limit_val_batches", "1",
    "--trainer.deterministic", "true",
    "--trainer.callbacks", "[]", "--trainer.callbacks+=ModelCheckpoint",
    "--trainer.callbacks.save_last=true", "--run.wandb", "disabled", *QUIET,
]  # fmt: skip


def fit(tmp_path: Path, family: str, version: str, epochs: int, *extra: str):
    """`genflow fit` of a family's config into runs/<family>/<version>/; returns the CLI."""
    config, family_args = FAMILIES[family]
    path = ROOT / "experiments" / config
    args = ["fit", "--config", str(path), "--run.root", str(tmp_path / "runs")]
    args += ["--run.name", family, "--run.version", version]
    args += [*FIT, "--trainer.max_epochs", str(epochs)]
    return cli([*args, *data_overrides(path, tmp_path), *family_args, *extra])


def assert_same(a, b, where: str = "checkpoint") -> None:
    """Nested checkpoint content is equal, tensors bit for bit (dtype and shape included)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs after resume"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def load(run) -> dict:
    path = Path(run.trainer.default_root_dir) / "checkpoints" / "last.ckpt"
    return torch.load(path, map_location="cpu", weights_only=True)


# Everything a resumed run must reproduce (`callbacks` holds the checkpoint's own path).
COMPARED = (
    "loops",
    "state_dict",
    "optimizer_states",
    "lr_schedulers",
    "gan_counters",
    "em_state",
    "latent_stats",
    "rng_states",
    "epoch",
    "global_step",
)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_resume_equals_an_uninterrupted_run(family, tmp_path):
    whole = fit(tmp_path, family, "whole", 2)
    fit(tmp_path, family, "resumed", 1)
    last = tmp_path / "runs" / family / "resumed" / "checkpoints" / "last.ckpt"
    stopped = torch.load(last, map_location="cpu", weights_only=True)
    resumed = fit(tmp_path, family, "resumed", 2, "--ckpt_path", str(last))

    expected, got = load(whole), load(resumed)
    assert expected["epoch"] == got["epoch"] >= 1  # both stopped after the second epoch
    for key in COMPARED:
        assert (key in expected) == (key in got), key
        if key in expected:
            assert_same(expected[key], got[key], key)
    # the live modules too, not only what the checkpoints hold
    assert_same(whole.model.state_dict(), resumed.model.state_dict(), "model")

    model = whole.model
    if hasattr(model, "n_critic"):  # both optimizers stepped, the alternation counted
        assert len(expected["optimizer_states"]) == 2
        assert all(opt["state"] for opt in expected["optimizer_states"])
        counters = expected["gan_counters"]
        assert counters["critic_steps"] == 2 * STEPS_PER_EPOCH
        assert counters["generator_steps"] == 2 * STEPS_PER_EPOCH // model.n_critic
        if model.n_critic > 1:  # the stop fell inside an n_critic cycle
            assert stopped["gan_counters"]["critic_steps"] % model.n_critic != 0
        if getattr(model, "ema_decay", None) is not None:
            assert any(key.startswith("generator_ema.") for key in expected["state_dict"])
    if hasattr(model, "log_likelihoods"):  # EM: every EM epoch's likelihood, in order
        em_epochs = 2 if family == "GMM" else 1  # PPCA's first epoch only sets its EM start
        assert len(expected["em_state"]["log_likelihoods"]) == em_epochs
        assert resumed.model.log_likelihoods == model.log_likelihoods
        assert bool(model.initialized)
    else:
        assert all(opt["state"] for opt in expected["optimizer_states"])


STEP_FAMILIES = [f for f in FAMILIES if f not in ("GMM", "PPCA")]  # EM fits whole epochs


@pytest.mark.parametrize("family", STEP_FAMILIES)
def test_resume_mid_epoch_equals_an_uninterrupted_run(family, tmp_path):
    """Stop after 2 optimizer steps, inside the first 3-batch epoch, and resume to 4: the
    training loader restarts the epoch's shuffle at the next batch (its state is in the
    checkpoint), so weights, optimizers, counters and random streams equal a run to 4."""
    whole = fit(tmp_path, family, "whole", 5, "--trainer.max_steps", "4")
    fit(tmp_path, family, "resumed", 5, "--trainer.max_steps", "2")
    last = tmp_path / "runs" / family / "resumed" / "checkpoints" / "last.ckpt"
    stopped = torch.load(last, map_location="cpu", weights_only=True)
    loader = stopped["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert 0 < loader["batches"] < STEPS_PER_EPOCH and stopped["epoch"] == 0  # mid-epoch
    resumed = fit(tmp_path, family, "resumed", 5, "--trainer.max_steps", "4", "--ckpt_path",
                  str(last))  # fmt: skip

    expected, got = load(whole), load(resumed)
    assert expected["global_step"] == got["global_step"] == 4
    # Lightning's own tally of processed epochs counts the interrupted epoch at the stop and
    # again when it ends; the epoch number and every batch and optimizer counter agree.
    for checkpoint in (expected, got):
        del checkpoint["loops"]["fit_loop"]["epoch_progress"]
    for key in COMPARED:
        assert (key in expected) == (key in got), key
        if key in expected:
            assert_same(expected[key], got[key], key)
    assert_same(whole.model.state_dict(), resumed.model.state_dict(), "model")
