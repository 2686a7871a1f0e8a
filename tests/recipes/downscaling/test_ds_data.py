"""DownscalingData: alignment, autocoarsen, constants, split, statistics, full fields."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from geogan.config.schema import SplitConfig, TransformConfig
from geogan.core.errors import DataError
from geogan.data import split_times
from geogan.data.transforms import pre_forward
from geogan.recipes.downscaling.config import DataConfig
from geogan.recipes.downscaling.data import DownscalingData


def _block_mean(x: np.ndarray, f: int) -> np.ndarray:
    h, w = x.shape[-2] // f * f, x.shape[-1] // f * f
    x = x[..., :h, :w].astype(np.float64)
    return x.reshape(*x.shape[:-2], h // f, f, w // f, f).mean(axis=(-3, -1))


def _input_from_truth(
    truth: xr.Dataset, f: int, name: str = "tp", flip_y: bool = False
) -> xr.Dataset:
    """A coarse input file made from the truth (y ascending when ``flip_y``)."""
    coarse = _block_mean(truth["precip"].values, f).astype(np.float32)
    y = truth["y"].values.reshape(-1, f).mean(axis=1)
    x = truth["x"].values.reshape(-1, f).mean(axis=1)
    if flip_y:
        coarse, y = coarse[:, ::-1, :], y[::-1]
    return xr.Dataset(
        {name: (("time", "y", "x"), coarse, {"units": "mm/h"})},
        coords={"time": truth["time"].values, "y": ("y", y, {"units": "m"}), "x": ("x", x)},
    )


def test_autocoarsen_input_is_block_mean_and_crops_bottom_right(tmp_path, synth):
    truth = synth.radar_dataset(height=34, width=41)
    path = synth.write_nc(truth, tmp_path / "t.nc")
    data = DownscalingData.from_config(synth.autocoarsen_config(path))
    assert data.truth_shape == (32, 40) and data.input_shape == (8, 10)
    raw = truth["precip"].values
    np.testing.assert_array_equal(data.store.truth(0)[0], raw[0, :32, :40])
    for t in range(raw.shape[0]):
        np.testing.assert_allclose(
            data.store.input(t)[0], _block_mean(raw[t], 4), rtol=1e-6, equal_nan=True
        )
    template = data.truth_template()
    np.testing.assert_array_equal(template["y"].values, truth["y"].values[:32])
    np.testing.assert_array_equal(template["x"].values, truth["x"].values[:40])
    assert template["lat"].dims == ("y", "x") and template["lat"].shape == (32, 40)
    assert template["crs"].attrs["grid_mapping_name"] == "polar_stereographic"
    assert template.attrs["source"] == "synthetic test radar"
    assert data.units == {"precip": "mm/h"}
    assert data.input_vars == data.target_vars == ["precip"] and data.constant_vars == []


def test_nan_pixel_invalidates_its_coarse_block(tmp_path, synth):
    truth = synth.radar_dataset(disc=False)
    truth["precip"][0, 5, 6] = np.nan
    path = synth.write_nc(truth, tmp_path / "t.nc")
    data = DownscalingData.from_config(synth.autocoarsen_config(path))
    norm = data.compute_normalisation()
    raw = data.raw_field(0)
    assert np.isnan(raw["input"][0, 1, 1]) and np.isfinite(raw["input"]).sum() == 8 * 10 - 1
    item = data.field(0, norm)
    mask = item["mask"][0].numpy()
    assert mask[4:8, 4:8].sum() == 0
    assert mask.sum() == 32 * 40 - 16
    assert torch.isfinite(item["target"]).all() and torch.isfinite(item["input"]).all()
    assert item["input"][0, 1, 1] == 0 and item["target"][0, 5, 6] == 0
    assert item["constants"].shape == (0, 32, 40)


def test_input_file_times_intersect_and_orientation_matches(tmp_path, synth):
    truth = synth.radar_dataset(times=8)
    inp = _input_from_truth(truth, 4, flip_y=True).isel(time=slice(2, 8))
    later = inp.isel(time=[0]).assign_coords(time=[np.datetime64("2030-01-01T00:00", "ns")])
    inp = xr.concat([inp, later], dim="time")
    tp, ip = synth.write_nc(truth, tmp_path / "t.nc"), synth.write_nc(inp, tmp_path / "i.nc")
    cfg = DataConfig(
        truth={"path": "t.nc", "variables": ["precip"]},
        input={"path": "i.nc", "variables": ["tp"]},
        factor=4,
        patch_size=16,
    )
    data = DownscalingData.from_config(cfg, base_dir=tmp_path)  # relative paths
    np.testing.assert_array_equal(data.times, truth["time"].values[2:8])
    for t in range(data.times.size):
        np.testing.assert_allclose(
            data.store.input(t)[0],
            _block_mean(truth["precip"].values[t + 2], 4),
            rtol=1e-6,
            equal_nan=True,
        )
    assert data.input_vars == ["tp"] and data.units["tp"] == "mm/h"
    assert tp.exists() and ip.exists()


def test_grids_do_not_nest(tmp_path, synth):
    truth = synth.radar_dataset()
    inp = _input_from_truth(truth, 4).isel(y=slice(0, 7))
    synth.write_nc(truth, tmp_path / "t.nc")
    synth.write_nc(inp, tmp_path / "i.nc")
    cfg = DataConfig(
        truth={"path": str(tmp_path / "t.nc"), "variables": ["precip"]},
        input={"path": str(tmp_path / "i.nc"), "variables": ["tp"]},
        factor=4,
        patch_size=16,
    )
    with pytest.raises(
        DataError, match="grids do not nest: truth 32x40 is not input 7x10 times factor 4"
    ):
        DownscalingData.from_config(cfg)


def test_no_overlapping_times(tmp_path, synth):
    truth = synth.radar_dataset()
    inp = _input_from_truth(truth, 4).assign_coords(
        time=pd.date_range("2018-05-01", periods=8, freq="h").values
    )
    synth.write_nc(truth, tmp_path / "t.nc")
    synth.write_nc(inp, tmp_path / "i.nc")
    cfg = DataConfig(
        truth={"path": str(tmp_path / "t.nc"), "variables": ["precip"]},
        input={"path": str(tmp_path / "i.nc"), "variables": ["tp"]},
        factor=4,
        patch_size=16,
    )
    with pytest.raises(DataError) as info:
        DownscalingData.from_config(cfg)
    assert str(info.value).startswith(
        "no overlapping times between input (2018-05-01T00:00..2018-05-01T07:00) and truth (2020-01-01T00:00.."
    )


def test_missing_paths_and_variables(tmp_path, radar_nc, synth):
    cfg = DataConfig(
        truth={"path": str(radar_nc), "variables": ["precip"]}, factor=4, patch_size=16
    )
    with pytest.raises(DataError, match=r"data\.input\.path is not set.*autocoarsen"):
        DownscalingData.from_config(cfg)
    cfg = synth.autocoarsen_config(tmp_path / "nothere.nc")
    with pytest.raises(DataError, match=r"not found; check data\.truth\.path"):
        DownscalingData.from_config(cfg)
    cfg = synth.autocoarsen_config(radar_nc, truth={"path": str(radar_nc), "variables": ["rain"]})
    with pytest.raises(DataError, match="data.truth.variables"):
        DownscalingData.from_config(cfg)


def test_constants_regridded_onto_curvilinear_truth(tmp_path, radar_nc, constants_nc, synth):
    cfg = synth.autocoarsen_config(
        radar_nc, constants={"path": str(constants_nc), "variables": ["orography", "lsm"]}
    )
    data = DownscalingData.from_config(cfg)
    template = data.truth_template()
    lat, lon = template["lat"].values.astype(np.float64), template["lon"].values.astype(np.float64)
    orog = data.store.constants()[0]
    np.testing.assert_allclose(orog, 100.0 * lat - 50.0 * lon, atol=2e-3)
    assert data.constant_vars == ["orography", "lsm"] and data.units["orography"] == "m"
    norm = data.compute_normalisation()
    item = data.patch_dataset(norm, seed=0, length=4)[0]
    assert item["constants"].shape == (2, 16, 16)
    # ascending-latitude constants give the same field as descending ones
    asc = synth.write_nc(synth.constants_dataset(descending=False), tmp_path / "asc.nc")
    cfg2 = synth.autocoarsen_config(
        radar_nc, constants={"path": str(asc), "variables": ["orography"]}
    )
    np.testing.assert_allclose(
        DownscalingData.from_config(cfg2).store.constants()[0], orog, rtol=1e-6
    )


def test_constant_name_clash_is_an_error(tmp_path, radar_nc, synth):
    const = synth.constants_dataset().rename({"lsm": "precip"})
    path = synth.write_nc(const, tmp_path / "c.nc")
    cfg = synth.autocoarsen_config(radar_nc, constants={"path": str(path), "variables": ["precip"]})
    with pytest.raises(DataError, match="share a name"):
        DownscalingData.from_config(cfg)


def test_split_last_quarter_of_each_day():
    times = pd.date_range("2020-01-01", periods=24, freq="3h").values  # 3 days x 8
    train, test = split_times(times, SplitConfig(holdout_fraction=0.25, group_by="day"))
    assert set(train).isdisjoint(test) and len(train) + len(test) == 24
    np.testing.assert_array_equal(test, [6, 7, 14, 15, 22, 23])
    train_all, test_all = split_times(times, SplitConfig(holdout_fraction=0.25, group_by="all"))
    np.testing.assert_array_equal(test_all, np.arange(18, 24))
    assert set(train_all).isdisjoint(test_all)
    with pytest.raises(DataError, match="group_by: all"):
        split_times(np.arange(5), SplitConfig(group_by="day"))


def test_split_on_data_and_statistics_use_training_times_only(tmp_path, synth):
    truth = synth.radar_dataset(times=16, freq="3h")  # 2 days x 8
    path = synth.write_nc(truth, tmp_path / "t.nc")
    data = DownscalingData.from_config(synth.autocoarsen_config(path))
    assert data.train_index.size == 12 and data.test_index.size == 4
    assert np.intersect1d(data.train_times, data.test_times).size == 0
    norm = data.compute_normalisation()
    z = pre_forward(truth["precip"].values[data.train_index], TransformConfig(log1p=True))
    assert norm.stats["precip"].mean == pytest.approx(
        float(np.nanmean(z.astype(np.float64))), rel=1e-9
    )
    assert norm.stats["precip"].std == pytest.approx(
        float(np.nanstd(z.astype(np.float64))), rel=1e-7
    )


def test_stats_must_match_config(tmp_path, radar_nc, synth):
    cfg = synth.autocoarsen_config(radar_nc)
    norm = DownscalingData.from_config(cfg).compute_normalisation()
    assert DownscalingData.from_config(cfg, stats=norm).normalisation is norm
    other = synth.autocoarsen_config(radar_nc, transforms={})
    with pytest.raises(DataError, match="rerun prepare"):
        DownscalingData.from_config(other, stats=norm)
    with pytest.raises(DataError, match="no normalisation statistics"):
        DownscalingData.from_config(cfg).field(0)


def test_from_datasets_in_memory(synth):
    truth = synth.radar_dataset().rename({"time": "valid_time"})
    cfg = synth.autocoarsen_config(
        "unused.nc", truth={"variables": ["precip"], "time_dim": "valid_time"}
    )
    data = DownscalingData.from_datasets(cfg, truth)
    assert data.times.size == 8 and data.truth_shape == (32, 40)


def test_patch_larger_than_grid(tmp_path, radar_nc, synth):
    cfg = synth.autocoarsen_config(radar_nc, patch_size=64)
    with pytest.raises(DataError, match="patch_size 64 is larger than the truth grid 32x40"):
        DownscalingData.from_config(cfg)


def test_constants_on_0_360_onto_truth_across_greenwich(tmp_path, synth):
    truth = synth.radar_dataset()
    truth = truth.assign_coords(lon=truth["lon"] - 5.3)  # the truth straddles 0E: -0.3..0.4
    assert float(truth["lon"].min()) < 0 < float(truth["lon"].max())
    lat = np.arange(53.0, 51.0, -0.05)
    lon360 = np.concatenate([np.arange(358.0, 360.0, 0.05), np.arange(0.0, 2.0, 0.05)])
    signed = np.where(lon360 > 180, lon360 - 360, lon360)
    orog = 100.0 * lat[:, None] - 50.0 * signed[None, :]
    const = xr.Dataset(
        {"orography": (("latitude", "longitude"), orog.astype(np.float32))},
        coords={"latitude": lat, "longitude": lon360},
    )
    tp = synth.write_nc(truth, tmp_path / "t.nc")
    cp = synth.write_nc(const, tmp_path / "c.nc")
    cfg = synth.autocoarsen_config(tp, constants={"path": str(cp), "variables": ["orography"]})
    data = DownscalingData.from_config(cfg)
    template = data.truth_template()
    expected = 100.0 * template["lat"].values.astype(np.float64) - 50.0 * template["lon"].values
    np.testing.assert_allclose(data.store.constants()[0], expected, atol=2e-3)


def test_sampling_variable_must_be_a_target(tmp_path, radar_nc, synth):
    cfg = synth.autocoarsen_config(radar_nc, sampling={"variable": "tp"})
    data = DownscalingData.from_config(cfg)
    with pytest.raises(DataError, match="data.sampling.variable 'tp' is not a target variable"):
        data.candidates()
