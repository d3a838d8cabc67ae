"""pix2pix, CycleGAN and StarGAN: the losses they assemble, their training steps through a real
Trainer on tiny images, translation, kept evaluation inputs and checkpoint state."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import genflow.models.image2image as i2i
from genflow.models import CycleGAN, Pix2Pix, StarGAN
from genflow.models.image2image import linear_decay

SMALL = dict(num_bits=8, num_examples=4)


def images(n: int, shape=(3, 16, 16), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=g).float() / 255


def fit(model: pl.LightningModule, x: torch.Tensor, y: torch.Tensor):
    """One epoch of batches of 4, then validation on the first batch."""
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    trainer = pl.Trainer(
        max_epochs=1, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        accelerator="cpu",
    )  # fmt: skip
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.fit(model, loader, loader)
    return trainer, before


def moved(model: nn.Module, before: dict, prefix: str) -> bool:
    return any(
        not torch.equal(v, before[k])
        for k, v in model.state_dict().items()
        if k.startswith(prefix)
    )


def test_pix2pix_trains_both_networks_and_reports_l1_against_the_trivial_baseline():
    model = Pix2Pix(data_shape=(1, 16, 16), base_channels=8, patch_layers=1, **SMALL)
    x = images(8, (1, 16, 16))
    y = 1 - x  # a paired task: the negative
    trainer, before = fit(model, x, y)
    assert moved(model, before, "generator.") and moved(model, before, "discriminator.")
    metrics = trainer.callback_metrics
    assert {"val/l1", "val/l1_input"} <= set(metrics)
    expected_baseline = (x[:4] - y[:4]).abs().flatten(1).mean(1).mean()
    assert float(metrics["val/l1_input"]) == pytest.approx(float(expected_baseline), rel=1e-5)
    out = model.translate(x[:2])
    assert out.shape == (2, 1, 16, 16) and 0 <= out.min() and out.max() <= 1
    assert model.generator.num_downs == 4  # 16 -> 1


def test_pix2pix_discriminator_sees_the_input_with_the_output():
    model = Pix2Pix(
        data_shape=(1, 16, 16), target_channels=3, base_channels=8, patch_layers=1, **SMALL
    )
    assert model.discriminator.net[0].in_channels == 4  # 1 input + 3 target channels
    assert model.translate(images(2, (1, 16, 16))).shape == (2, 3, 16, 16)


def test_cycle_and_identity_losses_are_zero_for_identity_generators():
    model = CycleGAN(
        data_shape=(3, 16, 16), base_channels=8, num_blocks=1, patch_layers=1, **SMALL
    )
    model.g_ab, model.g_ba = nn.Identity(), nn.Identity()
    a, b = images(4) * 2 - 1, images(4, seed=1) * 2 - 1
    terms, fake_a, fake_b = model.generator_losses(a, b)
    assert torch.equal(terms["cycle"], torch.zeros(4))
    assert torch.equal(terms["identity"], torch.zeros(4))
    assert torch.equal(fake_b, a) and (terms["adv"] > 0).all()


def test_cyclegan_trains_keeps_its_image_pools_in_checkpoints_and_decays_linearly(tmp_path):
    model = CycleGAN(
        data_shape=(3, 16, 16),
        base_channels=8,
        num_blocks=1,
        patch_layers=1,
        pool_size=3,
        **SMALL,
    )
    a, b = images(8), images(8, seed=1)
    trainer, before = fit(model, a, b)
    for net in ("g_ab.", "g_ba.", "d_a.", "d_b."):
        assert moved(model, before, net), net
    assert len(model.pool_a.state_dict()["images"]) == 3  # full after 2 batches of 4
    trainer.save_checkpoint(tmp_path / "c.ckpt")
    checkpoint = torch.load(tmp_path / "c.ckpt", weights_only=True)
    torch.testing.assert_close(
        checkpoint["image_pools"]["b"]["images"], model.pool_b.state_dict()["images"]
    )
    assert {"val/cycle_a", "val/cycle_b", "val/identity"} <= set(trainer.callback_metrics)
    # the paper: 100 epochs at the full rate, then linearly to zero over 100 more
    factors = [linear_decay(e, start=100, length=100) for e in range(200)]
    assert factors[:100] == [1.0] * 100 and factors[99] == 1.0
    assert factors[100] == pytest.approx(1 - 1 / 101) and factors[199] == pytest.approx(1 / 101)
    assert all(
        later < earlier for earlier, later in zip(factors[100:-1], factors[101:], strict=True)
    )


def test_cyclegan_without_an_epoch_limit_keeps_its_learning_rate():
    """A time-limited run (max_epochs -1) has no second half to decay over."""
    model = CycleGAN(
        data_shape=(3, 16, 16), base_channels=8, num_blocks=1, patch_layers=1, **SMALL
    )
    model.trainer = pl.Trainer(max_epochs=-1, max_time={"minutes": 1}, logger=False)
    optimizers = model.configure_optimizers()
    assert isinstance(optimizers, list) and all(
        o.param_groups[0]["lr"] == 2e-4 for o in optimizers
    )


def test_cyclegan_translates_both_ways():
    model = CycleGAN(
        data_shape=(3, 16, 16), base_channels=8, num_blocks=1, patch_layers=1, **SMALL
    ).eval()
    x = images(2)
    to_b, to_a = model.translate(x), model.translate(x, torch.tensor(0))
    expected = model.to_data_space(model.g_ba(model.to_model_space(x)))
    torch.testing.assert_close(to_a, expected)
    assert not torch.equal(to_a, to_b)


def test_stargan_classifies_reals_by_their_labels_and_fakes_by_their_targets(monkeypatch):
    model = StarGAN(data_shape=(3, 16, 16), num_classes=3, base_channels=8, num_blocks=1,
                    critic_layers=2, **SMALL)  # fmt: skip
    calls = []

    def spy(logits, labels):
        calls.append(labels.clone())
        return torch.zeros(len(labels))

    monkeypatch.setattr(i2i, "domain_classification_loss", spy)
    x = images(4) * 2 - 1
    labels, targets = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2])
    model.critic_losses(x, labels, targets)
    model.generator_losses(x, labels, targets)
    assert torch.equal(calls[0], labels) and torch.equal(calls[1], targets)


def test_stargan_identity_term_is_the_l1_to_the_input_in_its_own_domain():
    """Off by default (the paper has none); with a weight, |G(x, c_x) - x| per example joins the
    generator's loss with that weight, and it is zero for a generator that returns its input."""
    shape = dict(data_shape=(3, 16, 16), num_classes=3, base_channels=8, num_blocks=1,
                 critic_layers=2, **SMALL)  # fmt: skip
    x = images(4) * 2 - 1
    labels, targets = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 2, 0, 2])
    assert "identity" not in StarGAN(**shape).generator_losses(x, labels, targets)

    model = StarGAN(**shape, identity_weight=7.0)
    seen = []

    def generator(images, domains):
        seen.append(domains.clone())
        return images.flip(-1)  # a generator that ignores the domain: G(x, c) = mirrored x

    model.generator.forward = generator
    terms = model.generator_losses(x, labels, targets)
    torch.testing.assert_close(terms["identity"], (x.flip(-1) - x).abs().flatten(1).mean(1))
    assert torch.equal(seen[-1], labels)  # the identity term asks for x's own domain
    model.generator.forward = lambda images, domains: images
    assert torch.equal(model.generator_losses(x, labels, targets)["identity"], torch.zeros(4))
    with pytest.raises(ValueError, match="loss weights must be >= 0.*identity_weight=-1.0"):
        StarGAN(**shape, identity_weight=-1.0)


