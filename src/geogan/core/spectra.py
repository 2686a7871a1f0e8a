"""Radial wavenumbers of FFT grids, shared by the spectra of evaluation and of losses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["radial_wavenumbers"]


def radial_wavenumbers(shape: Sequence[int]) -> tuple[np.ndarray, int]:
    """Integer radial wavenumber of every FFT bin ``[*S]`` of a field of shape ``S``, and the
    number of wavenumbers kept.

    The wavenumber is ``L * |f|`` with ``f`` the frequency vector in cycles per pixel
    (``numpy.fft.fftfreq`` along each axis) and ``L = max(S)``: cycles per domain length on
    square (cubic) fields, pysteps' convention, rounded to the nearest integer. Bins
    ``0 .. L // 2`` are kept (up to the Nyquist wavenumber); the corners beyond it are
    dropped. In 2D the bins of one wavenumber form a ring of the FFT plane, in 3D a
    spherical shell of the FFT cube.
    """
    shape = tuple(int(n) for n in shape)
    length = max(shape)
    squared = sum(
        np.fft.fftfreq(n).reshape([-1 if a == i else 1 for a in range(len(shape))]) ** 2
        for i, n in enumerate(shape)
    )
    k = np.rint(length * np.sqrt(squared)).astype(np.int64)
    return k, length // 2 + 1
