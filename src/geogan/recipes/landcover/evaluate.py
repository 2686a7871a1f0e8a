"""``geogan evaluate`` for recipe 3: how real, and how faithful to the map, the imagery is.

Input: a ``geogan generate`` output in ``eval_samples`` mode (held-out mixed samples).
Methods scored on the same samples: the generated members (``mixlc``, or whatever model
wrote the file), ``pix2pix`` (``evaluate.pix2pix``: its export is run on the same inputs
and seeds), ``class_mean`` (each pixel the training-region mean RGB of its class), and
``real`` (the target images themselves: the classifier's reference scores).

Scores (images in [0, 1]; the first member of each method unless said otherwise):

- land-cover fidelity: a U-Net segmenter trained by geogan on *real* training-region
  images (``evaluate.classifier``, a ``model.kind: segmenter`` export) labels each image;
  per-class IoU and accuracy against the map ``lc_ab`` (whole tile and the pasted box),
  mIoU, and the ratio ``miou(method) / miou(real)``;
- ``l1``, ``l1_box`` (mean absolute error to the target), ``ssim`` (scikit-image, RGB);
- ``lsd_db``: log-spectral distance of the mean image spectra (RAPSD, k >= 1) to the
  targets';
- ``fd_classifier``: Fréchet distance between Gaussians fitted to the classifier's
  level-``evaluate.feature_level`` encoder features (one vector per feature-map
  position) of the targets and of the method's images. It is *not* an FID (no
  Inception network): a Fréchet distance on geogan's own land-cover classifier features;
- ``identity_l1``: L1 of the reconstruction from ``(rgb_a, lc_a)`` to ``rgb_a``;
- ``member_spread``: mean per-pixel standard deviation across members (they must differ).

Figures: sample grid (map, real, 3 members, baselines), scenario (a forest box turned into
cropland: map before/after, real image, generated), spectra, per-class IoU. Writes
``metrics.json`` and ``report.html`` (self-contained) into ``out``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from geogan.core.atomic import check_writable
from geogan.core.errors import DataError
from geogan.evaluation.image_metrics import (
    ConfusionMatrix,
    FeatureStats,
    frechet_distance,
    image_lsd,
    image_rapsd,
    ssim,
)
from geogan.evaluation.report import write_report
from geogan.recipes.landcover.config import LandcoverConfig
from geogan.recipes.landcover.data import class_mean_colours, load_source

__all__ = ["classify", "evaluate", "score_methods", "targets"]


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


@torch.no_grad()
def classify(seg: torch.nn.Module, images: np.ndarray, level: int, batch: int = 32):
    """``(classes [N, T, T], features [N * positions, C])`` of images ``[N, 3, T, T]`` in [0, 1]."""
    preds, feats = [], []
    for s in _batches(images.shape[0], batch):
        x = torch.from_numpy(np.asarray(images[s], np.float32) * 2 - 1)
        preds.append(seg(x).argmax(1).numpy())
        f = seg.encode(x)[level]
        feats.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).double().numpy())
    return np.concatenate(preds), np.concatenate(feats)


def _class_mean_images(lc: np.ndarray, colours: np.ndarray) -> np.ndarray:
    n = colours.shape[0]
    table = np.concatenate([colours, colours.mean(0, keepdims=True)])  # no data: overall mean
    return np.moveaxis(table[np.clip(lc, 0, n)], -1, 1).astype(np.float32)


def score_methods(
    methods: dict[str, np.ndarray],
    target: np.ndarray,
    lc: np.ndarray,
    box: np.ndarray,
    n_classes: int,
    seg: torch.nn.Module | None,
    level: int,
    class_names: list[str],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Scores of each method's images ``[N, 3, T, T]`` against ``target`` / map ``lc``.

    Returns ``(table, curves)``: scalar metrics per method, and per-class scores and spectra.
    """
    table: dict[str, dict[str, Any]] = {}
    curves: dict[str, Any] = {"per_class": {}, "spectra": {"real": image_rapsd(target).tolist()}}
    real_feats = None
    if seg is not None:
        _, real_feats = classify(seg, target, level)
        real_stats = FeatureStats(real_feats.shape[1])
        real_stats.update(real_feats)
        mu_r, cov_r = real_stats.mean_cov()
    for name, imgs in methods.items():
        row: dict[str, Any] = {}
        if name != "real":
            diff = np.abs(imgs - target).mean(axis=1)  # [N, T, T]
            row["l1"] = float(diff.mean())
            row["l1_box"] = float(diff[box > 0].mean()) if (box > 0).any() else float("nan")
            row["ssim"] = float(np.mean([ssim(a, b) for a, b in zip(imgs, target)]))
            row["lsd_db"] = image_lsd(target, imgs)
            curves["spectra"][name] = image_rapsd(imgs).tolist()
        if seg is not None:
            pred, feats = classify(seg, imgs, level)
            whole, inbox = ConfusionMatrix(n_classes), ConfusionMatrix(n_classes)
            whole.update(lc, pred)
            inbox.update(np.where(box > 0, lc, n_classes), pred)
            w, b = whole.finalize(class_names), inbox.finalize(class_names)
            row.update(
                miou=w["miou"], pixel_accuracy=w["pixel_accuracy"], mean_accuracy=w["mean_accuracy"]
            )
            row.update(miou_box=b["miou"], pixel_accuracy_box=b["pixel_accuracy"])
            curves["per_class"][name] = {
                "iou": w["iou"],
                "accuracy": w["accuracy"],
                "support": w["support"],
            }
            if name != "real":
                stats = FeatureStats(feats.shape[1])
                stats.update(feats)
                row["fd_classifier"] = frechet_distance(mu_r, cov_r, *stats.mean_cov())
        table[name] = row
    if seg is not None and "real" in table:
        ref, ref_box = table["real"]["miou"], table["real"]["miou_box"]
        for name, row in table.items():
            if name != "real":
                row["miou_ratio"] = row["miou"] / ref if ref else float("nan")
                row["miou_box_ratio"] = row["miou_box"] / ref_box if ref_box else float("nan")
    return table, curves


