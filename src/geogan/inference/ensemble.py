"""Reproducible ensembles from a conditional generator, optionally tiled.

The caller supplies the model call, ``forward(batch) -> [B, C_out, *S]``, and
says how each input is cut into tiles: low-resolution keys (the coarse input
grid ``s``, cut like the input), high-resolution keys (the output grid
``S = factor * s``, cut on it) and shared keys (passed whole to every tile).

Member ``m`` of an ensemble generated with base seed ``seed`` draws its random
inputs from ``derive_seed(seed, member_offset + m)`` over the WHOLE domain
(Gaussian noise on the CPU, then moved to the device), so a member is the same
whatever the number of members, the batch size, the tiling or the device used
for the draw; and overlapping tiles see the same noise (see
:mod:`geogan.inference.tiling`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from geogan.core.errors import ConfigError, DataError
from geogan.core.seeding import derive_seed, torch_generator
from geogan.inference.tiling import (
    Sink,
    TileSpec,
    generate_tiled_many,
    generate_tiled_streaming,
)

__all__ = [
    "PRECISIONS",
    "autocast_context",
    "generate_ensemble",
    "gaussian_noise",
    "member_noise",
    "member_seed",
]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: ``forward(batch) -> [B, C_out, *S]``: the model call on a batch of tiles (or members).
Forward = Callable[[dict[str, Tensor]], Tensor]
#: The three-argument call ``generator(input, constants | None, noise | None)``
#: that ``generate_ensemble`` makes when no keys are given.
Generator = Callable[[Tensor, Tensor | None, Tensor | None], Tensor]
#: ``noise_fn(member_seed, field) -> {key: tensor}``: a member's random inputs.
NoiseFn = Callable[[int, Mapping[str, Tensor]], Mapping[str, Tensor]]


def member_seed(seed: int, member: int) -> int:
    """The seed of ensemble member ``member`` (absolute index, offset included)."""
    return derive_seed(seed, member)


def member_noise(seed: int, member: int, shape: Sequence[int]) -> Tensor:
    """Standard normal noise of ``shape`` (e.g. ``[N, h, w]``) for one member, float32 on CPU.

    Drawn on the CPU so that it is bit-identical on every machine and device.
    """
    return torch.randn(tuple(shape), generator=torch_generator(member_seed(seed, member)))


def gaussian_noise(seed: int, shapes: Mapping[str, Sequence[int]]) -> dict[str, Tensor]:
    """Standard normal tensors ``{key: [*shape]}`` (float32, CPU) from one seed.

    Drawn in the order of ``shapes`` from one generator seeded with ``seed`` (a
    member seed), so a single key equals :func:`member_noise` for that member.
    """
    g = torch_generator(seed)
    return {key: torch.randn(tuple(shape), generator=g) for key, shape in shapes.items()}


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``precision`` ("fp32" | "bf16" | "fp16") on ``device``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def generate_ensemble(
    forward: Forward | Generator | nn.Module,
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
    lowres_keys: Sequence[str] | None = None,
    highres_keys: Sequence[str] = (),
    shared_keys: Sequence[str] = (),
    noise: Mapping[str, Sequence[int]] | None = None,
    noise_fn: NoiseFn | Callable[[int, Mapping[str, Tensor]], Tensor] | None = None,
    out_device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    sink: Sink | None = None,
) -> Tensor | None:
    """Generate ``n_members`` members for one field: returns ``[M, C_out, *S]`` float32.

    ``forward(batch) -> [B, C_out, *S_tile]`` is the model call (put the model in
    eval mode and on ``device`` first); ``batch`` holds, with a batch dimension
    ``B`` (tiles or members), the keys

    * ``lowres_keys`` (at least one): ``[C, *s]`` tensors on the coarse input
      grid ``s``, cut into tiles like the input;
    * ``highres_keys``: ``[K, *S]`` on the output grid ``S = spec.factor * s``
      (``K`` may be 0), cut on it (with ``factor == 1`` both grids are the same);
    * ``shared_keys``: any shape, passed whole to every tile (e.g. a global latent).

    Each key comes from ``field`` (moved to ``device``; floating tensors as
    float32; other ``field`` keys are not passed) or from the member's random
    inputs, drawn over the whole domain from ``member_seed(seed, member_offset + m)``:
    ``noise={key: shape}`` draws standard normal tensors (:func:`gaussian_noise`,
    on the CPU), or ``noise_fn(member_seed, field_on_device) -> {key: tensor}``
    computes them (e.g. a VAE: encode the field, then ``mean + exp(logvar / 2) * eps``);
    it runs without gradients. A random key not named in any list is placed by its
    shape: ``[C, *s]`` low-res, ``[C, *S]`` high-res, anything of another rank shared.

    ``spec`` tiles the domain (periodic axes as in ``spec.periodic``); ``None``
    runs the whole domain at once. Batches hold ``batch_size`` tiles (or
    members), mixing members. ``precision`` selects autocast ("fp32" | "bf16" |
    "fp16"); outputs are blended in float32 on ``out_device``. ``postprocess``
    is applied to the blended result (e.g. inverse normalisation; after
    blending, because it is usually nonlinear).

    ``sink((start, stop), block)``: stream instead of returning (see
    :func:`~geogan.inference.tiling.generate_tiled_streaming`): blocks
    ``[M, C_out, stop - start, *S[1:]]`` of high-res rows of the first spatial
    axis are handed over as soon as they are final (``postprocess`` applied to
    each block, so it must act pixel by pixel), and ``None`` is returned.

    Without ``lowres_keys`` the call is ``forward(input, constants | None,
    noise | None)`` on ``field = {"input": [C, *s], "constants": [K, *S]}``
    (``constants`` optional, ``None`` when absent or ``K == 0``), with noise of
    shape ``noise_shape_fn(s)`` (default ``(noise_channels, *s)``; ``None`` when
    0 channels) or ``noise_fn(member_seed, field) -> [N, *s]`` (a tensor).
    """
    if n_members < 1:
        raise ConfigError(f"n_members must be >= 1, got {n_members}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    amp = autocast_context(device, precision)  # validates precision early
    if lowres_keys is None:
        if noise is not None or highres_keys or shared_keys:
            raise ConfigError(
                "noise=, highres_keys= and shared_keys= need lowres_keys= (the keys cut like the input)"
            )
        forward, field, lowres_keys, highres_keys, noise, noise_fn = _three_argument_call(
            forward, field, noise_channels, noise_shape_fn, noise_fn, device, spec
        )
    elif noise_channels or noise_shape_fn is not None:
        raise ConfigError(
            "noise_channels/noise_shape_fn are for the three-argument generator call; "
            "with lowres_keys= give noise={key: shape} instead"
        )
    if noise is not None and noise_fn is not None:
        raise ConfigError("give noise={key: shape} or noise_fn, not both")
    lowres, highres, shared = list(lowres_keys), list(highres_keys), list(shared_keys)
    listed = lowres + highres + shared
    if not lowres:
        raise ConfigError("generate_ensemble needs at least one low-resolution key (lowres_keys)")
    if len(set(listed)) != len(listed):
        raise ConfigError(f"a key is listed twice in lowres/highres/shared keys: {listed}")

    on_device = {k: _to_device(v, device) for k, v in field.items()}
    members = range(member_offset, member_offset + n_members)
    with torch.no_grad():
        items: list[dict[str, Tensor]] = []
        for m in members:
            random = _member_inputs(seed, m, noise, noise_fn, on_device, device)
            clash = sorted(set(random) & set(field))
            if clash:
                raise ConfigError(f"random inputs {clash} have the names of field keys")
            item = {**on_device, **random}
            missing = [k for k in listed if k not in item]
            if missing:
                raise DataError(
                    f"generation needs {missing} but the field has {sorted(field)} and the "
                    f"random inputs {sorted(random)}"
                )
            items.append({k: item[k] for k in listed} | {k: random[k] for k in random})
        unlisted = [k for k in items[0] if k not in listed]
        if spec is None:
            shared += unlisted
        else:
            _place_random(items[0], lowres, highres, shared, unlisted, spec)

        def fn(batch: dict[str, Tensor]) -> Tensor:
            with amp:
                out = forward(batch)
            return out.float()

        keys = (lowres, highres)
        if sink is not None:
            post_sink = sink if postprocess is None else _post_sink(sink, postprocess)
            if spec is None:
                out = _whole_domain(
                    fn, items, lowres + highres + shared, batch_size, out_device, progress
                )
                post_sink((0, out.shape[2]), out)
            else:
                generate_tiled_streaming(
                    fn,
                    items,
                    *keys,
                    spec,
                    batch_size,
                    sink=post_sink,
                    shared_keys=shared,
                    out_device=out_device,
                    progress=progress,
                )
            return None
        if spec is None:  # whole domain at once, members batched
            out = _whole_domain(
                fn, items, lowres + highres + shared, batch_size, out_device, progress
            )
        else:
            out = generate_tiled_many(
                fn,
                items,
                *keys,
                spec,
                batch_size,
                shared_keys=shared,
                out_device=out_device,
                progress=progress,
            )
    if postprocess is not None:
        out = postprocess(out)
    return out


def _to_device(t: Tensor, device: torch.device) -> Tensor:
    dtype = torch.float32 if t.is_floating_point() else t.dtype
    return t.to(device=device, dtype=dtype)


def _member_inputs(
    seed: int,
    member: int,
    noise: Mapping[str, Sequence[int]] | None,
    noise_fn: NoiseFn | None,
    field: Mapping[str, Tensor],
    device: torch.device,
) -> dict[str, Tensor]:
    """One member's random inputs ``{key: tensor}`` on ``device`` (float32)."""
    s = member_seed(seed, member)
    if noise_fn is not None:
        drawn = noise_fn(s, field)
        if not isinstance(drawn, Mapping):
            raise ConfigError(
                f"noise_fn must return a dict of tensors {{key: tensor}}, got {type(drawn).__name__}"
            )
    elif noise:
        drawn = gaussian_noise(s, noise)
    else:
        return {}
    return {k: v.to(device=device, dtype=torch.float32) for k, v in drawn.items()}


