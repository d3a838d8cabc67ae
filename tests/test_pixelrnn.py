"""PixelRNN: skewing, the LSTM step, causality of both layer types (the Diagonal BiLSTM without
blind spot, the Row LSTM's triangle), exact normalized likelihoods, samplers, a real fit."""

from __future__ import annotations

import itertools
import math

import pytest
import pytorch_lightning as pl
import torch
from test_pixelcnn import all_images, dependency_map, earlier_pixels, input_grad_map

from genflow.data import Digits
from genflow.models.pixelrnn import PixelRNN
from genflow.nn.autoregressive import MaskedConv2d
from genflow.nn.recurrent import DiagonalBiLSTMLayer, RowLSTMLayer, lstm_update, skew, unskew

LAYERS = ["row", "diagonal"]


def tiny(layer, shape=(1, 8, 8), num_bits=1, conditional=False, num_classes=3, **kwargs):
    args = dict(hidden_channels=12, num_layers=2, head_channels=9) | kwargs
    model = PixelRNN(
        data_shape=shape, num_bits=num_bits, num_classes=num_classes, layer=layer,
        conditional=conditional, **args,
    )  # fmt: skip
    return model.eval()


def grid(H, W, cells) -> torch.Tensor:
    """(H, W) bool, True at the cells inside the image."""
    out = torch.zeros(H, W, dtype=torch.bool)
    for r, c in cells:
        if 0 <= r < H and 0 <= c < W:
            out[r, c] = True
    return out


# ---- plain functions --------------------------------------------------------------------------
def test_skew_moves_row_r_right_by_r_and_unskew_inverts_it():
    x = torch.arange(1, 7).float().view(1, 1, 2, 3)
    assert skew(x)[0, 0].tolist() == [[1, 2, 3, 0], [0, 4, 5, 6]]
    for B, C, H, W in [(2, 3, 5, 4), (1, 2, 1, 6), (3, 1, 7, 1)]:
        x = torch.randn(B, C, H, W)
        s = skew(x)
        assert s.shape == (B, C, H, W + H - 1)
        assert torch.equal(unskew(s, W), x)
        r, c = torch.arange(H)[:, None], torch.arange(W + H - 1)[None, :]
        off_image = (c < r) | (c >= r + W)
        assert s[..., off_image].abs().sum() == 0  # zeros around the rows
        for r, j in itertools.product(range(H), range(W)):  # diagonal r + j is column r + j
            assert torch.equal(s[..., r, r + j], x[..., r, j])
    with pytest.raises(ValueError, match="width"):
        unskew(torch.zeros(1, 1, 3, 5), 4)


def test_lstm_update_is_the_lstm_cell():
    """The update with gates [o, f, i, g] equals torch.nn.LSTMCell (gates i, f, g, o)."""
    cell = torch.nn.LSTMCell(5, 4)
    x, h, c = torch.randn(6, 5), torch.randn(6, 4), torch.randn(6, 4)
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4, 1)
    ours = lstm_update(torch.cat([o, f, i, g], 1), c)
    for a, b in zip(ours, cell(x, (h, c)), strict=True):
        torch.testing.assert_close(a, b)


# ---- causality --------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,num_bits", [((1, 8, 8), 1), ((3, 7, 6), 8)], ids=["grey", "rgb"])
@pytest.mark.parametrize("layer", LAYERS)
def test_output_never_sees_later_pixels_or_later_channels(layer, shape, num_bits):
    model = tiny(layer, shape=shape, num_bits=num_bits)
    C, H, W = shape
    rng = torch.Generator().manual_seed(0)
    for _ in range(8):
        c = int(torch.randint(C, (1,), generator=rng))
        i = int(torch.randint(1, H, (1,), generator=rng))
        j = int(torch.randint(W, (1,), generator=rng))
        grad = input_grad_map(model, torch.randn(8, *shape), c, i, j)  # (C, H, W)
        later = ~earlier_pixels(H, W, i, j)
        later[i, j] = False
        assert grad[:, later].max() == 0, "a later pixel leaks into the output"
        assert grad[c:, i, j].max() == 0, "the current or a later channel leaks"
        if c > 0:
            assert grad[:c, i, j].min() > 0, "earlier channels of the pixel are not seen"
        assert grad[:, earlier_pixels(H, W, i, j)].max() > 0, "no earlier pixel is seen"


