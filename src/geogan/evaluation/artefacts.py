"""Block (lattice) artefacts: the members' power at the coarse grid's frequency and its harmonics.

A generator that works per coarse pixel -- or a hard constraint that shifts each
``factor``-sized block of its output -- can leave a lattice at the coarse-pixel spacing:
seams at block edges, or a pattern repeated in every block (a sawtooth in the ensemble
spread). A pattern with period ``f`` pixels puts power at the frequencies ``m / f`` cycles
per pixel (``m = 1 .. f // 2``) along each axis, and at their combinations; the truth has
only its natural (red) spectrum there. :class:`BlockArtefacts` compares the two.

Method. The fields are cut into tiles of ``tile`` pixels per axis (a multiple of ``f``,
aligned with the coarse grid, default ``8 f``); only tiles whose pixels are all scored are
used (a radar disc's edge or missing data never enters), the same tiles for the truth and
for every member. Each tile has its mean removed, is multiplied by a separable Hann window
and Fourier transformed; power ``|FFT|^2 / sum(window^2)`` (units^2) is averaged over tiles
(and members). On a tile of ``L`` pixels the lattice frequencies fall on the FFT bins
``(L / f) * (m_1, ..., m_d)``; the Hann window spreads a line over its bin and the two next
to it, so the lattice power is the sum over the ``3^d`` bins around each lattice point
(just the bin when ``L / f < 4``). The order of a lattice point is ``max_i min(m_i, f - m_i)``
(1: the coarse-grid frequency itself, 2: its first harmonic, ...).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import METRICS
from geogan.evaluation.metrics import StreamingMetric

__all__ = ["BlockArtefacts", "lattice_orders", "tile_power"]


def _per_axis(value: int | Sequence[int], dims: int, name: str) -> tuple[int, ...]:
    values = (value,) * dims if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != dims or any(int(v) != v or v < 1 for v in values):
        raise ConfigError(
            f"{name} must be a positive integer or one per spatial axis, got {value!r}"
        )
    return tuple(int(v) for v in values)


def lattice_orders(tile: Sequence[int], factor: Sequence[int], neighbourhood: int) -> np.ndarray:
    """Order of every FFT bin ``[*tile]`` of a tile: 0 off the lattice, ``h >= 1`` on (or
    within ``neighbourhood`` bins of) a lattice point of order ``h`` (see the module doc).

    ``tile`` and ``factor`` per axis (``tile[i]`` a multiple of ``factor[i]``).
    """
    orders = np.zeros(tuple(tile), dtype=np.int64)
    spacing = [t // f for t, f in zip(tile, factor)]
    ranges = [range(f) for f in factor]
    for ms in itertools.product(*ranges):
        if not any(ms):
            continue
        order = max(min(m, f - m) for m, f in zip(ms, factor))
        offsets = itertools.product(*[range(-neighbourhood, neighbourhood + 1)] * len(tile))
        for off in offsets:
            idx = tuple((m * s + o) % t for m, s, o, t in zip(ms, spacing, off, tile))
            # a bin near two lattice points (tiny tiles) keeps the lower order
            if orders[idx] == 0 or order < orders[idx]:
                orders[idx] = order
    return orders


def _hann(n: int) -> np.ndarray:
    # periodic Hann (the DFT's own window): its transform is exactly 3 bins wide
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def tile_power(tiles: np.ndarray, dims: int) -> np.ndarray:
    """Mean power spectrum ``[*L]`` (units^2, averaged over the tiles) of
    ``tiles [N, *L]``: tile mean removed, separable Hann window, ``|FFT|^2 / sum(window^2)``."""
    shape = tiles.shape[1:]
    window = np.ones(shape)
    for axis, n in enumerate(shape):
        window = window * _hann(n).reshape([-1 if a == axis else 1 for a in range(dims)])
    axes = tuple(range(1, dims + 1))
    x = tiles - tiles.mean(axis=axes, keepdims=True)
    spec = np.fft.fftn(x * window, axes=axes)
    return (spec.real**2 + spec.imag**2).mean(axis=0) / float((window**2).sum())


def _tiles(x: np.ndarray, tile: Sequence[int], dims: int) -> np.ndarray:
    """``x [..., *S]`` -> ``[..., n_1, ..., n_d, *tile]`` (cropped to whole tiles)."""
    lead = x.shape[: x.ndim - dims]
    counts = [s // t for s, t in zip(x.shape[x.ndim - dims :], tile)]
    x = x[(Ellipsis, *[slice(0, c * t) for c, t in zip(counts, tile)])]
    split = []
    for c, t in zip(counts, tile):
        split += [c, t]
    x = x.reshape(*lead, *split)
    nl = len(lead)
    order = (
        list(range(nl)) + [nl + 2 * i for i in range(dims)] + [nl + 2 * i + 1 for i in range(dims)]
    )
    return x.transpose(order)


@METRICS.register("block_artefacts")
class BlockArtefacts(StreamingMetric):
    """Members' power at the coarse-grid frequency and its harmonics, relative to the truth's.

    Args:
        factor: the resolution factor ``f`` (one int, or one per spatial axis): the
            coarse-pixel spacing in output pixels. Required (recipes pass their
            ``data.factor``; in a metric list write ``{block_artefacts: {factor: 8}}``).
        tile: tile edge in pixels per axis (multiples of ``f``); default ``8 f``, shrunk
            to the largest multiple of ``f`` that fits the field.
        dims: number of spatial axes.

    Returns ``block_power_ratio`` (members' lattice power over the truth's, all orders
    summed; 1 is the truth's own level, well above 1 is a visible lattice),
    ``block_contrast_ratio`` (the members' lattice contrast -- power on the lattice bins over
    what the other bins of the same radial frequency hold, on average -- divided by the
    truth's: it sees a lattice on members smoother than the truth, whose lattice power can
    stay below the truth's although the eye sees it),
    ``block_power_ratio_h{h}`` per order ``h = 1 .. max(f) // 2``, ``block_tiles`` (tiles
    used per field) and the curve ``block_artefacts`` = ``{"order": [...], "ratio": [...],
    "power": [...], "power_truth": [...]}`` (lattice power per order, units^2). NaN when no
    tile is fully scored.
    """

    name = "block_artefacts"

    def __init__(
        self,
        *,
        factor: int | Sequence[int] | None = None,
        tile: int | Sequence[int] | None = None,
        dims: int = 2,
    ) -> None:
        super().__init__(dims=dims)
        if factor is None:
            raise ConfigError(
                "metric 'block_artefacts' needs the resolution factor: name it as "
                "{block_artefacts: {factor: F}} with F the coarse-pixel size in output pixels"
            )
        self.factor = _per_axis(factor, self.dims, "block_artefacts factor")
        self.tile_request = None if tile is None else _per_axis(tile, self.dims, "tile")
        if self.tile_request is not None and any(
            t % f for t, f in zip(self.tile_request, self.factor)
        ):
            raise ConfigError(
                f"block_artefacts tile {self.tile_request} must be a multiple of the factor "
                f"{self.factor} on every axis"
            )
        self.tile: tuple[int, ...] | None = None
        self._orders: np.ndarray | None = None
        self._rings: np.ndarray | None = None

    def _setup(self, spatial: tuple[int, ...]) -> None:
        tile = self.tile_request or tuple(8 * f for f in self.factor)
        tile = tuple(min(t, s // f * f) for t, s, f in zip(tile, spatial, self.factor))
        if self.tile is not None and tile != self.tile:
            raise DataError(
                f"block_artefacts: fields of shape {spatial} give tiles {tile}, but earlier "
                f"updates used {self.tile}; score fields of one shape per metric"
            )
        self.tile = tile
        if self._orders is None and min(tile) > 0:
            spacing = min(t // f for t, f in zip(tile, self.factor))
            width = 1 if spacing >= 4 else 0
            self._orders = lattice_orders(tile, self.factor, width)
            # rings of one bin width in radial frequency (in bins of the longest tile axis)
            radius = np.sqrt(
                sum(
                    (max(tile) * np.fft.fftfreq(t)).reshape(
                        [-1 if a == i else 1 for a in range(len(tile))]
                    )
                    ** 2
                    for i, t in enumerate(tile)
                )
            )
            self._rings = np.rint(radius).astype(np.int64)

    def _update(self, truth, forecast, valid):
        self._setup(tuple(truth.shape[1:]))
        self._add("n_fields", truth.shape[0])
        if min(self.tile) == 0:
            self._add("n_tiles", 0.0)
            return
        d = self.dims
        axes = tuple(range(1 + d, 1 + 2 * d))
        ok = _tiles(valid, self.tile, d).all(axis=axes)  # [T, n_1, ..., n_d]
        n = int(ok.sum())
        self._add("n_tiles", n)
        if n == 0:
            return
        self._add("truth", tile_power(_tiles(truth, self.tile, d)[ok], d) * n)
        total = np.zeros(self.tile)
        for member in forecast:  # one member at a time: tiles of all members may not fit
            total += tile_power(_tiles(member.astype(np.float64), self.tile, d)[ok], d) * n
        self._add("forecast", total / forecast.shape[0])

    def merge(self, other: StreamingMetric) -> None:
        super().merge(other)
        if self.tile is None and isinstance(other, BlockArtefacts):
            self.tile, self._orders, self._rings = other.tile, other._orders, other._rings

    def finalize(self) -> dict[str, Any]:
        n_tiles = float(self._get("n_tiles"))
        n_fields = float(self.state["n_fields"])
        top = max(self.factor) // 2
        out: dict[str, Any] = {
            "block_power_ratio": float("nan"),
            "block_contrast_ratio": float("nan"),
            **{f"block_power_ratio_h{h}": float("nan") for h in range(1, top + 1)},
            "block_tiles": n_tiles / max(n_fields, 1.0),
        }
        curve: dict[str, list] = {"order": [], "ratio": [], "power": [], "power_truth": []}
        if n_tiles > 0 and "truth" in self.state and self._orders is not None:
            p_truth = self.state["truth"] / n_tiles
            p_fc = self.state["forecast"] / n_tiles
            lattice = self._orders > 0
            out["block_power_ratio"] = _ratio(p_fc[lattice].sum(), p_truth[lattice].sum())
            contrast = [_contrast(p, lattice, self._rings) for p in (p_fc, p_truth)]
            out["block_contrast_ratio"] = _ratio(contrast[0], contrast[1])
            for h in range(1, top + 1):
                sel = self._orders == h
                if not sel.any():
                    continue
                fc_h, truth_h = float(p_fc[sel].sum()), float(p_truth[sel].sum())
                out[f"block_power_ratio_h{h}"] = _ratio(fc_h, truth_h)
                curve["order"].append(h)
                curve["ratio"].append(_ratio(fc_h, truth_h))
                curve["power"].append(fc_h)
                curve["power_truth"].append(truth_h)
        out["block_artefacts"] = curve
        return out


def _contrast(power: np.ndarray, lattice: np.ndarray, rings: np.ndarray) -> float:
    """Power on the lattice bins over the power the same bins would have at the mean of the
    off-lattice bins of their ring (same radial frequency): 1 without a lattice."""
    off = ~lattice
    ring_sum = np.bincount(rings[off], weights=power[off], minlength=rings.max() + 1)
    counts = np.bincount(rings[off], minlength=rings.max() + 1)
    expected = np.divide(ring_sum, counts, out=np.zeros_like(ring_sum), where=counts > 0)
    sel = lattice & (counts[rings] > 0)
    return _ratio(power[sel].sum(), expected[rings[sel]].sum())


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 and math.isfinite(den) else float("nan")
