"""Super-resolution GAN for volumes in the style of map2map's ``srsgan`` (Li et al. 2021, PNAS).

Dimension-generic: every layer is :mod:`geogan.nn` code that serves 2D ``[B, C, H, W]`` and
3D ``[B, C, D, H, W]`` alike (``dims=2|3``). The resolution factor may differ per axis (e.g.
``[1, 4, 4]``: levels kept, x4 horizontally); it is reached by x2 stages, so each axis's
factor must be a power of two.

Generator (StyleGAN2 "H" blocks, as srsgan)::

    x [B, C_in, *s] --1x1 conv, LReLU--> h_0 (chan(0) channels)
    stage b:  h: noise -> x2 linear upsample -> 3x3 conv -> LReLU -> noise -> 3x3 conv -> LReLU
              y: x2 linear upsample of y + 1x1 projection of h (to C_out)
    y_0 = x[:, :C_out] (residual: the network adds detail to the interpolated input)
    output y [B, C_out, *(s * factor)]

Noise is injected twice per stage (before the upsampling, at the stage's input grid, and
after the first convolution, at its output grid): added with a learned per-channel scale
(``noise="add"``, zero at start as in StyleGAN) or concatenated as one extra channel
(``"concat"``). Differences from srsgan, on purpose: convolutions are "same"-padded (one
padding mode per axis: ``circular`` on periodic axes, where the upsampling wraps round too)
instead of unpadded, so an output voxel depends only on inputs within
:meth:`SRSGANGenerator.receptive_radius` coarse voxels and tiles assemble exactly; the
projections are linear (``proj_activation=False``; srsgan applies a LeakyReLU, which makes
the added detail lopsided), and the random inputs are arguments, so a caller can draw
them reproducibly for a whole volume.

Critic (StyleGAN2 residual discriminator, as srsgan ``D``)::

    cat(linear upsampling of the condition to the image grid, image) -> 1x1 conv -> LReLU
    per stage (reversed): [3x3 conv -> LReLU -> 3x3 conv -> LReLU] + 1x1 skip -> /2 average pool
    1x1 conv -> LReLU -> 1x1 conv -> mean over space -> score [B]

With ``padding="valid"`` (default, srsgan's) each 3x3 pair trims 2 voxels per side; no
normalisation layers (the WGAN-GP and R1 penalties are per sample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from geogan.core.errors import ConfigError
from geogan.core.modules import register_model
from geogan.nn import Downsample, NoiseInjection, Pad, Upsample, check_dims, conv_nd
from geogan.nn.conv import padding_modes

__all__ = [
    "SRSGANCritic",
    "SRSGANGenerator",
    "channel_schedule",
    "stage_factors",
]

NOISE_MODES = ("add", "concat", "none")


def _per_axis_factor(factor: int | Sequence[int], dims: int) -> tuple[int, ...]:
    if isinstance(factor, int):
        out = (factor,) * dims
    else:
        out = tuple(int(f) for f in factor)
    if len(out) != dims:
        raise ConfigError(f"factor needs one value per spatial axis ({dims}), got {list(out)}")
    for f in out:
        if f < 1 or f & (f - 1):
            raise ConfigError(
                f"factor {list(out)}: every axis's factor must be a power of 2 (x2 upsampling "
                "stages), e.g. 2, 4 or 8; use 1 to keep an axis"
            )
    if all(f == 1 for f in out):
        raise ConfigError("factor is 1 on every axis: nothing to super-resolve")
    return out


def stage_factors(factor: int | Sequence[int], dims: int) -> list[tuple[int, ...]]:
    """The x2 stages of a per-axis factor: ``[1, 4, 4]`` -> ``[(1, 2, 2), (1, 2, 2)]``.

    Stage ``b`` doubles axis ``a`` while ``2^(b + 1) <= factor[a]``; the product over stages
    is the factor on every axis.
    """
    per_axis = _per_axis_factor(factor, dims)
    n = max(int(math.log2(f)) for f in per_axis)
    return [tuple(2 if 2 ** (b + 1) <= f else 1 for f in per_axis) for b in range(n)]


def channel_schedule(base: int, minimum: int, maximum: int, n: int) -> list[int]:
    """srsgan's channels per level ``b = 0 .. n``: ``clamp(base / 2^b, minimum, maximum)``."""
    if not 1 <= minimum <= maximum or base < 1:
        raise ConfigError(
            f"channels need 1 <= chan_min <= chan_max and chan_base >= 1, got base {base}, "
            f"min {minimum}, max {maximum}"
        )
    return [min(max(base >> b if b >= 0 else base << -b, minimum), maximum) for b in range(n + 1)]


