"""Interpolation baselines for downscaling: bilinear, bicubic and Lanczos-3.

All three are separable convolutions with the same conventions, so they
differ only by their kernel:

- Pixel centres (``align_corners=False``): output pixel ``i`` (0-based) of an
  axis upsampled by an integer ``factor`` sits at input coordinate
  ``c = (i + 0.5) / factor - 0.5``, where input pixel ``j`` is centred at ``j``.
  This is the convention of ``torch.nn.functional.interpolate(...,
  align_corners=False)`` and of PIL.
- Kernels: triangle (bilinear, support 1), Keys cubic convolution with
  ``a = -0.5`` (bicubic, support 2; the value PIL uses; it reproduces
  linear and quadratic ramps, whereas torch/OpenCV's ``a = -0.75`` does not),
  and Lanczos-3 ``sinc(x) sinc(x / 3)`` for ``|x| < 3`` (support 3).
  The taps of each output pixel are normalised to sum to 1 (as PIL does;
  Lanczos weights alone do not sum exactly to 1).
- Edges: taps that fall outside the image take the value of the nearest edge
  pixel (replicate padding, as torch does). PIL instead drops those taps and
  renormalises the rest; both agree wherever the kernel lies inside the image
  (more than ``support`` input pixels from the edge: 1, 2 and 3 input pixels
  for bilinear, bicubic, Lanczos), and differ by a few percent of the local
  gradient in the outer ``support * factor`` output pixels.
- Missing values: NaN coarse pixels are filled with the nearest valid coarse
  value before interpolating (so they do not spread NaN through the kernel
  support), and the output is set to NaN on the fine pixels whose own coarse
  pixel was missing -- exactly the pixels the scoring rule excludes (see
  :func:`coarse_valid_mask`). ``halo`` widens that NaN region by whole coarse
  pixels for callers that also want to drop pixels whose kernel touched a
  filled value.
- Non-negative variables (precipitation): bicubic and Lanczos overshoot below
  zero next to sharp rain edges; ``nonnegative=True`` clips at 0.

Shapes: the last two axes are ``(h, w)``; any leading axes (``[T, h, w]``,
``[T, C, h, w]``) are carried along. Units are those of the input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from scipy import ndimage

from geogan.core.errors import ConfigError, DataError

__all__ = [
    "BASELINES",
    "KERNELS",
    "coarse_valid_mask",
    "interpolate",
    "resample_matrix",
]


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - np.abs(x), 0.0, None)


def _keys_cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    out = np.zeros_like(x)
    near = x < 1
    far = (x >= 1) & (x < 2)
    xn, xf = x[near], x[far]
    out[near] = ((a + 2) * xn - (a + 3)) * xn * xn + 1
    out[far] = ((a * xf - 5 * a) * xf + 8 * a) * xf - 4 * a
    return out


def _lanczos3(x: np.ndarray) -> np.ndarray:
    # np.sinc is the normalised sinc sin(pi x) / (pi x)
    return np.where(np.abs(x) < 3.0, np.sinc(x) * np.sinc(x / 3.0), 0.0)


#: name -> (kernel function of the distance in input pixels, support radius)
KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "bilinear": (_triangle, 1),
    "bicubic": (_keys_cubic, 2),
    "lanczos": (_lanczos3, 3),
}


@lru_cache(maxsize=64)
def _resample_matrix_cached(n_in: int, factor: int, method: str) -> np.ndarray:
    kernel, support = KERNELS[method]
    n_out = n_in * factor
    centre = (np.arange(n_out) + 0.5) / factor - 0.5  # output centres in input pixel units
    first = np.floor(centre).astype(np.int64) - support + 1
    taps = first[:, None] + np.arange(2 * support)[None, :]  # [n_out, 2*support]
    weights = kernel(centre[:, None] - taps)
    weights /= weights.sum(axis=1, keepdims=True)
    matrix = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.repeat(np.arange(n_out), 2 * support)
    # replicate padding: a tap outside the image reads the nearest edge pixel
    np.add.at(matrix, (rows, np.clip(taps, 0, n_in - 1).ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def resample_matrix(n_in: int, factor: int, method: str) -> np.ndarray:
    """The ``[n_in * factor, n_in]`` float64 matrix that upsamples one axis (rows sum to 1)."""
    if method not in KERNELS:
        raise ConfigError(f"unknown baseline {method!r}; choose one of {', '.join(KERNELS)}")
    return _resample_matrix_cached(int(n_in), int(factor), method)


def _fill_nearest(field: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """``field [..., h, w]`` with each missing pixel replaced by its nearest valid pixel (per 2-D map)."""
    out = field.copy()
    flat = out.reshape(-1, *field.shape[-2:])
    flat_missing = missing.reshape(-1, *field.shape[-2:])
    for k in range(flat.shape[0]):
        miss = flat_missing[k]
        if miss.any() and not miss.all():
            idx = ndimage.distance_transform_edt(miss, return_distances=False, return_indices=True)
            flat[k] = flat[k][idx[0], idx[1]]
    return out


def coarse_valid_mask(coarse: np.ndarray, factor: int, halo: int = 0) -> np.ndarray:
    """Fine-grid mask ``[..., h * factor, w * factor]`` (bool) of pixels whose coarse pixel is valid.

    ``coarse [..., h, w]``: the coarse field, NaN where missing. ``halo``: also
    mark invalid the fine pixels within ``halo`` coarse pixels (8-neighbourhood)
    of a missing coarse pixel.
    """
    factor = _check_factor(factor)
    missing = ~np.isfinite(coarse)
    if halo > 0 and missing.any():
        structure = np.ones((1,) * (missing.ndim - 2) + (3, 3), dtype=bool)
        missing = ndimage.binary_dilation(missing, structure=structure, iterations=int(halo))
    valid = ~missing
    return np.repeat(np.repeat(valid, factor, axis=-2), factor, axis=-1)


def _check_factor(factor: int) -> int:
    if int(factor) != factor or factor < 1:
        raise ConfigError(f"the downscaling factor must be a positive integer, got {factor!r}")
    return int(factor)


def interpolate(
    coarse: np.ndarray,
    factor: int,
    method: str = "bilinear",
    *,
    nonnegative: bool | Sequence[bool] = False,
    halo: int = 0,
) -> np.ndarray:
    """Upsample ``coarse`` by an integer ``factor`` with a separable kernel.

    Args:
        coarse: ``[..., h, w]`` (e.g. ``[T, h, w]`` or ``[T, C, h, w]``), physical
            units, NaN where missing.
        factor: integer upsampling factor; output is ``[..., h * factor, w * factor]``.
        method: ``"bilinear"``, ``"bicubic"`` (Keys, a = -0.5) or ``"lanczos"`` (Lanczos-3).
        nonnegative: clip the result at 0 (precipitation). A sequence gives one
            flag per channel of a ``[T, C, h, w]`` input (axis -3).
        halo: NaN the output within this many coarse pixels of a missing one
            (0: only where the pixel's own coarse pixel is missing).

    Returns:
        float32 (float64 if the input is float64) array ``[..., H, W]`` with NaN on
        pixels whose coarse pixel is missing (see :func:`coarse_valid_mask`).
    """
    factor = _check_factor(factor)
    coarse = np.asarray(coarse)
    if coarse.ndim < 2:
        raise DataError(
            f"coarse field must have at least 2 dims [..., h, w], got shape {coarse.shape}"
        )
    out_dtype = np.float64 if coarse.dtype == np.float64 else np.float32
    h, w = coarse.shape[-2:]
    ay = resample_matrix(h, factor, method)
    ax = resample_matrix(w, factor, method)
    values = np.asarray(coarse, dtype=np.float64)
    missing = ~np.isfinite(values)
    if missing.any():
        values = _fill_nearest(values, missing)
        values = np.where(np.isfinite(values), values, 0.0)  # maps with no valid pixel at all
    out = np.einsum("ij,...jk,lk->...il", ay, values, ax, optimize=True)
    flags = np.asarray(nonnegative, dtype=bool)
    if flags.ndim == 0:
        if flags:
            np.maximum(out, 0.0, out=out)
    else:
        if coarse.ndim < 3 or flags.shape != (coarse.shape[-3],):
            raise ConfigError(
                f"nonnegative has {flags.size} flags but the input has shape {coarse.shape}; "
                "give one flag per channel (axis -3) or a single bool"
            )
        out = np.where(flags.reshape(-1, 1, 1) & (out < 0), 0.0, out)
    if missing.any():
        out[~coarse_valid_mask(coarse, factor, halo=halo)] = np.nan
    return out.astype(out_dtype, copy=False)


def _make(method: str) -> Callable[..., np.ndarray]:
    def baseline(coarse: np.ndarray, factor: int, **kwargs) -> np.ndarray:
        return interpolate(coarse, factor, method, **kwargs)

    baseline.__name__ = f"{method}_baseline"
    baseline.__doc__ = (
        f"{method} interpolation of ``coarse [..., h, w]`` by ``factor``; see :func:`interpolate`."
    )
    return baseline


#: name -> function(coarse [..., h, w], factor, *, nonnegative=False, halo=0) -> [..., H, W]
BASELINES: dict[str, Callable[..., np.ndarray]] = {name: _make(name) for name in KERNELS}
