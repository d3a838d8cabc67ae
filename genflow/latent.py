"""Latent-space tools for every model with a latent space: interpolation paths and grids,
attribute vectors, and helpers that encode and decode through the model contract
(`encode(x)`, `decode(z)`, `latent_shape`; a GAN's `decode` is its generator).

Codes keep their own shape: a code of shape `latent_shape` (e.g. (L,) or (C, H, W)) is one
point, and every function treats all of its elements as one vector. Paths put the steps first:
interpolating codes of shape S at T steps gives (T, *S).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

import torch
from torch import Tensor

Method = Literal["slerp", "lerp"]


class LatentModel(Protocol):
    """What the helpers need of a model (any genflow model with a latent space)."""

    latent_shape: tuple[int, ...]

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, z: Tensor) -> Tensor: ...


# ---- interpolation ------------------------------------------------------------------------
def lerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """Linear interpolation (1 - t) z0 + t z1.

    `t` is a float (returns z0's shape) or a 1-D tensor of T steps (returns (T, *z0.shape)).
    The endpoints come back exactly: t = 0 gives z0 and t = 1 gives z1 bit for bit.

    >>> lerp(torch.tensor([0.0, 2.0]), torch.tensor([2.0, 0.0]), 0.5)
    tensor([1., 1.])
    """
    _check_pair(z0, z1)
    steps, scalar = _steps(t, z0)
    w = steps.view(-1, *[1] * z0.dim())  # (T, 1, ..., 1)
    path = (1 - w) * z0 + w * z1  # (T, *shape)
    return path[0] if scalar else path


def slerp(z0: Tensor, z1: Tensor, t: float | Tensor, batch_dims: int = 0) -> Tensor:
    """Spherical linear interpolation (Shoemake 1985; for generative models White 2016,
    "Sampling Generative Networks", arXiv:1609.04468).

    The direction turns along the great circle from z0 to z1 at constant angular speed and the
    norm goes linearly from |z0| to |z1|. For endpoints of equal norm this is Shoemake's
    [sin((1 - t) w) z0 + sin(t w) z1] / sin w, w the angle between them, and the norm stays
    |z0| along the whole path. (Applying that formula to endpoints of unequal norm sends the
    path to infinity as they approach opposite directions; this form stays bounded.)

    Safe everywhere: (nearly) parallel codes or a zero code give the linear path, which is the
    limit of slerp there; for (nearly) opposite codes, where the great circle is not unique,
    the path turns through the part of z1 orthogonal to z0, or through a fixed coordinate axis
    when that part is zero. The endpoints come back exactly: t = 0 gives z0 and t = 1 gives z1.

    Args:
        z0, z1: codes of the same shape (*batch, *code); the leading `batch_dims` dimensions
            index independent pairs, the rest is one code.
        t: a float (returns z0's shape) or a 1-D tensor of T steps (returns (T, *z0.shape)).
        batch_dims: how many leading dimensions are batch dimensions.

    >>> e0, e1 = torch.eye(2)
    >>> slerp(e0, e1, 0.5)  # (e0 + e1) / sqrt(2)
    tensor([0.7071, 0.7071])
    """
    _check_pair(z0, z1)
    if not 0 <= batch_dims < z0.dim():
        raise ValueError(
            f"batch_dims must leave at least one code dimension: codes of shape "
            f"{tuple(z0.shape)} allow batch_dims in 0..{z0.dim() - 1}, got {batch_dims}."
        )
    steps, scalar = _steps(t, z0)
    dtype = torch.promote_types(z0.dtype, torch.float32)  # half codes: the angle in float32
    a = z0.reshape(-1, math.prod(z0.shape[batch_dims:])).to(dtype)  # (B, D)
    b = z1.reshape(a.shape).to(dtype)  # (B, D)
    path = _slerp_rows(a, b, steps.to(dtype)).to(z0.dtype)  # (T, B, D)
    path = path.view(len(steps), *z0.shape)  # (T, *shape)
    path = _exact_endpoints(path, z0, z1, steps)
    return path[0] if scalar else path


def _slerp_rows(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Slerp of rows a, b (B, D) at steps t (T,) -> (T, B, D); see `slerp`."""
    norm_a, norm_b = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)  # (B, 1)
    # no direction (a zero code), or a 1-D "sphere" of two points: the linear path
    degenerate = (norm_a == 0) | (norm_b == 0) | (a.shape[1] == 1)
    u = a / norm_a.masked_fill(degenerate, 1)  # (B, D) unit rows
    v = b / norm_b.masked_fill(degenerate, 1)
    # 2 atan2(|u - v|, |u + v|) is accurate at every angle, unlike acos(u . v) near 0 and pi
    omega = 2 * torch.atan2((u - v).norm(dim=1, keepdim=True), (u + v).norm(dim=1, keepdim=True))
    omega = omega.masked_fill(degenerate, 0)  # (B, 1)
    opposite = math.pi - omega < math.sqrt(torch.finfo(a.dtype).eps)
    t = t.view(-1, 1, 1)  # (T, 1, 1)
    direction = torch.where(
        opposite, _turn(u, v, omega, t), _great_circle(u, v, omega, t)
    )  # (T, B, D)
    radius = (1 - t) * norm_a + t * norm_b  # (T, B, 1)
    return torch.where(degenerate, (1 - t) * a + t * b, radius * direction)


def _great_circle(u: Tensor, v: Tensor, omega: Tensor, t: Tensor) -> Tensor:
    """[sin((1 - t) w) u + sin(t w) v] / sin w for unit rows, written with sinc so that w -> 0
    gives (1 - t) u + t v without a division by zero."""

    def ratio(s: Tensor) -> Tensor:  # sin(s w) / sin(w)
        return s * torch.sinc(s * omega / math.pi) / torch.sinc(omega / math.pi)

    return ratio(1 - t) * u + ratio(t) * v  # (T, B, D)


def _turn(u: Tensor, v: Tensor, omega: Tensor, t: Tensor) -> Tensor:
    """cos(t w) u + sin(t w) p: a turn by t w from u towards p, the unit row orthogonal to u in
    the plane of u and v or, when v is (numerically) -u, the coordinate axis where u is
    smallest made orthogonal to u."""
    p = v - (v * u).sum(1, keepdim=True) * u  # (B, D), the part of v orthogonal to u
    axis = torch.zeros_like(u).scatter_(1, u.abs().argmin(1, keepdim=True), 1.0)
    q = axis - (axis * u).sum(1, keepdim=True) * u  # never zero: |u_k| <= 1/sqrt(D) < 1
    tiny = p.norm(dim=1, keepdim=True) < 16 * torch.finfo(u.dtype).eps
    p = torch.where(tiny, q, p)
    p = p / p.norm(dim=1, keepdim=True)
    return torch.cos(t * omega) * u + torch.sin(t * omega) * p  # (T, B, D)


def interpolate(
    z0: Tensor, z1: Tensor, steps: int, method: Method = "slerp", batch_dims: int = 0
) -> Tensor:
    """The path z0 -> z1 at `steps` evenly spaced t in [0, 1]: (steps, *z0.shape), whose first
    and last entries are z0 and z1 exactly. `batch_dims` as in `slerp`."""
    if steps < 2:
        raise ValueError(f"steps must be >= 2 to include both endpoints, got {steps}.")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)
    if method == "slerp":
        return slerp(z0, z1, t, batch_dims=batch_dims)
    if method == "lerp":
        return lerp(z0, z1, t)
    raise ValueError(f"Unknown interpolation method {method!r}; choose slerp or lerp.")


