"""``geogan demo --recipe landcover``: offline, about 10 minutes on 2 CPU cores.

Trains, on Blue Marble + MODIS land cover of the Americas (preset ``landcover/demo``: 2/15
degree pixels, 32x32 tiles, small networks), the land-cover classifier, the MixLC model and
the plain pix2pix baseline, each for a share of ``minutes``; generates 3 members for
held-out mixed samples over Africa and writes the report (metrics, sample grid, the
scenario of a forest box turned into cropland) into ``<out>/report``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geogan.core.atomic import atomic_write_text, fresh_dir

SHARES = {"segmenter": 0.25, "mixlc": 0.55, "pix2pix": 0.20}


def run_demo(
    out: Path,
    *,
    minutes: float = 7.5,
    steps: int | None = None,
    members: int = 3,
    overwrite: bool = False,
    progress: bool = True,
    extra_overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Train, generate and evaluate; returns the summary (also ``demo_summary.json``)."""
    from geogan.data.landcover import mcd12c1_path
    from geogan.recipes import get_recipe
    from geogan.recipes.config import load_run_config
    from geogan.recipes.run import train_from_config

    mcd12c1_path()  # fail before anything is written when the land cover is not installed
    out = fresh_dir(out, overwrite, "demo output")
    extra = list(extra_overrides or [])
    trained = {}
    for kind, share in SHARES.items():
        over = [
            f"run_root={out / 'runs'}",
            f"model.kind={kind}",
            f"train.time_limit_minutes={minutes * share}",
        ]
        if kind == "pix2pix":
            over.append("model.disc_tail=valid")
        if kind == "segmenter":
            over.append("train.batch_size=16")
        if steps:
            over.append(f"train.steps={steps}")
        cfg = load_run_config("landcover/demo", over + extra)
        trained[kind] = train_from_config(cfg, run_dir=out / kind, progress=progress)
    recipe = get_recipe("landcover")
    ens = out / "ensemble.nc"
    gen = recipe.generate(
        out / "mixlc" / "model.safetensors",
        out=ens,
        members=members,
        overrides=[
            f"evaluate.classifier={out / 'segmenter' / 'model.safetensors'}",
            f"evaluate.pix2pix={out / 'pix2pix' / 'model.safetensors'}",
        ],
    )
    report = recipe.evaluate(ens, out=out / "report", progress=progress)
    summary = {"train": trained, "generate": gen, "evaluate": report}
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2, default=str))
    return summary
