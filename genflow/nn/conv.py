"""Convolution arithmetic along one spatial dimension (apply it per dimension): the output size
of a convolution and of a transposed convolution, and when a convolution followed by the
matching transposed convolution gives back the input size (Dumoulin & Visin 2016, "A guide to
convolution arithmetic for deep learning", arXiv:1603.07285). The formulas are PyTorch's, for
nn.Conv1d/2d/3d and nn.ConvTranspose1d/2d/3d with integer padding.
"""

from __future__ import annotations

from numbers import Integral


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1.

    >>> conv_output_size(28, kernel=4, stride=2, padding=1)
    14
    """
    _check(size=size, kernel=kernel, stride=stride, dilation=dilation)
    _check(padding=padding, minimum=0)
    span = dilation * (kernel - 1) + 1  # the input extent one output value sees
    padded = size + 2 * padding
    if span > padded:
        raise ValueError(
            f"The convolution has no output: its kernel spans {span} values (dilation * "
            f"(kernel - 1) + 1) but the padded input has only {padded} (size {size} + 2 * "
            f"padding {padding}). Use a larger input, more padding or a smaller kernel."
        )
    return (padded - span) // stride + 1


def conv_transpose_output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    output_padding: int = 0,
    dilation: int = 1,
) -> int:
    """(size - 1) stride - 2 padding + dilation (kernel - 1) + output_padding + 1.

    `output_padding` picks one of the `stride` input sizes a convolution maps to `size`, so
    PyTorch requires it to be smaller than the stride or smaller than the dilation.

    >>> conv_transpose_output_size(14, kernel=4, stride=2, padding=1)
    28
    """
    _check(size=size, kernel=kernel, stride=stride, dilation=dilation)
    _check(padding=padding, output_padding=output_padding, minimum=0)
    if output_padding >= stride and output_padding >= dilation:
        raise ValueError(
            f"output_padding must be smaller than the stride or the dilation, got "
            f"output_padding={output_padding} with stride={stride}, dilation={dilation}."
        )
    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    if out < 1:
        raise ValueError(
            f"The transposed convolution has no output: the formula gives {out} for size "
            f"{size}, kernel {kernel}, stride {stride}, padding {padding}, output_padding "
            f"{output_padding}, dilation {dilation}. Lower the padding."
        )
    return out


def round_trip_output_padding(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> int:
    """The output_padding that makes the transposed convolution with the same kernel, stride,
    padding and dilation map a convolution's output back to `size`: the remainder
    (size + 2 padding - dilation (kernel - 1) - 1) mod stride, which the convolution's floor
    drops. It is always smaller than the stride, so PyTorch accepts it.

    >>> round_trip_output_padding(28, kernel=3, stride=2, padding=1)
    1
    """
    conv_output_size(size, kernel, stride, padding, dilation)  # checks the arguments
    return (size + 2 * padding - dilation * (kernel - 1) - 1) % stride


def same_size_after_round_trip(
    size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1
) -> bool:
    """Whether a convolution followed by the matching transposed convolution (same kernel,
    stride, padding, dilation; no output_padding) gives back `size` exactly.

    Without padding or dilation this is the rule W = w + s q for an integer q >= 0: the
    convolution's floor((W - w) / s) drops nothing exactly when s divides W - w.

    >>> same_size_after_round_trip(7, kernel=3, stride=2), same_size_after_round_trip(8, 3, 2)
    (True, False)
    """
    return round_trip_output_padding(size, kernel, stride, padding, dilation) == 0


def _check(minimum: int = 1, **values: int) -> None:
    for name, value in values.items():
        # numpy's integers count (sizes often come from array arithmetic); bools do not
        if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def receptive_field(
    kernels: list[int] | tuple[int, ...],
    strides: list[int] | tuple[int, ...],
    dilations: list[int] | tuple[int, ...] | None = None,
) -> int:
    """How many input values, along one dimension, one output value of a chain of convolutions
    sees. With r_0 = 1 and j_0 = 1 (j_l: the input distance between neighbouring outputs of
    layer l), r_l = r_{l-1} + d_l (k_l - 1) j_{l-1} and j_l = j_{l-1} s_l (Araujo et al. 2019,
    Distill, "Computing Receptive Fields of Convolutional Neural Networks", eq. 2; Dumoulin &
    Visin 2016, arXiv:1603.07285). Padding moves the field but does not change its size.

    >>> receptive_field([4, 4, 4, 4, 4], [2, 2, 2, 1, 1])  # pix2pix's 70x70 PatchGAN
    70
    """
    dilations = [1] * len(kernels) if dilations is None else dilations
    if not len(kernels) == len(strides) == len(dilations):
        raise ValueError(
            f"Give one kernel, stride and dilation per layer; got {len(kernels)} kernels, "
            f"{len(strides)} strides and {len(dilations)} dilations."
        )
    field, jump = 1, 1
    for kernel, stride, dilation in zip(kernels, strides, dilations, strict=True):
        _check(kernel=kernel, stride=stride, dilation=dilation)
        field, jump = field + dilation * (kernel - 1) * jump, jump * stride
    return field
