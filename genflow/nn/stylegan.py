"""StyleGAN networks: an MLP mapping z -> w, a synthesis network driven by per-layer styles
through modulated convolutions, and a residual discriminator with minibatch standard deviation.

Karras et al. 2019, "A Style-Based Generator Architecture for GANs" (arXiv:1812.04948): the
mapping network, learned constant input, per-layer noise, style mixing and truncation. Karras et
al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958): weight
modulation / demodulation instead of AdaIN, toRGB skip outputs and the residual discriminator.

Every layer uses the equalized learning rate (Karras et al. 2018, arXiv:1710.10196, sec. 4.1):
weights are stored at a unit scale and multiplied at run time by their He constant, so Adam's
step is the same size relative to every weight.

Layers, sizes and styles. One `size` (28, 32 or 64) picks the resolutions of the synthesis
blocks, each up-sampled bilinearly to the next with `F.interpolate(size=...)`, so 28 needs no
crop: 28 -> 4, 7, 14, 28; 32 -> 4, 8, 16, 32; 64 -> 4, 8, 16, 32, 64. The 4x4 block has one
convolution, the others two (the first up-samples), and each block ends in a toRGB whose image
is up-sampled and added to the next block's (the "skip" generator). Following Karras et al. 2020,
a toRGB shares its style with the next block's first convolution, so there are
`num_ws = 2 * num_blocks` styles: index 0 drives the 4x4 convolution; index 2i - 1 and 2i the two
convolutions of block i (2i - 1 also the toRGB of block i - 1); the last index the final toRGB.
The paper's groups (Karras et al. 2019, sec. 3.1: coarse 4^2-8^2, middle 16^2-32^2, fine
64^2-1024^2) become, for these small sizes (see `style_groups`):

    size 28: coarse 0-2 (4, 7 px)   middle 3-4 (14 px)       fine 5-7 (28 px)
    size 32: coarse 0-2 (4, 8 px)   middle 3-4 (16 px)       fine 5-7 (32 px)
    size 64: coarse 0-2 (4, 8 px)   middle 3-6 (16, 32 px)   fine 7-9 (64 px)

Below 64 px no layer is "fine" in the paper's sense, so the last (full-resolution) block is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NoiseMode = Literal["random", "const", "none"]

#: Resolutions of the synthesis blocks (and, reversed, of the discriminator's) for each size.
RESOLUTIONS: dict[int, tuple[int, ...]] = {
    28: (4, 7, 14, 28),
    32: (4, 8, 16, 32),
    64: (4, 8, 16, 32, 64),
}
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2)  # keeps the signal's second moment through leaky ReLU (He et al.)


def check_size(size: int) -> tuple[int, ...]:
    """The block resolutions for `size`; any size but 28, 32 and 64 is an error."""
    if size not in RESOLUTIONS:
        raise ValueError(
            f"StyleGAN networks are built for square images of side 28, 32 or 64, got {size}. "
            f"Resize the images (e.g. FolderDataModule's image_size) to one of these sides."
        )
    return RESOLUTIONS[size]


def layer_widths(num_blocks: int, channels: int, max_channels: int) -> list[int]:
    """Feature widths from the 4x4 block to the full-resolution one: `channels` at full
    resolution, doubling per halving of the side, capped at `max_channels`."""
    if channels < 1 or max_channels < 1:
        raise ValueError(
            f"channels and max_channels must be >= 1, got {channels} and {max_channels}."
        )
    return [min(channels * 2 ** (num_blocks - 1 - i), max_channels) for i in range(num_blocks)]


# ---- plain functions --------------------------------------------------------------------------
def lrelu(x: Tensor) -> Tensor:
    """Leaky ReLU (slope 0.2) times sqrt(2), the activation of every StyleGAN layer."""
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


def normalize_2nd_moment(z: Tensor, eps: float = 1e-8) -> Tensor:
    """Pixel norm of the latent: z / sqrt(mean(z^2)) over its features, (B, D) -> (B, D)."""
    return z * (z.square().mean(1, keepdim=True) + eps).rsqrt()


def modulated_conv2d(
    x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, eps: float = 1e-8
) -> Tensor:
    """Karras et al. 2020, sec. 2.2, eqs. 1-3: scale the input channels of `weight` by each
    example's style, w'_ijk = s_i w_ijk, and with `demodulate` rescale each output channel to
    unit norm, w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps), so that unit-variance inputs give
    unit-variance outputs.

    Computed without building per-example weights: a convolution is linear in its input, so
    conv(x, s_i w_ijk) = conv(s_i x_i, w_ijk), and the demodulation factor of output j is a
    per-example scalar, 1 / sqrt(sum_i s_i^2 sum_k w_ijk^2 + eps). One ordinary batched
    convolution then does the work of B grouped ones (13x faster at 7x7 on a CPU thread).

    x (B, C_in, H, W), weight (C_out, C_in, k, k), styles (B, C_in) -> (B, C_out, H, W).
    """
    k = weight.shape[-1]
    out = F.conv2d(x * styles[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=k // 2)
    if demodulate:
        d = (styles.square() @ weight.square().sum(dim=(2, 3)).T + eps).rsqrt()  # (B, C_out)
        out = out * d[:, :, None, None].to(out.dtype)
    return out  # (B, C_out, H, W)


def broadcast_ws(w: Tensor, num_ws: int) -> Tensor:
    """One w per layer: (B, w_dim) -> (B, num_ws, w_dim)."""
    return w[:, None, :].expand(-1, num_ws, -1)


def truncate(w: Tensor, w_avg: Tensor, psi: float) -> Tensor:
    """The truncation trick in W (Karras et al. 2019, sec. 3.1, eq. 2): w' = w_avg + psi (w -
    w_avg). psi = 1 leaves w as it is, psi = 0 gives the mean w, negative psi the "anti-face".
    w (B, ..., w_dim), w_avg (w_dim,)."""
    return w_avg.to(w.dtype).lerp(w, psi) if psi != 1 else w


def mix_styles(
    w1: Tensor, w2: Tensor, crossover: int | Tensor, stop: int | Tensor | None = None
) -> Tensor:
    """Style mixing (Karras et al. 2019, sec. 3.1): the styles of `w1` with layers
    [crossover, stop) taken from `w2` (up to the last layer when `stop` is None). Each bound is an
    int or one per example (B,). w1, w2 (B, num_ws, w_dim) -> (B, num_ws, w_dim).

    `mix_styles(wa, wb, c)` is wa's coarse styles with wb's finer ones; copying one group of
    layers (`style_groups`) from wb is `mix_styles(wa, wb, start, stop)`.
    """
    num_ws = w1.shape[1]
    layer = torch.arange(num_ws, device=w1.device)  # (num_ws,)
    crossover = torch.as_tensor(crossover, device=w1.device).reshape(-1, 1)  # (B or 1, 1)
    stop = num_ws if stop is None else stop
    stop = torch.as_tensor(stop, device=w1.device).reshape(-1, 1)
    from_w2 = (layer >= crossover) & (layer < stop)  # (B or 1, num_ws)
    return torch.where(from_w2[..., None], w2, w1)


def style_mixing_crossovers(
    n: int, num_ws: int, prob: float, generator: torch.Generator | None = None
) -> Tensor:
    """Crossover layers for style mixing regularization (Karras et al. 2019, sec. 3.1): with
    probability `prob` an example mixes two codes at a crossover drawn uniformly from
    1..num_ws - 1, otherwise it gets num_ws (no mixing). (n,) int64, on `generator`'s device."""
    device = generator.device if generator is not None else None
    crossover = torch.randint(1, num_ws, (n,), generator=generator, device=device)
    mixed = torch.rand(n, generator=generator, device=device) < prob
    return torch.where(mixed, crossover, torch.full_like(crossover, num_ws))


