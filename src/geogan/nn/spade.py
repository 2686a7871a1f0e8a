"""Spatially-adaptive normalisation (SPADE, Park et al. 2019) and its residual block, in 2D and 3D.

A SPADE layer normalises its input without learned affine parameters and then modulates
it with a per-pixel scale and shift predicted from a conditioning map (a mask, a
segmentation, a masked image), resized to the input's grid::

    out = norm(x) * (1 + gamma(cond)) + beta(cond)

Tensors are channels-first: ``x [B, C, *S]`` and ``cond [B, K, *S']`` with ``S`` two
(``H, W``) or three (``D, H, W``) spatial axes; ``cond`` is resized to ``S`` by nearest
neighbour (a mask stays binary) unless it already has that size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError
from geogan.nn.conv import PaddingModes, check_dims, conv_nd

__all__ = ["SPADE", "SPADEResnetBlock", "param_free_norm"]

NORMS = ("instance", "batch", "none")


def param_free_norm(dims: int, channels: int, kind: str = "instance") -> nn.Module:
    """Normalisation without learned affine parameters (SPADE supplies them).

    ``instance``: per sample and channel over the spatial axes (``InstanceNorm2d/3d``);
    ``batch``: over the batch and spatial axes (``BatchNorm2d/3d``, running statistics
    kept for inference); ``none``: identity.
    """
    check_dims(dims)
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=False)
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown SPADE normalisation {kind!r}; choose one of {', '.join(NORMS)}")


def resize_like(cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``cond [B, K, *S']`` resized to the spatial shape of ``x`` by nearest neighbour."""
    if cond.shape[2:] == x.shape[2:]:
        return cond
    return F.interpolate(cond, size=x.shape[2:], mode="nearest")


class SPADE(nn.Module):
    """``x [B, C, *S]``, ``cond [B, K, *S']`` -> ``[B, C, *S]``: ``norm(x) * (1 + gamma) + beta``.

    ``gamma`` and ``beta`` come from a shared ``kernel_size`` convolution of the resized
    condition to ``hidden`` channels and a ReLU, then one convolution each (as in SPADE).

    Args:
        dims: 2 or 3 spatial axes.
        channels: ``C``, channels of the normalised input.
        cond_channels: ``K``, channels of the condition.
        hidden: channels of the shared hidden layer.
        norm: ``instance``, ``batch`` or ``none`` (see :func:`param_free_norm`).
        padding_mode: padding of the convolutions (one mode or one per axis).
    """

    def __init__(
        self,
        dims: int,
        channels: int,
        cond_channels: int,
        hidden: int = 64,
        norm: str = "instance",
        kernel_size: int = 3,
        padding_mode: PaddingModes = "zeros",
    ) -> None:
        super().__init__()
        if cond_channels < 1:
            raise ConfigError("SPADE needs a condition with at least one channel")
        self.dims = check_dims(dims)
        self.norm = param_free_norm(dims, channels, norm)
        self.shared = nn.Sequential(
            conv_nd(dims, cond_channels, hidden, kernel_size, padding_mode=padding_mode),
            nn.ReLU(),
        )
        self.gamma = conv_nd(dims, hidden, channels, kernel_size, padding_mode=padding_mode)
        self.beta = conv_nd(dims, hidden, channels, kernel_size, padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dims + 2 or cond.ndim != self.dims + 2:
            raise ValueError(
                f"SPADE(dims={self.dims}) expects x and cond [B, C, {self.dims} spatial axes], "
                f"got {list(x.shape)} and {list(cond.shape)}"
            )
        h = self.shared(resize_like(cond, x).to(x.dtype))
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SPADEResnetBlock(nn.Module):
    """SPADE residual block: ``[B, fin, *S]`` (+ ``cond``) -> ``[B, fout, *S]``.

    ::

        main: SPADE -> LeakyReLU(0.2) -> 3x3 conv (fin -> fmid)
              -> SPADE -> LeakyReLU(0.2) -> 3x3 conv (fmid -> fout)
        skip: identity if fin == fout, else SPADE -> 1x1 conv without bias
        out  = skip + main

    with ``fmid = min(fin, fout)`` (SPADE's generator block, without spectral norm).
    """

    def __init__(
        self,
        dims: int,
        fin: int,
        fout: int,
        cond_channels: int,
        hidden: int = 64,
        norm: str = "instance",
        padding_mode: PaddingModes = "zeros",
    ) -> None:
        super().__init__()
        check_dims(dims)
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.act = nn.LeakyReLU(0.2)
        self.norm_0 = SPADE(dims, fin, cond_channels, hidden, norm, padding_mode=padding_mode)
        self.conv_0 = conv_nd(dims, fin, fmid, 3, padding_mode=padding_mode)
        self.norm_1 = SPADE(dims, fmid, cond_channels, hidden, norm, padding_mode=padding_mode)
        self.conv_1 = conv_nd(dims, fmid, fout, 3, padding_mode=padding_mode)
        if self.learned_shortcut:
            self.norm_s = SPADE(dims, fin, cond_channels, hidden, norm, padding_mode=padding_mode)
            self.conv_s = conv_nd(dims, fin, fout, 1, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        dx = self.conv_0(self.act(self.norm_0(x, cond)))
        dx = self.conv_1(self.act(self.norm_1(dx, cond)))
        return skip + dx