def test_stargan_trains_with_n_critic_and_translates_kept_inputs_to_the_next_domain():
    model = StarGAN(data_shape=(3, 16, 16), num_classes=3, base_channels=8, num_blocks=1,
                    critic_layers=2, n_critic=2, **SMALL)  # fmt: skip
    x, y = images(8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match="kept no evaluation inputs"):
        model.sample(2)
    trainer, before = fit(model, x, y)  # two batches: D, then D and G
    assert model.critic_steps == 2 and model.generator_steps == 1
    assert moved(model, before, "generator.") and moved(model, before, "discriminator.")
    assert {"val/rec", "val/cls_accuracy"} <= set(trainer.callback_metrics)
    assert int(model.examples_kept) == 4
    samples = model.sample(6)  # cycles through the 4 kept inputs
    assert samples.shape == (6, 3, 16, 16)
    torch.testing.assert_close(samples[4], samples[0])
    expected = model.translate(x[:1], torch.tensor([1]))  # label 0 -> domain 1
    torch.testing.assert_close(samples[:1], expected)
    with pytest.raises(ValueError, match="one target domain per sample"):
        model.sample(3, labels=torch.tensor([0, 1]))


def test_image_translators_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="at least 2"):
        StarGAN(data_shape=(3, 16, 16), num_classes=1)
    with pytest.raises(ValueError, match="power of 2"):
        Pix2Pix(data_shape=(1, 24, 24))
    with pytest.raises(ValueError, match="translates images"):
        CycleGAN(data_shape=(2,))
    with pytest.raises(ValueError, match="has no output on 16x16 images.*Lower patch_layers"):
        CycleGAN(data_shape=(3, 16, 16), patch_layers=3)


@pytest.mark.parametrize(("family", "rows"), [("Pix2Pix", 2), ("CycleGAN", 3), ("StarGAN", 3)])
def test_translation_grid_shows_inputs_translations_and_reconstructions(family, rows, tmp_path):
    """Through the CLI with the defaults: the run folder gets a grid of the kept inputs, their
    translations and (CycleGAN, StarGAN) the way back, 8 columns of 16 px images."""
    from families import TRANSLATION_FAMILIES
    from PIL import Image

    from genflow.cli import cli

    config, extra = TRANSLATION_FAMILIES[family]
    run = cli([
        "fit", "--config", f"experiments/{config}", *extra, "--run.root", str(tmp_path),
        "--run.wandb", "disabled", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ])  # fmt: skip
    (png,) = (tmp_path).glob("*/version_0/samples/translations-epoch000.png")
    width, height = Image.open(png).size
    assert (width, height) == (8 * 17 + 1, rows * 17 + 1)  # a 1-pixel border around each image
    first = run.model.translation_rows(8)
    assert len(first) == rows and all(r.shape == (8, *run.model.data_shape) for r in first)
