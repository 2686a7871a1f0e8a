"""User masks: PNG, GeoTIFF, NetCDF, npy, the elevation rule, and one-line size errors."""

import numpy as np
import pytest
import tifffile
import xarray as xr
from PIL import Image

from geogan.core.errors import DataError
from geogan.recipes.flood.masks import elevation_mask, read_elevation, read_mask


@pytest.fixture
def mask01():
    m = np.zeros((8, 10), np.float32)
    m[2:5, 3:7] = 1
    return m


def test_every_format_reads_the_same_mask(tmp_path, mask01):
    Image.fromarray((mask01 * 255).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray(mask01.astype(np.uint8)).save(tmp_path / "m01.png")  # 0/1 bytes
    tifffile.imwrite(tmp_path / "m.tif", mask01)
    np.save(tmp_path / "m.npy", mask01)
    xr.Dataset({"flood": (("y", "x"), mask01)}).to_netcdf(tmp_path / "m.nc")
    for name in ("m.png", "m.tif", "m.npy", "m.nc"):
        np.testing.assert_array_equal(read_mask(tmp_path / name, (8, 10)), mask01)
    # 0/1 bytes in an 8-bit PNG are read as 0 and 1/255: a mask, but only a faint one
    assert read_mask(tmp_path / "m01.png").max() == pytest.approx(1 / 255)


def test_wrong_size_is_one_line(tmp_path, mask01):
    np.save(tmp_path / "m.npy", mask01)
    with pytest.raises(DataError) as err:
        read_mask(tmp_path / "m.npy", (16, 16))
    assert "8x10 but the image is 16x16" in str(err.value) and "\n" not in str(err.value)


def test_bad_values_and_missing(tmp_path):
    np.save(tmp_path / "bad.npy", np.full((4, 4), 3.0, np.float32))
    with pytest.raises(DataError, match="must be 0/1"):
        read_mask(tmp_path / "bad.npy")
    with pytest.raises(DataError, match="not found"):
        read_mask(tmp_path / "nope.png")


def test_elevation_rule(tmp_path):
    elev = np.array([[-2.0, 0.0, 4.9], [5.0, np.nan, 100.0]], np.float32)
    tifffile.imwrite(tmp_path / "dem.tif", elev)
    e = read_elevation(tmp_path / "dem.tif", (2, 3))
    np.testing.assert_array_equal(elevation_mask(e, 5.0), [[1, 1, 1], [0, 0, 0]])
    with pytest.raises(DataError, match="regrid the elevation"):
        read_elevation(tmp_path / "dem.tif", (3, 3))
