"""Access to the aligned fields of recipe 1, behind methods.

Everything downstream (statistics, candidate patches, dataset items, full
fields) reads through a :class:`FieldStore`, so an out-of-core (dask/Zarr)
store can replace the in-memory one without touching them.

Shapes (``T`` aligned times, ``H x W`` truth grid, ``h x w = H/f x W/f`` input grid):
- truth ``[T, C_out, H, W]``, input ``[T, C_in, h, w]``, constants ``[K, H, W]``;
  physical units, float32, NaN = missing. Constants never hold NaN (filled when regridded).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import numpy as np

from geogan.data.grids import upsample_nearest


class FieldStore(Protocol):
    """What the data layer needs from a store of aligned fields (see module docstring)."""

    factor: int

    @property
    def n_times(self) -> int: ...

    @property
    def truth_shape(self) -> tuple[int, int]: ...

    @property
    def input_shape(self) -> tuple[int, int]: ...

    def truth(self, t: int, rows: slice = ..., cols: slice = ...) -> np.ndarray:
        """``[C_out, rows, cols]`` of time index ``t`` (high-res pixel slices)."""
        ...

    def input(self, t: int, rows: slice = ..., cols: slice = ...) -> np.ndarray:
        """``[C_in, rows, cols]`` of time index ``t`` (low-res pixel slices)."""
        ...

    def constants(self, rows: slice = ..., cols: slice = ...) -> np.ndarray:
        """``[K, rows, cols]`` (high-res pixel slices)."""
        ...

    def chunks(
        self, kind: str, channel: int, time_indices: np.ndarray, chunk_size: int
    ) -> Iterator[np.ndarray]:
        """``[t, H, W]`` (or ``[t, h, w]``) slabs of one channel of ``kind`` (``truth``/``input``) over ``time_indices``."""
        ...

    def valid_mask(self, t: int) -> np.ndarray:
        """``[H, W]`` bool: truth valid and the covering input pixel valid (see :func:`valid_mask`)."""
        ...


_ALL = slice(None)


class MemoryStore:
    """All fields as float32 NumPy arrays in memory (radar files of ~100 MB fit easily).

    Args:
        truth: ``[T, C_out, H, W]``.
        inputs: ``[T, C_in, h, w]`` with ``H = factor * h``, ``W = factor * w``.
        constants: ``[K, H, W]`` (``K`` may be 0).
        factor: downscaling factor.
    """

    def __init__(
        self, truth: np.ndarray, inputs: np.ndarray, constants: np.ndarray, factor: int
    ) -> None:
        self._truth = truth
        self._input = inputs
        self._constants = constants
        self.factor = int(factor)

    @property
    def n_times(self) -> int:
        return int(self._truth.shape[0])

    @property
    def truth_shape(self) -> tuple[int, int]:
        return int(self._truth.shape[-2]), int(self._truth.shape[-1])

    @property
    def input_shape(self) -> tuple[int, int]:
        return int(self._input.shape[-2]), int(self._input.shape[-1])

    def truth(self, t: int, rows: slice = _ALL, cols: slice = _ALL) -> np.ndarray:
        return self._truth[t, :, rows, cols]

    def input(self, t: int, rows: slice = _ALL, cols: slice = _ALL) -> np.ndarray:
        return self._input[t, :, rows, cols]

    def constants(self, rows: slice = _ALL, cols: slice = _ALL) -> np.ndarray:
        return self._constants[:, rows, cols]

    def chunks(
        self, kind: str, channel: int, time_indices: np.ndarray, chunk_size: int = 8
    ) -> Iterator[np.ndarray]:
        array = self._truth if kind == "truth" else self._input
        time_indices = np.asarray(time_indices)
        for start in range(0, len(time_indices), chunk_size):
            yield array[time_indices[start : start + chunk_size], channel]

    def valid_mask(self, t: int) -> np.ndarray:
        """``[H, W]`` bool: truth valid (all target channels finite) and the covering input pixel valid."""
        return valid_mask(self.truth(t), self.input(t), self.factor)


def valid_mask(truth: np.ndarray, inputs: np.ndarray, factor: int) -> np.ndarray:
    """``[H, W]`` bool from aligned ``truth [C_out, H, W]`` and ``inputs [C_in, H/f, W/f]``.

    True where every target channel is finite and every input channel of the
    low-res pixel covering the point is finite.
    """
    truth_ok = np.isfinite(truth).all(axis=0)
    input_ok = np.isfinite(inputs).all(axis=0)
    return truth_ok & upsample_nearest(input_ok, factor)


def _span(s: slice, n: int) -> tuple[int, int]:
    start, stop, step = s.indices(n)
    if step != 1:
        raise ValueError(f"store slices must have step 1, got {s}")
    return start, max(start, stop)


class LazyStore:
    """Fields read on demand from lazily opened sources (xarray, no dask), one frame or a
    few time steps at a time: memory does not grow with the record. ``prepare`` uses it
    (statistics, candidates and patch writing all stream over time); training keeps the
    :class:`MemoryStore` for fast random access.

    Args:
        truth: one DataArray ``(time, y, x)`` per target channel, cropped to the truth grid.
        inputs: one DataArray ``(time, y, x)`` per input channel on the input grid, or None
            (autocoarsen: the input is the block mean of the truth, computed per read).
        constants: ``[K, H, W]`` in memory (small).
        factor: downscaling factor.
        truth_positions / input_positions: time index in each source of each aligned time
            (None: all, in order).
        flips: flip the input rows / columns to match the truth's orientation.
        paths: names of the truth / input sources for error messages.

    The sources must stay open while the store is used; :meth:`close` closes the
    Datasets handed to :meth:`keep_open`. The last full frame read is cached, so a
    frame's truth, input and mask cost one read.
    """

    def __init__(
        self,
        truth: list,
        inputs: list | None,
        constants: np.ndarray,
        factor: int,
        *,
        truth_positions: np.ndarray | None = None,
        input_positions: np.ndarray | None = None,
        flips: tuple[bool, bool] = (False, False),
        paths: tuple[str, str] = ("truth", "input"),
        policies: tuple[list, list] | None = None,
    ) -> None:
        """``policies``: per truth and per input variable, the
        :class:`~geogan.data.sources.ValuePolicy` applied to every read (unit conversion,
        infinite and negative values)."""
        self._truth = truth
        self._inputs = inputs
        self._constants = constants
        self.factor = int(factor)
        n = int(truth[0].shape[0])
        self._t_pos = np.arange(n) if truth_positions is None else np.asarray(truth_positions)
        if inputs is not None:
            n_in = int(inputs[0].shape[0])
            self._i_pos = (
                np.arange(n_in) if input_positions is None else np.asarray(input_positions)
            )
        else:
            self._i_pos = None
        self._flips = tuple(bool(f) for f in flips)
        self._paths = paths
        self._policies = policies or ([None] * len(truth), [None] * len(inputs or []))
        self._frame_cache: tuple[int, np.ndarray] | None = None
        self._open: list = []

    def keep_open(self, datasets) -> None:
        """Take ownership of the Datasets the fields come from (closed by :meth:`close`)."""
        self._open.extend(datasets)

    def close(self) -> None:
        for ds in self._open:
            ds.close()
        self._open = []
        self._frame_cache = None

    @property
    def n_times(self) -> int:
        return int(self._t_pos.size)

    @property
    def truth_shape(self) -> tuple[int, int]:
        return int(self._truth[0].shape[-2]), int(self._truth[0].shape[-1])

    @property
    def input_shape(self) -> tuple[int, int]:
        if self._inputs is None:
            h, w = self.truth_shape
            return h // self.factor, w // self.factor
        return int(self._inputs[0].shape[-2]), int(self._inputs[0].shape[-1])

    @staticmethod
    def _read(
        das: list, positions, rows: slice, cols: slice, path: str, policies: list
    ) -> np.ndarray:
        """``[len(das), (t,) rows, cols]`` float32 from DataArrays ``(time, y, x)``."""
        from geogan.data.sources import load_values

        out = []
        for da, policy in zip(das, policies):
            ydim, xdim = da.dims[-2], da.dims[-1]
            sel = da.isel({"time": positions, ydim: rows, xdim: cols})
            out.append(load_values(sel, path, policy=policy))
        return np.stack(out)

    def _frame(self, t: int) -> np.ndarray:
        """Full truth frame ``[C_out, H, W]`` of aligned time ``t`` (cached: one frame)."""
        if self._frame_cache is None or self._frame_cache[0] != t:
            frame = self._read(
                self._truth, int(self._t_pos[t]), _ALL, _ALL, self._paths[0], self._policies[0]
            )
            self._frame_cache = (t, frame)
        return self._frame_cache[1]

    def truth(self, t: int, rows: slice = _ALL, cols: slice = _ALL) -> np.ndarray:
        return self._frame(int(t))[:, rows, cols]

    def input(self, t: int, rows: slice = _ALL, cols: slice = _ALL) -> np.ndarray:
        from geogan.data.grids import coarsen

        h, w = self.input_shape
        (r0, r1), (c0, c1) = _span(rows, h), _span(cols, w)
        f = self.factor
        if self._inputs is None:
            return coarsen(self.truth(t, slice(r0 * f, r1 * f), slice(c0 * f, c1 * f)), f)
        flip_y, flip_x = self._flips
        src_rows = slice(h - r1, h - r0) if flip_y else slice(r0, r1)
        src_cols = slice(w - c1, w - c0) if flip_x else slice(c0, c1)
        x = self._read(
            self._inputs,
            int(self._i_pos[t]),
            src_rows,
            src_cols,
            self._paths[1],
            self._policies[1],
        )
        if flip_y:
            x = x[..., ::-1, :]
        if flip_x:
            x = x[..., :, ::-1]
        return np.ascontiguousarray(x)

    def constants(self, rows: slice = _ALL, cols: slice = _ALL) -> np.ndarray:
        return self._constants[:, rows, cols]

    def chunks(
        self, kind: str, channel: int, time_indices: np.ndarray, chunk_size: int = 8
    ) -> Iterator[np.ndarray]:
        from geogan.data.grids import coarsen

        time_indices = np.asarray(time_indices)
        for start in range(0, len(time_indices), chunk_size):
            idx = time_indices[start : start + chunk_size]
            if kind == "truth" or self._inputs is None:
                pos = self._t_pos[idx]
                block = self._read(
                    [self._truth[channel]],
                    _positions(pos),
                    _ALL,
                    _ALL,
                    self._paths[0],
                    [self._policies[0][channel]],
                )[0]
                yield block if kind == "truth" else coarsen(block, self.factor)
            else:
                pos = self._i_pos[idx]
                block = self._read(
                    [self._inputs[channel]],
                    _positions(pos),
                    _ALL,
                    _ALL,
                    self._paths[1],
                    [self._policies[1][channel]],
                )[0]
                if self._flips[0]:
                    block = block[..., ::-1, :]
                if self._flips[1]:
                    block = block[..., :, ::-1]
                yield block

    def valid_mask(self, t: int) -> np.ndarray:
        """``[H, W]`` bool: truth valid (all target channels finite) and the covering input pixel valid."""
        return valid_mask(self.truth(t), self.input(t), self.factor)


def _positions(pos: np.ndarray):
    """A slice for consecutive positions (a cheaper read), else the index array."""
    if pos.size > 0 and np.all(np.diff(pos) == 1):
        return slice(int(pos[0]), int(pos[-1]) + 1)
    return pos
