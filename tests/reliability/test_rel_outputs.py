"""Outputs and checkpoints at the CLI (issue 4, item 6, continued).

A checkpoint whose variables or units do not match the data is refused by name; an
existing output is refused unless ``--overwrite`` (generate, evaluate, prepare, demo);
a full disk, a quota, a file size limit or a permission error while writing gives
one line (``no space left on device while writing X``), exit code 2, and nothing
under the final name. The disk is made "full" by monkeypatching the writers, and
for real with ``RLIMIT_FSIZE`` (the kernel refuses writes past the limit).
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import xarray as xr
from rel_helpers import assert_one_line_error, cli

from geogan.core import atomic
from geogan.core.atomic import atomic_write_bytes
from geogan.core.checkpoint import save_checkpoint
from geogan.core.errors import OutputWriteError


def _generate(trained, capsys, out, *extra):
    return cli(["generate", str(trained["model"]), "--out", str(out), *extra], capsys)


def _leftovers(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


# ----------------------------------------------------------------- checkpoint vs data
def test_checkpoint_refuses_data_with_other_variables(trained, tmp_path, capsys):
    with xr.open_dataset(trained["truth"]) as ds:
        truth = ds.load()
    renamed = truth.rename(precip="rain")
    renamed.to_netcdf(tmp_path / "rain_renamed.nc")
    renamed.coarsen(lat=4, lon=4).mean().to_netcdf(tmp_path / "coarse_rain.nc")
    truth.coarsen(lat=4, lon=4).mean().to_netcdf(tmp_path / "coarse_precip.nc")
    cases = {
        "input": [
            "data.autocoarsen=false",
            f"data.input.path={tmp_path / 'coarse_rain.nc'}",
            "data.input.variables=[rain]",
        ],
        "target": [
            "data.autocoarsen=false",
            f"data.input.path={tmp_path / 'coarse_precip.nc'}",
            "data.input.variables=[precip]",
            f"data.truth.path={tmp_path / 'rain_renamed.nc'}",
            "data.truth.variables=[rain]",
        ],
    }
    for role, overrides in cases.items():
        out = tmp_path / f"{role}.nc"
        code, err = _generate(trained, capsys, out, *overrides)
        assert_one_line_error(code, err, f"{role} variables ['precip']", "['rain']")
        assert not out.exists()
    # the same variables from an input file instead of autocoarsen are accepted
    same = [
        "data.autocoarsen=false",
        f"data.input.path={tmp_path / 'coarse_precip.nc'}",
        "data.input.variables=[precip]",
    ]
    code, err = _generate(trained, capsys, tmp_path / "ok.nc", *same)
    assert code == 0, err


def test_checkpoint_refuses_data_in_other_units(trained, tmp_path, capsys):
    with xr.open_dataset(trained["truth"]) as ds:
        flux = ds.load()
    flux["precip"] = flux["precip"] / 3600.0
    flux["precip"].attrs["units"] = "kg m-2 s-1"
    flux.to_netcdf(tmp_path / "flux.nc")
    out = tmp_path / "flux_ens.nc"
    code, err = _generate(trained, capsys, out, f"data.truth.path={tmp_path / 'flux.nc'}")
    assert_one_line_error(code, err, "'precip'", "'mm/h'", "'kg m-2 s-1'")
    assert not out.exists()


# ----------------------------------------------------------------- existing outputs
def test_existing_outputs_are_refused_without_overwrite(trained, tmp_path, capsys):
    # generate
    ens = tmp_path / "ens.nc"
    ens.write_text("keep me")
    assert_one_line_error(*_generate(trained, capsys, ens), "ens.nc", "--overwrite")
    assert ens.read_text() == "keep me"
    code, err = _generate(trained, capsys, ens, "--overwrite")
    assert code == 0, err
    with xr.open_dataset(ens) as ds:
        assert ds["precip"].dims == ("member", "time", "lat", "lon")

    # evaluate
    report = tmp_path / "report"
    report.mkdir()
    (report / "mine.txt").write_text("keep me")
    code, err = cli(["evaluate", str(ens), "--out", str(report)], capsys)
    assert_one_line_error(code, err, "report", "--overwrite")
    assert [p.name for p in report.iterdir()] == ["mine.txt"]

    # prepare
    stats = tmp_path / "stats.json"
    stats.write_text("keep me")
    args = ["prepare", str(trained["config"]), f"data.stats_path={stats}"]
    code, err = cli(args, capsys)
    assert_one_line_error(code, err, "stats.json", "--overwrite")
    assert stats.read_text() == "keep me"
    code, err = cli([*args, "--overwrite"], capsys)
    assert code == 0, err
    assert "precip" in json.loads(stats.read_text())["variables"]

    # demo
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "mine.txt").write_text("keep me")
    code, err = cli(["demo", "--out", str(demo), "--steps", "1"], capsys)
    assert_one_line_error(code, err, "demo", "--overwrite")
    assert [p.name for p in demo.iterdir()] == ["mine.txt"]
    assert not _leftovers(tmp_path)


# ----------------------------------------------------------------- full disk, simulated
def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_a_checkpoint(tiny, monkeypatch, capsys):
    from geogan.core import checkpoint

    real_save = checkpoint.save_file

    def half_then_full(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 2])  # the disk filled up half way
        _enospc()

    monkeypatch.setattr(checkpoint, "save_file", half_then_full)
    code, err = cli(["train", str(tiny["config"]), "train.steps=1"], capsys)
    assert_one_line_error(
        code, err, "no space left on device while writing", "resume_000000001.safetensors"
    )
    assert not list(tiny["dir"].rglob("*.safetensors")) and not _leftovers(tiny["dir"])
    runs = tiny["dir"] / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "a failed run left a run directory"


def test_disk_full_while_writing_an_ensemble(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "fsync", _enospc)  # the flush before the rename fails
    out = tmp_path / "ens.nc"
    assert_one_line_error(
        *_generate(trained, capsys, out), f"no space left on device while writing {out}"
    )
    assert not out.exists() and not _leftovers(tmp_path)


def test_native_writer_failure_on_a_full_disk(trained, tmp_path, monkeypatch, capsys):
    """netCDF/HDF5 lose errno ("NetCDF: HDF error"): with the disk (nearly) full, that is named
    a full disk; with space left, it is one line that quotes the writer's own error."""
    from geogan.inference import writers

    def hdf_error(*_args, **_kwargs):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(writers, "_write", hdf_error)
    out = tmp_path / "ens.nc"
    assert_one_line_error(*_generate(trained, capsys, out), f"could not write {out}", "HDF error")
    assert not out.exists() and not _leftovers(tmp_path)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _: usage._replace(free=4096))
    assert_one_line_error(*_generate(trained, capsys, out), "no space left on device while writing")
    assert not out.exists() and not _leftovers(tmp_path)


