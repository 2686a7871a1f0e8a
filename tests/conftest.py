"""Synthetic sources for the data-layer tests, written by code into ``tmp_path``.

``radar_dataset`` mimics a radar file: ``precip`` (time, y, x) in mm/h on a
projected grid with 1D ``y`` (descending) / ``x`` in metres, 2D ``lat``/``lon``
(a slightly rotated, curvilinear grid), a ``crs`` coordinate, and NaN outside a
disc ("radar range").
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geogan.recipes.downscaling.config import DataConfig

# helper modules of the test suite (tiny_data, ...) import by name from any test folder
sys.path.insert(0, str(Path(__file__).parent))


def radar_latlon(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """2D pixel-centre lat/lon of a small rotated, slightly curved grid near 52N 5E."""
    row, col = np.meshgrid(
        np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij"
    )
    lat = 52.0 - 0.01 * row + 0.002 * col + 1e-5 * col**2
    lon = 5.0 + 0.015 * col + 0.003 * row - 1e-5 * row**2
    return lat, lon


def radar_dataset(
    times: int = 8,
    height: int = 32,
    width: int = 40,
    start: str = "2020-01-01",
    freq: str = "3h",
    seed: int = 0,
    disc: bool = True,
) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    precip = rng.gamma(0.5, 2.0, size=(times, height, width)).astype(np.float32)
    precip[rng.random(precip.shape) < 0.4] = 0.0
    if disc:
        row, col = np.ogrid[:height, :width]
        outside = (row - height / 2) ** 2 + (col - width / 2) ** 2 > (0.6 * min(height, width)) ** 2
        precip[:, outside] = np.nan
    lat, lon = radar_latlon(height, width)
    y = 1000.0 * (height - 1 - np.arange(height)) - 3.6e6  # descending, as in radar files
    x = 1000.0 * np.arange(width) + 500.0
    ds = xr.Dataset(
        {"precip": (("time", "y", "x"), precip, {"units": "mm/h", "grid_mapping": "crs"})},
        coords={
            "time": pd.date_range(start, periods=times, freq=freq).values,
            "y": ("y", y, {"units": "m"}),
            "x": ("x", x, {"units": "m"}),
            "lat": (
                ("y", "x"),
                lat.astype(np.float32),
                {"standard_name": "latitude", "units": "degrees_north"},
            ),
            "lon": (
                ("y", "x"),
                lon.astype(np.float32),
                {"standard_name": "longitude", "units": "degrees_east"},
            ),
            "crs": (
                (),
                np.int32(0),
                {"grid_mapping_name": "polar_stereographic", "proj4": "+proj=stere"},
            ),
        },
        attrs={"source": "synthetic test radar"},
    )
    return ds


def constants_dataset(
    a: float = 100.0, b: float = -50.0, descending: bool = True, lon360: bool = False
) -> xr.Dataset:
    """``orography = a*lat + b*lon`` (m) and a land-sea mask on a regular 0.05 deg grid around the radar."""
    lat = np.arange(51.0, 53.0001, 0.05)
    lon = np.arange(4.0, 6.5001, 0.05)
    if descending:
        lat = lat[::-1]
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    orog = (a * lat2 + b * lon2).astype(np.float32)
    lsm = (lon2 > 5.2).astype(np.float32)
    lon_coord = lon % 360 if lon360 else lon
    return xr.Dataset(
        {
            "orography": (("lat", "lon"), orog, {"units": "m"}),
            "lsm": (("lat", "lon"), lsm, {"units": "1"}),
        },
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon_coord, {"units": "degrees_east"}),
        },
    )


def write_nc(ds: xr.Dataset, path: Path) -> Path:
    ds.to_netcdf(path, engine="netcdf4")
    return path


@pytest.fixture
def radar_nc(tmp_path: Path) -> Path:
    return write_nc(radar_dataset(), tmp_path / "radar.nc")


@pytest.fixture
def constants_nc(tmp_path: Path) -> Path:
    return write_nc(constants_dataset(), tmp_path / "constants.nc")


def autocoarsen_config(truth_path: Path | str, /, **overrides) -> DataConfig:
    """An autocoarsen config for a ``radar_dataset`` file: factor 4, patches of 16."""
    kwargs = {
        "truth": {"path": str(truth_path), "variables": ["precip"]},
        "autocoarsen": True,
        "factor": 4,
        "patch_size": 16,
        "transforms": {"precip": {"log1p": True, "norm": "zscore"}},
        "sampling": {"candidate_stride": 4, "min_valid_fraction": 0.3},
    }
    kwargs.update(overrides)
    return DataConfig(**kwargs)


@pytest.fixture
def synth():
    """The builders above, for tests (conftest modules are not imported by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        radar_dataset=radar_dataset,
        radar_latlon=radar_latlon,
        constants_dataset=constants_dataset,
        write_nc=write_nc,
        autocoarsen_config=autocoarsen_config,
    )
