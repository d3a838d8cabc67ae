"""The adversarial family: objectives, alternation, clipping, penalty, EMA, resume, DDP."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from ddp import assert_identical_parameters, run_ddp_fit
from formats import write_mnist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genflow.data import Toy2D
from genflow.losses import (
    discriminator_loss,
    gradient_penalty,
    minimax_generator_loss,
    non_saturating_generator_loss,
)
from genflow.models import GAN, WGAN, WGANGP, BiGAN, ConditionalGAN
from genflow.models.gan import dcgan_depth
from genflow.nn.blocks import add_spectral_norm, ema_update, upsample_conv

IMAGE = (1, 8, 8)
TINY = dict(data_shape=IMAGE, latent_dim=4, channels=4)
MLP2D = dict(data_shape=(2,), num_bits=None, architecture="mlp", hidden_dims=(8, 8), latent_dim=2)


def image_loader(n: int = 28, batch_size: int = 4, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *IMAGE), generator=g).float() / 255
    return DataLoader(TensorDataset(x, torch.arange(n) % 10), batch_size=batch_size)


def fit(model: pl.LightningModule, loader, **trainer_args) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, **{"max_epochs": 1, **trainer_args},
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=loader)
    return trainer


def adam_steps(optimizer: torch.optim.Optimizer) -> int:
    return int(next(iter(optimizer.state.values()))["step"])


# ---- objectives ---------------------------------------------------------------------------
def test_generator_losses_have_the_stated_gradients():
    """Both push D(G(z)) up (negative gradient in the logit); where D confidently rejects the
    fakes the minimax gradient vanishes (-sigmoid(l)) and the non-saturating one does not
    (-(1 - sigmoid(l)))."""
    logits = torch.tensor([-8.0, -2.0, 0.0, 2.0], dtype=torch.float64, requires_grad=True)
    (g_minimax,) = torch.autograd.grad(minimax_generator_loss(logits).sum(), logits)
    (g_ns,) = torch.autograd.grad(non_saturating_generator_loss(logits).sum(), logits)
    assert (g_minimax < 0).all() and (g_ns < 0).all()
    torch.testing.assert_close(g_minimax, -torch.sigmoid(logits.detach()))
    torch.testing.assert_close(g_ns, -torch.sigmoid(-logits.detach()))
    assert abs(g_minimax[0]) < 1e-3 < 0.99 < abs(g_ns[0])  # saturation at D(G(z)) ~ 0


def test_discriminator_loss_is_binary_cross_entropy():
    real, fake = torch.randn(5), torch.randn(5)
    bce = nn.functional.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones(5), reduction="none") + bce(
        fake, torch.zeros(5), reduction="none"
    )
    torch.testing.assert_close(discriminator_loss(real, fake), expected)


@pytest.mark.parametrize("shape", [(6,), (2, 3, 3)])
def test_gradient_penalty_of_a_linear_critic_is_lambda_norm_minus_one_squared(shape):
    """f(x) = w.x has gradient w everywhere, so the penalty is (||w|| - 1)^2 at any x_hat."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    real, fake = (torch.randn(4, *shape, generator=g, dtype=torch.float64) for _ in range(2))
    eps = torch.rand(4, generator=g, dtype=torch.float64)
    penalty = 10.0 * gradient_penalty(lambda x: (x * w).flatten(1).sum(1), real, fake, eps)
    expected = 10.0 * (w.norm() - 1) ** 2
    torch.testing.assert_close(penalty, expected.expand(4), rtol=1e-12, atol=1e-12)


def test_gradient_penalty_uses_one_interpolation_weight_per_example():
    """The critic sees eps_i * x_i + (1 - eps_i) * fake_i, each example its own weight."""
    seen = []
    real, fake = torch.ones(3, 2), torch.zeros(3, 2)
    eps = torch.tensor([0.0, 0.25, 1.0])
    gradient_penalty(lambda x: seen.append(x.detach()) or x.sum(1), real, fake, eps)
    torch.testing.assert_close(seen[0], eps[:, None].expand(3, 2))


# ---- alternation, clipping, toggling --------------------------------------------------------
def test_generator_steps_once_per_n_critic_critic_steps():
    model = WGANGP(n_critic=3, **MLP2D)
    loader = DataLoader(TensorDataset(torch.randn(28, 2), torch.zeros(28).long()), batch_size=4)
    trainer = fit(model, loader)  # 7 batches: 7 critic steps, generator after batches 3 and 6
    opt_g, opt_d = (o.optimizer for o in model.optimizers())
    assert (adam_steps(opt_d), adam_steps(opt_g)) == (7, 2)
    assert (model.critic_steps, model.generator_steps) == (7, 2)
    assert trainer.global_step == 9  # Lightning counts every optimizer step, not batches


