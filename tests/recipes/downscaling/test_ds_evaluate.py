"""Recipe 1's evaluate: the full metric set (ROC, reliability, block artefacts), other forecasts
beside the ensemble (the deterministic network), true-colour maps, and an all-or-nothing
report folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from tiny_data import base_config, make_rain

from geogan.core.errors import DataError, OutputExistsError
from geogan.recipes import get_recipe
from geogan.recipes.config import run_config_from_dict
from geogan.recipes.downscaling.evaluate import METRIC_SET, metric_specs, rgb_channels
from geogan.recipes.run import train_from_config


def _train_generate(cfg_dict, tmp_path, name, members, mode="gan"):
    cfg_dict = json.loads(json.dumps(cfg_dict))
    cfg_dict["train"]["mode"] = mode
    cfg_dict["name"] = name
    cfg = run_config_from_dict(cfg_dict)
    run = tmp_path / name
    train_from_config(cfg, run_dir=run, progress=False, command=["test"])
    out = tmp_path / f"{name}.nc"
    get_recipe("downscaling").generate(
        run / "model.safetensors", out=out, members=members, times="test", progress=False
    )
    return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ds_eval")
    truth = make_rain(tmp / "rain.nc", n_times=8, size=64)
    cfg = base_config(truth, None, tmp / "runs")
    cfg["evaluate"]["thresholds"] = [0.5, 2.0]
    ens = _train_generate(cfg, tmp, "gan", 3)
    det = _train_generate(cfg, tmp, "det", 1, mode="det")
    return {"tmp": tmp, "ens": ens, "det": det}


def test_metric_set_and_specs():
    assert {"roc", "reliability", "block_artefacts"} <= set(METRIC_SET)
    specs = metric_specs(None, 8)
    assert {"block_artefacts": {"factor": 8}} in specs and "crps" in specs
    assert metric_specs([{"block_artefacts": {"tile": 32}}], 4) == [
        {"block_artefacts": {"tile": 32, "factor": 4}}
    ]
    assert rgb_channels(["Blue", "red", "green"]) == ["red", "green", "Blue"]
    assert rgb_channels(["precip"]) is None


def test_deterministic_network_beside_the_ensemble(outputs):
    recipe = get_recipe("downscaling")
    report = outputs["tmp"] / "report"
    summary = recipe.evaluate(outputs["ens"], out=report, extra={"det": outputs["det"]})
    metrics = json.loads((report / "metrics.json").read_text())
    methods = metrics["methods"]
    assert set(methods) == {"geogan", "det", "bilinear", "bicubic", "lanczos"}
    assert summary["metrics"]["methods"]["det"]["members"] == 1
    det = methods["det"]
    assert det["crps"] == pytest.approx(det["mae"])  # a deterministic forecast's CRPS is its MAE
    assert "ssr" not in det and "ssr" in methods["geogan"]
    for name in ("roc_auc_0.5", "brier_2", "brier_rel_0.5", "block_power_ratio"):
        assert name in methods["geogan"] and name in det, name
    assert metrics["extra_forecasts"] == {"det": str(outputs["det"])}
    # all methods scored on the same pixels
    assert len({m.get("n_valid") for m in methods.values() if "n_valid" in m}) == 1
    html = (report / "report.html").read_text()
    for caption in ("roc", "reliability", "block_artefacts"):
        assert f'alt="{caption}"' in html, caption
        assert (report / f"{caption}.png").is_file()
    # the det forecast really is the deterministic file: its MAE by hand on the scored pixels
    ds = xr.open_dataset(outputs["det"])
    assert ds.sizes["member"] == 1
    ds.close()


def test_bad_extra_forecasts_leave_no_report(outputs, tmp_path):
    recipe = get_recipe("downscaling")
    out = tmp_path / "rep"
    with pytest.raises(DataError, match="is taken"):
        recipe.evaluate(outputs["ens"], out=out, extra={"bicubic": outputs["det"]})
    assert not out.exists() and not list(tmp_path.glob(".rep.*"))
    other = tmp_path / "other.nc"
    with xr.open_dataset(outputs["det"]) as ds:
        ds.assign_coords(time=ds["time"] + np.timedelta64(1, "h")).to_netcdf(other)
    with pytest.raises(DataError, match="no time"):
        recipe.evaluate(outputs["ens"], out=out, extra={"det": other})
    assert not out.exists()
    recipe.evaluate(outputs["ens"], out=out, progress=True)
    with pytest.raises(OutputExistsError):
        recipe.evaluate(outputs["ens"], out=out)
    first = (out / "metrics.json").read_text()
    recipe.evaluate(outputs["ens"], out=out, overwrite=True)
    assert (out / "metrics.json").read_text() == first  # deterministic, replaced whole


def test_true_colour_composite_for_rgb_imagery(tmp_path):
    rng = np.random.default_rng(0)
    size, n = 48, 4
    yy, xx = np.mgrid[0:size, 0:size] / size
    data = {}
    for i, var in enumerate(("red", "green", "blue")):
        base = 0.3 + 0.2 * np.sin(2 * np.pi * (xx + i / 3)) * np.cos(2 * np.pi * yy)
        data[var] = (
            ("time", "lat", "lon"),
            (base[None] + 0.05 * rng.normal(size=(n, size, size))).astype(np.float32),
            {"units": "1"},
        )
    ds = xr.Dataset(
        data,
        coords={
            "time": pd.date_range("2020-01-01", periods=n, freq="D"),
            "lat": ("lat", np.linspace(10, 8, size), {"units": "degrees_north"}),
            "lon": ("lon", np.linspace(0, 2, size), {"units": "degrees_east"}),
        },
    )
    path = tmp_path / "rgb_truth.nc"
    ds.to_netcdf(path)
    cfg = base_config(path, None, tmp_path / "runs")
    cfg["data"]["truth"]["variables"] = ["red", "green", "blue"]
    cfg["data"]["transforms"] = {v: {"norm": "minmax"} for v in ("red", "green", "blue")}
    cfg["data"]["sampling"] = {"thresholds": [], "weights": [1.0], "candidate_stride": 4}
    cfg["data"]["split"] = {"holdout_fraction": 0.25, "group_by": "all"}
    cfg["model"]["output_activation"] = "linear"
    ens = _train_generate(cfg, tmp_path, "rgb", 3)
    report = tmp_path / "report"
    get_recipe("downscaling").evaluate(ens, out=report)
    assert (report / "true_colour.png").read_bytes()[:4] == b"\x89PNG"
    html = (report / "report.html").read_text()
    assert html.index('alt="true colour"') < html.index('alt="red: sample_maps"')
