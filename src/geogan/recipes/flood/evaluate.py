"""Verification of the ``flood`` recipe on the held-out list (other regions than training).

**Masker** (every held-out tile): water scores of the seed (F0.5, error, edge coherence,
mnr, ...: :class:`~geogan.recipes.flood.metrics.WaterScores`) and land-cover mIoU and
accuracy, for the geogan masker and the baselines: the plain U-Net segmenter (an export of
a ``model.kind: unet`` run, ``evaluate.unet_checkpoint``; water = its class 0) and the
colour-threshold water detector fitted on the training tiles.

**Painter** (held-out *flooded* tiles): the water is masked out (the labels, dilated as in
training) and repainted by the geogan painter, by mean-water-colour fill and by OpenCV's
Telea inpainting. Scores: the Frechet distance between the judge's features of painted
and of real water patches (the judge is a water/land classifier geogan trains on the real
training tiles: see :mod:`~geogan.recipes.flood.baselines`), the judge's mean water
probability of the painted pixels, L1 (in [0, 1] RGB) outside the mask, and SSIM outside
the mask (over pixels whose whole 7x7 SSIM window lies outside the mask).

Writes ``out/metrics.json``, ``out/report.html`` (tables and grids: image, true water,
predicted water, U-Net water, painted, baselines; user-mask examples) and the grid PNGs.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geogan.core.atomic import atomic_path
from geogan.core.errors import DataError
from geogan.evaluation.report import to_jsonable
from geogan.recipes.flood.metrics import LandCoverScores, WaterScores

__all__ = [
    "evaluate",
    "load_tiles",
    "masker_scores",
    "painter_scores",
    "verify",
    "write_flood_report",
]


def load_tiles(
    entries: Sequence[Mapping[str, Any]], n_classes: int = 17, ignore: int = 255
) -> list[dict[str, Any]]:
    """Tiles as arrays: ``{"name", "domain", "x" [3, H, W] float32 in [0, 1], "s", "w" [H, W]
    int64 (``ignore`` where unlabelled; ``w`` from ``s == 0`` when only ``s`` is given)}``."""
    from geogan.recipes.flood.data import read_sample

    out = []
    for i, e in enumerate(entries):
        a = read_sample(e, ["s", "w"], f"entry {e.get('name', i)}")
        if a["x"].shape[0] != 3:
            raise DataError(f"{e['x']} has {a['x'].shape[0]} bands; the recipe needs RGB")
        h, w = a["x"].shape[1:]
        s = a.get("s", np.full((h, w), ignore, np.int64))
        water = a.get("w")
        if water is None:
            water = np.where(s == ignore, ignore, (s == 0).astype(np.int64))
        out.append(
            {
                "name": str(e.get("name", i)),
                "domain": e.get("domain"),
                "x": a["x"],
                "s": s,
                "w": water,
            }
        )
    return out


PredictFn = Callable[[np.ndarray], tuple[np.ndarray | None, np.ndarray | None]]


def masker_scores(
    predict: PredictFn,
    tiles: Sequence[Mapping[str, Any]],
    *,
    n_classes: int,
    ignore: int,
    may_band: int,
    threshold: float,
) -> dict[str, Any]:
    """Water and land-cover scores of ``predict(image) -> (classes, water probability)``."""
    water = WaterScores(may_band=may_band, threshold=threshold)
    lc = LandCoverScores(n_classes=n_classes)
    for t in tiles:
        classes, prob = predict(t["x"])
        if prob is not None:
            water.update(t["w"][None], prob[None], ignore_index=ignore)
        if classes is not None:
            valid = t["s"] != ignore
            if valid.any():
                lc.update(
                    np.where(valid, t["s"], 0)[None].astype(np.float64),
                    classes[None].astype(np.float64),
                    valid[None],
                )
    out: dict[str, Any] = {}
    if water.n:
        out.update(water.finalize())
    if "n" in lc.state:
        res = lc.finalize()
        out.update(
            {
                "miou": res["miou"],
                "lc_accuracy": res["accuracy"],
                "lc_mean_accuracy": res["mean_accuracy"],
                "iou_per_class": res["iou"],
            }
        )
    return out


def painting_mask(tile: Mapping[str, Any], dilate: int) -> np.ndarray:
    """The held-out painting mask of a flooded tile: its water label, dilated like training."""
    from scipy import ndimage

    m = tile["w"] == 1
    if dilate:
        m = ndimage.binary_dilation(m, np.ones((2 * dilate + 1,) * 2, bool))
    return m.astype(np.float32)


def painter_scores(
    methods: Mapping[str, Callable[[np.ndarray, np.ndarray], np.ndarray]],
    tiles: Sequence[Mapping[str, Any]],
    judge,
    *,
    dilate: int,
    patch: int,
    min_cover: float,
) -> tuple[dict[str, dict[str, float]], dict[str, list[np.ndarray]]]:
    """Scores of each painting method ``fn(image, mask) -> image`` on flooded ``tiles``
    (module docstring); also returns the painted images per method (for the grids)."""
    from scipy import ndimage

    from geogan.evaluation.image_metrics import frechet_distance_features, ssim
    from geogan.recipes.flood.baselines import judge_outputs, patch_features

    feats: dict[str, list[np.ndarray]] = {"real": []}
    sums: dict[str, dict[str, list[float]]] = {}
    painted: dict[str, list[np.ndarray]] = {k: [] for k in methods}
    masks = []
    prob_real = []
    for t in tiles:
        mask = painting_mask(t, dilate)
        if not mask.any():
            continue
        masks.append(mask)
        x = t["x"]
        pr, fr = judge_outputs(judge, x)
        prob_real.append(float(pr[mask > 0].mean()))
        feats["real"].append(patch_features(fr, mask, patch, min_cover))
        outside = mask == 0
        # pixels whose 7x7 SSIM window holds no masked pixel
        far = ~ndimage.binary_dilation(mask > 0, np.ones((7, 7), bool))
        for name, fn in methods.items():
            y = fn(x, mask)
            painted[name].append(y)
            p, f = judge_outputs(judge, y)
            feats.setdefault(name, []).append(patch_features(f, mask, patch, min_cover))
            s = sums.setdefault(
                name,
                {"water_probability": [], "l1_outside": [], "ssim_outside": [], "l1_inside": []},
            )
            s["water_probability"].append(float(p[mask > 0].mean()))
            s["l1_outside"].append(
                float(np.abs(y - x)[:, outside].mean()) if outside.any() else 0.0
            )
            s["l1_inside"].append(float(np.abs(y - x)[:, mask > 0].mean()))
            if far.any() and min(x.shape[1:]) >= 7:
                s["ssim_outside"].append(ssim(y, x, data_range=1.0, valid=far))
    if not masks:
        raise DataError(
            "no held-out flooded tile has water to repaint; check the test list's w labels"
        )
    real = np.concatenate(feats["real"])
    out: dict[str, dict[str, float]] = {}
    for name in methods:
        f = np.concatenate(feats[name])
        s = sums[name]
        out[name] = {
            "frechet_judge": frechet_distance_features(f, real)
            if len(f) > 1 and len(real) > 1
            else float("nan"),
            "water_probability": float(np.mean(s["water_probability"])),
            "l1_outside": float(np.mean(s["l1_outside"])),
            "max_l1_outside": float(np.max(s["l1_outside"])),
            "ssim_outside": float(np.mean(s["ssim_outside"]))
            if s["ssim_outside"]
            else float("nan"),
            "l1_inside": float(np.mean(s["l1_inside"])),
        }
    out["real water"] = {"water_probability": float(np.mean(prob_real)), "frechet_judge": 0.0}
    out["_counts"] = {"tiles": float(len(masks)), "patches": float(len(real))}
    return out, painted


def _entries(list_path: str | None, what: str):
    from geogan.recipes.flood.data import load_list

    return load_list(list_path, what).entries


def verify(
    model,
    cfg,
    *,
    unet=None,
    painted_ds=None,
    progress: bool = False,
    extra_maskers: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metrics, figure data)`` of a flood export on ``cfg.data.test_list_path``."""
    from geogan.data.image_list import split_entries
    from geogan.recipes.flood.baselines import (
        ColourThreshold,
        mean_colour_fill,
        telea_fill,
        train_judge,
    )

    e, d = cfg.evaluate, cfg.data
    test = load_tiles(
        _entries(d.test_list_path, "data.test_list_path"), d.n_classes, d.ignore_index
    )
    images = _entries(d.list_path, "data.list_path")
    train_idx, _ = split_entries(images, d.val_fraction, cfg.seed)
    train = load_tiles(
        [images[i] for i in train_idx if images[i].get("domain") in ("rf", "rn")],
        d.n_classes,
        d.ignore_index,
    )
    if not train:
        raise DataError("the baselines need real training tiles (domains rf/rn) in data.list_path")
    common = {
        "n_classes": d.n_classes,
        "ignore": d.ignore_index,
        "may_band": e.may_band,
        "threshold": e.threshold,
    }
    colour = ColourThreshold().fit([t["x"] for t in train], [t["w"] for t in train], seed=cfg.seed)
    maskers: dict[str, PredictFn] = {"geogan masker": model.predict}
    for name, m in (extra_maskers or {}).items():
        maskers[name] = m.predict
    if unet is not None:
        maskers["plain U-Net"] = unet.predict
    maskers["colour threshold"] = lambda im: (None, colour.predict(im))
    masker = {name: masker_scores(fn, test, **common) for name, fn in maskers.items()}
    result: dict[str, Any] = {
        "masker": masker,
        "colour_threshold": {"a": colour.a, "b": colour.b, "c": colour.c},
        "n_test_tiles": len(test),
        "test_regions_list": d.test_list_path,
    }
    figs: dict[str, Any] = {"tiles": test, "maskers": maskers}
    flooded = [t for t in test if t["domain"] in ("rf", None) and (t["w"] == 1).any()]
    if model.can_paint and flooded:
        judge = train_judge(
            [t["x"] for t in train],
            [t["w"] for t in train],
            steps=e.judge_steps,
            filters=e.judge_filters,
            seed=cfg.seed,
            progress=progress,
        )
        colour_fill = model.meta.get("water_colour", [0.04, 0.07, 0.17])
        methods = {
            "geogan painter": lambda x, m: model.paint(x, m, seed=cfg.generate.seed),
            "mean-colour fill": lambda x, m: mean_colour_fill(x, m, colour_fill),
            "Telea inpainting": telea_fill,
        }
        scores, painted = painter_scores(
            methods,
            flooded,
            judge,
            dilate=int(model.meta.get("mask_dilate", 1)),
            patch=e.fd_patch,
            min_cover=e.fd_min_cover,
        )
        counts = scores.pop("_counts")
        result["painter"] = scores
        result["painter_counts"] = counts
        result["judge"] = {
            "steps": e.judge_steps,
            "filters": e.judge_filters,
            "note": "features of a water/land classifier geogan trains on the real training tiles",
        }
        figs.update(flooded=flooded, painted=painted)
        user = []
        for ex in e.user_examples:
            user.append(_user_example(model, ex))
        figs["user"] = user
        result["user_examples"] = [
            {k: v for k, v in u.items() if k in ("image", "mask", "rule", "mask_fraction")}
            for u in user
        ]
    result["targets"] = targets(result)
    return result, figs


