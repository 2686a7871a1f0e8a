"""Upsample, FIR-filter, downsample ("upfirdn") as plain depthwise convolutions, in 2D or 3D.

StyleGAN2 resamples with a separable low-pass FIR filter (``[1, 3, 3, 1]``): upsampling is
zero insertion followed by the filter, downsampling is the filter followed by decimation.
NVlabs ship a compiled CUDA kernel for it and rosinality's CPU fallback runs one
single-channel convolution over ``B * C`` images, computing every output before throwing
three quarters away. Here every step is one depthwise convolution over all channels at
once (``groups = C``), which PyTorch runs with its fast (oneDNN on CPU, cuDNN on GPU)
kernels, in any memory format:

- ``up == 1``: zero padding, then a depthwise convolution with the flipped kernel and
  ``stride = down``: only the kept outputs are computed;
- ``up > 1``: a depthwise transposed convolution with ``stride = up`` (zero insertion and
  filtering in one), then the padding window (a crop or zeros), then decimation.

For one axis the result is, with ``u = up``, ``d = down``, ``(p0, p1) = pad`` and ``K``
taps ``k``::

    x_up[n]   = x[n / u] if n % u == 0 else 0            n = 0 .. L*u - 1
    x_pad[m]  = x_up[m - p0]  (0 outside)                m = 0 .. L*u + p0 + p1 - 1
    y[j]      = sum_t x_pad[j * d + t] * k[K - 1 - t]    j = 0 .. (L*u + p0 + p1 - K) // d

and the N-D filter is the outer product of the 1D taps over the axes (separable), the
definition of ``upfirdn2d`` in NVlabs' StyleGAN2 (``tests/nn/test_nn_upfirdn.py`` checks it
against this formula and :func:`scipy.signal.upfirdn`). Negative pads crop.

Boundary modes (one per axis, :data:`geogan.nn.conv.PADDING_MODES`): ``zeros`` is the
formula above; ``circular`` (periodic axes, e.g. longitude), ``reflect`` and ``replicate``
extend the *input* by whole samples in that mode before resampling, so that no padding
zero enters an output and a periodic input gives a periodic output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError
from geogan.nn.conv import Pad, PaddingModes, check_dims, padding_modes, per_axis

__all__ = [
    "Blur",
    "FirDownsample",
    "FirUpsample",
    "fir_kernel",
    "fir_pads",
    "upfirdn",
]

_CONV = {2: F.conv2d, 3: F.conv3d}
_CONV_T = {2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _taps(taps: Sequence[float] | torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(taps, dtype=torch.float32).flatten()
    if t.numel() == 0 or not torch.isfinite(t).all():
        raise ConfigError(f"FIR taps must be a non-empty list of finite numbers, got {taps!r}")
    return t


def fir_kernel(
    taps: Sequence[float] | torch.Tensor,
    dims: int,
    *,
    normalize: bool = True,
    gain: float | Sequence[float] = 1.0,
) -> torch.Tensor:
    """The separable N-D FIR kernel ``[K] * dims`` of 1D ``taps`` (outer product over axes).

    ``normalize``: each axis's taps sum to 1 (a low-pass filter that keeps the mean);
    ``gain``: multiplies each axis's taps (one value, or one per axis): an upsampling by
    ``u`` along an axis needs gain ``u`` there to keep the mean, since zero insertion
    divides it by ``u``. Returns float32 ``[K, ..., K]``.
    """
    dims = check_dims(dims)
    t = _taps(taps)
    if normalize:
        total = float(t.sum())
        if total == 0:
            raise ConfigError(f"FIR taps {t.tolist()} sum to 0 and cannot be normalised")
        t = t / total
    gains = per_axis(gain, dims, "gain")
    kernel = t * float(gains[0])
    for axis in range(1, dims):
        kernel = kernel.unsqueeze(-1) * (t * float(gains[axis]))
    return kernel


def fir_pads(taps_len: int, *, up: int = 1, down: int = 1, kernel_size: int = 1) -> tuple[int, int]:
    """StyleGAN2's ``(pad0, pad1)`` for a filter of ``taps_len`` taps.

    ``up > 1``: the padding of a plain FIR upsampling (output ``L * up``);
    ``down > 1``: the padding of the blur before a stride-``down`` convolution of
    ``kernel_size`` (output ``L / down`` after that convolution; ``kernel_size=1`` for a
    plain FIR downsampling); neither: the padding that keeps the size (a blur).
    """
    if up > 1:
        p = taps_len - up
        return (p + 1) // 2 + up - 1, p // 2
    if down > 1:
        p = taps_len - down + kernel_size - 1
        return (p + 1) // 2, p // 2
    p = taps_len - 1
    return (p + 1) // 2, p // 2


def _pairs(pad: Any, dims: int) -> list[tuple[int, int]]:
    if isinstance(pad, int):
        return [(pad, pad)] * dims
    pad = list(pad)
    if len(pad) == 2 and all(isinstance(p, int) for p in pad):
        return [(int(pad[0]), int(pad[1]))] * dims
    if len(pad) != dims:
        raise ConfigError(f"pad needs an int, one (lo, hi) pair, or one pair per axis; got {pad}")
    return [(int(p), int(p)) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in pad]


def _pad_arg(lohi: list[tuple[int, int]]) -> list[int]:
    # F.pad lists (lo, hi) from the last axis; negative values crop
    arg: list[int] = []
    for lo, hi in reversed(lohi):
        arg += [lo, hi]
    return arg


def _depthwise(kernel: torch.Tensor, channels: int, like: torch.Tensor) -> torch.Tensor:
    """``[C, 1, *K]`` copies of ``kernel`` in ``like``'s dtype and device."""
    k = kernel.to(device=like.device, dtype=like.dtype)
    return k.expand(channels, 1, *k.shape).contiguous()


