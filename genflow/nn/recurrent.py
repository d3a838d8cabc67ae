"""The recurrent layers of PixelRNN (van den Oord et al. 2016, "Pixel Recurrent Neural
Networks", arXiv:1601.06759, sections 3.1-3.2): the Row LSTM and the Diagonal BiLSTM (plain torch).

Both compute the input-to-state part of every gate for the whole map with one masked
convolution, then run only the state-to-state recurrence step by step: row after row (Row LSTM),
or column after column of the skewed map, whose columns are the image's diagonals (Diagonal
BiLSTM). Each step is one small convolution over a whole row / column of every image in the
batch.

The update (eq. 3): [o, f, i, g] = [sigmoid, sigmoid, sigmoid, tanh](K_ss * h_prev + K_is * x),
c = f c_prev + i g, h = o tanh(c). The gates are four blocks of `hidden` channels; unit k of
every block belongs to colour group `channel_groups(hidden, C)[k]`, so the input-to-state mask B
keeps the order R -> G -> B inside a pixel. The states carried from step to step belong to
earlier pixels only and need no mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genflow.nn.autoregressive import ClassBias, MaskedConv2d, channel_groups, shift_down


# ---- plain functions ------------------------------------------------------------------------
def skew(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, H, W + H - 1): row r moved right by r, zeros around it, so that
    the diagonal {(r, c - r)} of the map becomes column c (arXiv:1601.06759, Figure 3)."""
    B, C, H, W = x.shape
    flat = F.pad(x, (0, H)).flatten(2)  # (B, C, H (W + H)): every row followed by H zeros
    # cut H values off the end and fold at W + H - 1: each row starts one place further right
    return flat[..., : H * (W + H - 1)].reshape(B, C, H, W + H - 1)


def unskew(x: Tensor, width: int) -> Tensor:
    """The inverse of `skew`: (B, C, H, width + H - 1) -> (B, C, H, width)."""
    B, C, H, skewed_width = x.shape
    if skewed_width != width + H - 1:
        raise ValueError(
            f"unskew: a skewed map of {H} rows and width {width} is {width + H - 1} wide, but "
            f"this one is {skewed_width} wide. Pass the width of the map before `skew`."
        )
    flat = F.pad(x.flatten(2), (0, H))  # (B, C, H (width + H))
    return flat.view(B, C, H, width + H)[..., :width]


def lstm_update(gates: Tensor, c: Tensor, dim: int = 1) -> tuple[Tensor, Tensor]:
    """One LSTM step: pre-activations [o, f, i, g] (four blocks along `dim`) and the previous
    cell c -> (h, c), each of c's shape (arXiv:1601.06759, eq. 3)."""
    o, f, i, g = gates.chunk(4, dim)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


