"""StyleGAN: modulated convolutions, equalized learning rate, styles by layer, truncation, R1,
the moving averages, training, checkpoints and the style figures."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from test_latent import _ImageLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genflow.callbacks.style import StyleMixingGrid, TruncationStrip
from genflow.losses import discriminator_loss, r1_penalty
from genflow.models.gan import GAN
from genflow.models.stylegan import StyleGAN
from genflow.nn.stylegan import (
    EqualLinear,
    StyleDiscriminator,
    StyleGANGenerator,
    StyleGenerator,
    broadcast_ws,
    minibatch_stddev,
    mix_styles,
    modulated_conv2d,
    style_mixing_crossovers,
    truncate,
)

TINY = dict(latent_dim=8, w_dim=8, mapping_layers=2, channels=4, max_channels=8)


def tiny(side: int = 28, channels: int = 1, **kwargs) -> StyleGAN:
    return StyleGAN(data_shape=(channels, side, side), **{**TINY, **kwargs})


def image_loader(side: int = 28, n: int = 24, batch_size: int = 4) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, side, side), generator=g).float() / 255
    return DataLoader(TensorDataset(x, torch.zeros(n, dtype=torch.long)), batch_size=batch_size)


def fit(model: pl.LightningModule, loader, **trainer_args) -> pl.Trainer:
    trainer = pl.Trainer(
        accelerator="cpu", enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, **{"max_epochs": 1, "logger": False, **trainer_args},
    )  # fmt: skip
    trainer.fit(model, train_dataloaders=loader)
    return trainer


# ---- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "side,num_ws,groups",
    [
        (28, 8, {"coarse": (0, 3), "middle": (3, 5), "fine": (5, 8)}),
        (32, 8, {"coarse": (0, 3), "middle": (3, 5), "fine": (5, 8)}),
        (64, 10, {"coarse": (0, 3), "middle": (3, 7), "fine": (7, 10)}),
    ],
)
def test_one_size_argument_builds_28_32_and_64(side, num_ws, groups):
    model = tiny(side, channels=3, size=side)
    assert model.num_ws == num_ws and model.style_groups == groups
    assert model.latent_shape == (8,)  # w's, not z's
    x = model.sample(4)
    assert x.shape == (4, 3, side, side) and 0 <= x.min() and x.max() <= 1
    assert model.critic(model.to_model_space(x)).shape == (4,)
    # coarse styles act on 4-8 px maps, the fine ones on the last block
    sides = model.generator.synthesis.layer_resolutions()
    assert max(sides[slice(*groups["coarse"])]) <= 8 and min(sides[slice(*groups["fine"])]) == side


# ---- modulated convolution and equalized learning rate --------------------------------------
def test_demodulation_gives_unit_output_variance_for_unit_variance_input():
    """Karras et al. 2020, eq. 3: with x_i iid of unit variance, y_j = sum_ik w''_ijk x_ik has
    variance sum_ik w''_ijk^2 = 1 for every output channel j, whatever the weights and styles.
    Checked on the 252x252 interior (zero padding excluded) of 256x256 N(0, 1) inputs, for two
    examples with different styles: each channel's variance within 0.05 of 1 (about 4 standard
    errors: neighbouring outputs share inputs, so the ~63,500 values count as ~7,000); without
    demodulation the variance is far from 1."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 256, 256, generator=g, dtype=torch.float64)
    weight = torch.randn(8, 16, 3, 3, generator=g, dtype=torch.float64) * 3
    styles = torch.rand(2, 16, generator=g, dtype=torch.float64) * 4 + 0.1
    y = modulated_conv2d(x, weight, styles)[:, :, 2:-2, 2:-2]  # (2, 8, 252, 252)
    variance = y.var(dim=(2, 3))  # (2, 8), one per example and channel
    torch.testing.assert_close(variance, torch.ones_like(variance), rtol=0, atol=0.05)
    plain = modulated_conv2d(x, weight, styles, demodulate=False)[:, :, 2:-2, 2:-2]
    assert plain.var(dim=(2, 3)).min() > 10


