"""Smoke test of benchmarks/skill_radar.py on tiny synthetic radar data (no ../shared).

The script's whole pipeline runs: KNMI-like training, generation and evaluation with
the targets, BoM-like transfer on the wet times only (written to a subset file), and
MeteoNet-like training with and without regridded constants; the summary JSON and
skill.md must hold every part. The real presets are loaded too (their ``defaults:``
chain and data paths), without opening the data.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "skill_radar.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("skill_radar", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cells(rng, n_times: int, size: int, dry: tuple[int, ...] = ()) -> np.ndarray:
    """``[T, size, size]`` rain rate (mm/h): Gaussian cells; times in ``dry`` are dry."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.zeros((n_times, size, size), np.float32)
    for t in range(n_times):
        if t in dry:
            continue
        for _ in range(5):
            cy, cx = rng.uniform(0, size, 2)
            amp, width = rng.uniform(1, 8), rng.uniform(3, 8)
            out[t] += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
    out[out < 0.05] = 0.0
    return out


def _projected(path: Path, rain: np.ndarray, start: str, freq: str) -> Path:
    """Radar file laid out like the KNMI/BoM conversions: (time, y, x) in metres, NaN corner."""
    rain = rain.copy()
    rain[:, :8, :8] = np.nan  # outside radar coverage
    n, size = rain.shape[0], rain.shape[1]
    y = 1000.0 * np.arange(size)[::-1]
    x = 1000.0 * np.arange(size)
    ds = xr.Dataset(
        {"precip": (("time", "y", "x"), rain, {"units": "mm/h"})},
        coords={"time": pd.date_range(start, periods=n, freq=freq), "y": y, "x": x},
    )
    ds.to_netcdf(path)
    return path


def _latlon(path: Path, rain: np.ndarray, times) -> Path:
    """MeteoNet-like file: (time, lat, lon), latitude decreasing."""
    size = rain.shape[1]
    ds = xr.Dataset(
        {"precip": (("time", "lat", "lon"), rain, {"units": "mm/h"})},
        coords={
            "time": times,
            "lat": ("lat", np.linspace(45.0, 44.37, size), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(5.0, 5.63, size), {"units": "degrees_east"}),
        },
    )
    ds.to_netcdf(path)
    return path


def _constants(path: Path) -> Path:
    lat, lon = np.linspace(45.2, 44.2, 21), np.linspace(4.8, 5.8, 21)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    ds = xr.Dataset(
        {
            "orography": (
                ("lat", "lon"),
                (500 * (45.2 - la) + 100 * lo).astype(np.float32),
                {"units": "m"},
            ),
            "lsm": (("lat", "lon"), (lo > 5.3).astype(np.float32), {"units": "1"}),
        },
        coords={"lat": lat, "lon": lon},
    )
    ds.to_netcdf(path)
    return path


@pytest.fixture()
def tiny_presets(tmp_path):
    """Tiny data and presets that inherit the real radar_base.yaml (``defaults:``)."""
    rng = np.random.default_rng(0)
    size = 64
    # KNMI-like quantisation: multiples of 0.12 mm/h (0.01 mm per 5 minutes)
    knmi_rain = (np.rint(_cells(rng, 8, size) / 0.12) * 0.12).astype(np.float32)
    knmi = _projected(tmp_path / "knmi.nc", knmi_rain, "2010-08-26T00:00", "5min")
    # BoM-like: 6 times, 2 of them dry -> 4 wet times; stride 2 keeps 2
    bom = _projected(
        tmp_path / "bom.nc", _cells(rng, 6, size, dry=(0, 3)), "2020-10-31T00:00", "10min"
    )
    times = pd.DatetimeIndex(
        [
            "2016-08-21T00:10",
            "2016-08-21T00:15",
            "2016-08-21T00:20",
            "2016-08-21T00:25",
            "2016-08-28T10:00",
            "2016-08-28T10:05",
            "2016-08-28T10:10",
            "2016-08-28T10:15",
        ]
    )
    meteonet = _latlon(tmp_path / "meteonet.nc", _cells(rng, 8, size), times)
    consts = _constants(tmp_path / "constants.nc")
    base = PRESETS_BASE = (
        REPO / "src" / "geogan" / "recipes" / "downscaling" / "presets" / "radar_base.yaml"
    )
    assert PRESETS_BASE.is_file()
    tiny = {
        "defaults": [str(base)],
        "data": {"patch_size": 32, "sampling": {"candidate_stride": 8}},
        "model": {"filters_gen": 4, "filters_disc": 4, "noise_channels": 2},
        "train": {
            "batch_size": 2,
            "critic_steps": 1,
            "content": {"members": 2},
            "checkpoint_every": 50,
        },
        "generate": {"tile_size": 64, "overlap": 8, "batch_size": 4},
        "evaluate": {"fss_scales": [1, 4, 16]},
    }
    files = {}
    for name, cfg in {
        "knmi": {"name": "tiny_knmi", "data": {"truth": {"path": str(knmi)}}},
        "meteonet": {
            "name": "tiny_mn",
            "data": {
                "truth": {"path": str(meteonet)},
                "constants": {"path": str(consts), "variables": ["orography", "lsm"]},
                "transforms": {"orography": {"norm": "zscore"}, "lsm": {"norm": "none"}},
            },
        },
    }.items():
        merged = yaml.safe_load(yaml.safe_dump(tiny))
        for section, values in cfg.items():
            if isinstance(values, dict):
                merged.setdefault(section, {})
                for k, v in values.items():
                    if isinstance(v, dict) and isinstance(merged[section].get(k), dict):
                        merged[section][k].update(v)
                    else:
                        merged[section][k] = v
            else:
                merged[section] = values
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(merged))
    # the without-constants twin inherits the with-constants one, as the real presets do
    files["meteonet_noconst"] = tmp_path / "meteonet_noconst.yaml"
    files["meteonet_noconst"].write_text(
        yaml.safe_dump(
            {
                "defaults": ["meteonet"],
                "name": "tiny_mn_noconst",
                "data": {"constants": {"path": None, "variables": []}},
            }
        )
    )
    return {"dir": tmp_path, "bom": bom, **files}


