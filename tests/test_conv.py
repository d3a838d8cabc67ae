import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genflow.nn.conv import (
    conv_output_size,
    conv_transpose_output_size,
    round_trip_output_padding,
    same_size_after_round_trip,
)


def _row(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(1, 1, -1)  # (batch, channels, length)


# ---- the seed's examples ------------------------------------------------------------------
def test_conv1d_is_cross_correlation_so_an_impulse_comes_out_reversed():
    x, w = _row([0, 0, 1, 0, 0, 0, 0]), _row([1, 2, 3])
    # PyTorch's conv1d computes y[i] = sum_k x[i + k] w[k] (cross-correlation, the kernel is
    # not flipped): the window starting at i = 0 sees the 1 under w[2] = 3, at i = 1 under
    # w[1] = 2, at i = 2 under w[0] = 1, after which the 1 has left the window. Hence the seed's
    # [3, 2, 1, 0, 0]: 7 - 3 + 1 = 5 values holding the kernel reversed.
    y = F.conv1d(x, w)
    assert y.flatten().tolist() == [3, 2, 1, 0, 0]
    assert y.shape[-1] == conv_output_size(7, 3)
    # the convolution of signal processing, sum_k x[i + 2 - k] w[k], is conv1d with w flipped
    assert F.conv1d(x, w.flip(-1)).flatten().tolist() == [1, 2, 3, 0, 0]


def test_conv_transpose1d_spreads_an_impulse_as_the_kernel():
    # y[j] = sum_i x[i] w[j - i]: the 1 at i = 2 writes w at positions 2, 3, 4. From the seed's
    # 7-value input the output has (7 - 1) + 3 = 9 values, [0, 0, 1, 2, 3, 0, 0, 0, 0]; the
    # seed's 8-value [0, 0, 1, 2, 3, 0, 0, 0] is that without its last zero, or the output for
    # the 6-value input [0, 0, 1, 0, 0, 0]. Both are checked.
    w = _row([1, 2, 3])
    y7 = F.conv_transpose1d(_row([0, 0, 1, 0, 0, 0, 0]), w).flatten()
    assert y7.tolist() == [0, 0, 1, 2, 3, 0, 0, 0, 0] and len(y7) == conv_transpose_output_size(
        7, 3
    )
    y6 = F.conv_transpose1d(_row([0, 0, 1, 0, 0, 0]), w).flatten()
    assert y6.tolist() == [0, 0, 1, 2, 3, 0, 0, 0] and len(y6) == conv_transpose_output_size(6, 3)


def test_conv_transpose1d_module_on_the_seed_example():
    layer = nn.ConvTranspose1d(1, 1, kernel_size=3, bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(_row([1, 2, -1]))
    y = layer(_row([2, 3, 0, -1])).flatten()
    # by hand: y[j] = sum_i x[i] w[j - i]
    # [2*1, 2*2 + 3*1, 2*(-1) + 3*2 + 0*1, 3*(-1) + 0*2 + (-1)*1, 0*(-1) + (-1)*2, (-1)*(-1)]
    assert y.tolist() == [2, 7, 4, -4, -2, 1]
    assert len(y) == conv_transpose_output_size(4, 3)


def test_transposed_convolution_is_the_adjoint_of_convolution():
    # <conv(x), y> = <x, conv_transpose(y)> for the same weight and stride: hence the name
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 2, 4, generator=g, dtype=torch.float64)  # (out, in, kernel)
    for stride, padding in [(1, 0), (2, 1), (3, 2)]:
        x = torch.randn(2, 2, 17, generator=g, dtype=torch.float64)
        cx = F.conv1d(x, w, stride=stride, padding=padding)
        y = torch.randn(cx.shape, generator=g, dtype=torch.float64)
        op = round_trip_output_padding(17, 4, stride, padding)
        cty = F.conv_transpose1d(y, w, stride=stride, padding=padding, output_padding=op)
        assert cty.shape == x.shape
        assert torch.allclose((cx * y).sum(), (x * cty).sum())


# ---- the round-trip rule W = w + s q ------------------------------------------------------
def test_round_trip_keeps_the_size_exactly_when_w_plus_s_times_q():
    checked = 0
    for kernel, stride in itertools.product(range(1, 6), range(1, 5)):
        conv = nn.Conv1d(1, 1, kernel, stride)
        deconv = nn.ConvTranspose1d(1, 1, kernel, stride)
        for size in range(kernel, 30):
            out = deconv(conv(torch.zeros(1, 1, size))).shape[-1]
            rule = (size - kernel) % stride == 0  # size = kernel + stride * q, q >= 0
            assert (out == size) == rule == same_size_after_round_trip(size, kernel, stride)
            # the missing output_padding restores every other size
            op = round_trip_output_padding(size, kernel, stride)
            deconv_op = nn.ConvTranspose1d(1, 1, kernel, stride, output_padding=op)
            assert deconv_op(conv(torch.zeros(1, 1, size))).shape[-1] == size
            checked += 1
    assert checked == sum(30 - k for k in range(1, 6)) * 4


def test_round_trip_with_padding_and_dilation_matches_torch():
    for size, kernel, stride, padding, dilation in itertools.product(
        [9, 16, 28], [3, 4], [1, 2, 3], [0, 1, 2], [1, 2]
    ):
        args = dict(stride=stride, padding=padding, dilation=dilation)
        conv = nn.Conv1d(1, 1, kernel, **args)
        deconv = nn.ConvTranspose1d(1, 1, kernel, **args)
        out = deconv(conv(torch.zeros(1, 1, size))).shape[-1]
        assert (out == size) == same_size_after_round_trip(size, kernel, **args)


# ---- the helpers agree with PyTorch's modules ---------------------------------------------
def _torch_size(module, size, *args, **kwargs):
    """Output height and width of a 2-D (transposed) convolution module, or None if it fails."""
    try:
        return tuple(module(1, 1, *args, **kwargs)(torch.zeros(1, 1, *size)).shape[-2:])
    except RuntimeError:
        return None


def _helper_size(helper, size, settings):
    try:
        return tuple(helper(s, *per_dim) for s, per_dim in zip(size, settings, strict=True))
    except ValueError:
        return None


def _random_settings(g, n):
    def pick(values):
        return values[int(torch.randint(len(values), (1,), generator=g))]

    for _ in range(n):
        size = (pick([1, 2, 5, 8, 13]), pick([3, 4, 7, 16]))
        yield (
            size,
            [
                (
                    pick([1, 2, 3, 5]),
                    pick([1, 2, 3]),
                    pick([0, 1, 2]),
                    pick([0, 1, 2]),
                    pick([1, 2]),
                )
                for _ in size
            ],
        )  # per dimension: kernel, stride, padding, output_padding, dilation


def test_helpers_agree_with_conv2d_and_conv_transpose2d_over_a_sweep():
    g = torch.Generator().manual_seed(0)
    failures = {"conv": 0, "transpose": 0}
    for size, settings in _random_settings(g, 300):
        k, s, p, op, d = (tuple(v) for v in zip(*settings, strict=True))  # each (dim_h, dim_w)
        conv_size = _torch_size(nn.Conv2d, size, k, s, p, dilation=d)
        no_op = [(ki, si, pi, di) for ki, si, pi, _, di in settings]
        assert conv_size == _helper_size(conv_output_size, size, no_op)
        deconv_size = _torch_size(nn.ConvTranspose2d, size, k, s, p, op, dilation=d)
        assert deconv_size == _helper_size(conv_transpose_output_size, size, settings)
        failures["conv"] += conv_size is None
        failures["transpose"] += deconv_size is None
    # the sweep reaches both the valid settings and the ones both sides reject
    assert 0 < failures["conv"] < 300 and 0 < failures["transpose"] < 300


def test_numpy_integers_are_sizes_like_python_ints():
    sizes = np.arange(4, 9)  # sizes often come from array arithmetic
    assert [conv_output_size(n, kernel=3, stride=np.int64(2)) for n in sizes] == [1, 2, 2, 3, 3]
    assert conv_transpose_output_size(np.int32(14), kernel=4, stride=2, padding=1) == 28
    assert same_size_after_round_trip(np.int64(7), kernel=3, stride=2)


# ---- clear errors -------------------------------------------------------------------------
def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="kernel spans 5 .* only 4"):
        conv_output_size(4, kernel=3, dilation=2)
    with pytest.raises(ValueError, match="stride must be an integer >= 1, got 0"):
        conv_output_size(8, kernel=3, stride=0)
    with pytest.raises(ValueError, match="padding must be an integer >= 0, got -1"):
        conv_output_size(8, kernel=3, padding=-1)
    with pytest.raises(ValueError, match="size must be an integer >= 1, got 2.5"):
        conv_output_size(2.5, kernel=1)
    with pytest.raises(ValueError, match="kernel must be an integer >= 1, got True"):
        conv_output_size(8, kernel=True)
    with pytest.raises(ValueError, match="smaller than the stride or the dilation"):
        conv_transpose_output_size(4, kernel=3, stride=2, output_padding=2)
    assert conv_transpose_output_size(4, kernel=3, stride=1, output_padding=1, dilation=2) == 9
    with pytest.raises(ValueError, match="formula gives -1 .*Lower the padding"):
        conv_transpose_output_size(1, kernel=1, padding=1, output_padding=0)
