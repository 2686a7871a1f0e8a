"""``geogan demo --recipe flood``: the whole recipe on data shipped with the install, offline.

1. The bundled tiles (:mod:`~geogan.recipes.flood.bundle`): Blue Marble + MODIS land cover
   of the training regions (the Americas, Eurasia, South Asia) and of the held-out regions
   (Africa, Australia), and rendered simulated tiles, written in the ``geogan index``
   layout with their lists.
2. The representation stage (``flood/masker64``: masker, domain classifier, adaptation
   decoders) on all four domains, then the translation stage (``flood/painter64``: the
   painter on the frozen encoder, started from the masker's export with
   ``train.init_from``), and a short plain U-Net baseline (``flood/unet64``).
3. ``generate``: the held-out tiles painted with the masker's predicted masks.
4. A user mask: one held-out coastal tile with its water grown by 3 pixels (about 22 km
   inland, a crude coastal-flood scenario) written as a PNG, painted from that file.
5. ``evaluate``: masker and painter scores against the baselines, ``report/report.html``.

``minutes`` is the training budget, shared 45 % masker, 40 % painter, 15 % U-Net.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from geogan.core.atomic import atomic_path, atomic_write_text, fresh_dir


def write_user_mask(test_list: Path, out: Path, grow: int = 3) -> tuple[Path, Path]:
    """``(image, mask PNG)``: the held-out flooded tile with the most coast, its water grown
    by ``grow`` pixels."""
    from PIL import Image
    from scipy import ndimage

    from geogan.data.image_list import ImageList, read_image

    entries = [
        e
        for e in ImageList.load(test_list, keys=["x"]).entries
        if e.get("domain") == "rf" and "w" in e
    ]
    best, best_coast = None, -1
    for e in entries:
        w = read_image(e["w"], categorical=True) == 1
        coast = int((ndimage.binary_dilation(w) & ~w).sum())
        if 0.15 < w.mean() < 0.6 and coast > best_coast:
            best, best_coast = e, coast
    best = best or entries[0]
    w = read_image(best["w"], categorical=True) == 1
    grown = ndimage.binary_dilation(w, np.ones((2 * grow + 1,) * 2, bool))
    with atomic_path(out) as tmp:
        Image.fromarray((grown * 255).astype(np.uint8)).save(tmp, format="PNG")
    return Path(best["x"]), out


def run_demo(
    out: Path,
    *,
    minutes: float = 6.0,
    steps: int | None = None,
    members: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    sim_per_domain: int = 150,
    bundle_kwargs: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    from geogan.recipes import get_recipe
    from geogan.recipes.config import load_run_config
    from geogan.recipes.flood.bundle import build_bundle
    from geogan.recipes.run import train_from_config

    out = fresh_dir(out, overwrite, "demo output")
    bundle = build_bundle(
        out / "data", sim_per_domain=sim_per_domain, progress=progress, **(bundle_kwargs or {})
    )
    lists = [
        f"data.list_path={bundle['train_list']}",
        f"data.test_list_path={bundle['test_list']}",
        f"run_root={out / 'runs'}",
    ]
    extra = list(overrides or [])
    step_opt = [f"train.steps={steps}"] if steps else []
    budget = {"masker": 0.45 * minutes, "painter": 0.40 * minutes, "unet": 0.15 * minutes}
    summaries: dict[str, Any] = {}
    cfg = load_run_config(
        "flood/masker64",
        lists + [f"train.time_limit_minutes={budget['masker']}"] + step_opt + extra,
    )
    summaries["masker"] = train_from_config(
        cfg, run_dir=out / "run_masker", progress=progress, command=["geogan", "demo"]
    )
    masker_export = out / "run_masker" / "model.safetensors"
    cfg = load_run_config(
        "flood/painter64",
        lists
        + [f"train.time_limit_minutes={budget['painter']}", f"train.init_from.path={masker_export}"]
        + step_opt
        + extra,
    )
    summaries["painter"] = train_from_config(
        cfg, run_dir=out / "run_painter", progress=progress, command=["geogan", "demo"]
    )
    cfg = load_run_config(
        "flood/unet64", lists + [f"train.time_limit_minutes={budget['unet']}"] + step_opt + extra
    )
    summaries["unet"] = train_from_config(
        cfg, run_dir=out / "run_unet", progress=progress, command=["geogan", "demo"]
    )
    recipe = get_recipe("flood")
    model = out / "run_painter" / "model.safetensors"
    summaries["generate"] = recipe.generate(
        model, out=out / "painted_test.nc", members=members, progress=progress
    )
    image, mask = write_user_mask(Path(bundle["test_list"]), out / "user_mask.png")
    ev_overrides = [
        f"evaluate.unet_checkpoint={out / 'run_unet' / 'model.safetensors'}",
        f"evaluate.user_examples=[{{image_path: '{image}', mask_path: '{mask}'}}]",
    ]
    summaries["evaluate"] = recipe.evaluate(
        out / "painted_test.nc", out=out / "report", overrides=ev_overrides, progress=progress
    )
    summary = {
        "report": str(out / "report" / "report.html"),
        "user_mask": {"image": str(image), "mask": str(mask)},
        "bundle": {k: bundle[k] for k in ("counts", "train_regions", "test_regions")},
        **summaries,
    }
    atomic_write_text(out / "demo_summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
