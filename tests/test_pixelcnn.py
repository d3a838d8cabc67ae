"""The PixelCNN family: masks, causality maps (and the blind spot), exact normalized
likelihoods, the discretized logistic mixture, identical fast and sequential samplers,
conditioning, metrics and DDP."""

from __future__ import annotations

import itertools
import math

import pytest
import pytorch_lightning as pl
import torch

from genflow.data import Digits
from genflow.models import GatedPixelCNN, PixelCNN, PixelCNNPlusPlus
from genflow.nn.autoregressive import (
    MaskedConv2d,
    coefficient_index,
    discretized_logistic_log_prob,
    discretized_logistic_mixture_log_prob,
    logistic_mixture_num_params,
    sample_discretized_logistic_mixture,
)

MODELS = [PixelCNN, GatedPixelCNN, PixelCNNPlusPlus]
TINY = {
    PixelCNN: dict(hidden_channels=12, num_blocks=2, head_channels=8),
    GatedPixelCNN: dict(hidden_channels=9, num_layers=3, head_channels=8),
    PixelCNNPlusPlus: dict(filters=8, num_resnet=1, num_mixtures=2, dropout=0.5),
}
ids = [m.__name__ for m in MODELS]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These nets are tiny: a second thread only adds synchronization on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(cls, shape=(1, 8, 8), num_bits=1, conditional=False, num_classes=3, **kwargs):
    model = cls(
        data_shape=shape, num_bits=num_bits, num_classes=num_classes, conditional=conditional,
        **(TINY[cls] | kwargs),
    )  # fmt: skip
    return model.eval()


def all_images(shape, num_bits=1) -> torch.Tensor:
    """Every image of the given shape on the 2^b-level grid, (levels^D, *shape)."""
    levels = 2**num_bits
    grid = torch.tensor(list(itertools.product(range(levels), repeat=math.prod(shape))))
    return grid.float().view(-1, *shape) / (levels - 1)


def input_grad_map(model, x, c, i, j) -> torch.Tensor:
    """|d output(c, i, j) / d x| (C, H, W): output = the logits of sub-pixel c at (i, j) (all
    the pixel's parameters for PixelCNN++), projected on a random direction."""
    x = x.clone().requires_grad_(True)
    params = model.net(x)[:, :, i, j]  # (B, P)
    if not isinstance(model, PixelCNNPlusPlus):
        K = params.shape[1] // model.data_shape[0]
        params = params[:, c * K : (c + 1) * K]
    (params * torch.randn_like(params)).sum().backward()
    return x.grad.abs().sum(0)  # summed over a batch: a ReLU dead for one input hides nothing


def dependency_map(model, i, j, c=0) -> torch.Tensor:
    """(H, W) bool: the pixels the output at (c, i, j) depends on (any channel)."""
    x = torch.randn(4, *model.data_shape)
    return input_grad_map(model, x, c, i, j).sum(0) > 0


def earlier_pixels(H, W, i, j) -> torch.Tensor:
    rank = torch.arange(H * W).view(H, W)
    return rank < i * W + j


# ---- masks ------------------------------------------------------------------------------------
def test_masks_a_and_b_on_one_channel():
    a = MaskedConv2d(1, 1, 3, "A").mask[0, 0]
    b = MaskedConv2d(1, 1, 3, "B").mask[0, 0]
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]


def test_colour_masks_order_r_g_b_inside_a_pixel():
    a = MaskedConv2d(3, 3, 3, "A", data_channels=3).mask[:, :, 1, 1]  # (out, in) at the centre
    b = MaskedConv2d(3, 3, 3, "B", data_channels=3).mask[:, :, 1, 1]
    assert a.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]  # G sees R; B sees R and G
    assert b.tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    hidden = MaskedConv2d(6, 9, 1, "B", data_channels=3).mask[:, :, 0, 0]
    out_group, in_group = torch.arange(9) // 3, torch.arange(6) // 2
    assert torch.equal(hidden.bool(), out_group[:, None] >= in_group[None, :])
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN], ids=["PixelCNN", "GatedPixelCNN"])
def test_masked_weights_get_zero_gradient_and_stay_unchanged_after_adam(cls):
    model = tiny(cls, shape=(3, 6, 6), num_bits=8).train()
    convs = [m for m in model.modules() if isinstance(m, MaskedConv2d)]
    before = [conv.weight.detach().clone() for conv in convs]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.randint(0, 256, (4, 3, 6, 6)).float() / 255
    for _ in range(3):
        optimizer.zero_grad()
        (-model.conditional_log_prob(x).mean()).backward()
        for conv in convs:
            assert (conv.weight.grad * (1 - conv.mask)).abs().max() == 0
        optimizer.step()
    for conv, old in zip(convs, before, strict=True):
        masked = conv.mask == 0
        assert torch.equal(conv.weight[masked], old[masked])  # never moved
        assert not torch.equal(conv.weight[~masked], old[~masked])  # the rest trained
    assert any((conv.mask == 0).any() for conv in convs)