# ---- layers ---------------------------------------------------------------------------------
class RowLSTMLayer(nn.Module):
    """Row LSTM (arXiv:1601.06759, section 3.1): (B, in, H, W) -> states (B, hidden, H, W).

    Input-to-state: a 1 x k mask-B convolution along the row (columns j - k//2 .. j).
    State-to-state: a 1 x k convolution over the previous row's states. Row r is computed at
    once from row r - 1, so the state at (r, j) sees the inputs in a triangle: rows r' <= r,
    columns within j +- (r - r'), widened k//2 to the left by the input-to-state convolution.

    Args:
        in_channels: features of the input map.
        hidden: LSTM units (h per gate).
        data_channels: colour channels of the data: the number of colour groups.
        kernel_size: k of both convolutions (3 in the paper), odd.
        num_classes: learn a bias per class label on the gates (0: unconditional).
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        data_channels: int = 1,
        kernel_size: int = 3,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"Row LSTM kernel_size must be odd, got {kernel_size}.")
        k = kernel_size
        groups = channel_groups(hidden, data_channels).repeat(4)  # o, f, i, g of unit k: one group
        self.input_to_state = MaskedConv2d(
            in_channels, 4 * hidden, (1, k), "B", data_channels, center=(0, k // 2),
            out_groups=groups,
        )  # fmt: skip
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, k, padding=k // 2, bias=False)
        self.cond = ClassBias(num_classes, 4 * hidden)
        self.hidden = hidden

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        gates_in = self.cond(self.input_to_state(x), y)  # (B, 4h, H, W), every row at once
        B, _, H, W = gates_in.shape
        h = c = x.new_zeros(B, self.hidden, W)  # the states of row -1
        rows = []
        # unbind once: indexing row by row would cost a full-size gradient per row
        for gates_row in gates_in.unbind(2):  # the only sequential part, (B, 4h, W) each
            h, c = lstm_update(gates_row + self.state_to_state(h), c)  # (B, h, W)
            rows.append(h)
        return torch.stack(rows, dim=2)  # (B, h, H, W)


class DiagonalBiLSTMLayer(nn.Module):
    """Diagonal BiLSTM (arXiv:1601.06759, section 3.2): (B, in, H, W) -> states (B, hidden, H, W).

    Each direction has a 1x1 mask-B input-to-state convolution and a 2x1 state-to-state
    convolution over the previous column of the skewed map, i.e. over the states at the left
    (r, j - 1) and above (r - 1, j). The left-to-right LSTM at (r, j) so sees the inputs at rows
    <= r, columns <= j. The right-to-left one runs the same way on the mirrored map (rows <= r,
    columns >= j) and is shifted down one row so that it never sees its own row; the two are
    summed. Both directions share one recurrence loop (a batched matrix product per step),
    vectorised over the batch and the diagonal.

    `context_channels` (not in the paper): a further map the right-to-left LSTM reads through an
    unmasked 1x1 convolution. It may see all of its own row, since its output is used one row
    below. PixelRNN passes the image: with a mask-A first layer the paper's layer never sees the
    pixel at the end of the row above, (i - 1, W - 1), for j < W - 1 - first_kernel_size // 2
    (no feature on row i - 1 holds it, and the features on row i that do lie right of j); this
    fills that one blind pixel.

    Args:
        in_channels: features of the input map.
        hidden: LSTM units per direction (h per gate).
        data_channels: colour channels of the data: the number of colour groups.
        num_classes: learn a bias per class label on the gates (0: unconditional).
        context_channels: channels of the right-to-left LSTM's extra input (0: none).
    """

    def __init__(
        self,
        in_channels: int,
        hidden: int,
        data_channels: int = 1,
        num_classes: int = 0,
        context_channels: int = 0,
    ) -> None:
        super().__init__()
        groups = channel_groups(hidden, data_channels).repeat(8)  # 4 gates x 2 directions
        self.input_to_state = MaskedConv2d(
            in_channels, 8 * hidden, 1, "B", data_channels, out_groups=groups
        )
        self.context_to_state = (
            nn.Conv2d(context_channels, 4 * hidden, 1, bias=False) if context_channels else None
        )
        # per direction, the 2x1 kernel over rows r - 1 and r of the previous column (the
        # states above and at the left) as one (4h, 2h) matrix; nn.Conv1d's initialization
        bound = 1 / (2 * hidden) ** 0.5
        self.state_to_state = nn.Parameter(torch.empty(2, 4 * hidden, 2 * hidden))
        nn.init.uniform_(self.state_to_state, -bound, bound)
        self.cond = ClassBias(num_classes, 8 * hidden)
        self.hidden = hidden

    def forward(self, x: Tensor, y: Tensor | None = None, context: Tensor | None = None) -> Tensor:
        B, _, H, W = x.shape
        h = self.hidden
        if (context is None) != (self.context_to_state is None):
            raise ValueError(
                "DiagonalBiLSTMLayer: pass `context` exactly when the layer was built with "
                "context_channels > 0."
            )
        gates = self.cond(self.input_to_state(x), y).view(B, 2, 4 * h, H, W)
        left, right = gates.unbind(1)  # (B, 4h, H, W) each
        if self.context_to_state is not None:
            right = right + self.context_to_state(context)
        gates = torch.cat([left, right.flip(-1)], dim=1)  # right-to-left runs on the mirror
        states = unskew(self.recur(skew(gates)), W).view(B, 2, h, H, W)
        return states[:, 0] + shift_down(states[:, 1].flip(-1))  # (B, h, H, W)

    def recur(self, gates: Tensor) -> Tensor:
        """Both LSTMs down the columns of the skewed map: (B, 8h, H, W') -> (B, 2h, H, W').
        States off the image are kept at zero, the state a first pixel starts from."""
        B, _, H, skewed_width = gates.shape
        n = self.hidden
        inside = skew(gates.new_ones(1, 1, H, skewed_width - H + 1))[0, 0]  # (H, W')
        # one copy puts the columns first and the batch inside: each step reads a contiguous
        # block and multiplies it by the kernels as a batch of 2 matrices (no per-image copy of
        # the weights), and the backward pass writes one gradient, not a full-size one per step
        columns = gates.view(B, 2, 4 * n, H, skewed_width).permute(4, 1, 2, 0, 3).contiguous()
        h = c = gates.new_zeros(2, n, B, H)
        states = []
        for gates_col, inside_col in zip(columns.unbind(0), inside.unbind(1), strict=True):
            above = F.pad(h, (1, 0))[..., :-1]  # (2, h, B, H): row r holds row r - 1
            recurrent = self.state_to_state @ torch.cat([above, h], dim=1).flatten(2)
            pre = gates_col + recurrent.view(2, 4 * n, B, H)  # (2, 4h, B, H)
            h, c = lstm_update(pre, c, dim=1)  # (2, h, B, H) each
            h, c = h * inside_col, c * inside_col
            states.append(h)
        states = torch.stack(states, dim=-1)  # (2, h, B, H, W')
        return states.permute(2, 0, 1, 3, 4).flatten(1, 2)  # (B, 2h, H, W')