def upfirdn(
    x: torch.Tensor,
    kernel: torch.Tensor,
    *,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    pad: Any = 0,
    modes: PaddingModes = "zeros",
) -> torch.Tensor:
    """Resample ``x [B, C, *S]`` (2 or 3 spatial axes) with the N-D FIR ``kernel [*K]``.

    Args:
        x: input, any float dtype and memory format.
        kernel: ``[K_0, ..., K_{dims-1}]`` filter (e.g. :func:`fir_kernel`); convolved,
            not correlated (the formula in the module docstring).
        up, down: integer factors, one or one per axis.
        pad: ``(p0, p1)`` applied to every axis, one int, or one pair per axis, in samples
            of the upsampled signal; negative values crop.
        modes: boundary mode per axis (``zeros``, ``circular``, ``reflect``,
            ``replicate``).

    Returns ``[B, C, *((S * up + p0 + p1 - K) // down + 1)]``.
    """
    dims = x.ndim - 2
    check_dims(dims)
    if kernel.ndim != dims:
        raise ValueError(f"kernel {list(kernel.shape)} must have one axis per spatial axis of x")
    ups = tuple(int(u) for u in per_axis(up, dims, "up"))
    downs = tuple(int(d) for d in per_axis(down, dims, "down"))
    if min(ups + downs) < 1:
        raise ConfigError(f"up and down factors must be >= 1, got up={up}, down={down}")
    pairs = _pairs(pad, dims)
    axis_modes = padding_modes(modes, dims)
    # Non-zero modes: extend the input by whole samples, so the padding holds real values.
    ext = []
    for a, (m, (lo, hi), u) in enumerate(zip(axis_modes, pairs, ups)):
        q = math.ceil(max(lo, hi, 0) / u) if m != "zeros" else 0
        ext.append((q, q))
        pairs[a] = (lo - q * u, hi - q * u)
    if any(q for q, _ in ext):
        x = Pad(dims, ext, axis_modes)(x)
    c = x.shape[1]
    taps = kernel.shape
    if all(u == 1 for u in ups):
        w = _depthwise(torch.flip(kernel, list(range(dims))), c, x)
        if all(lo == hi and lo >= 0 for lo, hi in pairs):
            # symmetric zero padding inside the convolution: no padded copy of x
            return _CONV[dims](x, w, stride=downs, padding=[lo for lo, _ in pairs], groups=c)
        x = F.pad(x, _pad_arg(pairs)) if any(lo or hi for lo, hi in pairs) else x
        return _CONV[dims](x, w, stride=downs, groups=c)
    sizes = x.shape[2:]
    # conv_transpose(stride=u) with the kernel itself is the full convolution of the
    # zero-inserted signal, x_up[n] = x[n / u]; output index n holds full[n]
    y = _CONV_T[dims](x, _depthwise(kernel, c, x), stride=ups, groups=c)
    window = []
    for (lo, hi), n, u, k in zip(pairs, sizes, ups, taps):
        start = k - 1 - lo  # y[j] = full[j + K - 1 - p0]
        length = n * u + lo + hi - k + 1
        have = (n - 1) * u + k
        window.append((-start, length - (have - start)))
    y = F.pad(y, _pad_arg(window))
    if any(d > 1 for d in downs):
        index = (slice(None), slice(None), *(slice(None, None, d) for d in downs))
        y = y[index]
    return y