# ---- causality through the whole stack --------------------------------------------------------
@pytest.mark.parametrize("shape,num_bits", [((1, 8, 8), 1), ((3, 8, 8), 8)], ids=["grey", "rgb"])
@pytest.mark.parametrize("cls", MODELS, ids=ids)
def test_output_never_sees_later_pixels_or_later_channels(cls, shape, num_bits):
    model = tiny(cls, shape=shape, num_bits=num_bits)
    C, H, W = shape
    rng = torch.Generator().manual_seed(0)
    for _ in range(6):
        c = int(torch.randint(C, (1,), generator=rng))
        i, j = (int(v) for v in torch.randint(1, H, (2,), generator=rng))
        grad = input_grad_map(model, torch.randn(8, *shape), c, i, j)  # (C, H, W)
        later = ~earlier_pixels(H, W, i, j)
        later[i, j] = False
        assert grad[:, later].max() == 0, "a later pixel leaks into the output"
        # inside the pixel: a softmax sub-pixel sees earlier channels only; PixelCNN++ none
        seen_here = c if cls is not PixelCNNPlusPlus else 0
        assert grad[seen_here:, i, j].max() == 0, "the current or a later channel leaks"
        assert grad[:, earlier_pixels(H, W, i, j)].max() > 0, "no earlier pixel is seen"
        if cls is not PixelCNNPlusPlus and c > 0:
            assert grad[:c, i, j].min() > 0, "earlier channels of the pixel are not seen"


def test_gated_pixelcnn_has_no_blind_spot():
    """With enough layers every output sees every earlier pixel of the image."""
    model = tiny(GatedPixelCNN, first_kernel_size=3, kernel_size=3, num_layers=8)
    for i, j in itertools.product(range(8), range(8)):
        assert torch.equal(dependency_map(model, i, j), earlier_pixels(8, 8, i, j)), (i, j)


def test_gated_pixelcnn_receptive_field_is_the_full_rectangle_above():
    """L layers of 3x3: rows i-1-L .. i-1 over columns j-L .. j+L (the vertical stack, shifted
    down one row), and j-L .. j-1 on row i; the upper right corner included (the peer's vertical
    stack misses it)."""
    L, H, W = 3, 10, 12
    model = tiny(GatedPixelCNN, shape=(1, H, W), first_kernel_size=3, num_layers=L)
    rows, cols = torch.arange(H)[:, None], torch.arange(W)[None, :]
    for i, j in [(9, 5), (5, 0), (7, 11), (4, 6)]:
        above = (rows >= i - 1 - L) & (rows < i) & ((cols - j).abs() <= L)
        left = (rows == i) & (cols >= j - L) & (cols < j)
        assert torch.equal(dependency_map(model, i, j), above | left), (i, j)


def reachable(H, W, i, j, first_kernel_size, num_blocks):
    """The pixels a PixelCNN output at (i, j) can reach through its masks: each 3x3 mask-B
    layer steps to (r-1, c-1..c+1), (r, c-1) or stays; the mask-A layer reads rows r-p..r-1
    within +-p columns and row r left of c."""
    cells = {(i, j)}
    for _ in range(num_blocks):
        cells = {(r + dr, c + dc) for r, c in cells
                 for dr, dc in [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0)]}  # fmt: skip
    p = first_kernel_size // 2
    seen = set()
    for r, c in cells:
        seen |= {(r - dr, c + dc) for dr in range(1, p + 1) for dc in range(-p, p + 1)}
        seen |= {(r, c - dc) for dc in range(1, p + 1)}
    out = torch.zeros(H, W, dtype=torch.bool)
    for r, c in seen:
        if 0 <= r < H and 0 <= c < W:
            out[r, c] = True
    return out


