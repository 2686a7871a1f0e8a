#!/usr/bin/env python
"""Recipe-1 skill on real radar rain rate: is the GAN clearly better than interpolation?

One command, run from the repository root::

    python benchmarks/skill_radar.py --out runs/skill

1. KNMI (preset ``downscaling/radar_knmi_x8``): train for ``--minutes``; train the
   deterministic network (``train.mode: det``, same data, model size and budget,
   ``--det-minutes``, default ``--minutes``); generate ``--members`` members (and the one
   deterministic field) for the held-out times (last 25% of the day); evaluate against
   bilinear, bicubic and Lanczos interpolation and the deterministic network, in one
   report, and check the targets below.
2. BoM transfer: the KNMI models, not retrained, on the BoM times with rain (share of
   valid pixels above 0.1 mm/h greater than ``--bom-min-wet``, every ``--bom-stride``-th
   of them). They are written to ``<out>/bom/bom_wet_times.nc`` (listed in
   ``bom/times.txt``), generated with ``--times all`` and evaluated.
3. MeteoNet SE with vs without constant fields (orography, land-sea mask):
   presets ``meteonet_x8`` and ``meteonet_x8_noconst``, each trained for
   ``--meteonet-minutes`` (default: what is left of ``--budget`` minutes, shared equally;
   skipped with a note when less than 2 minutes each would be left), evaluated on its
   held-out times. The conclusive side by side (three seeds per arm) is
   ``benchmarks/skill_loro.py --study meteonet``.

``--resume`` continues an interrupted run in the same ``--out``: stages whose outputs are
complete (a trained model with its summary, an ensemble with its summary, a report) are
kept, the rest is run.

Writes ``<out>/skill_summary.json`` and ``<out>/skill.md`` (targets with pass/fail, BoM
and MeteoNet tables, timings, the command, the date and the machine), plus the runs,
ensembles and HTML reports of every stage under ``<out>/{knmi,bom,meteonet_*}``.

Targets on the held-out KNMI times (best interpolation = best of bilinear, bicubic and
Lanczos for each metric; an interpolation's CRPS is its MAE):

- CRPS (pixelwise, mm/h) at least 15% lower than the best interpolation;
- CRPS of 16x16 pooled fields (stride 4) lower than the best interpolation;
- log-spectral distance of the ensemble at most half that of bicubic;
- spread-skill ratio between 0.8 and 1.2;
- rank histogram without the ties at zero rain: every bin between 0.5x and 2x uniform;
- ensemble FSS at 1 mm/h, 16 px, at least that of the best interpolation.

The exit code is 0 whether or not the targets pass (this is a measurement); 2 for
errors the user can fix (bad paths, an existing ``--out`` without ``--overwrite``).
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

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "src" / "geogan" / "recipes" / "downscaling" / "presets"
INTERPOLATIONS = ("bilinear", "bicubic", "lanczos")
POOL_KEY = "crps_pool16s4"
FSS_KEY = "fss_1_16px"
AUC_KEY = "roc_auc_1"

# Defaults sized so the whole benchmark fits in 60 minutes on a 2-core CPU (see
# presets/radar_base.yaml for the model): KNMI training 20 min and the deterministic
# network's 20 min; KNMI generation + evaluation ~5 min; BoM, all 91 wet times ~12 min;
# MeteoNet 2 x (training + ~2 min) only if time is left (skill_loro.py --study meteonet runs
# the side by side with three seeds per arm).
DEFAULT_MINUTES = 20.0
DEFAULT_BUDGET = 60.0
MAX_METEONET_MINUTES = 8.0
MIN_METEONET_MINUTES = 2.0
DET = "det"  # the deterministic network's name among the report's methods


class SkillError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


# ---------------------------------------------------------------------------- helpers
def _log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        stamp = _dt.datetime.now().strftime("%H:%M:%S")
        print(f"[skill {stamp}] {msg}", flush=True)


def _write_text(path: Path, text: str) -> None:
    from geogan.core.atomic import atomic_write_text

    atomic_write_text(path, text)


def _resolve_data_path(path: str | None) -> str | None:
    """A relative data path as given when it exists from here, else relative to the repository
    root (presets name ``../shared/data/...`` relative to the root); absolute in the saved run."""
    if not path:
        return path
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p)
    for base in (Path.cwd(), REPO):
        if (base / p).exists():
            return str((base / p).resolve())
    raise SkillError(
        f"data file {path} not found from {Path.cwd()} nor from the repository root {REPO}"
    )


def load_run_config(path: Path, overrides: list[str]):
    """The preset with overrides applied and its data paths made absolute."""
    from geogan.recipes.config import load_run_config as load_config

    if not path.is_file():
        raise SkillError(f"config {path} not found")
    cfg = load_config(path, overrides)
    for section in (cfg.data.truth, cfg.data.input, cfg.data.constants):
        section.path = _resolve_data_path(section.path)
    return cfg


def _best(methods: dict[str, dict], key: str, higher: bool = False) -> tuple[str, float]:
    vals = {b: methods[b][key] for b in INTERPOLATIONS if b in methods and key in methods[b]}
    vals = {b: v for b, v in vals.items() if v is not None and np.isfinite(v)}
    if not vals:
        return "none", float("nan")
    name = (max if higher else min)(vals, key=vals.get)
    return name, float(vals[name])


def rank_ratios(metrics: dict, raw: bool = False) -> tuple[float, float]:
    """(min, max) of the non-zero rank histogram's bin frequency over the uniform one.

    At the observations' precision when the evaluation detected one (radar rain rates are
    quantised: 0.12 mm/h for KNMI and MeteoNet, 0.3 mm/h for BoM), else the raw ranks;
    ``raw=True`` always gives the raw ranks (continuous members against quantised truth).
    """
    curves = metrics["curves"]["geogan"]
    key = "rank_histogram_nonzero_at_precision"
    curve = curves[key] if key in curves and not raw else curves["rank_histogram_nonzero"]
    freq = np.asarray(curve, dtype=np.float64)
    uniform = 1.0 / freq.size
    return float(freq.min() / uniform), float(freq.max() / uniform)


def rank_precision(metrics: dict) -> float | None:
    """The observations' quantum the rank histogram was computed at, or None."""
    return metrics["methods"]["geogan"].get("rank_precision")