def minibatch_stddev(x: Tensor, group_size: int = 4, num_channels: int = 1) -> Tensor:
    """Append the standard deviation of features across groups of examples as extra channels
    (Karras et al. 2018, arXiv:1710.10196, sec. 3), which lets the discriminator see a lack of
    variety. Groups hold the largest divisor of B not above `group_size` (B = 7 gives 7
    groups of one, whose deviation is 0). (B, C, H, W) -> (B, C + num_channels, H, W).
    """
    b, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, b) + 1) if b % d == 0)
    f = num_channels
    y = x.reshape(g, b // g, f, c // f, h, w)  # (G, n, F, c, H, W): example j pairs with j + n
    y = (y - y.mean(0)).square().mean(0)  # variance over each group, (n, F, c, H, W)
    y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))  # (n, F)
    y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # (B, F, H, W)
    return torch.cat([x, y.to(x.dtype)], dim=1)


class MinibatchStddev(nn.Module):
    """`minibatch_stddev` in training; in evaluation the appended feature is the running mean of
    the training groups' values (momentum `momentum`, like BatchNorm's running statistics), so
    that a validation score of one image does not depend on the other images in its batch, and
    validation figures are the same however the split is batched or spread over DDP ranks. The
    running value is a buffer: saved in checkpoints, and per rank under DDP, as BatchNorm's."""

    def __init__(self, group_size: int = 4, num_channels: int = 1, momentum: float = 0.1) -> None:
        super().__init__()
        self.group_size, self.num_channels, self.momentum = group_size, num_channels, momentum
        self.register_buffer("running_stddev", torch.zeros(num_channels))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            out = minibatch_stddev(x, self.group_size, self.num_channels)
            with torch.no_grad():
                batch = out[:, x.shape[1] :, 0, 0].mean(0).to(self.running_stddev.dtype)  # (F,)
                self.running_stddev.lerp_(batch, self.momentum)
            return out
        b, _, h, w = x.shape
        feature = self.running_stddev.to(x.dtype)[None, :, None, None].expand(b, -1, h, w)
        return torch.cat([x, feature], dim=1)  # (B, C + F, H, W)


