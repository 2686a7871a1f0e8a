"""Bad input catalogue at the CLI (issue 4, item 6): ``geogan train`` on generated bad files.

Each case either fails with one ``error: ...`` line and exit code 2, leaving no run
directory behind, or has a documented, safe behaviour that is checked here (the
docstring of each test says which). Outputs, checkpoints and full disks are in
``test_rel_outputs.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from rel_helpers import assert_one_line_error, cli, config_with_truth, load_truth, write_config

from geogan.recipes.config import run_config_from_dict as config_from_dict
from geogan.recipes.downscaling.data import DownscalingData


def _train(tiny, capsys, cfg=None, *overrides, run_dir=None):
    """``geogan train`` one step with ``cfg`` (default: the tiny config)."""
    path = write_config(cfg or tiny["cfg"], tiny["dir"] / "case.yaml")
    extra = ["--run-dir", str(run_dir)] if run_dir is not None else []
    return cli(["train", str(path), "train.steps=1", *extra, *overrides], capsys)


def _assert_refused(code, err, tiny, *words):
    assert_one_line_error(code, err, *words)
    runs = tiny["dir"] / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a failed run left a run directory"


_truth, _with_truth = load_truth, config_with_truth


def _with_input(tiny, ds: xr.Dataset, name: str, variables=("precip",)) -> dict:
    """The tiny config with autocoarsen off and the input read from ``ds``."""
    path = tiny["dir"] / name
    ds.to_netcdf(path)
    cfg = json.loads(json.dumps(tiny["cfg"]))
    cfg["data"]["autocoarsen"] = False
    cfg["data"]["input"] = {"path": str(path), "variables": list(variables)}
    return cfg


def _coarse(ds: xr.Dataset) -> xr.Dataset:
    return ds.coarsen(lat=4, lon=4).mean()


# ----------------------------------------------------------------- unreadable files
def test_truncated_netcdf_is_one_line(tiny, capsys):
    data = tiny["truth"].read_bytes()
    for i, fraction in enumerate((0.02, 0.3, 0.6, 0.97)):
        path = tiny["dir"] / f"truncated_{i}.nc"
        path.write_bytes(data[: int(len(data) * fraction)])
        cfg = _with_truth(tiny, _truth(tiny), "unused.nc")
        cfg["data"]["truth"]["path"] = str(path)
        code, err = _train(tiny, capsys, cfg)
        _assert_refused(code, err, tiny, path.name, "corrupt or truncated")
    # a damaged constants file is as clear
    cfg = json.loads(json.dumps(tiny["cfg"]))
    cfg["data"]["constants"]["path"] = str(tiny["dir"] / "truncated_2.nc")
    _assert_refused(*_train(tiny, capsys, cfg), tiny, "truncated_2.nc", "corrupt or truncated")


def test_files_that_are_not_netcdf(tiny, capsys):
    cases = {
        "text.nc": b"time,lat,lon,precip\n0,52,4,0.1\n",
        "image.nc": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "empty.nc": b"",
    }
    for name, blob in cases.items():
        (tiny["dir"] / name).write_bytes(blob)
    (tiny["dir"] / "folder.nc").mkdir()
    (tiny["dir"] / "junk.zarr").write_bytes(b"not a zarr store")
    (tiny["dir"] / "noext").write_bytes(b"GARBAGE!" * 10)
    expected = {
        "text.nc": "not a NetCDF file",
        "image.nc": "not a NetCDF file",
        "empty.nc": "not a NetCDF file",
        "folder.nc": "could not be opened",
        "junk.zarr": "not a Zarr store",
        "noext": "not a NetCDF, Zarr or GRIB source",
    }
    for name, words in expected.items():
        cfg = json.loads(json.dumps(tiny["cfg"]))
        cfg["data"]["truth"]["path"] = str(tiny["dir"] / name)
        _assert_refused(*_train(tiny, capsys, cfg), tiny, name, words)


# ----------------------------------------------------------------- dimensions
def test_variables_with_wrong_dimensions(tiny, capsys):
    ds = _truth(tiny)
    series = xr.Dataset(
        {"precip": ("time", np.nanmean(ds["precip"].values, axis=(1, 2)))},
        coords={"time": ds["time"]},
    )
    cases = {
        "1d.nc": (series, "expected two spatial dims"),
        "no_time.nc": (ds.isel(time=0, drop=True), "no time dimension 'time'"),
        "time_named_t.nc": (ds.rename(time="t"), "no time dimension 'time'"),
        "levels.nc": (
            xr.concat([ds, ds], dim="level").transpose("time", "level", "lat", "lon"),
            "extra dimension 'level' of size 2",
        ),
    }
    for name, (bad, words) in cases.items():
        _assert_refused(*_train(tiny, capsys, _with_truth(tiny, bad, name)), tiny, name, words)
    # the same file works once the time dimension is named
    cfg = _with_truth(tiny, ds.rename(time="t"), "time_named_t.nc", time_dim="t")
    code, err = _train(tiny, capsys, cfg, run_dir=tiny["dir"] / "t_run")
    assert code == 0, err


def test_truth_in_lon_lat_time_order_trains(tiny, capsys):
    """Documented: time is moved first and the spatial order of the file is kept (the truth
    grid is the output grid), so a ``(lon, lat, time)`` truth trains on a ``(lon, lat)`` grid."""
    ds = _truth(tiny).transpose("lon", "lat", "time")
    cfg = _with_truth(tiny, ds, "lonlat.nc")
    data = DownscalingData.from_config(config_from_dict(cfg).data)
    assert data.truth_template()["lon"].dims == ("lon",) and data.truth_shape == (48, 48)
    np.testing.assert_array_equal(
        data.store.truth(3)[0], ds["precip"].isel(time=3).values[:48, :48]
    )
    code, err = _train(tiny, capsys, cfg, run_dir=tiny["dir"] / "lonlat_run")
    assert code == 0, err


@pytest.mark.parametrize("variant", ["ascending_lat", "lon_lat_order", "both"])
def test_input_orientation_and_dim_order_follow_the_truth(tiny, capsys, variant):
    """Documented: an input with latitudes running the other way is flipped, and one with
    (lon, lat) dims is transposed, so that each coarse pixel sits over its truth block."""
    truth = _truth(tiny)
    reference = _coarse(truth)  # on the truth's orientation: lat descending, (time, lat, lon)
    bad = reference
    if variant in ("ascending_lat", "both"):
        bad = bad.isel(lat=slice(None, None, -1))
    if variant in ("lon_lat_order", "both"):
        bad = bad.transpose("time", "lon", "lat")
    cfg = _with_input(tiny, bad, f"input_{variant}.nc")
    data = DownscalingData.from_config(config_from_dict(cfg).data)
    for t in range(truth.sizes["time"]):
        np.testing.assert_array_equal(data.store.input(t)[0], reference["precip"].values[t])
    if variant == "both":
        code, err = _train(tiny, capsys, cfg, run_dir=tiny["dir"] / "run")
        assert code == 0, err


def test_constants_on_0_360_against_truth_on_minus180_180(tiny, capsys):
    """Documented: constants are regridded with their longitudes converted to the truth's
    convention, also across the 0/360 seam."""
    truth = _truth(tiny).assign_coords(lon=np.linspace(-1.0, 1.0, 48))  # straddles Greenwich
    lat = np.linspace(54.0, 48.0, 25)
    lon = np.arange(0.0, 360.0, 0.25)
    signed = (lon + 180.0) % 360.0 - 180.0
    orography = 100.0 * lat[:, None] + 50.0 * signed[None, :]
    constants = xr.Dataset(
        {
            "orography": (("lat", "lon"), orography.astype(np.float32), {"units": "m"}),
            "lsm": (("lat", "lon"), (np.abs(signed) < 0.5)[None].repeat(25, 0).astype(np.float32)),
        },
        coords={"lat": lat, "lon": lon},
    )
    constants.to_netcdf(tiny["dir"] / "constants360.nc")
    cfg = _with_truth(tiny, truth, "greenwich.nc")
    cfg["data"]["constants"]["path"] = str(tiny["dir"] / "constants360.nc")
    data = DownscalingData.from_config(config_from_dict(cfg).data)
    la, lo = np.meshgrid(truth["lat"].values, truth["lon"].values, indexing="ij")
    np.testing.assert_allclose(data.store.constants()[0], 100 * la + 50 * lo, atol=1e-2)
    code, err = _train(tiny, capsys, cfg, run_dir=tiny["dir"] / "run")
    assert code == 0, err


# ----------------------------------------------------------------- units
def test_mismatched_units_are_refused_naming_both(tiny, capsys):
    truth = _truth(tiny)
    coarse = _coarse(truth)
    flux = coarse.copy()
    flux["precip"] = flux["precip"] / 3600.0
    flux["precip"].attrs["units"] = "kg m-2 s-1"
    cfg = _with_input(tiny, flux, "flux.nc")
    _assert_refused(
        *_train(tiny, capsys, cfg), tiny, "'precip'", "'kg m-2 s-1'", "'mm/h'", "flux.nc"
    )

    # temperature in K (truth) against degC (input)
    t_truth = truth.rename(precip="t2m")
    t_truth["t2m"] = 280.0 + t_truth["t2m"]
    t_truth["t2m"].attrs["units"] = "K"
    t_input = _coarse(t_truth)
    t_input["t2m"] = t_input["t2m"] - 273.15
    t_input["t2m"].attrs["units"] = "degC"
    cfg = _with_input(tiny, t_input, "t_input.nc", variables=["t2m"])
    cfg["data"]["truth"] = {"path": str(tiny["dir"] / "t_truth.nc"), "variables": ["t2m"]}
    t_truth.to_netcdf(tiny["dir"] / "t_truth.nc")
    cfg["data"]["transforms"] = {"t2m": {"norm": "zscore"}}
    cfg["data"]["sampling"] = {"candidate_stride": 4, "thresholds": [], "weights": [1.0]}
    _assert_refused(*_train(tiny, capsys, cfg), tiny, "'t2m'", "'K'", "'degC'")


def test_same_units_spelt_differently_train(tiny, capsys):
    """Documented: ``mm h-1`` and ``mm/h`` (or ``K`` and ``kelvin``) are the same unit."""
    coarse = _coarse(_truth(tiny))
    coarse["precip"].attrs["units"] = "mm h-1"
    code, err = _train(
        tiny, capsys, _with_input(tiny, coarse, "same.nc"), run_dir=tiny["dir"] / "r"
    )
    assert code == 0, err


# ----------------------------------------------------------------- degenerate fields
def test_constant_fields_train_with_a_warning_and_std_one(tiny, capsys):
    """Documented: a field with zero variance over the training data gets std 1 (it normalises
    to a constant) and a warning naming it; an all-dry truth trains too."""
    truth = _truth(tiny)
    dry = truth.copy()
    dry["precip"] = xr.where(np.isfinite(truth["precip"]), 0.0, np.nan).astype(np.float32)
    dry["precip"].attrs = truth["precip"].attrs
    cfg = _with_truth(tiny, dry, "dry.nc")
    with xr.open_dataset(tiny["constants"]) as c:
        constants = c.load()
    constants["lsm"][:] = 1.0  # all land
    constants.to_netcdf(tiny["dir"] / "all_land.nc")
    cfg["data"]["constants"]["path"] = str(tiny["dir"] / "all_land.nc")
    run = tiny["dir"] / "run"
    with pytest.warns(UserWarning, match="is constant") as record:
        code, err = _train(tiny, capsys, cfg, run_dir=run)
    assert code == 0, err
    warned = " ".join(str(w.message) for w in record)
    assert "'lsm'" in warned and "'precip'" in warned
    stats = json.loads((run / "normalisation.json").read_text())["variables"]
    assert stats["lsm"]["std"] == 1.0 and stats["precip"]["std"] == 1.0
    assert stats["precip"]["max"] == 0.0


# ----------------------------------------------------------------- time axis
def test_time_gaps_and_disorder_work_duplicates_are_refused(tiny, capsys):
    """Documented: gaps are fine (no regular step is assumed) and times are sorted;
    duplicate times are an error naming the first one."""
    truth = _truth(tiny)
    gappy = truth.isel(time=[6, 0, 1, 2, 7, 4])  # gaps and out of order
    code, err = _train(tiny, capsys, _with_truth(tiny, gappy, "gaps.nc"), run_dir=tiny["dir"] / "g")
    assert code == 0, err
    dup = truth.isel(time=[0, 1, 2, 2, 3, 4, 5, 6])
    cfg = _with_truth(tiny, dup, "dup.nc")
    _assert_refused(
        *_train(tiny, capsys, cfg), tiny, "dup.nc", "duplicate time", "2021-06-01T06:00"
    )
    # an input with a duplicate is refused as clearly
    cfg = _with_input(tiny, _coarse(dup), "dup_input.nc")
    _assert_refused(*_train(tiny, capsys, cfg), tiny, "dup_input.nc", "duplicate time")


def test_empty_selections(tiny, capsys):
    truth = _truth(tiny)
    daily = truth.assign_coords(time=pd.date_range("2021-06-01", periods=8, freq="1D"))
    cfg = _with_truth(tiny, daily, "daily.nc")
    cfg["data"]["split"] = {
        "holdout_fraction": 0.5,
        "group_by": "day",
    }  # each day's only time is held out
    _assert_refused(*_train(tiny, capsys, cfg), tiny, "no training times")
    _assert_refused(
        *_train(tiny, capsys, None, "data.truth.variables=[]"), tiny, "no variables selected"
    )
    truth.isel(time=[]).to_netcdf(tiny["dir"] / "no_times.nc", unlimited_dims=["time"])
    cfg = _with_truth(tiny, truth, "unused.nc")
    cfg["data"]["truth"]["path"] = str(tiny["dir"] / "no_times.nc")
    _assert_refused(*_train(tiny, capsys, cfg), tiny, "no_times.nc", "no time steps")
    truth.isel(lat=[]).to_netcdf(tiny["dir"] / "no_rows.nc", unlimited_dims=["lat"])
    cfg["data"]["truth"]["path"] = str(tiny["dir"] / "no_rows.nc")
    _assert_refused(*_train(tiny, capsys, cfg), tiny, "no_rows.nc", "empty")


# ----------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    "text, overrides, words",
    [
        (None, ["train.steps=-5"], ["train.steps"]),
        (None, ["train.batch_size=0"], ["train.batch_size"]),
        (None, ["data.patch_size=abc"], ["data.patch_size"]),
        (None, ["data.factor=-4"], ["data.factor"]),
        (None, ["model.filters_gen=8.5"], ["model.filters_gen"]),
        (None, ["data.split.holdout_fraction=1.5"], ["holdout_fraction"]),
        ("recipe: downscaling\ndata: [1, 2]\n", [], ["data"]),
        ("data: {factor: 4}\n", [], ["recipe:"]),
        ("recipe: downscalling\n", [], ["downscaling"]),
        ("- 1\n- 2\n", [], []),
        ("train:\n  steps: [\n", [], []),
        (
            "recipe: downscaling\ntrain:\n  steps: '100'\n  batch_size: {a: 1}\n",
            [],
            ["train.batch_size"],
        ),
    ],
)
def test_yaml_with_wrong_types_or_negative_sizes(tiny, capsys, text, overrides, words):
    path = tiny["config"]
    if text is not None:
        path = tiny["dir"] / "bad.yaml"
        path.write_text(text)
    code, err = cli(["train", str(path), *overrides], capsys)
    _assert_refused(code, err, tiny, *words)