def test_pixelcnn_blind_spot_is_documented():
    """Plain PixelCNN sees exactly what its masks reach, and that leaves a blind spot: pixels
    above and to the right that no depth reaches, such as (i - 1, j + 4) with a 7x7 first layer,
    while Gated PixelCNN of the same depth sees them."""
    H, W, blocks = 10, 12, 4
    model = tiny(PixelCNN, shape=(1, H, W), num_blocks=blocks, first_kernel_size=7)
    i, j = 7, 3
    seen = dependency_map(model, i, j)
    assert torch.equal(seen, reachable(H, W, i, j, 7, blocks))
    blind = earlier_pixels(H, W, i, j) & ~seen
    assert blind[i - 1, j + 4 :].all() and blind[i - 2, j + 5 :].all()
    deeper = tiny(PixelCNN, shape=(1, H, W), num_blocks=2 * blocks)
    assert not dependency_map(deeper, i, j)[i - 1, j + 4 :].any()  # depth does not cure it
    gated = tiny(GatedPixelCNN, shape=(1, H, W), first_kernel_size=7, num_layers=blocks + 1)
    assert dependency_map(gated, i, j)[i - 1, j + 4 : j + 8].all()  # its field: j +- (3 + 4)


# ---- activations at depth -----------------------------------------------------------------------
def block_output_stds(model, blocks, x) -> list[float]:
    stds = []

    def record(module, inputs, output):
        stds.append((output[1] if isinstance(output, tuple) else output).std().item())

    for block in blocks:
        block.register_forward_hook(record)
    with torch.no_grad():
        model.net(x)
    return stds


@pytest.mark.parametrize("cls", MODELS, ids=ids)
def test_activation_scale_does_not_blow_up_with_depth(cls):
    """Each residual block adds its input once: 16 blocks at one resolution grow the
    activations slowly, not 2^16-fold as a residual added twice would."""
    depth = {PixelCNN: dict(num_blocks=16), GatedPixelCNN: dict(num_layers=17),
             PixelCNNPlusPlus: dict(num_resnet=16, dropout=0.0)}[cls]  # fmt: skip
    model = tiny(cls, shape=(1, 16, 16), **depth)
    blocks = {
        PixelCNN: lambda net: list(net.blocks),
        GatedPixelCNN: lambda net: list(net.layers[1:]),  # the residual layers
        PixelCNNPlusPlus: lambda net: list(net.up_u[0]),  # the u stream at full resolution
    }[cls](model.net)
    assert len(blocks) == 16
    stds = block_output_stds(model, blocks, torch.randn(8, 1, 16, 16))
    growth = [b / a for a, b in itertools.pairwise(stds)]
    assert max(growth) < 1.5 and stds[-1] / stds[0] < 4, stds


# ---- exact likelihoods -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 2, 3), (3, 1, 2)], ids=["grey", "rgb"])
@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN], ids=["PixelCNN", "GatedPixelCNN"])
def test_log_prob_is_a_normalized_distribution(cls, shape):
    """exp(log_prob) summed over all 64 binary images is 1: the factorization is exact."""
    model = tiny(cls, shape=shape, num_bits=1)
    torch.nn.init.normal_(model.net.head[-1].weight, std=2.0)  # far from uniform
    total = model.log_prob(all_images(shape)).double().exp().sum()
    assert abs(total.item() - 1) < 1e-5


def test_pixelcnnpp_log_prob_is_a_normalized_distribution():
    shape = (1, 4, 4)  # 65,536 binary images
    model = tiny(PixelCNNPlusPlus, shape=shape, num_bits=1, filters=4, num_resnet=1)
    torch.nn.init.normal_(model.net.out.weight, std=2.0)
    total = model.log_prob(all_images(shape)).double().exp().sum()
    assert abs(total.item() - 1) < 1e-5


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN], ids=["PixelCNN", "GatedPixelCNN"])
def test_log_prob_with_zero_weights_is_uniform(cls):
    for num_bits, shape in [(8, (3, 5, 6)), (1, (1, 5, 6))]:
        model = tiny(cls, shape=shape, num_bits=num_bits)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        x = torch.randint(0, 2**num_bits, (4, *shape)).float() / (2**num_bits - 1)
        log_p = model.log_prob(x)
        assert log_p.shape == (4,)
        D = math.prod(shape)
        torch.testing.assert_close(log_p, torch.full((4,), D * math.log(2.0**-num_bits)))


