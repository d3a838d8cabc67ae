"""MultiscalePixelCNN: exact normalization over every tiny image, causality in the multiscale
order (base raster, then groups 1-3 per scale, colours in turn), samples that follow
exp(log_prob), O(scales) network passes per sample() call, a real Trainer fit, clear errors."""

from __future__ import annotations

import itertools
import math

import pytest
import pytorch_lightning as pl
import torch

from genflow.data import Digits
from genflow.models.multiscale_ar import (
    GroupNet,
    MultiscalePixelCNN,
    default_base_size,
    depth_to_space,
    num_scales,
    space_to_depth,
)

TINY = dict(hidden_channels=6, num_blocks=1, base_layers=2, head_channels=6)


def tiny(shape=(1, 8, 8), num_bits=1, base_size=None, spread=0.5, **kwargs):
    """A small model with weights drawn wide (std `spread`), so its conditionals are far from
    uniform and every term of the factorization matters."""
    model = MultiscalePixelCNN(
        data_shape=shape, num_bits=num_bits, num_classes=3, base_size=base_size, **(TINY | kwargs)
    )
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=spread)
    return model.eval()


def all_images(shape, num_bits=1) -> torch.Tensor:
    """Every image of the given shape on the 2^b-level grid, (levels^D, *shape), in the order
    of `image_index`."""
    levels = 2**num_bits
    grid = torch.tensor(list(itertools.product(range(levels), repeat=math.prod(shape))))
    return grid.float().view(-1, *shape) / (levels - 1)


def image_index(x: torch.Tensor, num_bits=1) -> torch.Tensor:
    """The row of each image (B, ...) in `all_images`."""
    levels = 2**num_bits
    k = (x.flatten(1) * (levels - 1)).round().long()
    D = k.shape[1]
    return (k * levels ** torch.arange(D - 1, -1, -1)).sum(1)


def generation_step(shape, scales) -> torch.Tensor:
    """(C, H, W): the step at which each sub-pixel is drawn. Base sub-pixels one at a time in
    raster order (colours in turn); then per scale s = 1..S, groups g = 1, 2, 3 (g = 2 di + dj,
    the place in the 2x2 block), each colour of a group one step for all its pixels."""
    C, H, W = shape
    step = torch.full(shape, -1, dtype=torch.long)
    stride = 2**scales
    h, w = H // stride, W // stride
    base = torch.arange(h * w * C).view(h, w, C).permute(2, 0, 1)
    step[:, ::stride, ::stride] = base
    t = h * w * C
    for s in range(1, scales + 1):
        d = 2 ** (scales - s)
        for g in range(1, 4):
            di, dj = divmod(g, 2)
            for c in range(C):
                step[c, di * d :: 2 * d, dj * d :: 2 * d] = t
                t += 1
    assert (step >= 0).all()
    return step


def input_grad(model, x, c, i, j) -> torch.Tensor:
    """|d logits(c, i, j) / d x| summed over a batch, (C, H, W), in the network's input space."""
    x = x.clone().requires_grad_(True)
    params = model.net(x)[:, :, i, j]  # (B, P)
    K = params.shape[1] // model.data_shape[0]
    logits = params[:, c * K : (c + 1) * K]
    (logits * torch.randn_like(logits)).sum().backward()
    return x.grad.abs().sum(0)


# ---- layout and sizes ---------------------------------------------------------------------------
def test_space_to_depth_places_group_g_at_block_offset_and_inverts():
    x = torch.randn(2, 3, 6, 8)
    blocks = space_to_depth(x)  # (2, 3, 4, 3, 4)
    for g in range(4):
        di, dj = divmod(g, 2)
        assert torch.equal(blocks[:, :, g], x[..., di::2, dj::2])
    assert torch.equal(depth_to_space(blocks), x)


def test_scales_halve_exactly_with_the_documented_defaults():
    assert [default_base_size(s, s) for s in (28, 32, 16, 8, 7)] == [7, 8, 4, 4, 7]
    assert num_scales(28, 28, 7) == 2 and num_scales(32, 32, 4) == 3 and num_scales(5, 5, 5) == 0
    assert num_scales(24, 20, 6) == 2  # width 20 = 5 * 2^2
    model = MultiscalePixelCNN(data_shape=(1, 28, 28), num_bits=1, **TINY)
    assert model.scales == 2 and model.base_shape == (1, 7, 7)
    assert len(model.net.groups) == 2 and all(len(nets) == 3 for nets in model.net.groups)


