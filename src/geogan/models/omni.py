"""Multi-task masker and SPADE painter of the ``flood`` recipe (omnigan / ClimateGAN design).

- :class:`OmniEncoder`: MUNIT's content encoder, shared by every task: a projection
  convolution (7x7, ``dim`` channels), ``n_downsample`` strided 4x4 convolutions (each
  doubling the channels and halving the grid) and ``n_res`` residual blocks.
- :class:`OmniDecoder`: MUNIT-style decoder: ``n_res`` residual blocks, ``n_upsample``
  times (nearest x2 upsampling, 5x5 convolution halving the channels, layer norm, ReLU),
  a 7x7 output convolution. One per task (``d`` depth, ``h`` height, ``s`` land-cover
  logits, ``w`` water logit) and per adaptation target (an image, ``tanh``).
- :class:`OmniClassifier`: domain classifier on the encoder's features (the encoder
  learns to fool it).
- :class:`OmniPainter`: SPADE-conditioned decoder: ``n_up`` times (SPADE residual block,
  nearest x2 upsampling), then ``tanh(conv(LeakyReLU(y)))``; the first two blocks keep the
  ``z`` channels, each later one halves them.

Every model is dimension-generic (``dims=2``: ``[B, C, H, W]``, ``dims=3``:
``[B, C, D, H, W]``) and takes keyword-only JSON arguments (exports rebuild them).
"""

from __future__ import annotations

import torch
from torch import nn

from geogan.core.errors import ConfigError
from geogan.core.modules import register_model
from geogan.nn.conv import PaddingModes, check_dims, conv_nd
from geogan.nn.resample import Upsample
from geogan.nn.spade import SPADEResnetBlock, resize_like

__all__ = [
    "OmniClassifier",
    "OmniDecoder",
    "OmniEncoder",
    "OmniPainter",
    "norm_layer",
]

NORMS = ("instance", "layer", "batch", "none")
ACTIVATIONS = ("none", "tanh", "sigmoid")


def norm_layer(dims: int, channels: int, kind: str) -> nn.Module:
    """``instance`` (no affine, as MUNIT's content encoder), ``layer`` (over channels and
    space per sample, with a per-channel affine, as MUNIT's decoder), ``batch`` or ``none``."""
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=False)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown normalisation {kind!r}; choose one of {', '.join(NORMS)}")


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}")
    return value