def test_presets_resolve():
    """The shipped presets load (defaults chain) and name the shared data relative to the root."""
    from geogan.recipes.config import load_run_config as load_config

    presets = REPO / "src" / "geogan" / "recipes" / "downscaling" / "presets"
    knmi = load_config(presets / "radar_knmi_x8.yaml")
    const = load_config(presets / "meteonet_x8.yaml")
    noconst = load_config(presets / "meteonet_x8_noconst.yaml")
    assert knmi.data.truth.path == "../shared/data/radar/knmi_20100826.nc"
    assert knmi.data.factor == 8 and knmi.data.patch_size == 128 and knmi.data.autocoarsen
    assert knmi.data.split.holdout_fraction == 0.25 and knmi.data.split.group_by == "day"
    assert knmi.data.transforms["precip"].log1p and knmi.data.transforms["precip"].norm == "max"
    assert const.data.constants.variables == ["orography", "lsm"]
    assert noconst.data.constants.path is None and noconst.data.truth.path == const.data.truth.path
    assert noconst.model == const.model and noconst.train == const.train


def test_skill_script_end_to_end(tiny_presets):
    skill = _load_script()
    out = tiny_presets["dir"] / "skill"
    argv = [
        "--out", str(out),
        "--steps", "2",
        "--minutes", "1",
        "--meteonet-minutes", "1",
        "--members", "3",
        "--knmi-config", str(tiny_presets["knmi"]),
        "--meteonet-config", str(tiny_presets["meteonet"]),
        "--meteonet-noconst-config", str(tiny_presets["meteonet_noconst"]),
        "--bom-path", str(tiny_presets["bom"]),
        "--bom-stride", "2",
        "--quiet",
    ]  # fmt: skip
    assert skill.main(argv) == 0
    summary = json.loads((out / "skill_summary.json").read_text())

    knmi = summary["knmi"]
    assert knmi["train"]["steps"] == 2
    assert knmi["eval"]["times"] == 2 and knmi["eval"]["members"] == 3  # 8 times: last 25% held out
    assert len(knmi["targets"]) == 6
    assert all(isinstance(t["pass"], bool) for t in knmi["targets"])
    metrics = json.loads(Path(knmi["eval"]["metrics_file"]).read_text())
    assert {"geogan", "bilinear", "bicubic", "lanczos"} <= set(metrics["methods"])
    # the CRPS target compares with the best interpolation's CRPS (= its MAE)
    best = min(metrics["methods"][b]["crps"] for b in ("bilinear", "bicubic", "lanczos"))
    for b in ("bilinear", "bicubic", "lanczos"):
        assert metrics["methods"][b]["crps"] == pytest.approx(metrics["methods"][b]["mae"])
    # the deterministic network (same data and budget) is scored in the same report
    assert knmi["det_train"]["steps"] == 2
    det = metrics["methods"]["det"]
    assert det["members"] == 1 and det["crps"] == pytest.approx(det["mae"])
    assert knmi["headline"]["det"]["crps"] == pytest.approx(det["crps"])
    assert "roc_auc_1" in metrics["methods"]["geogan"]
    crps_target = knmi["targets"][0]
    assert crps_target["pass"] == (metrics["methods"]["geogan"]["crps"] <= 0.85 * best)
    # the rank target is judged at the truth's precision (detected: 0.12 mm/h), raw ranks kept
    head = knmi["headline"]
    assert head["rank_precision"] == pytest.approx(0.12, rel=1e-4)
    for suffix, key in (
        ("", "rank_histogram_nonzero_at_precision"),
        ("_raw", "rank_histogram_nonzero"),
    ):
        freq = np.asarray(metrics["curves"]["geogan"][key])
        assert freq.size == 4
        assert head[f"rank_min_ratio_nonzero{suffix}"] == pytest.approx(freq.min() * 4)
        assert head[f"rank_max_ratio_nonzero{suffix}"] == pytest.approx(freq.max() * 4)
    assert "0.12 mm/h" in knmi["targets"][4]["detail"]

    # generated rain is never negative (clipped after the inverse transform)
    ens = xr.open_dataset(knmi["eval"]["ensemble"])
    values = ens["precip"].values
    assert np.isfinite(values).any() and np.nanmin(values) >= 0.0
    ens.close()

    # BoM: the 4 wet times, every 2nd -> 2 times, written to a subset file and listed
    bom = summary["bom"]
    assert bom["n_wet"] == 4 and bom["eval"]["times"] == 2
    sub = xr.open_dataset(bom["subset"])
    assert sub.sizes["time"] == 2 and sub["precip"].attrs["units"] == "mm/h"
    sub.close()
    assert len((out / "bom" / "times.txt").read_text().splitlines()) == 3
    bom_metrics = json.loads(Path(bom["eval"]["metrics_file"]).read_text())
    assert "det" in bom_metrics["methods"]

    # MeteoNet side by side: constants only in the first run
    assert summary["meteonet_const"]["constants"] == ["orography", "lsm"]
    assert summary["meteonet_noconst"]["constants"] == []
    for key in ("meteonet_const", "meteonet_noconst"):
        assert summary[key]["eval"]["times"] == 2  # 4 + 4 times on two days: 1 + 1 held out
        assert Path(summary[key]["eval"]["report"]).is_file()

    md = (out / "skill.md").read_text()
    for text in ("PASS", "BoM transfer", "MeteoNet SE", "Timings", "Machine", "skill_radar.py"):
        assert text in md or ("FAIL" in md and text == "PASS"), text
    assert summary["machine"]["threads"] >= 1 and summary["date"]

    # an existing output folder is refused without --overwrite (exit code 2)
    assert skill.main(argv) == 2

    # --reevaluate scores the saved ensembles again and rewrites the summary, nothing retrained
    assert skill.main(["--out", str(out), "--reevaluate", "--quiet"]) == 0
    again = json.loads((out / "skill_summary.json").read_text())
    assert again["knmi"]["train"] == knmi["train"] and len(again["knmi"]["targets"]) == 6
    assert again["knmi"]["headline"]["crps"] == pytest.approx(knmi["headline"]["crps"])
    assert any("Evaluation re-run" in n for n in again["notes"])
    assert set(again) >= {"bom", "meteonet_const", "meteonet_noconst"}
    assert skill.main(["--out", str(out / "missing"), "--reevaluate", "--quiet"]) == 2

    # --redo-bom: the BoM stage again with the saved KNMI model, here on all 4 wet times
    redo = ["--out", str(out), "--redo-bom", "--bom-path", str(tiny_presets["bom"])]
    assert skill.main([*redo, "--bom-stride", "1", "--members", "3", "--quiet"]) == 0
    bom_again = json.loads((out / "skill_summary.json").read_text())
    assert bom_again["bom"]["eval"]["times"] == 4 and bom_again["bom"]["stride"] == 1
    assert bom_again["knmi"]["train"] == knmi["train"]
    assert any("BoM stage re-run" in n for n in bom_again["notes"])
    assert skill.main(["--out", str(out / "missing"), "--redo-bom", "--quiet"]) == 2

    # --resume keeps every finished stage: nothing is trained or generated again
    assert skill.main([*argv, "--resume", "--skip-meteonet", "--skip-bom"]) == 0
    resumed = json.loads((out / "skill_summary.json").read_text())
    assert resumed["knmi"]["train"]["seconds"] == knmi["train"]["seconds"]
    assert resumed["knmi"]["headline"]["crps"] == pytest.approx(knmi["headline"]["crps"])