def _place_random(
    item: Mapping[str, Tensor],
    lowres: list[str],
    highres: list[str],
    shared: list[str],
    unlisted: Sequence[str],
    spec: TileSpec,
) -> None:
    """Put random keys not named by the caller into ``lowres``/``highres``/``shared`` by shape."""
    grid = tuple(item[lowres[0]].shape[1:])
    fine = tuple(spec.factor * s for s in grid)
    for key in unlisted:
        t = item[key]
        if t.dim() != len(grid) + 1:
            shared.append(key)
        elif tuple(t.shape[1:]) == grid:
            lowres.append(key)
        elif tuple(t.shape[1:]) == fine:
            highres.append(key)
        else:
            raise DataError(
                f"tiled generation needs noise {key!r} on the low-res grid [N, {grid}], the "
                f"high-res grid [N, {fine}] or of another rank (shared); got {tuple(t.shape)}"
            )


def _three_argument_call(
    generator: Generator,
    field: Mapping[str, Tensor],
    noise_channels: int,
    noise_shape_fn: Callable[[tuple[int, ...]], Sequence[int]] | None,
    noise_fn: Callable[[int, Mapping[str, Tensor]], Tensor] | None,
    device: torch.device,
    spec: TileSpec | None,
):
    """The ``generator(input, constants, noise)`` call expressed with keys.

    Returns ``(forward, field, lowres_keys, highres_keys, noise, noise_fn)`` for the
    keyed path: ``input`` low-res, ``constants`` high-res (left out when absent or
    empty), ``noise`` placed by its shape.
    """
    if "input" not in field:
        raise DataError(f"field needs an 'input' tensor [C, *s]; got keys {sorted(field)}")
    x = field["input"]
    spatial = tuple(x.shape[1:])
    consts = field.get("constants")
    if consts is not None and consts.dim() != x.dim():
        raise DataError(f"constants must be [K, *S], got shape {tuple(consts.shape)}")
    use_consts = consts is not None and consts.shape[0] > 0
    noise_shape = (
        tuple(noise_shape_fn(spatial)) if noise_shape_fn is not None else (noise_channels, *spatial)
    )
    use_noise = noise_fn is not None or noise_shape[0] > 0
    passed = {"input": x} | ({"constants": consts} if consts is not None else {})

    def forward(batch: dict[str, Tensor]) -> Tensor:
        return generator(
            batch["input"],
            batch["constants"] if use_consts else None,
            batch["noise"] if use_noise else None,
        )

    keyed_fn = None
    if noise_fn is not None:
        tensor_fn = noise_fn

        def keyed_fn(s: int, f: Mapping[str, Tensor]) -> dict[str, Tensor]:
            return {"noise": tensor_fn(s, f)}

    noise = {"noise": noise_shape} if use_noise and noise_fn is None else None
    return forward, passed, ["input"], ["constants"] if use_consts else [], noise, keyed_fn


def _post_sink(sink: Sink, postprocess: Callable[[Tensor], Tensor]) -> Sink:
    def apply(rows: tuple[int, int], block: Tensor) -> None:
        sink(rows, postprocess(block))

    return apply


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