def _periodic(modes: tuple[str, ...]) -> tuple[bool, ...]:
    return tuple(m == "circular" for m in modes)


class _Conv3(nn.Module):
    """3x3(x3) convolution with "same" output: an explicit :class:`Pad`, then an unpadded conv.

    Zero padding inside the convolution would be one op fewer, but PyTorch's oneDNN backward
    pass for the weights of a padded 3D convolution is about ten times slower than for an
    unpadded one on CPU (measured: 2.3 s against 0.18 s for [4, 16, 40^3], 16 -> 16
    channels); the separate pad costs one copy of the activation.
    """

    def __init__(
        self, dims: int, cin: int, cout: int, modes: tuple[str, ...], explicit: bool = True
    ) -> None:
        super().__init__()
        if explicit or any(m != "zeros" for m in modes):
            self.pad = Pad(dims, 1, list(modes))
            self.conv = conv_nd(dims, cin, cout, 3, padding="valid")
        else:  # zero padding inside the convolution (faster with channels_last_3d inputs)
            self.pad = nn.Identity()
            self.conv = conv_nd(dims, cin, cout, 3, padding_mode="zeros")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class _Noise(nn.Module):
    """Adds (learned scale per channel) or concatenates one noise channel ``[B, 1, *n]``."""

    def __init__(self, dims: int, channels: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.inject = NoiseInjection(dims, channels) if mode == "add" else None

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        if self.mode == "none":
            return x
        if noise is None:
            noise = torch.randn((x.shape[0], 1, *x.shape[2:]), device=x.device, dtype=x.dtype)
        if self.inject is not None:
            return self.inject(x, noise)
        return torch.cat([x, noise.to(x.dtype)], dim=1)


class _HBlock(nn.Module):
    def __init__(
        self,
        dims: int,
        prev: int,
        nxt: int,
        out_channels: int,
        factor: tuple[int, ...],
        noise: str,
        modes: tuple[str, ...],
        slope: float,
        proj_activation: bool,
        explicit: bool = True,
    ) -> None:
        super().__init__()
        extra = 1 if noise == "concat" else 0
        self.noise1 = _Noise(dims, prev, noise)
        self.up = Upsample(dims, factor, "linear", periodic=_periodic(modes))
        self.conv1 = _Conv3(dims, prev + extra, nxt, modes, explicit)
        self.noise2 = _Noise(dims, nxt, noise)
        self.conv2 = _Conv3(dims, nxt + extra, nxt, modes, explicit)
        self.act = nn.LeakyReLU(slope, inplace=True)
        self.proj = conv_nd(dims, nxt, out_channels, 1)
        self.proj_act = nn.LeakyReLU(slope, inplace=True) if proj_activation else nn.Identity()

    def forward(
        self,
        h: torch.Tensor,
        y: torch.Tensor | None,
        n1: torch.Tensor | None,
        n2: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.act(self.conv1(self.up(self.noise1(h, n1))))
        h = self.act(self.conv2(self.noise2(h, n2)))
        p = self.proj_act(self.proj(h))
        y = p if y is None else self.up(y) + p
        return h, y


@register_model("srsgan_generator")
class SRSGANGenerator(nn.Module):
    """srsgan-style generator ``[B, C_in, *s] -> [B, C_out, *(s * factor)]`` (see module docs).

    Args:
        dims: 2 or 3 spatial axes.
        in_channels, out_channels: ``C_in`` (the coarse variables, then any extra inputs
            such as a valid-fraction channel), ``C_out``.
        factor: resolution factor, one power of two per axis (or one for all).
        chan_base, chan_min, chan_max: channels ``clamp(base / 2^b, min, max)`` at level
            ``b`` (0: the input grid), srsgan's schedule (512/64/512 in map2map).
        noise: ``"add"`` (learned per-channel scale, starts at 0), ``"concat"`` (one extra
            channel per injection) or ``"none"`` (deterministic).
        padding_mode: padding of the 3x3 convolutions, one mode or one per axis
            (``circular`` marks a periodic axis, where upsampling also wraps round).
        residual: start the output path from the first ``C_out`` input channels (the coarse
            targets); else the first stage's projection starts it.
        proj_activation: LeakyReLU after each projection (srsgan's choice).
        explicit_padding: pad with a separate op before unpadded 3x3 convolutions (faster
            backward on CPU for contiguous activations, see :class:`_Conv3`); False: zero
            padding inside the convolution.
    """

    def __init__(
        self,
        *,
        dims: int = 3,
        in_channels: int,
        out_channels: int,
        factor: int | list[int] = 4,
        chan_base: int = 512,
        chan_min: int = 64,
        chan_max: int = 512,
        noise: str = "add",
        padding_mode: str | list[str] = "replicate",
        residual: bool = True,
        proj_activation: bool = False,
        negative_slope: float = 0.2,
        explicit_padding: bool = True,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if noise not in NOISE_MODES:
            raise ConfigError(f"noise must be one of {', '.join(NOISE_MODES)}, got {noise!r}")
        if residual and in_channels < out_channels:
            raise ConfigError(
                f"a residual generator needs the {out_channels} target variables among its "
                f"{in_channels} input channels; set residual: false"
            )
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.factor = _per_axis_factor(factor, dims)
        self.stages = stage_factors(self.factor, dims)
        self.modes = padding_modes(padding_mode, dims)
        self.noise_mode = noise
        self.residual = residual
        chans = channel_schedule(chan_base, chan_min, chan_max, len(self.stages))
        self.channels = chans
        self.block0 = conv_nd(dims, in_channels, chans[0], 1)
        self.act0 = nn.LeakyReLU(negative_slope, inplace=True)
        self.blocks = nn.ModuleList(
            _HBlock(
                dims,
                chans[b],
                chans[b + 1],
                out_channels,
                f,
                noise,
                self.modes,
                negative_slope,
                proj_activation,
                explicit_padding,
            )
            for b, f in enumerate(self.stages)
        )

    # ---------------------------------------------------------------- random inputs
    def noise_scales(self) -> list[tuple[int, ...]]:
        """Per injection point, its grid's scale per axis relative to the input grid."""
        if self.noise_mode == "none":
            return []
        out, grid = [], (1,) * self.dims
        for f in self.stages:
            out.append(grid)
            grid = tuple(g * k for g, k in zip(grid, f))
            out.append(grid)
        return out

    def noise_shapes(self, input_shape: Sequence[int]) -> list[tuple[int, ...]]:
        """Shapes ``[B, 1, *(s * scale)]`` of the noise tensors for an input ``[B, C_in, *s]``."""
        batch = int(input_shape[0])
        return [
            (batch, 1, *(int(n) * g for n, g in zip(input_shape[2:], scale)))
            for scale in self.noise_scales()
        ]

    def receptive_radius(self) -> tuple[int, ...]:
        """Per axis, how many input voxels away an output voxel can see (rounded up).

        An output voxel depends only on input voxels within this radius (measured on the
        input grid): tiles whose discarded margin is at least this wide assemble exactly.
        """
        out = []
        for a in range(self.dims):
            # follow the longest path: the h branch through every stage, then the projections
            radius, scale = 0.0, 1
            for f in self.stages:
                if f[a] > 1:
                    radius += 1.0 / scale  # linear upsampling: +-1 voxel of the stage's input
                scale *= f[a]
                radius += 2.0 / scale  # two 3x3 convolutions on the stage's output grid
            out.append(math.ceil(radius - 1e-9))
        return tuple(out)

    # ------------------------------------------------------------------- forward
    def forward(
        self, x: torch.Tensor, noise: Sequence[torch.Tensor | None] | None = None
    ) -> torch.Tensor:
        """``x [B, C_in, *s]`` (normalised), ``noise``: tensors of :meth:`noise_shapes`
        (None: drawn from the global RNG). Returns ``[B, C_out, *(s * factor)]``."""
        if x.ndim != self.dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"generator expects [B, {self.in_channels}, {self.dims} spatial axes], got "
                f"{list(x.shape)}"
            )
        n_inject = len(self.noise_scales())
        if noise is None:
            noise = [None] * n_inject
        elif len(noise) != n_inject:
            raise ValueError(f"generator takes {n_inject} noise tensors, got {len(noise)}")
        y = x[:, : self.out_channels] if self.residual else None
        h = self.act0(self.block0(x))
        for b, block in enumerate(self.blocks):
            n1, n2 = (noise[2 * b], noise[2 * b + 1]) if n_inject else (None, None)
            h, y = block(h, y, n1, n2)
        return y


class _CriticBlock(nn.Module):
    def __init__(
        self,
        dims: int,
        prev: int,
        nxt: int,
        factor: tuple[int, ...],
        padding: str,
        modes: tuple[str, ...],
        slope: float,
    ) -> None:
        super().__init__()
        if padding == "valid":
            self.conv1 = conv_nd(dims, prev, prev, 3, padding="valid")
            self.conv2 = conv_nd(dims, prev, nxt, 3, padding="valid")
        else:
            self.conv1 = _Conv3(dims, prev, prev, modes)
            self.conv2 = _Conv3(dims, prev, nxt, modes)
        self.act = nn.LeakyReLU(slope, inplace=True)
        self.skip = conv_nd(dims, prev, nxt, 1)
        self.trim = 2 if padding == "valid" else 0
        self.down = Downsample(dims, factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv2(self.act(self.conv1(x))))
        if self.trim:
            t = self.trim
            # trim before the 1x1 skip: the same values, fewer voxels convolved
            x = x[(slice(None), slice(None)) + (slice(t, -t),) * (x.ndim - 2)]
        return self.down(self.skip(x) + y)


@register_model("srsgan_critic")
class SRSGANCritic(nn.Module):
    """srsgan-style critic: ``(condition [B, C_c, *s], image [B, C, *S]) -> scores [B]``.

    The condition (the coarse input) is upsampled linearly to the image grid (wrapping round
    periodic axes) and concatenated with the image (map2map's ``cgan`` conditioning: "crucial
    to ... accurate predictions of the small-scale power spectra", Li et al. 2021).

    Args:
        dims, factor: as the generator's; the blocks pool by the generator's stage factors,
            in reverse.
        condition_channels, image_channels: ``C_c``, ``C``.
        chan_base, chan_min, chan_max: srsgan's schedule; level ``b`` has
            ``clamp(base / 2^b)`` channels, the full-resolution level ``n_stages``.
        padding: ``"valid"`` (srsgan: each block trims 2 voxels per side) or ``"same"``.
        padding_mode: with ``"same"``, one mode or one per axis; also marks periodic axes
            (``circular``) for the condition's upsampling.
    """

    def __init__(
        self,
        *,
        dims: int = 3,
        condition_channels: int,
        image_channels: int,
        factor: int | list[int] = 4,
        chan_base: int = 512,
        chan_min: int = 64,
        chan_max: int = 512,
        padding: str = "valid",
        padding_mode: str | list[str] = "replicate",
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        if padding not in ("valid", "same"):
            raise ConfigError(f"critic padding must be 'valid' or 'same', got {padding!r}")
        self.factor = _per_axis_factor(factor, dims)
        self.stages = stage_factors(self.factor, dims)
        self.modes = padding_modes(padding_mode, dims)
        self.padding = padding
        self.condition_channels, self.image_channels = int(condition_channels), int(image_channels)
        n = len(self.stages)
        # level b has chans[b + 1]; chans[0] is level -1 (srsgan's extra 1x1 width)
        chans = channel_schedule(chan_base * 2, chan_min, chan_max, n + 1)
        self.up = Upsample(dims, self.factor, "linear", periodic=_periodic(self.modes))
        self.block0 = conv_nd(dims, condition_channels + image_channels, chans[n + 1], 1)
        self.act = nn.LeakyReLU(negative_slope, inplace=True)
        self.blocks = nn.ModuleList(
            _CriticBlock(
                dims,
                chans[b + 2],
                chans[b + 1],
                self.stages[b],
                padding,
                self.modes,
                negative_slope,
            )
            for b in reversed(range(n))
        )
        self.head1 = conv_nd(dims, chans[1], chans[0], 1)
        self.head2 = conv_nd(dims, chans[0], 1, 1)

    def min_image_size(self) -> tuple[int, ...]:
        """The smallest image extent per axis the critic accepts (valid padding trims)."""
        out = []
        for a in range(self.dims):
            size = 1
            for f in self.stages:  # inverse of the blocks, from the last to the first
                size = size * f[a] + (4 if self.padding == "valid" else 0)
            out.append(size)
        return tuple(out)

    def condition_features(self, condition: torch.Tensor) -> torch.Tensor:
        """The condition upsampled to the image grid ``[B, C_c, *S]`` (compute it once per
        batch and pass it to :meth:`score` for real, generated and interpolated images)."""
        return self.up(condition)

    def score(self, upsampled: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Scores ``[B]`` of ``image [B, C, *S]`` given the upsampled condition."""
        small = [n < m for n, m in zip(image.shape[2:], self.min_image_size())]
        if any(small):
            raise ValueError(
                f"critic needs images of at least {self.min_image_size()} voxels, got "
                f"{tuple(image.shape[2:])}"
            )
        if upsampled.shape[2:] != image.shape[2:]:
            raise ValueError(
                f"condition upsampled to {tuple(upsampled.shape[2:])} does not match the image "
                f"{tuple(image.shape[2:])}"
            )
        h = self.act(self.block0(torch.cat([upsampled, image.to(upsampled.dtype)], dim=1)))
        for block in self.blocks:
            h = block(h)
        h = self.head2(self.act(self.head1(h)))
        return h.flatten(1).mean(dim=1)

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``condition [B, C_c, *s]`` (coarse, on the image's region), ``image [B, C, *(s * factor)]``."""
        if condition.ndim != self.dims + 2 or condition.shape[1] != self.condition_channels:
            raise ValueError(
                f"critic condition must be [B, {self.condition_channels}, {self.dims} spatial "
                f"axes], got {list(condition.shape)}"
            )
        if image.ndim != self.dims + 2 or image.shape[1] != self.image_channels:
            raise ValueError(
                f"critic image must be [B, {self.image_channels}, ...], got {list(image.shape)}"
            )
        return self.score(self.condition_features(condition), image)


def narrow(x: torch.Tensor, trim: Sequence[int]) -> torch.Tensor:
    """``x [B, C, *n]`` without ``trim[a]`` voxels at both ends of each spatial axis ``a``."""
    for a, t in enumerate(trim):
        if t:
            x = x.narrow(2 + a, t, x.shape[2 + a] - 2 * t)
    return x