def test_pixelcnnpp_log_prob_with_zero_weights_is_the_standard_logistic():
    model = tiny(PixelCNNPlusPlus, shape=(3, 4, 4), num_bits=8)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    k = torch.randint(0, 256, (2, 3, 4, 4)).double()
    # all means 0, scales 1, coefficients 0: each sub-pixel is a logistic(0, 1) binned by hand
    upper = torch.where(k == 255, torch.inf, (2 * k + 1) / 255 - 1)
    lower = torch.where(k == 0, -torch.inf, (2 * k - 1) / 255 - 1)
    expected = (torch.sigmoid(upper) - torch.sigmoid(lower)).log().flatten(1).sum(1)
    torch.testing.assert_close(
        model.log_prob(k.float() / 255).double(), expected, rtol=0, atol=1e-3
    )


def test_log_prob_runs_in_eval_mode_without_grad_and_restores_training():
    model = tiny(PixelCNNPlusPlus).train()
    x = torch.bernoulli(torch.full((3, 1, 8, 8), 0.5))
    a, b = model.log_prob(x), model.log_prob(x)
    assert torch.equal(a, b) and not a.requires_grad and model.training  # dropout was off


# ---- the discretized logistic mixture -------------------------------------------------------
def random_mixture_params(batch, channels, mixtures, scale=2.0):
    params = scale * torch.randn(batch, logistic_mixture_num_params(channels, mixtures), 1, 1)
    return params.double()


def test_logistic_mixture_sums_to_one_over_256_values():
    params = random_mixture_params(50, 1, 5).expand(-1, -1, 256, 1)
    x = (torch.arange(256).double() * 2 / 255 - 1).view(1, 1, 256, 1).expand(50, -1, -1, -1)
    total = discretized_logistic_mixture_log_prob(x, params, 5).exp().sum(1)  # (50, 1)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-5)
    sharp = params.clone()
    sharp[:, 10:15] = -20.0  # log-scales below the floor of -7: still a distribution
    total = discretized_logistic_mixture_log_prob(x, sharp, 5).exp().sum(1)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-5)


def test_logistic_mixture_with_dependent_channels_sums_to_one_jointly():
    """RGB on 3-bit levels: the 512 joint values, with G and B means shifted by the earlier
    channels, sum to 1 (the linear dependence keeps a proper distribution)."""
    levels = torch.arange(8).double() * 2 / 7 - 1
    x = torch.cartesian_prod(levels, levels, levels).T.reshape(1, 3, 512, 1)  # (1, 3, 512, 1)
    params = random_mixture_params(20, 3, 4).expand(-1, -1, 512, 1)
    total = discretized_logistic_mixture_log_prob(x.expand(20, -1, -1, -1), params, 4, 3)
    torch.testing.assert_close(total.exp().sum(1), torch.ones(20, 1).double(), rtol=0, atol=1e-5)


def test_discretized_logistic_edges_match_hand_worked_values():
    # k = 0, mean 0, s = 1: sigmoid(-254/255) = 1 / (1 + e^0.996078) = 1 / 3.70764 = 0.269713
    bottom = discretized_logistic_log_prob(
        torch.tensor(-1.0), torch.tensor(0.0), torch.tensor(0.0)
    )
    assert abs(bottom.exp().item() - 0.269713) < 1e-5
    # k = 255, mean 0.5, s = 0.2: 1 - sigmoid((1 - 1/255 - 0.5) / 0.2) = 1 / (1 + e^2.480392)
    # = 1 / 12.94594 = 0.077244
    top = discretized_logistic_log_prob(
        torch.tensor(1.0), torch.tensor(0.5), torch.tensor(math.log(0.2))
    )
    assert abs(top.exp().item() - 0.077244) < 1e-5
    # the same value for G at 255 when mean_G = 0 and coefficient 0.5 on R = 255 (x_R = 1)
    params = torch.zeros(1, logistic_mixture_num_params(3, 1), 1, 1)
    params[0, 4 + 1] = math.log(0.2)  # log-scale of G
    params[0, 7 + coefficient_index(1, 0)] = math.atanh(0.5)  # coefficient of R in G's mean
    x = torch.tensor([1.0, 1.0, -1.0]).view(1, 3, 1, 1)
    log_p = discretized_logistic_mixture_log_prob(x, params, 1)
    r_at_255 = 1 - torch.sigmoid(torch.tensor(254 / 255))  # R: mean 0, s = 1, top edge
    b_at_0 = torch.sigmoid(torch.tensor(-254 / 255))  # B: mean 0, s = 1, bottom edge
    torch.testing.assert_close(log_p.exp().squeeze(), r_at_255 * 0.077244 * b_at_0, atol=1e-6,
                               rtol=1e-5)  # fmt: skip


