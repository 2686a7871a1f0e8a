"""Skill benchmark of the ``flood`` recipe (issue: masker and painter, targets on held-out regions).

Data: the bundled tiles (``geogan flood-data``): Blue Marble + MODIS MCD12C1 2019 land cover,
training regions the Americas / Eurasia / South Asia, held-out regions Africa / Australia,
plus rendered simulated tiles. Runs, each time-limited (minutes, times ``--scale``):

=====================  =====  ==========================================================
stage                  min    what
=====================  =====  ==========================================================
data                   ~2     the bundle (tiles written as PNG/GeoTIFF, lists indexed)
masker                 9      representation stage, all four domains (flood/masker64)
masker_nosim           9      ablation: real domains only (no simulated domain; the domain
                              classifier and adaptation then have nothing to do: off)
masker_noclassifier    9      ablation: four domains, no domain classifier
unet                   6      baseline: plain U-Net on the real domain (flood/unet64)
painter                12     translation stage on the frozen masker (flood/painter64)
evaluate               ~4     generate + verification + ablation table + HTML report
=====================  =====  ==========================================================

About 47 minutes on 2 quiet cores (measured 2026-12-03). Resumable: every finished stage writes
``OUT/stages/<stage>.json``; a rerun skips finished stages (``--redo STAGE`` reruns one and
the stages after it that depend on it). ``--quick``: tiny regions, 32-pixel tiles and a few
steps per run (a smoke test of this script, seconds to a minute; no skill).

Usage::

    python benchmarks/flood_skill.py --out bench/flood            # full
    python benchmarks/flood_skill.py --out /tmp/flood_quick --quick

Results: ``OUT/results.json`` (every score, the targets, the ablation, steps reached, the
machine and its load) and ``OUT/report/report.html``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

STAGES = ("data", "masker", "masker_nosim", "masker_noclassifier", "unet", "painter", "evaluate")
MINUTES = {
    "masker": 9.0,
    "masker_nosim": 9.0,
    "masker_noclassifier": 9.0,
    "unet": 6.0,
    "painter": 12.0,
}
DEPENDS = {
    "data": STAGES[1:],
    "masker": ("painter", "evaluate"),
    "painter": ("evaluate",),
    "masker_nosim": ("evaluate",),
    "masker_noclassifier": ("evaluate",),
    "unet": ("evaluate",),
}
QUICK_STEPS = 3


def _stage_file(out: Path, name: str) -> Path:
    return out / "stages" / f"{name}.json"


def _done(out: Path, name: str) -> dict[str, Any] | None:
    p = _stage_file(out, name)
    return json.loads(p.read_text()) if p.exists() else None


def _record(out: Path, name: str, info: dict[str, Any]) -> dict[str, Any]:
    from geogan.core.atomic import atomic_write_text

    atomic_write_text(_stage_file(out, name), json.dumps(info, indent=2, default=str) + "\n")
    return info


def _quick_regions():
    from geogan.data.bluemarble import Region

    train = [Region("gulf", 8.0, 32.0, -100.0, -60.0)]
    test = [Region("guinea", -6.0, 14.0, -20.0, 12.0)]
    return train, test


def stage_data(out: Path, quick: bool) -> dict[str, Any]:
    from geogan.recipes.flood.bundle import build_bundle

    kwargs: dict[str, Any] = {"tile": 64, "sim_per_domain": 300}
    if quick:
        train, test = _quick_regions()
        kwargs = {
            "tile": 32,
            "sim_per_domain": 6,
            "train_regions": train,
            "test_regions": test,
            "max_real_per_domain": 12,
            "max_test_per_domain": 6,
        }
    t0 = time.perf_counter()
    data = out / "data"
    if data.exists():  # a killed earlier attempt: start the bundle afresh
        import shutil

        shutil.rmtree(data)
    summary = build_bundle(data, progress=not quick, **kwargs)
    summary.pop("palette", None)
    return {**summary, "seconds": time.perf_counter() - t0}


def _lists(out: Path) -> list[str]:
    d = _done(out, "data")
    return [
        f"data.list_path={d['train_list']}",
        f"data.test_list_path={d['test_list']}",
        f"run_root={out / 'runs'}",
    ]


def _quick_overrides(quick: bool) -> list[str]:
    if not quick:
        return []
    return [
        f"train.steps={QUICK_STEPS}",
        "data.tile_size=32",
        "train.batch_size=2",
        "model.encoder.dim=4",
        "model.classifier.filters=8",
        "model.painter.spade_hidden=8",
        "model.discriminator.filters=4",
        "model.discriminator.n_layers=2",
        "model.unet.filters=4",
        "model.unet.depth=3",
        "evaluate.judge_steps=5",
        "evaluate.judge_filters=4",
        "evaluate.fd_patch=8",
        "evaluate.grid_examples=2",
    ]


def stage_train(out: Path, name: str, quick: bool, scale: float) -> dict[str, Any]:
    from geogan.recipes.config import load_run_config
    from geogan.recipes.run import train_from_config

    preset = {
        "masker": "flood/masker64",
        "masker_nosim": "flood/masker64",
        "masker_noclassifier": "flood/masker64",
        "unet": "flood/unet64",
        "painter": "flood/painter64",
    }[name]
    extra = {
        "masker_nosim": [
            "data.domains=[rf, rn]",
            "model.tasks=[s, w]",
        ],  # h exists on simulated tiles only
        "masker_noclassifier": ["model.classifier.enabled=false"],
        "painter": [f"train.init_from.path={out / 'run_masker' / 'model.safetensors'}"],
    }.get(name, [])
    minutes = MINUTES[name] * scale
    ov = _lists(out) + extra + [f"train.time_limit_minutes={minutes}"] + _quick_overrides(quick)
    cfg = load_run_config(preset, ov)
    run_dir = out / f"run_{name}"
    if run_dir.exists():  # an interrupted attempt: continue it
        summary = train_from_config(cfg, run_dir=run_dir, resume="auto", progress=not quick)
    else:
        summary = train_from_config(cfg, run_dir=run_dir, progress=not quick)
    return {"preset": preset, "overrides": ov, "minutes": minutes, **summary}


def stage_evaluate(out: Path, quick: bool) -> dict[str, Any]:
    from geogan.core.atomic import atomic_path
    from geogan.recipes import get_recipe
    from geogan.recipes.config import run_config_from_dict
    from geogan.recipes.flood.demo import write_user_mask
    from geogan.recipes.flood.evaluate import report, verify
    from geogan.recipes.flood.generate import load_flood_export

    t0 = time.perf_counter()
    recipe = get_recipe("flood")
    painter = out / "run_painter" / "model.safetensors"
    painted = out / "painted_test.nc"
    gen = recipe.generate(painter, out=painted, overwrite=True, progress=not quick)
    d = _done(out, "data")
    image, mask = write_user_mask(Path(d["test_list"]), out / "user_mask.png")
    model = load_flood_export(painter)
    cfg = run_config_from_dict(
        model.meta["config"],
        overrides=[f"evaluate.user_examples=[{{image_path: '{image}', mask_path: '{mask}'}}]"],
    )
    extra = {
        "masker, no simulated domain": load_flood_export(
            out / "run_masker_nosim" / "model.safetensors"
        ),
        "masker, no domain classifier": load_flood_export(
            out / "run_masker_noclassifier" / "model.safetensors"
        ),
    }
    unet = load_flood_export(out / "run_unet" / "model.safetensors")
    result, figs = verify(model, cfg, unet=unet, extra_maskers=extra, progress=not quick)
    target = out / "report"
    if target.exists():
        import shutil

        shutil.rmtree(target)
    notes = [
        "geogan masker: four domains (rf, rn, sf, sn), domain classifier and adaptation decoders; "
        "the ablation columns change one thing each, at the same training time.",
        f"Trained on {', '.join(d['train_regions'])}; scored on {', '.join(d['test_regions'])} (disjoint regions).",
    ]
    with atomic_path(target, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        report(result, figs, tmp, cfg, notes=notes)
    return {
        "generate": gen,
        "metrics": result,
        "seconds": time.perf_counter() - t0,
        "report": str(target / "report.html"),
    }


def ablation_table(metrics: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = ("f05", "error", "edge_coherence", "mnr", "miou", "lc_accuracy")
    return {name: {k: m.get(k) for k in keys} for name, m in metrics["masker"].items()}


def run(
    out: Path, quick: bool = False, scale: float = 1.0, redo: list[str] | None = None
) -> dict[str, Any]:
    import torch
    from common import machine_info

    torch.set_num_threads(int(os.environ.get("GEOGAN_BENCH_THREADS", "2")))
    out.mkdir(parents=True, exist_ok=True)
    for name in redo or []:
        for stage in (name, *DEPENDS.get(name, ())):
            _stage_file(out, stage).unlink(missing_ok=True)
            # a redone stage trains afresh: its old run folder would be resumed otherwise
            shutil.rmtree(out / f"run_{stage}", ignore_errors=True)
    info = {"machine": machine_info(), "quick": quick, "scale": scale, "stages": {}}
    t_all = time.perf_counter()
    for name in STAGES:
        done = _done(out, name)
        if done is not None:
            info["stages"][name] = {**done, "resumed": True}
            continue
        t0 = time.perf_counter()
        if name == "data":
            res = stage_data(out, quick)
        elif name == "evaluate":
            res = stage_evaluate(out, quick)
        else:
            res = stage_train(out, name, quick, scale)
        res["wall_s"] = time.perf_counter() - t0
        info["stages"][name] = _record(out, name, res)
        print(f"[flood_skill] {name}: {res['wall_s']:.0f} s", file=sys.stderr)
    info["total_s_this_run"] = time.perf_counter() - t_all
    metrics = info["stages"]["evaluate"]["metrics"]
    info["targets"] = metrics["targets"]
    info["ablation"] = ablation_table(metrics)
    info["painter"] = metrics.get("painter")
    info["steps"] = {n: info["stages"][n].get("steps") for n in MINUTES}
    from geogan.core.atomic import atomic_write_text
    from geogan.evaluation.report import to_jsonable

    atomic_write_text(out / "results.json", json.dumps(to_jsonable(info), indent=2) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quick", action="store_true", help="tiny smoke run (no skill)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply every training time")
    p.add_argument("--redo", action="append", default=[], choices=STAGES, help="rerun a stage")
    a = p.parse_args(argv)
    info = run(a.out, a.quick, a.scale, a.redo)
    print(
        json.dumps(
            {"targets": info["targets"], "ablation": info["ablation"], "steps": info["steps"]},
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