# ---- exact likelihood ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,num_bits,base_size",
    [((1, 4, 4), 1, 1), ((1, 4, 4), 1, 2), ((1, 2, 2), 2, 1), ((3, 2, 2), 1, 1),
     ((1, 3, 3), 1, 3)],
    ids=["4x4-two-scales", "4x4-one-scale", "2x2-2bit", "rgb-2x2", "no-scales"],
)  # fmt: skip
def test_log_prob_is_a_normalized_distribution(shape, num_bits, base_size):
    """exp(log_prob) summed over every image (65,536 binary 4x4 ones; 256 2-bit 2x2; 4,096
    binary RGB 2x2) is 1: the base, group and colour factors form an exact factorization."""
    model = tiny(shape, num_bits, base_size)
    images = all_images(shape, num_bits)
    log_p = model.log_prob(images).double()
    assert abs(log_p.exp().sum().item() - 1) < 1e-5
    assert log_p.max() - log_p.min() > 2  # far from uniform: the test would catch a slip


def test_log_prob_with_zero_weights_is_uniform_over_levels():
    model = tiny((3, 8, 8), 8, 2)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    x = torch.randint(0, 256, (4, 3, 8, 8)).float() / 255
    torch.testing.assert_close(model.log_prob(x), torch.full((4,), 192 * math.log(1 / 256)))


# ---- causality in the multiscale order ----------------------------------------------------------
@pytest.mark.parametrize(
    "shape,num_bits,base_size", [((1, 8, 8), 1, 2), ((3, 8, 8), 8, 2), ((2, 4, 8), 1, 1)],
    ids=["grey-two-scales", "rgb-two-scales", "two-channel-three-scales"],
)  # fmt: skip
def test_logits_see_only_earlier_steps(shape, num_bits, base_size):
    """For every sub-pixel: its logits get zero gradient from its own step (the other pixels of
    its group and colour), from later groups and from later scales; they do see the coarse
    pixel of their own 2x2 block and the earlier colours of their own pixel."""
    model = tiny(shape, num_bits, base_size, hidden_channels=12, head_channels=12)
    C, H, W = shape
    step = generation_step(shape, model.scales)
    x = torch.randn(8, *shape)  # a batch: a ReLU dead for one input hides nothing
    stride = 2**model.scales
    for c, i, j in itertools.product(range(C), range(H), range(W)):
        grad = input_grad(model, x, c, i, j)
        own = step[c, i, j]
        assert grad[step >= own].max() == 0, f"({c}, {i}, {j}) sees its own or a later step"
        if own > 0:
            assert grad[step < own].max() > 0, f"({c}, {i}, {j}) sees nothing"
        assert (grad[:c, i, j] > 0).all(), f"({c}, {i}, {j}) misses an earlier colour"
        if i % stride or j % stride:  # a group pixel: the block's coarse pixel is context
            d = math.gcd(i, j, stride)  # the pixel's scale: its block is 2d a side
            bi, bj = i - i % (2 * d), j - j % (2 * d)
            assert grad[:, bi, bj].min() > 0, f"({c}, {i}, {j}) misses its coarse pixel"


def test_masked_weights_get_zero_gradient():
    model = tiny((3, 4, 4), 8, 2).train()
    loss = -model.conditional_log_prob(torch.randint(0, 256, (4, 3, 4, 4)).float() / 255).mean()
    loss.backward()
    masked = [m for m in model.modules() if hasattr(m, "mask") and (m.mask == 0).any()]
    assert len(masked) >= 3  # the group nets' input convolutions at least
    for m in masked:
        assert (m.weight.grad * (1 - m.mask)).abs().max() == 0


# ---- sampling -----------------------------------------------------------------------------------
def test_samples_follow_the_model_distribution():
    """Frequencies of 40,000 draws of binary 2-channel 2x2 images (256 values, base 1x1, one
    scale, two colours per group) match exp(log_prob): the sampler draws in the order the
    likelihood factorizes."""
    shape = (2, 2, 2)
    model = tiny(shape, 1, 1)
    probs = model.log_prob(all_images(shape)).exp()
    n = 40_000
    samples = model.sample(n)
    freq = torch.bincount(image_index(samples), minlength=256) / n
    assert 0.5 * (freq - probs).abs().sum() < 0.04


def test_sample_shapes_levels_and_base_samplers_agree():
    model = tiny((3, 8, 8), 8, 2)
    torch.manual_seed(5)
    fast = model.sample(3)
    torch.manual_seed(5)
    sequential = model.sample(3, sampler="sequential")
    assert torch.equal(fast, sequential)  # the base samplers share their uniforms
    assert fast.shape == (3, 3, 8, 8) and fast.min() >= 0 and fast.max() <= 1
    levels = fast * 255
    assert torch.equal(levels, levels.round())
    assert not torch.equal(model.sample(3), fast)
    assert model.training is False
    model.train()
    model.sample(1)
    assert model.training  # restored


