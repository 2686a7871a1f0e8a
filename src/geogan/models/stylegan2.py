"""StyleGAN2 (Karras et al. 2020, config E/F) in pure PyTorch, for gridded fields, 2D or 3D.

The architecture is that of NVlabs' StyleGAN2 as rosinality/stylegan2-pytorch writes it
(mapping MLP; constant input; per level an upsampling and a plain modulated 3x3
convolution with noise injection; skip "toRGB" outputs summed after FIR upsampling;
residual discriminator with a minibatch standard-deviation layer), built only from
:mod:`geogan.nn` layers: no compiled extension, the same code on CPU and GPU, in 2D and 3D.

Beyond square images:

- ``size`` and ``base_size`` per axis: the constant input is ``base_size`` and ``levels``
  doublings give ``size = base_size * 2**levels`` on every axis (64x128 from a 4x8 base,
  60x120 from 15x30);
- ``out_channels``: any number of variables;
- ``padding_mode`` per axis (``circular`` in longitude on a global grid);
- ``use_noise`` (noise injection on or off), ``tanh_output``.

Channels at level ``l`` (resolution ``4 * 2**l`` for a base of 4) are
``min(channel_max, channel_base * channel_multiplier // (4 * 2**l))``, rosinality's table
(512 up to 32 px, then ``256 * channel_multiplier`` at 64 px, ...), unless ``channels``
lists them.

Latents: ``z [B, latent_dim]`` -> mapping -> ``w [B, latent_dim]``; synthesis takes one
``w`` per style input, ``ws [B, n_latent, latent_dim]`` with ``n_latent = 2 * levels + 2``
(W+). Style index ``0`` modulates the first convolution, ``1`` the first output layer,
then per level ``l`` (1-based) ``2l - 1`` the upsampling convolution, ``2l`` the second
convolution, ``2l + 1`` the output layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from geogan.core.errors import ConfigError
from geogan.core.modules import register_model
from geogan.nn.conv import check_dims, padding_modes
from geogan.nn.modulated import EqualConv, EqualLinear, ModulatedConv, bias_leaky_relu
from geogan.nn.resample import NoiseInjection
from geogan.nn.upfirdn import FirUpsample

__all__ = [
    "MappingNetwork",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "level_channels",
    "levels_for",
]


def levels_for(size: Sequence[int], base_size: Sequence[int]) -> int:
    """Number of doublings from ``base_size`` to ``size`` (the same on every axis)."""
    size, base = [int(s) for s in size], [int(b) for b in base_size]
    if len(size) != len(base) or not size:
        raise ConfigError(f"size {size} and base_size {base} need one entry per spatial axis")
    levels = set()
    for s, b in zip(size, base):
        ratio = s / b if b > 0 else 0
        lv = round(math.log2(ratio)) if ratio >= 1 else -1
        if b < 1 or lv < 0 or b * 2**lv != s:
            raise ConfigError(
                f"size {size} is not base_size {base} times a power of 2; pick a base_size "
                "that divides it (e.g. [4, 8] for 64x128, [15, 30] for 60x120)"
            )
        levels.add(lv)
    if len(levels) != 1:
        raise ConfigError(
            f"size {size} needs the same number of doublings from base_size {base} on every "
            "axis; scale base_size like size"
        )
    return levels.pop()


def level_channels(
    levels: int,
    channel_multiplier: int,
    channel_base: int,
    channel_max: int,
    channels: Sequence[int] | None = None,
) -> list[int]:
    """Channels at levels ``0 .. levels`` (rosinality's table, or ``channels`` as given)."""
    if channels is not None:
        if len(channels) != levels + 1 or min(channels) < 1:
            raise ConfigError(
                f"channels needs {levels + 1} positive entries (levels 0..{levels}), got "
                f"{list(channels)}"
            )
        return [int(c) for c in channels]
    return [
        max(1, min(channel_max, channel_base * channel_multiplier // (4 * 2**lv)))
        for lv in range(levels + 1)
    ]


class PixelNorm(nn.Module):
    """``z / sqrt(mean(z^2) + eps)`` over the feature axis."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Module):
    """``z [B, D] -> w [B, D]``: pixel norm, then ``n_mlp`` equalised linear layers with
    leaky ReLU at learning-rate multiplier ``lr_mul``."""

    def __init__(self, latent_dim: int, n_mlp: int, lr_mul: float = 0.01) -> None:
        super().__init__()
        layers: list[nn.Module] = [PixelNorm()]
        layers += [
            EqualLinear(latent_dim, latent_dim, lr_mul=lr_mul, activation=True)
            for _ in range(n_mlp)
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class StyledConv(nn.Module):
    """Modulated conv, noise injection (optional), bias and leaky ReLU."""

    def __init__(self, dims, cin, cout, style_dim, *, up, blur, modes, use_noise) -> None:
        super().__init__()
        self.conv = ModulatedConv(
            dims, cin, cout, 3, style_dim, up=up, blur_taps=blur, padding_mode=modes
        )
        self.noise = NoiseInjection(dims, 1) if use_noise else None
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x, w, noise=None):
        x = self.conv(x, w)
        if self.noise is not None:
            x = self.noise(x, noise)
        return bias_leaky_relu(x, self.bias)


class ToOutput(nn.Module):
    """1x1 modulated conv without demodulation to the output channels, plus the upsampled
    skip from the previous level ("toRGB")."""

    def __init__(self, dims, cin, cout, style_dim, *, upsample, blur, modes) -> None:
        super().__init__()
        self.conv = ModulatedConv(dims, cin, cout, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.upsample = FirUpsample(dims, blur, 2, modes) if upsample else None

    def forward(self, x, w, skip=None):
        y = self.conv(x, w)
        y = y + self.bias.to(y.dtype).view(1, -1, *([1] * (y.ndim - 2)))
        if skip is not None:
            y = y + self.upsample(skip)
        return y


def _size_list(value: Sequence[int] | int, dims: int, name: str) -> list[int]:
    if isinstance(value, int):
        return [value] * dims
    value = [int(v) for v in value]
    if len(value) != dims:
        raise ConfigError(f"{name} needs {dims} entries (one per spatial axis), got {value}")
    return value


@register_model("stylegan2_generator")
class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator: ``z [B, latent_dim] -> fields [B, out_channels, *size]``.

    Args:
        dims: 2 (``[B, C, H, W]``) or 3 (``[B, C, D, H, W]``).
        size: output size per spatial axis (or one int for all).
        base_size: size of the learned constant input; ``size / base_size`` must be the same
            power of 2 on every axis.
        out_channels: variables produced.
        latent_dim: dimension of ``z`` and ``w`` (512 in StyleGAN2).
        n_mlp: layers of the mapping network (8).
        channel_multiplier, channel_base, channel_max, channels: widths per level (module
            docstring).
        use_noise: per-layer noise injection (StyleGAN's stochastic detail); off gives a
            deterministic function of ``w``.
        tanh_output: squash the output to (-1, 1) (for data normalised to that range).
        blur_kernel: FIR taps of every resampling (``[1, 3, 3, 1]``).
        lr_mlp: learning-rate multiplier of the mapping network (0.01).
        padding_mode: boundary per axis (``zeros``, or ``circular`` on periodic axes, ...).
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        size: Sequence[int] | int = 64,
        base_size: Sequence[int] | int = 4,
        out_channels: int = 3,
        latent_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        channel_base: int = 16384,
        channel_max: int = 512,
        channels: Sequence[int] | None = None,
        use_noise: bool = True,
        tanh_output: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        lr_mlp: float = 0.01,
        padding_mode: str | Sequence[str] = "zeros",
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.size = _size_list(size, dims, "size")
        self.base_size = _size_list(base_size, dims, "base_size")
        self.levels = levels_for(self.size, self.base_size)
        self.out_channels = int(out_channels)
        self.latent_dim = int(latent_dim)
        self.use_noise = bool(use_noise)
        self.tanh_output = bool(tanh_output)
        modes = list(padding_modes(padding_mode, dims))
        blur = [float(t) for t in blur_kernel]
        ch = level_channels(self.levels, channel_multiplier, channel_base, channel_max, channels)
        self.channels = ch
        self.mapping = MappingNetwork(latent_dim, n_mlp, lr_mlp)
        self.const = nn.Parameter(torch.randn(1, ch[0], *self.base_size))
        common = {"blur": blur, "modes": modes}
        self.conv1 = StyledConv(dims, ch[0], ch[0], latent_dim, up=1, use_noise=use_noise, **common)
        self.out1 = ToOutput(dims, ch[0], out_channels, latent_dim, upsample=False, **common)
        self.convs = nn.ModuleList()
        self.outs = nn.ModuleList()
        for lv in range(1, self.levels + 1):
            self.convs.append(
                StyledConv(
                    dims, ch[lv - 1], ch[lv], latent_dim, up=2, use_noise=use_noise, **common
                )
            )
            self.convs.append(
                StyledConv(dims, ch[lv], ch[lv], latent_dim, up=1, use_noise=use_noise, **common)
            )
            self.outs.append(
                ToOutput(dims, ch[lv], out_channels, latent_dim, upsample=True, **common)
            )
        self.n_latent = 2 * self.levels + 2

    # ------------------------------------------------------------------ latents
    def noise_shapes(self, batch: int) -> list[tuple[int, ...]]:
        """Shapes ``[B, 1, *S_l]`` of the noise inputs, in layer order (empty without noise)."""
        if not self.use_noise:
            return []
        shapes = [(batch, 1, *self.base_size)]
        for lv in range(1, self.levels + 1):
            s = tuple(b * 2**lv for b in self.base_size)
            shapes += [(batch, 1, *s), (batch, 1, *s)]
        return shapes

    def make_noise(
        self, batch: int, generator: torch.Generator | None = None, device=None
    ) -> list[torch.Tensor]:
        """Fresh N(0, 1) noise inputs (see :meth:`noise_shapes`)."""
        device = device or self.const.device
        return [
            torch.randn(s, generator=generator, device=device) for s in self.noise_shapes(batch)
        ]

    @torch.no_grad()
    def mean_w(
        self, n: int = 10000, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean of w [D], rms distance of w to it [])`` over ``n`` random ``z``."""
        z = torch.randn(n, self.latent_dim, generator=generator, device=self.const.device)
        w = self.mapping(z)
        mean = w.mean(dim=0)
        return mean, ((w - mean).square().sum() / n).sqrt()

    def broadcast(
        self, w: torch.Tensor, mix_w: torch.Tensor | None = None, mix_index: int | None = None
    ) -> torch.Tensor:
        """``w [B, D]`` -> ``ws [B, n_latent, D]``; with ``mix_w``, style inputs from
        ``mix_index`` on take ``mix_w`` (style mixing). ``ws`` input is returned as is."""
        if w.ndim == 3:
            if w.shape[1] != self.n_latent:
                raise ValueError(f"ws must be [B, {self.n_latent}, D], got {list(w.shape)}")
            return w
        ws = w.unsqueeze(1).expand(-1, self.n_latent, -1)
        if mix_w is not None and mix_index is not None:
            i = int(mix_index)
            ws = torch.cat([ws[:, :i], mix_w.unsqueeze(1).expand(-1, self.n_latent - i, -1)], 1)
        return ws

    # ------------------------------------------------------------------ forward
    def synthesis(
        self,
        ws: torch.Tensor,
        noise: Sequence[torch.Tensor | None] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``ws [B, n_latent, D]`` (or ``w [B, D]``) -> fields ``[B, C_out, *size]``.

        ``noise``: one tensor per noise input (:meth:`noise_shapes`; batch 1 broadcasts),
        or None to draw fresh noise from ``generator`` (ignored without noise injection).
        """
        ws = self.broadcast(ws)
        b = ws.shape[0]
        if self.use_noise and noise is None:
            noise = self.make_noise(b, generator, ws.device)
        elif not self.use_noise:
            noise = None
        if noise is not None and len(noise) != 2 * self.levels + 1:
            raise ValueError(f"noise needs {2 * self.levels + 1} tensors, got {len(noise)}")

        def nz(i: int):
            if noise is None:
                return None
            n = noise[i]
            return n.expand(b, *n.shape[1:]) if n.shape[0] == 1 and b > 1 else n

        # detached without gradients: a view of a leaf made under no_grad still "requires
        # grad" without a grad_fn, which trips autograd hooks (FlopCounterMode's tracker)
        const = self.const if torch.is_grad_enabled() else self.const.detach()
        x = const.expand(b, *const.shape[1:])
        x = self.conv1(x, ws[:, 0], nz(0))
        skip = self.out1(x, ws[:, 1])
        for lv in range(1, self.levels + 1):
            x = self.convs[2 * lv - 2](x, ws[:, 2 * lv - 1], nz(2 * lv - 1))
            x = self.convs[2 * lv - 1](x, ws[:, 2 * lv], nz(2 * lv))
            skip = self.outs[lv - 1](x, ws[:, 2 * lv + 1], skip)
        return torch.tanh(skip) if self.tanh_output else skip

    def forward(
        self,
        z: torch.Tensor,
        *,
        mix_z: torch.Tensor | None = None,
        mix_index: int | None = None,
        noise: Sequence[torch.Tensor | None] | None = None,
        generator: torch.Generator | None = None,
        return_ws: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``z [B, latent_dim]`` -> fields ``[B, C_out, *size]`` (and ``ws`` if asked).

        ``mix_z`` with ``mix_index`` in ``1 .. n_latent - 1``: style mixing, the second
        latent drives the style inputs from ``mix_index`` on.
        """
        w = self.mapping(z)
        mix_w = self.mapping(mix_z) if mix_z is not None else None
        ws = self.broadcast(w, mix_w, mix_index)
        out = self.synthesis(ws, noise, generator)
        return (out, ws) if return_ws else out


@register_model("stylegan2_discriminator")
class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: ``fields [B, in_channels, *size] -> scores [B, 1]``.

    From-input 1x1 conv, one residual block per level (two 3x3 convs, the second
    downsampling, and a 1x1 downsampling skip, summed / sqrt 2) down to ``base_size``, the
    minibatch standard deviation (groups of ``mbstd_group``, ``mbstd_features`` extra
    channels), a 3x3 conv and two linear layers. Widths mirror the generator's.
    """

    def __init__(
        self,
        *,
        dims: int = 2,
        size: Sequence[int] | int = 64,
        base_size: Sequence[int] | int = 4,
        in_channels: int = 3,
        channel_multiplier: int = 2,
        channel_base: int = 16384,
        channel_max: int = 512,
        channels: Sequence[int] | None = None,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        mbstd_group: int = 4,
        mbstd_features: int = 1,
        padding_mode: str | Sequence[str] = "zeros",
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.size = _size_list(size, dims, "size")
        self.base_size = _size_list(base_size, dims, "base_size")
        self.levels = levels_for(self.size, self.base_size)
        self.in_channels = int(in_channels)
        modes = list(padding_modes(padding_mode, dims))
        blur = [float(t) for t in blur_kernel]
        ch = level_channels(self.levels, channel_multiplier, channel_base, channel_max, channels)
        self.channels = ch
        common = {"blur_taps": blur, "padding_mode": modes}
        self.from_input = EqualConv(dims, in_channels, ch[-1], 1, **common)
        self.blocks = nn.ModuleList(
            _ResBlock(dims, ch[lv], ch[lv - 1], **common) for lv in range(self.levels, 0, -1)
        )
        self.mbstd_group = int(mbstd_group)
        self.mbstd_features = int(mbstd_features)
        self.final_conv = EqualConv(dims, ch[0] + self.mbstd_features, ch[0], 3, **common)
        n = ch[0] * math.prod(self.base_size)
        self.final_linear = EqualLinear(n, ch[0], activation=True)
        self.score = EqualLinear(ch[0], 1)

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """Append the mean standard deviation over groups of samples as extra channels."""
        b, c = x.shape[:2]
        spatial = x.shape[2:]
        group = min(b, self.mbstd_group)
        while b % group:
            group -= 1  # the largest group size that divides the batch
        f = self.mbstd_features
        y = x.float().reshape(group, -1, f, c // f, *spatial)
        # variance over the group by hand: torch.var over a leading strided axis is slow on CPU
        y = y - y.mean(dim=0)
        y = torch.sqrt(y.square().mean(dim=0) + 1e-8)  # [B/g, f, c/f, *S]
        y = y.mean(dim=tuple(range(2, y.ndim)))  # [B/g, f]
        y = y.view(-1, f, *([1] * self.dims)).repeat(group, 1, *spatial)
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.dims + 2 or list(x.shape[2:]) != self.size:
            raise ValueError(
                f"StyleGAN2Discriminator expects [B, {self.in_channels}, {self.size}], got "
                f"{list(x.shape)}"
            )
        x = self.from_input(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_conv(self.minibatch_stddev(x))
        return self.score(self.final_linear(x.flatten(1)))


class _ResBlock(nn.Module):
    def __init__(self, dims, cin, cout, *, blur_taps, padding_mode) -> None:
        super().__init__()
        common = {"blur_taps": blur_taps, "padding_mode": padding_mode}
        self.conv1 = EqualConv(dims, cin, cin, 3, **common)
        self.conv2 = EqualConv(dims, cin, cout, 3, down=2, **common)
        self.skip = EqualConv(dims, cin, cout, 1, down=2, bias=False, activation=False, **common)

    def forward(self, x):
        return (self.conv2(self.conv1(x)) + self.skip(x)) * (1 / math.sqrt(2))
