#!/usr/bin/env python
"""Recipe 1 on radars it never saw: leave-one-radar-out, and MeteoNet constants over seeds.

One command, run from the repository root::

    python benchmarks/skill_loro.py --out runs/loro                    # the LORO study
    python benchmarks/skill_loro.py --out runs/meteonet --study meteonet
    python benchmarks/skill_loro.py --out /tmp/loro --quick            # smoke run (minutes)

``--study loro`` (default): for each of the four radars in ``../shared/data`` -- KNMI
(1 km), BoM Rainfields3 radar 66 (0.5 km), MeteoNet NW and SE (0.01 deg) -- train the
default radar preset (``downscaling/radar_knmi_x8``'s model and training, ``--minutes``
each) on the other three and score it on the held-out times (last 25% of each day) of the
left-out one, with ``--members`` members, against bilinear, bicubic and Lanczos.

How several radars become one training set. The recipe trains on one truth file, so the
three training radars are put on one pixel canvas: every radar is cropped to the bounding
box of its valid pixels, placed in the top-left corner of a canvas as large as the largest
of them, NaN elsewhere (never sampled: patches need ``min_valid_fraction`` valid pixels,
and masked pixels are never scored), and the frames are concatenated in time. Radars that
share time stamps (MeteoNet NW and SE) are kept apart by shifting each radar's times by a
whole number of 400 days (a canvas frame keeps its radar's time of day; the day shift only
makes the time axis unique). ``--bom-km 1`` (default) block-averages BoM's 0.5 km grid to 1
km, in training and when it is left out, so that x8 means 8 km -> 1 km on every radar
(``--bom-km native`` keeps 0.5 km: x8 is then 4 km -> 0.5 km there).

``--calibrate`` adds a post-hoc spread calibration fitted on training data only: the
training radars' own held-out times (each radar's last 25% of every day are then left out
of the canvas) are generated, and the factor ``a`` that minimises their CRPS when each
member's deviation from the ensemble mean is scaled by ``a`` (members clipped at 0) is
applied to the left-out radar's ensemble before it is scored. The uncalibrated ensemble is
scored too (``report_raw``).

Targets on every left-out radar (best interpolation = best of bilinear, bicubic, Lanczos):
spread-skill ratio in [0.7, 1.3]; CRPS at least 15% below the best interpolation; LSD at
most 0.5x bicubic's; rank histogram without zero ties, at the observations' precision where
known, with every bin between 0.5x and 2x uniform.

``--study meteonet``: MeteoNet SE with vs without constant fields (presets ``meteonet_x8``
and ``meteonet_x8_noconst``), ``--seeds`` training seeds per arm (default 3), each trained
for ``--meteonet-minutes``; per arm the mean, standard deviation, minimum and maximum over
seeds of CRPS, pooled 16x16 CRPS and the relative wet bias, against Lanczos. Targets (with
constants): CRPS and pooled 16x16 CRPS below Lanczos', |bias| at most 10% of the mean rain
rate.

Budget (2 quiet cores): LORO ~4 x (15 min training + 3-4 min generation and scoring) + 2
min data = about 80 min; MeteoNet 6 x (6 min + ~2.5 min) = about 51 min. Every stage is
resumable: ``--resume`` keeps what a killed run finished (prepared data, trained models,
ensembles) and runs the rest. Writes ``<out>/loro_summary.json`` and ``<out>/loro.md``
(targets per fold with pass/fail, the command, date, machine and load), or
``meteonet_summary.json`` / ``meteonet.md``. Exit code 0 whatever the targets say (a
measurement); 2 for errors the user can fix.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import skill_radar as sr  # noqa: E402  (the shared stages: training, generation, scoring)

REPO = sr.REPO
PRESETS = sr.PRESETS
DATA = "../shared/data"
#: the radars, by file under ``--data`` (``../shared/data``), grid spacing and label
RADARS: dict[str, dict[str, Any]] = {
    "knmi": {"path": "radar/knmi_20100826.nc", "km": 1.0, "label": "KNMI (NL)"},
    "bom": {"path": "radar/bom_20201031.nc", "km": 0.5, "label": "BoM 66 (Brisbane)"},
    "meteonet_nw": {
        "path": "meteonet/radar_rainfall_NW.nc",
        "km": 1.0,
        "label": "MeteoNet NW (FR)",
    },
    "meteonet_se": {
        "path": "meteonet/radar_rainfall_SE.nc",
        "km": 1.0,
        "label": "MeteoNet SE (FR)",
    },
}
VARIABLE = "precip"
FACTOR = 8
DAY_SHIFT = np.timedelta64(400, "D")
CALIBRATION_GRID = (0.8, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0)
DEFAULT_MINUTES = 15.0
DEFAULT_METEONET_MINUTES = 6.0


class LoroError(sr.SkillError):
    """A problem the user can fix; printed as one line, exit code 2."""


_log = sr._log
_fmt = sr._fmt
_write = sr._write_text


# ---------------------------------------------------------------------------- data
def standardise(
    radar: str, out: Path, *, bom_km: str, max_times: int | None, data: str = DATA
) -> Path:
    """One radar's rain rate as ``(time, y, x)`` mm/h, cropped to the bounding box of its
    valid pixels (whole coarse pixels), BoM block-averaged to 1 km with ``bom_km="1"``
    (a block with a missing pixel is missing); pixel coordinates in metres from the corner.
    ``max_times``: keep every n-th time so that at most this many remain (smoke runs)."""
    import xarray as xr

    if out.is_file():
        return out
    spec = RADARS[radar]
    path = sr._resolve_data_path(f"{data}/{spec['path']}")
    with xr.open_dataset(path) as ds:
        da = ds[VARIABLE]
        values = da.transpose("time", ...).values.astype(np.float32)
        times = ds["time"].values
        attrs = {k: v for k, v in da.attrs.items() if k in ("units", "standard_name", "long_name")}
    if max_times and times.size > max_times:
        keep = np.linspace(0, times.size - 1, max_times).round().astype(int)
        values, times = values[keep], times[keep]
    km = spec["km"]
    if radar == "bom" and bom_km == "1":
        values = _block_mean(values, 2)
        km = 1.0
    ok = np.isfinite(values).any(axis=0)
    rows, cols = np.flatnonzero(ok.any(axis=1)), np.flatnonzero(ok.any(axis=0))
    r1 = rows[0] + (rows[-1] + 1 - rows[0]) // FACTOR * FACTOR
    c1 = cols[0] + (cols[-1] + 1 - cols[0]) // FACTOR * FACTOR
    values = values[:, rows[0] : r1, cols[0] : c1]
    h, w = values.shape[1:]
    ds = xr.Dataset(
        {VARIABLE: (("time", "y", "x"), values, {**attrs, "units": "mm/h"})},
        coords={
            "time": times,
            "y": ("y", (h - 0.5 - np.arange(h)) * km * 1000.0, {"units": "m"}),
            "x": ("x", (np.arange(w) + 0.5) * km * 1000.0, {"units": "m"}),
        },
        attrs={
            "source": str(path),
            "history": "benchmarks/skill_loro.py: cropped to the valid bounding box"
            + (", 2x2 block mean (1 km)" if radar == "bom" and bom_km == "1" else ""),
            "pixel_km": km,
        },
    )
    _to_netcdf(ds, out)
    return out


def _block_mean(values: np.ndarray, k: int) -> np.ndarray:
    t, h, w = values.shape
    v = values[:, : h // k * k, : w // k * k].reshape(t, h // k, k, w // k, k)
    return v.mean(axis=(2, 4))  # NaN anywhere in a block -> NaN


def _to_netcdf(ds, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    encoding = {
        v: {"zlib": True, "complevel": 1, "chunksizes": (1, *ds[v].shape[1:])} for v in ds.data_vars
    }
    ds.to_netcdf(tmp, encoding=encoding)
    os.replace(tmp, out)


def canvas(files: list[Path], out: Path, *, holdout: float) -> dict[str, Any]:
    """The training radars ``files`` on one pixel canvas (see the module doc): returns what
    was written. ``holdout > 0`` leaves each radar's last ``holdout`` of every day out (the
    calibration times), so the canvas holds training times only."""
    import xarray as xr

    from geogan.config.schema import SplitConfig
    from geogan.data.splits import split_times

    parts, shapes, info = [], [], []
    for f in files:
        with xr.open_dataset(f) as ds:
            da = ds[VARIABLE].load()
        if holdout > 0:
            train, _ = split_times(
                da["time"].values, SplitConfig(holdout_fraction=holdout, group_by="day")
            )
            da = da.isel(time=train)
        parts.append(da)
        shapes.append(da.shape[1:])
    h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
    values, times = [], []
    for i, (f, da) in enumerate(zip(files, parts)):
        block = np.full((da.shape[0], h, w), np.nan, np.float32)
        block[:, : da.shape[1], : da.shape[2]] = da.values
        values.append(block)
        times.append(da["time"].values + i * DAY_SHIFT)
        info.append({"file": str(f), "times": int(da.shape[0]), "shape": list(da.shape[1:])})
    values_a = np.concatenate(values)
    times_a = np.concatenate(times)
    order = np.argsort(times_a, kind="stable")
    if np.unique(times_a).size != times_a.size:
        raise LoroError("canvas: shifted times still collide; report this as a bug")
    ds = xr.Dataset(
        {
            VARIABLE: (
                ("time", "y", "x"),
                values_a[order],
                {"units": "mm/h", "standard_name": "rainfall_rate"},
            )
        },
        coords={
            "time": times_a[order],
            "y": ("y", (h - 0.5 - np.arange(h)) * 1000.0, {"units": "m"}),
            "x": ("x", (np.arange(w) + 0.5) * 1000.0, {"units": "m"}),
        },
        attrs={"history": "benchmarks/skill_loro.py: training radars on one canvas"},
    )
    if not out.is_file():
        _to_netcdf(ds, out)
    return {"path": str(out), "shape": [int(times_a.size), h, w], "radars": info}


# ---------------------------------------------------------------------------- calibration
def inflate(members: np.ndarray, a: float) -> np.ndarray:
    """``[M, ...]`` members with each deviation from the ensemble mean scaled by ``a``,
    clipped at 0 (rain); NaN stays NaN."""
    mean = members.mean(axis=0, keepdims=True)
    return np.maximum(mean + a * (members - mean), 0.0)


def fit_inflation(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The factor of :data:`CALIBRATION_GRID` minimising the pixel CRPS over ``pairs`` of
    ``(members [M, T, H, W], truth [T, H, W])`` (NaN truth ignored), with the CRPS per factor."""
    from geogan.evaluation.metrics import crps_ensemble

    table = {}
    for a in CALIBRATION_GRID:
        total, n = 0.0, 0
        for members, truth in pairs:
            ok = np.isfinite(truth) & np.isfinite(members).all(axis=0)
            if not ok.any():
                continue
            ecdf, _ = crps_ensemble(inflate(members, a)[:, ok], truth[ok])
            total += float(ecdf.sum())
            n += int(ok.sum())
        table[a] = total / max(n, 1)
    best = min(table, key=table.get)
    return {"factor": best, "crps_by_factor": {str(k): v for k, v in table.items()}}


