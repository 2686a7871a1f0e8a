"""The CLI end to end on tiny data: train, resume, generate, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from geogan.cli.main import main
from geogan.core.checkpoint import load_checkpoint


def _train(tiny, *extra, run_dir=None):
    args = ["--quiet", "train", str(tiny["config"]), *extra]
    if run_dir is not None:
        args += ["--run-dir", str(run_dir)]
    return main(args)


def test_train_resume_generate_evaluate(tiny, tmp_path):
    run = tmp_path / "run"
    assert _train(tiny, "train.steps=2", run_dir=run) == 0
    for name in (
        "config.yaml",
        "model.safetensors",
        "normalisation.json",
        "stats.jsonl",
        "reproduce.json",
        "train_summary.json",
    ):
        assert (run / name).exists(), name
    _, meta = load_checkpoint(run / "model.safetensors")
    assert (
        meta["kind"] == "export"
        and meta["input_vars"] == ["precip"]
        and meta["constant_vars"] == ["orography", "lsm"]
    )
    assert meta["config"]["train"]["steps"] == 2

    # resume continues from step 2 to step 4
    assert _train(tiny, "train.steps=4", "--resume", "auto", run_dir=run) == 0
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 4 and summary["steps_this_run"] == 2

    out = tmp_path / "ens.nc"
    assert (
        main(
            [
                "--quiet",
                "generate",
                str(run / "model.safetensors"),
                "--out",
                str(out),
                "--times",
                "all",
            ]
        )
        == 0
    )
    ds = xr.open_dataset(out)
    assert ds["precip"].dims == ("member", "time", "lat", "lon")
    assert ds.sizes["member"] == 3 and ds.sizes["time"] == 8
    assert ds["precip"].attrs["units"] == "mm/h"
    truth = xr.open_dataset(tiny["truth"])
    np.testing.assert_allclose(ds["lat"].values, truth["lat"].values)
    valid = ds["precip"].values[np.isfinite(ds["precip"].values)]
    assert (valid >= 0).all()  # softplus output, inverse log1p: rain is never negative
    assert (out.parent / "ens.nc.summary.json").exists()

    # one seed per member: the same seed reproduces, another seed differs
    out2, out3 = tmp_path / "ens2.nc", tmp_path / "ens3.nc"
    assert (
        main(
            [
                "--quiet",
                "generate",
                str(run / "model.safetensors"),
                "--out",
                str(out2),
                "--times",
                "all",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "--quiet",
                "generate",
                str(run / "model.safetensors"),
                "--out",
                str(out3),
                "--times",
                "all",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    a, b, c = (xr.open_dataset(p)["precip"].values for p in (out, out2, out3))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(np.nan_to_num(a), np.nan_to_num(c))

    report = tmp_path / "report"
    assert main(["--quiet", "evaluate", str(out), "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"geogan", "bilinear", "bicubic", "lanczos"}
    for name in ("crps", "crps_pool4s2", "ssr", "lsd_db", "rmse", "bias"):
        assert np.isfinite(metrics["methods"]["geogan"][name]), name
    html = (report / "report.html").read_text()
    assert "data:image/png;base64," in html and "CRPS" in html


def test_generate_refuses_existing_output_and_mismatched_data(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(tiny, "train.steps=1", run_dir=run) == 0
    out = tmp_path / "ens.nc"
    out.write_text("keep me")
    assert main(["generate", str(run / "model.safetensors"), "--out", str(out)]) == 2
    assert out.read_text() == "keep me"
    assert "--overwrite" in capsys.readouterr().err
    # data without the constant fields the model was trained with: refused by name
    code = main(
        [
            "generate",
            str(run / "model.safetensors"),
            "--out",
            str(tmp_path / "x.nc"),
            "data.constants.path=null",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "constant variables" in err and not (tmp_path / "x.nc").exists()


@pytest.mark.parametrize("mode", ["vaegan", "det"])
def test_other_modes_train_and_generate(tiny, tmp_path, mode):
    run = tmp_path / mode
    assert _train(tiny, f"train.mode={mode}", "train.steps=1", run_dir=run) == 0
    _, meta = load_checkpoint(run / "model.safetensors")
    assert meta["mode"] == mode
    assert ("encoder" in meta["models"]) == (mode == "vaegan")
    out = tmp_path / f"{mode}.nc"
    assert (
        main(
            [
                "--quiet",
                "generate",
                str(run / "model.safetensors"),
                "--out",
                str(out),
                "--members",
                "2",
            ]
        )
        == 0
    )
    members = xr.open_dataset(out)["precip"].values
    same = np.allclose(np.nan_to_num(members[0]), np.nan_to_num(members[1]))
    assert same == (mode == "det")  # the deterministic baseline has no spread


def test_bf16_and_forceconv_long_train(tiny, tmp_path):
    run = tmp_path / "bf16"
    args = (
        "train.precision=bf16",
        "model.arch=forceconv-long",
        "train.channels_last=true",
        "train.steps=1",
    )
    assert _train(tiny, *args, run_dir=run) == 0
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert np.isfinite(stats[-1]["generator/loss"])


def test_info_and_help_show_examples(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"torch", "xarray"} <= set(info["packages"]) and "bf16_cpu_native" in info
    for command in ("train", "prepare", "generate", "evaluate", "demo", "info"):
        assert main([command, "--help"]) == 0
        assert "Example" in capsys.readouterr().out, command


def test_prepare_writes_statistics(tiny, tmp_path):
    stats = tmp_path / "stats.json"
    store = tmp_path / "patches.zarr"
    code = main(
        [
            "--quiet",
            "prepare",
            str(tiny["config"]),
            f"data.stats_path={stats}",
            f"data.patch_store={store}",
            "--patches",
            "8",
        ]
    )
    assert code == 0 and stats.exists() and store.exists()
    # training reads the prepared patch store and the statistics
    run = tmp_path / "run"
    assert (
        _train(
            tiny,
            f"data.stats_path={stats}",
            f"data.patch_store={store}",
            "train.steps=1",
            run_dir=run,
        )
        == 0
    )


def test_tensorboard_scalars_and_image_grids(tiny, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "tb"
    assert (
        _train(
            tiny,
            "train.tensorboard=true",
            "train.image_every=1",
            "train.log_every=1",
            "train.steps=2",
            run_dir=run,
        )
        == 0
    )
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()
    assert "generator/loss" in tags["scalars"] and "critic/gp" in tags["scalars"]
    assert "samples" in tags["images"]
