"""The demo pipeline end to end (slow: builds the full Blue Marble data set and generates 1M pixels)."""

from __future__ import annotations

import json

import pytest

from geogan.cli.main import main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    assert main(["--quiet", "demo", "--out", str(out), "--steps", "3", "--members", "2"]) == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["train"]["steps"] == 3
    assert set(summary["crps"]) == {"geogan", "bicubic"}
    assert (out / "report" / "report.html").exists()
    # a second run refuses to overwrite
    assert main(["--quiet", "demo", "--out", str(out), "--steps", "1"]) == 2
