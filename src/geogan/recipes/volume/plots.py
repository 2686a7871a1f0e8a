"""Figures of recipe 2 (matplotlib, Agg): slices of volumes, value distributions, divergence.

Each function writes one PNG atomically and returns its path. Volumes are ``[D, H, W]``
(z, y, x); a "horizontal" slice is one z level ``[H, W]``, a "vertical" one a y row ``[D, W]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from geogan.evaluation.plots import _save, plt

__all__ = ["plot_distributions", "plot_divergence", "plot_slices"]


def plot_slices(
    path: str | os.PathLike,
    panels: Mapping[str, np.ndarray],
    *,
    variable: str,
    units: str = "",
    z: int | None = None,
    y: int | None = None,
    title: str = "",
) -> Path:
    """Two rows of panels: the horizontal slice at level ``z`` and the vertical one at row ``y``.

    ``panels``: name -> ``[D, H, W]`` (input upsampled by nearest neighbour, truth, members,
    interpolations, networks), all on the fine grid; one colour scale for all (the truth's
    1st and 99th percentiles), NaN grey.
    """
    names = list(panels)
    first = np.asarray(panels[names[0]])
    d, h, _ = first.shape
    z = d // 2 if z is None else z
    y = h // 2 if y is None else y
    ref = np.asarray(panels.get("truth", first))
    finite = ref[np.isfinite(ref)]
    lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1e-6
    cmap = plt.get_cmap("RdBu_r" if lo < 0 < hi else "viridis").with_extremes(bad="#bdbdbd")
    n = len(names)
    aspect = max(0.25, d / max(first.shape[2], 1))
    fig, axes = plt.subplots(
        2,
        n,
        figsize=(2.3 * n + 0.8, 2.3 * (1 + aspect) + 0.6),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"height_ratios": [1, aspect]},
    )
    image = None
    for j, name in enumerate(names):
        vol = np.asarray(panels[name], dtype=np.float64)
        for i, (sl, label) in enumerate(((vol[z], f"z={z}"), (vol[:, y, :], f"y={y}"))):
            ax = axes[i][j]
            image = ax.imshow(sl, origin="lower", cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    if image is not None:
        fig.colorbar(
            image, ax=axes, shrink=0.8, label=f"{variable} ({units})" if units else variable
        )
    fig.suptitle(title or f"{variable}: horizontal (top) and vertical (bottom) slices", fontsize=10)
    return _save(fig, path)


def plot_distributions(
    path: str | os.PathLike,
    values: Mapping[str, Mapping[str, np.ndarray]],
    *,
    units: Mapping[str, str] | None = None,
    bins: int = 60,
) -> Path:
    """Histograms (density, log scale) per variable: ``values[variable][method] -> samples``."""
    names = list(values)
    n = max(1, len(names))
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.2), squeeze=False, layout="constrained")
    for ax, var in zip(axes[0], names):
        methods = values[var]
        truth = np.asarray(methods.get("truth", next(iter(methods.values()))), dtype=np.float64)
        lo, hi = np.percentile(truth, [0.05, 99.95]) if truth.size else (0, 1)
        edges = np.linspace(lo, hi, bins + 1)
        for name, v in methods.items():
            v = np.asarray(v, dtype=np.float64)
            style = {"color": "k", "lw": 2} if name == "truth" else {"lw": 1}
            hist, _ = np.histogram(np.clip(v, lo, hi), bins=edges, density=True)
            ax.step(0.5 * (edges[1:] + edges[:-1]), hist, where="mid", label=name, **style)
        ax.set_yscale("log")
        u = (units or {}).get(var, "")
        ax.set_xlabel(f"{var} ({u})" if u else var)
        ax.set_title(var, fontsize=9)
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=7)
    return _save(fig, path)


def plot_divergence(
    path: str | os.PathLike, samples: Mapping[str, np.ndarray], *, bins: int = 60
) -> Path:
    """Histograms of the divergence (per grid cell) of the truth and each method's velocity."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    truth = np.asarray(samples.get("truth", next(iter(samples.values()))), dtype=np.float64)
    span = np.percentile(np.abs(truth), 99.9) if truth.size else 1.0
    edges = np.linspace(-span, span, bins + 1)
    for name, v in samples.items():
        style = {"color": "k", "lw": 2} if name == "truth" else {"lw": 1}
        hist, _ = np.histogram(np.clip(v, -span, span), bins=edges, density=True)
        ax.step(0.5 * (edges[1:] + edges[:-1]), hist, where="mid", label=name, **style)
    ax.set_yscale("log")
    ax.set_xlabel("divergence (velocity units per grid cell)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return _save(fig, path)
