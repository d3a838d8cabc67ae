"""Networks of image-to-image translation: pix2pix's U-Net generator and PatchGAN discriminator
(Isola et al. 2017, arXiv:1611.07004), CycleGAN's ResNet generator (Zhu et al. 2017,
arXiv:1703.10593), StarGAN's domain-conditioned generator and two-headed discriminator (Choi et
al. 2018, arXiv:1711.09020), and the history buffer of fakes CycleGAN shows its discriminators
(Shrivastava et al. 2017, arXiv:1612.07828).

Images are in [-1, 1]: the generators end in tanh. Discriminators return logits or raw scores;
the objectives live in `genflow.losses`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genflow.nn.blocks import dcgan_init
from genflow.nn.conv import conv_output_size, receptive_field

Norm = Literal["batch", "instance", "none"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    """BatchNorm, InstanceNorm with a learned scale and shift (Ulyanov et al. 2016,
    arXiv:1607.08022; statistics of each image, in training and evaluation alike), or nothing."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"Unknown norm {kind!r}; choose 'batch', 'instance' or 'none'.")


def _check_divisible(x: Tensor, factor: int, net: str, why: str) -> None:
    height, width = x.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(
            f"{net} needs image sides divisible by {factor} ({why}), got {height}x{width}. "
            f"Resize or crop the images, e.g. to {max(factor, height // factor * factor)}x"
            f"{max(factor, width // factor * factor)}."
        )


# ---- pix2pix: U-Net generator -----------------------------------------------------------------
def unet_widths(num_downs: int, base_channels: int) -> list[int]:
    """The encoder widths of pix2pix's U-Net: C64-C128-C256-C512-C512-... for base 64."""
    return [base_channels * min(2**i, 8) for i in range(num_downs)]


def unet_skip_shapes(
    height: int, width: int, num_downs: int = 8, base_channels: int = 64
) -> list[tuple[int, int, int]]:
    """The (C, H, W) of the encoder outputs a U-Net concatenates into its decoder, outermost
    first: every encoder layer but the innermost (whose output feeds the decoder directly).

    >>> unet_skip_shapes(256, 256)[:2], len(unet_skip_shapes(256, 256))
    ([(64, 128, 128), (128, 64, 64)], 7)
    """
    shapes = []
    for channels in unet_widths(num_downs, base_channels):
        height = conv_output_size(height, kernel=4, stride=2, padding=1)
        width = conv_output_size(width, kernel=4, stride=2, padding=1)
        shapes.append((channels, height, width))
    return shapes[:-1]


def _unet_down(in_channels: int, out_channels: int, norm: Norm) -> nn.Sequential:
    """Ck of the encoder: 4x4 stride-2 convolution, norm, LeakyReLU(0.2)."""
    conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=norm == "none")
    return nn.Sequential(conv, norm_layer(norm, out_channels), nn.LeakyReLU(0.2))


def _unet_up(in_channels: int, out_channels: int, norm: Norm, dropout: float) -> nn.Sequential:
    """Ck / CDk of the decoder: 4x4 stride-2 transposed convolution, norm, dropout, ReLU."""
    conv = nn.ConvTranspose2d(
        in_channels, out_channels, 4, stride=2, padding=1, bias=norm == "none"
    )
    drop = [nn.Dropout(dropout)] if dropout > 0 else []
    return nn.Sequential(conv, norm_layer(norm, out_channels), *drop, nn.ReLU())