@pytest.mark.parametrize(
    "shape,base_size,scales", [((1, 16, 16), 4, 2), ((1, 32, 32), 4, 3), ((3, 8, 8), 2, 2)]
)
def test_sample_makes_o_scales_group_passes(shape, base_size, scales):
    """One sample() call runs each group network once per colour channel, whatever the image
    size or batch: 3 * S * C passes; the base model takes one fast step per base sub-pixel."""
    model = tiny(shape, 1, base_size)
    calls = {"group": 0, "base_steps": 0}

    def count(key):
        def hook(module, inputs, output):
            calls[key] += 1

        return hook

    for m in model.modules():
        if isinstance(m, GroupNet):
            m.register_forward_hook(count("group"))
    model.net.base.head.register_forward_hook(count("base_steps"))
    model.sample(5)
    C, h, w = model.base_shape
    assert model.scales == scales
    assert calls == {"group": 3 * scales * C, "base_steps": h * w * C}


# ---- conditioning, training, errors -------------------------------------------------------------
def test_conditional_model_is_normalized_per_label_and_samples_by_label():
    shape = (1, 2, 2)
    model = tiny(shape, 1, 1, conditional=True)
    for m in model.modules():
        if isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight, std=2.0)
    images = all_images(shape)
    per_label = [model.log_prob(images, labels=torch.full((16,), k)) for k in range(3)]
    for log_p in per_label:
        assert abs(log_p.double().exp().sum().item() - 1) < 1e-5
    assert not torch.allclose(per_label[0], per_label[1])
    marginal = model.log_prob(images)
    torch.testing.assert_close(marginal, torch.stack(per_label).logsumexp(0) - math.log(3))
    assert model.sample(6, labels=torch.tensor([0, 1, 2, 0, 1, 2])).shape == (6, *shape)
    with pytest.raises(ValueError, match="conditional"):
        model.conditional_log_prob(images)


def test_trainer_fit_lowers_the_exact_validation_bpd():
    """A real Lightning fit on the 8x8 Digits (8-bit, base 4x4, one scale): val/bpd drops, and
    the logged figures equal the exact mean of log_prob over the split."""
    torch.manual_seed(0)
    data = Digits(batch_size=64, eval_batch_size=200, val_size=0.2)
    data.setup()
    model = MultiscalePixelCNN(
        data_shape=data.data_shape, num_bits=data.num_bits, num_classes=data.num_classes,
        hidden_channels=16, num_blocks=1, base_layers=3, head_channels=16,
    )  # fmt: skip
    assert model.base_shape == (1, 4, 4)

    def trainer(**kwargs):
        return pl.Trainer(
            accelerator="cpu", logger=False, enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, **kwargs,
        )  # fmt: skip

    before = trainer().validate(model, datamodule=data, verbose=False)[0]["val/bpd"]
    trainer(max_steps=40, limit_val_batches=0).fit(model, datamodule=data)
    logged = trainer().validate(model, datamodule=data, verbose=False)[0]
    assert logged["val/bpd"] < before - 1.5, (before, logged["val/bpd"])  # ~8 bits at the start
    x = torch.cat([xb for xb, _ in data.val_dataloader()])
    nll = -model.log_prob(x).double()
    assert abs(logged["val/nll"] - nll.mean().item()) < 1e-3
    assert abs(logged["val/bpd"] - (nll / (64 * math.log(2))).mean().item()) < 1e-5


def test_clear_errors():
    with pytest.raises(ValueError, match="halves the image exactly"):
        MultiscalePixelCNN(data_shape=(1, 28, 28), num_bits=1, base_size=6, **TINY)
    with pytest.raises(ValueError, match="width a multiple"):
        MultiscalePixelCNN(data_shape=(1, 28, 30), num_bits=1, base_size=7, **TINY)
    for bad in (0, 56, 21):
        with pytest.raises(ValueError, match="such as 7"):
            MultiscalePixelCNN(data_shape=(1, 28, 28), num_bits=1, base_size=bad, **TINY)
    with pytest.raises(ValueError, match="continuous"):
        MultiscalePixelCNN(data_shape=(1, 8, 8), num_bits=None)
    with pytest.raises(ValueError, match="images"):
        MultiscalePixelCNN(data_shape=(2,), num_bits=8)
    with pytest.raises(ValueError, match="hidden_channels"):
        MultiscalePixelCNN(data_shape=(3, 8, 8), hidden_channels=2)
    with pytest.raises(ValueError, match="num_blocks"):
        MultiscalePixelCNN(data_shape=(1, 8, 8), num_blocks=0)
    model = tiny((1, 8, 8), 1, 2)
    with pytest.raises(ValueError, match="1-bit"):
        model.log_prob(torch.full((2, 1, 8, 8), 0.5))
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, sampler="parallel")
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=0)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=torch.tensor([0, 1]))
