"""Tiled application of a conditional generator over domains larger than its patch.

A generator trained on patches of ``patch`` low-resolution pixels is applied to
a whole domain tile by tile. Tiles overlap; their outputs are blended with
weights that are 1 inside a tile and fall smoothly to a small positive value
over the overlap, and the result is ``sum(w * tile) / sum(w)``.

Dimension-generic: spatial shapes are tuples of length ``spec.ndim`` (2 for
``[C, H, W]`` fields, 3 for ``[C, D, H, W]`` volumes). Low-resolution tensors
are ``[C, *s]``; high-resolution tensors are ``[K, *S]`` with ``S = factor * s``.

Seamlessness
------------
Tiling is exact (tiled output == untiled output everywhere) when

* every random input is drawn ONCE over the whole domain and cut into tiles
  like the other inputs (``generate_ensemble`` does this for the noise), so
  overlapping tiles see the same values; and
* the generator is local: an output pixel depends only on inputs within a
  radius ``r`` high-resolution pixels (its receptive half-width) with
  ``r <= spec.margin_lowres * factor``; and
* the model's internal strides are aligned with the low-resolution grid
  (true for strides that divide ``factor`` at high resolution, or any stride
  at low resolution when tile starts are multiples of it -- tile starts are
  arbitrary low-resolution indices, so models that downsample the low-resolution
  input should use a patch, overlap and domain that are multiples of that stride).

The ``margin`` is a band at each tile edge that faces a neighbouring tile whose
output is discarded (weight 0) because the model saw padding there instead of
the real neighbourhood. The remaining ``overlap - 2 * margin`` pixels of the
overlap are blended with a raised-cosine ramp; those weights sum to exactly 1
for a regular overlap. Tile edges on the border of the domain keep weight 1:
the model sees the same padding there as it would on the untiled domain, so
borders are exact too. For non-local models (large receptive fields), the ramp
hides the seams. :func:`blend_weights` is the plain window (ramp over the
whole overlap, never 0), used when ``margin == 0``.

Domains smaller than a patch along an axis get a single tile covering the
whole axis, so the model is then called on a smaller input than it was trained
on; it must accept any size that is a multiple of its strides.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from geogan.core.errors import ConfigError, DataError

__all__ = [
    "TileSpec",
    "blend_weights",
    "generate_tiled",
    "generate_tiled_many",
    "tile_starts",
    "tile_weights",
]


def _as_tuple(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (int(value),) * ndim
    out = tuple(int(v) for v in value)
    if len(out) != ndim:
        raise ConfigError(f"{name} has {len(out)} entries but the patch has {ndim} dimensions")
    return out


@dataclass(frozen=True)
class TileSpec:
    """How to cut a domain into tiles, in low-resolution pixels.

    ``patch_lowres``: tile size per spatial axis, e.g. ``(16, 16)`` or ``(8, 8, 8)``.
    ``overlap_lowres``: overlap between neighbouring tiles per axis (an int is
    broadcast); ``0 <= overlap < patch``.
    ``factor``: high-resolution pixels per low-resolution pixel (output grid =
    ``factor`` x input grid).
    ``margin_lowres``: band at tile edges facing a neighbour that is discarded
    (see module docs); default ``overlap // 4``; ``0 <= 2 * margin <= overlap``.
    """

    patch_lowres: tuple[int, ...]
    overlap_lowres: tuple[int, ...]
    factor: int
    margin_lowres: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        patch = (
            (int(self.patch_lowres),)
            if isinstance(self.patch_lowres, int)
            else tuple(int(p) for p in self.patch_lowres)
        )
        ndim = len(patch)
        if ndim == 0:
            raise ConfigError("TileSpec.patch_lowres must have at least one dimension")
        overlap = _as_tuple(self.overlap_lowres, ndim, "overlap_lowres")
        if self.margin_lowres is None:
            margin = tuple(o // 4 for o in overlap)
        else:
            margin = _as_tuple(self.margin_lowres, ndim, "margin_lowres")
        if int(self.factor) != self.factor or self.factor < 1:
            raise ConfigError(f"tiling factor must be a positive integer, got {self.factor}")
        for p, o, m in zip(patch, overlap, margin):
            if p < 1:
                raise ConfigError(f"tile patch sizes must be positive, got {patch}")
            if not 0 <= o < p:
                raise ConfigError(
                    f"tile overlap {overlap} must be >= 0 and smaller than the patch {patch}"
                )
            if not 0 <= 2 * m <= o:
                raise ConfigError(
                    f"tile margin {margin} must be >= 0 and at most half the overlap {overlap}"
                )
        object.__setattr__(self, "patch_lowres", patch)
        object.__setattr__(self, "overlap_lowres", overlap)
        object.__setattr__(self, "margin_lowres", margin)
        object.__setattr__(self, "factor", int(self.factor))

    @classmethod
    def from_highres(
        cls,
        patch_highres: int | Sequence[int],
        overlap_highres: int | Sequence[int],
        factor: int,
        ndim: int = 2,
    ) -> TileSpec:
        """Build from high-resolution sizes (as in a config's ``patch_size``/``overlap``).

        The patch must be a multiple of ``factor``; the overlap is rounded up to one.
        """
        patch = _as_tuple(patch_highres, ndim, "patch")
        overlap = _as_tuple(overlap_highres, ndim, "overlap")
        if any(p % factor for p in patch):
            raise ConfigError(f"patch size {patch} must be divisible by the factor {factor}")
        return cls(
            tuple(p // factor for p in patch),
            tuple(math.ceil(o / factor) for o in overlap),
            factor,
        )

    @property
    def ndim(self) -> int:
        return len(self.patch_lowres)

    @property
    def patch_highres(self) -> tuple[int, ...]:
        return tuple(p * self.factor for p in self.patch_lowres)

    @property
    def overlap_highres(self) -> tuple[int, ...]:
        return tuple(o * self.factor for o in self.overlap_lowres)

    @property
    def margin_highres(self) -> tuple[int, ...]:
        assert self.margin_lowres is not None
        return tuple(m * self.factor for m in self.margin_lowres)


def tile_starts(size: int, patch: int, overlap: int) -> list[int]:
    """Start indices of tiles of length ``patch`` covering ``range(size)``.

    Tiles step by ``patch - overlap``; the last tile is flush with the end (it
    may overlap its neighbour by more than ``overlap``). If ``size <= patch``
    there is one tile, of length ``size``, starting at 0.
    """
    if size < 1:
        raise ValueError(f"cannot tile an axis of size {size}")
    if patch < 1 or not 0 <= overlap < patch:
        raise ValueError(f"need patch >= 1 and 0 <= overlap < patch, got {patch=} {overlap=}")
    if size <= patch:
        return [0]
    starts = list(range(0, size - patch, patch - overlap))
    starts.append(size - patch)
    return starts


def _ramp(n: int) -> Tensor:
    """Raised cosine rising over ``n`` pixels, sampled at pixel centres: ``[n]``, in (0, 1).

    ``ramp[i] + ramp[n - 1 - i] == 1``, so a rising and a falling ramp over the
    same ``n`` pixels form a partition of unity.
    """
    i = torch.arange(n, dtype=torch.float64)
    return torch.sin(0.5 * math.pi * (i + 0.5) / n) ** 2


def _window_1d(
    length: int, ramp_lo: int, ramp_hi: int, dead_lo: int = 0, dead_hi: int = 0
) -> Tensor:
    """1D weights ``[length]`` (float64): 0 on the dead bands, ramps, 1 in between.

    Ramps longer than the kept part are clipped by taking the minimum of the
    rising and falling profiles, so the window stays positive on the kept part.
    """
    kept = length - dead_lo - dead_hi
    if kept < 1:
        raise ValueError(f"tile of length {length} is smaller than its margins {dead_lo}+{dead_hi}")
    rise = torch.ones(kept, dtype=torch.float64)
    fall = torch.ones(kept, dtype=torch.float64)
    if ramp_lo > 0:
        n = min(ramp_lo, kept)
        rise[:n] = _ramp(ramp_lo)[:n]
    if ramp_hi > 0:
        n = min(ramp_hi, kept)
        fall[kept - n :] = _ramp(ramp_hi).flip(0)[ramp_hi - n :]
    out = torch.zeros(length, dtype=torch.float64)
    out[dead_lo : dead_lo + kept] = torch.minimum(rise, fall)
    return out


def _outer(factors: Sequence[Tensor]) -> Tensor:
    out = factors[0]
    for f in factors[1:]:
        out = out[..., None] * f
    return out


def blend_weights(
    shape_highres: Sequence[int], overlap_highres: int | Sequence[int], dtype=torch.float32
) -> Tensor:
    """Separable blending window of shape ``shape_highres``.

    1 in the interior, a raised-cosine ramp over the ``overlap_highres`` pixels
    at each edge, strictly positive everywhere (so a domain border covered by a
    single tile keeps a positive weight).
    """
    shape = tuple(int(s) for s in shape_highres)
    overlap = _as_tuple(overlap_highres, len(shape), "overlap_highres")
    return _outer([_window_1d(s, o, o) for s, o in zip(shape, overlap)]).to(dtype)


def _axis_window(start: int, length: int, size: int, overlap: int, margin: int) -> Tensor:
    """1D weights of one tile along one axis (high-res pixels): no ramp at domain borders."""
    at_lo = start == 0
    at_hi = start + length == size
    ramp = overlap - 2 * margin
    return _window_1d(
        length,
        ramp_lo=0 if at_lo else ramp,
        ramp_hi=0 if at_hi else ramp,
        dead_lo=0 if at_lo else margin,
        dead_hi=0 if at_hi else margin,
    )


def tile_weights(
    starts_highres: Sequence[int],
    shape_highres: Sequence[int],
    domain_highres: Sequence[int],
    spec: TileSpec,
    dtype=torch.float32,
) -> Tensor:
    """Blending weights ``[*shape_highres]`` of the tile at ``starts_highres`` in the domain.

    Edges on the domain border have weight 1; edges facing a neighbour have a
    dead band of ``spec.margin_highres`` then a raised-cosine ramp over
    ``overlap - 2 * margin`` pixels (see the module docs).
    """
    return _outer(
        [
            _axis_window(s, n, size, o, m)
            for s, n, size, o, m in zip(
                starts_highres,
                shape_highres,
                domain_highres,
                spec.overlap_highres,
                spec.margin_highres,
            )
        ]
    ).to(dtype)


def _check_inputs(
    items: Sequence[Mapping[str, Tensor]],
    lowres_keys: Sequence[str],
    highres_keys: Sequence[str],
    spec: TileSpec,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return (low-res spatial shape, high-res spatial shape), checking every tensor."""
    if not lowres_keys:
        raise ValueError("generate_tiled needs at least one low-resolution input key")
    d = spec.ndim
    first = items[0][lowres_keys[0]]
    if first.dim() != d + 1:
        raise ValueError(
            f"input {lowres_keys[0]!r} must be [C, *{d} spatial dims], got shape {tuple(first.shape)}"
        )
    lo = tuple(first.shape[1:])
    hi = tuple(s * spec.factor for s in lo)
    for item in items:
        for key in lowres_keys:
            t = item[key]
            if t.dim() != d + 1 or tuple(t.shape[1:]) != lo:
                raise DataError(
                    f"low-resolution input {key!r} has shape {tuple(t.shape)}; expected [C, {lo}]"
                )
        for key in highres_keys:
            t = item[key]
            if t.dim() != d + 1 or tuple(t.shape[1:]) != hi:
                raise DataError(
                    f"high-resolution input {key!r} has shape {tuple(t.shape)}; expected "
                    f"[K, {hi}] (= {spec.factor} x the low-resolution grid {lo})"
                )
    return lo, hi


def generate_tiled_many(
    fn: Callable[[dict[str, Tensor]], Tensor],
    items: Sequence[Mapping[str, Tensor]],
    lowres_keys: Sequence[str],
    highres_keys: Sequence[str],
    spec: TileSpec,
    batch_size: int,
    *,
    shared_keys: Sequence[str] = (),
    out_device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Tiled generation for several items on the same grid: returns ``[N, C_out, *S]``.

    ``items[n]`` is a dict like for :func:`generate_tiled` (e.g. one dict per
    ensemble member, sharing the ``input``/``constants`` tensors and holding its
    own ``noise``). Tiles of all items are batched together, so small domains
    still fill batches. Tiles are processed item by item, tile by tile;
    ``progress(done, total)`` is called after each batch.
    """
    if not items:
        raise ValueError("generate_tiled_many needs at least one item")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lo, hi = _check_inputs(items, lowres_keys, highres_keys, spec)
    f = spec.factor
    # Tile extent along each axis: the patch, or the whole axis when smaller.
    tile_lo = tuple(min(p, s) for p, s in zip(spec.patch_lowres, lo))
    tile_hi = tuple(t * f for t in tile_lo)
    per_axis = [tile_starts(s, p, o) for s, p, o in zip(lo, spec.patch_lowres, spec.overlap_lowres)]
    tiles = list(itertools.product(*per_axis))
    work = [(n, t) for n in range(len(items)) for t in tiles]

    device = out_device if out_device is not None else items[0][lowres_keys[0]].device
    weights: dict[tuple[int, ...], Tensor] = {}

    def weight(start_lo: tuple[int, ...]) -> Tensor:
        if start_lo not in weights:
            weights[start_lo] = tile_weights(
                tuple(s * f for s in start_lo), tile_hi, hi, spec, torch.float32
            ).to(device)
        return weights[start_lo]

    def lo_box(start: tuple[int, ...]) -> tuple[slice, ...]:
        return (slice(None),) + tuple(slice(s, s + n) for s, n in zip(start, tile_lo))

    def hi_box(start: tuple[int, ...]) -> tuple[slice, ...]:
        return (slice(None),) + tuple(slice(s * f, s * f + n) for s, n in zip(start, tile_hi))

    acc: Tensor | None = None
    wsum = torch.zeros((1, *hi), dtype=torch.float32, device=device)
    for start in tiles:
        wsum[hi_box(start)] += weight(start)
    if not bool((wsum > 0).all()):  # guaranteed by construction; guard against regressions
        raise RuntimeError(f"tiling {spec} leaves pixels with zero total weight on domain {lo}")

    done = 0
    for b0 in range(0, len(work), batch_size):
        chunk = work[b0 : b0 + batch_size]
        batch: dict[str, Tensor] = {}
        for key in lowres_keys:
            batch[key] = torch.stack([items[n][key][lo_box(t)] for n, t in chunk])
        for key in highres_keys:
            batch[key] = torch.stack([items[n][key][hi_box(t)] for n, t in chunk])
        for key in shared_keys:
            batch[key] = torch.stack([items[n][key] for n, _ in chunk])
        out = fn(batch)
        if (
            out.dim() != spec.ndim + 2
            or out.shape[0] != len(chunk)
            or tuple(out.shape[2:]) != tile_hi
        ):
            raise ValueError(
                f"generator returned shape {tuple(out.shape)} for a batch of {len(chunk)} tiles; "
                f"expected [{len(chunk)}, C_out, {tile_hi}]"
            )
        out = out.to(device=device, dtype=torch.promote_types(out.dtype, torch.float32))
        if acc is None:
            acc = torch.zeros((len(items), out.shape[1], *hi), dtype=out.dtype, device=device)
        for i, (n, t) in enumerate(chunk):
            acc[n][hi_box(t)] += weight(t) * out[i]
        done += len(chunk)
        if progress is not None:
            progress(done, len(work))
    assert acc is not None
    return acc / wsum


def generate_tiled(
    fn: Callable[[dict[str, Tensor]], Tensor],
    inputs: Mapping[str, Tensor],
    lowres_keys: Sequence[str],
    highres_keys: Sequence[str],
    spec: TileSpec,
    batch_size: int,
    *,
    shared_keys: Sequence[str] = (),
    out_device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Apply ``fn`` tile by tile to one field and blend: returns ``[C_out, *S]``.

    ``inputs[k]`` is ``[C, *s]`` for ``k in lowres_keys`` (e.g. "input",
    "noise", all on the same low-res grid ``s``) and ``[K, *S]`` with
    ``S = spec.factor * s`` for ``k in highres_keys`` (e.g. "constants"; K may
    be 0). ``shared_keys`` name tensors passed whole to every tile (e.g. a
    global latent vector ``[N]``). ``fn(batch)`` receives the same keys with a
    batch dimension (``[B, C, *tile_s]``, ``[B, K, *tile_S]``) and returns
    ``[B, C_out, *tile_S]``. Draw random inputs once over the whole domain
    (see the module docs). The result is accumulated in float32 on
    ``out_device`` (default: the device of the inputs).
    """
    return generate_tiled_many(
        fn,
        [inputs],
        lowres_keys,
        highres_keys,
        spec,
        batch_size,
        shared_keys=shared_keys,
        out_device=out_device,
        progress=progress,
    )[0]