def test_modulated_conv_equals_a_plain_conv_with_each_examples_own_weights():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64)
    weight = torch.randn(6, 4, 3, 3, generator=g, dtype=torch.float64)
    styles = torch.randn(3, 4, generator=g, dtype=torch.float64)
    y = modulated_conv2d(x, weight, styles)
    for b in range(3):
        w = weight * styles[b][None, :, None, None]
        w = w / w.square().sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        expected = nn.functional.conv2d(x[b : b + 1], w, padding=1)
        torch.testing.assert_close(y[b : b + 1], expected)


def test_equalized_lr_starts_at_he_scale_and_scales_adams_steps_by_the_multiplier():
    """The weight in use starts at std 1/sqrt(fan_in) for any multiplier; one Adam step (size
    lr on the stored weight) moves it by lr * multiplier / sqrt(fan_in)."""
    changes = {}
    for multiplier in (1.0, 0.01):
        torch.manual_seed(0)
        layer = EqualLinear(256, 256, lr_multiplier=multiplier).double()
        used = layer.weight.detach() * layer.weight_gain
        assert used.std().item() == pytest.approx(1 / 16, rel=0.02)
        optimizer = torch.optim.Adam(layer.parameters(), lr=0.002)
        layer(torch.randn(4, 256, dtype=torch.float64)).square().sum().backward()
        optimizer.step()
        changes[multiplier] = (layer.weight.detach() * layer.weight_gain - used).abs().max()
        assert changes[multiplier].item() == pytest.approx(0.002 * multiplier / 16, rel=1e-6)
    model = tiny()
    mapping_layers = [m for m in model.generator.mapping.modules() if isinstance(m, EqualLinear)]
    assert [m.lr_multiplier for m in mapping_layers] == [0.01, 0.01]


def test_minibatch_stddev_appends_the_groups_feature_deviation():
    x = torch.randn(8, 3, 4, 4, dtype=torch.float64)
    y = minibatch_stddev(x, group_size=4)
    assert y.shape == (8, 4, 4, 4)
    torch.testing.assert_close(y[:, :3], x)
    # examples j, j + 2, j + 4, j + 6 form group j (j = 0, 1)
    for j in range(2):
        members = x[j::2]  # (4, 3, 4, 4)
        expected = (members.var(0, unbiased=False) + 1e-8).sqrt().mean()
        torch.testing.assert_close(y[j::2, 3], expected.expand(4, 4, 4))


def test_evaluation_scores_do_not_depend_on_the_rest_of_the_batch():
    """Training appends each group's deviation and tracks its running mean; evaluation appends
    that running mean, so an image's score is the same alone or in any batch (validation
    figures then agree across batch sizes and DDP ranks)."""
    d = StyleDiscriminator(32, img_channels=1, channels=4, max_channels=8)
    x = torch.randn(8, 1, 32, 32)
    d.train()
    d(x)
    group_mean = minibatch_stddev(d.blocks(d.from_rgb(x)), 4)[:, -1, 0, 0].mean()
    torch.testing.assert_close(d.stddev.running_stddev, 0.1 * group_mean[None])
    d.eval()
    with torch.no_grad():
        alone = torch.cat([d(x[i : i + 1]) for i in range(8)])
        torch.testing.assert_close(d(x), alone)
        torch.testing.assert_close(d(x[[3, 1, 7]]), alone[[3, 1, 7]])


# ---- styles, truncation, mixing, noise --------------------------------------------------------
def test_psi_zero_gives_the_image_of_the_mean_w_for_every_z():
    model = tiny(32, channels=3).eval()
    model.w_avg.copy_(torch.randn(8))  # a tracked mean away from zero
    images = model.sample(5, psi=0.0, noise_mode="const")
    expected = model.decode(model.w_avg[None])  # the image of w_avg at every layer
    torch.testing.assert_close(images, expected.expand(5, -1, -1, -1))
    assert (model.sample(2, noise_mode="const").diff(dim=0).abs().max()) > 1e-3  # psi = 1 varies


