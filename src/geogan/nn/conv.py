"""Dimension-generic convolutions and per-axis padding.

Tensors are channels-first, ``[B, C, H, W]`` (``dims=2``) or ``[B, C, D, H, W]``
(``dims=3``). Spatial axes are numbered in that order: axis 0 is ``H`` in 2D and
``D`` in 3D, the last axis is ``W`` (longitude on a lat/lon grid).

Padding is done by :class:`Pad`, not by torch's convolution, because torch's
``reflect`` mode fails when an axis is not longer than the pad (a 1-pixel axis
after downsampling) and cannot mix modes, e.g. circular along longitude and
reflect along latitude.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_TORCH_PAD_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "replicate",
    "circular": "circular",
}

PaddingModes = str | Sequence[str]


def check_dims(dims: int) -> int:
    """``dims`` if it is 2 or 3; a ConfigError otherwise."""
    if dims not in (2, 3):
        raise ConfigError(f"dims must be 2 or 3, got {dims!r}")
    return dims


def per_axis(value: Any, dims: int, name: str) -> tuple:
    """Broadcast a scalar (or a str) to one value per spatial axis; check a sequence's length."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return (value,) * dims
    if len(value) != dims:
        raise ConfigError(f"{name} needs one value per spatial axis ({dims}), got {list(value)}")
    return tuple(value)


def padding_modes(modes: PaddingModes, dims: int) -> tuple[str, ...]:
    """One checked padding mode per spatial axis."""
    out = per_axis(modes, dims, "padding_mode")
    for mode in out:
        if mode not in PADDING_MODES:
            raise ConfigError(
                f"unknown padding mode {mode!r}; choose one of {', '.join(PADDING_MODES)}"
            )
    return out


def _pad_pairs(padding: Any, dims: int) -> tuple[tuple[int, int], ...]:
    """``int | [int per axis] | [(lo, hi) per axis]`` -> ``((lo, hi), ...)`` per axis."""
    pairs = []
    for p in per_axis(padding, dims, "padding"):
        lo, hi = (p, p) if isinstance(p, int) else tuple(p)
        if lo < 0 or hi < 0:
            raise ConfigError(f"padding must be >= 0, got {padding!r}")
        pairs.append((int(lo), int(hi)))
    return tuple(pairs)


def _torch_pad_arg(dims: int, axis: int, lo: int, hi: int) -> list[int]:
    # F.pad lists (lo, hi) pairs starting from the last axis.
    arg = [0] * (2 * dims)
    j = dims - 1 - axis
    arg[2 * j], arg[2 * j + 1] = lo, hi
    return arg


def _fits(mode: str, size: int, lo: int, hi: int) -> bool:
    """Whether torch's own ``F.pad`` can pad an axis of ``size`` by (lo, hi) in ``mode``."""
    if mode == "reflect":
        return max(lo, hi) < size
    if mode == "circular":
        return max(lo, hi) <= size
    return True


