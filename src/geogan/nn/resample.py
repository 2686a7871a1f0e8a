"""Dimension-generic resampling and noise injection.

All modules take ``[B, C, *spatial]`` with 2 (``H, W``) or 3 (``D, H, W``)
spatial axes; factors are one int or one int per spatial axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError
from geogan.nn.conv import check_dims, per_axis

UPSAMPLE_MODES = ("nearest", "bilinear", "linear")
DOWNSAMPLE_MODES = ("avg", "max")


def _factors(factor: int | Sequence[int], dims: int) -> tuple[int, ...]:
    out = tuple(int(f) for f in per_axis(factor, dims, "factor"))
    if any(f < 1 for f in out):
        raise ConfigError(f"resampling factors must be >= 1, got {factor!r}")
    return out


def _check_input(x: torch.Tensor, dims: int, who: str) -> None:
    if x.ndim != dims + 2:
        raise ValueError(
            f"{who}(dims={dims}) expects [B, C, {dims} spatial axes], got {list(x.shape)}"
        )


def interpolate(
    x: torch.Tensor,
    factor: Sequence[int],
    mode: str,
    periodic: Sequence[bool] = (),
) -> torch.Tensor:
    """``[B, C, *n] -> [B, C, *(n * factor)]`` with torch's ``mode`` (``nearest``, ``bilinear``,
    ``trilinear``; ``align_corners=False``), wrapping around the axes marked ``periodic``.

    On a periodic axis the field is padded by one coarse pixel from the opposite edge before
    interpolating and the extra fine pixels are cut off again, so the result is exactly what
    interpolation on the circle gives (torch alone clamps at the edges). Other axes, and
    ``nearest``, are left to torch unchanged.
    """
    wrap = [bool(p) for p in periodic] + [False] * (len(factor) - len(periodic))
    if mode == "nearest" or not any(wrap):
        size = [n * f for n, f in zip(x.shape[2:], factor)]
        align = None if mode == "nearest" else False
        return F.interpolate(x, size=size, mode=mode, align_corners=align)
    for axis, w in enumerate(wrap):
        if w:
            dim = 2 + axis
            x = torch.cat([x.narrow(dim, x.shape[dim] - 1, 1), x, x.narrow(dim, 0, 1)], dim)
    size = [n * f for n, f in zip(x.shape[2:], factor)]
    y = F.interpolate(x, size=size, mode=mode, align_corners=False)
    for axis, (w, f) in enumerate(zip(wrap, factor)):
        if w:
            dim = 2 + axis
            y = y.narrow(dim, f, y.shape[dim] - 2 * f)
    return y


class Upsample(nn.Module):
    """``[B, C, *n] -> [B, C, *(n * factor)]`` by nearest or (bi/tri)linear interpolation.

    ``mode="bilinear"`` (or its alias ``"linear"``) means bilinear in 2D and
    trilinear in 3D; ``align_corners=False`` so that each coarse pixel's value
    sits at the centre of the fine pixels it covers. ``periodic`` (one flag per spatial
    axis) wraps the interpolation around those axes (see :func:`interpolate`).
    """

    def __init__(
        self,
        dims: int,
        factor: int | Sequence[int],
        mode: str = "nearest",
        periodic: Sequence[bool] = (),
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.factor = _factors(factor, dims)
        self.periodic = tuple(bool(p) for p in periodic)
        if mode not in UPSAMPLE_MODES:
            raise ConfigError(f"unknown upsampling mode {mode!r}; choose one of {UPSAMPLE_MODES}")
        self.mode = mode
        if mode == "nearest":
            self._torch_mode = "nearest"
        else:
            self._torch_mode = "bilinear" if dims == 2 else "trilinear"

    def extra_repr(self) -> str:
        return f"dims={self.dims}, factor={self.factor}, mode={self.mode!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dims, "Upsample")
        if all(f == 1 for f in self.factor):
            return x
        # An explicit size (inside interpolate) avoids float rounding of scale_factor.
        return interpolate(x, self.factor, self._torch_mode, self.periodic)


class Downsample(nn.Module):
    """``[B, C, *n] -> [B, C, *ceil(n / factor)]`` by average (or max) pooling over blocks.

    When ``n`` is not a multiple of ``factor`` the last block is partial and is
    averaged over the pixels it holds (``ceil_mode``), which matches the output
    size of a "same"-padded strided convolution.
    """

    def __init__(self, dims: int, factor: int | Sequence[int], mode: str = "avg") -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.factor = _factors(factor, dims)
        if mode not in DOWNSAMPLE_MODES:
            raise ConfigError(
                f"unknown downsampling mode {mode!r}; choose one of {DOWNSAMPLE_MODES}"
            )
        self.mode = mode

    def extra_repr(self) -> str:
        return f"dims={self.dims}, factor={self.factor}, mode={self.mode!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dims, "Downsample")
        if all(f == 1 for f in self.factor):
            return x
        pool = {
            ("avg", 2): F.avg_pool2d,
            ("avg", 3): F.avg_pool3d,
            ("max", 2): F.max_pool2d,
            ("max", 3): F.max_pool3d,
        }[(self.mode, self.dims)]
        return pool(x, self.factor, self.factor, ceil_mode=True)


class NoiseInjection(nn.Module):
    """Add learned-scale Gaussian noise: ``x + scale[c] * noise`` (StyleGAN / map2map ``srsgan``).

    Args:
        channels: ``C`` of the input; one learned scale per channel.
        init_scale: starting scale. 0 (the StyleGAN choice) starts as the
            identity and lets training decide how much noise each channel takes.

    ``forward(x [B, C, *n], noise=None, generator=None)``: ``noise`` is
    ``[B, 1, *n]`` (one field shared by all channels) or ``[B, C, *n]``; when it
    is None a ``[B, 1, *n]`` field is drawn from ``generator`` (or the global RNG).
    """

    def __init__(self, dims: int, channels: int, init_scale: float = 0.0) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.channels = channels
        self.weight = nn.Parameter(torch.full((channels,), float(init_scale)))

    def extra_repr(self) -> str:
        return f"dims={self.dims}, channels={self.channels}"

    def forward(
        self,
        x: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        _check_input(x, self.dims, "NoiseInjection")
        shape = (x.shape[0], 1, *x.shape[2:])
        if noise is None:
            noise = torch.randn(shape, generator=generator, device=x.device, dtype=x.dtype)
        elif noise.shape[1] not in (1, self.channels) or noise.shape[:1] + noise.shape[2:] != (
            x.shape[:1] + x.shape[2:]
        ):
            raise ValueError(
                f"noise has shape {list(noise.shape)}; expected [B, 1 or {self.channels}, *spatial] "
                f"matching input {list(x.shape)}"
            )
        # Keep the input's dtype under autocast (a float32 scale would promote x).
        scale = self.weight.to(x.dtype).reshape(1, -1, *([1] * self.dims))
        return x + scale * noise.to(x.dtype)


class PixelShuffle(nn.Module):
    """Sub-pixel upsampling ``[B, C * r**dims, *n] -> [B, C, *(n * r)]`` in 2D or 3D.

    Channel ``c * r**dims + i`` goes to offset ``i`` (row-major over the axes)
    inside each ``r``-block, the layout of :func:`torch.nn.functional.pixel_shuffle`.
    """

    def __init__(self, dims: int, factor: int) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.factor = int(factor)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, factor={self.factor}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.dims, "PixelShuffle")
        r, d = self.factor, self.dims
        b, c, *sizes = x.shape
        block = r**d
        if c % block:
            raise ValueError(f"PixelShuffle needs channels divisible by {block}, got {c}")
        x = x.reshape(b, c // block, *([r] * d), *sizes)
        # [B, C, r_0..r_d-1, n_0..n_d-1] -> [B, C, n_0, r_0, n_1, r_1, ...]
        order = [0, 1] + [i for a in range(d) for i in (2 + d + a, 2 + a)]
        return x.permute(order).reshape(b, c // block, *(n * r for n in sizes))


def total_factor(factors: Sequence[int]) -> int:
    """Product of per-stage resampling factors (the downscaling factor)."""
    return math.prod(int(f) for f in factors)