def test_after_a_wgan_step_every_critic_weight_lies_in_the_clip_range():
    model = WGAN(clip_value=0.01, **TINY)
    assert max(p.abs().max() for p in model.discriminator.parameters()) > 0.01
    fit(model, image_loader(), max_steps=1)
    for name, p in model.discriminator.named_parameters():
        assert p.abs().max() <= 0.01, name


class GradientRecorder(GAN):
    """Records both networks' gradients at each optimizer step."""

    def on_before_optimizer_step(self, optimizer) -> None:
        grads = lambda net: [None if p.grad is None else p.grad.clone() for p in net.parameters()]  # noqa: E731
        self.records.append((optimizer, grads(self.generator), grads(self.discriminator)))


def test_toggling_leaves_the_other_networks_gradients_untouched():
    model = GradientRecorder(**TINY)
    model.records = []
    fit(model, image_loader(), max_steps=2)  # one D step, then one G step
    (opt_1, g_after_d, d_after_d), (opt_2, g_after_g, d_after_g) = model.records
    assert opt_1.param_groups[0]["params"][0] is next(model.discriminator.parameters())
    assert all(g is None for g in g_after_d)  # the D step gave G no gradient
    assert all(g is not None for g in d_after_d)
    # the G step neither cleared nor added to D's gradients
    for before, after in zip(d_after_d, d_after_g, strict=True):
        torch.testing.assert_close(before, after, rtol=0, atol=0)
    assert all(g is not None and g.abs().sum() > 0 for g in g_after_g)


def test_gradients_are_clipped_before_each_step():
    model = GradientRecorder(clip_grad_norm=1e-3, **TINY)
    model.records = []
    fit(model, image_loader(), max_steps=4)
    first_d = next(model.discriminator.parameters())
    for optimizer, g_grads, d_grads in model.records:  # the stepping network's own gradients
        grads = d_grads if optimizer.param_groups[0]["params"][0] is first_d else g_grads
        assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) <= 1e-3 + 1e-6


@pytest.mark.parametrize("interval,expected_g,expected_d", [("step", 2, 7), ("epoch", 1, 1)])
def test_schedulers_are_stepped_by_hand(interval, expected_g, expected_d):
    """StepLR(step_size=1, gamma=0.5) halves each lr per own step (or per epoch)."""
    halve = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    model = WGANGP(
        n_critic=3,
        lr_scheduler_g=halve,
        lr_scheduler_d=halve,
        scheduler_interval=interval,
        **MLP2D,
    )
    loader = DataLoader(TensorDataset(torch.randn(28, 2), torch.zeros(28).long()), batch_size=4)
    fit(model, loader)  # 7 batches: 7 critic steps, 2 generator steps, 1 epoch
    opt_g, opt_d = model.optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5**expected_g)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5**expected_d)


def test_ema_update_follows_the_stated_decay():
    average, model = nn.Linear(3, 2), nn.Linear(3, 2)
    old = [p.detach().clone() for p in average.parameters()]
    ema_update(average, model, decay=0.9)
    for a, o, m in zip(average.parameters(), old, model.parameters(), strict=True):
        torch.testing.assert_close(a, 0.9 * o + 0.1 * m)


def test_gan_ema_generator_averages_after_each_generator_step_and_samples_from_it():
    model = GAN(ema_decay=0.5, **TINY)
    start = [p.detach().clone() for p in model.generator.parameters()]
    fit(model, image_loader(), max_steps=2)  # one D step, one G step
    for ema, s, p in zip(
        model.generator_ema.parameters(), start, model.generator.parameters(), strict=True
    ):
        torch.testing.assert_close(ema, 0.5 * s + 0.5 * p.detach())
    model.eval()
    z = torch.randn(3, 4)
    torch.testing.assert_close(model.decode(z), model.to_data_space(model.generator_ema(z)))
    assert "generator_ema.project.0.weight" in model.state_dict()  # saved in checkpoints


# ---- networks -------------------------------------------------------------------------------
@pytest.mark.parametrize("side,depth", [(28, 2), (32, 3), (64, 4), (8, 1)])
@pytest.mark.parametrize("upsample", ["transposed", "nearest", "bilinear"])
def test_dcgan_networks_fit_28_32_64(side, depth, upsample):
    assert dcgan_depth(side, side) == depth
    model = GAN(data_shape=(3, side, side), latent_dim=8, channels=4, upsample=upsample)
    x = model.sample(2)
    assert x.shape == (2, 3, side, side) and 0 <= x.min() and x.max() <= 1
    assert model.critic(model.to_model_space(x)).shape == (2,)
    has_transposed = any(
        isinstance(m, nn.ConvTranspose2d) for m in model.generator.blocks.modules()
    )
    assert has_transposed == (upsample == "transposed")


