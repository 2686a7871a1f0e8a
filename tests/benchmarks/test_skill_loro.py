"""Smoke test of benchmarks/skill_loro.py --quick on tiny synthetic radars (no ../shared):
the canvas of training radars, a fold's targets, the spread calibration, the MeteoNet
seeds study, and the pieces checked against direct formulas."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import skill_loro
import xarray as xr
import yaml


def _rain(rng, n: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((n, size, size), np.float32)
    for t in range(n):
        for _ in range(4):
            cy, cx = rng.uniform(0, size, 2)
            out[t] += rng.uniform(1, 8) * np.exp(
                -((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(3, 8) ** 2)
            )
    out[out < 0.05] = 0.0
    return (np.rint(out / 0.12) * 0.12).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The four radars' files under radar/ and meteonet/, tiny, with their real layouts."""
    root = tmp_path_factory.mktemp("loro_data")
    rng = np.random.default_rng(0)
    (root / "radar").mkdir()
    (root / "meteonet").mkdir()
    for name, size, start, freq in (
        ("radar/knmi_20100826.nc", 64, "2010-08-26T00:00", "5min"),
        ("radar/bom_20201031.nc", 96, "2020-10-31T00:00", "10min"),
    ):
        rain = _rain(rng, 8, size)
        rain[:, :4, :] = np.nan  # outside coverage: cropped away
        ds = xr.Dataset(
            {"precip": (("time", "y", "x"), rain, {"units": "mm/h"})},
            coords={
                "time": pd.date_range(start, periods=8, freq=freq),
                "y": 1000.0 * np.arange(size)[::-1],
                "x": 1000.0 * np.arange(size),
            },
        )
        ds.to_netcdf(root / name)
    times = pd.DatetimeIndex(
        ["2016-08-21T00:10", "2016-08-21T00:15", "2016-08-21T00:20", "2016-08-21T00:25"]
        + ["2016-08-28T10:00", "2016-08-28T10:05", "2016-08-28T10:10", "2016-08-28T10:15"]
    )
    for zone in ("NW", "SE"):  # the same time stamps, as the real samples
        ds = xr.Dataset(
            {"precip": (("time", "lat", "lon"), _rain(rng, 8, 72), {"units": "mm/h"})},
            coords={
                "time": times,
                "lat": ("lat", np.linspace(45.0, 44.29, 72), {"units": "degrees_north"}),
                "lon": ("lon", np.linspace(5.0, 5.71, 72), {"units": "degrees_east"}),
            },
        )
        ds.to_netcdf(root / f"meteonet/radar_rainfall_{zone}.nc")
    lat, lon = np.linspace(45.2, 44.0, 25), np.linspace(4.8, 6.0, 25)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    xr.Dataset(
        {
            "orography": (("lat", "lon"), (500 * (45.2 - la)).astype(np.float32), {"units": "m"}),
            "lsm": (("lat", "lon"), (lo > 5.3).astype(np.float32), {"units": "1"}),
        },
        coords={"lat": lat, "lon": lon},
    ).to_netcdf(root / "meteonet/constants_SE.nc")
    presets = skill_loro.PRESETS
    const = {
        "defaults": [str(presets / "meteonet_x8.yaml")],
        "data": {
            "truth": {"path": str(root / "meteonet/radar_rainfall_SE.nc")},
            "constants": {"path": str(root / "meteonet/constants_SE.nc")},
        },
    }
    (root / "mn_const.yaml").write_text(yaml.safe_dump(const))
    (root / "mn_noconst.yaml").write_text(
        yaml.safe_dump(
            {"defaults": ["mn_const"], "name": "tiny_noconst", "data": {"constants": {"path": None, "variables": []}}}
        )
    )  # fmt: skip
    return root


def test_canvas_and_standardise(tiny, tmp_path):
    files = [
        skill_loro.standardise(r, tmp_path / f"{r}.nc", bom_km="1", max_times=None, data=tiny)
        for r in skill_loro.RADARS
    ]
    with xr.open_dataset(files[1]) as bom, xr.open_dataset(tiny / "radar/bom_20201031.nc") as raw:
        # 2x2 block means of the valid rows (rows 4.. of 96 -> 92 -> 46 at 1 km -> 40 whole
        # coarse pixels), exactly
        src = raw["precip"].values[:, 4:, :]
        want = src[:, :92, :].reshape(8, 46, 2, 48, 2).mean(axis=(2, 4))[:, :40, :48]
        np.testing.assert_allclose(bom["precip"].values, want, rtol=1e-6)
        assert bom.attrs["pixel_km"] == 1.0
    info = skill_loro.canvas(files[1:], tmp_path / "canvas.nc", holdout=0.0)
    with xr.open_dataset(tmp_path / "canvas.nc") as ds:
        t = ds["time"].values
        assert np.unique(t).size == t.size == 24 and (np.diff(t) > np.timedelta64(0)).all()
        assert ds["precip"].shape[1:] == (72, 72)  # the largest radar
        # the BoM frames: data in the corner, NaN outside it
        first = ds["precip"].sel(time=slice("2020-10-31", "2020-11-01")).isel(time=0).values
        assert np.isfinite(first[:40, :48]).all() and np.isnan(first[40:, :]).all()
    assert [r["times"] for r in info["radars"]] == [8, 8, 8]
    held = skill_loro.canvas(files[1:], tmp_path / "canvas_cal.nc", holdout=0.25)
    assert held["shape"][0] < 24  # each radar's last quarter of each day left out