def test_logistic_mixture_sampler_draws_from_the_likelihood():
    params = random_mixture_params(1, 1, 3, scale=1.0).float()
    params[:, 3:6] = -2.0  # scales ~0.14: mass spread over ~30 levels
    n = 40_000
    torch.manual_seed(0)
    x = sample_discretized_logistic_mixture(
        params.expand(n, -1, -1, -1), torch.rand(n, 2, 1, 1), 1, 3, num_bits=5
    )  # 32 levels
    counts = torch.bincount(((x.flatten() + 1) * 31 / 2).round().long(), minlength=32)
    levels = (torch.arange(32).float() * 2 / 31 - 1).view(1, 1, 32, 1)
    probs = discretized_logistic_mixture_log_prob(levels, params.expand(-1, -1, 32, 1), 3, 5)
    tv = 0.5 * (counts / n - probs.exp().flatten()).abs().sum()
    assert tv < 0.02


# ---- samplers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,num_bits,conditional",
    [((1, 8, 8), 1, False), ((3, 4, 4), 8, False), ((1, 4, 8), 8, True)],
    ids=["binary", "rgb-8bit", "conditional"],
)
@pytest.mark.parametrize("cls", MODELS, ids=ids)
def test_fast_sampler_equals_sequential_sampler(cls, shape, num_bits, conditional):
    model = tiny(cls, shape=shape, num_bits=num_bits, conditional=conditional)
    if conditional:  # make the labels matter
        for m in model.modules():
            if isinstance(m, torch.nn.Embedding):
                torch.nn.init.normal_(m.weight)
    labels = torch.tensor([0, 1, 2, 1])
    torch.manual_seed(7)
    fast = model.sample(4, sampler="fast", labels=labels if conditional else None)
    torch.manual_seed(7)
    slow = model.sample(4, sampler="sequential", labels=labels if conditional else None)
    assert torch.equal(fast, slow)
    assert fast.shape == (4, *shape)
    levels = fast * (2**num_bits - 1)
    assert torch.equal(levels, levels.round()) and fast.min() >= 0 and fast.max() <= 1
    torch.manual_seed(8)
    assert not torch.equal(model.sample(4, labels=labels if conditional else None), fast)


def test_fast_sampler_follows_weights_changed_in_place():
    """The fast path keeps masked weight matrices between pixels; an optimizer step (an
    in-place change) or a reload must not leave it sampling from the old weights."""
    model = tiny(PixelCNN, shape=(1, 5, 5), num_bits=8)
    samples = []
    for _ in range(2):
        for sampler in ("fast", "sequential"):
            torch.manual_seed(3)
            samples.append(model.sample(4, sampler=sampler))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
    assert torch.equal(samples[0], samples[1]) and torch.equal(samples[2], samples[3])
    assert not torch.equal(samples[0], samples[2])


@pytest.mark.parametrize("cls", [PixelCNN, GatedPixelCNN], ids=["PixelCNN", "GatedPixelCNN"])
def test_samples_follow_the_model_distribution(cls):
    """Frequencies of 20,000 draws of 3x1x2 binary images (64 values) match exp(log_prob)."""
    shape = (3, 1, 2)
    model = tiny(cls, shape=shape, num_bits=1)
    torch.nn.init.normal_(model.net.head[-1].weight, std=2.0)
    images = all_images(shape)
    probs = model.log_prob(images).exp()
    samples = model.sample(20_000)
    index = (samples.flatten(1) * 2 ** torch.arange(5, -1, -1)).sum(1).long()  # row of images
    freq = torch.bincount(index, minlength=64) / 20_000
    assert 0.5 * (freq - probs).abs().sum() < 0.03


