"""The PixelCNN family: exact autoregressive likelihoods over the discrete pixels.

- `PixelCNN` (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", arXiv:1601.06759).
- `GatedPixelCNN` (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
  Decoders", arXiv:1606.05328).
- `PixelCNNPlusPlus` (Salimans et al. 2017, arXiv:1701.05517).

p(x) = prod_i p(x_i | x_<i) over the pixels in raster order and, for PixelCNN and Gated
PixelCNN, over the colour channels R -> G -> B inside a pixel. Each model reads the data as
yielded (k / (2^b - 1) in [0, 1]), feeds 2x - 1 to its network and scores the level index k, so
`log_prob` is the exact log-probability of the discrete data in nats. PixelCNN and Gated
PixelCNN output a 2^b-way softmax per sub-pixel (256-way for 8-bit data) or a Bernoulli for
binarized data (num_bits 1); PixelCNN++ a discretized logistic mixture. All three can take a
learned bias per class label in every layer (`conditional: true`).

Two samplers draw identical images for the same seed: both take all their uniforms up front
(one per sub-pixel, plus one per pixel for the mixture component) and turn them into values by
inverse CDF at the same pixel, so only the way the network is evaluated differs. "sequential"
runs the full forward pass for every sub-pixel. "fast" computes only what the next sub-pixel
needs: PixelCNN caches the input of every kxk convolution and evaluates each layer at the one
new pixel; Gated PixelCNN computes each vertical-stack row once, when the row above is complete,
and the horizontal stack at the one new pixel; PixelCNN++, whose down-sampling streams see the
whole image above, runs its forward pass on the rows up to the current one only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from genflow.metrics.likelihood import bits_per_dim
from genflow.models.base import GenerativeModel
from genflow.nn.autoregressive import (
    ClassBias,
    DownRightShiftedConv2d,
    DownRightShiftedDeconv2d,
    DownShiftedConv2d,
    DownShiftedDeconv2d,
    GatedLayer,
    GatedResnet,
    MaskedConv2d,
    ResidualBlock,
    discretized_logistic_mixture_log_prob,
    logistic_mixture_num_params,
    output_head,
    sample_bernoulli,
    sample_categorical,
    sample_discretized_logistic_mixture,
    shift_down,
    shift_right,
)

Sampler = Literal["fast", "sequential"]


# ---- networks: (B, C, H, W) in [-1, 1] -> (B, P, H, W) likelihood parameters --------------------
class PixelCNNNet(nn.Module):
    """Mask-A kxk input convolution, residual blocks of mask-B convolutions, two masked 1x1
    output layers (arXiv:1601.06759, section 3.4 and Table 1)."""

    def __init__(
        self,
        data_channels: int,
        out_channels: int,
        hidden_channels: int,
        num_blocks: int,
        kernel_size: int,
        first_kernel_size: int,
        head_channels: int,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        C = data_channels
        self.input_conv = MaskedConv2d(C, hidden_channels, first_kernel_size, "A", C)
        self.input_cond = ClassBias(num_classes, hidden_channels)
        self.blocks = nn.ModuleList(
            ResidualBlock(hidden_channels, kernel_size, C, num_classes) for _ in range(num_blocks)
        )
        self.head = output_head(hidden_channels, head_channels, out_channels, C)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.input_cond(self.input_conv(x), y)  # (B, 2h, H, W)
        for block in self.blocks:
            h = block(h, y)
        return self.head(h)

    def start_sampling(self, x: Tensor) -> list[Tensor]:
        """One cache per block: the input of its kxk convolution, filled pixel by pixel,
        channels last (B, H, W, h)."""
        B, _, H, W = x.shape
        return [x.new_zeros(B, H, W, block.conv.in_channels) for block in self.blocks]

    def params_at(self, caches: list[Tensor], x: Tensor, i: int, j: int, y: Tensor | None):
        """The output at pixel (i, j) alone, (B, P), every layer evaluated at that pixel."""
        h = self.input_cond(self.input_conv.at(x, i, j), y)  # (B, 2h, 1, 1)
        for block, cache in zip(self.blocks, caches, strict=True):
            h = block.step(h, cache, i, j, y)
        return self.head(h)[:, :, 0, 0]


@dataclass
class _GatedState:
    """The fast sampler's memory: vertical outputs (full maps), horizontal outputs (current
    row) of every layer but the last, the links each layer gets on the current row."""

    v: list[Tensor]
    h: list[Tensor]
    links: list[Tensor] = field(default_factory=list)
    row: int = -1


class GatedPixelCNNNet(nn.Module):
    """A stack of `GatedLayer`s (the first with mask A) and two masked 1x1 output layers on the
    horizontal stack (arXiv:1606.05328, section 2.1-2.2)."""

    def __init__(
        self,
        data_channels: int,
        out_channels: int,
        hidden_channels: int,
        num_layers: int,
        kernel_size: int,
        first_kernel_size: int,
        head_channels: int,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        C, hidden = data_channels, hidden_channels
        self.layers = nn.ModuleList(
            [GatedLayer(C, hidden, first_kernel_size, C, first=True, num_classes=num_classes)]
            + [
                GatedLayer(hidden, hidden, kernel_size, C, num_classes=num_classes)
                for _ in range(num_layers - 1)
            ]
        )
        self.head = output_head(hidden, head_channels, out_channels, C)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, y)  # (B, C_hidden, H, W) each
        return self.head(h)

    def start_sampling(self, x: Tensor) -> _GatedState:
        B, _, H, W = x.shape
        hidden = self.layers[0].h_out.out_channels
        inner = len(self.layers) - 1
        return _GatedState(
            v=[x.new_zeros(B, hidden, H, W) for _ in range(inner)],
            h=[x.new_zeros(B, hidden, 1, W) for _ in range(inner)],
        )

    def _start_row(self, state: _GatedState, x: Tensor, i: int, y: Tensor | None) -> None:
        """Vertical stack on row i - 1 (complete now): the links of row i for every layer."""
        B, _, _, W = x.shape
        state.row, state.links, v_in = i, [], x
        for l, layer in enumerate(self.layers):
            if i == 0:  # the link is shifted down: row 0 gets zeros
                state.links.append(x.new_zeros(B, layer.v_to_h.out_channels, 1, W))
                continue
            v_out, link = layer.vertical_row(v_in, i - 1, y)
            state.links.append(link)
            if l < len(self.layers) - 1:
                state.v[l][:, :, i - 1 : i] = v_out
                v_in = state.v[l]

    def params_at(self, state: _GatedState, x: Tensor, i: int, j: int, y: Tensor | None):
        """The output at pixel (i, j) alone, (B, P): each layer's horizontal stack at (i, j)."""
        if state.row != i:
            self._start_row(state, x, i, y)
        h_row = x[:, :, i : i + 1]  # (B, C, 1, W), a view of the live image
        for l, layer in enumerate(self.layers):
            out = layer.horizontal_pixel(h_row, j, state.links[l], y)  # (B, hidden, 1, 1)
            if l < len(self.layers) - 1:
                state.h[l][..., j : j + 1] = out
                h_row = state.h[l]
        return self.head(out)[:, :, 0, 0]