class UNetGenerator(nn.Module):
    """pix2pix's U-Net (Isola et al. 2017, arXiv:1611.07004, appendix 6.1.1): encoder
    C64-C128-C256-C512-C512-C512-C512-C512 (4x4 stride-2 convolutions, LeakyReLU 0.2), decoder
    CD512-CD512-CD512-C512-C256-C128-C64 (transposed convolutions, ReLU, dropout in the first
    three blocks), each decoder output concatenated with the mirror encoder output, then a
    transposed convolution to `out_channels` and tanh. (B, C_in, H, W) -> (B, C_out, H, W) with
    H and W divisible by 2^num_downs (256 for the paper's 8 levels).

    The first encoder layer has no normalization (the paper), nor has the innermost: its map is
    1x1 at 256x256, where per-image statistics normalize every value to zero (the authors'
    released code also leaves it out). Dropout is pix2pix's only noise source and the paper
    keeps it at test time: sample with the network in training mode to get that noise.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_downs: int = 8,
        base_channels: int = 64,
        norm: Norm = "batch",
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ValueError(f"num_downs must be >= 2 for a U-Net with skips, got {num_downs}.")
        self.num_downs, self.base_channels = num_downs, base_channels
        widths = unet_widths(num_downs, base_channels)
        norms = ["none"] + [norm] * (num_downs - 2) + ["none"]
        self.down = nn.ModuleList(
            _unet_down(a, b, n)
            for a, b, n in zip([in_channels, *widths[:-1]], widths, norms, strict=True)
        )
        # decoder block j maps the previous decoder output (the bottleneck for j = 0), joined
        # with its skip, to the width of the next skip
        ins = [widths[-1]] + [2 * w for w in widths[-2:0:-1]]
        outs = widths[-2::-1]
        self.up = nn.ModuleList(
            _unet_up(a, b, norm, dropout if j < 3 else 0.0)
            for j, (a, b) in enumerate(zip(ins, outs, strict=True))
        )
        self.out = nn.Sequential(
            nn.ConvTranspose2d(2 * widths[0], out_channels, 4, stride=2, padding=1), nn.Tanh()
        )
        self.apply(dcgan_init)  # N(0, 0.02) weights (Isola et al. 2017, sec. 3.3)

    def skip_shapes(self, height: int, width: int) -> list[tuple[int, int, int]]:
        """(C, H, W) of each skip connection for an input of height x width, outermost first."""
        return unet_skip_shapes(height, width, self.num_downs, self.base_channels)

    def forward(self, x: Tensor) -> Tensor:
        _check_divisible(x, 2**self.num_downs, "UNetGenerator", f"{self.num_downs} halvings")
        skips = []
        for down in self.down:
            x = down(x)  # (B, C_i, H / 2^(i+1), W / 2^(i+1))
            skips.append(x)
        x = skips.pop()  # the bottleneck is not a skip
        for up in self.up:
            x = torch.cat([up(x), skips.pop()], dim=1)  # (B, 2 C_i, H / 2^(i+1), ...)
        return self.out(x)  # (B, C_out, H, W)


# ---- CycleGAN / StarGAN: residual generators ----------------------------------------------------
class ResnetBlock(nn.Module):
    """x + conv-norm-ReLU-conv-norm(x) with 3x3 convolutions of equal width (He et al. 2016,
    as in Johnson et al. 2016, arXiv:1603.08155, which CycleGAN and StarGAN follow)."""

    def __init__(self, channels: int, norm: Norm, padding_mode: str = "reflect") -> None:
        super().__init__()
        conv = dict(kernel_size=3, padding=1, padding_mode=padding_mode, bias=norm == "none")
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, **conv),
            norm_layer(norm, channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, **conv),
            norm_layer(norm, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _conv_norm_relu(conv: nn.Module, norm: Norm, channels: int) -> list[nn.Module]:
    return [conv, norm_layer(norm, channels), nn.ReLU()]


class ResnetGenerator(nn.Module):
    """CycleGAN's generator (Zhu et al. 2017, arXiv:1703.10593, appendix 7.2, after Johnson et
    al. 2016): c7s1-64, d128, d256, R256 x num_blocks, u128, u64, c7s1-C_out, tanh; 6 blocks for
    128x128 images, 9 for 256x256. Reflection padding on the 7x7 and residual convolutions, 3x3
    stride-2 (transposed) convolutions for d and u. (B, C_in, H, W) -> (B, C_out, H, W), H and W
    divisible by 4.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_channels: int = 64,
        num_blocks: int = 9,
        norm: Norm = "instance",
    ) -> None:
        super().__init__()
        b, bias = base_channels, norm == "none"
        conv7 = dict(kernel_size=7, padding=3, padding_mode="reflect")
        # output_padding=1: a stride-2 convolution maps sizes 2h - 1 and 2h to h; pick 2h
        up = dict(kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias)
        self.net = nn.Sequential(
            *_conv_norm_relu(nn.Conv2d(in_channels, b, bias=bias, **conv7), norm, b),
            *_conv_norm_relu(nn.Conv2d(b, 2 * b, 3, 2, 1, bias=bias), norm, 2 * b),
            *_conv_norm_relu(nn.Conv2d(2 * b, 4 * b, 3, 2, 1, bias=bias), norm, 4 * b),
            *[ResnetBlock(4 * b, norm, "reflect") for _ in range(num_blocks)],
            *_conv_norm_relu(nn.ConvTranspose2d(4 * b, 2 * b, **up), norm, 2 * b),
            *_conv_norm_relu(nn.ConvTranspose2d(2 * b, b, **up), norm, b),
            nn.Conv2d(b, out_channels, **conv7),
            nn.Tanh(),
        )
        self.apply(dcgan_init)  # N(0, 0.02) weights (Zhu et al. 2017, appendix 7.1)

    def forward(self, x: Tensor) -> Tensor:
        _check_divisible(x, 4, "ResnetGenerator", "two stride-2 down-samplings")
        return self.net(x)  # (B, C_in, H, W) -> (B, C_out, H, W)


