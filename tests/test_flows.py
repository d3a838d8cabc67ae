"""Flows: one parametrized contract test over every layer and model (the zuko shape), then the
likelihood's meaning (it integrates to 1, reaches the entropy, bits/dim by hand), sampling,
the density picture, and a 2-process DDP run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
import yaml
from ddp import assert_identical_parameters, run_ddp_fit
from torch import nn
from torch.autograd.functional import jacobian

from genflow.callbacks.density import DensityGrid, density_figure, density_grid
from genflow.data import Digits, Toy2D
from genflow.metrics.likelihood import bits_per_dim
from genflow.models.flows import NICE, CouplingFlow, RealNVP
from genflow.nn.flows import (
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    DiagonalScaling,
    FactorOut,
    FlowBatchNorm,
    FlowSequential,
    LogitTransform,
    ResBlock,
    Reshape,
    ResNetST,
    Squeeze,
    TanhMLPST,
    Unsqueeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    mlp,
    random_complemented_masks,
)
from genflow.nn.noise import hashed_uniform

ROOT = Path(__file__).resolve().parent.parent
B = 4


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids thread hand-offs that dominate (and stall on a busy
    machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def image_coupling(shape, mask, checkerboard):
    net = ResNetST(shape[0] + int(checkerboard), shape[0], features=8, num_blocks=1)
    return AffineCoupling(shape, mask, net, mask_input=checkerboard)


def small_realnvp(norm="batchnorm", num_scales=2, shape=(1, 4, 4)):
    return RealNVP(data_shape=shape, num_bits=8, num_scales=num_scales, features=8, num_blocks=1,
                   norm=norm)  # fmt: skip


# name -> () -> (flow layer, input sampler, model or None)
CASES = {
    "affine_coupling_fc_tanh_mlp": lambda: (
        AffineCoupling((3,), random_complemented_masks(3, 2)[1], TanhMLPST(3, (8,))),
        lambda: torch.randn(B, 3),
        None,
    ),
    "affine_coupling_raw_s": lambda: (
        AffineCoupling((4,), alternating_mask(4), TanhMLPST(4, (8,)), tanh_scale=False),
        lambda: torch.randn(B, 4),
        None,
    ),
    "affine_coupling_checkerboard_resnet": lambda: (
        image_coupling((2, 4, 4), checkerboard_mask(4, 4, 1), True),
        lambda: torch.randn(B, 2, 4, 4),
        None,
    ),
    "affine_coupling_channel_resnet": lambda: (
        image_coupling((4, 2, 2), channel_mask(4, 1), False),
        lambda: torch.randn(B, 4, 2, 2),
        None,
    ),
    "additive_coupling": lambda: (
        AdditiveCoupling(alternating_mask(5, 1), mlp(5, (8,), 5, nn.ReLU)),
        lambda: torch.randn(B, 5),
        None,
    ),
    "diagonal_scaling": lambda: (DiagonalScaling((5,)), lambda: torch.randn(B, 5), None),
    "squeeze": lambda: (Squeeze(), lambda: torch.randn(B, 2, 4, 4), None),
    "unsqueeze": lambda: (Unsqueeze(), lambda: torch.randn(B, 8, 2, 2), None),
    "reshape": lambda: (Reshape((2, 3), (6,)), lambda: torch.randn(B, 2, 3), None),
    "factor_out": lambda: (
        FactorOut(image_coupling((2, 2, 2), checkerboard_mask(2, 2), True)),
        lambda: torch.randn(B, 4, 2, 2),
        None,
    ),
    "actnorm_vector": lambda: (ActNorm(3), lambda: 2 + 3 * torch.randn(B, 3), None),
    "actnorm_image": lambda: (ActNorm(2), lambda: 1 + torch.randn(B, 2, 3, 3), None),
    "batchnorm_vector": lambda: (FlowBatchNorm(3), lambda: 2 + 3 * torch.randn(B, 3), None),
    "batchnorm_image": lambda: (FlowBatchNorm(2), lambda: 1 + torch.randn(B, 2, 3, 3), None),
    "logit_transform": lambda: (LogitTransform(0.05), lambda: torch.rand(B, 6), None),
    "sequential": lambda: (
        FlowSequential(ActNorm(3), AffineCoupling((3,), alternating_mask(3), TanhMLPST(3, (8,)))),
        lambda: torch.randn(B, 3),
        None,
    ),
}
MODELS = {
    "model_coupling_flow_2d": lambda: CouplingFlow(num_layers=4, hidden_dims=(8,)),
    "model_coupling_flow_tabular_batchnorm": lambda: CouplingFlow(
        data_shape=(5,), num_layers=4, hidden_dims=(8,), norm="batchnorm"
    ),
    "model_coupling_flow_8bit_actnorm": lambda: CouplingFlow(
        data_shape=(1, 2, 2),
        num_bits=8,
        num_layers=2,
        hidden_dims=(8,),
        norm="actnorm",
        logit_alpha=0.05,
    ),
    "model_nice": lambda: NICE(data_shape=(1, 4, 4), num_bits=8, hidden_dims=(8, 8)),
    "model_nice_logit_normal": lambda: NICE(
        data_shape=(1, 4, 4), num_bits=8, hidden_dims=(8,), logit_alpha=0.05, prior="normal"
    ),
    "model_realnvp_batchnorm": lambda: small_realnvp(),
    "model_realnvp_3_scales_actnorm": lambda: small_realnvp("actnorm", 3, (1, 8, 8)),
}


def data_for(model) -> torch.Tensor:
    """A batch as the model's DataModule would yield it (k/255 for 8-bit data)."""
    x = torch.rand(B, *model.data_shape)
    return x if model.num_bits is None else torch.round(255 * x) / 255