def knmi_targets(metrics: dict) -> list[dict[str, Any]]:
    """The six targets of the held-out KNMI evaluation, each with value, reference and pass."""
    m = metrics["methods"]
    g = m["geogan"]
    out = []
    name, ref = _best(m, "crps")
    out.append(
        {
            "target": "CRPS (pixelwise, mm/h) >= 15% below best interpolation",
            "value": g["crps"],
            "reference": f"{name} {ref:.4g} (need <= {0.85 * ref:.4g})",
            "detail": f"{100 * (1 - g['crps'] / ref):.1f}% lower",
            "pass": bool(g["crps"] <= 0.85 * ref),
        }
    )
    name, ref = _best(m, POOL_KEY)
    out.append(
        {
            "target": "CRPS pooled 16x16 stride 4 < best interpolation",
            "value": g.get(POOL_KEY),
            "reference": f"{name} {ref:.4g}",
            "detail": f"{100 * (1 - g[POOL_KEY] / ref):.1f}% lower",
            "pass": bool(g[POOL_KEY] < ref),
        }
    )
    bic = m.get("bicubic", {}).get("lsd_db", float("nan"))
    out.append(
        {
            "target": "log-spectral distance <= half of bicubic",
            "value": g["lsd_db"],
            "reference": f"bicubic {bic:.3g} dB (need <= {0.5 * bic:.3g})",
            "detail": f"{g['lsd_db'] / bic:.2f} x bicubic",
            "pass": bool(g["lsd_db"] <= 0.5 * bic),
        }
    )
    ssr = g.get("ssr", float("nan"))
    out.append(
        {
            "target": "spread-skill ratio in [0.8, 1.2]",
            "value": ssr,
            "reference": "1",
            "detail": f"spread {g.get('spread', float('nan')):.4g}, "
            f"ensemble-mean RMSE {g.get('ensemble_mean_rmse', float('nan')):.4g}",
            "pass": bool(0.8 <= ssr <= 1.2),
        }
    )
    lo, hi = rank_ratios(metrics)
    raw_lo, raw_hi = rank_ratios(metrics, raw=True)
    q = rank_precision(metrics)
    where = f"at the truth's precision {q:g} mm/h" if q else "raw ranks"
    out.append(
        {
            "target": "rank histogram (non-zero) bins in [0.5, 2] x uniform",
            "value": [lo, hi],
            "reference": "[0.5, 2]",
            "detail": f"{where}: min {lo:.2f} x, max {hi:.2f} x uniform"
            + (f" (raw ranks: {raw_lo:.2f} / {raw_hi:.2f})" if q else ""),
            "pass": bool(lo >= 0.5 and hi <= 2.0),
        }
    )
    name, ref = _best(m, FSS_KEY, higher=True)
    out.append(
        {
            "target": "ensemble FSS 1 mm/h 16 px >= best interpolation",
            "value": g.get(FSS_KEY),
            "reference": f"{name} {ref:.4g}",
            "detail": f"{g[FSS_KEY] - ref:+.4f}",
            "pass": bool(g[FSS_KEY] >= ref),
        }
    )
    return out


def headline(metrics: dict) -> dict[str, Any]:
    """The metrics of the skill table for one evaluation (model and the best interpolation)."""
    m = metrics["methods"]
    g = m["geogan"]
    lo, hi = rank_ratios(metrics)
    raw_lo, raw_hi = rank_ratios(metrics, raw=True)
    row: dict[str, Any] = {
        "n_times": metrics.get("n_times"),
        "crps": g["crps"],
        "crps_fair": g.get("crps_fair"),
        POOL_KEY: g.get(POOL_KEY),
        "lsd_db": g["lsd_db"],
        "ssr": g.get("ssr"),
        "rank_min_ratio_nonzero": lo,
        "rank_max_ratio_nonzero": hi,
        "rank_precision": rank_precision(metrics),
        "rank_min_ratio_nonzero_raw": raw_lo,
        "rank_max_ratio_nonzero_raw": raw_hi,
        FSS_KEY: g.get(FSS_KEY),
        "bias": g.get("bias"),
        "interpolation": {},
    }
    for key, higher in (("crps", False), (POOL_KEY, False), ("lsd_db", False), (FSS_KEY, True)):
        name, ref = _best(m, key, higher)
        row["interpolation"][key] = {"best": name, "value": ref}
    row["interpolation"]["bicubic_lsd_db"] = m.get("bicubic", {}).get("lsd_db")
    name, ref = row["interpolation"]["crps"]["best"], row["interpolation"]["crps"]["value"]
    row["crps_improvement_pct"] = 100 * (1 - g["crps"] / ref) if ref else None
    row[AUC_KEY] = g.get(AUC_KEY)
    row["block_power_ratio"] = g.get("block_power_ratio")
    row["interpolation"][AUC_KEY] = dict(zip(("best", "value"), _best(m, AUC_KEY, True)))
    if DET in m:
        d = m[DET]
        row[DET] = {
            k: d.get(k)
            for k in ("crps", POOL_KEY, "lsd_db", FSS_KEY, AUC_KEY, "bias", "block_power_ratio")
        }
    return row