def test_dcgan_rejects_sizes_it_cannot_halve():
    with pytest.raises(ValueError, match="halve evenly"):
        GAN(data_shape=(1, 30, 30))


def test_interpolation_upsampling_has_no_checkerboard_where_transposed_conv_does():
    """On a constant map, a stride-2 transposed convolution sums a different 2x2 sub-kernel at
    each output parity, so its interior is a period-2 checkerboard for any generic kernel;
    interpolation + 3x3 convolution keeps it constant (Odena et al. 2016)."""
    torch.manual_seed(0)
    x = torch.ones(1, 1, 6, 6)
    for mode in ("transposed", "nearest", "bilinear"):
        interior = upsample_conv(1, 1, mode)(x)[0, 0, 2:-2, 2:-2].detach()  # (8, 8)
        spread = float(interior.max() - interior.min())
        if mode == "transposed":
            assert spread > 1e-3
            torch.testing.assert_close(interior[2:, 2:], interior[:-2, :-2])  # period 2
        else:
            assert spread < 1e-6, mode


def test_spectral_norm_bounds_each_critic_layer_by_one():
    critic = add_spectral_norm(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1)))
    for _ in range(30):  # power iterations run in training mode
        critic(torch.randn(4, 6))
    for layer in (critic[0], critic[2]):
        sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2)
        assert sigma == pytest.approx(1.0, abs=1e-3)


def test_wgangp_refuses_batchnorm_in_the_critic():
    with pytest.raises(ValueError, match="BatchNorm"):
        WGANGP(norm_d="batch", **TINY)


def test_conditional_gan_samples_the_labels_asked_for():
    model = ConditionalGAN(**TINY).eval()
    torch.manual_seed(0)
    a = model.sample(4, labels=torch.tensor([1, 1, 1, 1]))
    torch.manual_seed(0)
    b = model.sample(4, labels=torch.tensor([1, 1, 2, 2]))
    torch.testing.assert_close(a[:2], b[:2])  # same noise, same labels
    assert (a[2:] - b[2:]).abs().max() > 0  # the label changes the image
    with pytest.raises(ValueError, match="class indices"):
        model.sample(2, labels=torch.tensor([0, 10]))
    fit(model, image_loader(), max_steps=2)  # the embedding trains with the generator
    assert model.class_embedding.weight.grad is not None


def test_bigan_encodes_and_reconstructs():
    model = BiGAN(**TINY)
    fit(model, image_loader(), max_steps=4)
    model.eval()
    x = next(iter(image_loader()))[0]
    z = model.encode(x)
    assert z.shape == (4, 4) and model.latent_shape == (4,)
    x_hat = model.decode(z)
    assert x_hat.shape == x.shape and 0 <= x_hat.min() and x_hat.max() <= 1
    assert model.encoder[0].conv[0].weight.grad is not None  # E trains with G


def test_gan_has_no_likelihood_and_no_encoder():
    model = GAN(**TINY)
    with pytest.raises(NotImplementedError, match="sample-based metrics"):
        model.log_prob(torch.zeros(1, *IMAGE))
    with pytest.raises(NotImplementedError, match="no encoder"):
        model.encode(torch.zeros(1, *IMAGE))


def test_bf16_mixed_precision_trains_every_gan():
    for cls in (GAN, WGANGP, BiGAN, ConditionalGAN):
        model = cls(**TINY)
        before = [p.detach().clone() for p in model.generator.parameters()]
        fit(model, image_loader(), precision="bf16-mixed")  # 7 batches
        after = list(model.generator.parameters())
        assert all(torch.isfinite(p).all() for p in after), cls.__name__
        assert any((a - b).abs().max() > 0 for a, b in zip(after, before, strict=True)), (
            cls.__name__
        )


def test_plain_ddp_is_refused_with_the_strategy_to_use():
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False)
    model = GAN(**TINY)
    model.trainer = trainer
    with pytest.raises(ValueError, match="ddp_find_unused_parameters_true"):
        model.setup("fit")


# ---- resume and DDP -----------------------------------------------------------------------
def resume_run(tmp_path: Path, epochs: int, ckpt: Path | None = None) -> tuple[WGANGP, pl.Trainer]:
    pl.seed_everything(0, verbose=False)
    data = Toy2D(name="8gaussians", num_train=56, num_val=16, num_test=8, batch_size=8)
    model = WGANGP(
        ema_decay=0.9, n_critic=5, **MLP2D
    )  # 7 batches an epoch: the phase spans epochs
    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=epochs, logger=False, callbacks=[checkpoint],
        enable_progress_bar=False, enable_model_summary=False, deterministic=True,
    )  # fmt: skip
    trainer.fit(model, datamodule=data, ckpt_path=ckpt)
    return model, trainer