def targets(table: dict[str, dict[str, Any]], main: str) -> dict[str, Any]:
    """The issue's acceptance targets on the held-out regions, checked."""
    m, out = table.get(main, {}), {}
    p2p, cm = table.get("pix2pix"), table.get("class_mean")
    if "miou_ratio" in m:
        out["miou_at_least_0.9x_real"] = bool(m["miou_ratio"] >= 0.9)
    for base_name, base in (("pix2pix", p2p), ("class_mean", cm)):
        if base is None:
            continue
        if "fd_classifier" in m:
            out[f"fd_below_{base_name}"] = bool(m["fd_classifier"] < base["fd_classifier"])
        out[f"lsd_below_{base_name}"] = bool(m["lsd_db"] < base["lsd_db"])
    if p2p is not None and "miou" in m:
        out["miou_above_pix2pix"] = bool(m["miou"] > p2p["miou"])
    if cm is not None and "identity_l1" in m:
        out["identity_l1_below_class_mean"] = bool(m["identity_l1"] < cm["identity_l1"])
    out["all_met"] = bool(out) and all(out.values())
    return out


def evaluate(
    ensemble: str | Path,
    *,
    out: str | Path,
    overrides=(),
    overwrite: bool = False,
    progress: bool = True,
    **_: Any,
) -> dict[str, Any]:
    """Score an ``eval_samples`` output; write ``metrics.json``, figures and ``report.html``."""
    from geogan.recipes.config import run_config_from_dict
    from geogan.recipes.landcover import plots
    from geogan.recipes.landcover.build import class_names, load_segmenter
    from geogan.recipes.landcover.generate import generator_fn, load_generator, run_members

    out = check_writable(Path(out), overwrite)
    with xr.open_dataset(ensemble) as ds:
        ds.load()
    if ds.attrs.get("mode") != "eval_samples":
        raise DataError(
            f"{ensemble} holds generated files, not held-out samples; evaluate the output of "
            "'geogan generate' without generate.image / generate.landcover"
        )
    cfg = run_config_from_dict(
        json.loads(ds.attrs["geogan_config"]), source=str(ensemble), overrides=overrides
    )
    assert isinstance(cfg, LandcoverConfig)
    n, ev = cfg.data.n_classes, cfg.evaluate
    names = class_names(cfg)
    main = ds.attrs.get("model_kind", "mixlc")
    gen = ds["generated"].values  # [M, N, 3, T, T]
    target, rgb_a = ds["rgb_ab"].values, ds["rgb_a"].values
    lc_ab, lc_a = ds["lc_ab"].values.astype(np.int64), ds["lc_a"].values.astype(np.int64)
    box = ds["box"].values
    seed, members = int(ds.attrs["seed"]), gen.shape[0]
    notes = [
        f"{target.shape[0]} held-out mixed samples of {target.shape[-1]}x{target.shape[-1]} pixels from "
        f"{', '.join(json.loads(ds.attrs.get('scenes', '[]')))}; {members} members; seed {seed}.",
        "Images in [0, 1] reflectance. Generated images are G(rgb_a, lc_ab); the target is rgb_ab "
        "(rgb_a with a box pasted from another tile, lc_ab its land-cover map).",
    ]
    colours = class_mean_colours(load_source(cfg.data, "train"))
    methods = {main: gen[0], "class_mean": _class_mean_images(lc_ab, colours)}
    identity = {main: ds["identity"].values, "class_mean": _class_mean_images(lc_a, colours)}
    p2p_members = None
    if ev.pix2pix:
        g, pcfg, pmeta = load_generator(ev.pix2pix)
        fn = generator_fn(g, pmeta.get("model_kind", "pix2pix"), n)
        p2p_members = run_members(fn, rgb_a, lc_ab, min(members, 3), seed)
        methods["pix2pix"] = p2p_members[0]
        identity["pix2pix"] = run_members(fn, rgb_a, lc_a, 1, seed, member_offset=10**6)[0]
    else:
        notes.append("No pix2pix baseline (evaluate.pix2pix not set).")
    seg = None
    if ev.classifier:
        seg, _ = load_segmenter(ev.classifier)
        methods["real"] = target
        notes.append(
            "Land-cover scores come from a U-Net segmenter trained by geogan on real Blue Marble "
            "images of the training regions (MODIS labels), applied to held-out images; "
            "fd_classifier is a Fréchet distance on that classifier's encoder features, not an FID."
        )
    else:
        notes.append(
            "No classifier (evaluate.classifier not set): no IoU / accuracy / Fréchet distance."
        )
    table, curves = score_methods(methods, target, lc_ab, box, n, seg, ev.feature_level, names)
    for name, rec in identity.items():
        table[name]["identity_l1"] = float(np.abs(rec - rgb_a).mean())
    table[main]["member_spread"] = float(gen.std(axis=0).mean()) if members > 1 else 0.0
    if p2p_members is not None and p2p_members.shape[0] > 1:
        table["pix2pix"]["member_spread"] = float(p2p_members.std(axis=0).mean())
    checks = targets(table, main)
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    figures["Samples: map, input image a, real target, 3 members, baselines"] = plots.sample_grid(
        out / "samples.png", lc_ab, rgb_a, target, gen, methods, n, ev.grid_samples, main
    )
    scen = _scenario(ds, cfg, seed)
    if scen is not None:
        figures[scen["caption"]] = plots.scenario_figure(out / "scenario.png", scen, n)
    figures["Mean image spectra (RAPSD)"] = plots.spectra(out / "spectra.png", curves["spectra"])
    if curves["per_class"]:
        figures["Per-class IoU of the land-cover classifier"] = plots.per_class_iou(
            out / "per_class_iou.png", curves["per_class"], names
        )
    metrics = {
        "methods": table,
        "targets": checks,
        "curves": curves,
        "n_samples": int(target.shape[0]),
        "members": members,
        "classes": names,
        "scenario": None
        if scen is None
        else {
            k: v
            for k, v in scen.items()
            if k in ("caption", "tile", "changed_pixels", "changed_l1_to_real")
        },
        "rule": "Scored on held-out regions disjoint from the training regions; every method on the same samples.",
    }
    report = write_report(
        out, metrics, figures, title="geogan land-cover verification", notes=notes
    )
    return {
        "report": str(report),
        "targets": checks,
        **{
            f"{k}_{m}": v
            for m, row in table.items()
            for k, v in row.items()
            if k in ("miou", "fd_classifier", "lsd_db", "l1", "identity_l1")
        },
    }