class StarGenerator(nn.Module):
    """StarGAN's generator (Choi et al. 2018, arXiv:1711.09020, table 4): the target domain
    label c, spread into constant maps, is concatenated to the image; then a 7x7 convolution,
    two 4x4 stride-2 down-samplings, `num_blocks` residual blocks, two 4x4 stride-2 transposed
    convolutions and a 7x7 convolution to the image's channels with tanh; instance norm and
    ReLU throughout, zero padding. G(x, c): (B, C, H, W), c -> (B, C, H, W), H and W divisible
    by 4. `c` is (B,) int64 domain indices or (B, num_domains) float 0 / 1 labels.
    """

    def __init__(
        self, in_channels: int, num_domains: int, base_channels: int = 64, num_blocks: int = 6
    ) -> None:
        super().__init__()
        self.num_domains, b = num_domains, base_channels
        down = dict(kernel_size=4, stride=2, padding=1, bias=False)
        stem = nn.Conv2d(in_channels + num_domains, b, 7, padding=3, bias=False)
        self.net = nn.Sequential(
            *_conv_norm_relu(stem, "instance", b),
            *_conv_norm_relu(nn.Conv2d(b, 2 * b, **down), "instance", 2 * b),
            *_conv_norm_relu(nn.Conv2d(2 * b, 4 * b, **down), "instance", 4 * b),
            *[ResnetBlock(4 * b, "instance", "zeros") for _ in range(num_blocks)],
            *_conv_norm_relu(nn.ConvTranspose2d(4 * b, 2 * b, **down), "instance", 2 * b),
            *_conv_norm_relu(nn.ConvTranspose2d(2 * b, b, **down), "instance", b),
            nn.Conv2d(b, in_channels, 7, 1, 3),
            nn.Tanh(),
        )

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        _check_divisible(x, 4, "StarGenerator", "two stride-2 down-samplings")
        c = domain_labels(c, self.num_domains).to(x.dtype)  # (B, num_domains)
        maps = c[:, :, None, None].expand(-1, -1, *x.shape[-2:])  # (B, num_domains, H, W)
        return self.net(torch.cat([x, maps], dim=1))  # (B, C, H, W)