def test_quota_and_permission_errors_on_outputs(trained, tmp_path, monkeypatch, capsys):
    def quota(self, data):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    stats = tmp_path / "stats.json"
    with monkeypatch.context() as m:
        m.setattr(Path, "write_bytes", quota)
        code, err = cli(["prepare", str(trained["config"]), f"data.stats_path={stats}"], capsys)
    assert_one_line_error(code, err, f"disk quota exceeded while writing {stats}")
    assert not stats.exists() and not _leftovers(tmp_path)

    def denied(*_args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), kwargs.get("dir"))

    out = tmp_path / "ens.nc"
    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkdtemp", denied)
        code, err = _generate(trained, capsys, out)
    assert_one_line_error(code, err, f"permission denied while writing {out}")
    assert not out.exists()


def test_disk_full_outside_the_atomic_writers(tiny, monkeypatch, capsys):
    """The log (stats.jsonl) is appended, not renamed: a full disk there is one line too."""
    from geogan.core.tracking import Tracker

    def full(self, step, scalars):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.run_dir / "stats.jsonl"))

    monkeypatch.setattr(Tracker, "log_scalars", full)
    code, err = cli(["train", str(tiny["config"]), "train.steps=1"], capsys)
    assert_one_line_error(code, err, "no space left on device while writing", "stats.jsonl")


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_real_file_size_limit_while_writing(tmp_path):
    """Not simulated: the kernel refuses writes past RLIMIT_FSIZE (EFBIG) inside safetensors'
    Rust writer and Python's own writes; both become OutputWriteError naming the final path."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))
    try:
        with pytest.raises(OutputWriteError, match="file too large") as info:
            save_checkpoint(tmp_path / "big.safetensors", {"w": torch.zeros(1 << 20)}, {"step": 1})
        with pytest.raises(OutputWriteError, match="file too large"):
            atomic_write_bytes(tmp_path / "big.bin", bytes(2 << 20))
        save_checkpoint(tmp_path / "small.safetensors", {"w": torch.zeros(1000)}, {"step": 1})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert str(tmp_path / "big.safetensors") in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.safetensors"]