def build(name: str):
    """(flow, x, model): models are tested through `bijection`, from dequantized data u."""
    if name in CASES:
        return CASES[name]()
    model = MODELS[name]()
    x = data_for(model)
    return model.bijection, lambda: model.fixed_noise_input(x) if model.num_bits else x, model


def perturb(module: nn.Module, scale: float = 0.2) -> None:
    """Move every parameter off its (often identity) initialization."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))


def warm_up(flow: nn.Module, sample) -> None:
    """Training-mode passes: ActNorm initializes, batch norm gathers running averages."""
    flow.train()
    with torch.no_grad():
        for _ in range(3):
            flow(sample())


def log_det_from_jacobian(flow, x: torch.Tensor) -> torch.Tensor:
    """log|det J| of the map from one example to its output, by autograd, for each example
    (the diagonal blocks of the batch Jacobian; examples do not interact in eval mode)."""
    n, d = len(x), x[0].numel()
    jac = jacobian(lambda v: flow(v)[0].reshape(n, d), x, vectorize=True).reshape(n, d, n, d)
    blocks = jac[torch.arange(n), :, torch.arange(n), :]  # (B, D, D)
    return torch.linalg.slogdet(blocks)[1]


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("name", [*CASES, *MODELS])
def test_every_flow_inverts_has_the_jacobian_log_det_and_trains(name, float64):
    flow, sample, model = build(name)
    perturb(flow)
    warm_up(flow, sample)
    flow.eval()
    x = sample()
    y, log_det = flow(x)
    x_back, inverse_log_det = flow.inverse(y)
    assert log_det.shape == (B,) and inverse_log_det.shape == (B,)
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-10)
    torch.testing.assert_close(inverse_log_det, -log_det, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_det, log_det_from_jacobian(flow, x), rtol=1e-8, atol=1e-8)

    flow.train()
    x = sample().requires_grad_()
    y, log_det = flow(x)
    loss = (0.5 * y.flatten(1).pow(2).sum(1) - log_det).mean()  # a standard normal NLL
    if model is not None:
        log_p = model.log_likelihood(data_for(model))
        assert log_p.shape == (B,) and model.log_prob(data_for(model)).shape == (B,)
        loss = loss - log_p.mean()
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "no gradient reaches the input"
    for pname, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{pname} gets no gradient"


@pytest.mark.parametrize("name", [*CASES, *MODELS])
def test_every_flow_inverts_in_float32(name):
    flow, sample, _ = build(name)
    perturb(flow)
    warm_up(flow, sample)
    flow.eval()
    x = sample()
    with torch.no_grad():
        x_back = flow.inverse(flow(x)[0])[0]
    torch.testing.assert_close(x_back, x, rtol=0, atol=1e-5)


# ---- layers: structure ------------------------------------------------------------------------
def test_masks_are_complementary_halves():
    board = checkerboard_mask(4, 4)
    assert board.sum() == 8 and torch.equal(
        board + checkerboard_mask(4, 4, 1), torch.ones(1, 4, 4)
    )
    assert channel_mask(6).flatten().tolist() == [1, 1, 1, 0, 0, 0]
    masks = random_complemented_masks(7, 6, torch.Generator().manual_seed(0))
    for b, complement in zip(masks[::2], masks[1::2], strict=True):
        assert b.sum() == 3 and torch.equal(b + complement, torch.ones(7))
    assert len({tuple(m.tolist()) for m in masks[::2]}) > 1, "each pair draws its own mask"


def test_squeeze_moves_each_2x2_block_into_channels():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y, _ = Squeeze()(x)
    assert y.shape == (1, 4, 2, 2)
    assert y[0, :, 0, 0].tolist() == [0, 1, 4, 5]  # the top-left 2x2 block
    with pytest.raises(ValueError, match="even height and width"):
        Squeeze()(torch.zeros(1, 1, 3, 4))


def test_factor_out_leaves_the_first_half_untouched():
    inner = FlowSequential(DiagonalScaling((2, 2, 2)))
    perturb(inner)
    x = torch.randn(B, 4, 2, 2)
    y, _ = FactorOut(inner)(x)
    assert torch.equal(y[:, :2], x[:, :2]) and not torch.allclose(y[:, 2:], x[:, 2:])


def test_residual_block_adds_its_input_once():
    block = ResBlock(4)
    with torch.no_grad():
        for conv in (block.conv1, block.conv2):
            conv.parametrizations.weight.original0.zero_()  # weight-norm gain 0: branch is 0
            conv.bias.zero_()
    h = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(block(h), h)


def test_actnorm_starts_at_zero_mean_unit_variance():
    layer = ActNorm(3)
    x = 5 + 2 * torch.randn(256, 3, 4, 4)
    y, _ = layer(x)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std((0, 2, 3)), torch.ones(3), atol=1e-2, rtol=0)
    y2, _ = layer(x)  # initialized once, then an ordinary parameterized layer
    torch.testing.assert_close(y2, y)


def test_fixed_noise_is_uniform_and_belongs_to_the_example():
    levels = torch.randint(0, 256, (512, 1, 8, 8))
    u = hashed_uniform(levels)
    assert 0 <= u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    torch.testing.assert_close(hashed_uniform(levels[7:9]), u[7:9], rtol=0, atol=0)
    assert not torch.equal(u[0], u[1]) and not torch.equal(u[0, 0, 0], u[0, 0, 1])
    assert not torch.equal(hashed_uniform(levels, seed=1), u)


# ---- models: what the likelihood means --------------------------------------------------------
def fit(model, data, steps=300, lr=5e-3, batch=512):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        x = data[torch.randint(len(data), (batch,))]
        loss = -model.log_likelihood(x).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_density_of_a_trained_2d_flow_integrates_to_one():
    data = Toy2D(name="moons", num_train=4000)
    data.setup()
    model = fit(CouplingFlow(num_layers=6, hidden_dims=(32, 32)), data.train_set.x, batch=256)
    extent, bins = 5.0, 400
    density = density_grid(model, extent, bins)
    mass = density.sum().item() * (2 * extent / bins) ** 2
    assert abs(mass - 1) < 0.01, f"integral of exp(log_prob) over [-5, 5]^2 = {mass:.4f}"
    # and it learned the moons: held-out NLL well below the standard normal's 2.84 + spread
    nll = -model.log_prob(data.val_set.x).mean().item()
    assert nll < 1.2, nll


def test_flow_nll_on_gaussian_data_reaches_the_true_entropy():
    cov = torch.tensor([[2.0, 1.2], [1.2, 1.0]])
    true = torch.distributions.MultivariateNormal(torch.tensor([1.0, -1.0]), cov)
    entropy = true.entropy().item()  # log(2 pi e) + 0.5 log det = 2.548 nats
    model = fit(
        CouplingFlow(num_layers=4, hidden_dims=(16,)), true.sample((8192,)), 200, 1e-2, 256
    )
    nll = -model.log_prob(true.sample((8192,))).mean().item()
    assert abs(nll - entropy) / entropy < 0.02, f"test NLL {nll:.4f} vs entropy {entropy:.4f}"


def test_bits_per_dim_against_a_value_worked_by_hand():
    """A 1x2x2 8-bit image with every pixel k = 128 and dequantization noise 0, so u = 0.5.
    An untrained RealNVP without normalization is the identity after the logit transform
    (its s/t heads start at zero), alpha = 0.05:
      logit: p = 0.05 + 0.9 * 0.5 = 0.5, y = 0, log-det per pixel = ln 0.9 - 2 ln 0.5
             = -0.1053605 + 1.3862944 = 1.2809339
      prior: log N(0; 0, 1) = -0.5 ln(2 pi) = -0.9189385 per pixel
      log p(u) per pixel = 0.3619953 nats; log P(x) per pixel = 0.3619953 - 8 ln 2 = -5.1831821
      bits/dim = 5.1831821 / ln 2 = 7.477751."""
    model = RealNVP(data_shape=(1, 2, 2), num_bits=8, num_scales=1, features=4, num_blocks=1,
                    norm="none", logit_alpha=0.05)  # fmt: skip
    x = torch.full((1, 1, 2, 2), 128 / 255)
    log_p = model.log_likelihood(x, noise=torch.zeros_like(x))
    assert log_p.item() == pytest.approx(4 * -5.1831821, abs=1e-5)
    assert bits_per_dim(log_p, 4).item() == pytest.approx(7.477751, abs=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_samples_are_finite_discrete_and_decode_inverts_encode(name):
    model = MODELS[name]()
    perturb(model.bijection, 0.05)
    x = data_for(model)
    warm_up(model.bijection, lambda: model.fixed_noise_input(x) if model.num_bits else x)
    samples = model.sample(64, temperature=1.0)
    assert samples.shape == (64, *model.data_shape) and torch.isfinite(samples).all()
    cold = model.sample(3, temperature=0.0)  # T = 0: every draw is decode(0)
    torch.testing.assert_close(cold, model.decode(torch.zeros(3, *model.latent_shape)))
    if model.num_bits is not None:
        assert 0 <= samples.min() and samples.max() <= 1
        torch.testing.assert_close(samples, torch.round(255 * samples) / 255)  # on the 8-bit grid
        torch.testing.assert_close(model.decode(model.encode(x)), x, rtol=0, atol=0)
    else:
        torch.testing.assert_close(model.decode(model.encode(x)), x)
    assert model.encode(x).shape == (B, *model.latent_shape)


def test_log_prob_is_per_example_and_repeatable():
    model = small_realnvp()
    warm_up(model.bijection, lambda: model.fixed_noise_input(data_for(model)))
    x = data_for(model)
    full = model.log_prob(x)
    assert model.training, "log_prob restores the training mode"
    torch.testing.assert_close(model.log_prob(x[2:3]), full[2:3])
    torch.testing.assert_close(model.log_prob(x), full, rtol=0, atol=0)


def test_non_finite_evaluation_likelihood_is_an_error_not_dropped():
    model = CouplingFlow(num_layers=2, hidden_dims=(8,))
    with torch.no_grad():
        model.bijection.layers[0].layers[1].scale.fill_(float("nan"))
    data = Toy2D(name="moons", num_train=64, num_val=64, num_test=64, batch_size=32)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    with pytest.raises(FloatingPointError, match="val/bpd is not finite"):
        trainer.validate(model, datamodule=data, verbose=False)


def test_clear_errors_for_models_that_do_not_fit_the_data():
    with pytest.raises(ValueError, match="images .C, H, W.*CouplingFlow"):
        RealNVP(data_shape=(2,), num_bits=None, logit_alpha=None)
    with pytest.raises(ValueError, match="divide by 4.*Lower num_scales"):
        RealNVP(data_shape=(1, 6, 6), num_scales=3)
    with pytest.raises(ValueError, match="continuous.*logit_alpha: null"):
        CouplingFlow(data_shape=(2,), num_bits=None, logit_alpha=0.05)
    with pytest.raises(ValueError, match="0 < alpha < 0.5"):
        LogitTransform(0.0)


# ---- the density picture ----------------------------------------------------------------------
def test_density_picture_lands_in_the_run_folder(tmp_path):
    data = Toy2D(name="8gaussians", num_train=512, num_val=256, num_test=64, batch_size=128)
    model = CouplingFlow(num_layers=2, hidden_dims=(8,))
    trainer = pl.Trainer(max_epochs=2, default_root_dir=tmp_path, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=1,
                         callbacks=[DensityGrid(every_n_epochs=2, bins=32)])  # fmt: skip
    trainer.fit(model, datamodule=data)
    assert [p.name for p in (tmp_path / "samples").iterdir()] == ["density-epoch001.png"]
    points = data.val_set.x
    image = density_figure(model, points, bins=32)
    assert image.shape == (3, 32, 2 * 32 + 4) and 0 <= image.min() and image.max() <= 1


# ---- DDP ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_realnvp_ddp_identical_parameters_and_exact_split_bits_per_dim(tmp_path):
    """2 processes: 143 validation digits in batches of 50 split unevenly over the ranks. The
    figure both ranks log must be the 1-process mean over exactly those 143 digits."""
    config = "experiments/flows/realnvp_digits.yaml"
    split = ["--data.init_args.val_size", "143", "--data.init_args.eval_batch_size", "50",
             "--trainer.limit_val_batches", "1.0"]  # fmt: skip
    ranks = run_ddp_fit(tmp_path, config, *split)
    assert_identical_parameters(ranks)
    ddp_bpd = [r["record"]["val/bpd"] for r in ranks]
    assert ddp_bpd[0] == ddp_bpd[1]

    data = Digits(val_size=143)
    data.setup()
    init_args = yaml.safe_load((ROOT / config).read_text())["model"]["init_args"]
    init_args.pop("optimizer", None)
    model = RealNVP(data_shape=data.data_shape, num_bits=8, **init_args)
    model.load_state_dict(ranks[0]["state"])
    x = torch.cat([x for x, _ in data.val_dataloader()])
    assert len(x) == 143
    one_process = bits_per_dim(model.log_prob(x), 64).double().mean().item()
    assert ddp_bpd[0] == pytest.approx(one_process, rel=1e-6), (ddp_bpd[0], one_process)
    assert math.isfinite(one_process)