def test_interpolation_codes_are_mapped_w_not_normal_draws():
    """The Interpolation callback's random codes are w = f(z), as the generator sees them, and
    a seeded generator repeats them."""
    from genflow.latent import random_codes

    model = tiny(32).eval()
    codes = random_codes(model, 4, temperature=0.5, generator=torch.Generator().manual_seed(3))
    z = 0.5 * torch.randn(4, TINY["latent_dim"], generator=torch.Generator().manual_seed(3))
    assert codes.shape == (4, *model.latent_shape)
    torch.testing.assert_close(codes, model.to_w(z))


def test_truncation_and_mixing_are_the_stated_formulas():
    w, w_avg = torch.randn(2, 10, 4), torch.randn(4)
    torch.testing.assert_close(truncate(w, w_avg, 0.7), w_avg + 0.7 * (w - w_avg))
    assert truncate(w, w_avg, 1.0) is w
    a, b = torch.zeros(2, 6, 3), torch.ones(2, 6, 3)
    from_b = mix_styles(a, b, 2, 4)[..., 0]  # (2, 6): layers 2, 3 from b
    assert from_b.tolist() == [[0, 0, 1, 1, 0, 0]] * 2
    per_example = mix_styles(a, b, torch.tensor([1, 6]))[..., 0]
    assert per_example.tolist() == [[0, 1, 1, 1, 1, 1], [0] * 6]


def test_style_mixing_regularization_mixes_nine_in_ten_fakes_at_a_uniform_crossover():
    g = torch.Generator().manual_seed(0)
    crossover = style_mixing_crossovers(20_000, 8, 0.9, g)
    mixed = crossover < 8
    assert mixed.float().mean().item() == pytest.approx(0.9, abs=0.01)  # 4.7 standard errors
    counts = torch.bincount(crossover[mixed], minlength=8)[1:]  # crossovers 1..7, uniform
    assert counts.min() > 0.9 * counts.float().mean() and crossover.min() >= 1


def _low_frequency_energy(images: torch.Tensor, cutoff: int) -> float:
    """Energy of the spatial frequencies up to `cutoff` cycles per image side on both axes,
    without the mean of each channel (the global colour, which the paper assigns to the fine
    styles), summed over the batch and channels."""
    spectrum = torch.fft.fft2(images.double()).abs().square()  # (B, C, H, W)
    fy, fx = (torch.fft.fftfreq(n, 1 / n).abs() for n in images.shape[-2:])
    low = (fy[:, None] <= cutoff) & (fx[None, :] <= cutoff)
    low[0, 0] = False
    return float(spectrum[..., low].sum())


@pytest.mark.parametrize("side", [32, 64])
def test_coarse_styles_move_low_frequencies_far_more_than_fine_styles_and_noise(side):
    """The split: frequencies up to side / 8 cycles per image on each axis (what the 8x8 maps
    of the coarse layers can hold), the per-channel mean excluded. Taking the coarse styles
    (4-8 px) of 32 codes from 32 others changes that band's energy at least 2.5 times as much
    as taking the fine ones (the last block), pooled over four randomly initialized generators
    (measured 3.6 at 32 px, 3.3 at 64 px; single networks range 1.6-12). With every layer's
    noise scale set to 0.1 (a tenth of the unit feature scale), drawing new noise changes the
    band by less than 0.3 of the image's own energy there (measured 0.09-0.19) and less than 0.3
    of the coarse change (0.08-0.25). At initialization this separation comes from the
    architecture alone: coarse styles shape the maps every later layer and toRGB builds on, the
    fine ones only the last block; training sharpens it (Karras et al. 2019, figs. 3 and 5)."""
    cutoff, coarse, fine, noise, image = side // 8, 0.0, 0.0, 0.0, 0.0
    for seed in range(4):
        torch.manual_seed(seed)
        net = StyleGANGenerator(side, 3, z_dim=16, w_dim=16, channels=8, max_channels=64)
        for layer in net.synthesis.layers:
            layer.noise.strength.data.fill_(0.1)
        groups = net.synthesis.style_groups()
        with torch.no_grad():
            a, b = (broadcast_ws(net.mapping(torch.randn(32, 16)), net.num_ws) for _ in "ab")
            base = net.synthesis(a, "const")
            coarse += _low_frequency_energy(
                net.synthesis(mix_styles(a, b, *groups["coarse"]), "const") - base, cutoff
            )
            fine += _low_frequency_energy(
                net.synthesis(mix_styles(a, b, *groups["fine"]), "const") - base, cutoff
            )
            redrawn = net.synthesis(a, "random", torch.Generator().manual_seed(seed))
            noise += _low_frequency_energy(redrawn - base, cutoff)
            image += _low_frequency_energy(base, cutoff)
    assert coarse > 2.5 * fine
    assert noise < 0.3 * image and noise < 0.3 * coarse