@pytest.mark.parametrize("first_kernel_size", [3, 7])
def test_diagonal_bilstm_has_no_blind_spot(first_kernel_size):
    """One Diagonal BiLSTM layer: every output sees every earlier pixel, and only those."""
    H, W = 7, 8
    model = tiny("diagonal", shape=(1, H, W), num_layers=1, first_kernel_size=first_kernel_size)
    for i, j in itertools.product(range(H), range(W)):
        assert torch.equal(dependency_map(model, i, j), earlier_pixels(H, W, i, j)), (i, j)


def test_diagonal_bilstm_has_no_blind_spot_in_colour():
    H, W = 5, 6
    model = tiny("diagonal", shape=(3, H, W), num_bits=8, num_layers=1, first_kernel_size=3)
    for c, i, j in [(0, 3, 0), (1, 4, 2), (2, 2, 5), (2, 4, 5)]:
        grad = input_grad_map(model, torch.randn(4, 3, H, W), c, i, j)  # (3, H, W)
        assert grad[:, earlier_pixels(H, W, i, j)].min() > 0, "an earlier sub-pixel is missed"


def layer_input_map(layer, H, W, i, j, in_channels=4) -> torch.Tensor:
    """(H, W) bool: the input positions the layer's states at (i, j) depend on."""
    x = torch.randn(4, in_channels, H, W, requires_grad=True)
    out = layer(x)[:, :, i, j]
    (out * torch.randn_like(out)).sum().backward()
    return x.grad.abs().sum((0, 1)) > 0


def test_diagonal_bilstm_layer_reads_left_above_and_the_rows_above():
    """The paper's layer (Figure 4): left-to-right states see rows <= i, columns <= j; the
    right-to-left ones, shifted down one row, rows < i, columns >= j."""
    H, W = 6, 7
    layer = DiagonalBiLSTMLayer(4, 3)
    rows, cols = torch.arange(H)[:, None], torch.arange(W)[None, :]
    for i, j in itertools.product(range(H), range(W)):
        expected = ((rows <= i) & (cols <= j)) | ((rows < i) & (cols >= j))
        assert torch.equal(layer_input_map(layer, H, W, i, j), expected), (i, j)


def test_the_papers_diagonal_layer_misses_the_end_of_the_row_above():
    """Why PixelRNN gives the right-to-left LSTM the image: after a mask-A kxk layer, no
    feature on row i - 1 holds the pixel (i - 1, W - 1), and those on row i that do lie right
    of j + k // 2; so the paper's layer misses that one pixel. With the image as context the
    layer sees every earlier pixel."""
    H, W, p = 6, 9, 1
    first = MaskedConv2d(1, 4, 2 * p + 1, "A")
    paper, ours = DiagonalBiLSTMLayer(4, 3), DiagonalBiLSTMLayer(4, 3, context_channels=1)
    for i, j in itertools.product(range(1, H), range(W)):
        x = torch.randn(4, 1, H, W, requires_grad=True)
        seen = []
        for layer, context in [(paper, None), (ours, x)]:
            out = layer(first(x), context=context)[:, :, i, j]
            (grad,) = torch.autograd.grad((out * torch.randn_like(out)).sum(), x)
            seen.append(grad.abs().sum((0, 1)) > 0)
        missed = earlier_pixels(H, W, i, j) & ~seen[0]
        assert torch.equal(missed, grid(H, W, [(i - 1, W - 1)] if j < W - 1 - p else [])), (i, j)
        assert torch.equal(seen[1], earlier_pixels(H, W, i, j)), (i, j)


def row_lstm_field(H, W, i, j, num_layers, first_kernel_size) -> torch.Tensor:
    """What a Row LSTM PixelRNN's output at (i, j) sees: each layer keeps its positions (the
    residual) and adds the triangle (r', c') with r' <= r, |c' - c| <= r - r', each read with
    its left neighbour (the 1x3 input-to-state mask B); the mask-A layer reads rows r-p..r-1
    within +-p columns and row r left of c."""
    cells = {(i, j)}
    for _ in range(num_layers):
        triangle = {(r2, c2 + d) for r, c in cells for r2 in range(r + 1)
                    for c2 in range(c - (r - r2), c + (r - r2) + 1) for d in (-1, 0)}  # fmt: skip
        cells = {(r, c) for r, c in cells | triangle if 0 <= r < H and 0 <= c < W}
    p = first_kernel_size // 2
    seen = set()
    for r, c in cells:
        seen |= {(r - dr, c + dc) for dr in range(1, p + 1) for dc in range(-p, p + 1)}
        seen |= {(r, c - dc) for dc in range(1, p + 1)}
    return grid(H, W, seen)


