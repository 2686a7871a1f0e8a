"""Reproducible ensembles from a conditional generator, optionally tiled.

Member ``m`` of an ensemble generated with base seed ``seed`` draws its noise
from ``derive_seed(seed, member_offset + m)`` over the WHOLE low-resolution
domain (on the CPU, then moved to the device), so a member is the same
whatever the number of members, the batch size, the tiling or the device
used for the noise draw; and overlapping tiles see the same noise (see
:mod:`geogan.inference.tiling`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from geogan.core.errors import ConfigError, DataError
from geogan.core.seeding import derive_seed, torch_generator
from geogan.inference.tiling import TileSpec, generate_tiled_many

__all__ = ["PRECISIONS", "autocast_context", "generate_ensemble", "member_noise", "member_seed"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

Generator = Callable[[Tensor, Tensor | None, Tensor | None], Tensor]


def member_seed(seed: int, member: int) -> int:
    """The seed of ensemble member ``member`` (absolute index, offset included)."""
    return derive_seed(seed, member)


def member_noise(seed: int, member: int, shape: Sequence[int]) -> Tensor:
    """Standard normal noise of ``shape`` (e.g. ``[N, h, w]``) for one member, float32 on CPU.

    Drawn on the CPU so that it is bit-identical on every machine and device.
    """
    return torch.randn(tuple(shape), generator=torch_generator(member_seed(seed, member)))


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``precision`` ("fp32" | "bf16" | "fp16") on ``device``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def generate_ensemble(
    generator: Generator | nn.Module,
    field: Mapping[str, Tensor],
    n_members: int,
    seed: int,
    spec: TileSpec | None = None,
    noise_channels: int = 0,
    noise_shape_fn: Callable[[tuple[int, ...]], Sequence[int]] | None = None,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    member_offset: int = 0,
    postprocess: Callable[[Tensor], Tensor] | None = None,
    *,
    noise_fn: Callable[[int, Mapping[str, Tensor]], Tensor] | None = None,
    out_device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Generate ``n_members`` members for one field: returns ``[M, C_out, *S]`` float32.

    ``generator(input [B, C, *s], constants [B, K, *S] or None, noise [B, N, *s] or None)
    -> [B, C_out, *S]`` with ``S = factor * s``; put it in eval mode and on
    ``device`` first. ``field`` is ``{"input": [C, *s], "constants": [K, *S]}``
    (``constants`` optional; K == 0 passes ``None``).

    Noise: member ``m`` uses seed ``derive_seed(seed, member_offset + m)``.
    By default it is standard normal of shape ``noise_shape_fn(s)`` (default
    ``(noise_channels, *s)``; no noise and ``None`` passed when 0 channels).
    ``noise_fn(member_seed, field) -> [N, *s]`` replaces the Gaussian, e.g. for
    a VAE-GAN: encode the field, then ``mean + exp(logvar / 2) * eps`` with
    ``eps`` from ``member_noise``. It is called without gradients on the
    field moved to ``device``.

    ``spec`` tiles the domain (noise must then be on the low-res grid ``[N, *s]``
    or a vector ``[N]`` passed whole to every tile); ``None`` runs the whole
    domain at once. Batches hold ``batch_size`` tiles (or members), mixing
    members. ``precision`` selects autocast ("fp32" | "bf16" | "fp16");
    outputs are blended in float32 on ``out_device``. ``postprocess`` is applied
    to the blended ``[M, C_out, *S]`` result (e.g. inverse normalisation;
    after blending, because it is usually nonlinear).
    """
    if n_members < 1:
        raise ConfigError(f"n_members must be >= 1, got {n_members}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if "input" not in field:
        raise DataError(f"field needs an 'input' tensor [C, *s]; got keys {sorted(field)}")
    device = torch.device(device)
    amp = autocast_context(device, precision)  # validates precision early
    x = field["input"].to(device=device, dtype=torch.float32)
    spatial = tuple(x.shape[1:])
    consts = field.get("constants")
    if consts is not None:
        consts = consts.to(device=device, dtype=torch.float32)
        if consts.dim() != x.dim():
            raise DataError(f"constants must be [K, *S], got shape {tuple(consts.shape)}")
    use_consts = consts is not None and consts.shape[0] > 0
    on_device_field = {"input": x} | ({"constants": consts} if consts is not None else {})

    noise_shape = (
        tuple(noise_shape_fn(spatial)) if noise_shape_fn is not None else (noise_channels, *spatial)
    )
    use_noise = noise_fn is not None or noise_shape[0] > 0

    def fn(batch: dict[str, Tensor]) -> Tensor:
        with amp:
            out = generator(
                batch["input"],
                batch["constants"] if use_consts else None,
                batch["noise"] if use_noise else None,
            )
        return out.float()

    members = range(member_offset, member_offset + n_members)
    with torch.no_grad():
        items: list[dict[str, Tensor]] = []
        for m in members:
            item = {"input": x}
            if use_consts:
                item["constants"] = consts
            if use_noise:
                if noise_fn is not None:
                    noise = noise_fn(member_seed(seed, m), on_device_field)
                else:
                    noise = member_noise(seed, m, noise_shape)
                item["noise"] = noise.to(device=device, dtype=torch.float32)
            items.append(item)

        lowres, highres, shared = ["input"], [], []
        if use_consts:
            highres.append("constants")
        if use_noise:
            noise = items[0]["noise"]
            if spec is None:
                shared.append("noise")
            elif tuple(noise.shape[1:]) == spatial:
                lowres.append("noise")
            elif noise.dim() == 1:
                shared.append("noise")
            else:
                raise DataError(
                    f"tiled generation needs noise on the low-res grid [N, {spatial}] or a "
                    f"vector [N]; got {tuple(noise.shape)}"
                )
        if spec is None:  # whole domain at once, members batched
            out = _whole_domain(
                fn, items, lowres + highres + shared, batch_size, out_device, progress
            )
        else:
            out = generate_tiled_many(
                fn,
                items,
                lowres,
                highres,
                spec,
                batch_size,
                shared_keys=shared,
                out_device=out_device,
                progress=progress,
            )
    if postprocess is not None:
        out = postprocess(out)
    return out


def _whole_domain(
    fn: Callable[[dict[str, Tensor]], Tensor],
    items: Sequence[Mapping[str, Tensor]],
    keys: Sequence[str],
    batch_size: int,
    out_device: str | torch.device,
    progress: Callable[[int, int], None] | None,
) -> Tensor:
    """Untiled generation: members in batches of ``batch_size``; returns ``[M, C_out, *S]``."""
    outs = []
    for b0 in range(0, len(items), batch_size):
        chunk = items[b0 : b0 + batch_size]
        batch = {k: torch.stack([it[k] for it in chunk]) for k in keys}
        outs.append(fn(batch).to(out_device))
        if progress is not None:
            progress(b0 + len(chunk), len(items))
    return torch.cat(outs)
