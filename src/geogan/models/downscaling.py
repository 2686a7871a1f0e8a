"""Recipe 1: the stochastic downscaling cGAN / VAE-GAN of Harris et al. (2022, ``dsrnngan``).

Shapes (``dims=2``; with ``dims=3`` every spatial pair ``h, w`` becomes ``d, h, w``):

- ``input``: low-resolution forecast fields ``[B, C_in, h, w]``
- ``constants``: high-resolution constant fields (orography, land-sea mask)
  ``[B, K, H, W]`` with ``H = h * factor``; ``K`` may be 0 (pass None or a
  ``[B, 0, H, W]`` tensor)
- ``noise``: ``[B, N, h, w]``, standard normal
- generated / true image: ``[B, C_out, H, W]``

``factor`` is the product of the per-stage resampling factors.

Differences from ``dsrnngan`` (all deliberate):

- The VAE-GAN decoder is the generator with ``latent_variables > 0``: it sees
  the input and constants as well as the latent sample ``z`` (a conditional
  VAE), where ``dsrnngan``'s decoder saw only ``z`` and the constants.
- The critic's low-resolution stream takes the constants average-pooled to
  low resolution (no parameters) rather than through strided convolutions.
- Constants and the critic's high-resolution stream go down by "patchify"
  convolutions (kernel = stride = stage factor), as ``dsrnngan`` does, so no
  pixel is skipped even for factors larger than 3.
- The critic ends with three residual blocks (as the paper describes; the code
  had two) and a LeakyReLU between its dense layers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import nn

from geogan.core.errors import ConfigError, DataError
from geogan.core.modules import register_model
from geogan.models._shapes import check_factors, check_tensor
from geogan.nn import Downsample, ResidualBlock, Upsample, check_dims, conv_nd, total_factor
from geogan.nn.conv import Pad, PaddingModes, padding_modes
from geogan.nn.resample import interpolate

ARCHS = {"normal": (False, 3), "forceconv": (True, 3), "forceconv-long": (True, 6)}
"""arch -> (1x1 convolution on every skip, residual blocks before upsampling)."""
OUTPUT_ACTIVATIONS = ("softplus", "linear")
NEGATIVE_SLOPE = 0.2


def _arch(arch: str) -> tuple[bool, int]:
    if arch not in ARCHS:
        raise ConfigError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch]


def _check_count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _patchify_down(
    dims: int, in_channels: int, out_channels: int, factors: Sequence[int], relu: bool = False
) -> nn.Sequential:
    """``[B, in, *n] -> [B, out, *(n / prod(factors))]``: one kernel=stride=factor conv per stage,
    each followed by a LeakyReLU (``relu``: a ReLU, as ``dsrnngan``'s critic has)."""
    layers: list[nn.Module] = []
    for f in factors:
        layers += [
            conv_nd(dims, in_channels, out_channels, kernel_size=f, stride=f, padding="valid"),
            nn.ReLU() if relu else nn.LeakyReLU(NEGATIVE_SLOPE),
        ]
        in_channels = out_channels
    return nn.Sequential(*layers)


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Global average pool ``[B, C, *n] -> [B, C]``."""
    return x.mean(dim=tuple(range(2, x.ndim)))


def _constants_or_none(constants: torch.Tensor | None, k: int, who: str) -> torch.Tensor | None:
    if k == 0:
        if constants is not None and constants.shape[1] != 0:
            raise DataError(
                f"{who}: got constants with {constants.shape[1]} channels but constant_channels=0"
            )
        return None
    if constants is None:
        raise DataError(f"{who}: constant_channels={k} but no constants were given")
    return constants


class _PadInInputDtype(nn.Module):
    """Runs a :class:`~geogan.nn.conv.Pad` with autocast off and without keeping its input.

    Two differences from calling the :class:`~geogan.nn.conv.Pad`, neither of which changes
    a value or a gradient:

    - CPU autocast lists reflection/replication padding among its float32 ops: under bf16
      autocast every padded convolution would pad a bf16 activation into a new float32
      tensor, then cast it back to bf16 for the convolution (two full-size copies forward,
      two more backward). Padding copies values, so it is exact in any dtype.
    - Autograd's reflection/replication padding keeps its whole input for the backward pass
      although it needs only its shape; :class:`_LeanPad` keeps the shape only, so the
      activation before a padded convolution is not held twice.

    Holds no parameters: state dicts are unchanged.
    """

    def __init__(self, pad: Pad) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            single = self.single_call(x)
            if single is not None:
                return _LeanPad.apply(x, *single)
            return self.pad(x)

    def single_call(self, x: torch.Tensor) -> tuple[list[int], str] | None:
        """``(F.pad argument, mode)`` when the pad is one reflect/replicate ``F.pad`` call."""
        pad = self.pad
        if x.ndim != pad.dims + 2 or x.ndim not in (4, 5):
            return None
        active = [(a, lo, hi) for a, (lo, hi) in enumerate(pad.pairs) if lo or hi]
        modes = {pad.modes[a] for a, _, _ in active}
        if not active or len(modes) != 1 or next(iter(modes)) not in ("reflect", "replicate"):
            return None
        mode = next(iter(modes))
        if mode == "reflect" and any(max(lo, hi) >= x.shape[2 + a] for a, lo, hi in active):
            return None  # Pad falls back to replicate on that axis
        arg = [0] * (2 * pad.dims)
        for a, lo, hi in active:
            j = pad.dims - 1 - a  # F.pad lists (lo, hi) pairs from the last axis
            arg[2 * j], arg[2 * j + 1] = lo, hi
        return arg, mode


_PAD_BACKWARD = {
    ("reflect", 4): torch.ops.aten.reflection_pad2d_backward,
    ("reflect", 5): torch.ops.aten.reflection_pad3d_backward,
    ("replicate", 4): torch.ops.aten.replication_pad2d_backward,
    ("replicate", 5): torch.ops.aten.replication_pad3d_backward,
}


class _LeanPad(torch.autograd.Function):
    """``F.pad(x, arg, mode)`` (reflect/replicate) that saves the input's shape, not the input.

    The backward calls the same ATen backward kernel as ``F.pad``'s autograd (so gradients
    are bitwise the same) with an uninitialised stand-in of the input's shape and layout.
    It is itself differentiable (the gradient penalty differentiates it again).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, arg: list[int], mode: str) -> torch.Tensor:
        ctx.arg, ctx.mode = arg, mode
        ctx.shape, ctx.dtype, ctx.device = x.shape, x.dtype, x.device
        ctx.channels_last = (
            x.ndim == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
        )
        return torch.nn.functional.pad(x, arg, mode=mode)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        like = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=fmt)
        return _PAD_BACKWARD[(ctx.mode, grad.ndim)](grad, like, ctx.arg), None, None


