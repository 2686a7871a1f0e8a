"""Opening NetCDF/Zarr/GRIB sources and the errors for bad ones."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from geogan.core.errors import DataError
from geogan.core.registry import READERS
from geogan.data.sources import open_source


def test_netcdf_layout(radar_nc):
    ds = open_source(radar_nc, ["precip"])
    assert ds["precip"].dims == ("time", "y", "x")
    assert ds["precip"].shape == (8, 32, 40)
    assert "lat" in ds.coords and ds["lat"].dims == ("y", "x")
    assert "crs" in ds.coords
    # the truth grid keeps its orientation (y descending as in the file)
    assert ds["y"].values[0] > ds["y"].values[-1]
    ds.close()


def test_zarr_with_and_without_suffix(tmp_path, synth):
    src = synth.radar_dataset()
    for name in ("radar.zarr", "radar_store"):
        src.to_zarr(tmp_path / name, mode="w", consolidated=False)
        ds = open_source(tmp_path / name, ["precip"])
        np.testing.assert_array_equal(ds["precip"].values, src["precip"].values)
        ds.close()


def test_time_sorted_dims_reordered_and_renamed(tmp_path, synth):
    src = synth.radar_dataset(times=5)
    shuffled = src.isel(time=[3, 0, 4, 1, 2]).rename({"time": "valid_time"})
    shuffled["precip"] = (
        shuffled["precip"].transpose("y", "x", "valid_time").expand_dims(level=[850])
    )
    path = synth.write_nc(shuffled, tmp_path / "odd.nc")
    ds = open_source(path, ["precip"], time_dim="valid_time")
    assert ds["precip"].dims == ("time", "y", "x")
    assert np.all(np.diff(ds["time"].values) > np.timedelta64(0))
    np.testing.assert_array_equal(ds["precip"].values, src["precip"].values)
    ds.close()


def test_missing_file(tmp_path):
    with pytest.raises(
        DataError, match=r"truth file .*nope\.nc not found; check data\.truth\.path"
    ):
        open_source(tmp_path / "nope.nc", ["precip"], role="truth")


def test_missing_variable_names_closest(radar_nc):
    with pytest.raises(DataError) as info:
        open_source(radar_nc, ["precp"], role="truth")
    msg = str(info.value)
    assert "did you mean 'precip'?" in msg
    assert "available: precip" in msg
    assert "data.truth.variables" in msg
    assert "\n" not in msg


def test_not_netcdf(tmp_path):
    path = tmp_path / "notes.nc"
    path.write_text("this is not a netcdf file\n")
    with pytest.raises(DataError, match="is not a NetCDF file"):
        open_source(path, ["precip"])


def test_truncated_netcdf(radar_nc, tmp_path):
    data = radar_nc.read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="corrupt or truncated"):
        open_source(cut, ["precip"])


def test_duplicate_times_rejected(tmp_path, synth):
    src = synth.radar_dataset(times=4)
    dup = src.isel(time=[0, 1, 1, 2])
    path = synth.write_nc(dup, tmp_path / "dup.nc")
    with pytest.raises(DataError, match="1 duplicate time"):
        open_source(path, ["precip"])


def test_empty_selection(radar_nc, tmp_path, synth):
    with pytest.raises(DataError, match="no variables selected"):
        open_source(radar_nc, [], role="input")
    empty = synth.radar_dataset().isel(time=slice(0, 0))
    path = synth.write_nc(empty, tmp_path / "empty.nc")
    with pytest.raises(DataError, match="no time steps"):
        open_source(path, ["precip"])


def test_unknown_suffix_and_missing_time_dim(tmp_path, radar_nc):
    path = tmp_path / "data.bin"
    path.write_bytes(b"\x00\x01\x02\x03 nothing")
    with pytest.raises(DataError, match="not a NetCDF, Zarr or GRIB source"):
        open_source(path, ["precip"])
    with pytest.raises(DataError, match="has no time dimension 'valid_time'"):
        open_source(radar_nc, ["precip"], time_dim="valid_time", role="truth")


def test_constants_without_time(constants_nc):
    ds = open_source(constants_nc, ["orography", "lsm"], role="constants", require_time=False)
    assert ds["orography"].dims == ("lat", "lon")
    ds.close()


@pytest.mark.skipif(importlib.util.find_spec("cfgrib") is not None, reason="cfgrib installed")
def test_grib_without_cfgrib_is_clear(tmp_path):
    path = tmp_path / "field.grib"
    path.write_bytes(b"GRIB" + b"\x00" * 60)
    with pytest.raises(DataError, match=r"needs cfgrib: pip install 'geogan\[grib\]'"):
        open_source(path, ["t"])


def test_every_registered_reader(tmp_path, radar_nc, synth):
    """Each READERS entry opens a source of its kind (GRIB: a clear error without cfgrib)."""
    assert READERS.names(), "no readers registered"
    zarr_store = tmp_path / "store.zarr"
    synth.radar_dataset().to_zarr(zarr_store, mode="w", consolidated=False)
    for name, reader in READERS.items():
        if reader.__name__ == "read_netcdf":
            path = tmp_path / f"copy.{name}"
            shutil.copy(radar_nc, path)
            ds = open_source(path, ["precip"])
            assert ds["precip"].shape == (8, 32, 40)
            ds.close()
        elif reader.__name__ == "read_zarr":
            ds = open_source(zarr_store, ["precip"])
            assert ds["precip"].shape == (8, 32, 40)
            ds.close()
        elif reader.__name__ == "read_grib":
            path = tmp_path / f"bad.{name}"
            path.write_bytes(b"GRIB" + b"\x00" * 60)
            with pytest.raises(DataError):
                open_source(path, ["t"])
        else:  # pragma: no cover - a new reader must be added here
            pytest.fail(f"reader {name!r} is not exercised by this test")
