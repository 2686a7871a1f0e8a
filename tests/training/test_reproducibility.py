"""The reproducibility files of a run directory: git.txt, command.txt, config.yaml,
pip_freeze.txt and reproduce.json."""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
import sys

import pytest
from tiny_data import base_config

from geogan.recipes.config import load_run_config, run_config_from_dict
from geogan.training import reproducibility
from geogan.training.reproducibility import write_reproducibility


@pytest.fixture()
def cfg(tmp_path):
    return run_config_from_dict(base_config(tmp_path / "rain.nc", None, tmp_path / "runs"))


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", *args],
        cwd=reproducibility.GIT_LOOKUP_DIR,
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_files_inside_this_checkout(tmp_path, cfg):
    head = _git("rev-parse", "HEAD")
    if head.returncode != 0:
        pytest.skip("geogan is not imported from a git checkout here")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    command = ["geogan", "train", "my cfg.yaml", "train.steps=3", "name=a b"]
    record = write_reproducibility(run_dir, cfg, command)
    dirty_now = bool(_git("status", "--porcelain").stdout.strip())

    for name in ("git.txt", "command.txt", "config.yaml", "pip_freeze.txt", "reproduce.json"):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob(".*.tmp"))  # atomic writes leave no temporaries

    git_lines = (run_dir / "git.txt").read_text().splitlines()
    assert git_lines[0] == f"commit: {head.stdout.strip()}"
    assert git_lines[1] == f"dirty: {'true' if dirty_now else 'false'}"

    line = (run_dir / "command.txt").read_text().strip()
    assert line == "geogan train 'my cfg.yaml' train.steps=3 'name=a b'"
    assert shlex.split(line) == command

    assert load_run_config(run_dir / "config.yaml") == cfg

    freeze = (run_dir / "pip_freeze.txt").read_text().lower().splitlines()
    assert any(line.startswith("torch==") for line in freeze)
    assert not freeze[0].startswith("# pip freeze failed")

    saved = json.loads((run_dir / "reproduce.json").read_text())
    assert saved == record
    assert saved["command"] == command
    assert saved["git"]["commit"] == head.stdout.strip()
    assert saved["git"]["dirty"] is dirty_now
    assert saved["python"] == sys.version
    import torch

    assert saved["torch"] == torch.__version__
    assert saved["hostname"] and saved["platform"]
    when = datetime.datetime.fromisoformat(saved["time"])
    age = datetime.datetime.now(datetime.timezone.utc) - when
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=5)


def test_outside_a_checkout_and_when_pip_cannot_run(tmp_path, cfg, monkeypatch):
    outside = tmp_path / "site-packages" / "geogan"
    outside.mkdir(parents=True)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setattr(reproducibility, "GIT_LOOKUP_DIR", outside)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    record = write_reproducibility(run_dir, cfg, ["geogan", "train", "c.yaml"])

    assert (run_dir / "git.txt").read_text() == "not a git checkout\n"
    assert record["git"] is None
    freeze = (run_dir / "pip_freeze.txt").read_text().splitlines()
    assert freeze[0].startswith("# pip freeze failed: cannot run ")
    # the fallback still lists the installed distributions
    assert any(line.lower().startswith("torch==") for line in freeze)
    assert record["pip_freeze"].startswith("failed")


def test_pip_freeze_timeout_is_reported(tmp_path, cfg, monkeypatch):
    monkeypatch.setattr(reproducibility, "PIP_TIMEOUT_S", 0.001)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_reproducibility(run_dir, cfg, ["geogan"])
    first = (run_dir / "pip_freeze.txt").read_text().splitlines()[0]
    assert first.startswith("# pip freeze failed: ") and "did not finish within" in first
