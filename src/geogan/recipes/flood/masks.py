"""Painting masks the user gives: files (PNG/JPEG, GeoTIFF, NetCDF, npy) and elevation rules.

A mask is ``[H, W]`` float32 in [0, 1] on the image's grid: 1 = paint water, 0 = leave the
pixel as it is, values between blend the painting with the image. ClimateGAN's users asked
for exactly this (cc-ai/climategan #149): a flood extent from a hydrological model, a
sea-level-rise scenario, a hand-drawn area.

- PNG/JPEG/TIFF/npy: read by :func:`geogan.data.image_list.read_image` (8/16-bit scaled
  to [0, 1]); a multi-band file uses its first band (an RGBA PNG: its alpha if the colour
  bands are constant).
- NetCDF (``.nc``): the variable ``variable`` (default the only/first data variable), 2D.
- Rule "elevation below X m": an elevation grid in metres (GeoTIFF/npy/NetCDF, or a 16-bit
  PNG of metres read unscaled) and a threshold: water where ``elevation < below_m``
  (missing elevations are dry).

Every reader refuses, in one line, a mask of another size than the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geogan.core.errors import DataError

__all__ = ["check_mask_shape", "elevation_mask", "read_elevation", "read_mask"]


def _read_netcdf(path: Path, variable: str | None, what: str) -> np.ndarray:
    import xarray as xr

    try:
        ds = xr.open_dataset(path)
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{what} {path} could not be read as NetCDF ({str(exc).splitlines()[0][:150]})"
        ) from None
    with ds:
        names = list(ds.data_vars)
        if not names:
            raise DataError(f"{what} {path} holds no data variable")
        name = variable or names[0]
        if name not in ds:
            raise DataError(f"{what} {path} has no variable {name!r} (it has {', '.join(names)})")
        arr = np.asarray(ds[name].squeeze().values, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(
            f"{what} {path}: variable {name!r} has shape {arr.shape}; a mask is 2D [y, x]"
        )
    return arr


def check_mask_shape(mask: np.ndarray, shape: tuple[int, int], source: str) -> None:
    """DataError unless ``mask`` is ``[H, W]`` of the image's ``shape``."""
    if tuple(mask.shape) != tuple(shape):
        raise DataError(
            f"mask {source} is {mask.shape[0]}x{mask.shape[1]} but the image is "
            f"{shape[0]}x{shape[1]}; give a mask on the image's grid (same rows and columns)"
        )


def read_mask(
    path: str | Path, shape: tuple[int, int] | None = None, *, variable: str | None = None
) -> np.ndarray:
    """A mask file as ``[H, W]`` float32 in [0, 1] (module docstring); checked against the
    image ``shape`` when given."""
    from geogan.data.image_list import read_image

    path = Path(path)
    if not path.is_file():
        raise DataError(f"mask {path} not found; check the path")
    if path.suffix.lower() in (".nc", ".nc4", ".netcdf"):
        arr = _read_netcdf(path, variable, "mask")
    else:
        img = read_image(path)
        if img.shape[0] == 4 and np.ptp(img[:3]) == 0:
            arr = img[3]
        else:
            arr = img[0]
    arr = np.asarray(arr, np.float64)
    if shape is not None:
        check_mask_shape(arr, shape, str(path))
    finite = np.isfinite(arr)
    if finite.any() and (arr[finite].min() < 0 or arr[finite].max() > 1):
        if arr[finite].min() >= 0 and np.all(np.isin(np.unique(arr[finite]), [0, 255])):
            arr = arr / 255.0
        else:
            raise DataError(
                f"mask {path} holds values in [{arr[finite].min():g}, {arr[finite].max():g}]; "
                "a mask must be 0/1 (or a fraction in [0, 1]) per pixel"
            )
    return np.where(finite, arr, 0.0).astype(np.float32)


def read_elevation(
    path: str | Path, shape: tuple[int, int] | None = None, *, variable: str | None = None
) -> np.ndarray:
    """An elevation grid in metres ``[H, W]`` float32 (NaN where missing)."""
    from geogan.data.image_list import read_image

    path = Path(path)
    if not path.is_file():
        raise DataError(f"elevation grid {path} not found; check the path")
    if path.suffix.lower() in (".nc", ".nc4", ".netcdf"):
        arr = _read_netcdf(path, variable, "elevation grid")
    else:
        arr = read_image(path, scale=False)
        if arr.shape[0] != 1:
            raise DataError(
                f"elevation grid {path} has {arr.shape[0]} bands; give one band of metres"
            )
        arr = arr[0]
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise DataError(
            f"elevation grid {path} is {arr.shape[0]}x{arr.shape[1]} but the image is "
            f"{shape[0]}x{shape[1]}; regrid the elevation onto the image's grid"
        )
    return np.asarray(arr, np.float32)


def elevation_mask(elevation: np.ndarray, below_m: float) -> np.ndarray:
    """The rule "elevation below ``below_m`` metres": ``[H, W]`` float32 0/1 (NaN: dry)."""
    e = np.asarray(elevation, np.float64)
    return (np.isfinite(e) & (e < below_m)).astype(np.float32)