def test_sampler_arguments_are_checked():
    model = tiny(GatedPixelCNN)
    with pytest.raises(ValueError, match="temperature"):
        model.sample(2, temperature=0)
    with pytest.raises(ValueError, match="sampler"):
        model.sample(2, sampler="parallel")
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=torch.tensor([0, 1]))
    conditional = tiny(GatedPixelCNN, conditional=True)
    with pytest.raises(ValueError, match="class indices"):
        conditional.sample(2, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="class indices"):
        conditional.sample(2, labels=torch.tensor([0, 1, 2]))


def test_low_temperature_is_nearly_deterministic():
    model = tiny(GatedPixelCNN, shape=(1, 4, 4), num_bits=8)
    torch.nn.init.normal_(model.net.head[-1].weight, std=1.0)
    draws = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        draws.append(model.sample(3, temperature=1e-3))
    assert torch.equal(*draws)


# ---- conditioning -------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", MODELS, ids=ids)
def test_conditional_sampling_honours_labels(cls):
    """Trained on images whose pixels are on with probability 0.1 under label 0 and 0.9 under
    label 1, the model draws dark images for label 0 and bright ones for label 1, and scores
    an all-dark image higher under label 0."""
    torch.manual_seed(0)
    model = tiny(cls, shape=(1, 4, 4), num_bits=1, conditional=True, num_classes=2).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    y = torch.arange(64) % 2
    for _ in range(80):
        x = torch.bernoulli((0.1 + 0.8 * y.float()).view(-1, 1, 1, 1).expand(-1, 1, 4, 4))
        optimizer.zero_grad()
        (-model.conditional_log_prob(x, y).mean()).backward()
        optimizer.step()
    samples = model.sample(64, labels=y)
    assert samples[y == 0].mean() < 0.25 and samples[y == 1].mean() > 0.7
    dark = torch.zeros(1, 1, 4, 4)
    lp0, lp1 = (model.log_prob(dark, labels=torch.tensor([k])) for k in (0, 1))
    assert lp0 > lp1 + 5  # 16 pixels, log(0.9 / 0.1) = 2.2 nats each at the optimum
    marginal = model.log_prob(dark)  # log (p(x|0) + p(x|1)) / 2
    torch.testing.assert_close(marginal, torch.logaddexp(lp0, lp1) - math.log(2))
    with pytest.raises(ValueError, match="conditional"):
        model.conditional_log_prob(dark)


# ---- metrics, errors, DDP -----------------------------------------------------------------------
def test_validation_logs_the_exact_mean_nll_and_bpd():
    data = Digits(batch_size=64, eval_batch_size=100, val_size=0.2)
    data.setup()
    model = GatedPixelCNN(
        data_shape=data.data_shape, num_bits=data.num_bits, num_classes=data.num_classes,
        hidden_channels=8, num_layers=2, head_channels=8,
    )  # fmt: skip
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    logged = trainer.validate(model, datamodule=data, verbose=False)[0]
    x = torch.cat([xb for xb, _ in data.val_dataloader()])
    nll = -model.log_prob(x).double()
    assert abs(logged["val/nll"] - nll.mean().item()) < 1e-3
    assert abs(logged["val/bpd"] - (nll / (64 * math.log(2))).mean().item()) < 1e-5


def test_clear_errors_for_data_the_models_cannot_take():
    with pytest.raises(ValueError, match="continuous"):
        PixelCNN(data_shape=(1, 8, 8), num_bits=None)
    with pytest.raises(ValueError, match="images"):
        GatedPixelCNN(data_shape=(2,), num_bits=8)
    with pytest.raises(ValueError, match="multiples of 4"):
        PixelCNNPlusPlus(data_shape=(1, 30, 30), num_bits=8, filters=4, num_resnet=1)
    with pytest.raises(ValueError, match="hidden_channels"):
        PixelCNN(data_shape=(3, 8, 8), hidden_channels=4)
    with pytest.raises(ValueError, match="odd"):
        GatedPixelCNN(data_shape=(1, 8, 8), kernel_size=4)
    binary = tiny(GatedPixelCNN)
    with pytest.raises(ValueError, match="1-bit"):
        binary.log_prob(torch.full((2, 1, 8, 8), 0.5))  # 8-bit data into a binary model
    with pytest.raises(ValueError, match="shape"):
        binary.log_prob(torch.zeros(2, 1, 6, 6))