def apply_inflation(ens: Path, out: Path, a: float) -> Path:
    """A copy of the ensemble file ``ens`` with :func:`inflate` applied to its variable."""
    import xarray as xr

    with xr.open_dataset(ens) as ds:
        ds = ds.load()
    da = ds[VARIABLE]
    order = da.dims
    arr = inflate(da.transpose("member", ...).values, a)
    ds[VARIABLE] = da.transpose("member", ...).copy(data=arr).transpose(*order)
    ds.attrs["spread_calibration"] = (
        f"member deviations from the ensemble mean x {a:g} (fitted on training radars only)"
    )
    for var in ds.variables.values():
        var.encoding.pop("chunksizes", None)
        var.encoding.pop("original_shape", None)
    tmp = out.with_name(f".{out.name}.tmp")
    ds.to_netcdf(tmp)
    os.replace(tmp, out)
    return out


# ---------------------------------------------------------------------------- targets
def loro_targets(metrics: dict) -> list[dict[str, Any]]:
    m = metrics["methods"]
    g = m["geogan"]
    out = []
    ssr = g.get("ssr", float("nan"))
    out.append(
        {
            "target": "spread-skill ratio in [0.7, 1.3]",
            "value": ssr,
            "pass": bool(0.7 <= ssr <= 1.3),
        }
    )
    name, ref = sr._best(m, "crps")
    out.append(
        {
            "target": "CRPS >= 15% below best interpolation",
            "value": g["crps"],
            "detail": f"{100 * (1 - g['crps'] / ref):.1f}% below {name} ({ref:.4g})",
            "pass": bool(g["crps"] <= 0.85 * ref),
        }
    )
    bic = m.get("bicubic", {}).get("lsd_db", float("nan"))
    out.append(
        {
            "target": "LSD <= 0.5 x bicubic",
            "value": g["lsd_db"],
            "detail": f"{g['lsd_db'] / bic:.2f} x bicubic ({bic:.3g} dB)",
            "pass": bool(g["lsd_db"] <= 0.5 * bic),
        }
    )
    lo, hi = sr.rank_ratios(metrics)
    q = sr.rank_precision(metrics)
    out.append(
        {
            "target": "rank histogram (no zero ties) bins in [0.5, 2] x uniform",
            "value": [lo, hi],
            "detail": f"{'at ' + format(q, 'g') + ' mm/h' if q else 'raw ranks'}: "
            f"{lo:.2f} .. {hi:.2f}",
            "pass": bool(lo >= 0.5 and hi <= 2.0),
        }
    )
    return out


