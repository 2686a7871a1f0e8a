"""The recipe-5 benchmark scripts and the demo run (toy sizes: they check code, not speed
or skill; the full runs are in docs/results/stylegan.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture(autouse=True)
def _bench_path():
    sys.path.insert(0, str(BENCH))
    yield
    sys.path.remove(str(BENCH))


def test_speed_benchmark_quick(tmp_path):
    import stylegan_speed

    results = stylegan_speed.run(
        ["quick"],
        ["fp32"],
        None,
        repeats=1,
        threads=1,
        channels_last=True,
        timeout=600,
        inversion_steps=3,
        log=lambda *_: None,
    )
    runs = {(r.get("impl"), "s_per_iter" in r, "images_per_s" in r): r for r in results["runs"]}
    train = runs[("geogan", True, False)]
    assert train["s_per_iter"] > 0 and train["flops_per_iter"] > 0 and train["weights_finite"]
    # amortised: D+G every step, path length every 4th, R1 every 16th
    assert train["s_per_iter"] >= train["s_dg"]
    kinds = train["flops_by_kind"]
    assert kinds["16"] > kinds["4"] > kinds["1"] > 0
    assert runs[("geogan", False, True)]["images_per_s"] > 0
    inv = next(r for r in results["runs"] if "members_per_minute_at_1000_steps" in r)
    assert inv["members_per_minute_at_1000_steps"] > 0
    assert "| quick | geogan | fp32 |" in results["table"]


def test_skill_benchmark_quick(tmp_path):
    import stylegan_skill

    log = stylegan_skill.run(tmp_path / "skill", quick=True, progress=False)
    assert set(log["checks"]) == {"z850", "z500", "t850", "t500"}
    assert all(isinstance(v, bool) for c in log["checks"].values() for v in c.values())
    assert (tmp_path / "skill" / "report" / "report.html").exists()
    # resumable: a second run skips every stage
    again = stylegan_skill.run(tmp_path / "skill", quick=True, progress=False)
    assert all(again[s].get("skipped") for s in ("train", "invert_test", "tune", "evaluate"))
    assert "| z500 | crps_fair |" in stylegan_skill.table(tmp_path / "skill")
    # --reuse: the generator and inversions are linked, tune/perturb/evaluate redone
    other = stylegan_skill.run(
        tmp_path / "other",
        quick=True,
        progress=False,
        reuse=tmp_path / "skill",
        rule="extrapolation",
    )
    assert all(other[s].get("skipped") for s in ("train", "invert_tuning", "invert_test"))
    assert not other["tune"].get("skipped") and not other["evaluate"].get("skipped")
    assert (tmp_path / "other" / "run").is_symlink()
    scales = json.loads((tmp_path / "other" / "scales.json").read_text())
    assert scales["rule"] == "extrapolation"


def test_demo_quick(tmp_path):
    from geogan.recipes import get_recipe

    summary = get_recipe("stylegan").demo(
        tmp_path / "demo", steps=2, members=8, quick=True, progress=False
    )
    assert summary["perturb"]["members"] == 8
    saved = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    assert saved["evaluate"]["ensembles"] == 1
    assert (tmp_path / "demo" / "report" / "report.html").exists()


@pytest.mark.slow
def test_full_demo_through_the_cli_within_ten_minutes(tmp_path):
    import time

    from geogan.cli.main import main

    t0 = time.perf_counter()
    assert main(["-q", "demo", "--recipe", "stylegan", "--out", str(tmp_path / "demo")]) == 0
    assert time.perf_counter() - t0 < 600
