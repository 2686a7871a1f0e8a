"""GRIB through cfgrib, checked against the shared ERA5 ensemble sample (its NetCDF twin).

Skipped without cfgrib (optional extra ``geogan[grib]``) or without ``../shared/data``;
the error for a missing cfgrib is checked everywhere.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from geogan.core.errors import DataError
from geogan.data.sources import open_source, read_grib, read_netcdf, reader_for

SHARED = Path(__file__).parents[3] / "shared/data/ensemble"
GRIB = SHARED / "era5_levels_members.grib"
NC = SHARED / "era5_levels_members.nc"

needs_cfgrib = pytest.mark.skipif(
    importlib.util.find_spec("cfgrib") is None, reason="cfgrib not installed (geogan[grib])"
)
needs_shared = pytest.mark.skipif(not GRIB.is_file() or not NC.is_file(), reason=f"{SHARED} absent")


@needs_cfgrib
@needs_shared
def test_grib_matches_netcdf(tmp_path):
    # Read a copy in a folder we can inspect: cfgrib must not leave .idx files behind.
    grib = tmp_path / GRIB.name
    shutil.copy(GRIB, grib)
    assert reader_for(grib) is read_grib
    g = read_grib(grib)
    n = read_netcdf(NC)
    try:
        assert dict(g.sizes) == {
            "number": 10,
            "time": 4,
            "isobaricInhPa": 2,
            "latitude": 61,
            "longitude": 120,
        }
        assert {"z", "t"} <= set(g.data_vars)
        for coord in ("number", "time", "isobaricInhPa", "latitude", "longitude"):
            np.testing.assert_array_equal(g[coord].values, n[coord].values)
        for var in ("z", "t"):
            assert g[var].dims == n[var].dims
            np.testing.assert_array_equal(g[var].values, n[var].values)
        assert g["t"].attrs.get("units") == "K"
    finally:
        g.close()
        n.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [GRIB.name]


@needs_cfgrib
@needs_shared
def test_grib_member_level_through_open_source():
    """A 5D GRIB variable needs a selection; one member and level fits the common layout."""
    with pytest.raises(DataError, match="extra dimension 'number' of size 10"):
        open_source(GRIB, ["z"])
    ds = read_grib(GRIB)
    n = read_netcdf(NC)
    try:
        one = ds.isel(number=3, isobaricInhPa=1)
        assert one["t"].dims == ("time", "latitude", "longitude")
        np.testing.assert_array_equal(
            one["t"].values, n["t"].isel(number=3, isobaricInhPa=1).values
        )
    finally:
        ds.close()
        n.close()


@needs_cfgrib
@needs_shared
def test_truncated_grib_is_an_error_not_fewer_times(tmp_path):
    data = GRIB.read_bytes()
    path = tmp_path / "cut.grib"
    path.write_bytes(data[: len(data) // 2 + 100])
    with pytest.raises(DataError, match="could not be read as GRIB.*truncated"):
        read_grib(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.grib"]


@needs_cfgrib
def test_not_grib_content(tmp_path):
    path = tmp_path / "text.grib"
    path.write_bytes(b"hello " * 20)
    with pytest.raises(DataError, match="holds no GRIB message"):
        read_grib(path)
    garbage = tmp_path / "garbage.grib2"
    garbage.write_bytes(b"GRIB" + b"\x00" * 60)
    with pytest.raises(DataError, match=r"garbage\.grib2"):
        open_source(garbage, ["t"])


def test_missing_cfgrib_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cfgrib", None)  # import cfgrib -> ImportError
    path = tmp_path / "field.grib"
    path.write_bytes(b"GRIB" + b"\x00" * 60)
    with pytest.raises(DataError) as info:
        read_grib(path)
    msg = str(info.value)
    assert "needs cfgrib: pip install 'geogan[grib]'" in msg and "\n" not in msg
