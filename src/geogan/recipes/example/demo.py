"""``geogan demo --recipe example``: train for a minute, generate 16 members, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geogan.core.atomic import atomic_write_text, fresh_dir


def run_demo(
    out: Path,
    *,
    minutes: float = 1.0,
    steps: int | None = None,
    members: int = 16,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    from geogan.recipes import get_recipe
    from geogan.recipes.config import load_run_config
    from geogan.recipes.run import train_from_config

    out = fresh_dir(out, overwrite, "demo output")
    overrides = [f"run_root={out / 'runs'}", f"train.time_limit_minutes={minutes}"]
    if steps:
        overrides.append(f"train.steps={steps}")
    cfg = load_run_config("example/fields32", overrides)
    train = train_from_config(cfg, run_dir=out / "run", progress=progress)
    recipe = get_recipe("example")
    recipe.generate(out / "run" / "model.safetensors", out=out / "members.nc", members=members)
    report = recipe.evaluate(out / "members.nc", out=out / "report")
    summary = {"train": train, "evaluate": report}
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2, default=str))
    return summary