class Pad(nn.Module):
    """Pad the spatial axes of ``[B, C, *spatial]``, each axis with its own mode.

    Args:
        dims: number of spatial axes (2 or 3).
        padding: ``int`` (both sides of every axis), one ``int`` per axis, or one
            ``(lo, hi)`` pair per axis.
        modes: one of :data:`PADDING_MODES` for every axis, or one per axis, e.g.
            ``("reflect", "circular")`` for ``[lat, lon]``.

    Axes too small for their mode still work: ``reflect`` falls back to
    ``replicate`` when the axis is not longer than the pad, and ``circular``
    wraps as many times as needed. Output: ``[B, C, *(n + lo + hi)]``.
    """

    def __init__(self, dims: int, padding: Any, modes: PaddingModes = "reflect") -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.pairs = _pad_pairs(padding, dims)
        self.modes = padding_modes(modes, dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, padding={self.pairs}, modes={self.modes}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dims + 2:
            raise ValueError(
                f"Pad(dims={self.dims}) expects [B, C, {self.dims} spatial axes], got shape {list(x.shape)}"
            )
        spatial = x.shape[2:]
        active = [(a, lo, hi) for a, (lo, hi) in enumerate(self.pairs) if lo or hi]
        if not active:
            return x
        # One F.pad call when every padded axis shares a mode torch can do.
        first_mode = self.modes[active[0][0]]
        if all(
            self.modes[a] == first_mode and _fits(first_mode, spatial[a], lo, hi)
            for a, lo, hi in active
        ):
            arg = [0] * (2 * self.dims)
            for a, lo, hi in active:
                part = _torch_pad_arg(self.dims, a, lo, hi)
                arg = [u + v for u, v in zip(arg, part)]
            return F.pad(x, arg, mode=_TORCH_PAD_MODE[first_mode])
        for a, lo, hi in active:
            x = _pad_axis(x, self.dims, a, lo, hi, self.modes[a])
        return x


def _pad_axis(x: torch.Tensor, dims: int, axis: int, lo: int, hi: int, mode: str) -> torch.Tensor:
    size = x.shape[2 + axis]
    if mode == "reflect" and not _fits(mode, size, lo, hi):
        mode = "replicate"
    if mode == "circular" and not _fits(mode, size, lo, hi):
        index = torch.arange(-lo, size + hi, device=x.device) % size
        return x.index_select(2 + axis, index)
    return F.pad(x, _torch_pad_arg(dims, axis, lo, hi), mode=_TORCH_PAD_MODE[mode])


class _PaddedConv:
    """Mixin: an ``nn.ConvNd`` whose input is first padded by a :class:`Pad` (or not at all).

    The pad holds no parameters, so the state dict is that of the plain convolution.
    """

    def __init__(self, *args: Any, pad: Pad | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = self.pad(x)
        return super().forward(x)


class PaddedConv2d(_PaddedConv, nn.Conv2d):
    """``nn.Conv2d`` with :class:`Pad` padding. Build it with :func:`conv_nd`."""


class PaddedConv3d(_PaddedConv, nn.Conv3d):
    """``nn.Conv3d`` with :class:`Pad` padding. Build it with :func:`conv_nd`."""


_CONV_CLASSES = {2: PaddedConv2d, 3: PaddedConv3d}


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """(lo, hi) padding that keeps the size at stride 1; lo < hi by one for even kernels."""
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def conv_nd(
    dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int | Sequence[int] = 3,
    stride: int | Sequence[int] = 1,
    padding_mode: PaddingModes = "reflect",
    bias: bool = True,
    *,
    padding: str | int | Sequence[Any] = "same",
    dilation: int = 1,
    groups: int = 1,
) -> nn.Conv2d | nn.Conv3d:
    """A 2D or 3D convolution ``[B, in, *n] -> [B, out, *ceil(n / stride)]`` ("same" padding).

    Args:
        dims: 2 (``[B, C, H, W]``) or 3 (``[B, C, D, H, W]``).
        kernel_size, stride: one int, or one per spatial axis.
        padding_mode: a mode of :data:`PADDING_MODES`, or one per spatial axis
            (e.g. ``["reflect", "circular"]``: periodic in longitude).
        padding: ``"same"`` (default; even kernels pad one more on the high side),
            ``"valid"`` (none), or anything :class:`Pad` accepts.

    Returns an ``nn.Conv2d``/``nn.Conv3d`` subclass with the usual ``weight`` and
    ``bias``; zero padding of odd kernels stays inside the native convolution.
    """
    check_dims(dims)
    kernel = per_axis(kernel_size, dims, "kernel_size")
    modes = padding_modes(padding_mode, dims)
    if padding == "valid":
        pairs = ((0, 0),) * dims
    elif padding == "same":
        pairs = tuple(same_padding(k, dilation) for k in kernel)
    else:
        pairs = _pad_pairs(padding, dims)
    native_ok = all(m == "zeros" for m in modes) and all(lo == hi for lo, hi in pairs)
    pad = None
    native_padding: Any = 0
    if native_ok:
        native_padding = tuple(lo for lo, _ in pairs)
    elif any(lo or hi for lo, hi in pairs):
        pad = Pad(dims, pairs, modes)
    return _CONV_CLASSES[dims](
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=native_padding,
        dilation=dilation,
        groups=groups,
        bias=bias,
        pad=pad,
    )