class _Fir(nn.Module):
    """Common part of the FIR modules: a non-persistent kernel buffer (rebuilt from the
    constructor arguments, so checkpoints do not carry it)."""

    def __init__(
        self,
        dims: int,
        taps: Sequence[float],
        gain: float | Sequence[float],
        modes: PaddingModes,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.modes = padding_modes(modes, dims)
        self.taps = [float(t) for t in _taps(taps)]
        self.register_buffer("kernel", fir_kernel(taps, dims, gain=gain), persistent=False)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != self.dims + 2:
            raise ValueError(
                f"{type(self).__name__}(dims={self.dims}) expects [B, C, {self.dims} spatial "
                f"axes], got {list(x.shape)}"
            )


class Blur(_Fir):
    """Low-pass FIR filter ``[B, C, *S] -> [B, C, *(S + p0 + p1 - K + 1)]`` (StyleGAN2's Blur).

    ``pad``: ``(p0, p1)`` per axis (default: keep the size); ``gain``: multiplies the
    normalised kernel (``up ** dims`` after a transposed convolution by ``up``).
    """

    def __init__(
        self,
        dims: int,
        taps: Sequence[float] = (1, 3, 3, 1),
        pad: tuple[int, int] | None = None,
        gain: float = 1.0,
        modes: PaddingModes = "zeros",
    ) -> None:
        super().__init__(dims, taps, gain ** (1.0 / dims), modes)
        self.pad = tuple(pad) if pad is not None else fir_pads(len(self.taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return upfirdn(x, self.kernel, pad=self.pad, modes=self.modes)


class FirUpsample(_Fir):
    """``[B, C, *S] -> [B, C, *(factor * S)]``: zero insertion and the FIR filter (mean kept)."""

    def __init__(
        self,
        dims: int,
        taps: Sequence[float] = (1, 3, 3, 1),
        factor: int = 2,
        modes: PaddingModes = "zeros",
    ) -> None:
        super().__init__(dims, taps, float(factor), modes)
        self.factor = int(factor)
        self.pad = fir_pads(len(self.taps), up=self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return upfirdn(x, self.kernel, up=self.factor, pad=self.pad, modes=self.modes)


class FirDownsample(_Fir):
    """``[B, C, *S] -> [B, C, *(S / factor)]``: the FIR filter and decimation."""

    def __init__(
        self,
        dims: int,
        taps: Sequence[float] = (1, 3, 3, 1),
        factor: int = 2,
        modes: PaddingModes = "zeros",
    ) -> None:
        super().__init__(dims, taps, 1.0, modes)
        self.factor = int(factor)
        self.pad = fir_pads(len(self.taps), down=self.factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return upfirdn(x, self.kernel, down=self.factor, pad=self.pad, modes=self.modes)