# ---------------------------------------------------------------------------- stages
def train_stage(
    cfg, run_dir: Path, progress: bool, quiet: bool, resume: bool = False
) -> dict[str, Any]:
    """Train ``cfg`` into ``run_dir``; with ``resume``, a finished run there is kept (its
    summary returned) and an interrupted one continues from its newest checkpoint."""
    from geogan.recipes.run import train_from_config

    done = run_dir / "train_summary.json"
    if resume and done.is_file() and (run_dir / "model.safetensors").is_file():
        summary = json.loads(done.read_text())
        summary.setdefault("wall_seconds", summary.get("seconds", 0.0))
        _log(f"train {cfg.name}: kept the finished run in {run_dir}", quiet)
        return summary
    interrupted = resume and (run_dir / "checkpoints").is_dir()
    _log(
        f"train {cfg.name}: {cfg.train.time_limit_minutes} min budget, at most {cfg.train.steps} steps",
        quiet,
    )
    t0 = time.perf_counter()
    summary = train_from_config(
        cfg,
        run_dir=run_dir,
        progress=progress,
        command=sys.argv,
        resume="auto" if interrupted else None,
    )
    summary["wall_seconds"] = time.perf_counter() - t0
    _write_text(done, json.dumps(summary, indent=2, default=str))
    _log(
        f"  {summary['steps']} steps in {summary['seconds']:.0f} s "
        f"({summary['seconds_per_step']:.2f} s/step); wall {summary['wall_seconds']:.0f} s",
        quiet,
    )
    return summary


def generate_evaluate(
    checkpoint: Path,
    folder: Path,
    *,
    members: int,
    times: str,
    overrides: list[str],
    progress: bool,
    quiet: bool,
    extra: dict[str, Path] | None = None,
    resume: bool = False,
    name: str = "ensemble.nc",
    evaluate: bool = True,
) -> dict[str, Any]:
    """Generate an ensemble into ``folder/<name>`` and evaluate it into ``folder/report``,
    with ``extra`` forecasts (name -> file of the same times, e.g. the deterministic network)
    beside it. With ``resume``, an ensemble whose summary file exists is not generated again."""
    from geogan.recipes import get_recipe

    recipe = get_recipe("downscaling")
    ens = folder / name
    gen_summary = ens.with_name(ens.name + ".summary.json")
    if resume and ens.exists() and gen_summary.is_file():
        gen = json.loads(gen_summary.read_text())
        _log(f"generate: kept {ens}", quiet)
    else:
        _log(f"generate {members} members ({times} times) -> {ens}", quiet)
        gen = recipe.generate(
            checkpoint,
            out=ens,
            overrides=overrides,
            members=members,
            times=times,
            progress=progress,
            overwrite=True,
        )
    n_times = max(int(gen["times"]), 1)
    _log(
        f"  {gen['times']} times in {gen['seconds']:.0f} s ({gen['seconds'] / n_times:.1f} s/time)",
        quiet,
    )
    if not evaluate:
        return {
            "ensemble": str(ens),
            "times": int(gen["times"]),
            "members": int(gen["members"]),
            "generate_seconds": gen["seconds"],
            "generate_seconds_per_time": gen["seconds"] / n_times,
        }
    _log(f"evaluate -> {folder / 'report'}", quiet)
    ev = recipe.evaluate(
        ens, out=folder / "report", overwrite=True, extra=extra or {}, progress=progress
    )
    _log(f"  {ev['seconds']:.0f} s ({ev['seconds'] / n_times:.1f} s/time)", quiet)
    metrics = json.loads((folder / "report" / "metrics.json").read_text())
    grid = gen.get("grid", [0, 0])
    return {
        "ensemble": str(ens),
        "report": ev["report"],
        "metrics_file": str(folder / "report" / "metrics.json"),
        "times": int(gen["times"]),
        "members": int(gen["members"]),
        "grid": grid,
        "generate_seconds": gen["seconds"],
        "evaluate_seconds": ev["seconds"],
        "generate_seconds_per_time": gen["seconds"] / n_times,
        "evaluate_seconds_per_time": ev["seconds"] / n_times,
        "metrics": metrics,
    }