@pytest.mark.parametrize("num_layers,first_kernel_size", [(1, 7), (2, 3)])
def test_row_lstm_receptive_field_is_a_triangle(num_layers, first_kernel_size):
    """The Row LSTM sees exactly a triangle above each pixel (section 3.1), so it misses the
    end of the row above (at any depth: row i only reaches left), which the Diagonal BiLSTM
    sees."""
    H, W = 8, 11
    model = tiny("row", shape=(1, H, W), num_layers=num_layers,
                 first_kernel_size=first_kernel_size)  # fmt: skip
    for i, j in [(7, 5), (6, 0), (5, 10), (3, 4), (0, 6)]:
        expected = row_lstm_field(H, W, i, j, num_layers, first_kernel_size)
        assert torch.equal(dependency_map(model, i, j), expected), (i, j)
    i, j, p = 7, 5, first_kernel_size // 2
    blind = earlier_pixels(H, W, i, j) & ~dependency_map(model, i, j)
    assert blind[i - 1, j + p + 1 :].all()  # the row above, right of the triangle
    diagonal = tiny("diagonal", shape=(1, H, W), num_layers=1, first_kernel_size=first_kernel_size)
    assert dependency_map(diagonal, i, j)[i - 1, j + p + 1 :].all()


def test_row_lstm_layer_reads_a_triangle_of_its_input():
    H, W, k = 6, 9, 3
    layer = RowLSTMLayer(4, 3, kernel_size=k)
    i, j = 5, 4
    rows, cols = torch.arange(H)[:, None], torch.arange(W)[None, :]
    reach = i - rows  # rows up: the state spreads one column per row
    expected = (rows <= i) & (cols >= j - reach - k // 2) & (cols <= j + reach)
    assert torch.equal(layer_input_map(layer, H, W, i, j), expected)


# ---- exact likelihoods -----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 3, 3), (3, 2, 2)], ids=["grey-3x3", "rgb-2x2"])
@pytest.mark.parametrize("layer", LAYERS)
def test_log_prob_is_a_normalized_distribution(layer, shape):
    """exp(log_prob) summed over all 2^D binary images is 1 (D = 9, 12): the factorization is
    exact; for a conditional model under every label."""
    model = tiny(layer, shape=shape, conditional=True)
    torch.nn.init.normal_(model.net.head[-1].weight, std=2.0)  # far from uniform
    for m in model.modules():
        if isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight)  # make the labels matter
    images = all_images(shape)
    totals = []
    for label in range(3):
        labels = torch.full((len(images),), label)
        totals.append(model.log_prob(images, labels=labels).double().exp().sum().item())
    assert max(abs(t - 1) for t in totals) < 1e-5, totals
    by_label = [model.log_prob(images, labels=torch.full((len(images),), k)) for k in (0, 1)]
    assert (by_label[0] - by_label[1]).abs().max() > 0.1  # the labels do change p(x | y)


@pytest.mark.parametrize("layer", LAYERS)
def test_log_prob_with_zero_weights_is_uniform(layer):
    for num_bits, shape in [(8, (3, 4, 5)), (1, (1, 5, 4))]:
        model = tiny(layer, shape=shape, num_bits=num_bits)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        x = torch.randint(0, 2**num_bits, (4, *shape)).float() / (2**num_bits - 1)
        uniform = math.prod(shape) * math.log(2.0**-num_bits)
        torch.testing.assert_close(model.log_prob(x), torch.full((4,), uniform))


