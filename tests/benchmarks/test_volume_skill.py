"""Smoke test of benchmarks/volume_skill.py --quick: both cases train, generate, evaluate and
land in skill.md / skill_summary.json with every target of the issue; --resume keeps them."""

from __future__ import annotations

import json

import pytest
import torch
import volume_skill


@pytest.fixture(autouse=True, scope="module")
def _restore_threads():
    """The script sets the process's torch threads (--threads 1): later tests must not inherit it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("volume_skill") / "out"
    rc = volume_skill.main(["--out", str(out), "--quick", "--members", "2", "--threads", "1"])
    return rc, out


def test_quick_run_scores_both_cases_against_every_target(quick_run):
    rc, out = quick_run
    assert rc == 0
    summary = json.loads((out / "skill_summary.json").read_text())
    assert set(summary["cases"]) == {"mantle", "lognormal"}
    mantle, lognormal = summary["cases"]["mantle"], summary["cases"]["lognormal"]
    assert set(mantle["variables"]) == {"T", "u", "v", "w"}
    assert set(lognormal["variables"]) == {"rho"}
    for case in (mantle, lognormal):
        for var in case["variables"]:
            passed = case["targets"][var]["passed"]
            assert set(passed) == {key for key, _, _ in volume_skill.TARGET_ROWS}
            assert {"gan", "trilinear", "tricubic"} <= set(case["variables"][var]["methods"])
        assert case["train"]["steps"] == 4
    # the velocity target applies to the mantle case only
    assert "divergence" in mantle["targets"] and "divergence" not in lognormal["targets"]
    assert summary["all_passed"] == all(
        c["targets"]["all_passed"] for c in summary["cases"].values()
    )
    md = (out / "skill.md").read_text()
    assert "## mantle (`volume/mantle_x4`)" in md and "## lognormal (`volume/lognormal_x4`)" in md
    # 5 targets x 4 variables + divergence, 5 targets x 1 variable
    assert md.count("| PASS |") + md.count("| FAIL |") == 5 * 4 + 1 + 5
    assert (out / "mantle" / "report" / "report.html").is_file()


def test_resume_keeps_finished_stages_and_existing_out_is_refused(quick_run, capsys):
    _, out = quick_run
    before = (out / "mantle" / "train.done.json").read_text()
    assert volume_skill.main(["--out", str(out), "--quick", "--resume", "--members", "2"]) == 0
    assert (out / "mantle" / "train.done.json").read_text() == before
    assert volume_skill.main(["--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0]
