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