def test_inflation_fit_and_targets():
    rng = np.random.default_rng(1)
    truth = rng.gamma(1.0, 2.0, (4, 16, 16))
    # under-dispersive members: the truth's noise is 3x the members' spread
    centre = truth + rng.normal(0, 0.9, truth.shape)
    members = centre[None] + rng.normal(0, 0.3, (8, *truth.shape))
    fit = skill_loro.fit_inflation([(members, truth)])
    assert fit["factor"] >= 2.0
    wide = skill_loro.inflate(members, 2.0)
    np.testing.assert_allclose(
        wide.mean(axis=0)[wide.min(axis=0) > 0], members.mean(axis=0)[wide.min(axis=0) > 0]
    )
    assert (wide >= 0).all()
    metrics = {
        "methods": {
            "geogan": {"ssr": 0.9, "crps": 0.8, "lsd_db": 1.0},
            "bilinear": {"crps": 1.0, "lsd_db": 4.0},
            "bicubic": {"crps": 1.1, "lsd_db": 3.0},
        },
        "curves": {"geogan": {"rank_histogram_nonzero": [0.2, 0.2, 0.3, 0.3]}},
    }
    t = {x["target"]: x["pass"] for x in skill_loro.loro_targets(metrics)}
    assert t == {
        "spread-skill ratio in [0.7, 1.3]": True,
        "CRPS >= 15% below best interpolation": True,  # 0.8 <= 0.85 x 1.0
        "LSD <= 0.5 x bicubic": True,
        "rank histogram (no zero ties) bins in [0.5, 2] x uniform": True,
    }


def test_loro_quick_with_calibration_and_resume(tiny, tmp_path):
    out = tmp_path / "loro"
    argv = ["--out", str(out), "--quick", "--data", str(tiny), "--folds", "bom", "--quiet"]
    assert skill_loro.main([*argv, "--calibrate"]) == 0
    summary = json.loads((out / "loro_summary.json").read_text())
    assert list(summary["folds"]) == ["bom"]
    fold = summary["folds"]["bom"]
    assert fold["train_radars"] == ["knmi", "meteonet_nw", "meteonet_se"]
    assert fold["train"]["steps"] == 2 and len(fold["targets"]) == 4
    assert fold["calibration"]["factor"] in skill_loro.CALIBRATION_GRID
    assert "targets" in fold["raw"] and fold["eval"]["times"] == 2
    md = (out / "loro.md").read_text()
    assert "leave-one-radar-out" in md and "BoM 66" in md and "Timings" in md
    assert skill_loro.main(argv) == 2  # exists
    assert skill_loro.main([*argv, "--resume", "--calibrate"]) == 0
    again = json.loads((out / "loro_summary.json").read_text())
    assert again["folds"]["bom"]["train"]["seconds"] == fold["train"]["seconds"]


def test_meteonet_seeds_quick(tiny, tmp_path):
    out = tmp_path / "mn"
    argv = [
        "--out", str(out), "--study", "meteonet", "--quick", "--seeds", "2", "--quiet",
        "--meteonet-config", str(tiny / "mn_const.yaml"),
        "--meteonet-noconst-config", str(tiny / "mn_noconst.yaml"),
    ]  # fmt: skip
    assert skill_loro.main(argv) == 0
    summary = json.loads((out / "meteonet_summary.json").read_text())
    assert sorted(summary["runs"]) == [
        "const_seed0",
        "const_seed1",
        "noconst_seed0",
        "noconst_seed1",
    ]
    const = summary["arms"]["const"]
    values = const["crps"]["values"]
    assert const["crps"]["mean"] == pytest.approx(np.mean(values))
    assert const["crps"]["std"] == pytest.approx(np.std(values, ddof=1))
    assert len(summary["targets"]) == 3
    runs = summary["runs"]
    assert runs["const_seed0"]["train"]["steps"] == 2
    assert "MeteoNet SE" in (out / "meteonet.md").read_text()
