"""Smoke test of the benchmark code (issue 5) at toy sizes, in-process: every benchmark
runs and returns the fields ``run_all.py`` tabulates. It checks the code, not the machine."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")


def test_training_iteration_quick():
    import train_step

    r = train_step.run("R8-issue", precision="bf16", iters=1, quick=True)
    assert r["losses_finite"] and r["s_per_iter"] > 0 and r["peak_rss_mb"] > 0
    assert r["flops_per_iter"] > 0 and r["achieved_gflops"] > 0
    # critic steps x batch + generator batch, as the data benchmark compares with
    spec = r["spec"]
    assert math.isclose(
        r["samples_per_s"], spec["batch_size"] * (spec["critic_steps"] + 1) / r["s_per_iter"]
    )
    p1 = train_step.get_config("P1")
    assert (p1["low"], p1["factors"], p1["filters_gen"], p1["filters_disc"]) == (
        20,
        [5, 2],
        128,
        512,
    )
    assert (p1["in_channels"], p1["constant_channels"], p1["batch_size"], p1["members"]) == (
        9,
        2,
        2,
        8,
    )


def test_reference_exact_configuration_quick():
    """P1-ref: dsrnngan's critic (65.7M parameters at full size, as its models.py builds it)
    in three full passes per critic step, and 8 + 1 generator samples per condition."""
    import train_step

    from geogan.models.downscaling import DownscalingCritic

    full = train_step.get_config("P1-ref")
    critic = DownscalingCritic(
        in_channels=9,
        constant_channels=2,
        filters=full["filters_disc"],
        downsampling_factors=full["factors"],
        style="dsrnngan",
    )
    assert round(sum(p.numel() for p in critic.parameters()) / 1e5) == 657  # 65.7M
    assert len(critic.joint) == 2 and critic.dense[0].out_features == 64
    ref = train_step.run("P1-ref", precision="fp32", iters=1, quick=True)
    p1 = train_step.run("P1", precision="fp32", iters=1, quick=True)
    assert ref["losses_finite"] and ref["generator_step_samples"] == 2 * (2 + 1)
    assert p1["generator_step_samples"] == 2 * 2
    # more work than P1 at the same sizes: no shared low-res stream, one more sample
    assert ref["flops_per_iter"] > p1["flops_per_iter"]
    assert ref["parameters"]["critic"] != p1["parameters"]["critic"]


def test_roofline_and_generation_quick():
    import generation
    import roofline

    roof = roofline.run(quick=True, repeats=1)
    assert set(roof["peak_gflops"]) == {"fp32", "bf16"}
    assert all(v > 0 for v in roof["peak_gflops"].values())
    gen = generation.run(precision="fp32", quick=True, repeats=1)
    assert gen["finite"] and gen["members_per_s"] > 0
    assert gen["output_shape"] == [gen["members"], 1, *gen["domain_highres"]]


def test_data_pipeline_tasks_quick(tmp_path):
    import data_pipeline

    nc = tmp_path / "radar.nc"
    info = data_pipeline.write_synthetic_radar(nc, times=6, size=64)
    assert info["bytes"] > 0
    r = data_pipeline.task_loader("netcdf", str(nc), batches=2, warmup_batches=1, patch_size=32)
    assert r["samples_per_s"] > 0 and r["batch_shapes"]["target"] == [8, 1, 32, 32]
    out = tmp_path / "prep"
    out.mkdir()
    prep = data_pipeline.task_prepare(str(nc), str(out), patches=8, patch_size=32)
    assert prep["times"] == 6 and (out / "stats.json").is_file()
    z = data_pipeline.task_loader("zarr", prep["patch_store"], batches=2, warmup_batches=1)
    assert z["samples_per_s"] > 0 and z["batch_shapes"]["input"] == [8, 1, 4, 4]


def test_run_all_tables_and_checks():
    import run_all

    assert run_all.select(["train"]) == [
        "train-P1",
        "train-P1-ref",
        "train-R8",
        "train-R8-issue",
    ]
    assert run_all.select(["roofline,data"]) == ["roofline", "data"]
    with pytest.raises(SystemExit):
        run_all.select(["nope"])
    spec = {"batch_size": 8, "critic_steps": 5, "source": "built in", "description": "x"}
    results = {
        "machine": {
            "cpu": "cpu",
            "logical_cpus": 2,
            "torch": "2",
            "torch_threads": 2,
            "cpu_capability": "AVX512",
            "avx512_bf16": True,
            "load_average_at_start": None,
            "time": "t",
        },
        "quick": False,
        "command": "run_all.py",
        "benchmarks": {
            "roofline": {"rows": [], "peak_gflops": {"bf16": 400.0, "fp32": 200.0}},
            "train-P1": {
                "bf16": {
                    "s_per_iter": 40.0,
                    "samples_per_s": 0.3,
                    "peak_rss_mb": 5000.0,
                    "flops_per_iter": 14e12,
                    "achieved_gflops": 350.0,
                    "spec": spec,
                }
            },
            "train-R8": {
                "bf16": {
                    "s_per_iter": 2.0,
                    "samples_per_s": 24.0,
                    "peak_rss_mb": 900.0,
                    "flops_per_iter": 1e12,
                    "achieved_gflops": 180.0,
                    "spec": spec,
                }
            },
            "data": {
                "loader": {
                    "netcdf_default": {
                        "samples_per_s": 240.0,
                        "num_workers": 0,
                        "prefetch_factor": 4,
                    }
                },
                "prepare_memory": {
                    "1x": {"peak_rss_mb": 450.0},
                    "10x": {"peak_rss_mb": 460.0},
                    "ratio_10x_to_1x": 460 / 450,
                },
            },
        },
    }
    d = run_all.derive(results)
    assert d["achieved_over_peak"]["P1/bf16"] == pytest.approx(350 / 400)
    assert d["loader_over_consumption"]["netcdf_default / R8/bf16"] == pytest.approx(10.0)
    assert all(isinstance(v, (bool, float)) for v in d["checks"].values())
    assert d["checks"]["P1/bf16 achieved/peak >= 0.8"] is True  # 350 / 400
    assert d["checks"]["R8/bf16 achieved/peak >= 0.8"] is False  # 180 / 400
    # no built-in reference time: a speed-up is printed only when one is given, with its source
    assert not any("reference" in k for k in d["checks"])
    results["reference"] = {"P1_ref_s_per_iter": 133.0, "source": "dsrnngan run X"}
    results["benchmarks"]["train-P1-ref"] = {"bf16": {**results["benchmarks"]["train-P1"]["bf16"]}}
    with_ref = run_all.derive(results)
    assert with_ref["checks"]["P1-ref bf16 speed-up over the reference (dsrnngan run X)"] == 3.33
    results["derived"] = d
    md = run_all.markdown(results)
    assert "| P1 | bf16 | 40 |" in md and "Targets" in md


def test_profile_tables_conv_rates(tmp_path, capsys):
    """``train_step.py CONFIG --profile``: per convolution shape its time, FLOPs and rate,
    and which kernels ran; the FLOPs match the direct formula 2 N C_out H W C_in k^2."""
    import json

    import train_step

    assert train_step._conv_flops([2, 8, 10, 10], [16, 8, 3, 3], [1, 1], [1, 1], [1, 1], 1) == (
        2 * 2 * 16 * 10 * 10 * 8 * 9
    )
    assert train_step._conv_flops([1, 3, 10, 10], [4, 3, 5, 5], [5, 5], [0, 0], [1, 1], 1) == (
        2 * 4 * 2 * 2 * 3 * 25
    )
    out = tmp_path / "r.json"
    code = train_step.main(
        ["R8-issue", "--quick", "--iters", "1", "--precision", "fp32"]
        + ["--profile", str(tmp_path / "p.txt"), "--out", str(out)]
    )
    assert code == 0 and (tmp_path / "p.txt").read_text()
    convs = json.loads(out.read_text())["profile_convs"]
    assert convs["by_shape"] and convs["total_conv_gflop"] > 0 and convs["kernels_ms"]
    row = convs["by_shape"][0]
    assert {"op", "input", "weight", "calls", "ms", "gflop", "gflops"} <= set(row)
    capsys.readouterr()