class PixelCNNPlusPlusNet(nn.Module):
    """The PixelCNN++ network (arXiv:1701.05517, section 2.3-2.5 and Figure 2): a down-shifted
    stream u (rows above) and a down-right-shifted stream ul (rows above and pixels to the
    left), `num_resnet` gated ResNet layers per resolution, down-sampled twice by strided
    shifted convolutions on the way in and up-sampled back on the way out, with a shortcut from
    every layer of the first half to its mirror in the second; dropout in every layer.
    """

    def __init__(
        self,
        data_channels: int,
        out_channels: int,
        filters: int,
        num_resnet: int,
        dropout: float,
        num_classes: int = 0,
        num_scales: int = 3,
    ) -> None:
        super().__init__()
        F_, S = filters, num_scales
        cin = data_channels + 1  # plus a channel of ones: tells padding from black pixels

        def resnets(conv: type[nn.Conv2d], aux: int, n: int) -> nn.ModuleList:
            return nn.ModuleList(
                GatedResnet(F_, conv, aux, dropout, num_classes) for _ in range(n)
            )

        self.u_in = DownShiftedConv2d(cin, F_, (2, 3))
        self.ul_in_up = DownShiftedConv2d(cin, F_, (1, 3))
        self.ul_in_left = DownRightShiftedConv2d(cin, F_, (2, 1))
        self.up_u = nn.ModuleList(resnets(DownShiftedConv2d, 0, num_resnet) for _ in range(S))
        self.up_ul = nn.ModuleList(
            resnets(DownRightShiftedConv2d, F_, num_resnet) for _ in range(S)
        )
        self.down_u = nn.ModuleList(DownShiftedConv2d(F_, F_, (2, 3), 2) for _ in range(S - 1))
        self.down_ul = nn.ModuleList(
            DownRightShiftedConv2d(F_, F_, (2, 2), 2) for _ in range(S - 1)
        )
        sizes = [num_resnet] + [num_resnet + 1] * (S - 1)  # one more: it takes the down-sampling
        self.dn_u = nn.ModuleList(resnets(DownShiftedConv2d, F_, n) for n in sizes)
        self.dn_ul = nn.ModuleList(resnets(DownRightShiftedConv2d, 2 * F_, n) for n in sizes)
        self.upsample_u = nn.ModuleList(DownShiftedDeconv2d(F_, F_) for _ in range(S - 1))
        self.upsample_ul = nn.ModuleList(DownRightShiftedDeconv2d(F_, F_) for _ in range(S - 1))
        self.out = nn.Conv2d(F_, out_channels, 1)
        self.row_multiple = 2 ** (S - 1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)  # (B, C + 1, H, W)
        u = shift_down(self.u_in(x))
        ul = shift_down(self.ul_in_up(x)) + shift_right(self.ul_in_left(x))
        us, uls = [u], [ul]
        for s, (res_u, res_ul) in enumerate(zip(self.up_u, self.up_ul, strict=True)):
            for layer_u, layer_ul in zip(res_u, res_ul, strict=True):
                u = layer_u(u, y=y)
                ul = layer_ul(ul, u, y)
                us.append(u)
                uls.append(ul)
            if s < len(self.down_u):  # (B, F, H, W) -> (B, F, H / 2, W / 2)
                u, ul = self.down_u[s](u), self.down_ul[s](ul)
                us.append(u)
                uls.append(ul)
        u, ul = us.pop(), uls.pop()
        for s, (res_u, res_ul) in enumerate(zip(self.dn_u, self.dn_ul, strict=True)):
            for layer_u, layer_ul in zip(res_u, res_ul, strict=True):
                u = layer_u(u, us.pop(), y)
                ul = layer_ul(ul, torch.cat([u, uls.pop()], dim=1), y)
            if s < len(self.upsample_u):  # (B, F, h, w) -> (B, F, 2h, 2w)
                u, ul = self.upsample_u[s](u), self.upsample_ul[s](ul)
        return self.out(F.elu(ul))

    def start_sampling(self, x: Tensor) -> None:
        return None

    def params_at(self, state: None, x: Tensor, i: int, j: int, y: Tensor | None) -> Tensor:
        """The output at (i, j) from the rows up to i only (rounded up to a multiple of the
        down-sampling factor): rows below never reach rows above in any layer."""
        rows = min(x.shape[2], -(-(i + 1) // self.row_multiple) * self.row_multiple)
        return self(x[:, :, :rows], y)[:, :, i, j]


# ---- the shared LightningModule -----------------------------------------------------------------
class _PixelModel(GenerativeModel):
    """What the three families share: data conversion, exact log_prob, the two samplers, steps.

    Subclasses build `self.net` and say how parameters score (`_log_prob_params`) and how one
    sub-step draws values (`_substeps`, `_draw`, `_noise_channels`).
    """

    logs_likelihood_in_validation = True

    net: nn.Module

    def __init__(
        self,
        data_shape: Sequence[int],
        num_bits: int | None,
        num_classes: int,
        conditional: bool,
        optimizer: OptimizerCallable,
        lr_scheduler: LRSchedulerCallable | None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, optimizer, lr_scheduler)
        _check_image_data(type(self).__name__, self.data_shape, num_bits)
        self.conditional = conditional
        self.levels = 2**num_bits

    def compilable_networks(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    @property
    def _label_classes(self) -> int:
        """How many class biases each layer learns (0: unconditional)."""
        return self.num_classes if self.conditional else 0

    # ---- model space --------------------------------------------------------------------
    def _to_net(self, x: Tensor) -> Tensor:
        return 2 * x - 1  # [0, 1] -> [-1, 1]

    def _level_index(self, x: Tensor) -> Tensor:
        """k in 0 .. 2^b - 1 from x = k / (2^b - 1); a clear error for data off that grid."""
        scaled = x * (self.levels - 1)
        k = torch.round(scaled)
        off_grid = ((scaled - k).abs() > 1e-3) | (k < 0) | (k > self.levels - 1)
        if off_grid.any():  # one read-back from the device
            raise ValueError(
                f"{type(self).__name__} models {self.num_bits}-bit data, values k/"
                f"{self.levels - 1} in [0, 1], but the batch holds other values (range "
                f"[{x.min().item():.4g}, {x.max().item():.4g}]). Build the model with the "
                f"DataModule's num_bits (the CLI links it; binarized data has num_bits 1)."
            )
        return k.long()

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Likelihood parameters (B, P, H, W) of every sub-pixel given the earlier ones."""
        return self.net(self._to_net(x), y if self.conditional else None)

    def conditional_log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """(B,) log p(x | y) in nats, with gradients (the training objective); y is ignored by
        an unconditional model."""
        return self._log_prob_params(self(x, self._checked_labels(y, len(x))), x)

    # ---- contract -----------------------------------------------------------------------
    @torch.no_grad()
    def log_prob(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """(B,) exact log p(x) in nats of the discrete data, in eval mode, without gradients.

        A conditional model gives log p(x | labels) when labels are given, else the exact
        marginal log (1/K) sum_y p(x | y) over the K classes (K forward passes).
        """
        self.check_batch(x)
        was_training = self.training
        self.eval()
        try:
            if not self.conditional or labels is not None:
                return self.conditional_log_prob(x, labels)
            per_class = [
                self.conditional_log_prob(x, torch.full_like(x[:, 0, 0, 0], y, dtype=torch.long))
                for y in range(self.num_classes)
            ]
            return torch.logsumexp(torch.stack(per_class), dim=0) - math.log(self.num_classes)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def sample(
        self,
        num_samples: int,
        *,
        labels: Tensor | None = None,
        temperature: float = 1.0,
        sampler: Sampler = "fast",
    ) -> Tensor:
        """`num_samples` images in [0, 1] (k / (2^b - 1)), drawn sub-pixel by sub-pixel.

        labels: (num_samples,) class labels for a conditional model; default 0, 1, 2, ... in
        turn. temperature: T > 0 divides the logits (the mixture logits and multiplies the
        logistic scales for PixelCNN++); T = 1 samples the model. sampler: "fast" or
        "sequential"; both give the same images for the same seed.
        """
        y = self._check_sampling(num_samples, labels, temperature, sampler)
        was_training = self.training
        self.eval()
        try:
            k = self._sample_raster(
                self.net, self.data_shape, num_samples, y, temperature, sampler == "fast"
            )
        finally:
            self.train(was_training)
        return k.float() / (self.levels - 1)

    def _check_sampling(
        self, num_samples: int, labels: Tensor | None, temperature: float, sampler: Sampler
    ) -> Tensor | None:
        """Fail clearly on bad sampling arguments; returns the labels to condition on."""
        if sampler not in ("fast", "sequential"):
            raise ValueError(f"sampler must be 'fast' or 'sequential', got {sampler!r}.")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        self.check_sample_args(num_samples, labels)
        return self._sample_labels(num_samples, labels)

    def _sample_raster(
        self, net: nn.Module, shape: Sequence[int], n: int, y: Tensor | None,
        temperature: float, fast: bool,
    ) -> Tensor:  # fmt: skip
        """(n, C, H, W) level indices drawn by `net` sub-pixel by sub-pixel in raster order: all
        uniforms up front, then the inverse CDF of each conditional. `fast` evaluates `net` from
        its sampling caches (`start_sampling` / `params_at`), else the whole network per
        sub-pixel; both give the same images for the same uniforms."""
        C, H, W = shape
        noise = torch.rand(n, self._noise_channels, H, W, device=self.device)
        k = torch.zeros(n, C, H, W, dtype=torch.long, device=self.device)
        x = self._to_net(k.float())  # the live network input, filled in place
        state = net.start_sampling(x) if fast else None
        for i, j in itertools.product(range(H), range(W)):  # raster order
            for c in self._substeps():
                if fast:
                    params = net.params_at(state, x, i, j, y)  # (B, P)
                else:  # the whole network for one sub-pixel
                    params = net(x, y)[:, :, i, j]
                channels, levels = self._draw(params, noise[:, :, i, j], c, temperature)
                k[:, channels, i, j] = levels
                x[:, channels, i, j] = self._to_net(levels.float() / (self.levels - 1))
        return k

    # ---- per-family hooks ---------------------------------------------------------------
    _noise_channels: int

    def _substeps(self) -> Sequence[int | None]:
        raise NotImplementedError

    def _draw(self, params: Tensor, u: Tensor, c: int | None, temperature: float):
        """(channel slice, level indices (B, n)) drawn at one sub-step from params (B, P)."""
        raise NotImplementedError

    def _log_prob_params(self, params: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    # ---- labels -------------------------------------------------------------------------
    def _checked_labels(self, labels: Tensor | None, n: int) -> Tensor | None:
        if not self.conditional:
            return None
        if labels is None:
            raise ValueError(
                f"{type(self).__name__} is conditional: pass the class labels of the batch."
            )
        labels = torch.as_tensor(labels, device=self.device).long()
        if labels.shape != (n,) or labels.min() < 0 or labels.max() >= self.num_classes:
            raise ValueError(
                f"labels must be {n} class indices in [0, {self.num_classes}), got shape "
                f"{tuple(labels.shape)} and range [{labels.min().item()}, {labels.max().item()}]. "
                f"Pass one label per image, each below num_classes."
            )
        return labels

    def _sample_labels(self, n: int, labels: Tensor | None) -> Tensor | None:
        if not self.conditional:
            if labels is not None:
                raise ValueError(
                    f"{type(self).__name__} was built unconditional, so it cannot honour "
                    f"labels. Build it with conditional: true (and train it with labels) to "
                    f"sample by class."
                )
            return None
        if labels is None:
            labels = torch.arange(n, device=self.device) % self.num_classes
        return self._checked_labels(labels, n)

    # ---- training -----------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> Tensor:
        x, y = batch
        self.check_batch(x)
        log_p = self.conditional_log_prob(x, y)
        loss = -log_p.mean()
        bpd = bits_per_dim(log_p.detach(), self.num_dims).mean()
        self.log_stage("train", {"loss": loss, "bpd": bpd}, prog_bar=True)
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        x, y = batch
        self.check_batch(x)
        log_p = self.conditional_log_prob(x, y)  # exact: log p(x), or log p(x | y) if conditional
        self.log_likelihood_metrics(stage, log_p)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")


class _SoftmaxPixelModel(_PixelModel):
    """A 2^b-way softmax per sub-pixel, or a Bernoulli (one logit) for binarized data."""

    @property
    def _outputs_per_channel(self) -> int:
        return 1 if self.levels == 2 else self.levels

    @property
    def _noise_channels(self) -> int:
        return self.data_shape[0]  # one uniform per sub-pixel

    def _substeps(self) -> Sequence[int]:
        return range(self.data_shape[0])  # R, then G, then B

    def _draw(self, params: Tensor, u: Tensor, c: int, temperature: float):
        K = self._outputs_per_channel
        logits = params[:, c * K : (c + 1) * K]  # (B, K)
        if K == 1:
            return slice(c, c + 1), sample_bernoulli(logits, u[:, c : c + 1], temperature)
        return slice(c, c + 1), sample_categorical(logits, u[:, c], temperature).unsqueeze(1)

    def _log_prob_params(self, params: Tensor, x: Tensor) -> Tensor:
        k = self._level_index(x)  # (B, C, H, W)
        if self._outputs_per_channel == 1:
            log_p = -F.binary_cross_entropy_with_logits(params, k.float(), reduction="none")
            return log_p.flatten(1).sum(1)
        B, C, H, W = x.shape
        log_p = params.view(B, C, self.levels, H, W).log_softmax(2)  # (B, C, K, H, W)
        return log_p.gather(2, k.unsqueeze(2)).flatten(1).sum(1)


# ---- the families -------------------------------------------------------------------------------
class PixelCNN(_SoftmaxPixelModel):
    """PixelCNN (van den Oord et al. 2016, arXiv:1601.06759): a kxk mask-A convolution, residual
    blocks of mask-B convolutions, masked 1x1 output layers and a 2^b-way softmax per sub-pixel
    (Bernoulli for binarized data). Its stacked masks leave a blind spot above and to the right
    of each pixel (see `GatedPixelCNN`, which has none).

    Loss: -log p(x) in nats summed over the sub-pixels, averaged over the batch. val/test log
    `nll` (nats per image) and `bpd`, exact over the whole split.

    Args:
        hidden_channels: features between blocks (2h in the paper; each block works at h).
        num_blocks: residual blocks.
        kernel_size: of the blocks' mask-B convolutions.
        first_kernel_size: of the mask-A input convolution.
        head_channels: width of the hidden 1x1 output layer.
        conditional: learn a bias per class label in every layer; then `sample(labels=...)`.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        hidden_channels: int = 64,
        num_blocks: int = 7,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        head_channels: int = 64,
        conditional: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, conditional, optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        C = self.data_shape[0]
        _check_widths(type(self).__name__, C, hidden_channels=(hidden_channels, 2 * C),
                      head_channels=(head_channels, C))  # fmt: skip
        _check_kernels(kernel_size=kernel_size, first_kernel_size=first_kernel_size)
        _check_positive(num_blocks=num_blocks)
        self.net = PixelCNNNet(
            C, C * self._outputs_per_channel, hidden_channels, num_blocks, kernel_size,
            first_kernel_size, head_channels, self._label_classes,
        )  # fmt: skip


class GatedPixelCNN(_SoftmaxPixelModel):
    """Gated PixelCNN (van den Oord et al. 2016, arXiv:1606.05328): vertical and horizontal
    stacks (no blind spot), gated activations tanh(.) * sigmoid(.), residual connections in the
    horizontal stack, and a 2^b-way softmax per sub-pixel (Bernoulli for binarized data).

    Loss: -log p(x) in nats summed over the sub-pixels, averaged over the batch. val/test log
    `nll` (nats per image) and `bpd`, exact over the whole split.

    Args:
        hidden_channels: features of both stacks.
        num_layers: gated layers, the first with mask A.
        kernel_size: k of the later layers (vertical (k//2+1) x k, horizontal 1 x (k//2+1)).
        first_kernel_size: k of the first layer.
        head_channels: width of the hidden 1x1 output layer.
        conditional: learn a bias per class label in every gate; then `sample(labels=...)`.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        hidden_channels: int = 64,
        num_layers: int = 8,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        head_channels: int = 64,
        conditional: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, conditional, optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        C = self.data_shape[0]
        _check_widths(type(self).__name__, C, hidden_channels=(hidden_channels, C),
                      head_channels=(head_channels, C))  # fmt: skip
        _check_kernels(kernel_size=kernel_size, first_kernel_size=first_kernel_size)
        _check_positive(num_layers=num_layers)
        self.net = GatedPixelCNNNet(
            C, C * self._outputs_per_channel, hidden_channels, num_layers, kernel_size,
            first_kernel_size, head_channels, self._label_classes,
        )  # fmt: skip


class PixelCNNPlusPlus(_PixelModel):
    """PixelCNN++ (Salimans et al. 2017, arXiv:1701.05517): a discretized logistic mixture per
    pixel with the colour channels linearly dependent inside a component (so the network
    conditions on whole pixels), down- and up-sampling streams with shortcut connections, gated
    ResNet layers with concat-ELU and dropout. Left out: the paper's weight normalization (with
    data-dependent initialization) and its Polyak averaging of the weights.

    Loss: -log p(x) in nats summed over the pixels, averaged over the batch. val/test log `nll`
    (nats per image) and `bpd`, exact over the whole split. Image sides must be multiples of
    4 (two down-samplings).

    Args:
        filters: features of every layer (160 in the paper).
        num_resnet: gated ResNet layers per resolution (5 in the paper).
        num_mixtures: logistic components (10 in the paper).
        dropout: dropout probability inside every ResNet layer (0.5 in the paper).
        conditional: learn a bias per class label in every layer; then `sample(labels=...)`.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (3, 32, 32),
        num_bits: int | None = 8,
        num_classes: int = 10,
        filters: int = 160,
        num_resnet: int = 5,
        num_mixtures: int = 10,
        dropout: float = 0.5,
        conditional: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, conditional, optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        _check_positive(filters=filters, num_resnet=num_resnet, num_mixtures=num_mixtures)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        C, H, W = self.data_shape
        if H % 4 or W % 4:
            raise ValueError(
                f"PixelCNNPlusPlus down-samples twice, so image sides must be multiples of 4; "
                f"the data is {H}x{W}. Resize or pad the images (e.g. 28 and 32 work)."
            )
        self.num_mixtures = num_mixtures
        params = logistic_mixture_num_params(C, num_mixtures)
        self.net = PixelCNNPlusPlusNet(
            C, params, filters, num_resnet, dropout, self._label_classes
        )

    @property
    def _noise_channels(self) -> int:
        return 1 + self.data_shape[0]  # the component, then one per channel

    def _substeps(self) -> Sequence[None]:
        return (None,)  # one network pass per pixel: channels depend through the likelihood

    def _draw(self, params: Tensor, u: Tensor, c: None, temperature: float):
        C = self.data_shape[0]
        x = sample_discretized_logistic_mixture(
            params, u, C, self.num_mixtures, self.num_bits, temperature
        )  # (B, C) levels of [-1, 1]
        return slice(0, C), torch.round((x + 1) * (self.levels - 1) / 2).long()

    def _log_prob_params(self, params: Tensor, x: Tensor) -> Tensor:
        self._level_index(x)  # a clear error for data off the grid
        log_p = discretized_logistic_mixture_log_prob(
            self._to_net(x), params, self.num_mixtures, self.num_bits
        )  # (B, H, W)
        return log_p.flatten(1).sum(1)


# ---- argument checks ----------------------------------------------------------------------------
def _check_image_data(name: str, data_shape: tuple[int, ...], num_bits: int | None) -> None:
    if num_bits is None:
        raise ValueError(
            f"{name} models discrete pixel values, but the data is continuous (num_bits None). "
            f"Use an image DataModule (8-bit, or binarize: dynamic for num_bits 1)."
        )
    if len(data_shape) != 3:
        raise ValueError(
            f"{name} models images (C, H, W), but the data has shape {data_shape}. Use an image "
            f"DataModule such as Digits, MNIST or CIFAR10."
        )


def _check_widths(name: str, data_channels: int, **widths: tuple[int, int]) -> None:
    for arg, (value, minimum) in widths.items():
        if value < minimum:
            raise ValueError(
                f"{name}: {arg} must be >= {minimum} for {data_channels}-channel data, so that "
                f"every colour channel gets its own features; got {value}."
            )


def _check_kernels(**kernels: int) -> None:
    for arg, k in kernels.items():
        if k < 3 or k % 2 == 0:
            raise ValueError(f"{arg} must be odd and >= 3 (a centred causal kernel), got {k}.")


def _check_positive(**values: int) -> None:
    for arg, value in values.items():
        if value < 1:
            raise ValueError(f"{arg} must be >= 1, got {value}.")