def test_noise_modes_fixed_fresh_given_and_off():
    net = StyleGenerator(32, 3, w_dim=8, channels=4, max_channels=8)
    for layer in net.layers:
        layer.noise.strength.data.fill_(0.5)
    ws = broadcast_ws(torch.randn(2, 8), net.num_ws)
    with torch.no_grad():
        torch.testing.assert_close(net(ws, "const"), net(ws, "const"))
        assert (net(ws, "random") - net(ws, "random")).abs().max() > 1e-3
        given = [layer.noise.noise_const for layer in net.layers]
        torch.testing.assert_close(net(ws, given), net(ws, "const"))
        assert (net(ws, "none") - net(ws, "const")).abs().max() > 1e-3
        for layer in net.layers:
            layer.noise.strength.data.zero_()  # the initial scale: noise has no effect yet
        torch.testing.assert_close(net(ws, "random"), net(ws, "none"))


def test_mix_takes_the_chosen_layers_from_the_second_code():
    model = tiny(32, channels=3).eval()
    z_a, z_b = torch.randn(2, 8), torch.randn(2, 8)
    torch.testing.assert_close(model.mix(z_a, z_b, model.num_ws), model.images_of(z_a))
    torch.testing.assert_close(model.mix(z_a, z_b, 0), model.images_of(z_b))
    ws = mix_styles(*(broadcast_ws(model.to_w(z), 8) for z in (z_a, z_b)), 3, 5)
    torch.testing.assert_close(model.mix(z_a, z_b, 3, 5), model.decode(ws))


