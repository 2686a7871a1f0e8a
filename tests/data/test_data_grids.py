"""Nesting, coarsening and regridding of constants."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from geogan.core.errors import DataError
from geogan.data.grids import (
    check_nesting,
    coarsen,
    find_latlon,
    lon_convention,
    regrid_to,
    to_lon_convention,
    upsample_nearest,
)


def test_check_nesting_message():
    check_nesting((96, 88), (768, 704), 8)  # nests: no error
    with pytest.raises(DataError) as info:
        check_nesting((96, 88), (765, 700), 8)
    assert str(info.value).startswith(
        "grids do not nest: truth 765x700 is not input 96x88 times factor 8"
    )


def test_coarsen_is_block_mean_with_bottom_right_crop():
    rng = np.random.default_rng(1)
    x = rng.random((3, 2, 19, 23)).astype(np.float32)
    out = coarsen(x, 4)
    assert out.shape == (3, 2, 4, 5)
    expected = np.empty((3, 2, 4, 5))
    for i in range(4):
        for j in range(5):
            expected[..., i, j] = (
                x[..., 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].astype(np.float64).mean(axis=(-2, -1))
            )
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_coarsen_nan_block_is_invalid():
    x = np.ones((8, 8), dtype=np.float32)
    x[5, 2] = np.nan
    out = coarsen(x, 4)
    assert np.isnan(out[1, 0])
    assert np.isfinite(out).sum() == 3
    np.testing.assert_array_equal(upsample_nearest(np.isfinite(out), 4)[4:, :4], False)


def _linear_source(
    lat: np.ndarray, lon: np.ndarray, a: float = 3.0, b: float = -2.0
) -> xr.DataArray:
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    return xr.DataArray(
        a * lat2 + b * np.where(lon2 > 180, lon2 - 360, lon2),
        dims=("lat", "lon"),
        coords={"lat": lat, "lon": lon},
        name="orog",
    )


def test_linear_field_onto_curvilinear_grid(synth):
    lat2d, lon2d = synth.radar_latlon(30, 35)
    src = _linear_source(np.arange(51.0, 53.0, 0.1), np.arange(4.0, 6.5, 0.1))
    target_lat = xr.DataArray(lat2d, dims=("y", "x"))
    target_lon = xr.DataArray(lon2d, dims=("y", "x"))
    out = regrid_to(src, target_lat, target_lon, "linear")
    assert out.dims == ("y", "x") and out.shape == (30, 35)
    np.testing.assert_allclose(out.values, 3.0 * lat2d - 2.0 * lon2d, atol=1e-4)
    assert out["lat"].dims == ("y", "x")


def test_descending_latitude_source(synth):
    lat2d, lon2d = synth.radar_latlon(10, 12)
    src = _linear_source(np.arange(53.0, 51.0, -0.1), np.arange(4.0, 6.5, 0.1))
    out = regrid_to(src, lat2d, lon2d, "linear")
    np.testing.assert_allclose(out.values, 3.0 * lat2d - 2.0 * lon2d, atol=1e-4)


def test_lon_0_360_source_onto_minus180_180_target():
    # source around the Greenwich meridian in 0..360: 350..359.5 and 0..10
    lon = np.concatenate([np.arange(350.0, 360.0, 0.5), np.arange(0.0, 10.01, 0.5)])
    src = _linear_source(np.arange(40.0, 50.0, 0.5), lon)
    tlat, tlon = np.meshgrid(np.linspace(41, 48, 7), np.linspace(-8.0, 8.0, 9), indexing="ij")
    assert lon_convention(tlon) == "180"
    out = regrid_to(src, tlat, tlon, "linear")
    np.testing.assert_allclose(out.values, 3.0 * tlat - 2.0 * tlon, atol=1e-4)


def test_minus180_source_onto_0_360_target_and_1d_axes():
    src = _linear_source(np.arange(40.0, 50.0, 0.5), np.arange(-20.0, 20.0, 0.5))
    lat1d = xr.DataArray(np.linspace(41, 48, 6), dims="lat")
    lon1d = xr.DataArray(np.array([350.0, 355.0, 359.0, 1.0, 5.0]), dims="lon")
    out = regrid_to(src, lat1d, lon1d, "linear")
    assert out.dims == ("lat", "lon") and out.shape == (6, 5)
    signed = to_lon_convention(lon1d.values, "180")
    np.testing.assert_allclose(
        out.values, 3.0 * lat1d.values[:, None] - 2.0 * signed[None, :], atol=1e-4
    )


def test_global_source_wraps_across_seam():
    lon = np.arange(0.0, 360.0, 10.0)
    lat = np.array([-10.0, 0.0, 10.0])
    values = np.tile(np.cos(np.deg2rad(lon)), (3, 1))
    src = xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="g")
    out = regrid_to(src, np.array([[0.0]]), np.array([[355.0]]), "linear")
    # halfway between lon 350 and 360(=0): mean of the two neighbours, not a fill value
    np.testing.assert_allclose(out.values[0, 0], 0.5 * (np.cos(np.deg2rad(350)) + 1.0), atol=1e-6)


def test_outside_domain_filled_with_nearest_valid():
    src = _linear_source(np.arange(0.0, 10.0, 1.0), np.arange(0.0, 10.0, 1.0))
    tlat, tlon = np.meshgrid(np.arange(5.0, 12.0, 1.0), np.full(3, 4.0), indexing="ij")
    with pytest.warns(UserWarning, match="filled with the nearest valid value"):
        out = regrid_to(src, tlat, tlon, "linear")
    assert np.isfinite(out.values).all()
    # rows beyond lat 9 repeat the last valid row
    np.testing.assert_allclose(out.values[5:], out.values[4:5].repeat(2, axis=0))
    np.testing.assert_allclose(out.values[4], 3.0 * 9 - 2.0 * 4)


def test_no_overlap_and_nearest_method():
    src = _linear_source(np.arange(0.0, 10.0, 1.0), np.arange(0.0, 10.0, 1.0))
    with pytest.raises(DataError, match="does not overlap"):
        regrid_to(src, np.full((2, 2), 50.0), np.full((2, 2), 50.0), "linear")
    out = regrid_to(src, np.array([[2.4]]), np.array([[6.6]]), "nearest")
    assert out.values[0, 0] == pytest.approx(3.0 * 2 - 2.0 * 7)


def test_find_latlon(synth):
    ds = synth.radar_dataset()
    lat, lon = find_latlon(ds)
    assert lat.dims == ("y", "x") and lon.dims == ("y", "x")
    assert find_latlon(ds.drop_vars(["lat", "lon"])) is None
