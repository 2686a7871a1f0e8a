"""Integrity and awkward real-world input (issue 14): no silent restarts, non-finite and
negative values, calendars, units through one library, renamed variables, time selections,
exports used from another folder, writer failures, YAML homes for anchors.

Checksummed checkpoints are tested in ``test_rel_checkpoint_integrity.py``.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
from pathlib import Path

import cftime
import numpy as np
import pytest
import xarray as xr
from rel_helpers import assert_one_line_error, cli, config_with_truth, load_truth, write_config

from geogan.core.errors import ConfigError, DataError
from geogan.data.splits import select_times, split_times
from geogan.data.units import convert, convertible, is_nonnegative_quantity, same_units
from geogan.recipes.config import run_config_from_dict
from geogan.recipes.downscaling.data import DownscalingData

_truth, _cfg_with = load_truth, config_with_truth


def _data(cfg: dict) -> DownscalingData:
    return DownscalingData.from_config(run_config_from_dict(cfg).data)


# ------------------------------------------------------------------ 2. no silent restarts


def test_restarting_a_run_directory_needs_the_flag(tiny, capsys):
    run = tiny["dir"] / "run"
    args = ["train", str(tiny["config"]), "--run-dir", str(run), "train.steps=2"]
    assert cli(args, capsys)[0] == 0
    code, err = cli(args, capsys)
    assert_one_line_error(code, err, "already holds", "--resume auto", "--restart")
    for f in (run / "checkpoints").glob("resume_*.safetensors"):
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0x55
        f.write_bytes(bytes(data))
    code, err = cli([*args, "--resume", "auto"], capsys)
    assert_one_line_error(code, err, "none loads", "damaged", "--restart")
    assert cli([*args, "--restart"], capsys)[0] == 0
    assert list((run / "checkpoints").glob("discarded-*/resume_*.safetensors"))


# --------------------------------------------------------- 3. non-finite, negative, range


def test_infinite_values_are_refused_by_default_and_masked_on_request(tiny, capsys):
    ds = _truth(tiny)
    ds["precip"][2, 20, 20] = np.inf
    ds["precip"][3, 21, 20] = -np.inf
    cfg = _cfg_with(tiny, ds, "inf.nc")
    code, err = cli(
        ["train", str(write_config(cfg, tiny["dir"] / "c.yaml")), "train.steps=1"], capsys
    )
    assert_one_line_error(code, err, "'precip'", "2 infinite values", "on_nonfinite: mask")
    cfg["data"]["truth"]["on_nonfinite"] = "mask"
    data = _data(cfg)
    assert data.value_counts()["precip"]["infinite_masked"] == 2
    assert np.isnan(data.raw_field(2)["target"][0, 20, 20])
    # prepare reports the count over its pass through the training times
    cfg["data"]["stats_path"] = str(tiny["dir"] / "stats.json")
    code = cli(["prepare", str(write_config(cfg, tiny["dir"] / "m.yaml"))], capsys)[0]
    assert code == 0


def test_prepare_summary_counts_masked_and_clipped_values(tiny, capsys):
    from geogan.recipes.downscaling.prepare import prepare

    ds = _truth(tiny)
    ds["precip"][0, 30, 30] = np.inf
    ds["precip"][0, 31, 31] = -0.5
    cfg = _cfg_with(tiny, ds, "bad.nc", on_nonfinite="mask")
    cfg["data"]["split"] = {"holdout_fraction": 0.0, "group_by": "all"}
    data_cfg = run_config_from_dict(cfg).data
    summary = prepare(data_cfg, None, tiny["dir"] / "s.json", None, 0, 0)
    assert summary["values"]["precip"]["infinite_masked"] == 1
    assert summary["values"]["precip"]["negative_clipped"] == 1


def test_negative_rain_is_clipped_and_reported_or_refused(tiny, caplog):
    ds = _truth(tiny)
    ds["precip"][1, 25, 25] = -3.0
    cfg = _cfg_with(tiny, ds, "neg.nc")
    with caplog.at_level(logging.WARNING):
        data = _data(cfg)
    assert data.raw_field(1)["target"][0, 25, 25] == 0.0
    assert data.value_counts()["precip"]["negative_clipped"] == 1
    assert "1 negative values clipped" in caplog.text
    cfg["data"]["truth"]["on_negative"] = "refuse"
    with pytest.raises(DataError, match="cannot be negative.*on_negative"):
        _data(cfg)
    cfg["data"]["truth"]["on_negative"] = "allow"
    assert _data(cfg).raw_field(1)["target"][0, 25, 25] == -3.0


def test_generate_warns_once_when_inputs_leave_the_training_range(tiny, capsys, caplog):
    run = tiny["dir"] / "run"
    assert (
        cli(["train", str(tiny["config"]), "--run-dir", str(run), "train.steps=1"], capsys)[0] == 0
    )
    ds = _truth(tiny)
    ds["precip"] = ds["precip"] * 6  # storms far stronger than any seen in training
    ds.to_netcdf(tiny["dir"] / "storm.nc")
    out = tiny["dir"] / "storm_ens.nc"
    with caplog.at_level(logging.WARNING):
        code, err = cli(
            [
                "generate",
                str(run / "model.safetensors"),
                f"data.truth.path={tiny['dir'] / 'storm.nc'}",
                "--out",
                str(out),
                "--members",
                "2",
                "--times",
                "all",
            ],
            capsys,
        )
    assert code == 0, err
    assert caplog.text.count("outside the training range") == 1
    summary = json.loads(Path(f"{out}.summary.json").read_text())
    assert summary["out_of_training_range"] == ["precip"]


# ------------------------------------------------------------------------ 4. calendars


@pytest.mark.parametrize("calendar", ["noleap", "360_day", "all_leap", "julian"])
def test_split_and_selection_work_in_every_cf_calendar(calendar):
    times = np.array(
        [
            cftime.datetime(2001, 2, d, h, calendar=calendar)
            for d in (27, 28)
            for h in (0, 6, 12, 18)
        ]
    )
    train, test = split_times(times, type("S", (), {"group_by": "day", "holdout_fraction": 0.25})())
    assert test.tolist() == [3, 7] and train.tolist() == [0, 1, 2, 4, 5, 6]
    idx = select_times(times, "2001-02-27T06:00/2001-02-28", train, test)
    assert idx.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert select_times(times, "2001-02-28T12:00,2001-02-27", train, test).tolist() == [0, 6]
    with pytest.raises(ConfigError, match="not one of the data's times"):
        select_times(times, "2001-02-26", train, test)
    if calendar == "360_day":  # a date only that calendar has
        assert select_times(times, "/2001-02-30", train, test).size == 8
    else:
        with pytest.raises(ConfigError, match="not a date of the"):
            select_times(times, "/2001-02-30", train, test)


def test_a_noleap_record_trains_generates_and_keeps_its_calendar(tiny, capsys):
    ds = _truth(tiny)
    ds = ds.assign_coords(
        time=[cftime.DatetimeNoLeap(2021, 2, 28, 3 * i) for i in range(ds.sizes["time"])]
    )
    cfg = _cfg_with(tiny, ds, "noleap.nc")
    path = write_config(cfg, tiny["dir"] / "noleap.yaml")
    run = tiny["dir"] / "run"
    assert cli(["train", str(path), "--run-dir", str(run), "train.steps=1"], capsys)[0] == 0
    out = tiny["dir"] / "ens.nc"
    code, err = cli(
        [
            "generate",
            str(run / "model.safetensors"),
            "--out",
            str(out),
            "--members",
            "2",
            "--times",
            "2021-02-28T09:00/2021-02-28T18:00",
        ],
        capsys,
    )
    assert code == 0, err
    with xr.open_dataset(out, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ens:
        assert ens["time"].dt.calendar == "noleap"
        assert [t.hour for t in ens["time"].values] == [9, 12, 15, 18]
    assert cli(["evaluate", str(out), "--out", str(tiny["dir"] / "rep")], capsys)[0] == 0


# -------------------------------------------------------------------------- 5. units


def test_units_are_recognised_through_one_library():
    for a in ("mm/h", "mm h-1", "mm hr-1", "mm/hr", "mm hr**-1"):
        assert same_units(a, "mm h-1") is True
    assert same_units("K", "kelvin") is True and same_units("K", "degC") is False
    assert same_units("", "mm/h") is None and same_units("foo bar", "mm/h") is None
    assert convertible("kg m-2 h-1", "mm h-1", water=True) and not convertible(
        "kg m-2 h-1", "mm h-1"
    )
    np.testing.assert_allclose(
        convert(np.array([1.0]), "kg m-2 s-1", "mm h-1", water=True), [3600.0]
    )
    for u in ("mm/h", "mm/hr", "mm hr-1", "kg m-2 s-1", "kg m-2", "mm"):
        assert is_nonnegative_quantity(u), u  # rain: "mm/hr" clips baselines at 0 too
    for u in ("m s-1", "km/h", "K", "", None):
        assert not is_nonnegative_quantity(u), u
    assert is_nonnegative_quantity("1", "rainfall_rate")


def test_expected_units_convert_or_refuse_and_unknown_units_warn(tiny, caplog):
    ds = _truth(tiny)
    ds["precip"] = ds["precip"] / 3600.0
    ds["precip"].attrs["units"] = "kg m-2 s-1"
    cfg = _cfg_with(tiny, ds, "flux.nc", units={"precip": "mm h-1"})
    data = _data(cfg)
    want = _data(json.loads(json.dumps(tiny["cfg"]))).raw_field(0)["target"]
    np.testing.assert_allclose(data.raw_field(0)["target"], want, rtol=1e-5, equal_nan=True)
    assert data.units["precip"] == "mm h-1"
    ds["precip"].attrs["units"] = "K"
    cfg = _cfg_with(tiny, ds, "kelvin.nc", units={"precip": "mm h-1"})
    with pytest.raises(DataError, match="cannot be converted"):
        _data(cfg)
    ds["precip"].attrs.pop("units")
    cfg = _cfg_with(tiny, ds, "none.nc")
    with caplog.at_level(logging.WARNING):
        _data(cfg)
    assert "'precip' has no units" in caplog.text


# ---------------------------------------------------------------- 6. names and times


def test_a_model_trained_on_precip_reads_a_file_that_calls_it_rain(tiny, capsys):
    run = tiny["dir"] / "run"
    assert (
        cli(["train", str(tiny["config"]), "--run-dir", str(run), "train.steps=1"], capsys)[0] == 0
    )
    other = _truth(tiny).rename({"precip": "rain"})
    other.to_netcdf(tiny["dir"] / "rain_named.nc")
    code, err = cli(
        [
            "generate",
            str(run / "model.safetensors"),
            f"data.truth.path={tiny['dir'] / 'rain_named.nc'}",
            "data.truth.rename={rain: precip}",
            "--out",
            str(tiny["dir"] / "r.nc"),
            "--members",
            "2",
        ],
        capsys,
    )
    assert code == 0, err
    code, err = cli(
        [
            "generate",
            str(run / "model.safetensors"),
            f"data.truth.path={tiny['dir'] / 'rain_named.nc'}",
            "--out",
            str(tiny["dir"] / "r2.nc"),
            "--members",
            "2",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "'precip'", "rain")
    code, err = cli(
        [
            "generate",
            str(run / "model.safetensors"),
            "--out",
            str(tiny["dir"] / "r3.nc"),
            "--times",
            "1999-01-01/1999-02-01",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "selects no time")


def test_cropping_to_the_factor_is_reported(tiny, caplog):
    ds = _truth(tiny).isel(lat=slice(0, 46))  # 46 rows: 2 dropped at factor 4
    cfg = _cfg_with(tiny, ds, "odd.nc")
    with caplog.at_level(logging.WARNING):
        _data(cfg)
    assert "46x48 to 44x48" in caplog.text and "2 rows" in caplog.text


# ------------------------------------------------------------- 7. exports stand alone


def test_an_export_works_from_another_folder(tiny, tmp_path):
    work = tiny["dir"]
    cfg = json.loads(json.dumps(tiny["cfg"]))
    cfg["data"]["truth"]["path"] = "rain.nc"  # relative to the training folder
    cfg["data"]["constants"]["path"] = "constants.nc"
    cfg["run_root"] = "runs"
    write_config(cfg, work / "rel.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "geogan.cli.main", "-q"]
    subprocess.run(
        [*run, "train", "rel.yaml", "--run-dir", "r", "train.steps=1"],
        cwd=work,
        env=env,
        check=True,
        timeout=300,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run(
        [
            *run,
            "generate",
            str(work / "r" / "model.safetensors"),
            "--out",
            "e.nc",
            "--members",
            "2",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert (elsewhere / "e.nc").exists()


# ---------------------------------------------------------------- 9. writer failures


def test_a_netcdf_writer_failure_is_one_line_and_the_old_output_is_intact(
    trained, capsys, monkeypatch
):
    import netCDF4

    out = trained["dir"] / "ens_w.nc"
    args = ["generate", str(trained["model"]), "--out", str(out), "--members", "2"]
    assert cli(args, capsys)[0] == 0
    before = out.read_bytes()

    def broken(self, key, value):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(netCDF4.Variable, "__setitem__", broken)
    code, err = cli([*args, "--overwrite"], capsys)
    assert_one_line_error(code, err, "could not write", "HDF error", str(out))
    assert out.read_bytes() == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_a_file_size_limit_during_generate_is_one_line(trained, tmp_path):
    out = tmp_path / "big.nc"
    limit = 64 * 1024  # far below the ensemble's size, above the run's other files

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "geogan.cli.main",
            "-q",
            "generate",
            str(trained["model"]),
            "--out",
            str(out),
            "--members",
            "8",
            "--times",
            "all",
        ],
        preexec_fn=small_files,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(out) in err[0], proc.stderr
    assert not out.exists()


# ------------------------------------------------------- 7. rank precision, report title


def test_report_names_the_data_and_says_why_no_precision_was_found(trained, capsys, tmp_path):
    from geogan.evaluation.metrics import explain_precision

    q, note = explain_precision(np.random.default_rng(0).gamma(1.0, size=5000))
    assert q is None and "continuous" in note
    q, note = explain_precision(np.random.default_rng(0).integers(0, 50, 5000) * 0.12)
    assert q == pytest.approx(0.12) and note.startswith("detected")
    out = tmp_path / "e.nc"
    assert (
        cli(["generate", str(trained["model"]), "--out", str(out), "--members", "2"], capsys)[0]
        == 0
    )
    assert cli(["evaluate", str(out), "--out", str(tmp_path / "rep")], capsys)[0] == 0
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "precip of rain.nc" in html  # the title names the data scored
    assert "rank-histogram precision" in html