def select_wet_times(
    path: str, variable: str, *, min_wet: float, rain: float, stride: int, max_times: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Indices of the times whose share of valid pixels above ``rain`` exceeds ``min_wet``,
    every ``stride``-th of them (at most ``max_times``); also every time's wet fraction and
    the number of wet times before thinning."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        if variable not in ds:
            raise SkillError(f"{path} has no variable {variable!r}")
        da = ds[variable]
        fractions = np.zeros(da.sizes["time"])
        for i in range(da.sizes["time"]):
            x = da.isel(time=i).values
            valid = np.isfinite(x)
            fractions[i] = (np.where(valid, x, 0) > rain).sum() / max(int(valid.sum()), 1)
    wet = np.flatnonzero(fractions > min_wet)
    chosen = wet[:: max(int(stride), 1)]
    if max_times is not None:
        chosen = chosen[:max_times]
    return chosen, fractions, int(wet.size)


def write_subset(path: str, index: np.ndarray, out: Path) -> Path:
    """The times ``index`` of the NetCDF ``path`` written to ``out`` (all variables and attributes)."""
    import xarray as xr

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with xr.open_dataset(path) as ds:
        sub = ds.isel(time=index).load()
    for var in sub.variables.values():
        for key in ("chunksizes", "original_shape", "contiguous"):
            var.encoding.pop(key, None)
    sub.attrs["history"] = (
        str(sub.attrs.get("history", ""))
        + f"\n{_dt.datetime.now(_dt.UTC):%Y-%m-%dT%H:%M:%SZ} benchmarks/skill_radar.py: "
        f"{len(index)} wet times selected"
    ).strip()
    sub.to_netcdf(tmp)
    os.replace(tmp, out)
    return out


def record_timings(
    summary: dict[str, Any], stage: str, ev: dict[str, Any], train: dict[str, Any] | None = None
) -> None:
    """The training, generation and evaluation times of ``stage`` in ``summary["timings"]``."""
    if train is not None:
        summary["timings"][f"{stage} train"] = {
            "seconds": train["wall_seconds"],
            "per_step": train["seconds_per_step"],
        }
    for part in ("generate", "evaluate"):
        summary["timings"][f"{stage} {part}"] = {
            "seconds": ev[f"{part}_seconds"],
            "per_time": ev[f"{part}_seconds_per_time"],
        }


def bom_stage(
    args: argparse.Namespace,
    summary: dict[str, Any],
    out: Path,
    ckpt: Path,
    var: str,
    progress: bool,
    quiet: bool,
    det_ckpt: Path | None = None,
    resume: bool = False,
) -> None:
    """The KNMI models (the GAN, and the deterministic network ``det_ckpt`` as a baseline),
    not retrained, on the BoM times with rain: ``summary["bom"]`` and timings."""
    import xarray as xr

    bom_dir = out / "bom"
    bom_path = _resolve_data_path(args.bom_path)
    index, fractions, n_wet = select_wet_times(
        bom_path,
        var,
        min_wet=args.bom_min_wet,
        rain=args.bom_rain,
        stride=args.bom_stride,
        max_times=args.bom_max_times,
    )
    if index.size == 0:
        raise SkillError(f"no BoM time has more than {args.bom_min_wet:g} of its pixels wet")
    subset = write_subset(bom_path, index, bom_dir / "bom_wet_times.nc")
    with xr.open_dataset(bom_path) as ds:
        times = ds["time"].values
    _write_text(
        bom_dir / "times.txt",
        "time wet_fraction\n"
        + "".join(
            f"{np.datetime_as_string(times[i], unit='m')} {fractions[i]:.4f}\n" for i in index
        ),
    )
    _log(f"BoM: {index.size} of {n_wet} wet times (of {fractions.size})", quiet)
    extra = {}
    if det_ckpt is not None:
        det = generate_evaluate(
            det_ckpt,
            bom_dir,
            members=1,
            times="all",
            overrides=[f"data.truth.path={subset}"],
            progress=progress,
            quiet=quiet,
            resume=resume,
            name="det.nc",
            evaluate=False,
        )
        extra[DET] = Path(det["ensemble"])
        summary["timings"]["bom det generate"] = {
            "seconds": det["generate_seconds"],
            "per_time": det["generate_seconds_per_time"],
        }
    ev = generate_evaluate(
        ckpt,
        bom_dir,
        members=args.members,
        times="all",
        overrides=[f"data.truth.path={subset}"],
        progress=progress,
        quiet=quiet,
        extra=extra,
        resume=resume,
    )
    summary["bom"] = {
        "source": bom_path,
        "subset": str(subset),
        "n_total": int(fractions.size),
        "n_wet": n_wet,
        "min_wet": args.bom_min_wet,
        "rain": args.bom_rain,
        "stride": args.bom_stride,
        "times": [np.datetime_as_string(times[i], unit="m") for i in index],
        "eval": {k: v for k, v in ev.items() if k != "metrics"},
        "headline": headline(ev["metrics"]),
    }
    record_timings(summary, "bom", ev)


# ---------------------------------------------------------------------------- report
def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x, digits) for x in v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not np.isfinite(f):
        return "nan"
    return f"{f:.{digits}g}"


def _every(n: int) -> str:
    if n <= 1:
        return "each"
    suffix = {2: "nd", 3: "rd"}.get(n % 10 if n % 100 not in (11, 12, 13) else 0, "th")
    return f"every {n}{suffix}"


