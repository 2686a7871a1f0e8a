"""Grids: nesting checks, coarsening, lat/lon detection and regridding of constants.

Conventions:
- Arrays are ``[..., H, W]`` with the spatial axes last (rows = y, columns = x).
- A low-resolution grid nests in a high-resolution one when ``H = factor * h`` and
  ``W = factor * w``: low-res pixel ``(i, j)`` covers high-res rows
  ``factor*i .. factor*i + factor - 1`` and the same columns.
- :func:`coarsen` crops a grid that is not a multiple of ``factor`` at the
  bottom and right edges (the last rows and columns), then average-pools;
  a block with any NaN gives NaN (an invalid coarse pixel), so the coarse field
  never mixes valid and missing data.
- :func:`regrid_to` interpolates a field on a regular 1D lat/lon grid to any
  target grid given by latitude/longitude of its pixel centres (1D axes or 2D
  arrays of a projected grid). Target points outside the source domain, or next
  to missing source values, are filled with the value of the nearest valid
  target pixel (in target pixel distance), so constants never carry NaN.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import xarray as xr
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import distance_transform_edt

from geogan.core.errors import DataError

LAT_NAMES = ("lat", "latitude", "nav_lat", "lats", "y_lat")
LON_NAMES = ("lon", "longitude", "nav_lon", "lons", "x_lon")


def check_nesting(input_shape: tuple[int, int], truth_shape: tuple[int, int], factor: int) -> None:
    """Raise a DataError unless ``truth_shape == factor * input_shape`` exactly.

    Args:
        input_shape: ``(h, w)`` of the low-resolution input grid.
        truth_shape: ``(H, W)`` of the high-resolution truth grid.
        factor: downscaling factor (``data.factor``).
    """
    h, w = (int(s) for s in input_shape[-2:])
    big_h, big_w = (int(s) for s in truth_shape[-2:])
    if (big_h, big_w) != (h * factor, w * factor):
        raise DataError(
            f"grids do not nest: truth {big_h}x{big_w} is not input {h}x{w} times factor {factor} "
            f"(= {h * factor}x{w * factor}); regrid the input to truth/factor, change data.factor, "
            "or set data.autocoarsen: true to make the input from the truth"
        )


def cropped_shape(shape: tuple[int, int], factor: int) -> tuple[int, int]:
    """``(H, W)`` cut down to multiples of ``factor`` (the bottom/right edges are dropped)."""
    big_h, big_w = shape[-2:]
    return (big_h // factor) * factor, (big_w // factor) * factor


def coarsen(x: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool the last two axes by ``factor``: ``[..., H, W] -> [..., H//f, W//f]``.

    Rows/columns beyond a multiple of ``factor`` (bottom/right) are dropped. A
    block holding any NaN gives NaN. Computed in float64, returned as float32.
    """
    big_h, big_w = cropped_shape(x.shape, factor)
    if big_h == 0 or big_w == 0:
        raise DataError(
            f"grid {x.shape[-2]}x{x.shape[-1]} is smaller than one block of factor {factor}"
        )
    x = x[..., :big_h, :big_w]
    blocks = x.reshape(*x.shape[:-2], big_h // factor, factor, big_w // factor, factor)
    return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


def upsample_nearest(x: np.ndarray, factor: int) -> np.ndarray:
    """Repeat each pixel ``factor`` times along the last two axes: ``[..., h, w] -> [..., f*h, f*w]``."""
    return np.repeat(np.repeat(x, factor, axis=-2), factor, axis=-1)


def is_lat(name: str, var: xr.DataArray) -> bool:
    return (
        name.lower() in LAT_NAMES
        or var.attrs.get("standard_name") == "latitude"
        or var.attrs.get("units") in ("degrees_north", "degree_north", "degrees_N")
    )


def is_lon(name: str, var: xr.DataArray) -> bool:
    return (
        name.lower() in LON_NAMES
        or var.attrs.get("standard_name") == "longitude"
        or var.attrs.get("units") in ("degrees_east", "degree_east", "degrees_E")
    )


def find_latlon(obj: xr.Dataset | xr.DataArray) -> tuple[xr.DataArray, xr.DataArray] | None:
    """Latitude and longitude coordinates of a grid, or None.

    Returns ``(lat, lon)``: two 1D DataArrays along different dims (a regular
    grid) or two 2D DataArrays with the grid's dims (a projected grid).
    """
    lat = lon = None
    for name, var in obj.coords.items():
        if var.ndim not in (1, 2):
            continue
        if lat is None and is_lat(str(name), var):
            lat = var
        elif lon is None and is_lon(str(name), var):
            lon = var
    if lat is None or lon is None or lat.ndim != lon.ndim:
        return None
    if lat.ndim == 1 and lat.dims == lon.dims:
        return None  # a list of points, not a grid
    return lat, lon


def lon_convention(lon: np.ndarray) -> Literal["180", "360"] | None:
    """``"360"`` if longitudes go above 180, ``"180"`` if any is negative, None if both fit."""
    lon = np.asarray(lon, dtype=np.float64)
    if np.nanmax(lon) > 180:
        return "360"
    if np.nanmin(lon) < 0:
        return "180"
    return None


def to_lon_convention(lon: np.ndarray, convention: Literal["180", "360"] | None) -> np.ndarray:
    """Longitudes wrapped to ``[-180, 180)`` (``"180"``) or ``[0, 360)`` (``"360"``)."""
    lon = np.asarray(lon, dtype=np.float64)
    if convention == "180":
        return (lon + 180.0) % 360.0 - 180.0
    if convention == "360":
        return lon % 360.0
    return lon


def regrid_to(
    src: xr.DataArray,
    target_lat: xr.DataArray | np.ndarray,
    target_lon: xr.DataArray | np.ndarray,
    method: Literal["linear", "nearest"] = "linear",
) -> xr.DataArray:
    """Interpolate a 2D field on a regular lat/lon grid onto a target grid.

    Args:
        src: ``[ny, nx]`` field with 1D latitude and longitude coordinates (either
            order, ascending or descending, longitudes 0..360 or -180..180).
        target_lat, target_lon: pixel-centre coordinates in degrees of the target grid,
            either two 1D axes (``[H]`` and ``[W]``) or two 2D arrays ``[H, W]``.
        method: ``linear`` (bilinear in lat/lon) or ``nearest``.

    Returns:
        ``[H, W]`` float32 DataArray on the target grid (dims of ``target_lat`` when 2D, else
        ``(lat_dim, lon_dim)``), with no NaN: target points outside the source domain are
        filled with the nearest valid target value.
    """
    latlon = find_latlon(src)
    if latlon is None or latlon[0].ndim != 1:
        raise DataError(
            f"field {src.name!r} needs 1D latitude/longitude coordinates (a regular grid) to be regridded; "
            "provide it on a regular lat/lon grid or already on the truth grid"
        )
    slat, slon = latlon
    src = src.transpose(slat.dims[0], slon.dims[0])
    values = np.asarray(src.values, dtype=np.float64)
    lat_axis = np.asarray(slat.values, dtype=np.float64)
    tlat = np.asarray(getattr(target_lat, "values", target_lat), dtype=np.float64)
    tlon = np.asarray(getattr(target_lon, "values", target_lon), dtype=np.float64)

    # The source follows the target's longitude convention (the output lives on the target grid).
    convention = lon_convention(tlon) or lon_convention(np.asarray(slon.values))
    lon_axis = to_lon_convention(np.asarray(slon.values), convention)
    tlon = to_lon_convention(tlon, convention)
    lat_axis, lon_axis, values = _sorted_unique(lat_axis, lon_axis, values)
    lon_axis, values = _wrap_global(lon_axis, values)

    if tlat.ndim == 1 and tlon.ndim == 1:
        grid_lat, grid_lon = np.meshgrid(tlat, tlon, indexing="ij")
        dims = (_dim(target_lat, "lat"), _dim(target_lon, "lon"))
    elif tlat.ndim == 2 and tlat.shape == tlon.shape:
        grid_lat, grid_lon = tlat, tlon
        dims = tuple(getattr(target_lat, "dims", ("y", "x")))
    else:
        raise DataError(
            f"target latitude {tlat.shape} and longitude {tlon.shape} must be two 1D axes or two 2D arrays of one shape"
        )
    if lat_axis.size < 2 or lon_axis.size < 2:
        method = "nearest"  # a single row or column cannot be interpolated linearly
    interp = RegularGridInterpolator(
        (lat_axis, lon_axis), values, method=method, bounds_error=False, fill_value=np.nan
    )
    out = interp(np.stack([grid_lat.ravel(), grid_lon.ravel()], axis=-1)).reshape(grid_lat.shape)
    out = fill_nearest(out, name=str(src.name))
    coords = {}
    if tlat.ndim == 2:
        coords = {"lat": (dims, tlat.astype(np.float32)), "lon": (dims, tlon.astype(np.float32))}
    else:
        coords = {dims[0]: tlat, dims[1]: tlon}
    return xr.DataArray(
        out.astype(np.float32), dims=dims, coords=coords, name=src.name, attrs=dict(src.attrs)
    )


def _dim(obj, default: str) -> str:
    dims = getattr(obj, "dims", None)
    return str(dims[0]) if dims else default


def _sorted_unique(
    lat: np.ndarray, lon: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort both axes ascending and drop repeated coordinates (e.g. 0 and 360 after wrapping)."""
    lat_u, lat_idx = np.unique(lat, return_index=True)
    lon_u, lon_idx = np.unique(lon, return_index=True)
    return lat_u, lon_u, values[np.ix_(lat_idx, lon_idx)]


def _wrap_global(lon: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pad a global grid with one column each side so targets at the seam interpolate across it."""
    if lon.size < 3:
        return lon, values
    step = float(np.median(np.diff(lon)))
    if abs(lon[-1] - lon[0] + step - 360.0) > 0.5 * step:
        return lon, values
    lon = np.concatenate([[lon[-1] - 360.0], lon, [lon[0] + 360.0]])
    values = np.concatenate([values[:, -1:], values, values[:, :1]], axis=1)
    return lon, values


def fill_nearest(x: np.ndarray, name: str = "field") -> np.ndarray:
    """Replace NaN in a 2D array by the nearest finite value (Euclidean distance in pixels).

    Warns with the share filled; a DataError if nothing is finite (no overlap).
    """
    invalid = ~np.isfinite(x)
    if not invalid.any():
        return x
    if invalid.all():
        raise DataError(
            f"{name!r} does not overlap the truth grid at all; check the constants' coordinates and domain"
        )
    share = float(invalid.mean())
    warnings.warn(
        f"{name!r}: {share:.1%} of the target grid lies outside the source or next to missing values; "
        "filled with the nearest valid value",
        stacklevel=3,
    )
    idx = distance_transform_edt(invalid, return_distances=False, return_indices=True)
    return x[tuple(idx)]
