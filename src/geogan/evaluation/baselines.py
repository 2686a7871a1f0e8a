"""Interpolation baselines from a coarse input: linear, cubic and Lanczos-3, in any spatial rank.

All are separable convolutions with the same conventions, so they differ only
by their kernel, applied along each of the ``dims`` trailing spatial axes:

- Names (:data:`METHODS`): ``bilinear``/``bicubic`` are the 2D names and
  ``trilinear``/``tricubic`` the 3D names of the triangle and cubic kernels;
  ``linear``, ``cubic`` and ``lanczos`` name the kernel alone and work in any rank
  (``dims`` says how many trailing axes). A name that implies a rank refuses another
  (``bilinear`` on 3 axes is a ConfigError). In 2D ``linear`` equals ``bilinear``.

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

Shapes: the last ``dims`` axes are spatial, ``(h, w)`` in 2D and ``(d, h, w)``
in 3D; any leading axes (``[T, h, w]``, ``[T, C, d, h, w]``) are carried along. The
factor is one integer or one per spatial axis (e.g. ``(1, 4, 4)``: levels kept, 4x
in the horizontal). Units are those of the input.
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
    "METHODS",
    "coarse_valid_mask",
    "interpolate",
    "method_for_rank",
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


#: kernel name -> (kernel function of the distance in input pixels, support radius)
KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], int]] = {
    "bilinear": (_triangle, 1),
    "bicubic": (_keys_cubic, 2),
    "lanczos": (_lanczos3, 3),
}

#: interpolation name -> (kernel name in :data:`KERNELS`, the spatial rank the name
#: implies, or None: any rank)
METHODS: dict[str, tuple[str, int | None]] = {
    "bilinear": ("bilinear", 2),
    "bicubic": ("bicubic", 2),
    "lanczos": ("lanczos", None),
    "linear": ("bilinear", None),
    "cubic": ("bicubic", None),
    "trilinear": ("bilinear", 3),
    "tricubic": ("bicubic", 3),
}

_RANK_NAMES = {("bilinear", 2): "bilinear", ("bicubic", 2): "bicubic"}
_RANK_NAMES.update({("bilinear", 3): "trilinear", ("bicubic", 3): "tricubic"})


def _kernel_of(method: str) -> str:
    if method not in METHODS:
        raise ConfigError(f"unknown baseline {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[method][0]


def method_for_rank(method: str, dims: int) -> str:
    """The name of ``method``'s kernel at spatial rank ``dims``: ``bilinear`` -> ``trilinear``
    in 3D, ``linear`` in 1D; ``lanczos``, ``linear``, ``cubic`` are kept."""
    kernel, rank = METHODS.get(method, (None, None))
    if kernel is None:
        _kernel_of(method)
    if rank is None or rank == dims:
        return method
    return _RANK_NAMES.get((kernel, dims), {"bilinear": "linear", "bicubic": "cubic"}[kernel])


@lru_cache(maxsize=64)
def _resample_matrix_cached(n_in: int, factor: int, kernel_name: str) -> np.ndarray:
    kernel, support = KERNELS[kernel_name]
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
    """The ``[n_in * factor, n_in]`` float64 matrix that upsamples one axis (rows sum to 1).

    ``method``: any name of :data:`METHODS` (only its kernel matters along one axis).
    """
    return _resample_matrix_cached(int(n_in), int(factor), _kernel_of(method))


def _fill_nearest(field: np.ndarray, missing: np.ndarray, dims: int = 2) -> np.ndarray:
    """``field [..., *s]`` with each missing pixel replaced by its nearest valid pixel
    (Euclidean distance in pixels, per ``dims``-D map)."""
    spatial = field.shape[field.ndim - dims :]
    out = field.copy()
    flat = out.reshape(-1, *spatial)
    flat_missing = missing.reshape(-1, *spatial)
    for k in range(flat.shape[0]):
        miss = flat_missing[k]
        if miss.any() and not miss.all():
            idx = ndimage.distance_transform_edt(miss, return_distances=False, return_indices=True)
            flat[k] = flat[k][tuple(idx)]
    return out


def _check_dims(dims: int) -> int:
    if isinstance(dims, bool) or int(dims) != dims or dims < 1:
        raise ConfigError(f"dims (number of spatial axes) must be a positive integer, got {dims!r}")
    return int(dims)


def _check_factor(factor: int | Sequence[int], dims: int = 2) -> tuple[int, ...]:
    """One positive integer factor per spatial axis (a single int is used for every axis)."""
    values = (factor,) * dims if np.ndim(factor) == 0 else tuple(factor)
    if len(values) != dims or any(isinstance(f, bool) or int(f) != f or f < 1 for f in values):
        raise ConfigError(
            f"the resolution factor must be a positive integer or one per spatial axis ({dims}), "
            f"got {factor!r}"
        )
    return tuple(int(f) for f in values)


def coarse_valid_mask(
    coarse: np.ndarray, factor: int | Sequence[int], halo: int = 0, *, dims: int = 2
) -> np.ndarray:
    """Fine-grid mask ``[..., h * f, w * f]`` (bool) of pixels whose coarse pixel is valid.

    ``coarse [..., *s]``: the coarse field with ``dims`` spatial axes (default 2:
    ``[..., h, w]``), NaN where missing; ``factor``: one int or one per spatial axis.
    ``halo``: also mark invalid the fine pixels within ``halo`` coarse pixels
    (8-neighbourhood in 2D, 26 in 3D) of a missing coarse pixel.
    """
    dims = _check_dims(dims)
    factors = _check_factor(factor, dims)
    missing = ~np.isfinite(coarse)
    if halo > 0 and missing.any():
        structure = np.ones((1,) * (missing.ndim - dims) + (3,) * dims, dtype=bool)
        missing = ndimage.binary_dilation(missing, structure=structure, iterations=int(halo))
    valid = ~missing
    for axis, f in zip(range(-dims, 0), factors):
        valid = np.repeat(valid, f, axis=axis)
    return valid


def _coarse_names(dims: int) -> str:
    return ", ".join("dhw"[3 - dims :]) if dims <= 3 else "*s"


def _separable_einsum(dims: int, axes: Sequence[int]) -> str:
    """Subscripts applying one matrix per axis in ``axes`` (indices 0 .. dims - 1 into the
    trailing spatial axes): ``"ij,...jk,lk->...il"`` when both axes of a 2D field are resampled."""
    inputs = "jkmoqs"[:dims]
    outputs = "ilnprt"[:dims]
    result = [outputs[a] if a in axes else inputs[a] for a in range(dims)]
    mats = [f"{outputs[a]}{inputs[a]}" for a in axes]
    operands = [mats[0], f"...{inputs}", *mats[1:]]
    return ",".join(operands) + "->..." + "".join(result)


def interpolate(
    coarse: np.ndarray,
    factor: int | Sequence[int],
    method: str = "bilinear",
    *,
    dims: int | None = None,
    nonnegative: bool | Sequence[bool] = False,
    halo: int = 0,
) -> np.ndarray:
    """Upsample ``coarse`` by integer factors with a separable kernel along each spatial axis.

    Args:
        coarse: ``[..., *s]`` with ``dims`` spatial axes (e.g. ``[T, h, w]``,
            ``[T, C, h, w]``, ``[T, d, h, w]``), physical units, NaN where missing.
        factor: integer upsampling factor, one for all spatial axes or one per axis;
            output is ``[..., h * f, w * f]`` (2D).
        method: a name of :data:`METHODS`: ``"bilinear"``/``"trilinear"``/``"linear"``
            (triangle), ``"bicubic"``/``"tricubic"``/``"cubic"`` (Keys, a = -0.5) or
            ``"lanczos"`` (Lanczos-3).
        dims: number of trailing spatial axes; default: the rank the method's name
            implies (``trilinear``: 3), else 2.
        nonnegative: clip the result at 0 (precipitation). A sequence gives one
            flag per channel of a ``[T, C, *s]`` input (axis ``-dims - 1``).
        halo: NaN the output within this many coarse pixels of a missing one
            (0: only where the pixel's own coarse pixel is missing).

    Returns:
        float32 (float64 if the input is float64) array ``[..., *S]`` with NaN on
        pixels whose coarse pixel is missing (see :func:`coarse_valid_mask`).
    """
    _kernel_of(method)
    implied = METHODS[method][1]
    dims = _check_dims(dims if dims is not None else (implied or 2))
    if implied is not None and implied != dims:
        raise ConfigError(
            f"{method!r} interpolates {implied} spatial axes, not {dims}; use "
            f"{method_for_rank(method, dims)!r} (or the rank-agnostic linear, cubic, lanczos)"
        )
    factors = _check_factor(factor, dims)
    coarse = np.asarray(coarse)
    if coarse.ndim < dims:
        raise DataError(
            f"coarse field must have at least {dims} dims [..., {_coarse_names(dims)}], "
            f"got shape {coarse.shape}"
        )
    out_dtype = np.float64 if coarse.dtype == np.float64 else np.float32
    spatial = coarse.shape[coarse.ndim - dims :]
    values = np.asarray(coarse, dtype=np.float64)
    missing = ~np.isfinite(values)
    if missing.any():
        values = _fill_nearest(values, missing, dims)
        values = np.where(np.isfinite(values), values, 0.0)  # maps with no valid pixel at all
    # axes with factor 1 keep their values exactly (the matrix is the identity): skip them
    axes = [a for a in range(dims) if factors[a] > 1]
    if axes:
        mats = [resample_matrix(spatial[a], factors[a], method) for a in axes]
        out = np.einsum(_separable_einsum(dims, axes), mats[0], values, *mats[1:], optimize=True)
    else:
        out = values.copy()
    flags = np.asarray(nonnegative, dtype=bool)
    if flags.ndim == 0:
        if flags:
            np.maximum(out, 0.0, out=out)
    else:
        if coarse.ndim < dims + 1 or flags.shape != (coarse.shape[-dims - 1],):
            raise ConfigError(
                f"nonnegative has {flags.size} flags but the input has shape {coarse.shape}; "
                f"give one flag per channel (axis {-dims - 1}) or a single bool"
            )
        out = np.where(flags.reshape(-1, *[1] * dims) & (out < 0), 0.0, out)
    if missing.any():
        out[~coarse_valid_mask(coarse, factors, halo=halo, dims=dims)] = np.nan
    return out.astype(out_dtype, copy=False)


def _make(method: str) -> Callable[..., np.ndarray]:
    def baseline(coarse: np.ndarray, factor: int, **kwargs) -> np.ndarray:
        return interpolate(coarse, factor, method, **kwargs)

    baseline.__name__ = f"{method}_baseline"
    baseline.__doc__ = (
        f"{method} interpolation of ``coarse [..., h, w]`` by ``factor``; see :func:`interpolate`."
    )
    return baseline


#: the 2D baselines by name -> function(coarse [..., h, w], factor, *, nonnegative=False,
#: halo=0) -> [..., H, W]; other ranks call :func:`interpolate` with a :data:`METHODS` name
BASELINES: dict[str, Callable[..., np.ndarray]] = {name: _make(name) for name in KERNELS}
