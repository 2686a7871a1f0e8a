#!/usr/bin/env python
"""Recipe 2 on real volumes: MITgcm global ocean and NCEP NAM, x4 horizontally, levels kept.

One command, run from the repository root with ``../shared`` beside it::

    python benchmarks/volume_real.py --out runs/volume_real

Cases (issue 10, item 6):

- ``mitgcm``: preset ``volume/mitgcm_x4``. ``mitgcm_global_oce_cs32.nc``, time 0 (the only
  coherent state), theta, salt, u, v, w; faces 1-4 train, faces 5-6 are held out; land is
  missing (``wet`` mask).
- ``nam``: preset ``volume/nam_x4``. ``nam_20180917_isobaric.nc`` cut to 64 x 92, t, u, v,
  w (omega), gh, r on 19 levels; the western 60 columns train, the eastern 32 are held out.

For each: a time-limited training run (MSE pre-training, then adversarial), ``--members``
members of the held-out part, and ``geogan evaluate`` (every metric of item 4: spectra and
their ratio, Wasserstein-1, horizontal divergence, CRPS, spread-skill, slices) against
trilinear and tricubic interpolation and the MSE-only network. ``skill.md`` says per variable
whether the GAN beats the interpolations. The exit code is 0 whether or not it does (a
measurement); 2 for errors the user can fix. ``--resume`` keeps finished stages; ``--quick``
is a smoke run (a test runs it on generated files of the same layout).

What these files can show: each is ONE state (one ocean snapshot, one analysis time), so a
training set is a few hundred thousand voxels and the held-out part is a different region of
the same state, not another time: the figures say how the recipe behaves on real multi-
variable volumes with land and levels, not how it generalises across weather or seasons.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import prepare_out, run_reporting_errors  # noqa: E402
from volume_skill import QUICK as SKILL_QUICK  # noqa: E402
from volume_skill import _fmt, add_case_arguments, method_table, run_case  # noqa: E402

CASES = {
    "mitgcm": ("volume/mitgcm_x4", "mitgcm_global_oce_cs32.nc"),
    "nam": ("volume/nam_x4", "nam_20180917_isobaric.nc"),
}
QUICK = [q for q in SKILL_QUICK if not q.startswith(("data.", "generate."))]
"""The skill benchmark's smoke overrides without its synthetic data and tile sizes."""
INTERPOLATIONS = ("trilinear", "tricubic")


