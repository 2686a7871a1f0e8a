"""Tiled application of a conditional generator over domains larger than its patch.

A generator trained on patches of ``patch`` low-resolution pixels is applied to
a whole domain tile by tile. Tiles overlap; their outputs are blended with
weights that are 1 inside a tile and fall smoothly to a small positive value
over the overlap, and the result is ``sum(w * tile) / sum(w)``.

Dimension-generic: spatial shapes are tuples of length ``spec.ndim`` (2 for
``[C, H, W]`` fields, 3 for ``[C, D, H, W]`` volumes). Low-resolution ("coarse
input") tensors are ``[C, *s]``; high-resolution tensors are ``[K, *S]`` with
``S = factor * s`` (the resolution factor; 1 for same-grid translation).

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

Periodic axes
-------------
``TileSpec.periodic`` marks axes on which the domain is a circle (e.g.
longitude on a global grid). Tiles there are spread evenly round the circle
(:func:`tile_starts` with ``periodic=True``); a tile that crosses the end of
the axis reads its inputs at indices modulo the axis size and adds its output
back modulo the size, so the seam at index 0 is an ordinary overlap. Every
tile edge on a periodic axis faces a neighbour (dead margin and ramp on both
sides). An axis no longer than one patch gets a single tile covering it whole,
with weight 1: the model's own circular padding then supplies the wrap. With a
model that pads circularly on the periodic axes, tiled output equals untiled
output there too.

Domains smaller than a patch along an axis get a single tile covering the
whole axis, so the model is then called on a smaller input than it was trained
on; it must accept any size that is a multiple of its strides.

Memory
------
:func:`generate_tiled_many` accumulates the whole output ``[N, C_out, *S]``
(float32) plus one weight sum ``[1, *S]``. :func:`generate_tiled_streaming`
runs the tiles row by row along the first spatial axis and hands each block of
output rows to a ``sink`` as soon as no later tile touches it, so only about
two tile rows of output are held at a time.
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
    "Sink",
    "TileSpec",
    "blend_weights",
    "generate_tiled",
    "generate_tiled_many",
    "generate_tiled_streaming",
    "tile_starts",
    "tile_weights",
]

#: ``sink((start, stop), block)``: high-resolution rows ``start:stop`` of the first
#: spatial axis, ``block`` ``[N, C_out, stop - start, *S[1:]]`` (blended, float32).
Sink = Callable[[tuple[int, int], Tensor], None]


def _as_tuple(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (int(value),) * ndim
    out = tuple(int(v) for v in value)
    if len(out) != ndim:
        raise ConfigError(f"{name} has {len(out)} entries but the patch has {ndim} dimensions")
    return out


def _as_flags(value: bool | Sequence[bool], ndim: int) -> tuple[bool, ...]:
    if isinstance(value, bool):
        return (value,) * ndim
    out = tuple(value)
    if len(out) != ndim or not all(isinstance(v, bool) for v in out):
        raise ConfigError(
            f"periodic must be a bool or one bool per spatial axis ({ndim}), got {value!r}"
        )
    return out


@dataclass(frozen=True)
class TileSpec:
    """How to cut a domain into tiles, in low-resolution pixels.

    ``patch_lowres``: tile size per spatial axis, e.g. ``(16, 16)`` or ``(8, 8, 8)``.
    ``overlap_lowres``: overlap between neighbouring tiles per axis (an int is
    broadcast); ``0 <= overlap < patch``.
    ``factor``: high-resolution pixels per low-resolution pixel (output grid =
    ``factor`` x input grid); 1 when input and output share a grid.
    ``margin_lowres``: band at tile edges facing a neighbour that is discarded
    (see module docs); default ``overlap // 4``; ``0 <= 2 * margin <= overlap``.
    ``periodic``: per spatial axis, whether the domain wraps round on it (e.g.
    ``(False, True)`` for ``[lat, lon]`` on a global grid); a bool is broadcast.
    """

    patch_lowres: tuple[int, ...]
    overlap_lowres: tuple[int, ...]
    factor: int
    margin_lowres: tuple[int, ...] | None = None
    periodic: tuple[bool, ...] | bool = False

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
        periodic = _as_flags(self.periodic, ndim)
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
        object.__setattr__(self, "periodic", periodic)
        object.__setattr__(self, "factor", int(self.factor))

    @classmethod
    def from_highres(
        cls,
        patch_highres: int | Sequence[int],
        overlap_highres: int | Sequence[int],
        factor: int,
        ndim: int = 2,
        periodic: bool | Sequence[bool] = False,
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
            periodic=_as_flags(periodic, ndim),
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


def tile_starts(size: int, patch: int, overlap: int, periodic: bool = False) -> list[int]:
    """Start indices of tiles of length ``patch`` covering ``range(size)``.

    Tiles step by ``patch - overlap``; the last tile is flush with the end (it
    may overlap its neighbour by more than ``overlap``). If ``size <= patch``
    there is one tile, of length ``size``, starting at 0.

    ``periodic``: the axis is a circle; ``n = ceil(size / (patch - overlap))``
    tiles are spread evenly round it (the last one wraps past the end onto the
    first), so every pair of neighbours, the last and the first included,
    overlaps by at least ``overlap``. The starts are multiples of
    ``gcd(size, patch, overlap)``, so a stride that divides all three divides
    every start.
    """
    if size < 1:
        raise ValueError(f"cannot tile an axis of size {size}")
    if patch < 1 or not 0 <= overlap < patch:
        raise ValueError(f"need patch >= 1 and 0 <= overlap < patch, got {patch=} {overlap=}")
    if size <= patch:
        return [0]
    if periodic:
        q = math.gcd(size, patch, overlap)
        cells, step = size // q, (patch - overlap) // q
        n = -(-cells // step)
        # gaps are floor/ceil(cells / n) <= step cells, the wrap-round gap included
        return [q * (i * cells // n) for i in range(n)]
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


def _axis_window(
    start: int, length: int, size: int, overlap: int, margin: int, periodic: bool = False
) -> Tensor:
    """1D weights of one tile along one axis (high-res pixels): no ramp at domain borders.

    On a periodic axis a tile shorter than the axis has neighbours on both sides.
    """
    if periodic and length < size:
        at_lo = at_hi = False
    else:
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

    Edges on the domain border have weight 1; edges facing a neighbour (every
    edge on a periodic axis split into several tiles) have a dead band of
    ``spec.margin_highres`` then a raised-cosine ramp over
    ``overlap - 2 * margin`` pixels (see the module docs).
    """
    return _outer(
        [
            _axis_window(s, n, size, o, m, p)
            for s, n, size, o, m, p in zip(
                starts_highres,
                shape_highres,
                domain_highres,
                spec.overlap_highres,
                spec.margin_highres,
                spec.periodic,
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


def _pieces(start: int, length: int, size: int, periodic: bool) -> list[tuple[int, int, int]]:
    """``(domain_start, tile_offset, n)`` runs of the tile ``[start, start + length)``.

    One run unless the tile crosses the end of a periodic axis; then two: the
    part up to the end and the part wrapped round to index 0.
    """
    if not periodic or start + length <= size:
        return [(start, 0, length)]
    first = size - start
    return [(start, 0, first), (0, first, length - first)]


class _Plan:
    """Tile layout of one domain: grid sizes, tile starts, weights, wrap-aware cut and add."""

    def __init__(
        self,
        items: Sequence[Mapping[str, Tensor]],
        lowres_keys: Sequence[str],
        highres_keys: Sequence[str],
        spec: TileSpec,
        out_device: str | torch.device | None,
    ) -> None:
        self.spec = spec
        self.lo, self.hi = _check_inputs(items, lowres_keys, highres_keys, spec)
        f = self.f = spec.factor
        # Tile extent along each axis: the patch, or the whole axis when smaller.
        self.tile_lo = tuple(min(p, s) for p, s in zip(spec.patch_lowres, self.lo))
        self.tile_hi = tuple(t * f for t in self.tile_lo)
        self.per_axis = [
            tile_starts(s, p, o, per)
            for s, p, o, per in zip(self.lo, spec.patch_lowres, spec.overlap_lowres, spec.periodic)
        ]
        self.tiles = list(itertools.product(*self.per_axis))
        self.device = out_device if out_device is not None else items[0][lowres_keys[0]].device
        self._weights: dict[tuple[tuple[bool, bool], ...], Tensor] = {}

    def weight(self, start_lo: tuple[int, ...]) -> Tensor:
        """Blending weights ``[*tile_hi]`` (float32, on the output device), cached.

        A tile's window depends only on which of its edges lie on the domain border,
        so the cache holds at most ``3 ** ndim`` windows, not one per tile (a 3D
        volume has thousands of tiles of megabytes each).
        """
        key = tuple(
            (False, False) if per and n < size else (s == 0, s + n == size)
            for s, n, size, per in zip(start_lo, self.tile_lo, self.lo, self.spec.periodic)
        )
        if key not in self._weights:
            self._weights[key] = tile_weights(
                tuple(s * self.f for s in start_lo), self.tile_hi, self.hi, self.spec, torch.float32
            ).to(self.device)
        return self._weights[key]

    def cut(self, x: Tensor, start_lo: tuple[int, ...], highres: bool) -> Tensor:
        """The tile of ``x`` (``[C, *s]`` or ``[K, *S]``): a view unless it wraps round."""
        scale = self.f if highres else 1
        sizes = self.hi if highres else self.lo
        lengths = self.tile_hi if highres else self.tile_lo
        for axis, (s, n, size, per) in enumerate(zip(start_lo, lengths, sizes, self.spec.periodic)):
            runs = _pieces(s * scale, n, size, per)
            if len(runs) == 1:
                x = x.narrow(axis + 1, s * scale, n)
            else:
                x = torch.cat([x.narrow(axis + 1, d, k) for d, _, k in runs], dim=axis + 1)
        return x

    def add(
        self,
        acc: Tensor,
        start_lo: tuple[int, ...],
        value: Tensor,
        rows: tuple[int, int] | None = None,
    ) -> None:
        """``acc += value`` on the tile's high-res box, wrapping round periodic axes.

        ``acc`` is ``[C, *S]``, or ``[C, rows[1] - rows[0], *S[1:]]`` when it holds
        only the high-res rows ``rows`` of the first spatial axis (the parts of the
        tile outside them are skipped); ``value`` is ``[C, *tile_hi]``.
        """
        r0, r1 = rows if rows is not None else (0, self.hi[0])
        runs = [
            _pieces(s * self.f, n, size, per)
            for s, n, size, per in zip(start_lo, self.tile_hi, self.hi, self.spec.periodic)
        ]
        for combo in itertools.product(*runs):
            (d0, o0, k0), rest = combo[0], combo[1:]
            lo, hi = max(d0, r0), min(d0 + k0, r1)
            if lo >= hi:
                continue
            dst = (slice(None), slice(lo - r0, hi - r0)) + tuple(
                slice(d, d + k) for d, _, k in rest
            )
            src = (slice(None), slice(o0 + lo - d0, o0 + hi - d0)) + tuple(
                slice(o, o + k) for _, o, k in rest
            )
            acc[dst] += value[src]

    def run(
        self,
        fn: Callable[[dict[str, Tensor]], Tensor],
        items: Sequence[Mapping[str, Tensor]],
        chunk: Sequence[tuple[int, tuple[int, ...]]],
        lowres_keys: Sequence[str],
        highres_keys: Sequence[str],
        shared_keys: Sequence[str],
    ) -> Tensor:
        """``fn`` on a batch of ``(item, tile start)``: ``[B, C_out, *tile_hi]`` on the output device."""
        batch: dict[str, Tensor] = {}
        for key in lowres_keys:
            batch[key] = torch.stack([self.cut(items[n][key], t, False) for n, t in chunk])
        for key in highres_keys:
            batch[key] = torch.stack([self.cut(items[n][key], t, True) for n, t in chunk])
        for key in shared_keys:
            batch[key] = torch.stack([items[n][key] for n, _ in chunk])
        out = fn(batch)
        if (
            out.dim() != self.spec.ndim + 2
            or out.shape[0] != len(chunk)
            or tuple(out.shape[2:]) != self.tile_hi
        ):
            raise ValueError(
                f"generator returned shape {tuple(out.shape)} for a batch of {len(chunk)} tiles; "
                f"expected [{len(chunk)}, C_out, {self.tile_hi}]"
            )
        return out.to(device=self.device, dtype=torch.promote_types(out.dtype, torch.float32))


def _check_many(items: Sequence[Mapping[str, Tensor]], batch_size: int) -> None:
    if not items:
        raise ValueError("generate_tiled_many needs at least one item")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


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
    ``progress(done, total)`` is called after each batch. Periodic axes
    (``spec.periodic``) wrap round (see the module docs). Holds the whole output
    in memory; see :func:`generate_tiled_streaming` for volumes that do not fit.
    """
    _check_many(items, batch_size)
    plan = _Plan(items, lowres_keys, highres_keys, spec, out_device)
    work = [(n, t) for n in range(len(items)) for t in plan.tiles]

    wsum = torch.zeros((1, *plan.hi), dtype=torch.float32, device=plan.device)
    for start in plan.tiles:
        plan.add(wsum, start, plan.weight(start)[None])
    if not bool((wsum > 0).all()):  # guaranteed by construction; guard against regressions
        raise RuntimeError(
            f"tiling {spec} leaves pixels with zero total weight on domain {plan.lo}"
        )

    acc: Tensor | None = None
    done = 0
    for b0 in range(0, len(work), batch_size):
        chunk = work[b0 : b0 + batch_size]
        out = plan.run(fn, items, chunk, lowres_keys, highres_keys, shared_keys)
        if acc is None:
            acc = torch.zeros(
                (len(items), out.shape[1], *plan.hi), dtype=out.dtype, device=plan.device
            )
        for i, (n, t) in enumerate(chunk):
            plan.add(acc[n], t, plan.weight(t) * out[i])
        done += len(chunk)
        if progress is not None:
            progress(done, len(work))
    assert acc is not None
    return acc.div_(wsum)  # in place: no second copy of the whole output


def generate_tiled_streaming(
    fn: Callable[[dict[str, Tensor]], Tensor],
    items: Sequence[Mapping[str, Tensor]],
    lowres_keys: Sequence[str],
    highres_keys: Sequence[str],
    spec: TileSpec,
    batch_size: int,
    *,
    sink: Sink,
    shared_keys: Sequence[str] = (),
    out_device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Like :func:`generate_tiled_many`, but hands the output to ``sink`` block by block.

    Tiles run row by row along the first spatial axis (all items of a row of
    tiles, then the next row). The first axis's high-res rows are split where
    tiles begin and end; once the last tile touching a block of rows has run,
    ``sink((start, stop), out)`` receives ``out`` ``[N, C_out, stop - start,
    *S[1:]]``, the blended output of rows ``start:stop`` (float32, on
    ``out_device``; equal to ``generate_tiled_many(...)[:, :, start:stop]``), and
    the block is dropped. Every row is handed over exactly once, in increasing
    order, except on a periodic first axis, where the rows that the wrapping
    last tile row shares with the first come at the end.

    Memory: the inputs, plus about two rows of tiles of output and weights
    (``[N, C_out, patch + overlap, *S[1:]]``), instead of the whole ``[N, C_out, *S]``.
    """
    _check_many(items, batch_size)
    plan = _Plan(items, lowres_keys, highres_keys, spec, out_device)
    f, size0, len0 = plan.f, plan.hi[0], plan.tile_hi[0]
    rows = plan.per_axis[0]
    rest = list(itertools.product(*plan.per_axis[1:]))
    # Row-major work; within an item, tiles still come in generate_tiled_many's order,
    # so every output pixel sums the same terms in the same order (bitwise equal).
    work = [(n, (r, *t)) for r in rows for n in range(len(items)) for t in rest]
    per_row = len(items) * len(rest)

    cuts = {0} | {(r * f) % size0 for r in rows} | {(r * f + len0) % size0 for r in rows}
    bounds = sorted(cuts) + [size0]
    blocks = list(zip(bounds[:-1], bounds[1:]))  # each lies inside or outside every tile

    def covers(row: int, block: tuple[int, int]) -> bool:
        return (block[0] - row * f) % size0 < len0

    ready_after = [
        per_row * (1 + max(i for i, r in enumerate(rows) if covers(r, b))) for b in blocks
    ]
    blocks_of_row = {r: [j for j, b in enumerate(blocks) if covers(r, b)] for r in rows}
    acc: dict[int, Tensor] = {}
    wsum: dict[int, Tensor] = {}
    emitted = [False] * len(blocks)

    def open_block(j: int, channels: int, dtype: torch.dtype) -> None:
        a, b = blocks[j]
        acc[j] = torch.zeros(
            (len(items), channels, b - a, *plan.hi[1:]), dtype=dtype, device=plan.device
        )
        w = torch.zeros((1, b - a, *plan.hi[1:]), dtype=torch.float32, device=plan.device)
        for start in plan.tiles:  # same tiles, same order as generate_tiled_many
            if covers(start[0], blocks[j]):
                plan.add(w, start, plan.weight(start)[None], rows=blocks[j])
        if not bool((w > 0).all()):  # guaranteed by construction; guard against regressions
            raise RuntimeError(f"tiling {spec} leaves pixels with zero total weight on {plan.lo}")
        wsum[j] = w

    def flush(done: int) -> None:
        ready = [j for j in range(len(blocks)) if not emitted[j] and ready_after[j] <= done]
        groups: list[list[int]] = []
        for j in ready:
            if groups and groups[-1][-1] == j - 1:
                groups[-1].append(j)
            else:
                groups.append([j])
        for group in groups:
            parts = [acc.pop(j).div_(wsum.pop(j)) for j in group]
            for j in group:
                emitted[j] = True
            out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
            sink((blocks[group[0]][0], blocks[group[-1]][1]), out)

    done = 0
    for b0 in range(0, len(work), batch_size):
        chunk = work[b0 : b0 + batch_size]
        out = plan.run(fn, items, chunk, lowres_keys, highres_keys, shared_keys)
        for i, (n, t) in enumerate(chunk):
            contribution = plan.weight(t) * out[i]
            for j in blocks_of_row[t[0]]:
                if j not in acc:
                    open_block(j, out.shape[1], out.dtype)
                plan.add(acc[j][n], t, contribution, rows=blocks[j])
        done += len(chunk)
        flush(done)
        if progress is not None:
            progress(done, len(work))
    assert all(emitted)


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
