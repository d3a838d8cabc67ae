"""Parallel multiscale autoregressive density estimation: exact likelihoods, O(scales) sampling.

`MultiscalePixelCNN` (Reed et al. 2017, "Parallel Multiscale Autoregressive Density
Estimation", arXiv:1703.03664). The image x (C, H, W) with H = b * 2^S is generated coarse to
fine. x_0 = x[..., ::2^S, ::2^S] (a b-high grid) comes from a small Gated PixelCNN, pixel by
pixel. Scale s doubles x_{s-1} to x_s = x[..., ::2^(S-s), ::2^(S-s)]: the pixels of every 2x2
block of x_s split into four groups by their place in the block, g = 2 * di + dj,

    group 0 (0, 0) = x_{s-1} (already known: the low-resolution image is subsampled, not
    averaged, which makes the factorization exact), then groups 1 (0, 1), 2 (1, 0), 3 (1, 1),

and each of groups 1-3 comes from one convolutional network given the groups before it, every
pixel of a group conditionally independent of the others. So

    p(x) = p_base(x_0) * prod_{s=1..S} prod_{g=1..3} prod_{pixels p of group g} p(x_p | groups < g)

is a proper distribution and `log_prob` is exact: bits/dim compares directly with PixelCNN's.
Inside a pixel the colour channels stay ordered R -> G -> B, as in PixelCNN: channel c of a
group sees the group's channels < c (at every pixel of the group) through colour-masked
convolutions, so a group of a C-channel image takes C network passes when sampling (one when
scoring). `sample()` thus makes b_h * b_w * C steps of the base model's fast sampler and then
3 * S * C network passes, however large the image.

Layout (why no zero-fill or mask channel is needed): each group network works on the
half-resolution grid of its scale, reading the space-to-depth view of x_s, (B, C, 4, h/2, w/2)
with group g at index g. Its input is exactly groups 0 .. g-1 (C * g channels, unmasked) and the
current group (C channels, colour-masked), so later groups never enter it and no masking of
pixels is needed. Its output at grid cell (i, j) scores the group-g pixel of block (i, j).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from genflow.models.pixelcnn import (
    GatedPixelCNNNet,
    Sampler,
    _check_kernels,
    _check_positive,
    _check_widths,
    _SoftmaxPixelModel,
)
from genflow.nn.autoregressive import ClassBias, channel_groups, output_head

GROUPS = 4  # pixels per 2x2 block; group 0 comes from the coarser scale


# ---- scales and layout --------------------------------------------------------------------------
def default_base_size(height: int, width: int) -> int:
    """At most two halvings, keeping the base grid at least 4 pixels a side: 7 for 28, 8 for
    32, 4 for 16, 4 for 8 (one scale), the image itself (no scales) when a side is odd."""
    halvings = 0
    while halvings < 2:
        f = 2 ** (halvings + 1)
        if height % f or width % f or min(height, width) // f < 4:
            break
        halvings += 1
    return height // 2**halvings


def num_scales(height: int, width: int, base_size: int) -> int:
    """S, the scale doublings from the base grid to the image: height = base_size * 2^S and
    width a multiple of 2^S, so that every scale halves exactly; a clear error otherwise."""
    ratio = height // base_size if 1 <= base_size <= height else 0
    if ratio == 0 or height % base_size or ratio & (ratio - 1) or width % ratio:
        raise ValueError(
            f"MultiscalePixelCNN halves the image exactly at every scale down to base_size: the "
            f"height must be base_size * 2^S and the width a multiple of 2^S, but the data is "
            f"{height}x{width} and base_size is {base_size}. Choose a base_size such as "
            f"{default_base_size(height, width)} (the default when base_size is left out)."
        )
    return ratio.bit_length() - 1


def space_to_depth(x: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, C, 4, h/2, w/2): index g = 2 * di + dj holds x[..., di::2, dj::2]."""
    B, C, h, w = x.shape
    blocks = x.reshape(B, C, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)  # (B, C, 2, 2, ., .)
    return blocks.reshape(B, C, GROUPS, h // 2, w // 2)


def depth_to_space(blocks: Tensor) -> Tensor:
    """The inverse of `space_to_depth`: (B, C, 4, h, w) -> (B, C, 2h, 2w)."""
    B, C, _, h, w = blocks.shape
    x = blocks.reshape(B, C, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)  # (B, C, h, 2, w, 2)
    return x.reshape(B, C, 2 * h, 2 * w)


# ---- networks -----------------------------------------------------------------------------------
class ColourMaskedConv2d(nn.Conv2d):
    """A same-size kxk convolution masked by colour only: an output feature of colour c sees
    input features of colour < c (mask A) or <= c (mask B) at every tap; inputs of colour -1
    (the known groups) reach every output. Spatially unmasked: the pixels it reads are known or
    are the current group's, whose colour order is the only one to keep. The mask is a buffer
    applied functionally, so masked weights get zero gradient."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        out_colours: Tensor,
        in_colours: Tensor,
        mask_type: str,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        later = out_colours[:, None] > in_colours[None, :]
        seen = later if mask_type == "A" else later | (out_colours[:, None] == in_colours)
        self.register_buffer("mask", seen.float()[:, :, None, None])  # (out, in, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class GroupResBlock(nn.Module):
    """h + conv(relu(conv(relu(h)) + class bias)), both convolutions colour-masked (mask B)."""

    def __init__(
        self, channels: int, kernel_size: int, data_channels: int, num_classes: int
    ) -> None:
        super().__init__()
        colours = channel_groups(channels, data_channels)
        self.conv1 = ColourMaskedConv2d(channels, channels, kernel_size, colours, colours, "B")
        self.conv2 = ColourMaskedConv2d(channels, channels, kernel_size, colours, colours, "B")
        self.cond = ClassBias(num_classes, channels)

    def forward(self, h: Tensor, y: Tensor | None = None) -> Tensor:
        return h + self.conv2(F.relu(self.cond(self.conv1(F.relu(h)), y)))


class GroupNet(nn.Module):
    """The likelihood parameters of one pixel group from the groups before it, on the
    half-resolution grid of its scale: a colour-masked kxk input convolution (mask A on the
    current group), residual blocks and PixelCNN's masked 1x1 output layers.

    (B, C * known_groups, h, w) known groups and (B, C, h, w) current group -> (B, P, h, w).
    """

    def __init__(
        self,
        data_channels: int,
        known_groups: int,
        out_channels: int,
        hidden_channels: int,
        num_blocks: int,
        kernel_size: int,
        head_channels: int,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        C = data_channels
        known = torch.full((C * known_groups,), -1)  # every output may read the known groups
        in_colours = torch.cat([known, torch.arange(C)])
        hidden_colours = channel_groups(hidden_channels, C)
        self.input_conv = ColourMaskedConv2d(
            len(in_colours), hidden_channels, kernel_size, hidden_colours, in_colours, "A"
        )
        self.input_cond = ClassBias(num_classes, hidden_channels)
        self.blocks = nn.ModuleList(
            GroupResBlock(hidden_channels, kernel_size, C, num_classes) for _ in range(num_blocks)
        )
        self.head = output_head(hidden_channels, head_channels, out_channels, C)

    def forward(self, known: Tensor, current: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.input_cond(self.input_conv(torch.cat([known, current], dim=1)), y)
        for block in self.blocks:
            h = block(h, y)
        return self.head(h)


class MultiscaleNet(nn.Module):
    """A Gated PixelCNN on the base grid and three `GroupNet`s per scale doubling.

    forward: (B, C, H, W) in [-1, 1] -> (B, P, H, W), the parameters of every sub-pixel given
    those before it in the multiscale order, laid out like a PixelCNN's output.
    """

    def __init__(
        self,
        data_channels: int,
        out_channels: int,
        scales: int,
        hidden_channels: int,
        num_blocks: int,
        base_layers: int,
        kernel_size: int,
        first_kernel_size: int,
        head_channels: int,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        C = data_channels
        self.base = GatedPixelCNNNet(
            C, out_channels, hidden_channels, base_layers, kernel_size, first_kernel_size,
            head_channels, num_classes,
        )  # fmt: skip
        widths = (out_channels, hidden_channels, num_blocks, kernel_size, head_channels)
        self.groups = nn.ModuleList(
            nn.ModuleList(GroupNet(C, g, *widths, num_classes) for g in range(1, GROUPS))
            for _ in range(scales)
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        S = len(self.groups)
        params = self.base(x[..., :: 2**S, :: 2**S], y)  # (B, P, H / 2^S, W / 2^S)
        for s, nets in enumerate(self.groups):
            step = 2 ** (S - 1 - s)
            params = self.upscale(nets, x[..., ::step, ::step], params, y)
        return params

    @staticmethod
    def upscale(nets: nn.ModuleList, x: Tensor, coarse: Tensor, y: Tensor | None) -> Tensor:
        """The parameters at one scale (B, P, h, w) from its image x (B, C, h, w) and the
        coarser scale's parameters (B, P, h/2, w/2), which score group 0."""
        B, _, h, w = x.shape
        blocks = space_to_depth(x)  # (B, C, 4, h/2, w/2)
        params = coarse.new_empty(B, coarse.shape[1], h, w)
        params[..., 0::2, 0::2] = coarse
        for g, net in enumerate(nets, start=1):
            di, dj = divmod(g, 2)
            params[..., di::2, dj::2] = net(blocks[:, :, :g].flatten(1, 2), blocks[:, :, g], y)
        return params


# ---- the LightningModule ------------------------------------------------------------------------
class MultiscalePixelCNN(_SoftmaxPixelModel):
    """Parallel multiscale PixelCNN (Reed et al. 2017, arXiv:1703.03664): a Gated PixelCNN on a
    subsampled base grid, then per scale doubling three networks that fill in the other three
    pixels of every 2x2 block, one group at a time, all pixels of a group at once (see the
    module docstring for the order). A 2^b-way softmax per sub-pixel, or a Bernoulli for
    binarized data, like PixelCNN.

    Loss: -log p(x) in nats summed over the sub-pixels, averaged over the batch. val/test log
    `nll` (nats per image) and `bpd`, exact over the whole split. `sample()` makes
    base_h * base_w * C fast base-sampler steps, then 3 * C network passes per scale.

    Args:
        base_size: height of the base grid; the height must be base_size * 2^S and the width a
            multiple of 2^S. Default: at most two halvings keeping the base >= 4 a side (7 for
            28, 8 for 32, 4 for 16).
        hidden_channels: features of the base Gated PixelCNN and of every group network.
        num_blocks: residual blocks of each group network.
        base_layers: gated layers of the base model, the first with mask A.
        kernel_size: k of the group networks and of the base model's later layers.
        first_kernel_size: k of the base model's first layer.
        head_channels: width of the hidden 1x1 output layer (base and groups).
        conditional: learn a bias per class label in every layer; then `sample(labels=...)`.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        base_size: int | None = None,
        hidden_channels: int = 64,
        num_blocks: int = 2,
        base_layers: int = 5,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        head_channels: int = 64,
        conditional: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, conditional, optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        C, H, W = self.data_shape
        _check_widths(type(self).__name__, C, hidden_channels=(hidden_channels, C),
                      head_channels=(head_channels, C))  # fmt: skip
        _check_kernels(kernel_size=kernel_size, first_kernel_size=first_kernel_size)
        _check_positive(num_blocks=num_blocks, base_layers=base_layers)
        self.base_size = default_base_size(H, W) if base_size is None else base_size
        self.scales = num_scales(H, W, self.base_size)
        self.net = MultiscaleNet(
            C, C * self._outputs_per_channel, self.scales, hidden_channels, num_blocks,
            base_layers, kernel_size, first_kernel_size, head_channels, self._label_classes,
        )  # fmt: skip

    @property
    def base_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the base grid."""
        C, H, W = self.data_shape
        return C, H >> self.scales, W >> self.scales

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        labels: Tensor | None = None,
        temperature: float = 1.0,
        sampler: Sampler = "fast",
    ) -> Tensor:
        """`num_samples` images in [0, 1] (k / (2^b - 1)): the base grid sub-pixel by sub-pixel,
        then each group of each scale in one network pass per colour channel.

        labels, temperature: as for PixelCNN. sampler: how the base model is evaluated, "fast"
        (its caching sampler) or "sequential" (its whole network per sub-pixel); the same
        images for the same seed.
        """
        y = self._check_sampling(num_samples, labels, temperature, sampler)
        was_training = self.training
        self.eval()
        try:
            k = self._sample_raster(
                self.net.base, self.base_shape, num_samples, y, temperature, sampler == "fast"
            )  # the base grid, as the family samples
            for nets in self.net.groups:
                k = self._sample_scale(nets, k, y, temperature)
        finally:
            self.train(was_training)
        return k.float() / (self.levels - 1)

    def _sample_scale(
        self, nets: nn.ModuleList, coarse: Tensor, y: Tensor | None, temperature: float
    ) -> Tensor:
        """Level indices (n, C, 2h, 2w) from the coarser scale's (n, C, h, w): groups 1-3 in
        turn, each colour channel of a group for all its pixels in one pass."""
        n, C, h, w = coarse.shape
        blocks = coarse.new_zeros(n, C, GROUPS, h, w)
        blocks[:, :, 0] = coarse
        x = self._to_net(blocks.float() / (self.levels - 1))  # the live network input
        for g, net in enumerate(nets, start=1):
            noise = torch.rand(n * h * w, C, device=self.device)  # one uniform per sub-pixel
            for c in self._substeps():
                params = net(x[:, :, :g].flatten(1, 2), x[:, :, g], y)  # (n, P, h, w)
                params = params.permute(0, 2, 3, 1).reshape(n * h * w, -1)  # a row per pixel
                channels, levels = self._draw(params, noise, c, temperature)  # (n h w, 1)
                levels = levels.view(n, h, w, 1).permute(0, 3, 1, 2)  # (n, 1, h, w)
                blocks[:, channels, g] = levels
                x[:, channels, g] = self._to_net(levels.float() / (self.levels - 1))
        return depth_to_space(blocks)
