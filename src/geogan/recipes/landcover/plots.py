"""Figures of recipe 3's report: sample grid, scenario, spectra, per-class IoU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geogan.core.atomic import atomic_path
from geogan.data.landcover import class_colours

__all__ = ["lc_image", "per_class_iou", "sample_grid", "scenario_figure", "spectra"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return path


def lc_image(lc: np.ndarray, n_classes: int) -> np.ndarray:
    """Class map ``[H, W]`` -> RGB ``[H, W, 3]`` (IGBP palette; no data grey)."""
    return class_colours(n_classes + 1)[np.clip(lc, 0, n_classes)]


def _rgb(x: np.ndarray) -> np.ndarray:
    return np.clip(np.moveaxis(np.asarray(x), 0, -1), 0, 1)


def sample_grid(
    path: Path,
    lc: np.ndarray,
    rgb_a: np.ndarray,
    target: np.ndarray,
    members: np.ndarray,
    methods: dict[str, np.ndarray],
    n_classes: int,
    rows: int,
    main: str,
) -> Path:
    """Rows of held-out samples: map, input a, real target, 3 members, each baseline."""
    plt = _plt()
    baselines = [k for k in methods if k not in (main, "real")]
    cols = (
        ["map lc_ab", "input rgb_a", "real rgb_ab"]
        + [f"{main} member {m}" for m in range(min(3, members.shape[0]))]
        + baselines
    )
    pick = np.linspace(0, lc.shape[0] - 1, min(rows, lc.shape[0])).round().astype(int)
    fig, axes = plt.subplots(
        len(pick), len(cols), figsize=(1.7 * len(cols), 1.8 * len(pick)), squeeze=False
    )
    for r, i in enumerate(pick):
        panels = [lc_image(lc[i], n_classes), _rgb(rgb_a[i]), _rgb(target[i])]
        panels += [_rgb(members[m, i]) for m in range(min(3, members.shape[0]))]
        panels += [_rgb(methods[b][i]) for b in baselines]
        for c, img in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=7)
    return _save(fig, path)


def scenario_figure(path: Path, scen: dict[str, Any], n_classes: int) -> Path:
    plt = _plt()
    panels = [
        ("map before", lc_image(scen["lc_before"], n_classes)),
        ("map after", lc_image(scen["lc_after"], n_classes)),
        ("real image", _rgb(scen["real"])),
        ("generated, map before", _rgb(scen["generated_before"])),
    ] + [(f"generated, map after #{m}", _rgb(x)) for m, x in enumerate(scen["generated_after"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.0 * len(panels), 2.3))
    for ax, (title, img) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def spectra(path: Path, curves: dict[str, list[float]]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, p in curves.items():
        p = np.asarray(p)
        k = np.arange(p.size)
        ax.loglog(k[1:], p[1:], label=name, lw=2 if name == "real" else 1)
    ax.set_xlabel("wavenumber (cycles per tile)")
    ax.set_ylabel("power")
    ax.legend(fontsize=8)
    return _save(fig, path)


def per_class_iou(path: Path, per_class: dict[str, dict[str, list]], names: list[str]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.5))
    methods = list(per_class)
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(names))
    for j, m in enumerate(methods):
        iou = np.array([np.nan if v is None else v for v in per_class[m]["iou"]], float)
        ax.bar(x + j * width, np.nan_to_num(iou), width, label=m)
    ax.set_xticks(x + 0.4 - width / 2)
    ax.set_xticklabels([n[:14] for n in names], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("IoU")
    ax.legend(fontsize=8)
    return _save(fig, path)
