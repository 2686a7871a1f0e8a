"""Bad input or config: one clear line on stderr, exit code 2, nothing half-written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from geogan.cli.main import main


def _run_train(tiny, cfg, capsys, *overrides):
    path = tiny["dir"] / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = main(["--quiet", "train", str(path), *overrides])
    err = capsys.readouterr().err.strip()
    return code, err


def _assert_clean_failure(code, err, tiny, *words):
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, (w, err)
    runs = tiny["dir"] / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a failed run left a run directory behind"


def test_missing_file(tiny, capsys):
    cfg = tiny["cfg"]
    cfg["data"]["truth"]["path"] = str(tiny["dir"] / "nope.nc")
    _assert_clean_failure(*_run_train(tiny, cfg, capsys), tiny, "nope.nc", "not found")


def test_variable_not_in_file(tiny, capsys):
    cfg = tiny["cfg"]
    cfg["data"]["truth"]["variables"] = ["precipp"]
    _assert_clean_failure(*_run_train(tiny, cfg, capsys), tiny, "precipp", "precip")


def test_grids_that_do_not_nest(tiny, capsys):
    truth = xr.open_dataset(tiny["truth"])
    coarse = truth.isel(lat=slice(0, 10), lon=slice(0, 10))  # 10x10 is not 48/4 = 12x12
    coarse.to_netcdf(tiny["dir"] / "coarse.nc")
    cfg = tiny["cfg"]
    cfg["data"]["autocoarsen"] = False
    cfg["data"]["input"] = {"path": str(tiny["dir"] / "coarse.nc"), "variables": ["precip"]}
    _assert_clean_failure(*_run_train(tiny, cfg, capsys), tiny, "do not nest")


def test_patch_size_not_divisible_by_factor(tiny, capsys):
    code, err = _run_train(tiny, tiny["cfg"], capsys, "data.patch_size=18")
    _assert_clean_failure(code, err, tiny, "patch_size", "divisible")


def test_no_overlapping_times(tiny, capsys):
    truth = xr.open_dataset(tiny["truth"])
    coarse = truth.coarsen(lat=4, lon=4).mean()
    coarse = coarse.assign_coords(
        time=pd.date_range("1999-01-01", periods=truth.sizes["time"], freq="3h")
    )
    coarse.to_netcdf(tiny["dir"] / "coarse.nc")
    cfg = tiny["cfg"]
    cfg["data"]["autocoarsen"] = False
    cfg["data"]["input"] = {"path": str(tiny["dir"] / "coarse.nc"), "variables": ["precip"]}
    _assert_clean_failure(*_run_train(tiny, cfg, capsys), tiny, "no overlapping times")


def test_unknown_config_key_names_the_closest(tiny, capsys):
    code, err = _run_train(tiny, tiny["cfg"], capsys, "train.stpes=3")
    _assert_clean_failure(code, err, tiny, "train.stpes", "train.steps")


def test_debug_shows_traceback(tiny, capsys):
    code = main(["--debug", "train", str(tiny["config"]), "train.stpes=3"])
    assert code == 2 and "Traceback" in capsys.readouterr().err


def test_nan_only_truth_is_a_clear_error(tiny, capsys):
    ds = xr.open_dataset(tiny["truth"]).load()
    ds["precip"][:] = np.nan
    ds.to_netcdf(tiny["dir"] / "nan.nc")
    cfg = tiny["cfg"]
    cfg["data"]["truth"]["path"] = str(tiny["dir"] / "nan.nc")
    code, err = _run_train(tiny, cfg, capsys)
    _assert_clean_failure(code, err, tiny)


def test_softmax_constraint_on_signed_targets_is_a_clear_error(tiny, capsys):
    code, err = _run_train(
        tiny,
        tiny["cfg"],
        capsys,
        "model.conserve_mean=softmax",
        "data.transforms.precip.norm=zscore",
    )
    _assert_clean_failure(code, err, tiny, "softmax", "precip", "norm")
