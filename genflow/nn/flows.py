"""Invertible layers for normalizing flows (plain torch, no Lightning).

Every layer maps `forward(x) -> (y, log_det)` and `inverse(y) -> (x, log_det)`, where log_det
(B,) is log|det dy/dx| of the forward map and log|det dx/dy| = -log|det dy/dx| of the inverse
one, each at the point it was given. Shapes are (B, D) for vectors and (B, C, H, W) for images.

Couplings follow Dinh et al. 2014 (NICE, arXiv:1410.8516) and Dinh et al. 2016 (Real NVP,
arXiv:1605.08803); ActNorm follows Kingma & Dhariwal 2018 (Glow, arXiv:1807.03039).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

LogDet = Tensor  # (B,)


def _zeros(x: Tensor) -> LogDet:
    return x.new_zeros(x.shape[0])


def _sum_per_example(t: Tensor) -> LogDet:
    return t.flatten(1).sum(1)


class FlowLayer(nn.Module):
    """An invertible map with a tractable log-determinant (see the module docstring)."""

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        raise NotImplementedError

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        raise NotImplementedError


class FlowSequential(FlowLayer):
    """Layers applied in order; the inverse runs them backwards. Log-dets add up."""

    def __init__(self, *layers: FlowLayer) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        log_det = _zeros(x)
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        log_det = _zeros(y)
        for layer in reversed(self.layers):
            y, ld = layer.inverse(y)
            log_det = log_det + ld
        return y, log_det


class Reshape(FlowLayer):
    """(B, *in_shape) <-> (B, *out_shape), e.g. images to vectors for fully connected flows."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int]) -> None:
        super().__init__()
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        if math.prod(self.in_shape) != math.prod(self.out_shape):
            raise ValueError(f"Cannot reshape {self.in_shape} into {self.out_shape}.")

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        return x.reshape(-1, *self.out_shape), _zeros(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        return y.reshape(-1, *self.in_shape), _zeros(y)


# ---- masks ------------------------------------------------------------------------------------
def checkerboard_mask(height: int, width: int, parity: int = 0) -> Tensor:
    """(1, H, W) mask with 1 where (i + j + parity) is even (Real NVP, Figure 3 left)."""
    i = torch.arange(height)[:, None]
    j = torch.arange(width)[None, :]
    return ((i + j + parity) % 2 == 0).to(torch.get_default_dtype()).unsqueeze(0)


def channel_mask(channels: int, parity: int = 0) -> Tensor:
    """(C, 1, 1) mask with 1 on the first half of the channels (the second half if parity)."""
    mask = (torch.arange(channels) < channels // 2).to(torch.get_default_dtype())
    return (1 - mask if parity else mask).view(channels, 1, 1)


def alternating_mask(dim: int, parity: int = 0) -> Tensor:
    """(D,) mask with 1 on the even (parity 0) or odd (parity 1) indices (NICE's partition)."""
    return ((torch.arange(dim) + parity) % 2 == 0).to(torch.get_default_dtype())


def random_complemented_masks(
    dim: int, num_layers: int, generator: torch.Generator | None = None
) -> list[Tensor]:
    """`num_layers` (D,) masks: per pair of layers one random half b, then its complement 1 - b,
    so every coordinate is transformed within each pair (the seed's fully connected flow)."""
    if num_layers % 2 or dim < 2:
        raise ValueError(
            f"Complemented masks need an even number of layers and at least 2 dimensions, got "
            f"num_layers={num_layers} and dim={dim}."
        )
    masks = []
    for _ in range(num_layers // 2):
        b = torch.zeros(dim)
        b[torch.randperm(dim, generator=generator)[: dim // 2]] = 1
        masks += [b, 1 - b]
    return [m.to(torch.get_default_dtype()) for m in masks]


# ---- conditioner networks ---------------------------------------------------------------------
def mlp(
    in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module]
) -> nn.Module:
    """Linear layers with `activation` between them; the last layer starts at zero so that a
    coupling built on it starts as the identity."""
    dims = [in_dim, *hidden, out_dim]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    layers.pop()  # no activation after the output layer
    nn.init.zeros_(layers[-1].weight)
    nn.init.zeros_(layers[-1].bias)
    return nn.Sequential(*layers)


class TanhMLPST(nn.Module):
    """The seed's conditioner: s and t are two separate tanh MLPs of b * x, each (B, D)."""

    def __init__(self, dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.s = mlp(dim, hidden, dim, nn.Tanh)
        self.t = mlp(dim, hidden, dim, nn.Tanh)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.s(x), self.t(x)


class ResBlock(nn.Module):
    """h + conv(relu(conv(relu(h)))) with weight-normalized 3x3 convolutions; the input is
    added exactly once, here, and nowhere else."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = weight_norm(nn.Conv2d(features, features, 3, padding=1))
        self.conv2 = weight_norm(nn.Conv2d(features, features, 3, padding=1))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.conv2(F.relu(self.conv1(F.relu(h))))


class ResNetST(nn.Module):
    """Real NVP's s/t network: a 3x3 stem, `num_blocks` residual blocks, a zero-initialized 3x3
    head with 2 * out_channels outputs split into s and t (Dinh et al. 2016, section 4.1)."""

    def __init__(self, in_channels: int, out_channels: int, features: int, num_blocks: int):
        super().__init__()
        self.stem = weight_norm(nn.Conv2d(in_channels, features, 3, padding=1))
        self.blocks = nn.Sequential(*(ResBlock(features) for _ in range(num_blocks)))
        self.head = nn.Conv2d(features, 2 * out_channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.blocks(self.stem(x))  # (B, F, H, W)
        s, t = self.head(F.relu(h)).chunk(2, dim=1)  # each (B, C_out, H, W)
        return s, t


# ---- couplings --------------------------------------------------------------------------------
def _feature_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """(C, 1, 1) for images, (D,) for vectors: one value per channel or coordinate."""
    return (shape[0],) + (1,) * (len(shape) - 1)


class AffineCoupling(FlowLayer):
    """c(x) = b*x + (1-b)*(x*exp(s(b*x)) + t(b*x)), log|J| = sum((1-b)*s(b*x)); the inverse is
    b*y + (1-b)*(y - t(b*y))*exp(-s(b*y)) (Dinh et al. 2016, section 3.3).

    Args:
        shape: shape of one example, (D,) or (C, H, W).
        mask: b, broadcastable to `shape` (1 = passed through, conditions s and t).
        conditioner: maps the masked input to (s, t), each of `shape`.
        tanh_scale: s = scale * tanh(s_raw) with a learned scale per channel, which bounds each
            layer's contraction and keeps sampling finite; False uses s_raw as it is.
        mask_input: feed the mask to the conditioner as an extra channel (checkerboard masks,
            where a convolution cannot otherwise tell passed from transformed positions).
    """

    def __init__(
        self,
        shape: Sequence[int],
        mask: Tensor,
        conditioner: nn.Module,
        tanh_scale: bool = True,
        mask_input: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("mask", mask.clone())
        self.conditioner = conditioner
        self.mask_input = mask_input
        self.scale = nn.Parameter(torch.ones(_feature_shape(shape))) if tanh_scale else None

    def _s_t(self, x_masked: Tensor) -> tuple[Tensor, Tensor]:
        h = x_masked
        if self.mask_input:
            h = torch.cat([h, self.mask.expand(len(h), 1, *h.shape[2:])], dim=1)
        s, t = self.conditioner(h)
        if self.scale is not None:
            s = self.scale * torch.tanh(s)
        return (1 - self.mask) * s, (1 - self.mask) * t

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        b = self.mask
        s, t = self._s_t(b * x)
        y = b * x + (1 - b) * (x * torch.exp(s) + t)
        return y, _sum_per_example(s)

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        b = self.mask
        s, t = self._s_t(b * y)
        x = b * y + (1 - b) * (y - t) * torch.exp(-s)
        return x, -_sum_per_example(s)


class AdditiveCoupling(FlowLayer):
    """NICE's volume-preserving coupling y = b*x + (1-b)*(x + m(b*x)), log|J| = 0
    (Dinh et al. 2014, section 3.2)."""

    def __init__(self, mask: Tensor, shift: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mask", mask.clone())
        self.shift = shift

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        return x + (1 - self.mask) * self.shift(self.mask * x), _zeros(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        return y - (1 - self.mask) * self.shift(self.mask * y), _zeros(y)


class DiagonalScaling(FlowLayer):
    """NICE's final layer y = exp(s) * x with a learned s per dimension, log|J| = sum(s)
    (Dinh et al. 2014, section 3.3)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(tuple(shape)))

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        return x * torch.exp(self.log_scale), self.log_scale.sum().expand(len(x))

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        return y * torch.exp(-self.log_scale), -self.log_scale.sum().expand(len(y))


# ---- multi-scale ------------------------------------------------------------------------------
def squeeze(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block becomes 4 channels (Real NVP, Fig. 3)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2)  # (B, C, H/2, 2, W/2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """(B, 4C, H/2, W/2) -> (B, C, H, W), the inverse of `squeeze`."""
    b, c4, h2, w2 = x.shape
    x = x.view(b, c4 // 4, 2, 2, h2, w2)  # (B, C, 2, 2, H/2, W/2)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, 2 * h2, 2 * w2)


class Squeeze(FlowLayer):
    """s x s x c -> s/2 x s/2 x 4c, a permutation (log-det 0)."""

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        if x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"Squeeze needs even height and width, got {tuple(x.shape[2:])}.")
        return squeeze(x), _zeros(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        return unsqueeze(y), _zeros(y)


class Unsqueeze(FlowLayer):
    """The inverse of `Squeeze`, closing a scale so that the latent keeps the data's shape."""

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        return unsqueeze(x), _zeros(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        return squeeze(y), _zeros(y)


class FactorOut(FlowLayer):
    """Real NVP's multi-scale factoring (section 3.6): the first half of the channels leaves the
    flow here (it goes to the prior as it is); `inner` transforms only the second half."""

    def __init__(self, inner: FlowLayer) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        z, h = x.chunk(2, dim=1)  # each (B, C/2, ...)
        h, log_det = self.inner(h)
        return torch.cat([z, h], dim=1), log_det

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        z, h = y.chunk(2, dim=1)
        h, log_det = self.inner.inverse(h)
        return torch.cat([z, h], dim=1), log_det


# ---- normalization ----------------------------------------------------------------------------
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _channel_dims(x: Tensor) -> list[int]:
    return [0, *range(2, x.dim())]  # batch and spatial axes


def _global_mean(x: Tensor, dims: list[int], differentiable: bool) -> Tensor:
    """Mean over `dims` of x, over every DDP rank's batch when running distributed."""
    total, count = x.sum(dims), x.new_tensor(x.numel() / x.shape[1])
    if _distributed():
        if differentiable:
            from torch.distributed.nn.functional import all_reduce

            total = all_reduce(total)
        else:
            dist.all_reduce(total)
        dist.all_reduce(count)
    return total / count


def _spatial_size(x: Tensor) -> int:
    return math.prod(x.shape[2:])


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    return v.view(1, -1, *([1] * (x.dim() - 2)))  # (C,) -> (1, C, 1, ...)


class ActNorm(FlowLayer):
    """y = (x - loc) * exp(log_scale) per channel, initialized from the first training batch to
    zero mean and unit variance (Kingma & Dhariwal 2018, section 3.1); under DDP the first batch
    statistics are averaged over the ranks so every rank starts from the same parameters."""

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(num_features))
        self.log_scale = nn.Parameter(torch.zeros(num_features))
        self.eps = eps
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        dims = _channel_dims(x)
        mean = _global_mean(x, dims, differentiable=False)
        var = _global_mean((x - _per_channel(mean, x)) ** 2, dims, differentiable=False)
        self.loc.copy_(mean)
        self.log_scale.copy_(-0.5 * torch.log(var + self.eps))
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        if self.training and not self.initialized:
            self._initialize(x)
        y = (x - _per_channel(self.loc, x)) * _per_channel(self.log_scale.exp(), x)
        return y, (self.log_scale.sum() * _spatial_size(x)).expand(len(x))

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        x = y * _per_channel((-self.log_scale).exp(), y) + _per_channel(self.loc, y)
        return x, (-self.log_scale.sum() * _spatial_size(y)).expand(len(y))


class FlowBatchNorm(FlowLayer):
    """Batch normalization as a bijection with its log-det (Dinh et al. 2016, appendix E):
    y = (x - mu) / sqrt(var + eps) * exp(log_gamma) + beta per channel.

    Training uses the batch statistics (over every DDP rank's batch, differentiably, like
    SyncBatchNorm, so the ranks agree) and updates running averages; evaluation and `inverse`
    use the running averages, so the map is a per-example bijection there.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.log_gamma = nn.Parameter(torch.zeros(num_features))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.momentum, self.eps = momentum, eps
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        dims = _channel_dims(x)
        mean = _global_mean(x, dims, differentiable=True)
        var = _global_mean((x - _per_channel(mean, x)) ** 2, dims, differentiable=True)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach(), self.momentum)
        return mean, var

    def _log_det(self, var: Tensor, x: Tensor) -> LogDet:
        per_channel = self.log_gamma - 0.5 * torch.log(var + self.eps)
        return (per_channel.sum() * _spatial_size(x)).expand(len(x))

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        mean, var = self._statistics(x)
        scale = torch.exp(self.log_gamma) * torch.rsqrt(var + self.eps)
        y = (x - _per_channel(mean, x)) * _per_channel(scale, x) + _per_channel(self.beta, x)
        return y, self._log_det(var, x)

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        mean, var = self.running_mean, self.running_var
        scale = torch.exp(-self.log_gamma) * torch.sqrt(var + self.eps)
        x = (y - _per_channel(self.beta, y)) * _per_channel(scale, y) + _per_channel(mean, y)
        return x, -self._log_det(var, y)


def normalization(kind: str, num_features: int) -> list[FlowLayer]:
    """[] for "none", [ActNorm] for "actnorm", [FlowBatchNorm] for "batchnorm"."""
    if kind == "none":
        return []
    if kind == "actnorm":
        return [ActNorm(num_features)]
    if kind == "batchnorm":
        return [FlowBatchNorm(num_features)]
    raise ValueError(f"Unknown flow normalization {kind!r}; choose none, actnorm or batchnorm.")


# ---- data handling ----------------------------------------------------------------------------
class LogitTransform(FlowLayer):
    """u in [0, 1] -> logit(alpha + (1 - 2 alpha) u), with log|J| = sum(log(1 - 2 alpha)
    - log p - log(1 - p)), p = alpha + (1 - 2 alpha) u (Dinh et al. 2016, section 4.1).

    alpha > 0 keeps the ends of [0, 1] finite."""

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        if not 0 < alpha < 0.5:
            raise ValueError(f"The logit transform needs 0 < alpha < 0.5, got {alpha}.")
        self.alpha = alpha

    def _log_det(self, p: Tensor) -> LogDet:
        log_dp = math.log(1 - 2 * self.alpha) - torch.log(p) - torch.log1p(-p)
        return _sum_per_example(log_dp)

    def forward(self, x: Tensor) -> tuple[Tensor, LogDet]:
        p = self.alpha + (1 - 2 * self.alpha) * x
        return torch.log(p) - torch.log1p(-p), self._log_det(p)

    def inverse(self, y: Tensor) -> tuple[Tensor, LogDet]:
        p = torch.sigmoid(y)
        return (p - self.alpha) / (1 - 2 * self.alpha), -self._log_det(p)


def quantize(u: Tensor, num_bits: int) -> Tensor:
    """The discrete value k / (2^b - 1) of the bin [k, k+1) / 2^b that u falls in (clamped to
    [0, 1]); a non-finite u stays NaN rather than being clamped into a valid-looking value."""
    levels = 2**num_bits
    x = torch.floor(u * levels).clamp(0, levels - 1) / (levels - 1)
    return torch.where(torch.isfinite(u), x, torch.nan)


# ---- base distributions -----------------------------------------------------------------------
def standard_logistic_log_prob(z: Tensor) -> LogDet:
    """log of the standard logistic density, -(softplus(z) + softplus(-z)), summed -> (B,)."""
    return -_sum_per_example(F.softplus(z) + F.softplus(-z))


def standard_logistic_sample(shape: Sequence[int], **kwargs) -> Tensor:
    """Standard logistic draws log(u) - log(1 - u); u is kept off 0 and 1 so they are finite."""
    u = torch.rand(tuple(shape), **kwargs).clamp(1e-6, 1 - 1e-6)
    return torch.log(u) - torch.log1p(-u)
