"""U-Net of pix2pix (Isola et al. 2017), dimension-generic, with dropout that can stay on.

``[B, C_in, *S] -> [B, C_out, *S]`` with every spatial size divisible by ``2 ** depth``.
With ``dims=2, filters=64, depth=8, norm="batch", dropout=0.5`` it is pix2pix's
``unet_256`` layer for layer (same convolutions, channel widths, normalisation, bias
choices and dropout positions: 54.414 M parameters for 3 -> 3 channels):

- down path: 4^d convolutions of stride 2 (zero padding 1), widths
  ``min(filters * 2**k, max_filters)``; every level but the first and the innermost is
  followed by the norm; each level's input goes through LeakyReLU(0.2) first;
- the LeakyReLU'd features of each level are the skips (pix2pix's in-place LeakyReLU
  makes its skips the activated features too);
- up path: ReLU, transposed 4^d convolution of stride 2, norm, and dropout in the
  ``dropout_levels`` levels just outside the innermost; the outermost ends with the
  output activation (``tanh`` for images in [-1, 1]).

``dropout_at_inference=True`` keeps the dropout active in eval mode too: pix2pix's
only source of randomness, so that several members of one input differ.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError, DataError
from geogan.core.modules import register_model
from geogan.models._shapes import check_tensor
from geogan.nn import batch_norm_nd, check_dims, conv_nd

__all__ = ["NORMS", "OUTPUT_ACTIVATIONS", "InferenceDropout", "UNet", "init_gan_weights", "norm_nd"]

NORMS = ("batch", "instance", "none")
OUTPUT_ACTIVATIONS = ("tanh", "sigmoid", "none")


def norm_nd(kind: str, dims: int, channels: int) -> nn.Module:
    """Batch norm, instance norm (no affine, no running statistics, as pix2pix) or identity."""
    if kind == "batch":
        return batch_norm_nd(dims, channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


def conv_transpose_nd(dims: int, cin: int, cout: int, bias: bool) -> nn.Module:
    """Transposed 4^d convolution of stride 2, padding 1: ``[*n] -> [*2n]``."""
    cls = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
    return cls(cin, cout, kernel_size=4, stride=2, padding=1, bias=bias)


def init_gan_weights(module: nn.Module, gain: float) -> None:
    """pix2pix's initialisation: conv weights ~ N(0, gain), biases 0, norm scales ~ N(1, gain)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


class InferenceDropout(nn.Module):
    """Dropout that, with ``always=True``, also drops in eval mode (the noise source)."""

    def __init__(self, p: float, always: bool) -> None:
        super().__init__()
        self.p, self.always = float(p), bool(always)

    def extra_repr(self) -> str:
        return f"p={self.p}, always={self.always}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0:
            return x
        return F.dropout(x, self.p, training=self.training or self.always)


@register_model("unet")
class UNet(nn.Module):
    """pix2pix U-Net ``[B, in_channels, *S] -> [B, out_channels, *S]`` (module docstring).

    Args:
        dims: 2 (``[B, C, H, W]``) or 3 (``[B, C, D, H, W]``).
        in_channels, out_channels: channel counts.
        filters: width of the first level (pix2pix ``ngf``).
        depth: number of stride-2 levels (8 for 256 pixels: ``unet_256``); sizes must be
            divisible by ``2 ** depth``.
        max_filters: cap on the widths (pix2pix: ``8 * filters``; default that).
        norm: ``batch``, ``instance`` or ``none``.
        dropout: dropout probability in the ``dropout_levels`` up levels just outside the
            innermost (pix2pix: 0.5 in 3 levels).
        dropout_at_inference: keep dropout on in eval mode (noise source).
        output_activation: ``tanh`` (images in [-1, 1]), ``sigmoid`` or ``none`` (logits,
            e.g. a segmenter).
        init_gain: std of the N(0, gain) initialisation (pix2pix 0.02); 0 keeps PyTorch's.
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 3,
        filters: int = 64,
        depth: int = 8,
        max_filters: int | None = None,
        norm: str = "batch",
        dropout: float = 0.0,
        dropout_levels: int = 3,
        dropout_at_inference: bool = False,
        output_activation: str = "tanh",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if depth < 2:
            raise ConfigError(f"UNet depth must be >= 2, got {depth}")
        if norm not in NORMS:
            raise ConfigError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"unknown output_activation {output_activation!r}; "
                f"choose one of {', '.join(OUTPUT_ACTIVATIONS)}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        self.in_channels, self.out_channels, self.depth = in_channels, out_channels, depth
        cap = max_filters or 8 * filters
        widths = [min(filters * 2**k, cap) for k in range(depth)]
        self.widths = widths
        bias = norm != "batch"  # batch norm has its own shift (pix2pix's choice)
        self.first = conv_nd(dims, in_channels, widths[0], 4, 2, "zeros", bias, padding=1)
        self.downs = nn.ModuleList()
        for k in range(1, depth):
            innermost = k == depth - 1
            conv = conv_nd(dims, widths[k - 1], widths[k], 4, 2, "zeros", bias, padding=1)
            self.downs.append(
                nn.Sequential(conv)
                if innermost
                else nn.Sequential(conv, norm_nd(norm, dims, widths[k]))
            )
        self.ups = nn.ModuleList()  # ups[k - 1] takes level k's output up to level k - 1's width
        n_drop = max(0, min(dropout_levels, depth - 2))
        for k in range(1, depth):
            innermost = k == depth - 1
            cin = widths[k] if innermost else 2 * widths[k]
            layers = [
                conv_transpose_nd(dims, cin, widths[k - 1], bias),
                norm_nd(norm, dims, widths[k - 1]),
            ]
            if depth - 1 - n_drop <= k < depth - 1 and dropout > 0:
                layers.append(InferenceDropout(dropout, dropout_at_inference))
            self.ups.append(nn.Sequential(*layers))
        self.last = conv_transpose_nd(dims, 2 * widths[0], out_channels, True)
        self.output_activation = output_activation
        if init_gain > 0:
            init_gan_weights(self, init_gain)

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this (``2 ** depth``)."""
        return 2**self.depth

    def _check(self, x: torch.Tensor) -> None:
        check_tensor(x, who="UNet", name="input", dims=self.dims, channels=self.in_channels)
        bad = [n for n in x.shape[2:] if n % self.multiple]
        if bad:
            raise DataError(
                f"UNet(depth={self.depth}) needs spatial sizes divisible by {self.multiple}, "
                f"got {list(x.shape[2:])}; crop or pad the input, or lower the depth"
            )

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activated features of every level: ``[B, widths[k], *S / 2**(k+1)]`` for
        ``k = 0 .. depth - 1`` (the last is the innermost, before the up path)."""
        self._check(x)
        feats = []
        h = self.first(x)
        for down in self.downs:
            a = F.leaky_relu(h, 0.2)
            feats.append(a)
            h = down(a)
        feats.append(h)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        skips = []
        h = self.first(x)
        for down in self.downs:
            # in place: the conv output is not needed again (its backward needs its input)
            a = F.leaky_relu_(h, 0.2)
            skips.append(a)
            h = down(a)
        for k in range(self.depth - 1, 0, -1):
            u = self.ups[k - 1](F.relu_(h))  # h is a fresh cat / conv output
            h = torch.cat([skips[k - 1], u], dim=1)
        out = self.last(F.relu_(h))
        if self.output_activation == "tanh":
            return torch.tanh(out)
        if self.output_activation == "sigmoid":
            return torch.sigmoid(out)
        return out
