"""Noise fields that are a function of position: the same voxel gets the same value in every tile.

Whole-volume generation cuts the volume into overlapping tiles; for the tiles to assemble
into exactly the untiled output, every random input must take the same value at the same
place in every tile that covers it. The engine does this by drawing the noise once over the
whole domain, which for srsgan's noise at every resolution means several noise volumes as
large as the output (a 512^3 output would need more than the output's own memory). Here
the noise is instead a counter-based hash of ``(member seed, injection point, global fine
voxel coordinates)`` turned into standard normal values (Box-Muller): no state, no memory
beyond the tile being generated, bit-identical on every machine.

The hash is a 32-bit integer mixer (Wellons' ``lowbias32`` family, multipliers below 2^31 so
that products stay inside int64) chained over the seed, the stream and each coordinate.
Tiles are boxes, so the chain is evaluated per axis and broadcast: z, then (z, y), then
(z, y, x); only the last step runs over every voxel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["hashed_normal", "mix32", "tile_noise"]

_M32 = 0xFFFFFFFF
_C1, _C2 = 0x21F0AAAD, 0x735A2D97  # odd multipliers < 2^31 (x * c < 2^63 for x < 2^32)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit mixer on int64 tensors holding values in ``[0, 2^32)``."""
    x = x ^ (x >> 16)
    x = (x * _C1) & _M32
    x = x ^ (x >> 15)
    x = (x * _C2) & _M32
    return x ^ (x >> 15)


def _chain(h: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    return mix32(h ^ (coords & _M32))


def hashed_normal(
    seed: int, stream: int, coords: Sequence[torch.Tensor], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Standard normal values on the box ``coords[0] x coords[1] x ...`` (1D int64 tensors).

    Returns ``[len(coords[0]), len(coords[1]), ...]``: the value at ``(i, j, ...)`` depends
    only on ``(seed, stream, coords[0][i], coords[1][j], ...)``.
    """
    device = coords[0].device
    seed = int(seed) & (2**64 - 1)
    base = []
    for k in range(2):  # two independent uniforms for Box-Muller
        h = torch.tensor(seed & _M32, dtype=torch.int64, device=device)
        h = mix32(h ^ ((seed >> 32) & _M32))
        h = mix32(h ^ ((2 * int(stream) + k) & _M32))
        base.append(h)
    nd = len(coords)
    out = []
    for h in base:
        for c in coords:  # [n_0, ..., n_{a-1}] -> [n_0, ..., n_a]
            h = _chain(h.unsqueeze(-1), c.to(torch.int64))
        out.append(h)
    u1 = (out[0].to(torch.float64) + 0.5) / 2**32
    u2 = (out[1].to(torch.float64) + 0.5) / 2**32
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    assert z.dim() == nd
    return z.to(dtype)


def tile_noise(
    seed: int,
    coords: torch.Tensor,
    scales: Sequence[Sequence[int]],
    dtype: torch.dtype = torch.float32,
) -> list[torch.Tensor]:
    """The generator's noise for one tile: one ``[1, 1, *(s * scale)]`` tensor per scale.

    ``coords [3, *s]`` (int): the global coarse voxel coordinates of the tile (a box, so each
    axis's coordinates are read along that axis). Injection ``k`` at ``scale`` covers fine
    voxels ``coord * scale + offset``, ``0 <= offset < scale``, and uses stream ``k``.
    """
    nd = coords.shape[0]
    axes = []
    for a in range(nd):
        index = [a] + [0] * nd
        index[1 + a] = slice(None)
        axes.append(coords[tuple(index)].to(torch.int64))
    out = []
    for k, scale in enumerate(scales):
        fine = [
            (c[:, None] * int(r) + torch.arange(int(r), device=c.device)[None, :]).reshape(-1)
            for c, r in zip(axes, scale)
        ]
        out.append(hashed_normal(seed, k, fine, dtype)[None, None])
    return out