# ---- samplers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape,num_bits,conditional",
    [((1, 6, 6), 1, False), ((3, 3, 4), 8, False), ((1, 4, 5), 8, True)],
    ids=["binary", "rgb-8bit", "conditional"],
)
@pytest.mark.parametrize("layer", LAYERS)
def test_fast_sampler_equals_sequential_sampler(layer, shape, num_bits, conditional):
    model = tiny(layer, shape=shape, num_bits=num_bits, conditional=conditional)
    labels = torch.tensor([0, 1, 2, 1]) if conditional else None
    torch.manual_seed(7)
    fast = model.sample(4, sampler="fast", labels=labels)
    torch.manual_seed(7)
    slow = model.sample(4, sampler="sequential", labels=labels)
    assert torch.equal(fast, slow)
    assert fast.shape == (4, *shape)
    levels = fast * (2**num_bits - 1)
    assert torch.equal(levels, levels.round()) and fast.min() >= 0 and fast.max() <= 1
    torch.manual_seed(8)
    assert not torch.equal(model.sample(4, labels=labels), fast)


@pytest.mark.parametrize("layer", LAYERS)
def test_samples_follow_the_model_distribution(layer):
    """Frequencies of 20,000 draws of 3x1x2 binary images (64 values) match exp(log_prob)."""
    shape = (3, 1, 2)
    model = tiny(layer, shape=shape)
    torch.nn.init.normal_(model.net.head[-1].weight, std=2.0)
    probs = model.log_prob(all_images(shape)).exp()
    samples = model.sample(20_000)
    index = (samples.flatten(1) * 2 ** torch.arange(5, -1, -1)).sum(1).long()  # row of images
    freq = torch.bincount(index, minlength=64) / 20_000
    assert 0.5 * (freq - probs).abs().sum() < 0.03


# ---- training, errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("layer", LAYERS)
def test_a_short_fit_lowers_the_validation_nll(layer, tmp_path):
    data = Digits(batch_size=64, eval_batch_size=200, val_size=0.2)
    data.setup()
    x_val = next(iter(data.val_dataloader()))[0]  # (200, 1, 8, 8)
    model = PixelRNN(
        data_shape=data.data_shape, num_bits=data.num_bits, num_classes=data.num_classes,
        layer=layer, hidden_channels=16, num_layers=2, head_channels=16,
        optimizer=lambda params: torch.optim.Adam(params, lr=1e-2),
    )  # fmt: skip
    before = model.bits_per_dim(x_val).mean().item()
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=30, limit_val_batches=1, default_root_dir=tmp_path,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, datamodule=data)
    after = model.bits_per_dim(x_val).mean().item()
    assert trainer.global_step == 30 and "val/bpd" in trainer.callback_metrics
    assert before > 7 and after < 0.7 * before, (before, after)  # 8 bits: uniform at the start


def test_clear_errors_for_bad_arguments():
    with pytest.raises(ValueError, match="'row'.*'diagonal'"):
        PixelRNN(data_shape=(1, 8, 8), layer="column")
    with pytest.raises(ValueError, match="hidden_channels"):
        PixelRNN(data_shape=(3, 8, 8), hidden_channels=4)
    with pytest.raises(ValueError, match="head_channels"):
        PixelRNN(data_shape=(3, 8, 8), head_channels=2)
    with pytest.raises(ValueError, match="odd"):
        PixelRNN(data_shape=(1, 8, 8), first_kernel_size=6)
    with pytest.raises(ValueError, match="num_layers"):
        PixelRNN(data_shape=(1, 8, 8), num_layers=0)
    with pytest.raises(ValueError, match="continuous"):
        PixelRNN(data_shape=(1, 8, 8), num_bits=None)
    with pytest.raises(ValueError, match="images"):
        PixelRNN(data_shape=(2,), num_bits=8)
    with pytest.raises(ValueError, match="odd"):
        RowLSTMLayer(4, 2, kernel_size=4)
    with pytest.raises(ValueError, match="context"):
        DiagonalBiLSTMLayer(4, 2)(torch.zeros(1, 4, 3, 3), context=torch.zeros(1, 1, 3, 3))
    binary = tiny("diagonal")
    with pytest.raises(ValueError, match="1-bit"):
        binary.log_prob(torch.full((2, 1, 8, 8), 0.5))  # 8-bit data into a binary model
    with pytest.raises(ValueError, match="shape"):
        binary.log_prob(torch.zeros(2, 1, 6, 6))
    with pytest.raises(ValueError, match="unconditional"):
        binary.sample(2, labels=torch.tensor([0, 1]))
