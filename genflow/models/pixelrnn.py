"""PixelRNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", arXiv:1601.06759):
exact autoregressive likelihoods from two-dimensional LSTM layers.

p(x) = prod_i p(x_i | x_<i) over the pixels in raster order and over the colour channels
R -> G -> B inside a pixel, with the data handling, 2^b-way softmax (Bernoulli for binarized
data), exact `log_prob` and samplers of the PixelCNN family (`genflow.models.pixelcnn`).

The network (section 3 and Table 1): a 7x7 mask-A convolution, then LSTM layers of one of two
kinds, each a residual block (section 3.3, Figure 4: the input map of 2h features feeds the
LSTM's h units per gate, a mask-B 1x1 convolution takes its states back to 2h, the input is
added), then ReLU and two mask-B 1x1 convolutions. "row": the Row LSTM, a triangular
receptive field above the pixel. "diagonal": the Diagonal BiLSTM, which sees every earlier pixel.

Sampling recomputes the network for every sub-pixel: the recurrences are sequential anyway. The
"fast" sampler runs it on the rows up to the current one only (no layer lets a row see the rows
below it); "sequential" runs it on the whole image. Both draw the same images for the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from genflow.models.pixelcnn import (
    _check_kernels,
    _check_positive,
    _check_widths,
    _SoftmaxPixelModel,
)
from genflow.nn.autoregressive import ClassBias, MaskedConv2d, output_head
from genflow.nn.recurrent import DiagonalBiLSTMLayer, RowLSTMLayer

Layer = Literal["row", "diagonal"]
LAYERS = ("row", "diagonal")


class PixelRNNNet(nn.Module):
    """(B, C, H, W) in [-1, 1] -> (B, P, H, W) likelihood parameters: a mask-A kxk input
    convolution, residual LSTM layers (`layer`: "row" or "diagonal"), a ReLU / mask-B 1x1 head.

    The Diagonal BiLSTM layers also get the image as the right-to-left LSTM's context (see
    `DiagonalBiLSTMLayer`): without it one earlier pixel, the last of the row above, is missed.
    """

    def __init__(
        self,
        data_channels: int,
        out_channels: int,
        hidden_channels: int,
        num_layers: int,
        layer: Layer,
        first_kernel_size: int,
        head_channels: int,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        C, h = data_channels, hidden_channels // 2
        self.diagonal = layer == "diagonal"
        self.input_conv = MaskedConv2d(C, hidden_channels, first_kernel_size, "A", C)
        self.input_cond = ClassBias(num_classes, hidden_channels)
        self.lstms = nn.ModuleList(
            DiagonalBiLSTMLayer(hidden_channels, h, C, num_classes, context_channels=C)
            if self.diagonal
            else RowLSTMLayer(hidden_channels, h, C, num_classes=num_classes)
            for _ in range(num_layers)
        )
        self.ups = nn.ModuleList(
            MaskedConv2d(h, hidden_channels, 1, "B", C) for _ in range(num_layers)
        )
        self.head = output_head(hidden_channels, head_channels, out_channels, C)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        f = self.input_cond(self.input_conv(x), y)  # (B, 2h, H, W)
        for lstm, up in zip(self.lstms, self.ups, strict=True):
            states = lstm(f, y, x) if self.diagonal else lstm(f, y)  # (B, h, H, W)
            f = f + up(states)  # the residual connection, (B, 2h, H, W)
        return self.head(f)  # (B, P, H, W)

    def start_sampling(self, x: Tensor) -> None:
        return None  # nothing is cached: every sub-pixel reruns the network

    def params_at(self, state: None, x: Tensor, i: int, j: int, y: Tensor | None) -> Tensor:
        """The output at (i, j), (B, P), from the rows up to i: the rows below never reach
        them (the recurrences run downwards, the convolutions' masks end at the current row)."""
        return self(x[:, :, : i + 1], y)[:, :, i, j]


class PixelRNN(_SoftmaxPixelModel):
    """PixelRNN (van den Oord et al. 2016, arXiv:1601.06759): a 7x7 mask-A convolution,
    residual Row LSTM or Diagonal BiLSTM layers, masked 1x1 output layers and a 2^b-way softmax
    per sub-pixel (Bernoulli for binarized data).

    The Row LSTM (section 3.1) computes a whole row per step and sees a triangle above each
    pixel; the Diagonal BiLSTM (section 3.2) computes a whole diagonal per step and sees every
    earlier pixel. Differences from the paper: the Diagonal BiLSTM's right-to-left LSTM also
    reads the image (an unmasked 1x1 convolution; see `DiagonalBiLSTMLayer`), which fills the
    one earlier pixel the paper's layer misses; the multi-scale model is not included.

    Sampling reruns the network for every sub-pixel (H W C passes, on the rows up to the
    current one): slow, as PixelRNN's sampling is in the paper.

    Loss: -log p(x) in nats summed over the sub-pixels, averaged over the batch. val/test log
    `nll` (nats per image) and `bpd`, exact over the whole split.

    Args:
        layer: "row" (Row LSTM) or "diagonal" (Diagonal BiLSTM).
        hidden_channels: features between layers (2h in the paper; each LSTM has h units per
            gate and per direction).
        num_layers: LSTM layers.
        first_kernel_size: of the mask-A input convolution.
        head_channels: width of the hidden 1x1 output layer.
        conditional: learn a bias per class label in every layer; then `sample(labels=...)`.
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 28, 28),
        num_bits: int | None = 8,
        num_classes: int = 10,
        layer: Layer = "diagonal",
        hidden_channels: int = 32,
        num_layers: int = 7,
        first_kernel_size: int = 7,
        head_channels: int = 32,
        conditional: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__(data_shape, num_bits, num_classes, conditional, optimizer, lr_scheduler)
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        if layer not in LAYERS:
            raise ValueError(
                f"PixelRNN layer must be 'row' (Row LSTM) or 'diagonal' (Diagonal BiLSTM), got "
                f"{layer!r}."
            )
        C = self.data_shape[0]
        _check_widths(type(self).__name__, C, hidden_channels=(hidden_channels, 2 * C),
                      head_channels=(head_channels, C))  # fmt: skip
        _check_kernels(first_kernel_size=first_kernel_size)
        _check_positive(num_layers=num_layers)
        self.layer = layer
        self.net = PixelRNNNet(
            C, C * self._outputs_per_channel, hidden_channels, num_layers, layer,
            first_kernel_size, head_channels, self._label_classes,
        )  # fmt: skip