class _LeakyReluPad(torch.autograd.Function):
    """``F.pad(F.leaky_relu(x, slope), arg, mode)`` that keeps only its (padded) output.

    The LeakyReLU backward needs the sign of its input, which the output has (slope > 0),
    and the padding backward only the input's shape; the convolution after it keeps the
    output anyway. So a residual block holds its input and the two padded activations, not
    also the first convolution's output. The backward runs the same ATen kernels in the same
    order as autograd does for ``leaky_relu`` then ``pad``: bitwise the same gradients; it
    is itself differentiable (the gradient penalty differentiates it again).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float, arg: list[int], mode: str) -> torch.Tensor:
        # pad, then the activation in place on the padded copy: the same values as
        # activation-then-pad (padding copies, the activation is pointwise), one allocation
        out = torch.nn.functional.leaky_relu_(torch.nn.functional.pad(x, arg, mode=mode), slope)
        ctx.slope, ctx.arg, ctx.mode = slope, arg, mode
        ctx.shape = x.shape
        ctx.channels_last = (
            x.ndim == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
        )
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        like = torch.empty(ctx.shape, dtype=grad.dtype, device=grad.device, memory_format=fmt)
        grad_act = _PAD_BACKWARD[(ctx.mode, grad.ndim)](grad, like, ctx.arg)
        # the unpadded activation inside the padded output: F.pad lists axes from the last
        interior = out
        for j in range(len(ctx.arg) // 2):
            axis = out.ndim - 1 - j
            lo, hi = ctx.arg[2 * j], ctx.arg[2 * j + 1]
            interior = interior.narrow(axis, lo, out.shape[axis] - lo - hi)
        grad_x = torch.ops.aten.leaky_relu_backward(grad_act, interior, ctx.slope, True)
        return grad_x, None, None, None


def _act_conv(conv: nn.Module, act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``conv(act(x))``; with a LeakyReLU and a reflect/replicate-padded ``conv``, the
    activation and padding run as one :class:`_LeakyReluPad` (same values and gradients,
    fewer tensors kept for the backward pass)."""
    pad = getattr(conv, "pad", None)
    if (
        isinstance(pad, _PadInInputDtype)
        and isinstance(act, nn.LeakyReLU)
        and act.negative_slope > 0
        and hasattr(conv, "_conv_forward")
    ):
        single = pad.single_call(x)
        if single is not None:
            with torch.autocast(x.device.type, enabled=False):
                padded = _LeakyReluPad.apply(x, float(act.negative_slope), *single)
            return conv._conv_forward(padded, conv.weight, conv.bias)
    return conv(act(x))


