"""Verification figures (matplotlib, Agg backend); each function writes one PNG atomically.

Every function takes the output path first and returns it as a :class:`Path`.
Curves come from :func:`geogan.evaluation.evaluate.evaluate` results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from geogan.core.atomic import atomic_path  # noqa: E402

__all__ = [
    "make_figures",
    "plot_fss",
    "plot_rank_histograms",
    "plot_rapsd",
    "plot_sample_maps",
    "plot_scores",
]

_NAN_GREY = "#bdbdbd"


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
    return path


def _cmap(name: str) -> Any:
    return plt.get_cmap(name).with_extremes(
        bad=_NAN_GREY
    )  # missing pixels grey, never a data colour


def plot_sample_maps(
    path: str | os.PathLike,
    coarse: np.ndarray,
    truth: np.ndarray,
    members: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    title: str = "",
    units: str = "",
    n_members: int = 3,
) -> Path:
    """Maps of one time step: input, truth, ``n_members`` members, ensemble mean, ensemble spread.

    ``coarse [h, w]``, ``truth [H, W]``, ``members [M, H, W]`` in physical units;
    ``valid [H, W]`` (unscored pixels are shown grey). All panels but the spread
    share one colour scale (0.5th to 99.5th percentile of truth and members);
    the spread (member standard deviation, ddof = 1) has its own.
    """
    coarse = np.asarray(coarse, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    members = np.asarray(members, dtype=np.float64)
    if members.ndim == 2:
        members = members[None]
    mask = np.isfinite(truth) if valid is None else np.asarray(valid, dtype=bool)
    truth = np.where(mask, truth, np.nan)
    members = np.where(mask, members, np.nan)
    mean = members.mean(axis=0)
    spread = members.std(axis=0, ddof=1) if members.shape[0] > 1 else np.zeros_like(mean)
    spread = np.where(mask, spread, np.nan)
    values = np.concatenate([truth[np.isfinite(truth)], members[np.isfinite(members)]])
    lo, hi = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    shown = min(n_members, members.shape[0])
    panels = [("input (coarse)", coarse), ("truth", truth)]
    panels += [(f"member {i + 1}", members[i]) for i in range(shown)]
    panels += [("ensemble mean", mean)]
    n = len(panels) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 3.0), squeeze=False, layout="constrained")
    cmap = _cmap("viridis")
    im = None
    for ax, (label, field) in zip(axes[0], panels):
        im = ax.imshow(
            np.ma.masked_invalid(field), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest"
        )
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=list(axes[0][:-1]), shrink=0.8, label=units)
    ax = axes[0][-1]
    sim = ax.imshow(np.ma.masked_invalid(spread), cmap=_cmap("magma"), interpolation="nearest")
    ax.set_title("ensemble spread", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(sim, ax=ax, shrink=0.8, label=units)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_rank_histograms(
    path: str | os.PathLike, histograms: Mapping[str, Sequence[float]], *, title: str = ""
) -> Path:
    """Bar charts of normalised rank histograms (name -> M + 1 frequencies), uniform level dashed."""
    names = list(histograms)
    n = max(1, len(names))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        freq = np.asarray(histograms[name], dtype=np.float64)
        ax.bar(np.arange(freq.size), freq, width=0.9, color="tab:blue")
        ax.axhline(1.0 / freq.size, color="k", ls="--", lw=1)
        ax.set_xlabel("rank of truth")
        ax.set_title(name, fontsize=9)
    axes[0][0].set_ylabel("frequency")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_rapsd(
    path: str | os.PathLike,
    k: Sequence[float],
    truth: Sequence[float],
    spectra: Mapping[str, Sequence[float]],
    *,
    units: str = "",
    title: str = "",
) -> Path:
    """Log-log RAPSD of the truth (black) and each method against radial wavenumber ``k >= 1``."""
    k_arr = np.asarray(k, dtype=np.float64)
    sel = k_arr >= 1
    fig, ax = plt.subplots(figsize=(5.5, 4.0), layout="constrained")
    for name, power in spectra.items():
        p = np.asarray(power, dtype=np.float64)
        ax.loglog(k_arr[sel], np.where(p[sel] > 0, p[sel], np.nan), label=name)
    t = np.asarray(truth, dtype=np.float64)
    ax.loglog(k_arr[sel], np.where(t[sel] > 0, t[sel], np.nan), color="k", lw=2, label="truth")
    ax.set_xlabel("wavenumber (cycles per domain)")
    ax.set_ylabel(f"power (({units})$^2$)" if units else "power")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_fss(
    path: str | os.PathLike, fss: Mapping[str, Mapping[str, Any]], *, title: str = ""
) -> Path:
    """FSS against neighbourhood size, one panel per threshold, one line per method.

    ``fss``: name -> the ``"fss"`` curve of :class:`geogan.evaluation.metrics.FSS`
    (thresholds, scales, values, useful); the dotted line is the "useful" level.
    """
    names = list(fss)
    first = fss[names[0]]
    thresholds = list(first["thresholds"])
    n = max(1, len(thresholds))
    fig, axes = plt.subplots(
        1, n, figsize=(3.6 * n, 3.2), squeeze=False, sharey=True, layout="constrained"
    )
    for i, thr in enumerate(thresholds):
        ax = axes[0][i]
        for name in names:
            curve = fss[name]
            values = np.asarray(curve["values"], dtype=np.float64)[i]
            ax.plot(curve["scales"], values, marker="o", label=name)
        ax.axhline(first["useful"][i], color="k", ls=":", lw=1)
        scales = list(first["scales"])
        ax.set_xscale("log", base=2)
        ax.set_xticks(scales, [str(v) for v in scales])
        ax.minorticks_off()
        ax.set_xlabel("neighbourhood (px)")
        ax.set_title(f"> {thr:g}", fontsize=9)
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("FSS")
    axes[0][-1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_scores(
    path: str | os.PathLike,
    methods: Mapping[str, Mapping[str, Any]],
    *,
    keys: Sequence[str] = ("crps", "crps_fair", "rmse", "ssr"),
    title: str = "",
) -> Path:
    """Bar charts comparing methods, one panel per metric in ``keys`` (missing values left out).

    The spread-skill panel (``ssr``) has a dashed line at the ideal value 1.
    """
    keys = [k for k in keys if any(np.isfinite(_num(m.get(k))) for m in methods.values())]
    n = max(1, len(keys))
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.4), squeeze=False, layout="constrained")
    names = list(methods)
    for ax, key in zip(axes[0], keys):
        vals = np.array([_num(methods[name].get(key)) for name in names])
        shown = np.isfinite(vals)  # e.g. no spread-skill ratio for deterministic baselines
        ax.bar(np.flatnonzero(shown), vals[shown], color="tab:orange")
        for i in np.flatnonzero(~shown):
            ax.text(i, 0, "n/a", ha="center", va="bottom", fontsize=8, color="0.4")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
        ax.set_title(key, fontsize=9)
        if key == "ssr":
            ax.axhline(1.0, color="k", ls="--", lw=1)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def make_figures(
    out_dir: str | os.PathLike,
    result: Mapping[str, Any],
    *,
    sample: Mapping[str, np.ndarray] | None = None,
    units: str = "",
) -> dict[str, Path]:
    """All figures of an :func:`~geogan.evaluation.evaluate.evaluate` result in ``out_dir``.

    ``sample``: optional ``{"coarse": [h, w], "truth": [H, W], "members": [M, H, W],
    "valid": [H, W]}`` for the maps figure. Returns name -> PNG path.
    """
    out_dir = Path(out_dir)
    figures: dict[str, Path] = {}
    curves = result["curves"]
    if sample is not None:
        figures["sample_maps"] = plot_sample_maps(
            out_dir / "sample_maps.png",
            sample["coarse"],
            sample["truth"],
            sample["members"],
            sample.get("valid"),
            units=units,
        )
    ranks = {n: c["rank_histogram"] for n, c in curves.items() if "rank_histogram" in c}
    if ranks:
        figures["rank_histogram"] = plot_rank_histograms(
            out_dir / "rank_histogram.png", ranks, title="all valid pixels"
        )
        nz = {
            n: c["rank_histogram_nonzero"]
            for n, c in curves.items()
            if "rank_histogram_nonzero" in c
        }
        figures["rank_histogram_nonzero"] = plot_rank_histograms(
            out_dir / "rank_histogram_nonzero.png",
            nz,
            title="excluding pixels where truth and all members are zero",
        )
    spectra = {n: c["rapsd"] for n, c in curves.items() if "rapsd" in c}
    if spectra and result.get("truth", {}).get("rapsd"):
        figures["rapsd"] = plot_rapsd(
            out_dir / "rapsd.png",
            result["truth"]["rapsd_k"],
            result["truth"]["rapsd"],
            spectra,
            units=units,
        )
    fss = {n: c["fss"] for n, c in curves.items() if "fss" in c}
    if fss:
        figures["fss"] = plot_fss(out_dir / "fss.png", fss)
    figures["scores"] = plot_scores(out_dir / "scores.png", result["methods"])
    return figures
