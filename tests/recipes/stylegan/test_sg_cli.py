"""Recipe 5 end to end through the CLI: train, resume, invert, tune, perturb, evaluate,
generate, on a tiny generated ensemble; and the one-line errors (exit 2, nothing written)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from sg_helpers import tiny_config, write_ensemble

from geogan.cli.main import main

TEST_TIME = "2021-06-02T12:00"
TUNE_TIME = "2021-06-01T12:00"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sg")
    data = write_ensemble(root)
    cfg = tiny_config(root, data)
    run = root / "run"
    assert main(["-q", "train", str(cfg), "--run-dir", str(run), "train.steps=2"]) == 0
    # resume to 4 steps: the path-length running mean is phase state in the checkpoint
    assert main(["-q", "train", str(cfg), "--run-dir", str(run), "--resume", "auto"]) == 0
    return root, data, cfg, run / "model.safetensors"


def test_train_writes_an_export_with_the_transforms(trained):
    from geogan.core.checkpoint import read_metadata

    root, _, _, model = trained
    meta = read_metadata(model)
    assert meta["format"] == "stylegan/1" and meta["step"] == 4
    assert meta["variables"] == ["u", "t2m"] and meta["shape"] == [2, 8, 16]
    assert meta["anomaly"] == "standardised" and meta["periodic_x"] is True
    resume = sorted((root / "run" / "checkpoints").glob("resume_*.safetensors"))[-1]
    phases = read_metadata(resume)["phases"]
    assert "path_length" in phases


def test_invert_tune_perturb_evaluate(trained):
    root, data, _, model = trained
    inv = root / "inv_test.nc"
    args = [
        "-q",
        "invert",
        str(model),
        "--out",
        str(inv),
        "--times",
        TEST_TIME,
        "--members",
        "0,1,2",
    ]
    assert main(args) == 0
    with xr.open_dataset(inv) as ds:
        assert ds["w"].shape == (2, 3, 4, 8)  # steps 4 and 8, 3 members, W+ of 4 styles
        assert list(ds["member"].values) == [0, 1, 2] and np.isfinite(ds["psnr"]).all()
    summary = json.loads((root / "inv_test.json").read_text())
    assert summary["samples"] == 3 and summary["members_per_minute"] > 0
    tune_inv = root / "inv_tune.nc"
    assert (
        main(
            [
                "-q",
                "invert",
                str(model),
                "--out",
                str(tune_inv),
                "--times",
                TUNE_TIME,
                "--members",
                "0,1,2",
            ]
        )
        == 0
    )
    scales = root / "scales.json"
    assert (
        main(["-q", "tune", str(tune_inv), "--out", str(scales), "--style-indices", "0,1,2"]) == 0
    )
    tuned = json.loads(scales.read_text())
    assert len(tuned["scale"]) == 4 and tuned["scale"][3] == 0.0  # style 3 not perturbed
    assert tuned["inflate"] == pytest.approx(np.sqrt(1 + 1 / 3) - 1)
    enriched = root / "enriched.nc"
    assert (
        main(
            [
                "-q",
                "perturb",
                str(inv),
                "--out",
                str(enriched),
                "--scales",
                str(scales),
                "--n-samples",
                "7",
            ]
        )
        == 0
    )
    with xr.open_dataset(enriched) as ds, xr.open_dataset(data) as truth:
        assert ds["u"].dims == ("member", "time", "latitude", "longitude")
        assert ds["u"].shape == (7, 1, 8, 16)
        assert list(ds["conditioning_member"].values[0]) == [0, 1, 2]
        # physical units: the members lie around the real ensemble's values
        real = truth["u"].sel(time=TEST_TIME).values
        assert abs(float(ds["u"].mean()) - float(real.mean())) < 3 * float(real.std())
    report = root / "report"
    assert main(["-q", "evaluate", str(enriched), "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    row = metrics["methods"]["enriched"]
    for key in (
        "crps_fair [u]",
        "ssr [t2m]",
        "rank_cdf_rms [u]",
        "pixel_wasserstein [u]",
        "pixel_wasserstein_k2 [u]",
        "corr_length [t2m]",
        "spectrum_max_dev [u]",
    ):
        assert np.isfinite(row[key]), key
    assert metrics["methods"]["conditioning"]["members [u]"] == 3
    assert metrics["methods"]["linear_combination"]["members [u]"] == 7
    html = (report / "report.html").read_text()
    assert "spread" in html.lower() and "rank histograms" in html and "data:image/png" in html


def test_perturb_with_scale_zero_returns_the_conditioning_members(trained):
    root, data, _, model = trained
    inv = root / "inv_zero.nc"
    assert (
        main(
            [
                "-q",
                "invert",
                str(model),
                "--out",
                str(inv),
                "--times",
                TEST_TIME,
                "--members",
                "1,3",
            ]
        )
        == 0
    )
    out = root / "zero.nc"
    assert (
        main(
            ["-q", "perturb", str(inv), "--out", str(out), "--n-samples", "4", "perturb.scale=0.0"]
        )
        == 0
    )
    with xr.open_dataset(out) as ds, xr.open_dataset(data) as src:
        real = src["t2m"].sel(time=TEST_TIME).sel(number=[1, 3]).values
        got = ds["t2m"].values[:, 0]
        np.testing.assert_allclose(got[0], real[0], atol=1e-4)  # member k from k mod 2
        np.testing.assert_allclose(got[3], real[1], atol=1e-4)


def test_generate_unconditional_samples(trained):
    root, _, _, model = trained
    out = root / "samples.nc"
    assert main(["-q", "generate", str(model), "--out", str(out), "--members", "3"]) == 0
    with xr.open_dataset(out) as ds:
        assert ds["u"].shape == (3, 8, 16) and ds.attrs["anomaly"] == "standardised"


def _fails(args, capsys, match):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert match in err and err.count("\n") == 1, err
    return err


def test_errors_are_one_line_and_leave_nothing(trained, tmp_path, capsys):
    root, data, cfg, model = trained
    out = tmp_path / "x.nc"
    # inversion of fields with other variables or another grid than the generator's
    _fails(
        [
            "invert",
            str(model),
            "--out",
            str(out),
            "--times",
            TEST_TIME,
            "data.source.variables=[u]",
        ],
        capsys,
        "trained on",
    )
    _fails(
        [
            "invert",
            str(model),
            "--out",
            str(out),
            "--times",
            TEST_TIME,
            "data.source.crop=[0,8,0,8]",
        ],
        capsys,
        "shape",
    )
    # a crop outside the field
    _fails(
        [
            "invert",
            str(model),
            "--out",
            str(out),
            "--times",
            TEST_TIME,
            "data.source.crop=[0,9,0,16]",
        ],
        capsys,
        "outside",
    )
    inv = root / "inv_err.nc"
    assert (
        main(
            [
                "-q",
                "invert",
                str(model),
                "--out",
                str(inv),
                "--times",
                TEST_TIME,
                "--members",
                "0,1",
            ]
        )
        == 0
    )
    # style_indices out of range
    _fails(
        ["perturb", str(inv), "--out", str(out), "--style-indices", "0,9"], capsys, "out of range"
    )
    # more conditioning members than the inversion file has
    _fails(
        ["perturb", str(inv), "--out", str(out), "--conditioning-members", "3"],
        capsys,
        "conditioning members",
    )
    _fails(["perturb", str(inv), "--out", str(out), "--rule", "wobble"], capsys, "rule")
    assert not out.exists() and not (tmp_path / "x.json").exists()
    assert not list(tmp_path.glob(".*tmp*"))


def test_npy_csv_data_and_its_errors(tmp_path, capsys):
    from geogan.recipes.stylegan.synthetic import synthetic_ensemble, write_npy_samples

    ds = synthetic_ensemble(times=4, members=4, shape=(8, 16))
    csv = write_npy_samples(ds, tmp_path / "samples")
    cfg = tiny_config(tmp_path, tmp_path / "unused.nc")
    base = [
        f"data.npy={{path: {csv.parent}, variables: [u, t2m]}}",
        "data.source=null",
        "train.steps=1",
    ]
    assert main(["-q", "train", str(cfg), "--run-dir", str(tmp_path / "r1"), *base]) == 0
    # missing columns
    frame = pd.read_csv(csv)
    frame.drop(columns=["LeadTime"]).to_csv(csv, index=False)
    _fails(["train", str(cfg), "--run-dir", str(tmp_path / "r2"), *base], capsys, "LeadTime")
    frame.to_csv(csv, index=False)
    # a row whose .npy file is missing
    (csv.parent / "_sample3.npy").unlink()
    _fails(["train", str(cfg), "--run-dir", str(tmp_path / "r3"), *base], capsys, "no .npy file")
    # crop outside the field
    (csv.parent / "_sample3.npy").write_bytes((csv.parent / "_sample2.npy").read_bytes())
    crop = [
        f"data.npy={{path: {csv.parent}, variables: [u, t2m], crop: [0, 8, 0, 32]}}",
        "data.source=null",
        "train.steps=1",
    ]
    _fails(["train", str(cfg), "--run-dir", str(tmp_path / "r4"), *crop], capsys, "outside")
    assert not (tmp_path / "r2").exists() and not (tmp_path / "r4").exists()