def _metric_table(rows: dict[str, dict[str, Any]]) -> list[str]:
    """A markdown table: one column per evaluation, GAN metrics and the best interpolation."""
    names = list(rows)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    spec = [
        ("held-out times", lambda r: _fmt(r["n_times"])),
        ("CRPS (mm/h)", lambda r: _fmt(r["crps"])),
        (
            "best interpolation CRPS = MAE (mm/h)",
            lambda r: (
                f"{_fmt(r['interpolation']['crps']['value'])} ({r['interpolation']['crps']['best']})"
            ),
        ),
        (
            "CRPS improvement over best interpolation",
            lambda r: f"{_fmt(r['crps_improvement_pct'], 3)}%",
        ),
        ("CRPS pooled 16x16 s4", lambda r: _fmt(r[POOL_KEY])),
        (
            "best interpolation, pooled 16x16 s4",
            lambda r: (
                f"{_fmt(r['interpolation'][POOL_KEY]['value'])} ({r['interpolation'][POOL_KEY]['best']})"
            ),
        ),
        ("LSD (dB)", lambda r: _fmt(r["lsd_db"], 3)),
        ("bicubic LSD (dB)", lambda r: _fmt(r["interpolation"]["bicubic_lsd_db"], 3)),
        ("spread-skill ratio", lambda r: _fmt(r["ssr"], 3)),
        (
            "rank histogram non-zero, min / max x uniform (at the truth's precision)",
            lambda r: (
                f"{_fmt(r['rank_min_ratio_nonzero'], 3)} / {_fmt(r['rank_max_ratio_nonzero'], 3)}"
                + (f" ({_fmt(r['rank_precision'], 3)} mm/h)" if r.get("rank_precision") else "")
            ),
        ),
        (
            "rank histogram non-zero, raw ranks, min / max x uniform",
            lambda r: (
                f"{_fmt(r['rank_min_ratio_nonzero_raw'], 3)} / "
                f"{_fmt(r['rank_max_ratio_nonzero_raw'], 3)}"
            ),
        ),
        ("FSS 1 mm/h 16 px", lambda r: _fmt(r[FSS_KEY])),
        (
            "best interpolation FSS 1 mm/h 16 px",
            lambda r: (
                f"{_fmt(r['interpolation'][FSS_KEY]['value'])} ({r['interpolation'][FSS_KEY]['best']})"
            ),
        ),
        ("bias (mm/h)", lambda r: _fmt(r["bias"], 3)),
        ("ROC area, 1 mm/h", lambda r: _fmt(r.get(AUC_KEY), 3)),
        (
            "best interpolation ROC area, 1 mm/h",
            lambda r: (
                f"{_fmt(r['interpolation'][AUC_KEY]['value'], 3)} "
                f"({r['interpolation'][AUC_KEY]['best']})"
            ),
        ),
        ("block-artefact power ratio (1 = truth)", lambda r: _fmt(r.get("block_power_ratio"), 3)),
        ("deterministic network: CRPS = MAE (mm/h)", lambda r: _fmt(r[DET]["crps"])),
        ("deterministic network: CRPS pooled 16x16 s4", lambda r: _fmt(r[DET][POOL_KEY])),
        ("deterministic network: LSD (dB)", lambda r: _fmt(r[DET]["lsd_db"], 3)),
        ("deterministic network: FSS 1 mm/h 16 px", lambda r: _fmt(r[DET][FSS_KEY])),
        ("deterministic network: ROC area, 1 mm/h", lambda r: _fmt(r[DET][AUC_KEY], 3)),
        ("deterministic network: bias (mm/h)", lambda r: _fmt(r[DET]["bias"], 3)),
    ]
    for label, fn in spec:
        cells = []
        for n in names:
            try:
                cells.append(fn(rows[n]))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Recipe 1 skill on real radar rain rate (x8)",
        "",
        f"- Command: `{summary['command']}`",
        f"- Date (UTC): {summary['date']}",
        f"- Machine: {summary['machine_line']}",
        f"- Load average (1 min) at start / end: {_fmt(summary['loadavg_start'], 3)} / "
        f"{_fmt(summary.get('loadavg_end'), 3)} (on {summary['machine'].get('threads')} torch threads;"
        " a load above the core count means the CPU was shared)",
        f"- Total wall time: {summary.get('total_minutes', float('nan')):.1f} min",
        "",
    ]
    knmi = summary.get("knmi")
    if knmi:
        passed = sum(t["pass"] for t in knmi["targets"])
        lines += [
            f"## KNMI held-out times: {passed}/{len(knmi['targets'])} targets pass",
            "",
            f"Model trained on the first 75% of 2010-08-26 00:00-07:35 UTC ({knmi['train']['steps']} steps, "
            f"{knmi['train']['seconds'] / 60:.1f} min); {knmi['eval']['times']} held-out times, "
            f"{knmi['eval']['members']} members, grid {knmi['eval']['grid'][0]}x{knmi['eval']['grid'][1]} "
            "(1 km), input: 8x8 block means. Best interpolation = best of bilinear, bicubic, Lanczos-3 "
            "per metric (an interpolation's CRPS is its MAE)."
            + (
                f" Deterministic network (train.mode: det, same data, model and budget): "
                f"{knmi['det_train']['steps']} steps in {knmi['det_train']['seconds'] / 60:.1f} min, "
                "scored in the same report (its CRPS is its MAE)."
                if knmi.get("det_train")
                else ""
            ),
            "",
            "| target | GAN | reference | detail | pass |",
            "|---|---|---|---|---|",
        ]
        for t in knmi["targets"]:
            lines.append(
                f"| {t['target']} | {_fmt(t['value'])} | {t['reference']} | {t['detail']} | "
                f"{'PASS' if t['pass'] else 'FAIL'} |"
            )
        lines.append("")
    rows: dict[str, dict] = {}
    if knmi:
        rows["KNMI (held out)"] = knmi["headline"]
    bom = summary.get("bom")
    if bom:
        rows["BoM transfer (no retraining)"] = bom["headline"]
    for key, label in (
        ("meteonet_const", "MeteoNet SE + constants"),
        ("meteonet_noconst", "MeteoNet SE, no constants"),
    ):
        if summary.get(key):
            rows[label] = summary[key]["headline"]
    if rows:
        lines += ["## All evaluations", ""] + _metric_table(rows) + [""]
    if bom:
        lines += [
            "## BoM transfer",
            "",
            f"The KNMI model applied without retraining to BoM Rainfields3 radar 66 (Brisbane), "
            f"2020-10-31: {bom['n_wet']} of {bom['n_total']} times have more than "
            f"{100 * bom['min_wet']:g}% of valid pixels above {bom['rain']:g} mm/h; "
            f"{_every(bom['stride'])} of them is used ({bom['eval']['times']} times, listed in bom/times.txt, "
            "written to bom/bom_wet_times.nc). Note: the BoM grid is 0.5 km, so x8 there means "
            "4 km -> 0.5 km, not 8 km -> 1 km as in training; the normalisation is KNMI's.",
            "",
        ]
    if summary.get("meteonet_const") or summary.get("meteonet_noconst"):
        lines += [
            "## MeteoNet SE: with vs without constants",
            "",
            "Same data (SE France radar, 0.01 deg), split (33 train / 12 test times), model and "
            "training budget; the first run also sees orography and the land-sea mask, regridded "
            "from AROME's 0.025 deg grid onto the radar grid.",
            "",
        ]
        for key in ("meteonet_const", "meteonet_noconst"):
            s = summary.get(key)
            if s:
                lines.append(
                    f"- {key}: {s['train']['steps']} steps in {s['train']['seconds'] / 60:.1f} min, "
                    f"CRPS {_fmt(s['headline']['crps'])} mm/h "
                    f"({_fmt(s['headline']['crps_improvement_pct'], 3)}% below best interpolation)"
                )
        lines.append("")
    lines += [
        "## Timings",
        "",
        "| stage | seconds | per training step (s) | per time step (s) |",
        "|---|---|---|---|",
    ]
    for stage, t in summary["timings"].items():
        lines.append(
            f"| {stage} | {_fmt(t.get('seconds'), 4)} | {_fmt(t.get('per_step'), 3)} | "
            f"{_fmt(t.get('per_time'), 3)} |"
        )
    lines += [""]
    notes = summary.get("notes") or []
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    lines += [
        "Reports: "
        + ", ".join(
            f"`{Path(summary[k]['eval']['report']).relative_to(summary['out'])}`"
            for k in ("knmi", "bom", "meteonet_const", "meteonet_noconst")
            if summary.get(k)
        ),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument(
        "--minutes",
        type=float,
        default=None,
        help=f"KNMI training budget in minutes (default {DEFAULT_MINUTES:g}; --quick: 0.5)",
    )
    p.add_argument(
        "--meteonet-minutes",
        type=float,
        default=None,
        help="training budget of each MeteoNet run (default: what is left of --budget after KNMI "
        "and BoM, minus the estimated MeteoNet generation/evaluation, shared equally; "
        f"between 0.5 and {MAX_METEONET_MINUTES:g})",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET,
        help="total minutes the whole benchmark should take (sets the default --meteonet-minutes)",
    )
    p.add_argument(
        "--members", type=int, default=None, help="ensemble members (default 16; --quick: 4)"
    )
    p.add_argument(
        "--quick", action="store_true", help="smoke run: a few steps, 4 members, few BoM times"
    )
    p.add_argument(
        "--det-minutes",
        type=float,
        default=None,
        help="training budget of the deterministic network (default: --minutes, the GAN's)",
    )
    p.add_argument("--skip-det", action="store_true", help="no deterministic network")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in --out: keep finished stages, run the rest",
    )
    p.add_argument("--skip-bom", action="store_true", help="no BoM transfer")
    p.add_argument("--skip-meteonet", action="store_true", help="no MeteoNet runs")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument(
        "--redo-bom",
        action="store_true",
        help="run the BoM transfer of a finished --out again with its KNMI model (no training)",
    )
    p.add_argument(
        "--reevaluate",
        action="store_true",
        help="score the ensembles of a finished --out again with the current verification "
        "code (no training or generation); rewrites the reports, skill_summary.json and skill.md",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="stop every training after this many steps"
    )
    p.add_argument("--knmi-config", type=Path, default=PRESETS / "radar_knmi_x8.yaml")
    p.add_argument("--meteonet-config", type=Path, default=PRESETS / "meteonet_x8.yaml")
    p.add_argument(
        "--meteonet-noconst-config", type=Path, default=PRESETS / "meteonet_x8_noconst.yaml"
    )
    p.add_argument(
        "--bom-path",
        default="../shared/data/radar/bom_20201031.nc",
        help="BoM radar NetCDF (precip, mm/h)",
    )
    p.add_argument(
        "--bom-min-wet",
        type=float,
        default=0.01,
        help="a BoM time has rain when more than this share of valid pixels exceeds --bom-rain",
    )
    p.add_argument(
        "--bom-rain", type=float, default=0.1, help="rain threshold in mm/h (default 0.1)"
    )
    p.add_argument(
        "--bom-stride",
        type=int,
        default=1,
        help="use every n-th wet BoM time (default 1: all of them)",
    )
    p.add_argument("--bom-max-times", type=int, default=None, help="at most this many BoM times")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override applied to every run (repeatable), e.g. --set model.filters_gen=32",
    )
    p.add_argument(
        "--progress", action="store_true", help="progress bars (default: only log lines)"
    )
    p.add_argument("--quiet", action="store_true", help="no log lines")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.members is None:
        args.members = 4 if args.quick else 16
    if args.minutes is None:
        args.minutes = 0.5 if args.quick else DEFAULT_MINUTES
    if args.det_minutes is None:
        args.det_minutes = args.minutes
    if args.quick:
        args.steps = args.steps or 3
        args.bom_max_times = args.bom_max_times or 3
        if args.meteonet_minutes is None:
            args.meteonet_minutes = 0.5
    if args.members < 1 or args.minutes <= 0:
        p.error("--members must be >= 1 and --minutes > 0")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    from geogan.cli.info import collect_info
    from geogan.core.errors import GeoganError

    started = time.perf_counter()
    out: Path = args.out.resolve()
    resume = bool(args.resume)
    if out.exists() and not resume:
        if not args.overwrite:
            raise SkillError(
                f"{args.out} exists; pass --overwrite, --resume or choose another --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    quiet, progress = args.quiet, args.progress and not args.quiet
    info = collect_info()
    cpu = platform.processor() or platform.machine()
    summary: dict[str, Any] = {
        "command": shlex.join(["python", "benchmarks/skill_radar.py", *args.argv]),
        "cwd": str(Path.cwd()),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "out": str(out),
        "machine": info,
        "machine_line": (
            f"{info['platform']}, {os.cpu_count()} CPUs ({cpu}, {info['cpu_capability']}, "
            f"bf16 native: {info['bf16_cpu_native']}), torch {info['packages'].get('torch')}, "
            f"{info['threads']} threads, device {info['device']}"
        ),
        "loadavg_start": os.getloadavg()[0],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "timings": {},
        "notes": [],
    }
    _write_text(out / "machine.json", json.dumps(info, indent=2))

    def common(name: str, minutes: float) -> list[str]:
        o = [
            f"run_root={out / 'runs'}",
            f"train.time_limit_minutes={minutes}",
            f"generate.members={args.members}",
        ]
        if args.steps:
            o.append(f"train.steps={args.steps}")
        return o + list(args.overrides)

    def save() -> None:
        summary["total_minutes"] = (time.perf_counter() - started) / 60
        summary["loadavg_end"] = os.getloadavg()[0]
        _write_text(out / "skill_summary.json", json.dumps(summary, indent=2, default=str))
        _write_text(out / "skill.md", render_markdown(summary))

    try:
        # ---- KNMI: train the GAN and the deterministic network, held-out times
        cfg = load_run_config(args.knmi_config, common("knmi", args.minutes))
        knmi_dir = out / "knmi"
        train = train_stage(cfg, knmi_dir / "run", progress, quiet, resume)
        ckpt = knmi_dir / "run" / "model.safetensors"
        det_ckpt = None
        extra: dict[str, Path] = {}
        det_train = None
        if not args.skip_det:
            det_cfg = load_run_config(
                args.knmi_config,
                [
                    *common("knmi_det", args.det_minutes),
                    "train.mode=det",
                    f"name={cfg.name}_det",
                ],
            )
            det_train = train_stage(det_cfg, knmi_dir / "det_run", progress, quiet, resume)
            det_ckpt = knmi_dir / "det_run" / "model.safetensors"
            det = generate_evaluate(
                det_ckpt,
                knmi_dir,
                members=1,
                times="test",
                overrides=[],
                progress=progress,
                quiet=quiet,
                resume=resume,
                name="det.nc",
                evaluate=False,
            )
            extra[DET] = Path(det["ensemble"])
            summary["timings"]["knmi det train"] = {
                "seconds": det_train["wall_seconds"],
                "per_step": det_train["seconds_per_step"],
            }
            summary["timings"]["knmi det generate"] = {
                "seconds": det["generate_seconds"],
                "per_time": det["generate_seconds_per_time"],
            }
        ev = generate_evaluate(
            ckpt,
            knmi_dir,
            members=args.members,
            times="test",
            overrides=[],
            progress=progress,
            quiet=quiet,
            extra=extra,
            resume=resume,
        )
        summary["knmi"] = {
            "config": str(args.knmi_config),
            "train": train,
            "det_train": det_train,
            "eval": {k: v for k, v in ev.items() if k != "metrics"},
            "targets": knmi_targets(ev["metrics"]),
            "headline": headline(ev["metrics"]),
        }
        record_timings(summary, "knmi", ev, train)
        px_knmi = ev["grid"][0] * ev["grid"][1] * ev["times"]
        rate = {
            "gen": ev["generate_seconds"] / max(px_knmi * ev["members"], 1),
            "eval": ev["evaluate_seconds"] / max(px_knmi, 1),
        }
        for t in summary["knmi"]["targets"]:
            _log(
                f"  {'PASS' if t['pass'] else 'FAIL'} {t['target']}: {_fmt(t['value'])} ({t['detail']})",
                quiet,
            )
        save()

        # ---- BoM transfer
        if not args.skip_bom:
            bom_stage(
                args,
                summary,
                out,
                ckpt,
                cfg.data.truth.variables[0],
                progress,
                quiet,
                det_ckpt=det_ckpt,
                resume=resume,
            )
            save()

        # ---- MeteoNet with and without constants
        if not args.skip_meteonet:
            runs = [
                ("meteonet_const", args.meteonet_config),
                ("meteonet_noconst", args.meteonet_noconst_config),
            ]
            minutes = args.meteonet_minutes
            if minutes is None:
                probe = load_run_config(args.meteonet_config, [])
                from geogan.recipes.downscaling.build import load_data

                data = load_data(probe)
                px = data.truth_shape[0] * data.truth_shape[1] * len(data.test_index)
                # generation with constants costs a little more: 20% margin, 1.5 min fixed costs per run
                per_run = 1.2 * (px * args.members * rate["gen"] + px * rate["eval"]) / 60 + 1.5
                left = args.budget - (time.perf_counter() - started) / 60
                minutes = float(min((left - 2 * per_run) / 2, MAX_METEONET_MINUTES))
                if minutes < MIN_METEONET_MINUTES:
                    summary["notes"].append(
                        f"MeteoNet side by side skipped: {left:.1f} min of the {args.budget:g}-"
                        f"minute budget were left, less than 2 x ({MIN_METEONET_MINUTES:g} min "
                        f"training + ~{per_run:.1f} min data, generation and evaluation). The "
                        "conclusive comparison (three seeds per arm) is "
                        "`python benchmarks/skill_loro.py --study meteonet`; or pass "
                        "--meteonet-minutes here."
                    )
                    runs = []
                else:
                    summary["notes"].append(
                        f"MeteoNet training budget {minutes:.1f} min per run: {left:.1f} min of "
                        f"the {args.budget:g}-minute budget were left, ~{per_run:.1f} min per "
                        "run estimated for data, generation and evaluation."
                    )
                del data
            summary["meteonet_minutes"] = minutes if runs else None
            for key, path in runs:
                cfg_m = load_run_config(path, common(key, minutes))
                folder = out / key
                train = train_stage(cfg_m, folder / "run", progress, quiet, resume)
                ev = generate_evaluate(
                    folder / "run" / "model.safetensors",
                    folder,
                    members=args.members,
                    times="test",
                    overrides=[],
                    progress=progress,
                    quiet=quiet,
                    resume=resume,
                )
                summary[key] = {
                    "config": str(path),
                    "constants": cfg_m.data.constants.variables
                    if cfg_m.data.constants.path
                    else [],
                    "train": train,
                    "eval": {k: v for k, v in ev.items() if k != "metrics"},
                    "headline": headline(ev["metrics"]),
                }
                record_timings(summary, key, ev, train)
                save()
    except GeoganError as exc:
        raise SkillError(str(exc)) from None
    summary["timings"]["total"] = {"seconds": time.perf_counter() - started}
    save()
    _log(f"done in {summary['total_minutes']:.1f} min: {out / 'skill.md'}", quiet)
    return summary


STAGES = ("knmi", "bom", "meteonet_const", "meteonet_noconst")


def reevaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate the ensembles of a finished ``--out`` again with the current verification code.

    Training and generation are not repeated: each stage's ``ensemble.nc`` is scored anew
    (``report/`` replaced), then targets, tables and ``skill.md`` are rewritten. The summary
    keeps the original command, timings and machine, and gains a note with this command.
    """
    from geogan.core.errors import GeoganError
    from geogan.recipes import get_recipe

    out: Path = args.out.resolve()
    path = out / "skill_summary.json"
    if not path.is_file():
        raise SkillError(f"{path} not found: --reevaluate needs the folder of an earlier full run")
    summary = json.loads(path.read_text())
    recipe = get_recipe("downscaling")
    started = time.perf_counter()
    try:
        for key in STAGES:
            stage = summary.get(key)
            if not stage:
                continue
            folder = out / key
            _log(f"re-evaluate {key}", args.quiet)
            det = folder / "det.nc"
            ev = recipe.evaluate(
                folder / "ensemble.nc",
                out=folder / "report",
                overwrite=True,
                extra={DET: det} if det.exists() else {},
            )
            metrics = json.loads((folder / "report" / "metrics.json").read_text())
            stage["headline"] = headline(metrics)
            stage["eval"]["evaluate_seconds"] = ev["seconds"]
            if key == "knmi":
                stage["targets"] = knmi_targets(metrics)
                for t in stage["targets"]:
                    _log(
                        f"  {'PASS' if t['pass'] else 'FAIL'} {t['target']}: "
                        f"{_fmt(t['value'])} ({t['detail']})",
                        args.quiet,
                    )
    except GeoganError as exc:
        raise SkillError(str(exc)) from None
    summary["notes"].append(
        f"Evaluation re-run on {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`{shlex.join(['python', 'benchmarks/skill_radar.py', *args.argv])}` "
        f"({time.perf_counter() - started:.0f} s); training and generation are those of the "
        "original command."
    )
    _write_text(path, json.dumps(summary, indent=2, default=str))
    _write_text(out / "skill.md", render_markdown(summary))
    _log(f"done: {out / 'skill.md'}", args.quiet)
    return summary


def redo_bom(args: argparse.Namespace) -> dict[str, Any]:
    """Run the BoM transfer stage of a finished ``--out`` again (e.g. with other BoM options),
    with its saved KNMI model; the rest of the summary is kept, the timings updated."""
    from geogan.core.errors import GeoganError

    out: Path = args.out.resolve()
    path = out / "skill_summary.json"
    ckpt = out / "knmi" / "run" / "model.safetensors"
    if not path.is_file() or not ckpt.is_file():
        raise SkillError(f"{out} holds no finished run (skill_summary.json and the KNMI model)")
    summary = json.loads(path.read_text())
    before = sum(summary["timings"].get(k, {}).get("seconds", 0) for k in BOM_TIMINGS)
    cfg = load_run_config(Path(summary["knmi"]["config"]), [])
    started = time.perf_counter()
    try:
        det_ckpt = out / "knmi" / "det_run" / "model.safetensors"
        bom_stage(
            args,
            summary,
            out,
            ckpt,
            cfg.data.truth.variables[0],
            args.progress,
            args.quiet,
            det_ckpt=det_ckpt if det_ckpt.is_file() else None,
        )
    except GeoganError as exc:
        raise SkillError(str(exc)) from None
    after = sum(summary["timings"].get(k, {}).get("seconds", 0) for k in BOM_TIMINGS)
    total = summary["timings"].get("total", {}).get("seconds")
    if total is not None:
        summary["timings"]["total"]["seconds"] = total - before + after
        summary["total_minutes"] = (total - before + after) / 60
    summary["notes"].append(
        f"BoM stage re-run on {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC with "
        f"`{shlex.join(['python', 'benchmarks/skill_radar.py', *args.argv])}` "
        f"({time.perf_counter() - started:.0f} s) and the KNMI model of the original command; "
        f"the total wall time is the original one with the BoM stage's {before:.0f} s replaced "
        f"by {after:.0f} s."
    )
    _write_text(path, json.dumps(summary, indent=2, default=str))
    _write_text(out / "skill.md", render_markdown(summary))
    _log(f"done: {out / 'skill.md'}", args.quiet)
    return summary


BOM_TIMINGS = ("bom generate", "bom evaluate", "bom det generate")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.reevaluate:
            reevaluate(args)
        elif args.redo_bom:
            redo_bom(args)
        else:
            run(args)
    except SkillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