class _LeanResidualBlock(ResidualBlock):
    """:class:`~geogan.nn.ResidualBlock` with the same parameters, state dict, outputs and
    gradients, keeping fewer activations for the backward pass (see :func:`_act_conv`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip_conv(self.skip_pool(x))
        h = self.norm1(_act_conv(self.conv1, self.act, x))
        h = self.norm2(_act_conv(self.conv2, self.act, h))
        if h.shape == skip.shape and torch.result_type(h, skip) == h.dtype:
            # in place: no backward needs h (a convolution or batch-norm output), and the sum
            # is the same; saves allocating (and page-faulting in) one activation per block
            return h.add_(skip)
        return h + skip


def _pad_in_input_dtype(model: nn.Module) -> None:
    """Wrap every padding of ``model``'s padded convolutions in :class:`_PadInInputDtype`."""
    padded = [
        m
        for m in model.modules()
        if isinstance(getattr(m, "pad", None), Pad) and not isinstance(m, _PadInInputDtype)
    ]
    for module in padded:
        module.pad = _PadInInputDtype(module.pad)


def sample_latent(
    mean: torch.Tensor,
    logvar: torch.Tensor,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reparameterised VAE sample ``z = mean + exp(logvar / 2) * noise``, all ``[B, L, *n]``."""
    if noise is None:
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * noise


#: ``style`` options of :class:`DownscalingCritic`
CRITIC_STYLES = ("geogan", "dsrnngan")
#: ``conserve_mean`` modes of :class:`DownscalingGenerator`
CONSERVE_MODES = ("none", "additive", "smooth", "softmax")
#: Richardson steps of the ``smooth`` constraint (see ``DownscalingGenerator._conserve``)
SMOOTH_ITERATIONS = 4


@register_model("downscaling_generator")
class DownscalingGenerator(nn.Module):
    """Generator ``(input, constants, noise) -> image [B, C_out, h * factor, w * factor]``.

    Structure: constants -> patchify convs to low resolution (``filters``
    channels); concatenate input, low-res constants and noise; 3 residual
    blocks (6 for ``forceconv-long``); per upsampling factor: upsample, then a
    residual block; concatenate the high-resolution constants; 3 residual
    blocks; 1x1 conv to ``out_channels``; softplus (precipitation) or linear.

    The upsampling stages have ``2 * filters`` channels except the last, which
    has ``filters`` (``dsrnngan``'s choice, ``[128, 64]`` for factors ``[5, 2]``
    in the paper): the early, coarser stages are cheap, and the last stage runs
    at full resolution where width costs the most.

    Args (keyword-only, JSON values):
        in_channels: low-resolution input fields ``C_in``.
        dims: 2 or 3 spatial axes.
        constant_channels: high-resolution constant fields ``K`` (may be 0).
        noise_channels: ``N`` noise channels; 0 gives the deterministic baseline.
        out_channels: generated fields ``C_out``.
        filters: base width.
        arch: ``normal`` (identity skips where channels match), ``forceconv``
            (1x1 conv on every skip) or ``forceconv-long`` (forceconv with 6
            low-resolution blocks).
        upsampling_factors: one factor per upsampling stage; their product is
            the downscaling factor.
        output_activation: ``softplus`` (non-negative) or ``linear``.
        batch_norm: batch norm in the residual blocks.
        padding_mode: padding of the 3x3 convs, or one mode per spatial axis.
        latent_variables: > 0 makes this the VAE-GAN decoder, whose ``noise``
            is the latent sample with ``latent_variables`` channels (replacing
            ``noise_channels``).
        upsampling_mode: ``bilinear`` (trilinear in 3D) or ``nearest``.
        residual_input: add the (bi/tri)linear interpolation of the first
            ``out_channels`` input channels before the output activation, so the
            network learns the detail missing from interpolation (needs the
            target fields first among the inputs, as with ``autocoarsen``).
        conserve_mean: ``additive`` shifts each ``factor``-sized block of the
            output so that its mean equals the coarse input pixel (a hard
            constraint layer, Harder et al. 2023): the network only distributes
            sub-grid detail. Valid when the input is the block mean of the target
            in the same (normalised) space, as with ``autocoarsen`` and linear
            transforms. ``smooth`` keeps the same exact block means with a smooth
            correction (no seams at block edges); ``softmax`` distributes each
            coarse value over its block by a softmax of the network's output
            (non-negative fields; replaces ``output_activation``). ``none`` by default.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        dims: int = 2,
        constant_channels: int = 0,
        noise_channels: int = 4,
        out_channels: int = 1,
        filters: int = 64,
        arch: str = "forceconv",
        upsampling_factors: Sequence[int] = (2, 2),
        output_activation: str = "softplus",
        batch_norm: bool = False,
        padding_mode: PaddingModes = "reflect",
        latent_variables: int = 0,
        upsampling_mode: str = "bilinear",
        residual_input: bool = False,
        conserve_mean: str = "none",
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.in_channels = _check_count(in_channels, "in_channels", 1)
        self.constant_channels = _check_count(constant_channels, "constant_channels", 0)
        self.out_channels = _check_count(out_channels, "out_channels", 1)
        latent_variables = _check_count(latent_variables, "latent_variables", 0)
        noise_channels = _check_count(noise_channels, "noise_channels", 0)
        self.noise_channels = latent_variables if latent_variables > 0 else noise_channels
        filters = _check_count(filters, "filters", 1)
        factors = check_factors(upsampling_factors, "upsampling_factors")
        self.factor = total_factor(factors)
        if residual_input and in_channels < out_channels:
            raise ConfigError(
                f"residual_input needs at least out_channels ({out_channels}) input channels, got {in_channels}"
            )
        self.residual_input = bool(residual_input)
        if conserve_mean not in CONSERVE_MODES:
            raise ConfigError(
                f"conserve_mean must be one of {CONSERVE_MODES}, got {conserve_mean!r}"
            )
        if conserve_mean != "none" and in_channels < out_channels:
            raise ConfigError(
                "conserve_mean needs the target fields among the first input channels"
            )
        self.conserve_mean = conserve_mean
        self._interp_mode = "bilinear" if self.dims == 2 else "trilinear"
        force, n_low = _arch(arch)
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"unknown output_activation {output_activation!r}; choose one of {OUTPUT_ACTIVATIONS}"
            )
        # fail at construction, not at the first batch; circular axes are periodic throughout
        self._periodic = tuple(m == "circular" for m in padding_modes(padding_mode, dims))
        block = functools.partial(
            _LeanResidualBlock,
            dims,
            batch_norm=batch_norm,
            force_1x1_skip=force,
            padding_mode=padding_mode,
            negative_slope=NEGATIVE_SLOPE,
        )
        k = self.constant_channels

        self.constants_down = _patchify_down(dims, k, filters, factors) if k else None
        channels = self.in_channels + (filters if k else 0) + self.noise_channels
        low = []
        for _ in range(n_low):
            low.append(block(channels, filters))
            channels = filters
        self.low_res = nn.Sequential(*low)

        widths = [2 * filters] * (len(factors) - 1) + [filters]
        stages = []
        for f, width in zip(factors, widths):
            stages += [Upsample(dims, f, upsampling_mode, self._periodic), block(channels, width)]
            channels = width
        self.upsampling = nn.Sequential(*stages)

        self.high_res = nn.Sequential(
            block(channels + k, filters), block(filters, filters), block(filters, filters)
        )
        self.output = conv_nd(dims, filters, self.out_channels, kernel_size=1)
        self.activation = nn.Softplus() if output_activation == "softplus" else nn.Identity()
        _pad_in_input_dtype(self)

    def noise_shape(self, input: torch.Tensor) -> tuple[int, ...]:
        """Shape ``(B, N, *input spatial)`` of the noise for ``input [B, C_in, *n]``."""
        return (input.shape[0], self.noise_channels, *input.shape[2:])

    def forward(
        self,
        input: torch.Tensor,
        constants: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        return_block_error: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """``[B, C_in, *n]``, ``[B, K, *(n * factor)] | None``, ``[B, N, *n] | None`` -> ``[B, C_out, *(n * factor)]``.

        When ``noise`` is None (and ``N > 0``) it is drawn from ``generator``
        (or the global RNG); pass it explicitly for reproducible members.
        ``return_block_error``: also return what the ``conserve_mean`` constraint corrects,
        ``coarse - pool(output before the constraint)`` ``[B, C_out, *n]`` (None without an
        additive or smooth constraint), so training can keep it small: the constraint makes
        the output blind to it, and left alone it drifts per member and shows as a lattice
        at the coarse-pixel spacing in the ensemble spread.
        """
        who = type(self).__name__
        check_tensor(input, who=who, name="input", dims=self.dims, channels=self.in_channels)
        batch, low = input.shape[0], tuple(input.shape[2:])
        high = tuple(n * self.factor for n in low)
        constants = _constants_or_none(constants, self.constant_channels, who)
        parts = [input]
        if constants is not None:
            check_tensor(
                constants,
                who=who,
                name="constants",
                dims=self.dims,
                batch=batch,
                channels=self.constant_channels,
                spatial=high,
            )
            parts.append(self.constants_down(constants))
        if self.noise_channels:
            if noise is None:
                noise = torch.randn(
                    self.noise_shape(input),
                    generator=generator,
                    device=input.device,
                    dtype=input.dtype,
                )
            check_tensor(
                noise,
                who=who,
                name="noise",
                dims=self.dims,
                batch=batch,
                channels=self.noise_channels,
                spatial=low,
            )
            parts.append(noise)
        elif noise is not None and noise.shape[1] != 0:
            raise DataError(f"{who}: got noise but the model has noise_channels=0")
        x = self.upsampling(self.low_res(torch.cat(parts, dim=1)))
        if constants is not None:
            # In x's dtype: under bf16 autocast a float32 operand would make cat promote the
            # full-resolution activation to float32 (its convolutions cast it back anyway).
            x = torch.cat([x, constants.to(x.dtype)], dim=1)
        y = self.output(self.high_res(x))
        if self.residual_input:
            base = self._interpolate(input[:, : self.out_channels], self.factor)
            y = y + base.to(y.dtype)
        if self.conserve_mean == "softmax":
            # the block softmax is the output activation: non-negative, zero where the input is
            y = self._conserve(y, input[:, : self.out_channels])
            return (y, None) if return_block_error else y
        y = self.activation(y)
        error = None
        if return_block_error and self.conserve_mean in ("additive", "smooth"):
            pool = nn.functional.avg_pool2d if self.dims == 2 else nn.functional.avg_pool3d
            error = input[:, : self.out_channels].to(y.dtype) - pool(y, self.factor)
        if self.conserve_mean != "none":
            y = self._conserve(y, input[:, : self.out_channels])
        return (y, error) if return_block_error else y

    def _interpolate(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        """Interpolation by ``factor`` on every axis, wrapping around periodic ones."""
        if not any(self._periodic):  # bitwise as before for non-periodic models
            return nn.functional.interpolate(
                x, scale_factor=factor, mode=self._interp_mode, align_corners=False
            )
        return interpolate(x, (factor,) * self.dims, self._interp_mode, self._periodic)

    def _conserve(self, y: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Shift ``y [B, C, *(n*f)]`` so that each ``f``-block mean equals ``coarse [B, C, *n]``.

        ``additive``: each block is shifted by a constant (its mean error), which
        leaves a seam at block edges wherever neighbouring errors differ.
        ``smooth``: the same exact block means, with a correction that is the
        (bi/tri)linear interpolation of coarse offsets ``a`` plus a constant
        residual per block. ``a`` solves ``pool(interp(a)) = error`` by
        :data:`SMOOTH_ITERATIONS` Richardson steps (the operator's eigenvalues lie
        in [0.25, 1] in 2D, so each step shrinks the residual by at least 4x for
        smooth errors); the block-constant remainder, and with it the seams, is
        what the iterations leave.
        ``softmax`` (non-negative fields such as rain, Harder et al. 2023): each
        block of ``y`` is a set of logits; the output is the coarse value times
        the block softmax times the block size, so it is non-negative, exactly
        zero in blocks whose input is zero (no drizzle), and its block means are
        exact. Negative coarse values are treated as zero.
        """
        f = self.factor
        pool = nn.functional.avg_pool2d if self.dims == 2 else nn.functional.avg_pool3d

        def blocks(x: torch.Tensor) -> torch.Tensor:
            for axis in range(2, x.ndim):
                x = x.repeat_interleave(f, dim=axis)
            return x

        if self.conserve_mean == "softmax":
            # per-block maximum subtracted: exp never overflows, every block sum is >= 1
            peak = (nn.functional.max_pool2d if self.dims == 2 else nn.functional.max_pool3d)(
                y.detach(), f
            )
            weights = torch.exp(y - blocks(peak))
            share = weights / blocks(pool(weights, f))
            return share * blocks(coarse.to(y.dtype).clamp_min(0))

        error = coarse.to(y.dtype) - pool(y, f)
        if self.conserve_mean == "additive":
            return y + blocks(error)

        def interp(x: torch.Tensor) -> torch.Tensor:
            return self._interpolate(x, f)

        offsets = error
        for _ in range(SMOOTH_ITERATIONS):
            offsets = offsets + (error - pool(interp(offsets), f))
        smooth = interp(offsets)
        return y + smooth + blocks(error - pool(smooth, f))


@register_model("downscaling_critic")
class DownscalingCritic(nn.Module):
    """Critic ``(input, constants, image) -> score [B, 1]`` (raw, no sigmoid).

    Two streams: a low-resolution one (input + constants average-pooled to low
    resolution) and a high-resolution one (image + constants). For each
    downsampling factor, the low stream passes a residual block and the high
    stream a patchify conv (kernel = stride = factor) then a residual block.
    The streams are concatenated, pass three residual blocks, a global average
    pool and two dense layers (``filters -> filters -> 1``). Stage widths are
    ``filters`` except the last, ``2 * filters`` (as ``dsrnngan``).

    No batch norm by default: the WGAN-GP penalty assumes each sample's score
    depends on that sample only.

    Args (keyword-only, JSON values): ``in_channels`` (``C_in``), ``dims``,
    ``constant_channels`` (``K``), ``out_channels`` (``C_out`` of the image),
    ``filters``, ``downsampling_factors`` (product = downscaling factor),
    ``arch``, ``batch_norm``, ``padding_mode`` as for
    :class:`DownscalingGenerator`; ``style``: ``"geogan"`` (the structure above) or
    ``"dsrnngan"``, the critic exactly as ``dsrnngan`` (Harris et al. 2022) builds it: the
    constants go to low resolution by patchify convolutions (``filters`` wide, ReLU) instead
    of average pooling, the high-resolution patchify convolutions end with a ReLU, the
    streams meet in two residual blocks, and the dense layers are ``filters -> 64 -> 1``
    with a ReLU (used by the equal-work speed benchmark against that code).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        dims: int = 2,
        constant_channels: int = 0,
        out_channels: int = 1,
        filters: int = 128,
        downsampling_factors: Sequence[int] = (2, 2),
        arch: str = "forceconv",
        batch_norm: bool = False,
        padding_mode: PaddingModes = "reflect",
        style: str = "geogan",
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.in_channels = _check_count(in_channels, "in_channels", 1)
        self.constant_channels = _check_count(constant_channels, "constant_channels", 0)
        self.out_channels = _check_count(out_channels, "out_channels", 1)
        filters = _check_count(filters, "filters", 1)
        if style not in CRITIC_STYLES:
            raise ConfigError(
                f"unknown critic style {style!r}; choose one of {', '.join(CRITIC_STYLES)}"
            )
        self.style = style
        reference = style == "dsrnngan"
        factors = check_factors(downsampling_factors, "downsampling_factors")
        self.factor = total_factor(factors)
        force, _ = _arch(arch)
        padding_modes(padding_mode, dims)
        block = functools.partial(
            _LeanResidualBlock,
            dims,
            batch_norm=batch_norm,
            force_1x1_skip=force,
            padding_mode=padding_mode,
            negative_slope=NEGATIVE_SLOPE,
        )
        k = self.constant_channels
        if reference:
            self.constants_down = (
                _patchify_down(dims, k, filters, factors, relu=True) if k else None
            )
        else:
            self.constants_pool = Downsample(dims, self.factor) if k else None

        widths = [filters] * (len(factors) - 1) + [2 * filters]
        low_ch = self.in_channels + (filters if reference and k else k)
        high_ch = self.out_channels + k
        self.low_blocks = nn.ModuleList()
        self.high_down = nn.ModuleList()
        self.high_blocks = nn.ModuleList()
        for f, width in zip(factors, widths):
            self.low_blocks.append(block(low_ch, width))
            self.high_down.append(_patchify_down(dims, high_ch, width, [f], relu=reference))
            self.high_blocks.append(block(width, width))
            low_ch = high_ch = width
        joint = [block(low_ch + high_ch, filters)]
        joint += [block(filters, filters) for _ in range(1 if reference else 2)]
        self.joint = nn.Sequential(*joint)
        if reference:
            self.dense = nn.Sequential(nn.Linear(filters, 64), nn.ReLU(), nn.Linear(64, 1))
        else:
            self.dense = nn.Sequential(
                nn.Linear(filters, filters), nn.LeakyReLU(NEGATIVE_SLOPE), nn.Linear(filters, 1)
            )
        _pad_in_input_dtype(self)

    def forward(
        self, input: torch.Tensor, constants: torch.Tensor | None, image: torch.Tensor
    ) -> torch.Tensor:
        """``[B, C_in, *n]``, ``[B, K, *(n * factor)] | None``, ``[B, C_out, *(n * factor)]`` -> ``[B, 1]``."""
        return self.score(self.low_features(input, constants), constants, image)

    def low_features(self, input: torch.Tensor, constants: torch.Tensor | None) -> torch.Tensor:
        """The low-resolution stream alone: ``[B, C_in, *n]``, ``[B, K, *(n * factor)] | None``
        -> ``[B, C_low, *n]``.

        It does not depend on the image, so a training step scoring several images of the
        same condition (real, generated, interpolated for the gradient penalty) computes it
        once and passes it to :meth:`score`.
        """
        who = type(self).__name__
        check_tensor(input, who=who, name="input", dims=self.dims, channels=self.in_channels)
        batch, low = input.shape[0], tuple(input.shape[2:])
        high = tuple(n * self.factor for n in low)
        constants = _constants_or_none(constants, self.constant_channels, who)
        lo = input
        if constants is not None:
            check_tensor(
                constants,
                who=who,
                name="constants",
                dims=self.dims,
                batch=batch,
                channels=self.constant_channels,
                spatial=high,
            )
            down = self.constants_down if self.style == "dsrnngan" else self.constants_pool
            lo = torch.cat([input, down(constants)], dim=1)
        for low_block in self.low_blocks:
            lo = low_block(lo)
        return lo

    def score(
        self, low: torch.Tensor, constants: torch.Tensor | None, image: torch.Tensor
    ) -> torch.Tensor:
        """Scores ``[B, 1]`` from ``low = low_features(input, constants)`` ``[B, C_low, *n]``,
        ``constants [B, K, *(n * factor)] | None`` and ``image [B, C_out, *(n * factor)]``."""
        who = type(self).__name__
        batch = low.shape[0]
        high = tuple(n * self.factor for n in low.shape[2:])
        check_tensor(
            image,
            who=who,
            name="image",
            dims=self.dims,
            batch=batch,
            channels=self.out_channels,
            spatial=high,
        )
        constants = _constants_or_none(constants, self.constant_channels, who)
        hi = image
        if constants is not None:
            check_tensor(
                constants,
                who=who,
                name="constants",
                dims=self.dims,
                batch=batch,
                channels=self.constant_channels,
                spatial=high,
            )
            hi = torch.cat([image, constants], dim=1)
        for down, high_block in zip(self.high_down, self.high_blocks):
            hi = high_block(down(hi))
        x = self.joint(torch.cat([low, hi], dim=1))
        return self.dense(_spatial_mean(x))


@register_model("downscaling_encoder")
class DownscalingEncoder(nn.Module):
    """VAE-GAN encoder ``(input, constants) -> (mean, logvar)``, each ``[B, L, *n]``.

    Constants go to low resolution by patchify convs, are concatenated with the
    input, pass three residual blocks, and two 1x1 convs give the mean and
    log-variance of ``L = latent_variables`` latent maps at the input's
    resolution. Sample with :func:`sample_latent` and decode with a
    :class:`DownscalingGenerator` built with the same ``latent_variables``.

    Args (keyword-only, JSON values): ``in_channels``, ``dims``,
    ``constant_channels``, ``latent_variables``, ``filters``,
    ``downsampling_factors`` (product = downscaling factor), ``padding_mode``,
    ``arch``, ``batch_norm`` as for :class:`DownscalingGenerator`.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        dims: int = 2,
        constant_channels: int = 0,
        latent_variables: int = 1,
        filters: int = 64,
        downsampling_factors: Sequence[int] = (2, 2),
        padding_mode: PaddingModes = "reflect",
        arch: str = "forceconv",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.dims = check_dims(dims)
        self.in_channels = _check_count(in_channels, "in_channels", 1)
        self.constant_channels = _check_count(constant_channels, "constant_channels", 0)
        self.latent_variables = _check_count(latent_variables, "latent_variables", 1)
        filters = _check_count(filters, "filters", 1)
        factors = check_factors(downsampling_factors, "downsampling_factors")
        self.factor = total_factor(factors)
        force, _ = _arch(arch)
        padding_modes(padding_mode, dims)
        block = functools.partial(
            _LeanResidualBlock,
            dims,
            batch_norm=batch_norm,
            force_1x1_skip=force,
            padding_mode=padding_mode,
            negative_slope=NEGATIVE_SLOPE,
        )
        k = self.constant_channels
        self.constants_down = _patchify_down(dims, k, filters, factors) if k else None
        channels = self.in_channels + (filters if k else 0)
        self.blocks = nn.Sequential(
            block(channels, filters), block(filters, filters), block(filters, filters)
        )
        self.mean = conv_nd(dims, filters, self.latent_variables, kernel_size=1)
        self.logvar = conv_nd(dims, filters, self.latent_variables, kernel_size=1)
        _pad_in_input_dtype(self)

    def forward(
        self, input: torch.Tensor, constants: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, C_in, *n]``, ``[B, K, *(n * factor)] | None`` -> ``(mean, logvar)``, each ``[B, L, *n]``."""
        who = type(self).__name__
        check_tensor(input, who=who, name="input", dims=self.dims, channels=self.in_channels)
        high = tuple(n * self.factor for n in input.shape[2:])
        constants = _constants_or_none(constants, self.constant_channels, who)
        x = input
        if constants is not None:
            check_tensor(
                constants,
                who=who,
                name="constants",
                dims=self.dims,
                batch=input.shape[0],
                channels=self.constant_channels,
                spatial=high,
            )
            x = torch.cat([input, self.constants_down(constants)], dim=1)
        x = self.blocks(x)
        return self.mean(x), self.logvar(x)