def _scenario(ds: xr.Dataset, cfg: LandcoverConfig, seed: int) -> dict[str, Any] | None:
    """The same tile with a forest box turned into cropland: real vs generated."""
    from geogan.recipes.landcover.generate import generator_fn, load_generator, run_members

    ev, n = cfg.evaluate, cfg.data.n_classes
    lc = ds["lc_a"].values.astype(np.int64)
    forest = np.isin(lc, ev.scenario_from)
    t = lc.shape[-1]
    lo, hi = t // 4, t - t // 4
    score = forest[:, lo:hi, lo:hi].mean(axis=(1, 2))
    k = int(score.argmax())
    if score[k] < 0.2:
        return None
    path = ds.attrs.get("checkpoint")
    if not path or not Path(path).is_file():
        return None
    g, _, meta = load_generator(path)
    fn = generator_fn(g, meta.get("model_kind", "mixlc"), n)
    changed = lc[k].copy()
    inner = changed[lo:hi, lo:hi]
    inner[np.isin(inner, ev.scenario_from)] = ev.scenario_to
    rgb = ds["rgb_a"].values[k : k + 1]
    before = run_members(fn, rgb, lc[k : k + 1], 1, seed)[0, 0]
    after = run_members(fn, rgb, changed[None], 3, seed)[:, 0]
    mask = changed != lc[k]
    return {
        "caption": f"Scenario: forest (classes {ev.scenario_from}) in the central box replaced by class "
        f"{ev.scenario_to} (cropland), tile {k}: map before / after, real image, generated from the "
        "original map, 3 members from the changed map",
        "tile": k,
        "lc_before": lc[k],
        "lc_after": changed,
        "real": rgb[0],
        "generated_before": before,
        "generated_after": after,
        "changed_pixels": int(mask.sum()),
        "changed_l1_to_real": float(np.abs(after[0] - rgb[0]).mean(axis=0)[mask].mean())
        if mask.any()
        else 0.0,
    }