# ---- R1 and the lazy schedule -----------------------------------------------------------------
def test_r1_of_a_linear_discriminator_is_its_squared_weight_norm():
    """D(x) = <a, x> + c has grad_x D = a everywhere, so R1 = ||a||^2 for every example."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    x = torch.randn(5, 2, 3, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    logits = (x * a).flatten(1).sum(1) + 0.3
    torch.testing.assert_close(r1_penalty(logits, x), a.square().sum().expand(5))
    # a quadratic D(x) = ||x||^2 / 2 has gradient x: R1 = ||x||^2, and the penalty is trainable
    logits = x.square().flatten(1).sum(1) / 2
    r1 = r1_penalty(logits, x)
    torch.testing.assert_close(r1, x.detach().square().flatten(1).sum(1))
    assert r1.requires_grad


class LinearCritic(nn.Module):
    def __init__(self, shape) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.randn(shape))

    def forward(self, x):
        return (x * self.a).flatten(1).sum(1)


def test_lazy_r1_is_added_every_interval_steps_weighted_by_the_interval():
    model = tiny(r1_gamma=3.0, r1_interval=4)
    model.discriminator = LinearCritic((1, 28, 28))
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    losses = {}
    for step in (0, 1, 4):
        model.critic_steps, model.noise_draws = step, 0  # same fakes each time
        losses[step] = model.critic_loss(x, torch.zeros(4))
    expected = 3.0 / 2 * 4 * model.discriminator.a.detach().square().sum()
    torch.testing.assert_close(losses[0] - losses[1], expected.expand(4))
    torch.testing.assert_close(losses[4], losses[0])
    model.noise_draws = 0
    fake, _ = model.training_fakes(4)
    torch.testing.assert_close(
        losses[1], discriminator_loss(model.critic(x), model.critic(fake)).detach()
    )


def test_r1_reaches_the_discriminator_through_a_double_backward():
    d = StyleDiscriminator(28, 1, channels=4, max_channels=8)
    x = torch.randn(4, 1, 28, 28).requires_grad_(True)
    r1_penalty(d(x), x).mean().backward()
    # every weight trains; biases after the last nonlinear step (minibatch stddev) cannot:
    # grad_x D of a piecewise-linear map does not change with them
    weights = {n: p for n, p in d.named_parameters() if n.endswith("weight")}
    assert len(weights) == 13  # fromRGB, 3 blocks of 3, conv, fc, out
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights.values())


# ---- moving averages and training -------------------------------------------------------------
def test_tracked_mean_w_follows_its_decay():
    model = tiny(w_avg_beta=0.9)
    old = torch.randn(8)
    model.w_avg.copy_(old)
    w = torch.randn(6, 8)
    model.track_w_avg(w)
    torch.testing.assert_close(model.w_avg, 0.9 * old + 0.1 * w.mean(0))


def test_ema_generator_follows_its_decay_and_sample_uses_it():
    model = tiny(ema_decay=0.5, r1_interval=1)
    start = [p.detach().clone() for p in model.generator.parameters()]
    fit(model, image_loader(), max_steps=2)  # one critic step, one generator step
    for ema, s, p in zip(
        model.generator_ema.parameters(), start, model.generator.parameters(), strict=True
    ):
        torch.testing.assert_close(ema, 0.5 * s + 0.5 * p.detach())
    model.eval()
    z = torch.randn(3, 8)
    ema_images = model.to_data_space(
        model.generator_ema.synthesis(broadcast_ws(model.generator_ema.mapping(z), 8), "const")
    )
    torch.testing.assert_close(model.images_of(z), ema_images)
    raw = model.to_data_space(model.generate(z, noise_mode="const"))  # the trained weights
    assert (model.images_of(z) - raw).abs().max() > 0


def test_a_short_fit_moves_both_networks_the_mean_w_and_logs_r1():
    model = tiny(r1_interval=2)
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    trainer = fit(model, image_loader(), log_every_n_steps=1)  # 6 batches
    assert (model.critic_steps, model.generator_steps) == (6, 6)
    moved = lambda net, before: [  # noqa: E731
        (p.detach() - b).abs().max() > 0 for p, b in zip(net.parameters(), before, strict=True)
    ]
    assert all(moved(model.generator, g0))  # mapping, styles, weights and the noise scales
    assert all(moved(model.discriminator, d0))
    assert model.w_avg.abs().max() > 0  # started at zero
    assert {"train/loss_d", "train/loss_g", "train/r1"} <= set(trainer.callback_metrics)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bf16_mixed_precision_trains_with_r1():
    model = tiny(r1_interval=1)
    before = [p.detach().clone() for p in model.parameters()]
    fit(model, image_loader(n=8), precision="bf16-mixed")
    after = list(model.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert all((a - b).abs().max() > 0 for a, b in zip(after, before, strict=True))


def test_checkpoint_round_trip_keeps_the_mean_w_and_the_arguments(tmp_path):
    model = tiny(r1_gamma=2.0)
    trainer = fit(model, image_loader(n=8), max_steps=4)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = StyleGAN.load_from_checkpoint(path)
    assert loaded.w_avg.abs().max() > 0
    torch.testing.assert_close(loaded.w_avg, model.w_avg, rtol=0, atol=0)
    assert loaded.r1_gamma == 2.0 and "architecture" not in loaded.hparams
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    z = torch.randn(2, 8)
    torch.testing.assert_close(loaded.eval().images_of(z), model.eval().images_of(z))


def test_default_optimizers_are_the_papers_adam():
    model = tiny()
    opt_g, opt_d = model.configure_optimizers()[0]
    for opt in (opt_g, opt_d):
        assert opt.defaults["lr"] == 0.002 and opt.defaults["betas"] == (0.0, 0.99)


# ---- figures ----------------------------------------------------------------------------------
def test_style_figures_are_written_with_the_stated_layout(tmp_path):
    model = tiny(32, channels=3)
    loader = DataLoader(
        TensorDataset(torch.rand(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)), batch_size=4
    )
    callbacks = [StyleMixingGrid(num_a=2, num_b=3), TruncationStrip(num_rows=2, psis=(1, 0, -1))]
    logger = _ImageLogger()  # a logger with W&B's image API
    fit(model, loader, max_steps=2, default_root_dir=tmp_path, callbacks=callbacks, logger=logger)
    sent = {key: image for key, image, _ in logger.images}
    assert set(sent) == {"samples/style_mixing", "samples/truncation"}
    mixing = Image.open(tmp_path / "samples" / "style_mixing-epoch000.png")
    # 1 + 3 groups * 2 rows, 1 + 3 columns of 32 px images with 1 px padding
    assert mixing.size == (4 * 33 + 1, 7 * 33 + 1)
    strip = Image.open(tmp_path / "samples" / "truncation-epoch000.png")
    assert strip.size == (3 * 33 + 1, 2 * 33 + 1)
    images, nrow = callbacks[1].make(model.eval())
    assert nrow == 3
    torch.testing.assert_close(images[1], images[4])  # psi = 0: the mean w's image in each row
    grid, nrow = callbacks[0].make(model)
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))  # the callback's codes
    z_a, z_b = z[:2], z[2:]
    assert nrow == 4 and grid.shape == (28, 3, 32, 32)
    torch.testing.assert_close(grid[1:4], model.images_of(z_b))  # top row: sources B
    torch.testing.assert_close(grid[4], model.images_of(z_a[:1])[0])  # a row starts with A
    start, stop = model.style_groups["coarse"]
    torch.testing.assert_close(grid[5:8], model.mix(z_a[:1].expand(3, -1), z_b, start, stop))


def test_style_figures_skip_models_without_style_controls(tmp_path):
    model = GAN(data_shape=(1, 8, 8), latent_dim=4, channels=4)
    loader = DataLoader(
        TensorDataset(torch.rand(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)), batch_size=4
    )
    fit(model, loader, max_steps=2, default_root_dir=tmp_path,
        callbacks=[StyleMixingGrid(), TruncationStrip()])  # fmt: skip
    assert not (tmp_path / "samples").exists()


# ---- bad arguments ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(data_shape=(1, 30, 30)), "side 28, 32, 64"),
        (dict(data_shape=(1, 28, 32)), "square images"),
        (dict(data_shape=(2,)), "square images"),
        (dict(data_shape=(1, 28, 28), size=32), "does not match"),
        (dict(r1_interval=0), "r1_interval"),
        (dict(r1_gamma=-1.0), "r1_gamma"),
        (dict(style_mixing_prob=1.5), "style_mixing_prob"),
        (dict(w_avg_beta=1.0), "w_avg_beta"),
        (dict(ema_decay=1.5), "ema_decay"),
    ],
)
def test_bad_arguments_give_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StyleGAN(**{**TINY, **kwargs})


def test_bad_calls_give_clear_errors():
    model = tiny()
    with pytest.raises(ValueError, match="crossover"):
        model.mix(torch.randn(1, 8), torch.randn(1, 8), 9)
    with pytest.raises(ValueError, match="broadcast_ws"):
        model.generator.synthesis(torch.randn(2, 8))
    with pytest.raises(ValueError, match="noise mode"):
        model.generate(torch.randn(2, 8), noise_mode="fixed")
    with pytest.raises(ValueError, match="28, 32 or 64"):
        StyleGenerator(48)
    with pytest.raises(ValueError, match="num_a"):
        StyleMixingGrid(num_a=0)
    assert math.isfinite(float(model.sample(1).sum()))
