"""benchmarks/stylegan_flops.py and stylegan_profile.py: the per-op split adds up to
stylegan_speed's total, the amortisation per key follows the schedule (D + G every step,
path length /4, R1 /16), and the profile covers every iteration kind."""

from __future__ import annotations

import tempfile

import pytest
import stylegan_flops
import stylegan_speed
import torch


def test_amortised_by_key_follows_the_schedule():
    by_kind = {
        1: {"conv|a": 10.0},
        4: {"conv|a": 10.0, "mm|b": 8.0},  # path-length step adds 8
        16: {"conv|a": 26.0, "mm|b": 8.0},  # R1 step adds 16 on top
    }
    out = stylegan_flops.amortised_by_key(by_kind)
    assert out["conv|a"] == pytest.approx(10.0 + 16.0 / 16)
    assert out["mm|b"] == pytest.approx(8.0 / 4)


def test_split_adds_up_to_the_speed_benchmark_total():
    torch.manual_seed(0)
    split = stylegan_flops.measure("geogan", "quick", None)
    assert split["total_gflop"] == pytest.approx(sum(split["gflop_by_op"].values()))
    assert split["gflop_by_op"]["convolution"] > 0
    with tempfile.TemporaryDirectory() as tmp:
        tr = stylegan_speed._geogan_trainer(stylegan_speed.CONFIGS["quick"], "fp32", False, tmp)
        total = stylegan_speed._flops(lambda s: stylegan_speed._geogan_step(tr, s))
    assert split["total_gflop"] == pytest.approx(total["flops_per_iter"] / 1e9, rel=1e-9)


def test_profile_reports_every_iteration_kind(tmp_path):
    import json

    import stylegan_profile

    out = tmp_path / "profile.json"
    assert stylegan_profile.main(["--config", "quick", "--threads", "1", "--out", str(out)]) == 0
    (geogan,) = json.loads(out.read_text())["results"]
    assert set(geogan["kinds"]) == {"1", "4", "16"}
    for kind in geogan["kinds"].values():
        shares = [r["share"] for r in kind["top"]]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
        assert kind["minor_page_faults"] >= 0
