"""Writers: NetCDF/Zarr round trips on the truth grid, atomicity, streaming == one-shot."""

from __future__ import annotations

import os

import netCDF4
import numpy as np
import pytest
import xarray as xr

import geogan
from geogan.core.errors import DataError, OutputExistsError
from geogan.inference.writers import (
    EnsembleWriter,
    ensemble_to_dataset,
    spatial_dims,
    write_dataset,
)

UNITS = {"tp": "mm h-1", "t2m": "K"}
ATTRS = {"seed": 3, "checkpoint": "run/export.safetensors", "created": "2024-01-01T00:00:00+00:00"}
TIMES = np.array(["2020-01-01T00", "2020-01-01T06", "2020-01-02T00"], dtype="datetime64[ns]")
ENGINES = {"netcdf": "netcdf4", "zarr": "zarr"}


def _template_latlon():
    """Regular lat/lon grid: 1D dimension coordinates, a crs variable, a truth variable."""
    lat = np.linspace(50.0, 51.0, 6)
    lon = np.linspace(-3.0, -1.6, 8)
    return xr.Dataset(
        {
            "precip": (
                ("time", "lat", "lon"),
                np.zeros((3, 6, 8), np.float32),
                {"grid_mapping": "crs"},
            ),
            "crs": ((), np.int32(0), {"grid_mapping_name": "latitude_longitude"}),
        },
        coords={
            "time": ("time", TIMES),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )


def _template_projected():
    """Projected grid: 1D y/x in metres plus 2D lat/lon coordinates, a named grid mapping."""
    y = np.arange(6) * 2000.0
    x = np.arange(8) * 2000.0
    lat = 45.0 + 0.018 * y[:, None] / 2000 + 0.001 * x[None, :] / 2000
    lon = 7.0 + 0.025 * x[None, :] / 2000 - 0.002 * y[:, None] / 2000
    return xr.Dataset(
        {
            "rain": (("time", "y", "x"), np.zeros((3, 6, 8), np.float32), {"grid_mapping": "lcc"}),
            "lcc": ((), np.int32(0), {"grid_mapping_name": "lambert_conformal_conic"}),
        },
        coords={
            "time": ("time", TIMES),
            "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
            "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
            "lat": (("y", "x"), lat, {"units": "degrees_north"}),
            "lon": (("y", "x"), lon, {"units": "degrees_east"}),
        },
    )


def _members(shape=(4, 3, 2, 6, 8), seed=0):
    return np.random.default_rng(seed).gamma(0.5, 2.0, size=shape).astype(np.float32)


@pytest.mark.parametrize("make_template", [_template_latlon, _template_projected])
def test_ensemble_to_dataset_layout(make_template):
    tpl = make_template()
    members = _members()
    ds = ensemble_to_dataset(members, tpl, ["tp", "t2m"], UNITS, ATTRS, long_names={"tp": "precip"})
    dims = spatial_dims(tpl)
    assert ds["tp"].dims == ("member", "time", *dims)
    assert ds["member"].values.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(ds["time"].values, TIMES)
    np.testing.assert_array_equal(ds["t2m"].values, members[:, :, 1])
    assert ds["tp"].attrs["units"] == "mm h-1" and ds["tp"].attrs["long_name"] == "precip"
    assert ds["t2m"].attrs["long_name"] == "t2m"
    gm = next(iter(tpl.data_vars.values())).attrs["grid_mapping"]
    assert ds["tp"].attrs["grid_mapping"] == gm and gm in ds
    for c in tpl.coords:
        xr.testing.assert_identical(ds[c].variable, tpl[c].variable)
    assert ds.attrs["geogan_version"] == geogan.__version__
    assert ds.attrs["seed"] == 3 and ds.attrs["created"] == ATTRS["created"]
    assert "precip" not in ds and "rain" not in ds  # truth variables are not copied


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
@pytest.mark.parametrize("make_template", [_template_latlon, _template_projected])
def test_round_trip(tmp_path, fmt, make_template):
    tpl = make_template()
    ds = ensemble_to_dataset(_members(), tpl, ["tp", "t2m"], UNITS, ATTRS, member_offset=10)
    path = tmp_path / ("out.nc" if fmt == "netcdf" else "out.zarr")
    assert write_dataset(ds, path, format=fmt) == path
    with xr.open_dataset(path, engine=ENGINES[fmt]) as back:
        back = back.load()
    xr.testing.assert_identical(back, ds)
    assert back["member"].values.tolist() == [10, 11, 12, 13]
    assert back["tp"].attrs["units"] == "mm h-1"
    if "y" in tpl.dims:
        assert back["lat"].dims == ("y", "x") and "lat" in back.coords  # 2D lat/lon stay coords
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left over


def test_netcdf_compression_and_chunks(tmp_path):
    ds = ensemble_to_dataset(_members(), _template_projected(), ["tp", "t2m"], UNITS, ATTRS)
    path = write_dataset(ds, tmp_path / "out.nc")
    with netCDF4.Dataset(path) as nc:
        var = nc["tp"]
        assert var.dimensions == ("member", "time", "y", "x")
        assert var.chunking() == [1, 1, 6, 8]
        assert var.filters()["zlib"] is True
        assert "_FillValue" not in nc["lat"].ncattrs()  # coordinates have no missing values
        assert nc.dimensions["time"].isunlimited()


def test_template_read_from_file(tmp_path):
    # A template opened from disk carries the encodings of its own file; the output
    # must not inherit them (chunk sizes, compression, time units of the source).
    src = tmp_path / "truth.nc"
    _template_projected().to_netcdf(
        src, encoding={"time": {"units": "days since 1900-01-01", "dtype": "float64"}}
    )
    with xr.open_dataset(src) as tpl:
        members = _members()
        path = tmp_path / "stream.nc"
        with EnsembleWriter(path, tpl, ["tp", "t2m"], UNITS, 4, attrs=ATTRS) as w:
            for t in range(3):
                w.write(members[:, t])
        expected = ensemble_to_dataset(members, tpl, ["tp", "t2m"], UNITS, ATTRS)
    with xr.open_dataset(path) as back:
        xr.testing.assert_identical(back.load(), expected)
        assert back["time"].encoding["units"].startswith("hours since 2020-01-01")


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_refuses_existing_path_unless_overwrite(tmp_path, fmt):
    tpl = _template_latlon()
    ds = ensemble_to_dataset(_members(), tpl, ["tp", "t2m"], UNITS, ATTRS)
    path = tmp_path / "out"
    write_dataset(ds, path, format=fmt)
    with pytest.raises(OutputExistsError, match="overwrite"):
        write_dataset(ds, path, format=fmt)
    with pytest.raises(OutputExistsError):
        EnsembleWriter(path, tpl, ["tp", "t2m"], UNITS, 4, format=fmt)
    ds2 = ensemble_to_dataset(_members(seed=1), tpl, ["tp", "t2m"], UNITS, ATTRS)
    write_dataset(ds2, path, format=fmt, overwrite=True)
    with xr.open_dataset(path, engine=ENGINES[fmt]) as back:
        np.testing.assert_array_equal(back["tp"].values, ds2["tp"].values)


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
@pytest.mark.parametrize("make_template", [_template_latlon, _template_projected])
def test_streaming_writer_matches_one_shot(tmp_path, fmt, make_template):
    tpl = make_template()
    members = _members()
    ext = ".nc" if fmt == "netcdf" else ".zarr"
    one = write_dataset(
        ensemble_to_dataset(members, tpl, ["tp", "t2m"], UNITS, ATTRS), tmp_path / f"one{ext}", fmt
    )
    stream_path = tmp_path / f"stream{ext}"
    with EnsembleWriter(stream_path, tpl, ["tp", "t2m"], UNITS, 4, TIMES, fmt, attrs=ATTRS) as w:
        assert not stream_path.exists()  # nothing under the final name until close
        w.write(members[:, 0])
        w.write(members[:, 2], time_index=2)  # any order
        assert w.next_time == 1
        w.write(members[:, 1])
    assert stream_path.exists()
    with (
        xr.open_dataset(one, engine=ENGINES[fmt]) as a,
        xr.open_dataset(stream_path, engine=ENGINES[fmt]) as b,
    ):
        a, b = a.load(), b.load()
        xr.testing.assert_identical(a, b)
        for name in a.variables:  # same on-disk layout (chunks, compression, time units)
            ea = {k: v for k, v in a[name].encoding.items() if k != "source"}
            eb = {k: v for k, v in b[name].encoding.items() if k != "source"}
            assert ea.keys() == eb.keys(), name
            for k in ea:
                assert str(ea[k]) == str(eb[k]), (name, k)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([one.name, stream_path.name])


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_exception_in_streaming_writer_leaves_nothing(tmp_path, fmt):
    tpl = _template_latlon()
    path = tmp_path / "out"
    with pytest.raises(RuntimeError, match="generator failed"):
        with EnsembleWriter(path, tpl, ["tp", "t2m"], UNITS, 4, format=fmt) as w:
            w.write(_members()[:, 0])
            raise RuntimeError("generator failed")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
def test_streaming_writer_refuses_incomplete_output(tmp_path, fmt):
    tpl = _template_latlon()
    path = tmp_path / "out"
    with pytest.raises(DataError, match="never written"):
        with EnsembleWriter(path, tpl, ["tp", "t2m"], UNITS, 4, format=fmt) as w:
            w.write(_members()[:, 0])
    assert list(tmp_path.iterdir()) == []


def test_streaming_writer_checks_shapes(tmp_path):
    tpl = _template_latlon()
    w = EnsembleWriter(tmp_path / "out.nc", tpl, ["tp", "t2m"], UNITS, 4)
    try:
        with pytest.raises(DataError, match="expected"):
            w.write(np.zeros((4, 2, 6, 7), np.float32))
        with pytest.raises(IndexError):
            w.write(np.zeros((4, 2, 6, 8), np.float32), time_index=3)
        for t in range(3):
            w.write(np.full((4, 2, 6, 8), t, np.float32))
        w.close()
    finally:
        w.close()
    with xr.open_dataset(tmp_path / "out.nc") as back:
        assert back["t2m"].isel(time=2).values.min() == 2
    with pytest.raises(RuntimeError, match="closed"):
        w.write(np.zeros((4, 2, 6, 8), np.float32))


def test_3d_volume_round_trip(tmp_path):
    z = np.arange(4) * 100.0
    tpl = xr.Dataset(
        {"T": (("time", "z", "y", "x"), np.zeros((2, 4, 5, 6), np.float32))},
        coords={
            "time": ("time", TIMES[:2]),
            "z": ("z", z, {"units": "km"}),
            "y": np.arange(5.0),
            "x": np.arange(6.0),
        },
    )
    members = _members((3, 2, 1, 4, 5, 6))
    ds = ensemble_to_dataset(members, tpl, ["T"], {"T": "K"}, ATTRS)
    assert ds["T"].dims == ("member", "time", "z", "y", "x")
    path = write_dataset(ds, tmp_path / "vol.zarr", format="zarr")
    with xr.open_dataset(path, engine="zarr") as back:
        xr.testing.assert_identical(back.load(), ds)


def test_dataset_errors():
    tpl = _template_latlon()
    with pytest.raises(DataError, match="units"):
        ensemble_to_dataset(_members(), tpl, ["tp", "q"], UNITS)
    with pytest.raises(DataError, match="channels"):
        ensemble_to_dataset(_members(), tpl, ["tp"], UNITS)
    with pytest.raises(DataError, match="expected"):
        ensemble_to_dataset(_members((4, 3, 2, 6, 9)), tpl, ["tp", "t2m"], UNITS)
    with pytest.raises(DataError, match="expected"):
        ensemble_to_dataset(_members((4, 2, 2, 6, 8)), tpl, ["tp", "t2m"], UNITS)  # 2 != 3 times
    with pytest.raises(DataError, match="time"):
        ensemble_to_dataset(_members(), tpl.drop_vars("time"), ["tp", "t2m"], UNITS)
    with pytest.raises(DataError, match="format"):
        write_dataset(xr.Dataset(), os.devnull, format="grib")