def interpolation_grid(corners: Tensor, rows: int, cols: int, method: Method = "slerp") -> Tensor:
    """A (rows, cols, *latent_shape) grid of codes spanned by four corner codes.

    `corners` is (4, *latent_shape) in the order top-left, top-right, bottom-left,
    bottom-right, and each lands exactly at its corner of the grid. The top and bottom edges
    are interpolated first, then each column between them; with lerp this is bilinear
    interpolation, (1-v)(1-u) c00 + (1-v) u c01 + v (1-u) c10 + v u c11 at u = j / (cols - 1),
    v = i / (rows - 1); with slerp both axes are spherical.
    """
    if corners.dim() < 2 or corners.shape[0] != 4:
        raise ValueError(
            f"corners must be (4, *latent_shape): top-left, top-right, bottom-left, "
            f"bottom-right codes; got shape {tuple(corners.shape)}."
        )
    if rows < 2 or cols < 2:
        raise ValueError(
            f"A grid needs rows >= 2 and cols >= 2 to hold its corners, got rows={rows}, "
            f"cols={cols}."
        )
    top = interpolate(corners[0], corners[1], cols, method)  # (cols, *shape)
    bottom = interpolate(corners[2], corners[3], cols, method)  # (cols, *shape)
    return interpolate(top, bottom, rows, method, batch_dims=1)  # (rows, cols, *shape)


# ---- attribute vectors --------------------------------------------------------------------
def attribute_vector(z: Tensor, mask: Tensor) -> Tensor:
    """Mean code of the examples that have an attribute minus the mean code of those without
    it (Larsen et al. 2016, arXiv:1512.09300; White 2016, arXiv:1609.04468).

    Args:
        z: (N, *latent_shape) codes, e.g. from `encode_all`.
        mask: (N,) bool, True where the example has the attribute (e.g. `labels == 3`).

    Returns:
        (*latent_shape) the attribute vector v; decode z + alpha v to add the attribute.
    """
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (e.g. labels == 3), got {mask.dtype}.")
    if mask.shape != z.shape[:1] or z.dim() < 2:
        raise ValueError(
            f"mask must be (N,) for codes (N, *latent_shape); got mask {tuple(mask.shape)} "
            f"and codes {tuple(z.shape)}."
        )
    n_with = int(mask.sum())
    if n_with == 0 or n_with == len(mask):
        raise ValueError(
            f"An attribute vector needs examples with and without the attribute, but "
            f"{n_with} of {len(mask)} examples have it. Choose a mask that splits the codes."
        )
    return z[mask].mean(0) - z[~mask].mean(0)


