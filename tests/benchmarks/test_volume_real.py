"""Smoke test of benchmarks/volume_real.py --quick on generated files with the layout of the
real MITgcm and NAM files (dims, names, land mask): both presets train on their training part,
generate the held-out part by tiles, and every metric lands in real.md / real_summary.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import volume_real
import xarray as xr


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _smooth(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth random field: white noise low-passed in Fourier space over the last 2 axes."""
    white = rng.standard_normal(shape)
    ky = np.fft.fftfreq(shape[-2])[:, None]
    kx = np.fft.rfftfreq(shape[-1])[None, :]
    filt = np.exp(-((ky**2 + kx**2) / 0.02))
    out = np.fft.irfftn(np.fft.rfftn(white, axes=(-2, -1)) * filt, s=shape[-2:], axes=(-2, -1))
    return (out / out.std()).astype(np.float32)


def _mitgcm_like(path) -> None:
    rng = np.random.default_rng(0)
    shape = (2, 6, 15, 32, 32)
    depth = np.linspace(25, 4855, 15, dtype=np.float32)
    wet = (_smooth(rng, shape[1:]) > -0.8).astype(np.int8)  # ~20% land
    data = {
        "theta": 15 - depth[:, None, None] / 400 + 2 * _smooth(rng, shape),
        "salt": 35 + 0.3 * _smooth(rng, shape),
        "u": 0.1 * _smooth(rng, shape),
        "v": 0.1 * _smooth(rng, shape),
        "w": 1e-4 * _smooth(rng, shape),
    }
    ds = xr.Dataset(
        {
            k: (("time", "face", "depth", "j", "i"), np.where(wet > 0, v, np.nan).astype("f4"))
            for k, v in data.items()
        },
        coords={"time": [0, 1728000], "face": np.arange(1, 7), "depth": depth},
    )
    ds["wet"] = (("face", "depth", "j", "i"), wet)
    for k in data:
        ds[k].attrs["units"] = "degC" if k == "theta" else "m s-1"
    ds.to_netcdf(path)


def _nam_like(path) -> None:
    rng = np.random.default_rng(1)
    shape = (1, 19, 65, 93)
    level = np.linspace(1000, 100, 19, dtype=np.float32)
    gh = 7000 * np.log(1000 / level)[:, None, None] + 20 * _smooth(rng, shape)
    data = {
        "t": 290 - 60 * np.log(1000 / level)[:, None, None] + 3 * _smooth(rng, shape),
        "u": 10 * _smooth(rng, shape),
        "v": 10 * _smooth(rng, shape),
        "w": 0.2 * _smooth(rng, shape),
        "gh": gh,
        "r": 60 + 20 * _smooth(rng, shape),
    }
    ds = xr.Dataset(
        {k: (("time", "level", "y", "x"), v.astype("f4")) for k, v in data.items()},
        coords={
            "level": level,
            "y": np.arange(65) * 81000.0,
            "x": np.arange(93) * 81000.0,
        },
    )
    ds.to_netcdf(path)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("volumes")
    _mitgcm_like(data / "mitgcm_global_oce_cs32.nc")
    _nam_like(data / "nam_20180917_isobaric.nc")
    out = tmp_path_factory.mktemp("volume_real") / "out"
    argv = ["--out", str(out), "--data-dir", str(data), "--quick", "--members", "2"]
    rc = volume_real.main([*argv, "--threads", "1"])
    return rc, out, data


def test_both_real_layouts_train_generate_and_are_scored(quick_run):
    rc, out, _ = quick_run
    assert rc == 0
    summary = json.loads((out / "real_summary.json").read_text())
    mitgcm, nam = summary["cases"]["mitgcm"], summary["cases"]["nam"]
    assert set(mitgcm["variables"]) == {"theta", "salt", "u", "v", "w"}
    assert set(nam["variables"]) == {"t", "u", "v", "w", "gh", "r"}
    for case in (mitgcm, nam):
        assert case["train"]["steps"] == 4
        for var, res in case["variables"].items():
            assert {"gan", "trilinear", "tricubic", "mse"} <= set(res["methods"])
            v = case["verdicts"][var]
            assert set(v) == {"crps", "wasserstein", "lsd_db"}
            for d in v.values():
                assert d["best_interpolation"] in ("trilinear", "tricubic")
                assert d["gan_better"] == (d["gan"] < d["interpolation"])
        # horizontal divergence of (u, v) is scored for the GAN and the baselines
        assert {"gan", "tricubic"} <= set(case["divergence"])
        assert case["divergence"]["gan"]["mean_abs_div_truth"] > 0
    md = (out / "real.md").read_text()
    assert "## mitgcm (`volume/mitgcm_x4`)" in md and "## nam (`volume/nam_x4`)" in md
    assert md.count("| theta | gan |") == 1 and md.count("| gh | tricubic |") == 1
    assert (out / "mitgcm" / "report" / "report.html").is_file()


def test_held_out_parts_are_the_presets_regions(quick_run):
    _, out, _ = quick_run
    mit = xr.open_zarr(out / "mitgcm" / "members.zarr")
    nam = xr.open_zarr(out / "nam" / "members.zarr")
    # MITgcm: faces 5 and 6 (indices 4-5), whole faces, all 15 levels
    assert list(mit["face"].values) == [5, 6]
    assert dict(mit["theta"].sizes) == {"face": 2, "member": 2, "depth": 15, "j": 32, "i": 32}
    # land stays missing in every member
    assert bool(np.isnan(mit["theta"].values).any())
    # NAM: the eastern 32 columns of the 64 x 92 cut
    assert nam.sizes["x"] == 32 and nam.sizes["y"] == 64 and nam.sizes["level"] == 19
    assert float(nam["x"][0]) == 60 * 81000.0


def test_missing_data_dir_is_one_line_exit_2(tmp_path, capsys):
    rc = volume_real.main(["--out", str(tmp_path / "o"), "--data-dir", str(tmp_path), "--quick"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data-dir" in err[0]
    assert not (tmp_path / "o").exists()
