"""Building blocks of the autoregressive image models of the PixelCNN family (plain torch).

- `MaskedConv2d` (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", arXiv:1601.06759):
  mask A (first layer, excludes the current sub-pixel) and mask B (later layers, includes it),
  with colour channels ordered R -> G -> B inside a pixel.
- `ResidualBlock`: PixelCNN's residual block of mask-B convolutions (arXiv:1601.06759, Figure 5).
- `GatedLayer`: the vertical and horizontal stacks of Gated PixelCNN (van den Oord et al. 2016,
  "Conditional Image Generation with PixelCNN Decoders", arXiv:1606.05328, Figure 2).
- Shifted convolutions, `GatedResnet` and the discretized logistic mixture likelihood of
  PixelCNN++ (Salimans et al. 2017, arXiv:1701.05517).

Every layer's output at pixel (i, j) depends only on pixels before (i, j) in raster order and,
inside a pixel, on earlier colour channels. Masks live in buffers and are applied functionally
(`F.conv2d(x, weight * mask)`), so masked weights get zero gradient and are never edited. Layers
split their forward pass into padding and a computation on an already padded window, so the fast
samplers evaluate one row or one pixel with the very functions of the full pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MIN_LOG_SCALE = -7.0  # PixelCNN++ floors log s here, keeping each logistic wider than ~1e-3


# ---- masks and windows ----------------------------------------------------------------------
def channel_groups(num_channels: int, num_groups: int) -> Tensor:
    """The colour group (0 = R, 1 = G, 2 = B) of each of `num_channels` features: contiguous,
    near-equal blocks, so an output head with K values per colour maps group c to block c."""
    return torch.arange(num_channels) * num_groups // num_channels


def causal_mask(
    kernel_size: tuple[int, int],
    mask_type: str,
    center: tuple[int, int],
    out_groups: Tensor,
    in_groups: Tensor,
) -> Tensor:
    """(out, in, kh, kw) mask: taps before `center` in raster order are 1, taps after are 0; at
    the centre an output of group g sees inputs of group < g (mask A) or <= g (mask B)."""
    if mask_type not in ("A", "B"):
        raise ValueError(
            f"mask_type must be 'A' (first layer) or 'B' (later layers), got {mask_type!r}."
        )
    kh, kw = kernel_size
    ci, cj = center
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :ci, :] = 1
    mask[:, :, ci, :cj] = 1
    later = out_groups[:, None] > in_groups[None, :]
    same = out_groups[:, None] == in_groups[None, :]
    mask[:, :, ci, cj] = (later | same) if mask_type == "B" else later
    return mask


def window(
    t: Tensor, top: int, left: int, height: int, width: int, channels_last: bool = False
) -> Tensor:
    """t[:, :, top:top + height, left:left + width] of a (B, C, H, W) map, or the same rows and
    columns of a (B, H, W, C) map, with zeros where the window leaves the map: the zero padding
    a full-map convolution would see there. A view when it stays inside."""
    H, W = t.shape[1:3] if channels_last else t.shape[2:]
    r0, r1 = max(top, 0), min(top + height, H)
    c0, c1 = max(left, 0), min(left + width, W)
    if channels_last:
        t = t.movedim(3, 1)  # a view: (B, C, H, W) strides over the same memory
    if (r0, r1, c0, c1) == (top, top + height, left, left + width):
        part = t[:, :, r0:r1, c0:c1]
    else:
        part = t.new_zeros(*t.shape[:2], height, width)
        if r0 < r1 and c0 < c1:
            part[:, :, r0 - top : r1 - top, c0 - left : c1 - left] = t[:, :, r0:r1, c0:c1]
    return part.movedim(1, 3) if channels_last else part


def shift_down(x: Tensor) -> Tensor:
    """Row r takes row r - 1 (row 0 zeros): what sees rows <= r now sees rows < r."""
    return F.pad(x, (0, 0, 1, 0))[..., :-1, :]


def shift_right(x: Tensor) -> Tensor:
    """Column c takes column c - 1 (column 0 zeros)."""
    return F.pad(x, (1, 0, 0, 0))[..., :-1]


def gate(t: Tensor) -> Tensor:
    """tanh(a) * sigmoid(b) of the two channel halves of t (arXiv:1606.05328, eq. 2)."""
    a, b = t.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


def concat_elu(x: Tensor) -> Tensor:
    """ELU of [x, -x] along channels, the non-linearity of PixelCNN++."""
    return F.elu(torch.cat([x, -x], dim=1))


class ClassBias(nn.Module):
    """Adds a learned bias per class label to a feature map: (B, channels, H, W) and (B,)
    labels -> the same map. Zero at initialization, so a conditional model starts as the
    unconditional one; the map is returned as it is when unconditional (no labels)."""

    def __init__(self, num_classes: int, channels: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_classes, channels) if num_classes > 0 else None
        if self.embedding is not None:
            nn.init.zeros_(self.embedding.weight)

    def forward(self, t: Tensor, y: Tensor | None) -> Tensor:
        if self.embedding is None or y is None:
            return t
        return t + self.embedding(y)[:, :, None, None]


# ---- PixelCNN and Gated PixelCNN ------------------------------------------------------------
class MaskedConv2d(nn.Conv2d):
    """A convolution whose output at (i, j) sees only earlier pixels (and, at (i, j) itself,
    earlier colour groups with mask A, earlier-or-same groups with mask B).

    The mask is a buffer applied as `F.conv2d(x, weight * mask)`: masked weights get zero
    gradient and keep their values. The output has the input's size (padding is built in).

    Args:
        kernel_size: int or (kh, kw).
        mask_type: "A" or "B".
        data_channels: colour channels of the data (1 grey, 3 RGB): the number of groups.
        center: the tap that lies on the current pixel; default the middle of the kernel.
        out_groups, in_groups: colour group of each output / input channel; default contiguous
            blocks (`channel_groups`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        mask_type: str = "B",
        data_channels: int = 1,
        center: tuple[int, int] | None = None,
        bias: bool = True,
        out_groups: Tensor | None = None,
        in_groups: Tensor | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=0, bias=bias)
        kh, kw = self.kernel_size
        self.center = center or (kh // 2, kw // 2)
        ci, cj = self.center
        self.pads = (cj, kw - 1 - cj, ci, kh - 1 - ci)  # left, right, top, bottom
        out_groups = (
            channel_groups(out_channels, data_channels) if out_groups is None else out_groups
        )
        in_groups = channel_groups(in_channels, data_channels) if in_groups is None else in_groups
        mask = causal_mask(self.kernel_size, mask_type, self.center, out_groups, in_groups)
        self.mask_type = mask_type
        self.register_buffer("mask", mask)

    def pad(self, x: Tensor) -> Tensor:
        return F.pad(x, self.pads) if any(self.pads) else x

    def conv_valid(self, x: Tensor) -> Tensor:
        """The masked convolution of an already padded map (no padding added)."""
        kh, kw = self.kernel_size
        if x.shape[-2:] == (kh, kw):  # one output pixel (the samplers' case): a matrix
            # product costs a fraction of a convolution call on so small an input
            return F.linear(x.flatten(1), self._pixel_weight(kh), self.bias)[:, :, None, None]
        return F.conv2d(x, self.weight * self.mask, self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_valid(self.pad(x))  # (B, in, H, W) -> (B, out, H, W)

    def at(self, x: Tensor, i: int, j: int, channels_last: bool = False) -> Tensor:
        """The output at pixel (i, j) alone, (B, out, 1, 1), from the full input map x,
        (B, in, H, W) or (B, H, W, in) with channels_last (the samplers' caches: a window is
        then a few contiguous runs). Only the kernel rows down to the centre are read (those
        below are masked)."""
        ci, cj = self.center
        patch = window(x, i - ci, j - cj, ci + 1, self.kernel_size[1], channels_last)
        weight = self._pixel_weight(ci + 1, channels_last)
        return F.linear(patch.flatten(1), weight, self.bias)[:, :, None, None]

    def _pixel_weight(self, rows: int, channels_last: bool = False) -> Tensor:
        """The masked weight's first `rows` kernel rows as an (out, in * rows * kw) matrix,
        flattened in the order of a (B, in, rows, kw) window, or of a (B, rows, kw, in) one
        with channels_last. Without gradients (sampling asks for it at every pixel) it is kept
        until the weight changes in place, moves or is reloaded."""

        def compute() -> Tensor:
            weight = (self.weight * self.mask)[:, :, :rows]
            return (weight.permute(0, 2, 3, 1) if channels_last else weight).flatten(1)

        if torch.is_grad_enabled():
            return compute()
        key = (self.weight._version, self.weight.data_ptr(), self.weight.device)
        cache = self.__dict__.setdefault("_pixel_weights", {})
        if cache.get((rows, channels_last), (None,))[0] != key:
            cache[rows, channels_last] = (key, compute())
        return cache[rows, channels_last][1]


class ResidualBlock(nn.Module):
    """PixelCNN residual block (arXiv:1601.06759, Figure 5): ReLU, 1x1 (2h -> h), ReLU, kxk,
    ReLU, 1x1 (h -> 2h), all mask B, plus a class bias after the kxk convolution; the block
    returns x + F(x) itself, so a stack is `for block: x = block(x)` (never x + block(x)).

    The kxk convolution is the only one that looks at neighbours; `step` evaluates the block at
    one pixel given a cache of that convolution's input at the earlier pixels.
    """

    def __init__(
        self, channels: int, kernel_size: int = 3, data_channels: int = 1, num_classes: int = 0
    ) -> None:
        super().__init__()
        half = channels // 2
        self.reduce = MaskedConv2d(channels, half, 1, "B", data_channels)
        self.conv = MaskedConv2d(half, half, kernel_size, "B", data_channels)
        self.expand = MaskedConv2d(half, channels, 1, "B", data_channels)
        self.cond = ClassBias(num_classes, half)

    def conv_input(self, x: Tensor) -> Tensor:
        return F.relu(self.reduce(F.relu(x)))  # (B, 2h, ., .) -> (B, h, ., .)

    def output(self, x: Tensor, conv_out: Tensor, y: Tensor | None) -> Tensor:
        return x + self.expand(F.relu(self.cond(conv_out, y)))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.output(x, self.conv(self.conv_input(x)), y)

    def step(self, x: Tensor, cache: Tensor, i: int, j: int, y: Tensor | None) -> Tensor:
        """The block at pixel (i, j): x (B, 2h, 1, 1) there; `cache` (B, H, W, h), channels
        last, holds the kxk convolution's input at earlier pixels and receives it at (i, j)."""
        cache[:, i, j] = self.conv_input(x)[:, :, 0, 0]
        return self.output(x, self.conv.at(cache, i, j, channels_last=True), y)


class GatedLayer(nn.Module):
    """One layer of Gated PixelCNN (arXiv:1606.05328, Figure 2), without blind spot.

    Vertical stack: a (p+1) x k convolution over rows r - p .. r (p = k // 2), all k columns, so
    its output at row r sees input rows <= r and widens sideways with depth. Horizontal stack: a
    1 x (p+1) masked convolution over columns c - p .. c of the current row, plus a 1x1 link from
    the vertical pre-activation shifted down by one row, so the horizontal stack reads the
    vertical one (rows < r) and never the reverse. Both are gated, tanh(.) * sigmoid(.), with a
    class bias inside the gate; the horizontal stack has a masked 1x1 output and a residual
    connection (not in the first layer, whose input is the image and whose mask is A).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        data_channels: int = 1,
        first: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if kernel_size < 2:
            raise ValueError(f"Gated PixelCNN kernel sizes must be >= 2, got {kernel_size}.")
        p = self.p = kernel_size // 2
        groups = channel_groups(channels, data_channels)
        self.v_conv = nn.Conv2d(in_channels, 2 * channels, (p + 1, kernel_size))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_conv = MaskedConv2d(
            in_channels, 2 * channels, (1, p + 1), "A" if first else "B", data_channels,
            center=(0, p), out_groups=groups.repeat(2),  # a_k and b_k share group(k) in the gate
        )  # fmt: skip
        self.h_out = MaskedConv2d(channels, channels, 1, "B", data_channels)
        self.v_cond = ClassBias(num_classes, 2 * channels)
        self.h_cond = ClassBias(num_classes, 2 * channels)
        self.residual = not first

    # computations on padded windows, shared by the full pass and the samplers
    def vertical(self, v_padded: Tensor, y: Tensor | None) -> Tensor:
        """Vertical pre-activation, (B, in, h + p, w + 2p) -> (B, 2C, h, w)."""
        return self.v_cond(self.v_conv(v_padded), y)

    def horizontal(self, h_padded: Tensor, h: Tensor, link: Tensor, y: Tensor | None) -> Tensor:
        """Horizontal output from h padded on the left (B, in, h, w + p), h (B, in, h, w) and
        the link from the vertical stack (B, 2C, h, w)."""
        pre = self.h_cond(self.h_conv.conv_valid(h_padded) + link, y)
        out = self.h_out(gate(pre))
        return h + out if self.residual else out

    def forward(self, v: Tensor, h: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = self.p
        v_pre = self.vertical(F.pad(v, (p, p, p, 0)), y)  # (B, 2C, H, W), sees rows <= r
        link = shift_down(self.v_to_h(v_pre))  # row r now sees rows < r only
        return gate(v_pre), self.horizontal(self.h_conv.pad(h), h, link, y)

    # one row / one pixel, for the fast sampler
    def vertical_row(self, v: Tensor, r: int, y: Tensor | None) -> tuple[Tensor, Tensor]:
        """Row r of the vertical output (B, C, 1, W) and the link it gives row r + 1
        (B, 2C, 1, W), from the full vertical input map v (valid up to row r)."""
        p, W = self.p, v.shape[-1]
        v_pre = self.vertical(window(v, r - p, -p, p + 1, W + 2 * p), y)
        return gate(v_pre), self.v_to_h(v_pre)

    def horizontal_pixel(
        self, h_row: Tensor, j: int, link_row: Tensor, y: Tensor | None
    ) -> Tensor:
        """The horizontal output at column j, (B, C, 1, 1), from the current row's input
        (B, in, 1, W) (valid up to column j) and the row's link (B, 2C, 1, W)."""
        h_padded = window(h_row, 0, j - self.p, 1, self.p + 1)
        return self.horizontal(h_padded, h_row[..., j : j + 1], link_row[..., j : j + 1], y)


def output_head(
    in_channels: int, hidden: int, out_channels: int, data_channels: int
) -> nn.Sequential:
    """ReLU, masked 1x1, ReLU, masked 1x1 (mask B): the output layers of PixelCNN."""
    return nn.Sequential(
        nn.ReLU(),
        MaskedConv2d(in_channels, hidden, 1, "B", data_channels),
        nn.ReLU(),
        MaskedConv2d(hidden, out_channels, 1, "B", data_channels),
    )


# ---- PixelCNN++ -----------------------------------------------------------------------------
class DownShiftedConv2d(nn.Conv2d):
    """Output (r, c) sees rows r - kh + 1 .. r and columns c - (kw-1)/2 .. c + (kw-1)/2: the
    'up' stream of PixelCNN++ (rows above, after one `shift_down`)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size=(2, 3), stride: int = 1
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        kh, kw = self.kernel_size
        self.pads = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pads))


class DownRightShiftedConv2d(nn.Conv2d):
    """Output (r, c) sees rows r - kh + 1 .. r and columns c - kw + 1 .. c: the 'up-left'
    stream of PixelCNN++."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size=(2, 2), stride: int = 1
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        kh, kw = self.kernel_size
        self.pads = (kw - 1, 0, kh - 1, 0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pads))


class DownShiftedDeconv2d(nn.ConvTranspose2d):
    """x2 up-sampling where output row R reads input row R // 2 only (columns centred)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(2, 3)) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=2, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)  # (B, out, 2H + 1, 2W + kw - 1)
        kh, kw = self.kernel_size
        H, W = y.shape[-2:]
        return y[..., : H - kh + 1, (kw - 1) // 2 : W - (kw - 1) // 2]  # (B, out, 2H, 2W)


class DownRightShiftedDeconv2d(nn.ConvTranspose2d):
    """x2 up-sampling where output (R, C) reads input (R // 2, C // 2) only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(2, 2)) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=2, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x)  # (B, out, 2H + 1, 2W + 1)
        kh, kw = self.kernel_size
        H, W = y.shape[-2:]
        return y[..., : H - kh + 1, : W - kw + 1]  # (B, out, 2H, 2W)


class GatedResnet(nn.Module):
    """PixelCNN++ gated ResNet layer (arXiv:1701.05517, section 2.4 and Figure 2):
    c = conv(concat_elu(x)) [+ 1x1(concat_elu(aux))]; c = conv(dropout(concat_elu(c))) + class
    bias; x + a * sigmoid(b) with (a, b) the halves of c. `conv` is a shifted convolution class,
    which keeps the stream's causality."""

    def __init__(
        self,
        channels: int,
        conv: type[nn.Conv2d],
        aux_channels: int = 0,
        dropout: float = 0.5,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.conv1 = conv(2 * channels, channels)
        self.aux = nn.Conv2d(2 * aux_channels, channels, 1) if aux_channels else None
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv(2 * channels, 2 * channels)
        self.cond = ClassBias(num_classes, 2 * channels)

    def forward(self, x: Tensor, aux: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        c = self.conv1(concat_elu(x))
        if self.aux is not None:
            c = c + self.aux(concat_elu(aux))
        c = self.cond(self.conv2(self.dropout(concat_elu(c))), y)
        a, b = c.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


# ---- likelihoods: categorical / Bernoulli sampling -----------------------------------------
def sample_categorical(logits: Tensor, u: Tensor, temperature: float = 1.0) -> Tensor:
    """Inverse-CDF draw from softmax(logits / T) along the last axis with given uniforms u
    (logits.shape[:-1]); the index of the first cumulative probability above u."""
    cdf = torch.softmax(logits / temperature, dim=-1).cumsum(-1)
    return (cdf < u.unsqueeze(-1)).sum(-1).clamp(max=logits.shape[-1] - 1)


def sample_bernoulli(logits: Tensor, u: Tensor, temperature: float = 1.0) -> Tensor:
    """1 where u < sigmoid(logits / T), else 0 (long), with given uniforms u."""
    return (u < torch.sigmoid(logits / temperature)).long()


# ---- likelihoods: discretized logistic mixture (PixelCNN++) ---------------------------------
def num_coefficients(num_channels: int) -> int:
    """Coefficients of the linear dependence between channels: C (C - 1) / 2 (3 for RGB)."""
    return num_channels * (num_channels - 1) // 2


def logistic_mixture_num_params(num_channels: int, num_mixtures: int) -> int:
    """Parameters per pixel: mixture logits, C means, C log-scales, C (C-1)/2 coefficients per
    component (10 per component for RGB, 3 for grey)."""
    return num_mixtures * (1 + 2 * num_channels + num_coefficients(num_channels))


def split_logistic_mixture(
    params: Tensor, num_channels: int, num_mixtures: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(B, P, ...) -> logits (B, K, ...), means and log-scales (B, C, K, ...), coefficients
    tanh'ed into (-1, 1) (B, C (C-1)/2, K, ...), K = num_mixtures."""
    B, C, K, rest = params.shape[0], num_channels, num_mixtures, params.shape[2:]
    logits, means, log_scales, coeffs = params.split(
        [K, C * K, C * K, num_coefficients(C) * K], dim=1
    )
    means = means.reshape(B, C, K, *rest)
    log_scales = log_scales.reshape(B, C, K, *rest).clamp(min=MIN_LOG_SCALE)
    coeffs = torch.tanh(coeffs.reshape(B, num_coefficients(C), K, *rest))
    return logits, means, log_scales, coeffs


def coefficient_index(c: int, earlier: int) -> int:
    """Where coeff_{c, earlier} sits among the C (C-1)/2 coefficients: (1,0), (2,0), (2,1), ..."""
    return c * (c - 1) // 2 + earlier


def channel_means(means: Tensor, coeffs: Tensor, x: Tensor) -> Tensor:
    """Means linear in the earlier channels of the same pixel (arXiv:1701.05517, eq. 3):
    mu_c + sum_{c' < c} coeff_{c,c'} x_{c'}. means (B, C, *) and coeffs (B, C (C-1)/2, *) share
    their trailing axes; x (B, C, *') broadcasts against them."""
    return torch.stack(
        [
            means[:, c] + sum(coeffs[:, coefficient_index(c, e)] * x[:, e] for e in range(c))
            for c in range(means.shape[1])
        ],
        dim=1,
    )


def discretized_logistic_log_prob(
    x: Tensor, mean: Tensor, log_scale: Tensor, num_bits: int = 8
) -> Tensor:
    """log P(x) of a logistic(mean, exp(log_scale)) discretized to 2^b levels in [-1, 1].

    Level x owns [x - h, x + h], h = 1 / (2^b - 1), and the end levels own the tails: P(-1) =
    sigmoid(a), P(1) = 1 - sigmoid(b') with a = (x + h - mean) / s, b' = (x - h - mean) / s.
    In between, log(sigmoid(a) - sigmoid(b')) is computed without cancellation as
    log sigmoid(a) + log sigmoid(-b') + log(1 - exp(-(a - b'))), since
    sigmoid(a) - sigmoid(b') = sigmoid(a) sigmoid(-b') (1 - e^{-(a - b')}).
    """
    levels = 2**num_bits
    half = 1.0 / (levels - 1)
    inv_s = torch.exp(-log_scale)
    upper = inv_s * (x - mean + half)
    lower = inv_s * (x - mean - half)
    log_cdf_upper = F.logsigmoid(upper)
    log_sf_lower = F.logsigmoid(-lower)
    width = 2.0 * half * inv_s  # a - b'; the floor keeps log and its gradient finite when
    log_width = torch.log(-torch.expm1(-width.clamp(min=1e-30)))  # s is huge: log(1 - e^-(a-b'))
    interior = log_cdf_upper + log_sf_lower + log_width
    k = torch.round((x + 1) / (2 * half))  # level index 0 .. 2^b - 1
    return torch.where(k <= 0, log_cdf_upper, torch.where(k >= levels - 1, log_sf_lower, interior))


def discretized_logistic_mixture_log_prob(
    x: Tensor, params: Tensor, num_mixtures: int, num_bits: int = 8
) -> Tensor:
    """log p(pixel) of the PixelCNN++ likelihood (arXiv:1701.05517, section 2.1-2.2), (B, ...).

    x (B, C, ...) on the 2^b levels of [-1, 1]; params (B, P, ...) as
    `split_logistic_mixture` reads them. One mixture component is shared by the channels of a
    pixel; within it channel c is a discretized logistic whose mean is linear in the earlier
    channels: log p = logsumexp_k [log pi_k + sum_c log P_k(x_c | x_<c)].
    """
    logits, means, log_scales, coeffs = split_logistic_mixture(params, x.shape[1], num_mixtures)
    means = channel_means(means, coeffs, x.unsqueeze(2))  # (B, C, K, ...)
    per_channel = discretized_logistic_log_prob(x.unsqueeze(2), means, log_scales, num_bits)
    return torch.logsumexp(torch.log_softmax(logits, dim=1) + per_channel.sum(1), dim=1)


def quantize(y: Tensor, num_bits: int) -> Tensor:
    """The level of [-1, 1] (2^b of them) whose bin holds y; the end bins hold the tails."""
    top = 2**num_bits - 1
    k = torch.round((y.clamp(-1, 1) + 1) * top / 2)
    return 2 * k / top - 1


def sample_discretized_logistic_mixture(
    params: Tensor, u: Tensor, num_channels: int, num_mixtures: int, num_bits: int = 8,
    temperature: float = 1.0,
) -> Tensor:  # fmt: skip
    """An exact draw from the mixture with given uniforms u (B, 1 + C, ...), (B, C, ...) levels.

    u[:, 0] picks the component by inverse CDF; u[:, 1 + c] draws channel c from its logistic
    by inverse CDF, mean + s log(u / (1 - u)), and `quantize` bins it. Later channels condition on
    the binned earlier ones, as the likelihood does. Temperature T divides the mixture logits and
    multiplies the scales.
    """
    logits, means, log_scales, coeffs = split_logistic_mixture(params, num_channels, num_mixtures)
    k = sample_categorical(logits.movedim(1, -1), u[:, 0], temperature).unsqueeze(1)  # (B, 1, ...)

    def pick(t: Tensor) -> Tensor:  # (B, n, K, ...) -> (B, n, ...) at the chosen component
        return t.gather(2, k.unsqueeze(1).expand(-1, t.shape[1], *k.shape[1:])).squeeze(2)

    means, scales, coeffs = pick(means), pick(log_scales).exp() * temperature, pick(coeffs)
    eps = torch.finfo(u.dtype).eps
    x = torch.zeros_like(means)
    for c in range(num_channels):  # later channels condition on the binned earlier ones
        mean = means[:, c] + sum(coeffs[:, coefficient_index(c, e)] * x[:, e] for e in range(c))
        v = u[:, 1 + c].clamp(eps, 1 - eps)
        x[:, c] = quantize(mean + scales[:, c] * (torch.log(v) - torch.log1p(-v)), num_bits)
    return x