def apply_attribute(z: Tensor, v: Tensor, alphas: float | Tensor) -> Tensor:
    """z + alpha v for each alpha: (A, *z.shape) for a 1-D tensor of A alphas, z's shape for a
    float. `z` is one code or a batch (B, *latent_shape); `v` broadcasts against it."""
    alpha, scalar = _steps(alphas, z)
    out = z + alpha.view(-1, *[1] * z.dim()) * v  # (A, *z.shape)
    return out[0] if scalar else out


# ---- through a model ----------------------------------------------------------------------
def model_device(model) -> torch.device:
    """The device of a model: its `device` attribute, else that of its first parameter."""
    device = getattr(model, "device", None)
    if device is not None:
        return torch.device(device)
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


@contextmanager
def evaluating(model) -> Iterator[None]:
    """Eval mode and no gradients inside the block; the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def random_codes(
    model: LatentModel,
    num_codes: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(num_codes, *model.latent_shape) codes from the model's prior, on its device: the
    standard normal scaled by `temperature`, or the model's own `random_latents(num_codes,
    temperature, generator)` where its latent space is not normal (StyleGAN's w = f(z))."""
    own = getattr(model, "random_latents", None)
    if own is not None:
        return own(num_codes, temperature, generator)
    shape = (num_codes, *model.latent_shape)
    device = model_device(model)
    if generator is None:
        return temperature * torch.randn(shape, device=device)
    return temperature * torch.randn(shape, generator=generator).to(device)


def encode_all(
    model: LatentModel,
    data: Tensor | Iterable,
    batch_size: int = 256,
    return_labels: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Codes (N, *latent_shape) of every example, on the CPU, in eval mode without gradients.

    `data` is a tensor (N, *data_shape) or an iterable of batches, either tensors or (x, y)
    pairs as the DataModules yield them. With `return_labels` the batches must be (x, y) pairs
    and the labels (N,) come back too, in the same order as the codes (a shuffling loader is
    read once).
    """
    device = model_device(model)
    codes, labels = [], []
    batches = data.split(batch_size) if isinstance(data, Tensor) else data
    with evaluating(model):
        for batch in batches:
            x, y = _split_batch(batch, return_labels)
            codes.append(model.encode(x.to(device)).cpu())
            if y is not None:
                labels.append(y.cpu())
    if not codes:
        raise ValueError("encode_all got no data: the tensor or loader is empty.")
    z = torch.cat(codes)
    return (z, torch.cat(labels)) if return_labels else z


def decode_path(model: LatentModel, codes: Tensor, batch_size: int = 256) -> Tensor:
    """Decode codes (*lead, *latent_shape) of any leading shape, e.g. a path (T, ...) or a grid
    (rows, cols, ...), into (*lead, *sample_shape), in eval mode without gradients."""
    latent_shape = tuple(model.latent_shape)
    k = len(latent_shape)
    if codes.dim() <= k or tuple(codes.shape[codes.dim() - k :]) != latent_shape:
        raise ValueError(
            f"codes must be (*lead, *latent_shape) with latent_shape {latent_shape} and at "
            f"least one leading dimension; got shape {tuple(codes.shape)}."
        )
    lead = codes.shape[: codes.dim() - k]
    flat = codes.reshape(-1, *latent_shape).to(model_device(model))  # (N, *latent_shape)
    with evaluating(model):
        out = torch.cat([model.decode(chunk) for chunk in flat.split(batch_size)])
    return out.reshape(*lead, *out.shape[1:])  # (*lead, *sample_shape)


# ---- checks -------------------------------------------------------------------------------
def _check_pair(z0: Tensor, z1: Tensor) -> None:
    if z0.shape != z1.shape:
        raise ValueError(
            f"Both endpoints must have the same shape, got {tuple(z0.shape)} and "
            f"{tuple(z1.shape)}."
        )
    if not (z0.is_floating_point() and z1.is_floating_point()):
        raise TypeError(f"Codes must be floating point, got {z0.dtype} and {z1.dtype}.")


def _steps(t: float | Tensor, like: Tensor) -> tuple[Tensor, bool]:
    """`t` as a (T,) tensor in `like`'s dtype and device, and whether it was a scalar."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() > 1:
        raise ValueError(
            f"t must be a float or a 1-D tensor of steps, got shape {tuple(t.shape)}."
        )
    return t.reshape(-1), t.dim() == 0


def _exact_endpoints(path: Tensor, z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """Put z0 and z1 themselves where t is exactly 0 or 1 (the formulas round there)."""
    t = t.view(-1, *[1] * z0.dim())  # (T, 1, ..., 1)
    return torch.where(t == 0, z0, torch.where(t == 1, z1, path))


def _split_batch(batch, need_labels: bool) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, Tensor):
        if need_labels:
            raise ValueError("return_labels=True needs batches of (x, y) pairs, got tensors.")
        return batch, None
    x, y = batch[0], batch[1] if len(batch) > 1 else None
    if need_labels and y is None:
        raise ValueError("return_labels=True needs batches of (x, y) pairs.")
    return x, y if need_labels else None