def domain_labels(c: Tensor, num_domains: int) -> Tensor:
    """(B,) integer domain indices as one-hot (B, num_domains) floats; (B, num_domains) label
    vectors as they are."""
    if not c.is_floating_point():
        if c.dim() != 1 or (c.numel() and (c.min() < 0 or c.max() >= num_domains)):
            raise ValueError(
                f"Integer domain labels must be (B,) indices in [0, {num_domains}); got shape "
                f"{tuple(c.shape)}. For attribute vectors give floats (B, {num_domains})."
            )
        return F.one_hot(c, num_domains).float()
    if c.dim() != 2 or c.shape[1] != num_domains:
        raise ValueError(f"Float domain labels must be (B, {num_domains}), got {tuple(c.shape)}.")
    return c


# ---- discriminators ---------------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN (Isola et al. 2017, arXiv:1611.07004, sec. 2.2.2 and appendix 6.1.2):
    4x4 convolutions C64-C128-C256-C512 for num_layers = 3, LeakyReLU 0.2, no normalization on
    the first, then a convolution to one channel: (B, C_in, H, W) -> (B, 1, h, w) logits, one
    per overlapping patch. For pix2pix C_in is the input and output channels together (D sees
    the pair); CycleGAN uses the same network on single images with instance norm.

    The first `num_layers` convolutions have stride 2 and the last two stride 1, which gives the
    paper's receptive fields: 16, 34, 70, 142, 286 for num_layers = 1 .. 5 (see
    `receptive_field`); with every layer at stride 2 the "70x70" one would see 94.
    """

    def __init__(
        self, in_channels: int, base_channels: int = 64, num_layers: int = 3, norm: Norm = "batch"
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        self.num_layers = num_layers
        widths = [base_channels * min(2**i, 8) for i in range(num_layers + 1)]
        strides = [2] * num_layers + [1]
        layers: list[nn.Module] = []
        for i, (a, b, s) in enumerate(
            zip([in_channels, *widths[:-1]], widths, strides, strict=True)
        ):
            kind = norm if i else "none"
            conv = nn.Conv2d(a, b, 4, stride=s, padding=1, bias=kind == "none")
            layers += [conv, norm_layer(kind, b), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.net if isinstance(m, nn.Conv2d)]

    def receptive_field(self) -> int:
        """The side of the square input patch each output logit sees."""
        convs = self.convs()
        return receptive_field(
            [c.kernel_size[0] for c in convs],
            [c.stride[0] for c in convs],
            [c.dilation[0] for c in convs],
        )

    def output_size(self, size: int) -> int:
        """The side of the logit grid for an input side `size`."""
        for c in self.convs():
            size = conv_output_size(size, c.kernel_size[0], c.stride[0], c.padding[0])
        return size

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (B, C_in, H, W) -> (B, 1, h, w)


class StarDiscriminator(nn.Module):
    """StarGAN's discriminator (Choi et al. 2018, arXiv:1711.09020, table 5): `num_layers` 4x4
    stride-2 convolutions doubling the width from base_channels (64-128-...-2048 for 6), leaky
    ReLU 0.01, no normalization; then two heads: D_src, a 3x3 convolution to one score per
    patch (B, 1, H / 2^n, W / 2^n), and D_cls, a convolution whose kernel covers the whole final
    map, giving domain logits (B, num_domains). The image size is fixed by D_cls's kernel.
    """

    def __init__(
        self,
        image_size: int | Sequence[int],
        in_channels: int,
        num_domains: int,
        base_channels: int = 64,
        num_layers: int = 6,
    ) -> None:
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        factor = 2**num_layers
        if num_layers < 1 or height % factor or width % factor:
            raise ValueError(
                f"StarDiscriminator needs num_layers >= 1 and an image size divisible by "
                f"2^num_layers = {factor}, got {height}x{width} with num_layers={num_layers}."
            )
        self.image_size = (height, width)
        widths = [base_channels * 2**i for i in range(num_layers)]
        layers: list[nn.Module] = []
        for a, b in zip([in_channels, *widths[:-1]], widths, strict=True):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
        self.features = nn.Sequential(*layers)
        self.src = nn.Conv2d(widths[-1], 1, 3, padding=1, bias=False)
        self.cls = nn.Conv2d(widths[-1], num_domains, (height // factor, width // factor))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(
                f"StarDiscriminator was built for {self.image_size[0]}x{self.image_size[1]} "
                f"images (its D_cls kernel covers the whole final map), got "
                f"{x.shape[-2]}x{x.shape[-1]}. Build it with image_size={tuple(x.shape[-2:])}."
            )
        h = self.features(x)  # (B, C_n, H / 2^n, W / 2^n)
        return self.src(h), self.cls(h).flatten(1)  # (B, 1, H / 2^n, W / 2^n), (B, K)


# ---- the history of fakes ----------------------------------------------------------------------
class ImagePool:
    """A buffer of up to `size` earlier generated images, shown to a discriminator instead of
    only the latest ones, so it does not forget earlier fakes (Shrivastava et al. 2017,
    arXiv:1612.07828, sec. 2.3; CycleGAN keeps 50, Zhu et al. 2017, sec. 4).

    `query` goes through the batch one image at a time: while the pool is not full it stores the
    image and returns it; once full, with probability 1/2 it returns a random stored image and
    stores the new one in its place, else it returns the new one. Draws come from `generator`
    (or the global RNG), so a seeded generator makes the outputs repeat. Returned images are
    detached: they only train the discriminator.

    It is a plain object, not an nn.Module: its size changes, it holds no weights, and DDP
    would overwrite every rank's own history with rank 0's buffers. For exact resumption save
    `state_dict()` in the checkpoint (and the state of the generator that drives it).
    """

    def __init__(self, size: int = 50) -> None:
        if size < 0:
            raise ValueError(f"The pool size must be >= 0 (0 turns the pool off), got {size}.")
        self.size = size
        self.images: Tensor | None = None  # (n, C, H, W), n <= size

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    @torch.no_grad()
    def query(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, C, H, W) new fakes -> (B, C, H, W) fakes for the discriminator."""
        images = images.detach()
        if self.size == 0:
            return images
        self._check_shape(images)
        out = []
        for image in images:
            if len(self) < self.size:
                self._store(image)
                out.append(image)
            elif _uniform(generator) < 0.5:
                i = _randint(self.size, generator)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)

    def _store(self, image: Tensor) -> None:
        stored = image[None].clone()  # (1, C, H, W)
        if self.images is None:
            self.images = stored
        else:
            self.images = torch.cat([self.images.to(image.device, image.dtype), stored])

    def _check_shape(self, images: Tensor) -> None:
        if self.images is not None and images.shape[1:] != self.images.shape[1:]:
            raise ValueError(
                f"The pool holds images of shape {tuple(self.images.shape[1:])}, got a batch "
                f"of {tuple(images.shape[1:])}. Use one pool per image shape."
            )
        if self.images is not None:
            self.images = self.images.to(images.device, images.dtype)

    def state_dict(self) -> dict[str, Tensor]:
        """The stored images, (n, C, H, W) (n = 0 before the first query)."""
        return {"images": torch.empty(0) if self.images is None else self.images.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        images = state["images"]
        if len(images) > self.size:
            raise ValueError(
                f"The saved pool holds {len(images)} images, more than this pool's size "
                f"{self.size}. Build the pool with size >= {len(images)}."
            )
        self.images = images.clone() if len(images) else None


def _uniform(generator: torch.Generator | None) -> float:
    device = "cpu" if generator is None else generator.device
    return torch.rand((), generator=generator, device=device).item()


def _randint(high: int, generator: torch.Generator | None) -> int:
    device = "cpu" if generator is None else generator.device
    return int(torch.randint(high, (), generator=generator, device=device).item())