# ---------------------------------------------------------------------------- studies
def _machine(args) -> dict[str, Any]:
    from geogan.cli.info import collect_info

    info = collect_info()
    cpu = platform.processor() or platform.machine()
    return {
        "info": info,
        "line": (
            f"{info['platform']}, {os.cpu_count()} CPUs ({cpu}, {info['cpu_capability']}, "
            f"bf16 native: {info['bf16_cpu_native']}), torch {info['packages'].get('torch')}, "
            f"{info['threads']} threads"
        ),
    }


def _common(args, out: Path, name: str, minutes: float) -> list[str]:
    o = [
        f"run_root={out / 'runs'}",
        f"name={name}",
        f"train.time_limit_minutes={minutes}",
        f"generate.members={args.members}",
    ]
    if args.steps:
        o.append(f"train.steps={args.steps}")
    return o + list(args.overrides)


def _fold_times(args, path: Path) -> str:
    """The left-out radar's held-out times as a --times list (at most ``--max-test-times``)."""
    if not args.max_test_times:
        return "test"
    import xarray as xr

    from geogan.config.schema import SplitConfig
    from geogan.data.splits import split_times

    with xr.open_dataset(path) as ds:
        times = ds["time"].values
    _, test = split_times(times, SplitConfig(holdout_fraction=0.25, group_by="day"))
    test = test[:: max(1, -(-test.size // args.max_test_times))]
    return ",".join(np.datetime_as_string(times[i], unit="s") for i in test)


def _calibration_pairs(args, ckpt: Path, files: list[Path], folder: Path, progress, quiet):
    """(members, truth) of the training radars' held-out times, generated by ``ckpt``."""
    import xarray as xr

    from geogan.recipes import get_recipe
    from geogan.recipes.downscaling.build import load_data

    recipe = get_recipe("downscaling")
    pairs = []
    for f in files:
        ens = folder / f"calibration_{f.stem}.nc"
        if not (args.resume and ens.is_file()):
            recipe.generate(
                ckpt,
                out=ens,
                overrides=[
                    f"data.truth.path={f}",
                    "data.split.holdout_fraction=0.25",
                    "data.split.group_by=day",
                ],
                members=args.cal_members,
                times=_fold_times(argparse.Namespace(max_test_times=args.cal_times), f),
                progress=progress,
                overwrite=True,
            )
        with xr.open_dataset(ens) as ds:
            members = ds[VARIABLE].transpose("member", "time", ...).values
            from geogan.recipes.config import run_config_from_dict

            cfg = run_config_from_dict(json.loads(ds.attrs["geogan_config"]))
            data = load_data(cfg)
            pos = {np.datetime64(t, "ns"): i for i, t in enumerate(data.times)}
            truth = np.stack(
                [
                    data.raw_field(pos[np.datetime64(t, "ns")])["target"][0]
                    for t in ds["time"].values
                ]
            )
        pairs.append((members, truth))
        _log(f"  calibration data: {f.stem}, {members.shape[1]} times", quiet)
    return pairs


def run_loro(args) -> dict[str, Any]:
    started = time.perf_counter()
    out: Path = args.out.resolve()
    quiet, progress = args.quiet, args.progress and not args.quiet
    summary = _start(args, out, "loro")
    folds = args.folds or list(RADARS)
    data_dir = out / "data"
    t0 = time.perf_counter()
    files = {
        r: standardise(
            r,
            data_dir / f"{r}.nc",
            bom_km=args.bom_km,
            max_times=args.max_times,
            data=args.data,
        )
        for r in RADARS
    }
    summary["timings"]["data"] = {"seconds": time.perf_counter() - t0}
    summary["settings"]["radars"] = {r: str(p) for r, p in files.items()}

    def save():
        summary["total_minutes"] = (time.perf_counter() - started) / 60
        summary["loadavg_end"] = os.getloadavg()[0]
        _write(out / "loro_summary.json", json.dumps(summary, indent=2, default=str))
        _write(out / "loro.md", render_loro(summary))

    try:
        for fold in folds:
            folder = out / fold
            train_files = [files[r] for r in RADARS if r != fold]
            _log(f"fold {fold}: train on {', '.join(p.stem for p in train_files)}", quiet)
            holdout = 0.25 if args.calibrate else 0.0
            info = canvas(train_files, folder / "train_canvas.nc", holdout=holdout)
            cfg = sr.load_run_config(
                args.config,
                [
                    *_common(args, out, f"loro_{fold}", args.minutes),
                    f"data.truth.path={info['path']}",
                    f"data.split.holdout_fraction={holdout}",
                    "data.split.group_by=day",
                ],
            )
            train = sr.train_stage(cfg, folder / "run", progress, quiet, args.resume)
            ckpt = folder / "run" / "model.safetensors"
            overrides = [
                f"data.truth.path={files[fold]}",
                "data.split.holdout_fraction=0.25",
                "data.split.group_by=day",
            ]
            ev = sr.generate_evaluate(
                ckpt,
                folder,
                members=args.members,
                times=_fold_times(args, files[fold]),
                overrides=overrides,
                progress=progress,
                quiet=quiet,
                resume=args.resume,
            )
            entry: dict[str, Any] = {
                "left_out": fold,
                "label": RADARS[fold]["label"],
                "train_radars": [p.stem for p in train_files],
                "canvas": info,
                "train": train,
                "eval": {k: v for k, v in ev.items() if k != "metrics"},
                "headline": sr.headline(ev["metrics"]),
                "targets": loro_targets(ev["metrics"]),
            }
            summary["timings"][f"{fold} train"] = {
                "seconds": train["wall_seconds"],
                "per_step": train["seconds_per_step"],
            }
            summary["timings"][f"{fold} generate"] = {"seconds": ev["generate_seconds"]}
            summary["timings"][f"{fold} evaluate"] = {"seconds": ev["evaluate_seconds"]}
            if args.calibrate:
                t0 = time.perf_counter()
                pairs = _calibration_pairs(args, ckpt, train_files, folder, progress, quiet)
                fit = fit_inflation(pairs)
                _log(f"  spread calibration factor {fit['factor']:g}", quiet)
                cal = apply_inflation(
                    Path(ev["ensemble"]), folder / "ensemble_calibrated.nc", fit["factor"]
                )
                from geogan.recipes import get_recipe

                get_recipe("downscaling").evaluate(
                    cal, out=folder / "report_calibrated", overwrite=True
                )
                metrics = json.loads((folder / "report_calibrated" / "metrics.json").read_text())
                entry["calibration"] = fit
                entry["raw"] = {"headline": entry["headline"], "targets": entry["targets"]}
                entry["headline"] = sr.headline(metrics)
                entry["targets"] = loro_targets(metrics)
                entry["eval"]["report_calibrated"] = str(folder / "report_calibrated")
                summary["timings"][f"{fold} calibration"] = {"seconds": time.perf_counter() - t0}
            for t in entry["targets"]:
                _log(
                    f"  {'PASS' if t['pass'] else 'FAIL'} {t['target']}: {_fmt(t['value'])}",
                    quiet,
                )
            summary["folds"][fold] = entry
            save()
    except Exception as exc:
        from geogan.core.errors import GeoganError

        if isinstance(exc, GeoganError):
            raise LoroError(str(exc)) from None
        raise
    summary["timings"]["total"] = {"seconds": time.perf_counter() - started}
    save()
    _log(f"done in {summary['total_minutes']:.1f} min: {out / 'loro.md'}", quiet)
    return summary


def run_meteonet(args) -> dict[str, Any]:
    started = time.perf_counter()
    out: Path = args.out.resolve()
    quiet, progress = args.quiet, args.progress and not args.quiet
    summary = _start(args, out, "meteonet")
    arms = {"const": args.meteonet_config, "noconst": args.meteonet_noconst_config}

    def save():
        summary["total_minutes"] = (time.perf_counter() - started) / 60
        summary["loadavg_end"] = os.getloadavg()[0]
        summary["arms"] = {a: aggregate(summary["runs"], a) for a in arms}
        summary["targets"] = meteonet_targets(summary["arms"].get("const"))
        _write(out / "meteonet_summary.json", json.dumps(summary, indent=2, default=str))
        _write(out / "meteonet.md", render_meteonet(summary))

    try:
        for seed in range(args.seeds):
            for arm, path in arms.items():
                key = f"{arm}_seed{seed}"
                folder = out / key
                cfg = sr.load_run_config(
                    path,
                    [*_common(args, out, f"meteonet_{key}", args.meteonet_minutes), f"seed={seed}"],
                )
                train = sr.train_stage(cfg, folder / "run", progress, quiet, args.resume)
                ev = sr.generate_evaluate(
                    folder / "run" / "model.safetensors",
                    folder,
                    members=args.members,
                    times="test",
                    overrides=[],
                    progress=progress,
                    quiet=quiet,
                    resume=args.resume,
                )
                m = ev["metrics"]["methods"]
                summary["runs"][key] = {
                    "arm": arm,
                    "seed": seed,
                    "train": train,
                    "eval": {k: v for k, v in ev.items() if k != "metrics"},
                    "headline": sr.headline(ev["metrics"]),
                    "relative_bias": m["geogan"].get("relative_bias"),
                    "lanczos": {
                        k: m.get("lanczos", {}).get(k) for k in ("crps", sr.POOL_KEY, "bias")
                    },
                }
                summary["timings"][f"{key} train"] = {"seconds": train["wall_seconds"]}
                summary["timings"][f"{key} generate+evaluate"] = {
                    "seconds": ev["generate_seconds"] + ev["evaluate_seconds"]
                }
                save()
    except Exception as exc:
        from geogan.core.errors import GeoganError

        if isinstance(exc, GeoganError):
            raise LoroError(str(exc)) from None
        raise
    summary["timings"]["total"] = {"seconds": time.perf_counter() - started}
    save()
    _log(f"done in {summary['total_minutes']:.1f} min: {out / 'meteonet.md'}", quiet)
    return summary


def aggregate(runs: dict[str, Any], arm: str) -> dict[str, Any] | None:
    """Mean, standard deviation (ddof 1), min and max over seeds of one arm's headline scores."""
    rows = [r for r in runs.values() if r["arm"] == arm]
    if not rows:
        return None
    out: dict[str, Any] = {"seeds": [r["seed"] for r in rows]}
    values = {
        "crps": [r["headline"]["crps"] for r in rows],
        sr.POOL_KEY: [r["headline"][sr.POOL_KEY] for r in rows],
        "relative_bias": [r["relative_bias"] for r in rows],
        "ssr": [r["headline"]["ssr"] for r in rows],
        "lanczos_crps": [r["lanczos"]["crps"] for r in rows],
        f"lanczos_{sr.POOL_KEY}": [r["lanczos"][sr.POOL_KEY] for r in rows],
    }
    for k, v in values.items():
        a = np.asarray([np.nan if x is None else x for x in v], dtype=np.float64)
        out[k] = {
            "mean": float(np.mean(a)),
            "std": float(np.std(a, ddof=1)) if a.size > 1 else float("nan"),
            "min": float(np.min(a)),
            "max": float(np.max(a)),
            "values": a.tolist(),
        }
    return out


def meteonet_targets(const: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not const:
        return []
    crps, pool = const["crps"], const[sr.POOL_KEY]
    lz, lz_pool = const["lanczos_crps"]["mean"], const[f"lanczos_{sr.POOL_KEY}"]["mean"]
    bias = const["relative_bias"]
    return [
        {
            "target": "with constants: CRPS below Lanczos on every seed",
            "value": crps["max"],
            "detail": f"worst seed {crps['max']:.4g} vs Lanczos {lz:.4g}",
            "pass": bool(crps["max"] < lz),
        },
        {
            "target": "with constants: pooled 16x16 CRPS below Lanczos on every seed",
            "value": pool["max"],
            "detail": f"worst seed {pool['max']:.4g} vs Lanczos {lz_pool:.4g}",
            "pass": bool(pool["max"] < lz_pool),
        },
        {
            "target": "with constants: |wet bias| <= 10% of the mean rain rate on every seed",
            "value": [bias["min"], bias["max"]],
            "detail": f"relative bias {bias['min']:+.3f} .. {bias['max']:+.3f}",
            "pass": bool(max(abs(bias["min"]), abs(bias["max"])) <= 0.10),
        },
    ]


def _start(args, out: Path, study: str) -> dict[str, Any]:
    if out.exists() and not args.resume:
        if not args.overwrite:
            raise LoroError(f"{args.out} exists; pass --overwrite, --resume or another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    machine = _machine(args)
    return {
        "study": study,
        "command": shlex.join(["python", "benchmarks/skill_loro.py", *args.argv]),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "out": str(out),
        "machine": machine["info"],
        "machine_line": machine["line"],
        "loadavg_start": os.getloadavg()[0],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "timings": {},
        "folds": {},
        "runs": {},
        "notes": [],
    }


# ---------------------------------------------------------------------------- markdown
def _header(summary: dict[str, Any], title: str) -> list[str]:
    return [
        f"# {title}",
        "",
        f"- Command: `{summary['command']}`",
        f"- Date (UTC): {summary['date']}",
        f"- Machine: {summary['machine_line']}",
        f"- Load average (1 min) at start / end: {_fmt(summary['loadavg_start'], 3)} / "
        f"{_fmt(summary.get('loadavg_end'), 3)} (above the core count: the CPU was shared)",
        f"- Total wall time: {summary.get('total_minutes', float('nan')):.1f} min",
        "",
    ]


def render_loro(summary: dict[str, Any]) -> str:
    lines = _header(summary, "Recipe 1 on radars it never saw: leave-one-radar-out")
    folds = summary["folds"]
    if folds:
        names = list(folds)
        passed = sum(all(t["pass"] for t in f["targets"]) for f in folds.values())
        lines += [
            f"{passed}/{len(folds)} left-out radars meet every target. Each column: a model "
            "trained on the other three radars, scored on this radar's held-out times (last "
            "25% of each day).",
            "",
            "| target | " + " | ".join(folds[n]["label"] for n in names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for i, t in enumerate(folds[names[0]]["targets"]):
            cells = []
            for n in names:
                ft = folds[n]["targets"][i]
                cells.append(f"{'PASS' if ft['pass'] else 'FAIL'} {_fmt(ft['value'], 3)}")
            lines.append(f"| {t['target']} | " + " | ".join(cells) + " |")
        lines.append("")
        rows = {folds[n]["label"]: folds[n]["headline"] for n in names}
        lines += ["## All scores", ""] + sr._metric_table(rows) + [""]
        cal = {n: f["calibration"]["factor"] for n, f in folds.items() if f.get("calibration")}
        if cal:
            lines += [
                "Post-hoc spread calibration (fitted on the training radars' own held-out "
                "times only): factors "
                + ", ".join(f"{folds[n]['label']} {v:g}" for n, v in cal.items())
                + "; uncalibrated scores in loro_summary.json (`raw`).",
                "",
            ]
        for n in names:
            c = folds[n]["canvas"]
            lines.append(
                f"- {folds[n]['label']} left out: trained on "
                f"{', '.join(folds[n]['train_radars'])} ({c['shape'][0]} frames on a "
                f"{c['shape'][1]}x{c['shape'][2]} canvas), {folds[n]['train']['steps']} steps "
                f"in {folds[n]['train']['seconds'] / 60:.1f} min"
            )
        lines.append("")
    lines += _timings(summary)
    return "\n".join(lines)


def render_meteonet(summary: dict[str, Any]) -> str:
    lines = _header(summary, "MeteoNet SE: constants side by side over seeds")
    arms = summary.get("arms") or {}
    if any(arms.values()):
        lines += [
            "| score | with constants | without constants |",
            "|---|---|---|",
        ]

        def cell(arm, key, digits=4):
            a = arms.get(arm)
            if not a:
                return "-"
            v = a[key]
            return (
                f"{_fmt(v['mean'], digits)} +- {_fmt(v['std'], 2)} "
                f"[{_fmt(v['min'], digits)}, {_fmt(v['max'], digits)}]"
            )

        for key, label in (
            ("crps", "CRPS (mm/h)"),
            (sr.POOL_KEY, "CRPS pooled 16x16 s4"),
            ("relative_bias", "bias / mean rain rate"),
            ("ssr", "spread-skill ratio"),
            ("lanczos_crps", "Lanczos CRPS = MAE"),
            (f"lanczos_{sr.POOL_KEY}", "Lanczos pooled 16x16 s4"),
        ):
            lines.append(f"| {label} | {cell('const', key)} | {cell('noconst', key)} |")
        n = len((arms.get("const") or {}).get("seeds", []))
        lines += [
            "",
            f"Mean +- standard deviation [min, max] over {n} training seeds per arm.",
            "",
        ]
        for t in summary.get("targets") or []:
            lines.append(f"- {'PASS' if t['pass'] else 'FAIL'} {t['target']}: {t['detail']}")
        lines.append("")
    lines += _timings(summary)
    return "\n".join(lines)


def _timings(summary: dict[str, Any]) -> list[str]:
    lines = ["## Timings", "", "| stage | seconds |", "|---|---|"]
    for stage, t in summary["timings"].items():
        lines.append(f"| {stage} | {_fmt(t.get('seconds'), 4)} |")
    notes = summary.get("notes") or []
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return lines + [""]


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--study", choices=("loro", "meteonet"), default="loro")
    p.add_argument("--minutes", type=float, default=None, help="training minutes per fold")
    p.add_argument(
        "--meteonet-minutes", type=float, default=None, help="training minutes per MeteoNet run"
    )
    p.add_argument("--seeds", type=int, default=3, help="training seeds per MeteoNet arm")
    p.add_argument("--members", type=int, default=None, help="ensemble members (default 16)")
    p.add_argument("--steps", type=int, default=None, help="stop every training at this step")
    p.add_argument(
        "--folds", type=lambda s: [x for x in s.split(",") if x], default=None,
        help=f"left-out radars to run (default all: {','.join(RADARS)})",
    )  # fmt: skip
    p.add_argument(
        "--bom-km",
        choices=("1", "native"),
        default="1",
        help="BoM at 1 km (2x2 block mean, default) or its native 0.5 km",
    )
    p.add_argument("--calibrate", action="store_true", help="post-hoc spread calibration")
    p.add_argument("--cal-members", type=int, default=8)
    p.add_argument("--cal-times", type=int, default=6, help="calibration times per radar")
    p.add_argument(
        "--max-test-times", type=int, default=None, help="score at most this many left-out times"
    )
    p.add_argument(
        "--max-times", type=int, default=None, help="keep at most this many times per radar"
    )
    p.add_argument("--data", default=DATA, help=f"folder holding the radar files (default {DATA})")
    p.add_argument("--config", type=Path, default=PRESETS / "radar_knmi_x8.yaml")
    p.add_argument("--meteonet-config", type=Path, default=PRESETS / "meteonet_x8.yaml")
    p.add_argument(
        "--meteonet-noconst-config", type=Path, default=PRESETS / "meteonet_x8_noconst.yaml"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every training (repeatable), e.g. --set train.content.weight=300",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data, a few steps")
    p.add_argument("--resume", action="store_true", help="keep finished stages of --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--progress", action="store_true", help="progress bars")
    p.add_argument("--quiet", action="store_true", help="no log lines")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.folds:
        unknown = [f for f in args.folds if f not in RADARS]
        if unknown:
            p.error(f"--folds: unknown radar {unknown[0]!r}; choose from {', '.join(RADARS)}")
    if args.quick:
        args.steps = args.steps or 2
        args.members = args.members or 3
        args.max_times = args.max_times or 8
        args.max_test_times = args.max_test_times or 2
        args.cal_times = min(args.cal_times, 2)
        args.cal_members = min(args.cal_members, 3)
        args.seeds = min(args.seeds, 2)
        args.overrides = [
            "model.filters_gen=4",
            "model.filters_disc=4",
            "train.batch_size=2",
            "train.critic_steps=1",
            "train.content.members=2",
            "generate.tile_size=128",
            "data.patch_size=32",
            "data.sampling.candidate_stride=8",
            "evaluate.fss_scales=[1,4,16]",
            *args.overrides,
        ]
    args.members = args.members or 16
    args.minutes = args.minutes or (1.0 if args.quick else DEFAULT_MINUTES)
    args.meteonet_minutes = args.meteonet_minutes or (
        1.0 if args.quick else DEFAULT_METEONET_MINUTES
    )
    if args.members < 2:
        p.error("--members must be at least 2 (spread-skill and rank histograms need it)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.study == "meteonet":
            run_meteonet(args)
        else:
            run_loro(args)
    except sr.SkillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
