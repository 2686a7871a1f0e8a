"""Recipe 5 skill on ERA5, leave one time out (issue: targets on ERA5).

``../shared/data/ensemble/era5_levels_members.nc``: 10 EDA members x 4 analysis times
(2017-01-01 00/12, 2017-01-02 00/12 UTC), z and t at 850 and 500 hPa, 61 x 120 global
3-degree grid (cropped to 60 x 120: the south-pole row goes). Stages, each skipped when
its output exists (rerun the same command to resume; ``--restart`` starts over):

1. train ``stylegan/era5_levels`` on the first 3 times (30 fields, random longitude rolls)
   for ``--minutes``;
2. invert members 0-4 of a training time (2017-01-02 00 UTC, for tuning) and of the
   held-out time (2017-01-02 12 UTC), 1000 steps, W+;
3. tune the perturbation scales per style input on the training time against its
   members 5-9;
4. enrich the held-out time from its 5 inverted members to 100 members;
5. evaluate against its members 5-9: enriched vs the 5 conditioning members vs random
   linear combinations of their anomalies (``geogan evaluate``; ``report/report.html``).

    python benchmarks/stylegan_skill.py --out benchmarks/results/stylegan_skill   # <= 60 min
    python benchmarks/stylegan_skill.py --quick --out /tmp/sg_skill                 # ~1 min, generated data
    python benchmarks/stylegan_skill.py --reuse benchmarks/results/stylegan_skill \
        --rule extrapolation --out /tmp/sg_extrapolation                            # ~2 min

``--reuse DIR`` links the trained generator and the inversions of an earlier run into
``--out`` and redoes only tune, perturb and evaluate (``--rule``: the perturbation rule of
tune and perturb, default the preset's), to compare enrichment settings on one generator.

``--quick`` runs the same chain on a generated stand-in with the ERA5 file's layout
(no ``../shared`` needed) at toy lengths: it checks the code, not the skill.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
ERA5 = REPO.parent / "shared" / "data" / "ensemble" / "era5_levels_members.nc"
TUNE_TIME = "2017-01-02T00:00"
TEST_TIME = "2017-01-02T12:00"
CONDITIONING = [0, 1, 2, 3, 4]


def stand_in(path: Path) -> Path:
    """A generated file with the ERA5 sample's layout: z, t (number, time, isobaricInhPa,
    latitude, longitude) = 10 x 4 x 2 x 61 x 120, same coordinates."""
    import numpy as np
    import pandas as pd
    import xarray as xr

    from geogan.recipes.stylegan.synthetic import synthetic_ensemble

    syn = synthetic_ensemble(
        times=4,
        members=10,
        shape=(61, 120),
        variables=("z850", "z500", "t850", "t500"),
        spread_ratio=0.05,
        seed=3,
    )
    scale = {
        "z850": (1.3e4, 600.0),
        "z500": (5.5e4, 900.0),
        "t850": (270.0, 8.0),
        "t500": (250.0, 6.0),
    }
    arrays = {k: syn[k].values * s + m for k, (m, s) in scale.items()}
    ds = xr.Dataset(
        {
            "z": (
                ("number", "time", "isobaricInhPa", "latitude", "longitude"),
                np.stack([arrays["z850"], arrays["z500"]], axis=2).astype(np.float32),
                {"units": "m**2 s**-2"},
            ),
            "t": (
                ("number", "time", "isobaricInhPa", "latitude", "longitude"),
                np.stack([arrays["t850"], arrays["t500"]], axis=2).astype(np.float32),
                {"units": "K"},
            ),
        },
        coords={
            "number": np.arange(10),
            "time": pd.date_range("2017-01-01", periods=4, freq="12h").values,
            "isobaricInhPa": [850.0, 500.0],
            "latitude": np.linspace(90, -90, 61),
            "longitude": np.arange(120) * 3.0,
        },
        attrs={"title": "generated stand-in with the ERA5 sample's layout (not data)"},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(path)
    return path


def _stage(name: str, output: Path, fn, log: dict[str, Any]) -> Any:
    if output.exists():
        print(f"[skill] {name}: {output} exists, skipped", file=sys.stderr)
        log[name] = {"skipped": True, "output": str(output)}
        return None
    t0 = time.perf_counter()
    result = fn()
    log[name] = {"seconds": time.perf_counter() - t0, "result": result}
    print(f"[skill] {name}: {log[name]['seconds']:.0f} s", file=sys.stderr)
    return result


def run(
    out: Path,
    *,
    data: Path | None = None,
    minutes: float = 30.0,
    quick: bool = False,
    restart: bool = False,
    progress: bool = True,
    reuse: Path | None = None,
    rule: str | None = None,
) -> dict[str, Any]:
    from geogan.recipes.config import load_run_config
    from geogan.recipes.run import train_from_config
    from geogan.recipes.stylegan.evaluate import evaluate
    from geogan.recipes.stylegan.invert import run_invert
    from geogan.recipes.stylegan.perturb import run_perturb
    from geogan.recipes.stylegan.tune import run_tune

    if restart and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if reuse is not None:
        link_earlier_run(Path(reuse), out)
    t_start = time.perf_counter()
    if quick:
        data = out / "stand_in.nc"
        if not data.exists():
            stand_in(data)
    data = Path(data or ERA5).resolve()
    if not data.exists():
        raise SystemExit(f"{data} not found; pass --data or run with --quick")
    overrides = [
        f"data.source.path={data}",
        f"run_root={out / 'runs'}",
        f"train.time_limit_minutes={minutes}",
    ]
    extra: list[str] = []
    if quick:
        overrides += [
            "train.steps=4",
            "train.batch_size=4",
            "model.g_channels=[16,16,16]",
            "model.d_channels=[16,16,16]",
            "model.latent_dim=16",
            "model.n_mlp=2",
        ]
        extra = ["invert.steps=10", "invert.save_steps=[5]", "tune.steps=3", "tune.samples=8"]
    log: dict[str, Any] = {
        "data": str(data),
        "quick": quick,
        "minutes": minutes,
        "reuse": None if reuse is None else str(reuse),
        "rule": rule,
    }
    run_dir = out / "run"
    model = run_dir / "model.safetensors"

    def train():
        cfg = load_run_config("stylegan/era5_levels", overrides)
        resume = "auto" if (run_dir / "checkpoints").is_dir() else None
        return train_from_config(cfg, run_dir=run_dir, resume=resume, progress=progress)

    _stage("train", out / "train_done.json", lambda: _mark(out / "train_done.json", train()), log)
    _stage(
        "invert_tuning",
        out / "inversion_tune.nc",
        lambda: run_invert(
            model,
            out=out / "inversion_tune.nc",
            times=TUNE_TIME,
            members=CONDITIONING,
            overrides=extra,
            progress=progress,
        ),
        log,
    )
    _stage(
        "invert_test",
        out / "inversion_test.nc",
        lambda: run_invert(
            model,
            out=out / "inversion_test.nc",
            times=TEST_TIME,
            members=CONDITIONING,
            overrides=extra,
            progress=progress,
        ),
        log,
    )
    _stage(
        "tune",
        out / "scales.json",
        lambda: run_tune(
            out / "inversion_tune.nc",
            out=out / "scales.json",
            rule=rule,
            overrides=extra,
            progress=progress,
        ),
        log,
    )
    _stage(
        "perturb",
        out / "enriched.nc",
        lambda: run_perturb(
            out / "inversion_test.nc",
            out=out / "enriched.nc",
            scales=out / "scales.json",
            n_samples=20 if quick else 100,
            rule=rule,
            progress=progress,
        ),
        log,
    )
    _stage(
        "evaluate",
        out / "report" / "summary.json",
        lambda: evaluate(out / "enriched.nc", out=out / "report"),
        log,
    )
    summary = json.loads((out / "report" / "summary.json").read_text())
    log["checks"] = summary["checks"]
    log["crps_fair"] = summary["crps_fair"]
    log["wall_seconds_this_run"] = time.perf_counter() - t_start
    (out / "skill_summary.json").write_text(json.dumps(log, indent=2, default=str))
    print(table(out), file=sys.stderr)
    return log


REUSED = (
    "run",
    "train_done.json",
    "inversion_tune.nc",
    "inversion_tune.json",
    "inversion_test.nc",
    "inversion_test.json",
    "stand_in.nc",
)


def link_earlier_run(earlier: Path, out: Path) -> None:
    """Symlink the trained generator and the inversions of ``earlier`` into ``out``."""
    earlier = earlier.resolve()
    if not (earlier / "train_done.json").exists():
        raise SystemExit(f"--reuse {earlier}: no finished training there (train_done.json)")
    for name in REUSED:
        src, dst = earlier / name, out / name
        if src.exists() and not dst.exists():
            dst.symlink_to(src)


def _mark(path: Path, result: Any) -> Any:
    path.write_text(json.dumps(result, indent=2, default=str))
    return result


def table(out: Path) -> str:
    """Markdown table of the headline metrics per variable and method."""
    metrics = json.loads((out / "report" / "metrics.json").read_text())["methods"]
    keys = [
        "crps_fair",
        "crps",
        "rank_cdf_rms",
        "ssr",
        "spectrum_max_dev",
        "perturbation_spectrum_max_dev",
        "pixel_wasserstein",
        "corr_length",
    ]
    variables = sorted({k.split(" [")[1].rstrip("]") for k in metrics["enriched"] if " [" in k})
    lines = [
        "| variable | metric | enriched | conditioning | linear_combination |",
        "|---|---|---|---|---|",
    ]
    for var in variables:
        for key in keys:
            vals = [
                metrics[m].get(f"{key} [{var}]")
                for m in ("enriched", "conditioning", "linear_combination")
            ]
            cells = " | ".join("-" if v is None else f"{v:.4g}" for v in vals)
            lines.append(f"| {var} | {key} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "stylegan_skill")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--minutes", type=float, default=30.0, help="training time budget")
    p.add_argument("--quick", action="store_true", help="generated stand-in, toy lengths")
    p.add_argument("--restart", action="store_true", help="discard earlier stages")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--reuse", type=Path, default=None, help="earlier run: reuse G + inversions")
    p.add_argument("--rule", default=None, help="perturbation rule for tune and perturb")
    a = p.parse_args(argv)
    run(
        a.out,
        data=a.data,
        minutes=a.minutes,
        quick=a.quick,
        restart=a.restart,
        progress=not a.quiet,
        reuse=a.reuse,
        rule=a.rule,
    )


if __name__ == "__main__":
    main()
