"""``geogan demo --recipe stylegan``: the whole enrichment chain on generated fields, offline.

1. writes a generated ensemble (:mod:`geogan.recipes.stylegan.synthetic`: 10 members x 4
   times of two variables on a 32 x 64 periodic grid) into ``OUT/data``;
2. trains the ``stylegan/demo`` preset on the first 3 times (``--minutes``, default 4);
3. inverts 5 members of a training time (for tuning) and 5 of the held-out 4th time;
4. tunes the perturbation scales on the training time, enriches the held-out time to
   ``--members`` members, and evaluates them against its other 5 members (report.html).

About 7 minutes on 2 CPU cores; ``OUT/demo_summary.json`` holds every step's summary.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geogan.core.atomic import atomic_write_text, fresh_dir

TUNE_TIME = "2021-06-01T12:00"
CONDITIONING = [0, 1, 2, 3, 4]


def run_demo(
    out: Path,
    *,
    minutes: float = 4.0,
    steps: int | None = None,
    members: int = 50,
    overwrite: bool = False,
    progress: bool = True,
    quick: bool = False,
) -> dict[str, Any]:
    """Run the demo into ``out``; ``quick`` (tests) shortens inversion and tuning."""
    from geogan.inference.writers import write_dataset
    from geogan.recipes.config import load_run_config
    from geogan.recipes.run import train_from_config
    from geogan.recipes.stylegan.evaluate import evaluate
    from geogan.recipes.stylegan.invert import run_invert
    from geogan.recipes.stylegan.perturb import run_perturb
    from geogan.recipes.stylegan.synthetic import synthetic_ensemble
    from geogan.recipes.stylegan.tune import run_tune

    out = fresh_dir(out, overwrite, "demo output")
    data = out / "data" / "ensemble.nc"
    write_dataset(synthetic_ensemble(times=4, members=10, shape=(32, 64), seed=0), data)
    overrides = [
        f"data.source.path={data}",
        f"run_root={out / 'runs'}",
        f"train.time_limit_minutes={minutes}",
    ]
    if steps:
        overrides.append(f"train.steps={steps}")
    cfg = load_run_config("stylegan/demo", overrides)
    train = train_from_config(cfg, run_dir=out / "run", progress=progress)
    model = out / "run" / "model.safetensors"
    extra = ["invert.steps=20", "invert.save_steps=[10]", "tune.steps=5"] if quick else []
    inv_tune = run_invert(
        model,
        out=out / "inversion_tune.nc",
        times=TUNE_TIME,
        members=CONDITIONING,
        overrides=extra,
        progress=progress,
    )
    inv_test = run_invert(
        model,
        out=out / "inversion_test.nc",
        times="test",
        members=CONDITIONING,
        overrides=extra,
        progress=progress,
    )
    tune = run_tune(
        out / "inversion_tune.nc", out=out / "scales.json", overrides=extra, progress=progress
    )
    enriched = run_perturb(
        out / "inversion_test.nc",
        out=out / "enriched.nc",
        scales=out / "scales.json",
        n_samples=members,
        progress=progress,
    )
    report = evaluate(out / "enriched.nc", out=out / "report")
    summary = {
        "train": train,
        "invert_tuning": inv_tune,
        "invert_test": inv_test,
        "tune": tune,
        "perturb": enriched,
        "evaluate": report,
        "note": "generated fields (geogan.recipes.stylegan.synthetic), not data",
    }
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2, default=str))
    return summary
