"""The recipe end to end through the CLI (train, resume, generate, evaluate), and its
one-line errors: exit code 2 and nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from vol_helpers import ocean_config, tiny_config, write_ocean

from geogan.cli.main import main


def _write(tmp_path: Path, tree: dict, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vol")
    cfg = _write(tmp, tiny_config(tmp))
    run = tmp / "run"
    assert main(["--quiet", "train", str(cfg), "--run-dir", str(run)]) == 0
    return tmp, cfg, run


def test_train_writes_the_export_the_mse_baseline_and_resumes(trained):
    tmp, cfg, run = trained
    assert (run / "model.safetensors").exists() and (run / "mse_model.safetensors").exists()
    assert json.loads((run / "train_summary.json").read_text())["stage"] == "adversarial"
    code = main(
        ["--quiet", "train", str(cfg), "--run-dir", str(run), "--resume", "auto", "train.steps=5"]
    )
    assert code == 0
    assert json.loads((run / "train_summary.json").read_text())["steps"] == 5


def test_generate_and_evaluate_end_to_end(trained):
    tmp, _, run = trained
    out = tmp / "ens.zarr"
    assert (
        main(
            [
                "--quiet",
                "generate",
                str(run / "model.safetensors"),
                "--out",
                str(out),
                "--members",
                "3",
            ]
        )
        == 0
    )
    ds = xr.open_zarr(out)
    assert ds["T"].dims == ("member", "sample", "z", "y", "x") and ds["T"].shape == (
        3,
        1,
        16,
        16,
        16,
    )
    assert np.isfinite(ds["w"].values).all() and "geogan_config" in ds.attrs
    assert json.loads(Path(f"{out}.summary.json").read_text())["members"] == 3
    nc = tmp / "ens.nc"
    assert (
        main(
            [
                "--quiet",
                "generate",
                str(run / "model.safetensors"),
                "--out",
                str(nc),
                "--members",
                "3",
            ]
        )
        == 0
    )
    with xr.open_dataset(nc) as d2:
        np.testing.assert_allclose(d2["T"].values, ds["T"].values, atol=1e-6)  # seeds, not format
    report = tmp / "report"
    assert main(["--quiet", "evaluate", str(out), "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert set(metrics["variables"]) == {"T", "u", "v", "w"}
    assert set(metrics["methods"]) == {"gan", "trilinear", "tricubic", "mse"}
    gan = metrics["variables"]["u"]["methods"]["gan"]
    assert {"crps", "ssr", "wasserstein", "ratio_min"} <= set(gan)
    assert "divergence" in metrics and "targets" in metrics
    html = (report / "report.html").read_text()
    assert "slices" in html and "power" in html.lower()


def test_a_volume_smaller_than_a_tile_is_refused(trained, capsys):
    tmp, _, run = trained
    out = tmp / "big_tile.zarr"
    code = main(["generate", str(run / "model.safetensors"), "--out", str(out), "generate.tile=8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "smaller than a tile" in err[0]
    assert not out.exists() and not list(tmp.glob(".big_tile*"))


def test_a_factor_that_does_not_divide_the_crop_is_refused(tmp_path, capsys):
    cfg = _write(tmp_path, tiny_config(tmp_path, data={"crop": 14}))
    code = main(["train", str(cfg), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not divide data.crop" in err[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "runs").exists()


def test_vector_components_not_in_the_file_are_refused(tmp_path, capsys):
    tree = ocean_config(tmp_path, write_ocean(tmp_path / "ocean.nc"))
    tree["data"]["augment"]["vectors"] = [{"components": ["uo", "vo"], "axes": ["x", "y"]}]
    code = main(["train", str(_write(tmp_path, tree)), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "uo" in err[0] and "not in" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_periodic_axis_that_is_not_a_circle_is_refused(tmp_path, capsys):
    tree = ocean_config(
        tmp_path, write_ocean(tmp_path / "ocean.nc", lon_step=3.0), periodic_axes=["x"]
    )
    code = main(["train", str(_write(tmp_path, tree)), "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "round the circle" in err[0]
    assert not (tmp_path / "run").exists()


def test_file_volumes_train_and_generate_with_levels_kept(tmp_path):
    tree = ocean_config(tmp_path, write_ocean(tmp_path / "ocean.nc"))
    tree["generate"] = {"members": 2, "tile": None}
    tree["model"]["critic_padding"] = "same"  # 5 levels are fewer than valid padding trims
    cfg = _write(tmp_path, tree)
    run = tmp_path / "run"
    assert main(["--quiet", "train", str(cfg), "--run-dir", str(run)]) == 0
    out = tmp_path / "ocean_ens.nc"
    assert main(["--quiet", "generate", str(run / "model.safetensors"), "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        assert ds["theta"].dims == ("member", "face", "depth", "j", "i")
        assert ds["theta"].shape == (2, 1, 5, 16, 16) and list(ds["face"].values) == [3]
        assert np.isnan(ds["theta"].values[:, :, :, :3, :3]).all()  # land stays land
        assert np.isfinite(ds["theta"].values[:, :, :, 5:, 5:]).all()
        np.testing.assert_allclose(ds["depth"].values, np.linspace(25.0, 500.0, 5))