# ---- equalized learning rate ------------------------------------------------------------------
class EqualLinear(nn.Module):
    """A linear layer with the equalized learning rate: y = x (c W)^T + lr_multiplier b, with
    c = lr_multiplier / sqrt(in_dim). W is stored as N(0, 1 / lr_multiplier^2), so the weight
    in use starts at N(0, 1 / in_dim) whatever the multiplier, while Adam's steps on the stored
    W move it lr_multiplier times as fast as a plain layer's: the mapping network's 0.01 is the
    paper's lower learning rate for it (Karras et al. 2019, appendix C: "lambda' = 0.01 lambda").
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_multiplier)
        self.bias = (
            nn.Parameter(torch.full((out_dim,), bias_init / lr_multiplier)) if bias else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_dim)
        self.lr_multiplier = lr_multiplier
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias * self.lr_multiplier
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return lrelu(x) if self.activation else x


class EqualConv2d(nn.Module):
    """A stride-1, same-padded convolution with the equalized learning rate (gain 1 / sqrt(fan
    in)), optionally followed by the scaled leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(
            x, self.weight * self.weight_gain, self.bias, padding=self.weight.shape[-1] // 2
        )
        return lrelu(x) if self.activation else x


# ---- generator --------------------------------------------------------------------------------
class MappingNetwork(nn.Module):
    """f: Z -> W (Karras et al. 2019, sec. 2): pixel norm of z, then `num_layers` equalized
    linear layers with leaky ReLU, their learning rate scaled by `lr_multiplier`. (B, z_dim) ->
    (B, w_dim). It keeps no statistics; the model tracks the mean w."""

    def __init__(
        self, z_dim: int, w_dim: int, num_layers: int = 8, lr_multiplier: float = 0.01
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"The mapping network needs >= 1 layer, got {num_layers}.")
        dims = [z_dim] + [w_dim] * num_layers
        self.net = nn.Sequential(
            *(
                EqualLinear(a, b, lr_multiplier=lr_multiplier, activation=True)
                for a, b in zip(dims[:-1], dims[1:], strict=True)
            )
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(normalize_2nd_moment(z))


class ModulatedConv(nn.Module):
    """A k x k convolution modulated by a style: a learned affine map A(w) gives the per-input-
    channel scales s (bias 1, so s starts near 1), then `modulated_conv2d`.
    x (B, C_in, H, W), w (B, w_dim) -> (B, C_out, H, W)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        kernel_size: int = 3,
        demodulate: bool = True,
    ) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(
            torch.randn(out_channels, in_channels, kernel_size, kernel_size)
        )
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.demodulate = demodulate

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w)  # (B, C_in)
        return modulated_conv2d(x, self.weight * self.weight_gain, styles, self.demodulate)


class NoiseInjection(nn.Module):
    """Per-pixel noise with one learned scale per layer (Karras et al. 2020's form of the 2019
    paper's noise inputs; the scale starts at 0, as there). The noise is given as a tensor
    (B or 1, 1, H, W), or by mode: "random" draws fresh N(0, 1) noise per example, "const" uses a
    fixed map drawn at construction (a buffer, saved with the weights), "none" adds nothing."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(1, 1, height, width))

    def forward(
        self,
        x: Tensor,
        noise: NoiseMode | Tensor = "random",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        b, _, h, w = x.shape
        if isinstance(noise, str):
            if noise == "none":
                return x
            if noise == "const":
                noise = self.noise_const
            elif noise == "random":
                noise = torch.randn(b, 1, h, w, generator=generator, device=x.device)
            else:
                raise ValueError(f"Unknown noise mode {noise!r}; choose random, const or none.")
        return x + self.strength * noise.to(x.dtype)


class StyleLayer(nn.Module):
    """Optional bilinear up-sampling to (H, W), a modulated 3x3 convolution, noise, bias,
    leaky ReLU: (B, C_in, h, w), (B, w_dim) -> (B, C_out, H, W)."""

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, side: int, up: bool
    ) -> None:
        super().__init__()
        self.side, self.up = side, up
        self.conv = ModulatedConv(in_channels, out_channels, w_dim)
        self.noise = NoiseInjection(side, side)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: Tensor, w: Tensor, noise="random", generator=None) -> Tensor:
        if self.up:
            x = upsample(x, self.side)
        x = self.noise(self.conv(x, w), noise, generator)
        return lrelu(x + self.bias[:, None, None].to(x.dtype))


class ToRGB(nn.Module):
    """A modulated 1x1 convolution to image channels without demodulation (Karras et al. 2020,
    fig. 7), plus a bias: (B, C, H, W), (B, w_dim) -> (B, img_channels, H, W)."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv(in_channels, img_channels, w_dim, 1, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias[:, None, None].to(x.dtype)


def upsample(x: Tensor, side: int) -> Tensor:
    """Bilinear up-sampling to side x side (2x, or 4 -> 7 for the 28-pixel networks)."""
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


class StyleGenerator(nn.Module):
    """The synthesis network of StyleGAN2 with skip outputs (Karras et al. 2020, fig. 7b): a
    learned 4x4 constant, one block per resolution (see the module docstring for the sizes and
    which style drives which layer), the toRGB images summed after bilinear up-sampling.

    ws (B, num_ws, w_dim) -> (B, img_channels, size, size). `noise` is a mode (random, const,
    none) or a list of one tensor (B or 1, 1, H, W) per convolution; `generator` draws the
    random noise.
    """

    def __init__(
        self,
        size: int,
        img_channels: int = 3,
        w_dim: int = 512,
        channels: int = 32,
        max_channels: int = 256,
    ) -> None:
        super().__init__()
        self.resolutions = check_size(size)
        self.size, self.w_dim = size, w_dim
        widths = layer_widths(len(self.resolutions), channels, max_channels)
        self.const = nn.Parameter(torch.randn(widths[0], 4, 4))
        self.layers = nn.ModuleList([StyleLayer(widths[0], widths[0], w_dim, 4, up=False)])
        for i, side in enumerate(self.resolutions[1:], start=1):
            self.layers.append(StyleLayer(widths[i - 1], widths[i], w_dim, side, up=True))
            self.layers.append(StyleLayer(widths[i], widths[i], w_dim, side, up=False))
        self.to_rgbs = nn.ModuleList(ToRGB(width, img_channels, w_dim) for width in widths)
        self.num_ws = 2 * len(self.resolutions)

    def forward(
        self,
        ws: Tensor,
        noise: NoiseMode | Sequence[Tensor] = "random",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if ws.dim() != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(
                f"ws must have shape (B, num_ws={self.num_ws}, w_dim={self.w_dim}), got "
                f"{tuple(ws.shape)}. Repeat one w per layer with broadcast_ws(w, num_ws)."
            )
        noises = [noise] * len(self.layers) if isinstance(noise, str) else list(noise)
        if len(noises) != len(self.layers):
            raise ValueError(f"Give one noise map per convolution ({len(self.layers)}).")
        x = self.const[None].expand(ws.shape[0], -1, -1, -1).to(ws.dtype)  # (B, C0, 4, 4)
        x = self.layers[0](x, ws[:, 0], noises[0], generator)
        img = self.to_rgbs[0](x, ws[:, 1])  # (B, img_channels, 4, 4)
        for i in range(1, len(self.resolutions)):
            a, b = 2 * i - 1, 2 * i  # the block's two convolutions, by layer and style index
            x = self.layers[a](x, ws[:, a], noises[a], generator)
            x = self.layers[b](x, ws[:, b], noises[b], generator)
            img = upsample(img, self.resolutions[i]) + self.to_rgbs[i](x, ws[:, b + 1])
        return img

    def layer_resolutions(self) -> list[int]:
        """The side of the feature map each style index acts on (the final toRGB's: size)."""
        last = len(self.resolutions) - 1
        return [self.resolutions[min((i + 1) // 2, last)] for i in range(self.num_ws)]

    def style_groups(self) -> dict[str, tuple[int, int]]:
        """Style indices [start, stop) of the coarse (4-8 px), middle and fine layers: fine is
        64 px and up, or the last block below 64 px (see the module docstring)."""
        sides = self.layer_resolutions()
        fine_from = 64 if self.size >= 64 else self.size
        coarse = sum(s <= 8 for s in sides)
        fine = sum(s >= fine_from for s in sides)
        return {
            "coarse": (0, coarse),
            "middle": (coarse, self.num_ws - fine),
            "fine": (self.num_ws - fine, self.num_ws),
        }


class StyleGANGenerator(nn.Module):
    """The mapping network and the synthesis network (`StyleGenerator`) as one module, so that
    one copy of it is the generator's moving average. z (B, z_dim) -> w (B, w_dim) by
    `mapping`; ws (B, num_ws, w_dim) -> images by `synthesis`."""

    def __init__(
        self,
        size: int,
        img_channels: int,
        z_dim: int,
        w_dim: int,
        mapping_layers: int = 8,
        mapping_lr_multiplier: float = 0.01,
        channels: int = 32,
        max_channels: int = 256,
    ) -> None:
        super().__init__()
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_multiplier)
        self.synthesis = StyleGenerator(size, img_channels, w_dim, channels, max_channels)
        self.num_ws = self.synthesis.num_ws

    def forward(self, z: Tensor, noise: NoiseMode = "random") -> Tensor:
        """Images of z with one w for every layer, no truncation."""
        return self.synthesis(broadcast_ws(self.mapping(z), self.num_ws), noise)


# ---- discriminator ----------------------------------------------------------------------------
def downsample(x: Tensor, side: int) -> Tensor:
    """Box-filter down-sampling to side x side (2x 2 average pooling, or 7 -> 4 with overlapping
    windows for the 28-pixel networks); twice differentiable, as R1 needs."""
    return F.adaptive_avg_pool2d(x, side)


class DiscriminatorBlock(nn.Module):
    """The residual block of Karras et al. 2020, fig. 7c: two 3x3 convolutions, the second after
    down-sampling, plus a down-sampled 1x1 skip, the sum scaled by 1/sqrt(2).
    (B, C_in, H, W) -> (B, C_out, side, side)."""

    def __init__(self, in_channels: int, out_channels: int, side: int) -> None:
        super().__init__()
        self.side = side
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation=True)
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, activation=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(downsample(x, self.side))
        x = self.conv1(downsample(self.conv0(x), self.side))
        return (x + skip) / math.sqrt(2)


class StyleDiscriminator(nn.Module):
    """StyleGAN2's residual discriminator (Karras et al. 2020, fig. 7c and appendix): fromRGB at
    full resolution, residual blocks down to 4x4, then minibatch standard deviation, a 3x3
    convolution, a fully connected layer and the score. Equalized learning rate throughout. In
    evaluation the standard-deviation feature is its running mean (`MinibatchStddev`).
    (B, img_channels, size, size) -> (B,) logits.
    """

    def __init__(
        self,
        size: int,
        img_channels: int = 3,
        channels: int = 32,
        max_channels: int = 256,
        mbstd_group_size: int = 4,
    ) -> None:
        super().__init__()
        resolutions = check_size(size)
        if mbstd_group_size < 1:
            raise ValueError(f"mbstd_group_size must be >= 1, got {mbstd_group_size}.")
        widths = layer_widths(len(resolutions), channels, max_channels)[::-1]  # full res first
        self.size, self.mbstd_group_size = size, mbstd_group_size
        self.from_rgb = EqualConv2d(img_channels, widths[0], 1, activation=True)
        self.blocks = nn.Sequential(
            *(
                DiscriminatorBlock(widths[i], widths[i + 1], side)
                for i, side in enumerate(resolutions[::-1][1:])
            )
        )
        top = widths[-1]
        self.stddev = MinibatchStddev(mbstd_group_size)
        self.conv = EqualConv2d(top + 1, top, 3, activation=True)
        self.fc = EqualLinear(top * 16, top, activation=True)
        self.out = EqualLinear(top, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(self.from_rgb(x))  # (B, C, 4, 4)
        x = self.conv(self.stddev(x))  # (B, C, 4, 4)
        return self.out(self.fc(x.flatten(1))).squeeze(1)  # (B,)