def _user_example(model, ex) -> dict[str, Any]:
    from geogan.data.image_list import read_image
    from geogan.recipes.flood.masks import elevation_mask, read_elevation, read_mask

    img = read_image(ex.image_path)
    if ex.mask_path is not None:
        mask, rule = read_mask(ex.mask_path, img.shape[1:]), None
    else:
        mask = elevation_mask(read_elevation(ex.elevation_path, img.shape[1:]), ex.below_m)
        rule = f"elevation below {ex.below_m:g} m"
    _, prob = model.predict(img)
    return {
        "image": str(ex.image_path),
        "mask": str(ex.mask_path or ex.elevation_path),
        "rule": rule,
        "x": img,
        "m": mask,
        "prob": prob,
        "painted": model.paint(img, mask),
        "mask_fraction": float(mask.mean()),
    }


def targets(result: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's targets, each ``{"value", "target", "met"}`` (None where not measurable)."""
    out: dict[str, Any] = {}
    m = result["masker"]
    g = m["geogan masker"]
    unet = m.get("plain U-Net")
    out["water_f05_at_least_0.9"] = {"value": g.get("f05"), "met": bool(g.get("f05", 0) >= 0.9)}
    if unet is not None:
        out["water_f05_at_least_unet"] = {
            "value": g.get("f05"),
            "unet": unet.get("f05"),
            "met": bool(g.get("f05", 0) >= unet.get("f05", 1)),
        }
        out["miou_at_least_unet"] = {
            "value": g.get("miou"),
            "unet": unet.get("miou"),
            "met": bool(g.get("miou", 0) >= unet.get("miou", 1)),
        }
    p = result.get("painter")
    if p:
        fd, mean_fd, telea_fd = (
            p[k]["frechet_judge"]
            for k in ("geogan painter", "mean-colour fill", "Telea inpainting")
        )
        out["fd_at_most_half_mean_fill"] = {
            "value": fd,
            "mean_fill": mean_fd,
            "met": bool(fd <= 0.5 * mean_fd),
        }
        out["fd_below_telea"] = {"value": fd, "telea": telea_fd, "met": bool(fd < telea_fd)}
        out["l1_outside_below_1_255"] = {
            "value": p["geogan painter"]["max_l1_outside"],
            "met": bool(p["geogan painter"]["max_l1_outside"] < 1 / 255),
        }
    return out


# --------------------------------------------------------------------------- figures and report


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.clip(np.moveaxis(np.asarray(x, np.float32), 0, -1), 0, 1)


def grid_figure(figs: Mapping[str, Any], path: Path, n: int) -> Path | None:
    """Rows of held-out flooded tiles: image, true water, predicted water per masker,
    painted by each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flooded = figs.get("flooded") or []
    if not flooded:
        return None
    rows = flooded[:n]
    maskers = figs["maskers"]
    painted = figs.get("painted", {})
    cols = ["image", "true water"] + [f"{k}" for k in maskers] + [f"{k}" for k in painted]
    fig, axes = plt.subplots(
        len(rows), len(cols), figsize=(1.9 * len(cols), 1.9 * len(rows) + 0.4), squeeze=False
    )
    for i, t in enumerate(rows):
        panels = [_rgb(t["x"]), (t["w"] == 1).astype(float)]
        for fn in maskers.values():
            _, p = fn(t["x"])
            panels.append(p if p is not None else np.zeros(t["w"].shape))
        for name in painted:
            panels.append(_rgb(painted[name][i]))
        for j, (ax, im) in enumerate(zip(axes[i], panels)):
            ax.imshow(
                im, cmap="Blues" if im.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(cols[j], fontsize=7)
        axes[i][0].set_ylabel(t["name"][:18], fontsize=6)
    fig.suptitle(
        "held-out flooded tiles: masks (water probability) and water repainted", fontsize=9
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def user_figure(figs: Mapping[str, Any], path: Path) -> Path | None:
    """User-mask examples: image, predicted water, the user's mask, painted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    user = figs.get("user") or []
    if not user:
        return None
    fig, axes = plt.subplots(len(user), 4, figsize=(8, 2.1 * len(user) + 0.3), squeeze=False)
    for i, u in enumerate(user):
        panels = [
            _rgb(u["x"]),
            u["prob"] if u["prob"] is not None else np.zeros(u["m"].shape),
            u["m"],
            _rgb(u["painted"]),
        ]
        titles = [
            "image",
            "predicted water",
            "user mask" + (f" ({u['rule']})" if u["rule"] else ""),
            "painted",
        ]
        for ax, im, title in zip(axes[i], panels, titles):
            ax.imshow(
                im, cmap="Blues" if im.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


_DIRECTION = {
    "f05": "max",
    "precision": "max",
    "tpr": "max",
    "accuracy": "max",
    "miou": "max",
    "lc_accuracy": "max",
    "lc_mean_accuracy": "max",
    "f05_per_image": "max",
    "error": "min",
    "fpr": "min",
    "edge_coherence": "min",
    "frechet_judge": "min",
    "water_probability": "max",
    "l1_outside": "min",
    "max_l1_outside": "min",
    "ssim_outside": "max",
}


def _html_table(table: Mapping[str, Mapping[str, Any]], skip: Sequence[str] = ()) -> str:
    names = list(table)
    keys: list[str] = []
    for n in names:
        for k, v in table[n].items():
            if (
                k not in keys
                and k not in skip
                and isinstance(v, (int, float))
                and not isinstance(v, bool)
            ):
                keys.append(k)
    rows = []
    for k in keys:
        vals = [table[n].get(k) for n in names]
        nums = [v for v in vals if isinstance(v, (int, float)) and np.isfinite(v)]
        best = None
        if nums and _DIRECTION.get(k) and len(nums) > 1:
            best = max(nums) if _DIRECTION[k] == "max" else min(nums)
        cells = "".join(
            f'<td class="{"best" if best is not None and v == best else ""}">'
            + ("&ndash;" if not isinstance(v, (int, float)) or not np.isfinite(v) else f"{v:.4g}")
            + "</td>"
            for v in vals
        )
        arrow = {"max": " &uarr;", "min": " &darr;"}.get(_DIRECTION.get(k, ""), "")
        rows.append(f"<tr><th>{html.escape(k)}{arrow}</th>{cells}</tr>")
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    return f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
thead th{background:#eee}tbody th{text-align:left;font-family:monospace;font-weight:normal}td.best{background:#c8e6c9;font-weight:bold}
img{max-width:100%}p.note{background:#f5f5f5;padding:.6em;border-left:4px solid #888}td.met{background:#c8e6c9}td.miss{background:#ffcdd2}"""


def write_flood_report(
    out: Path, metrics: Mapping[str, Any], figures: Mapping[str, Path], notes: Sequence[str] = ()
) -> Path:
    """``out/report.html`` (self-contained) and ``out/metrics.json``, written atomically."""
    parts = ["<h1>geogan flood: masker and painter verification</h1>"]
    for n in notes:
        parts.append(f'<p class="note">{html.escape(n)}</p>')
    parts.append("<h2>Masker on held-out regions</h2>")
    parts.append(
        "<p>Water: the seed's scores (F0.5 on must/cannot pixels, error rate, edge coherence, "
        "mnr on the 'may' band along water edges); land cover: mIoU and pixel accuracy over the "
        "17 IGBP classes.</p>"
    )
    parts.append(_html_table(metrics["masker"]))
    if "painter" in metrics:
        c = metrics.get("painter_counts", {})
        parts.append("<h2>Painter on held-out flooded tiles</h2>")
        parts.append(
            "<p>Water masked out (labels, dilated as in training) and repainted. frechet_judge: Fréchet "
            "distance between features of painted and real water patches, features of a water/land "
            f"classifier geogan trains on the real training tiles (not Inception: not an FID); "
            f"{int(c.get('tiles', 0))} tiles, {int(c.get('patches', 0))} patches. water_probability: that "
            "classifier's mean water probability of the painted pixels. l1/ssim_outside: unchanged pixels "
            "(SSIM over pixels whose 7x7 window lies outside the mask).</p>"
        )
        parts.append(_html_table(metrics["painter"]))
    t = metrics.get("targets", {})
    if t:
        rows = "".join(
            f'<tr><th>{html.escape(k)}</th><td class="{"met" if v.get("met") else "miss"}">{"met" if v.get("met") else "not met"}</td>'
            f"<td>{html.escape(json.dumps(to_jsonable({a: b for a, b in v.items() if a != 'met'})))}</td></tr>"
            for k, v in t.items()
        )
        parts.append(f"<h2>Targets</h2><table><tbody>{rows}</tbody></table>")
    for caption, path in figures.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(
            f'<h2>{html.escape(caption)}</h2><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        )
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>geogan flood report</title>'
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
    from geogan.core.atomic import atomic_write_text

    atomic_write_text(out / "metrics.json", json.dumps(to_jsonable(metrics), indent=2) + "\n")
    atomic_write_text(out / "report.html", page)
    return out / "report.html"


def report(result, figs, out: Path, cfg, notes: Sequence[str] = ()) -> Path:
    figures = {}
    g = grid_figure(figs, out / "grid_heldout.png", cfg.evaluate.grid_examples)
    if g:
        figures[
            "Held-out flooded tiles: image, true water, predicted water, painted, baselines"
        ] = g
    u = user_figure(figs, out / "grid_user_masks.png")
    if u:
        figures["User masks: image, predicted water, the user's mask, painted"] = u
    return write_flood_report(out, result, figures, notes)


def evaluate(
    ensemble: str | Path,
    *,
    out: str | Path,
    overrides=(),
    overwrite: bool = False,
    progress: bool = True,
    **_: Any,
) -> dict[str, Any]:
    """``geogan evaluate painted.nc --out report/``: the checkpoint and config recorded in
    the output of ``geogan generate`` are verified on the held-out list."""
    import xarray as xr

    from geogan.core.atomic import check_writable
    from geogan.recipes.config import run_config_from_dict
    from geogan.recipes.flood.generate import load_flood_export

    out = Path(out)
    check_writable(out, overwrite)
    path = Path(ensemble)
    if not path.exists():
        raise DataError(f"{path} not found; run 'geogan generate' first")
    with xr.open_dataset(path) as ds:
        cfg_dict = json.loads(ds.attrs["geogan_config"])
        checkpoint = ds.attrs.get("checkpoint")
    cfg = run_config_from_dict(cfg_dict, source=str(path), overrides=overrides)
    if not checkpoint or not Path(checkpoint).exists():
        raise DataError(
            f"{path} names checkpoint {checkpoint!r}, which is not there; regenerate with geogan generate"
        )
    model = load_flood_export(checkpoint)
    unet = load_flood_export(cfg.evaluate.unet_checkpoint) if cfg.evaluate.unet_checkpoint else None
    result, figs = verify(model, cfg, unet=unet, progress=progress)
    result["checkpoint"] = checkpoint
    # one folder written under a temporary name, then renamed: never half a report
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        report(
            result,
            figs,
            tmp,
            cfg,
            notes=[f"checkpoint {checkpoint}", f"held-out list {cfg.data.test_list_path}"],
        )
    summary = {
        "report": str(out / "report.html"),
        "targets": result["targets"],
        "masker": {
            k: {
                m: v.get(m)
                for m in ("f05", "error", "edge_coherence", "mnr", "miou", "lc_accuracy")
            }
            for k, v in result["masker"].items()
        },
    }
    if "painter" in result:
        summary["painter"] = {
            k: {m: v.get(m) for m in ("frechet_judge", "water_probability", "l1_outside")}
            for k, v in result["painter"].items()
        }
    return summary