class ConvBlock(nn.Sequential):
    """Convolution -> norm -> activation (MUNIT's ``Conv2dBlock``), any dims.

    The convolution has no bias when a norm follows (the norm's mean removes it)."""

    def __init__(
        self,
        dims: int,
        fin: int,
        fout: int,
        kernel_size: int,
        stride: int = 1,
        norm: str = "none",
        activation: str = "relu",
        padding_mode: PaddingModes = "reflect",
    ) -> None:
        layers: list[nn.Module] = [
            conv_nd(dims, fin, fout, kernel_size, stride, padding_mode, bias=norm == "none"),
            norm_layer(dims, fout, norm),
        ]
        if activation == "relu":
            layers.append(nn.ReLU())
        elif activation == "lrelu":
            layers.append(nn.LeakyReLU(0.2))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """MUNIT residual block ``[B, C, *S] -> [B, C, *S]``: ``x + norm(conv(relu(norm(conv(x)))))``."""

    def __init__(
        self, dims: int, channels: int, norm: str, padding_mode: PaddingModes = "reflect"
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBlock(dims, channels, channels, 3, 1, norm, "relu", padding_mode),
            ConvBlock(dims, channels, channels, 3, 1, norm, "none", padding_mode),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@register_model("omni_encoder")
class OmniEncoder(nn.Module):
    """Shared encoder ``[B, in, *S] -> z [B, dim * 2**n_downsample, *ceil(S / 2**n_downsample)]``.

    Args:
        dims: 2 or 3 spatial axes.
        in_channels: image channels (3 for RGB).
        dim: channels after the projection convolution.
        n_downsample: strided 4x4 convolutions (each x2 channels, /2 grid).
        n_res: residual blocks at the lowest resolution.
        norm: ``instance`` (MUNIT), ``layer``, ``batch`` or ``none``.
        padding_mode: padding of every convolution (one mode or one per spatial axis).
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        in_channels: int = 3,
        dim: int = 32,
        n_downsample: int = 2,
        n_res: int = 4,
        norm: str = "instance",
        padding_mode: str | list[str] = "reflect",
    ) -> None:
        super().__init__()
        check_dims(dims)
        _check_choice(norm, NORMS, "normalisation")
        if n_downsample < 0 or n_res < 0:
            raise ConfigError("encoder n_downsample and n_res must be >= 0")
        self.dims, self.factor = dims, 2**n_downsample
        layers: list[nn.Module] = [
            ConvBlock(dims, in_channels, dim, 7, 1, norm, "relu", padding_mode)
        ]
        ch = dim
        for _ in range(n_downsample):
            layers.append(ConvBlock(dims, ch, 2 * ch, 4, 2, norm, "relu", padding_mode))
            ch *= 2
        layers += [ResBlock(dims, ch, norm, padding_mode) for _ in range(n_res)]
        self.net = nn.Sequential(*layers)
        self.out_channels = ch
        self.skip_channels = [dim * 2**i for i in reversed(range(n_downsample))]
        """Channels of the skips ``forward(x, return_skips=True)`` returns, coarsest first."""

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != self.dims + 2:
            raise ValueError(
                f"OmniEncoder(dims={self.dims}) expects [B, C, {self.dims} spatial axes], got {list(x.shape)}"
            )

    def forward(self, x: torch.Tensor, return_skips: bool = False):
        """``z`` or, with ``return_skips``, ``(z, skips)``: the features entering each strided
        convolution, coarsest first, ``[B, dim * 2**i, *(S / 2**i)]`` for ``i = n_downsample - 1
        .. 0`` (the low-level features a DeepLabV3+-style task decoder concatenates). A keyword
        of ``forward``, not a method of its own, so that DDP and compiled wrappers see it."""
        self._check(x)
        if not return_skips:
            return self.net(x)
        skips = []
        h = x
        n_down = len(self.skip_channels)
        for i, layer in enumerate(self.net):
            if 1 <= i <= n_down:  # layer i is the i-th strided conv: its input is a skip
                skips.append(h)
            h = layer(h)
        return h, skips[::-1]


@register_model("omni_decoder")
class OmniDecoder(nn.Module):
    """Task or adaptation decoder ``z [B, in, *s] -> [B, out, *(s * 2**n_upsample)]``.

    ``activation``: ``none`` (logits or regression), ``tanh`` (images in [-1, 1]),
    ``sigmoid``. Each upsampling stage halves the channels (at least 8). ``up_kernel`` /
    ``out_kernel``: kernel sizes of the upsampling and output convolutions (MUNIT: 5 and 7;
    3 and 3 cost a third of the FLOPs at 64x64 tiles).
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        in_channels: int = 128,
        out_channels: int = 1,
        n_upsample: int = 2,
        n_res: int = 1,
        res_norm: str = "instance",
        norm: str = "layer",
        activation: str = "none",
        padding_mode: str | list[str] = "reflect",
        up_kernel: int = 5,
        out_kernel: int = 7,
        skip_channels: list[int] | None = None,
    ) -> None:
        super().__init__()
        check_dims(dims)
        _check_choice(activation, ACTIVATIONS, "decoder activation")
        skips = list(skip_channels or [])
        if skips and len(skips) != n_upsample:
            raise ConfigError(
                f"skip_channels needs one entry per upsampling stage ({n_upsample}), got {skips}"
            )
        self.dims = dims
        self.skip_channels = skips
        layers: list[nn.Module] = [
            ResBlock(dims, in_channels, res_norm, padding_mode) for _ in range(n_res)
        ]
        self._skip_at: dict[int, int] = {}  # layer index -> skip index concatenated before it
        ch = in_channels
        for k in range(n_upsample):
            out = max(ch // 2, 8)
            extra = skips[k] if skips else 0
            if skips:
                self._skip_at[len(layers) + 1] = k
            layers += [
                Upsample(dims, 2),
                ConvBlock(dims, ch + extra, out, up_kernel, 1, norm, "relu", padding_mode),
            ]
            ch = out
        layers.append(conv_nd(dims, ch, out_channels, out_kernel, padding_mode=padding_mode))
        if activation == "tanh":
            layers.append(nn.Tanh())
        elif activation == "sigmoid":
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``skips``: from ``OmniEncoder(x, return_skips=True)``, needed iff ``skip_channels``."""
        if not self._skip_at:
            return self.net(z)
        if skips is None or len(skips) != len(self.skip_channels):
            raise ValueError(
                f"this decoder concatenates {len(self.skip_channels)} encoder skips; pass "
                "the skips of encoder(x, return_skips=True)"
            )
        h = z
        for i, layer in enumerate(self.net):
            if i in self._skip_at:
                h = torch.cat([h, skips[self._skip_at[i]]], dim=1)
            h = layer(h)
        return h


@register_model("omni_classifier")
class OmniClassifier(nn.Module):
    """Domain classifier ``z [B, in, *s] -> logits [B, n_domains]``: ``n_layers`` strided 3x3
    convolutions with LeakyReLU, global average pooling, a linear layer."""

    def __init__(
        self,
        *,
        dims: int = 2,
        in_channels: int = 128,
        n_domains: int = 2,
        filters: int = 64,
        n_layers: int = 2,
    ) -> None:
        super().__init__()
        check_dims(dims)
        if n_domains < 2:
            raise ConfigError("the domain classifier needs at least 2 domains")
        layers: list[nn.Module] = []
        ch = in_channels
        for _ in range(n_layers):
            layers += [conv_nd(dims, ch, filters, 3, 2, "zeros"), nn.LeakyReLU(0.2)]
            ch = filters
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch, n_domains)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.features(z)
        return self.head(h.mean(dim=tuple(range(2, h.ndim))))


@register_model("omni_painter")
class OmniPainter(nn.Module):
    """SPADE painter ``z [B, z_channels, *s]`` + ``cond [B, cond_channels, *S]`` (+ noise)
    -> image ``[B, out_channels, *(s * 2**n_up)]`` in [-1, 1].

    ``cond`` (e.g. the masked image, the mask, land-cover one-hot) is resized to each
    block's grid by nearest neighbour. ``noise [B, noise_channels, *s]`` is concatenated
    with ``z`` when ``noise_channels > 0`` (zeros when not given).

    Args:
        z_channels: channels of ``z`` (the shared encoder's output).
        cond_channels: channels of the SPADE condition.
        n_up: SPADE blocks, each followed by x2 upsampling (match the encoder's downsampling).
        spade_hidden: channels of SPADE's hidden layer.
        norm: SPADE's parameter-free normalisation (``instance``, ``batch``, ``none``).
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        z_channels: int = 128,
        cond_channels: int = 4,
        out_channels: int = 3,
        n_up: int = 2,
        noise_channels: int = 0,
        spade_hidden: int = 64,
        norm: str = "instance",
        padding_mode: str | list[str] = "zeros",
    ) -> None:
        super().__init__()
        check_dims(dims)
        if n_up < 1:
            raise ConfigError("the painter needs n_up >= 1 (one SPADE block per upsampling)")
        self.dims, self.noise_channels, self.n_up = dims, noise_channels, n_up
        blocks = []
        fin, ch = z_channels + noise_channels, z_channels
        for i in range(n_up):
            fout = ch if i < 2 else max(ch // 2, 8)
            blocks.append(
                SPADEResnetBlock(dims, fin, fout, cond_channels, spade_hidden, norm, padding_mode)
            )
            fin = ch = fout
        self.blocks = nn.ModuleList(blocks)
        self.up = Upsample(dims, 2)
        self.act = nn.LeakyReLU(0.2)
        self.to_image = conv_nd(dims, ch, out_channels, 3, padding_mode=padding_mode)

    def noise_shape(self, z: torch.Tensor) -> tuple[int, ...]:
        return (z.shape[0], self.noise_channels, *z.shape[2:])

    def forward(
        self, z: torch.Tensor, cond: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        if z.ndim != self.dims + 2 or cond.ndim != self.dims + 2:
            raise ValueError(
                f"OmniPainter(dims={self.dims}) expects z and cond [B, C, {self.dims} spatial "
                f"axes], got {list(z.shape)} and {list(cond.shape)}"
            )
        if self.noise_channels:
            if noise is None:
                noise = torch.zeros(self.noise_shape(z), dtype=z.dtype, device=z.device)
            z = torch.cat([z, noise.to(z.dtype)], dim=1)
        y = z
        for block in self.blocks:
            # one resize per level, shared by the block's SPADE layers
            y = self.up(block(y, resize_like(cond, y)))
        return torch.tanh(self.to_image(self.act(y)))