def _log(msg: str) -> None:
    print(f"[volume-real {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def verdicts(methods: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Does the GAN beat the interpolations on this variable? Lower is better for every score
    used: CRPS against the best interpolation's MAE (a deterministic field's CRPS), W1 and the
    log-spectral distance against the better interpolation's."""
    gan = methods["gan"]
    interp = {m: methods[m] for m in INTERPOLATIONS if m in methods}
    out: dict[str, Any] = {}
    for key, ref_key in (("crps", "mae"), ("wasserstein", "wasserstein"), ("lsd_db", "lsd_db")):
        refs = {m: s[ref_key] for m, s in interp.items() if s.get(ref_key) is not None}
        if gan.get(key) is None or not refs:
            continue
        best = min(refs, key=refs.get)
        out[key] = {
            "gan": gan[key],
            "best_interpolation": best,
            "interpolation": refs[best],
            "ratio": gan[key] / refs[best] if refs[best] else None,
            "gan_better": gan[key] < refs[best],
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from geogan.core.atomic import atomic_write_text
    from geogan.core.errors import DataError

    torch.set_num_threads(args.threads)
    data_dir = Path(args.data_dir)
    for name in args.cases:
        path = data_dir / CASES[name][1]
        if not path.is_file():
            raise DataError(f"{path} not found; pass --data-dir with the folder that holds it")
    out = prepare_out(Path(args.out), resume=args.resume, overwrite=args.overwrite)
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    cases = {}
    for name in args.cases:
        preset, file = CASES[name]
        extra = [f"data.file.path={(data_dir / file).resolve()}"]
        case = run_case(name, preset, out, args, extra=extra, quick=QUICK)
        case["verdicts"] = {var: verdicts(res["methods"]) for var, res in case["variables"].items()}
        cases[name] = case
    result = {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}",
        "threads": args.threads,
        "load_average_start_end": [load0, os.getloadavg()[0]],
        "quick": bool(args.quick),
        "minutes_per_case": None if args.quick else args.minutes,
        "members": args.members,
        "wall_s_this_invocation": time.perf_counter() - t0,
        "cases": cases,
    }
    atomic_write_text(out / "real_summary.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(out / "real.md", markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    """real.md: per case, whether the GAN beats interpolation, every method's scores, and the
    divergence statistics of the horizontal velocity."""
    lines = [
        "# Recipe 2 on real volumes (x4 horizontally, levels kept)",
        "",
        f"- Command: `{result['command']}`",
        f"- Date (UTC): {result['date']}",
        f"- Machine: {result['machine']}, {result['threads']} threads",
        f"- Load average (1 min) at start / end: {result['load_average_start_end'][0]:.2f} / "
        f"{result['load_average_start_end'][1]:.2f}",
        f"- Members: {result['members']}; training per case: "
        f"{_fmt(result['minutes_per_case'])} min; wall time "
        f"{result['wall_s_this_invocation'] / 60:.1f} min",
        "- Each file is one state: the held-out part is another region of the same state.",
    ]
    for name, case in result["cases"].items():
        tr = case["train"]
        lines += [
            "",
            f"## {name} (`{case['preset']}`)",
            "",
            f"Training: {tr.get('steps')} steps in {tr.get('seconds', 0) / 60:.1f} min "
            f"(stopped: {tr.get('stopped', '-')}); generation {case['timings_s']['generate']:.0f} s, "
            f"evaluation {case['timings_s']['evaluate']:.0f} s.",
            "",
            "GAN against the better interpolation (ratio < 1: the GAN is better):",
            "",
            "| variable | CRPS / MAE | W1 | LSD (dB) |",
            "|---|---|---|---|",
        ]
        for var, v in case["verdicts"].items():
            cells = []
            for key in ("crps", "wasserstein", "lsd_db"):
                d = v.get(key)
                if d is None:
                    cells.append("-")
                    continue
                word = "better" if d["gan_better"] else "WORSE"
                cells.append(
                    f"{_fmt(d['gan'])} vs {_fmt(d['interpolation'])} ({d['best_interpolation']}): "
                    f"{_fmt(d['ratio'])}, {word}"
                )
            lines.append(f"| {var} | " + " | ".join(cells) + " |")
        lines += method_table(case["variables"])
        div = case.get("divergence") or {}
        if div:
            lines += [
                "",
                "Horizontal divergence (grid-index units) of the velocity:",
                "",
                "| method | mean abs(div) | truth | ratio | rms div | truth |",
                "|---|---|---|---|---|---|",
            ]
            for method, d in div.items():
                lines.append(
                    f"| {method} | {_fmt(d.get('mean_abs_div'))} | "
                    f"{_fmt(d.get('mean_abs_div_truth'))} | {_fmt(d.get('div_ratio'))} | "
                    f"{_fmt(d.get('rms_div'))} | {_fmt(d.get('rms_div_truth'))} |"
                )
        lines += ["", f"Report: `{case['report']}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument(
        "--data-dir",
        default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data" / "volumes"),
        help="folder with the two files (default: ../shared/data/volumes)",
    )
    add_case_arguments(p, CASES, 10.0, "smoke run: tiny networks, few steps")
    args = p.parse_args(argv)
    result = run_reporting_errors(run, args)
    if result is None:
        return 2
    for name, case in result["cases"].items():
        worse = sorted(
            f"{var}:{key}"
            for var, v in case["verdicts"].items()
            for key, d in v.items()
            if not d["gan_better"]
        )
        _log(f"{name}: GAN not better than interpolation on {', '.join(worse) or 'nothing'}")
    _log(f"wrote {Path(args.out) / 'real.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
