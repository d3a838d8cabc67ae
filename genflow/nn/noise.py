"""Evaluation noise that belongs to the example: a fixed function of its values and a seed.

Validation figures of models that draw noise (a VAE's posterior sample and IWAE samples, a GAN's
fakes, a flow's dequantization) would otherwise depend on how the examples were batched and on
the number of DDP ranks, and would change from one evaluation to the next. Here every example
gets a key from its own values (an exact integer hash, so the same on any device, batch or
rank), and the noise is a counter-based hash of (key, position): figures repeat exactly and
equal the 1-process values under any number of ranks. Training keeps the ordinary RNG.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

_M32 = 0xFFFFFFFF


def _mix32(z: Tensor) -> Tensor:
    """An integer hash of 32-bit values held in int64 (two multiply-xorshift rounds)."""
    z = ((z ^ (z >> 16)) * 0x45D9F3B) & _M32
    z = ((z ^ (z >> 16)) * 0x45D9F3B) & _M32
    return z ^ (z >> 16)


def example_keys(x: Tensor, seed: int = 0) -> Tensor:
    """One 32-bit key per example (B,) int64: a hash of the bit patterns of x's values (as
    float32) at their positions, so equal examples, and only they (up to collisions), share a
    key. Integer sums are exact, so the key does not depend on the batch or the device."""
    bits = x.detach().float().flatten(1).contiguous().view(torch.int32).long() & _M32  # (B, D)
    position = _mix32(torch.arange(bits.shape[1], device=x.device) + seed * 0x9E3779B9 & _M32)
    return _mix32(_mix32(bits ^ position).sum(1) & _M32)


def keyed_uniform(keys: Tensor, count: int, start: int = 0, seed: int = 0) -> Tensor:
    """Uniform (0, 1) float64 (B, count): stream positions start .. start+count-1 of each key.

    Position p of a key is always the same number, so a caller that needs many draws per
    example (IWAE's K samples) may take them in chunks of any size and gets the same values.
    """
    position = torch.arange(start, start + count, device=keys.device) + seed * 0x9E3779B9
    position = _mix32(position & _M32)  # (count,)
    bits = _mix32(_mix32(keys ^ (seed & _M32))[:, None] ^ position) >> 8  # (B, count), 24 bits
    return (bits.double() + 0.5) / 2**24


def keyed_normal(
    keys: Tensor, shape: Sequence[int], start: int = 0, seed: int = 0, dtype=torch.float32
) -> Tensor:
    """Standard normal (B, *shape) by Box-Muller from two keyed uniforms per value. `start` is
    the index of the first value in each key's normal stream (values start .. start+numel-1)."""
    count = math.prod(shape)
    u = keyed_uniform(keys, 2 * count, 2 * start, seed)
    radius = torch.sqrt(-2 * torch.log(u[:, 0::2]))
    z = radius * torch.cos(2 * math.pi * u[:, 1::2])
    return z.to(dtype).view(len(keys), *shape)


def hashed_uniform(levels: Tensor, seed: int = 0) -> Tensor:
    """Uniform (0, 1) float64 noise shaped like `levels` (B, ...), a fixed function of each
    example's values and the position, not of the batch, rank or order."""
    keys = example_keys(levels, seed)
    return keyed_uniform(keys, levels[0].numel(), seed=seed).view(levels.shape)


def bin_levels(x: Tensor, num_bits: int) -> Tensor:
    """The integer levels k of discrete data x = k / (2^b - 1), as x's float dtype."""
    return torch.round(x * (2**num_bits - 1))


def fixed_dequantize(x: Tensor, num_bits: int, seed: int = 0) -> Tensor:
    """u = (k + U) / 2^b with U = `hashed_uniform` of the example: deterministic dequantization."""
    k = bin_levels(x, num_bits)
    return (k + hashed_uniform(k, seed).to(x.dtype)) / 2**num_bits
