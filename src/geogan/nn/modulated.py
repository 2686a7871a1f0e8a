"""StyleGAN2's modulated convolution and its equalised-learning-rate layers, in 2D or 3D.

Equalised learning rate (Karras et al. 2018): weights are stored as ``N(0, 1) / lr_mul``
and multiplied by ``lr_mul / sqrt(fan_in)`` at every call, so Adam sees every layer at the
same scale. Activations are ``leaky_relu(x + b, 0.2) * sqrt(2)`` (the gain keeps the
second moment of a unit-variance input).

Modulated convolution (Karras et al. 2020, eq. 1-3): for a sample ``b`` with style
``s = A(w_b) [C_in]`` (an affine map of the latent, bias 1),

    w'_{o,i,k} = w_{o,i,k} * s_i,         w''_{o,i,k} = w'_{o,i,k} / sqrt(sum_{i,k} w'^2 + eps)

and the output is the convolution of ``x_b`` with ``w''``. It is computed here without a
per-sample weight ("non-fused", as NVlabs train): ``conv(x * s, w) * d`` with the
demodulation coefficients ``d_{b,o} = (sum_i s_{b,i}^2 sum_k w_{o,i,k}^2 + eps)^-1/2``,
which is the same linear map, one batched convolution with a shared weight (one large
matrix product instead of ``B`` small ones, and no ``[B, C_out, C_in, k, k]`` weight tensor
kept for the backward pass). ``tests/nn/test_nn_modulated.py`` checks it against the
per-sample formula.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError
from geogan.nn.conv import Pad, PaddingModes, check_dims, padding_modes
from geogan.nn.upfirdn import Blur, fir_pads

__all__ = [
    "EqualConv",
    "EqualLinear",
    "ModulatedConv",
    "bias_leaky_relu",
]

ACT_GAIN = math.sqrt(2.0)
_CONV = {2: F.conv2d, 3: F.conv3d}
_CONV_T = {2: F.conv_transpose2d, 3: F.conv_transpose3d}


def bias_leaky_relu(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    negative_slope: float = 0.2,
    gain: float = ACT_GAIN,
) -> torch.Tensor:
    """``leaky_relu(x + bias, slope) * gain`` over channels (axis 1), in ``x``'s dtype.

    Computed as ``leaky_relu(gain * x + gain * bias)`` (equal for ``gain > 0``) in one new
    tensor with the activation in place: one activation-sized allocation instead of three.
    """
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if bias is None:
        y = x * gain
    else:
        y = torch.add((bias * gain).to(x.dtype).view(shape), x, alpha=gain)
    return F.leaky_relu(y, negative_slope, inplace=True)


class EqualLinear(nn.Module):
    """``[..., in] -> [..., out]`` linear layer with equalised learning rate.

    ``activation``: apply :func:`bias_leaky_relu`; ``lr_mul``: learning-rate multiplier
    (0.01 in the mapping network); ``bias_init``: initial bias (1 for the style affines, so
    styles start at 1).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.scale = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"{inp}, {out}, lr_mul={self.lr_mul}, activation={self.activation}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mul if self.bias is not None else None
        if self.activation:
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv(nn.Module):
    """Convolution with equalised learning rate, ``[B, in, *S] -> [B, out, *S']``, 2D or 3D.

    ``down=2``: StyleGAN2's downsampling convolution, a FIR blur (``blur_taps``) then a
    stride-2 convolution without padding; otherwise "same" padding in ``padding_mode``
    (one mode per axis, e.g. ``[zeros, circular]``). ``activation``: the bias goes into
    :func:`bias_leaky_relu`; otherwise a plain bias (if ``bias``).
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        down: int = 1,
        bias: bool = True,
        activation: bool = True,
        blur_taps: Sequence[float] = (1, 3, 3, 1),
        padding_mode: PaddingModes = "zeros",
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *[kernel_size] * dims))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**dims)
        self.activation = activation
        self.down = int(down)
        modes = padding_modes(padding_mode, dims)
        self.blur = None
        self.pad = None
        self.native_padding = 0
        if self.down > 1:
            pads = fir_pads(len(blur_taps), down=self.down, kernel_size=kernel_size)
            self.blur = Blur(dims, blur_taps, pad=pads, modes=modes)
        elif kernel_size > 1:
            p = kernel_size // 2
            if all(m == "zeros" for m in modes):
                self.native_padding = p
            else:
                self.pad = Pad(dims, p, modes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur is not None:
            x = self.blur(x)
        elif self.pad is not None:
            x = self.pad(x)
        w = (self.weight * self.scale).to(x.dtype)
        bias = self.bias if (self.bias is not None and not self.activation) else None
        y = _CONV[self.dims](
            x,
            w,
            None if bias is None else bias.to(x.dtype),
            stride=self.down,
            padding=self.native_padding,
        )
        if self.activation:
            return bias_leaky_relu(y, self.bias)
        return y


class ModulatedConv(nn.Module):
    """Modulated (and by default demodulated) convolution, 2D or 3D.

    ``forward(x [B, C_in, *S], w [B, style_dim]) -> [B, C_out, *S']`` with ``S' = S`` (same
    padding), ``2 S`` (``up=2``: a stride-2 transposed convolution then a FIR blur, as
    StyleGAN2) or ``S / 2`` (``down=2``: blur then stride-2 convolution). The style affine
    ``A`` is an :class:`EqualLinear` with bias 1. ``demodulate=False`` for the output
    ("toRGB") layers. ``padding_mode``: boundary per axis (``circular`` on periodic axes
    makes the layer commute with rolls along them).
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        style_dim: int,
        *,
        demodulate: bool = True,
        up: int = 1,
        down: int = 1,
        blur_taps: Sequence[float] = (1, 3, 3, 1),
        padding_mode: PaddingModes = "zeros",
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if up > 1 and down > 1:
            raise ConfigError("ModulatedConv upsamples or downsamples, not both")
        if up not in (1, 2) or down not in (1, 2):
            raise ConfigError(f"ModulatedConv supports factors 1 and 2, got up={up}, down={down}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size
        self.up, self.down = int(up), int(down)
        self.demodulate = demodulate
        self.eps = eps
        self.modes = padding_modes(padding_mode, dims)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *[kernel_size] * dims))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size**dims)
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        k = len(tuple(blur_taps))
        self.blur: Blur | None = None
        self.pad: Pad | None = None
        self.native_padding = 0
        if self.up > 1:
            # StyleGAN2: p = (K - up) - (k - 1); the transposed conv output is then blurred
            p = (k - self.up) - (kernel_size - 1)
            pads = ((p + 1) // 2 + self.up - 1, p // 2 + 1)
            # non-zero modes: extend the input so the transposed conv sees real neighbours;
            # the blur's padding then comes from the extension (see _crop_extended)
            q = math.ceil(kernel_size / self.up) + math.ceil(max(pads) / self.up)
            self.up_ext = [(q, q) if m != "zeros" else (0, 0) for m in self.modes]
            self.blur_pads = pads
            blur_pad = [pads if m == "zeros" else (0, 0) for m in self.modes]
            # the blur follows a zero-inserting conv: gain up^dims keeps the mean
            self.blur = Blur(dims, blur_taps, pad=blur_pad, gain=float(self.up**dims))
            if any(a for a, _ in self.up_ext):
                self.pad = Pad(dims, self.up_ext, self.modes)
        elif self.down > 1:
            pads = fir_pads(k, down=self.down, kernel_size=kernel_size)
            self.blur = Blur(dims, blur_taps, pad=pads, modes=self.modes)
        elif kernel_size > 1:
            p = kernel_size // 2
            if all(m == "zeros" for m in self.modes):
                self.native_padding = p
            else:
                self.pad = Pad(dims, p, self.modes)

    def extra_repr(self) -> str:
        return (
            f"dims={self.dims}, {self.in_channels}, {self.out_channels}, "
            f"kernel_size={self.kernel_size}, up={self.up}, down={self.down}, "
            f"demodulate={self.demodulate}, modes={self.modes}"
        )

    def styles(self, w: torch.Tensor) -> torch.Tensor:
        """``s = A(w)``: ``[B, style_dim] -> [B, C_in]``."""
        return self.modulation(w)

    def demodulation(self, s: torch.Tensor) -> torch.Tensor:
        """``d [B, C_out]`` for styles ``s [B, C_in]``, in float32 at least (also under
        autocast: squares of bf16 values lose too much)."""
        dtype = torch.promote_types(self.weight.dtype, torch.float32)
        with torch.autocast(s.device.type, enabled=False):
            w2 = (self.weight.to(dtype) * self.scale).square().flatten(2).sum(-1)  # [O, I]
            return torch.rsqrt(s.to(dtype).square() @ w2.t() + self.eps)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"ModulatedConv expects [B, {self.in_channels}, {self.dims} spatial axes], "
                f"got {list(x.shape)}"
            )
        b = x.shape[0]
        s = self.styles(w)
        view = (b, -1) + (1,) * self.dims
        x = x * s.to(x.dtype).view(view)
        weight = (self.weight * self.scale).to(x.dtype)
        if self.up > 1:
            if self.pad is not None:
                x = self.pad(x)
            y = _CONV_T[self.dims](x, weight.transpose(0, 1), stride=self.up)
            if self.pad is not None:
                y = self._crop_extended(y)
            y = self.blur(y)
        elif self.down > 1:
            y = _CONV[self.dims](self.blur(x), weight, stride=self.down)
        else:
            if self.pad is not None:
                x = self.pad(x)
            y = _CONV[self.dims](x, weight, padding=self.native_padding)
        if self.demodulate:
            y = y * self.demodulation(s).to(y.dtype).view(view)
        return y

    def _crop_extended(self, y: torch.Tensor) -> torch.Tensor:
        """After the transposed conv of an input extended by ``q`` samples per side on the
        non-zero-mode axes: keep the outputs of the plain transposed conv plus ``(p0, p1)``
        more on each side, so the blur reads real (periodic, reflected) values where the
        zero-mode layer reads padding zeros."""
        lo, hi = self.blur_pads
        index: list[slice] = [slice(None), slice(None)]
        for axis, ((q, _), mode) in enumerate(zip(self.up_ext, self.modes)):
            if mode == "zeros":
                index.append(slice(None))
                continue
            n = y.shape[2 + axis]
            start = self.up * q - lo
            index.append(slice(start, start + n - 2 * self.up * q + lo + hi))
        return y[tuple(index)]
