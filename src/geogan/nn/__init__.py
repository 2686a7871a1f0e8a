"""Dimension-generic building blocks: every layer takes ``dims=2|3``."""

from geogan.nn.blocks import ResidualBlock, batch_norm_nd
from geogan.nn.conv import PADDING_MODES, Pad, check_dims, conv_nd, same_padding
from geogan.nn.resample import Downsample, NoiseInjection, PixelShuffle, Upsample, total_factor

__all__ = [
    "PADDING_MODES",
    "Downsample",
    "NoiseInjection",
    "Pad",
    "PixelShuffle",
    "ResidualBlock",
    "Upsample",
    "batch_norm_nd",
    "check_dims",
    "conv_nd",
    "same_padding",
    "total_factor",
]