def test_resume_restores_both_optimizers_the_critic_phase_and_ema(tmp_path):
    straight, _ = resume_run(tmp_path / "straight", epochs=3)
    resume_run(tmp_path / "stopped", epochs=1)
    resumed, _ = resume_run(
        tmp_path / "resumed", epochs=3, ckpt=tmp_path / "stopped" / "last.ckpt"
    )
    assert (resumed.critic_steps, resumed.generator_steps) == (21, 4)
    assert (straight.critic_steps, straight.generator_steps) == (21, 4)
    for (key, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)  # generator_ema.* included
    for a, b in zip(straight.optimizers(), resumed.optimizers(), strict=True):
        for sa, sb in zip(a.optimizer.state.values(), b.optimizer.state.values(), strict=True):
            torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"], rtol=0, atol=0)


NOISE_PROBE = """
import pytorch_lightning as pl

class NoiseProbe(pl.Callback):
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            draws = pl_module.noise_draws
            pl_module.ddp_record = {"first_noise": pl_module.training_noise(4)}
            pl_module.noise_draws = draws  # leave the run's stream as it was
"""


@pytest.mark.slow
def test_wgangp_ddp_ranks_end_identical_and_draw_different_noise(tmp_path):
    write_mnist(tmp_path / "data", "MNIST", n_train=60, n_test=10)
    (tmp_path / "noise_probe.py").write_text(NOISE_PROBE)
    ranks = run_ddp_fit(
        tmp_path, "experiments/gan/wgangp_mnist.yaml",
        "--data.init_args.root", str(tmp_path / "data"), "--data.init_args.batch_size", "4",
        "--model.init_args.channels", "8", "--trainer.limit_train_batches", "6",
        "--trainer.strategy", "ddp_find_unused_parameters_true",
        "--trainer.callbacks+=noise_probe.NoiseProbe",
    )  # fmt: skip
    assert_identical_parameters(ranks, batchnorm_stats=False)  # the generator's BatchNorm
    noise = [r["record"]["first_noise"] for r in ranks]
    assert noise[0].shape == (4, 100) and (noise[0] - noise[1]).abs().min() > 0


@pytest.mark.slow
def test_toy_gan_covers_the_eight_gaussians():
    """The acceptance figure of experiments/gan/toy2d.yaml, run through Python (about 2 min)."""
    from genflow.data.toy2d import EIGHT_GAUSSIANS_STD, eight_gaussian_centers
    from genflow.metrics import mode_coverage

    pl.seed_everything(0, verbose=False)
    adam = functools.partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.999))
    model = GAN(data_shape=(2,), num_bits=None, architecture="mlp", hidden_dims=(256,) * 3,
                latent_dim=2, optimizer_g=adam, optimizer_d=adam)  # fmt: skip
    fit(model, Toy2D(name="8gaussians").train_dataloader(), max_epochs=300)
    torch.manual_seed(1)
    coverage = mode_coverage(model.sample(10_000), eight_gaussian_centers(), EIGHT_GAUSSIANS_STD)
    assert coverage.modes_covered >= 7 and coverage.high_quality >= 0.7, coverage
    assert math.isclose(sum(coverage.per_mode), coverage.high_quality, rel_tol=1e-5)


def test_latent_tools_and_interpolation_strips_work_on_gans(tmp_path):
    from genflow.callbacks import Interpolation
    from genflow.latent import decode_path, interpolate

    model = GAN(**TINY)
    fit(
        model,
        image_loader(),
        max_steps=2,
        default_root_dir=tmp_path,
        callbacks=[Interpolation(steps=4)],
    )
    assert (tmp_path / "samples" / "interpolation-epoch000.png").is_file()
    z0, z1 = torch.randn(2, 4)
    model.eval()  # BatchNorm: decode with the running statistics, as decode_path does
    path = decode_path(model, interpolate(z0, z1, 5))  # (5, 1, 8, 8) images of the generator
    assert path.shape == (5, *IMAGE)
    torch.testing.assert_close(path[0], model.decode(z0[None])[0])
    with pytest.warns(UserWarning, match="labels"):  # a conditional GAN needs labels to decode
        fit(ConditionalGAN(**TINY), image_loader(), max_steps=2, default_root_dir=tmp_path / "c",
            callbacks=[Interpolation()])  # fmt: skip
