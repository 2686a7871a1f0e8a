"""Dimension-generic residual blocks."""

from __future__ import annotations

import torch
from torch import nn

from geogan.nn.conv import PaddingModes, check_dims, conv_nd
from geogan.nn.resample import Downsample


def batch_norm_nd(dims: int, channels: int) -> nn.BatchNorm2d | nn.BatchNorm3d:
    """``nn.BatchNorm2d`` or ``nn.BatchNorm3d`` over ``channels``."""
    return (nn.BatchNorm2d if check_dims(dims) == 2 else nn.BatchNorm3d)(channels)


class ResidualBlock(nn.Module):
    """Pre-activation residual block of the downscaling cGAN (Harris et al. 2022, ``dsrnngan``).

    ``[B, in, *n] -> [B, out, *ceil(n / stride)]``::

        main: LeakyReLU -> 3x3 conv (stride) -> [BN] -> LeakyReLU -> 3x3 conv -> [BN]
        skip: [avg-pool by stride] -> [1x1 conv]
        out  = main + skip

    The skip has a 1x1 convolution when the channel count changes, when
    ``stride != 1``, or when ``force_1x1_skip`` (the ``forceconv`` architectures);
    otherwise it is the identity. Striding the skip by average pooling (rather
    than a strided 1x1 conv) keeps every input pixel in the skip.

    Args:
        dims: 2 or 3 spatial axes.
        padding_mode: mode of the 3x3 convolutions' padding, or one per axis
            (see :func:`geogan.nn.conv.conv_nd`).
        negative_slope: slope of the LeakyReLU for negative inputs.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        batch_norm: bool = False,
        force_1x1_skip: bool = False,
        padding_mode: PaddingModes = "reflect",
        negative_slope: float = 0.2,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        check_dims(dims)
        self.act = nn.LeakyReLU(negative_slope)
        self.conv1 = conv_nd(dims, in_channels, out_channels, kernel_size, stride, padding_mode)
        self.norm1 = batch_norm_nd(dims, out_channels) if batch_norm else nn.Identity()
        self.conv2 = conv_nd(dims, out_channels, out_channels, kernel_size, 1, padding_mode)
        self.norm2 = batch_norm_nd(dims, out_channels) if batch_norm else nn.Identity()
        self.skip_pool = Downsample(dims, stride) if stride != 1 else nn.Identity()
        needs_conv = force_1x1_skip or stride != 1 or in_channels != out_channels
        self.skip_conv = (
            conv_nd(dims, in_channels, out_channels, kernel_size=1) if needs_conv else nn.Identity()
        )

    @property
    def has_1x1_skip(self) -> bool:
        return not isinstance(self.skip_conv, nn.Identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip_conv(self.skip_pool(x))
        h = self.norm1(self.conv1(self.act(x)))
        h = self.norm2(self.conv2(self.act(h)))
        return h + skip
