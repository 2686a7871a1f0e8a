"""Verification figures (matplotlib, Agg backend); each function writes one PNG atomically.

Every function takes the output path first and returns it as a :class:`Path`.
Curves come from :func:`geogan.evaluation.evaluate.evaluate` results, whatever the
spatial rank of the fields; maps show 2D fields (of 3D fields, the middle level).
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
    "plot_block_artefacts",
    "plot_fss",
    "plot_rank_histograms",
    "plot_reliability",
    "plot_roc",
    "plot_rgb_composite",
    "plot_rapsd",
    "plot_sample_maps",
    "plot_scores",
    "plot_spectrum_ratio",
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


def _valid_box(mask: np.ndarray, factor: int) -> tuple[slice, slice]:
    """Rows and columns of the bounding box of ``mask``, widened to multiples of ``factor``."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return slice(0, mask.shape[0]), slice(0, mask.shape[1])
    r0, c0 = rows[0] // factor * factor, cols[0] // factor * factor
    r1 = min(-(-(rows[-1] + 1) // factor) * factor, mask.shape[0])
    c1 = min(-(-(cols[-1] + 1) // factor) * factor, mask.shape[1])
    return slice(r0, r1), slice(c0, c1)


def _core_window(field: np.ndarray, size: int, factor: int) -> tuple[slice, slice]:
    """A ``size``-pixel window (aligned to ``factor``) centred on the strongest
    ``factor``-block mean of ``field [H, W]`` (NaN ignored): the heaviest rain core."""
    h, w = field.shape
    size = max(factor, min(size, h, w) // factor * factor)
    hb, wb = h // factor, w // factor
    blocks = np.nan_to_num(field[: hb * factor, : wb * factor], nan=-np.inf)
    blocks = blocks.reshape(hb, factor, wb, factor).mean(axis=(1, 3))
    if not np.isfinite(blocks).any():
        return slice(0, size), slice(0, size)
    bi, bj = np.unravel_index(
        np.nanargmax(np.where(np.isfinite(blocks), blocks, np.nan)), blocks.shape
    )
    half = size // 2
    r0 = int(np.clip(bi * factor + factor // 2 - half, 0, h - size)) // factor * factor
    c0 = int(np.clip(bj * factor + factor // 2 - half, 0, w - size)) // factor * factor
    return slice(r0, r0 + size), slice(c0, c0 + size)


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
    baselines: Mapping[str, np.ndarray] | None = None,
    zoom: int | None = 96,
) -> Path:
    """Maps of one time step: input, truth, baselines, members, ensemble mean and spread.

    ``coarse [h, w]``, ``truth [H, W]``, ``members [M, H, W]`` and each of
    ``baselines`` (name -> ``[H, W]``, e.g. bicubic) in physical units; ``valid
    [H, W]`` (unscored pixels are shown grey). The maps are cropped to the
    bounding box of the valid pixels (a radar disc fills a fraction of its grid).
    All panels of a row but the spread share one colour scale (0.5th to 99.5th
    percentile of truth and members); the spread (member standard deviation,
    ddof = 1) has its own. ``zoom``: a second row of ``zoom x zoom`` truth pixels
    around the strongest coarse-block mean of the truth, with its own scale (to
    the truth's maximum there), where smeared and sharp cores look different;
    None or a domain smaller than twice ``zoom`` gives one row.
    """
    coarse = np.asarray(coarse, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    members = np.asarray(members, dtype=np.float64)
    if members.ndim == 2:
        members = members[None]
    mask = np.isfinite(truth) if valid is None else np.asarray(valid, dtype=bool)
    factor = max(1, truth.shape[0] // max(coarse.shape[0], 1))
    rows, cols = _valid_box(mask, factor)
    crop = (
        slice(rows.start // factor, -(-rows.stop // factor)),
        slice(cols.start // factor, -(-cols.stop // factor)),
    )
    coarse, truth, members, mask = (
        coarse[crop],
        truth[rows, cols],
        members[:, rows, cols],
        mask[rows, cols],
    )
    truth = np.where(mask, truth, np.nan)
    members = np.where(mask, members, np.nan)
    extra = {
        k: np.where(mask, np.asarray(v, dtype=np.float64)[rows, cols], np.nan)
        for k, v in (baselines or {}).items()
    }
    mean = members.mean(axis=0)
    spread = members.std(axis=0, ddof=1) if members.shape[0] > 1 else np.zeros_like(mean)
    spread = np.where(mask, spread, np.nan)
    shown = min(n_members, members.shape[0])

    def panels(sl: tuple[slice, slice], csl: tuple[slice, slice]) -> list[tuple[str, np.ndarray]]:
        out = [("input (coarse)", coarse[csl]), ("truth", truth[sl])]
        out += [(name, field[sl]) for name, field in extra.items()]
        out += [(f"member {i + 1}", members[i][sl]) for i in range(shown)]
        return out + [("ensemble mean", mean[sl])]

    full = (slice(None), slice(None))
    layout = [(panels(full, full), "", None)]
    if zoom and min(truth.shape) >= 2 * zoom:
        zr, zc = _core_window(truth, zoom, factor)
        zsl = (zr, zc)
        zcsl = (
            slice(zr.start // factor, zr.stop // factor),
            slice(zc.start // factor, zc.stop // factor),
        )
        peak = np.nanmax(truth[zsl]) if np.isfinite(truth[zsl]).any() else None
        layout.append((panels(zsl, zcsl), f"zoom: strongest core\n({zoom}x{zoom} px)", peak))
        spreads = [spread, spread[zsl]]
    else:
        spreads = [spread]
    n = len(layout[0][0]) + 1
    fig, axes = plt.subplots(
        len(layout), n, figsize=(2.6 * n, 3.0 * len(layout)), squeeze=False, layout="constrained"
    )
    cmap = _cmap("viridis")
    for row, ((items, prefix, peak), spread_map) in enumerate(zip(layout, spreads)):
        values = np.concatenate(
            [f[np.isfinite(f)] for label, f in items if label != "input (coarse)"] or [np.zeros(1)]
        )
        lo, hi = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
        if peak is not None and np.isfinite(peak):
            lo, hi = min(lo, 0.0), max(float(peak), lo + 1e-6)
        if hi <= lo:
            hi = lo + 1.0
        im = None
        for ax, (label, field) in zip(axes[row], items):
            im = ax.imshow(
                np.ma.masked_invalid(field), cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest"
            )
            ax.set_title(label, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        if prefix:
            axes[row][0].set_ylabel(prefix, fontsize=9)
        fig.colorbar(im, ax=list(axes[row][:-1]), shrink=0.8, label=units)
        ax = axes[row][-1]
        sim = ax.imshow(
            np.ma.masked_invalid(spread_map), cmap=_cmap("magma"), interpolation="nearest"
        )
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
        fig.suptitle(title, fontsize=10)
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


def plot_spectrum_ratio(
    path: str | os.PathLike,
    k: Sequence[float],
    ratios: Mapping[str, Sequence[float | None]],
    *,
    title: str = "",
) -> Path:
    """``P_method(k) / P_truth(k)`` against radial wavenumber ``k >= 1`` (log-log), ideal 1 dashed.

    ``ratios``: name -> ``[K]`` ratios (the ``rapsd_ratio`` curves; None/NaN are gaps).
    Below 1 at high ``k``: smoother than the truth; above: noisier.
    """
    k_arr = np.asarray(k, dtype=np.float64)
    sel = k_arr >= 1
    fig, ax = plt.subplots(figsize=(5.5, 4.0), layout="constrained")
    for name, ratio in ratios.items():
        r = np.array([np.nan if v is None else v for v in ratio], dtype=np.float64)
        ax.loglog(k_arr[sel], np.where(r[sel] > 0, r[sel], np.nan), label=name)
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.set_xlabel("wavenumber (cycles per domain)")
    ax.set_ylabel("power ratio method / truth")
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


def plot_roc(
    path: str | os.PathLike, roc: Mapping[str, Mapping[str, Any]], *, title: str = ""
) -> Path:
    """ROC curves (hit rate against false-alarm rate), one panel per threshold, one line per
    method, the no-skill diagonal dashed; the legend gives each method's area (AUC).

    ``roc``: name -> the ``"roc"`` curve of :class:`geogan.evaluation.categorical.ROC`.
    A deterministic forecast is one point joined to (0, 0) and (1, 1).
    """
    names = list(roc)
    thresholds = list(roc[names[0]]["thresholds"])
    n = max(1, len(thresholds))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False, layout="constrained")
    for i, thr in enumerate(thresholds):
        ax = axes[0][i]
        for name in names:
            curve = roc[name]
            far = np.asarray(curve["false_alarm_rate"][i], dtype=np.float64)
            hit = np.asarray(curve["hit_rate"][i], dtype=np.float64)
            auc = _num(curve["auc"][i])
            ax.plot(far, hit, marker="o", ms=3, label=f"{name} ({auc:.3f})")
        ax.plot([0, 1], [0, 1], color="k", ls="--", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("false-alarm rate")
        ax.set_title(f"> {thr:g}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right", title="AUC", title_fontsize=7)
    axes[0][0].set_ylabel("hit rate")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_reliability(
    path: str | os.PathLike, reliability: Mapping[str, Mapping[str, Any]], *, title: str = ""
) -> Path:
    """Reliability diagrams: observed frequency against forecast probability, one panel per
    threshold, one line per method (ensembles; bins = the ensemble's own levels ``k / M``),
    the perfect-reliability diagonal dashed and the base rate dotted; below, the share of
    pairs per probability bin (sharpness, log scale).

    ``reliability``: name -> the ``"reliability"`` curve of
    :class:`geogan.evaluation.categorical.Reliability`.
    """
    names = list(reliability)
    thresholds = list(reliability[names[0]]["thresholds"])
    n = max(1, len(thresholds))
    fig, axes = plt.subplots(
        2,
        n,
        figsize=(3.6 * n, 5.0),
        squeeze=False,
        layout="constrained",
        gridspec_kw={"height_ratios": [3, 1]},
        sharex=True,
    )
    for i, thr in enumerate(thresholds):
        ax, bar = axes[0][i], axes[1][i]
        for name in names:
            curve = reliability[name]
            p = np.asarray(curve["probability"], dtype=np.float64)
            obs = np.array(
                [np.nan if v is None else v for v in curve["observed_frequency"][i]],
                dtype=np.float64,
            )
            count = np.asarray(curve["count"][i], dtype=np.float64)
            (line,) = ax.plot(p, obs, marker="o", ms=3, label=name)
            share = count / count.sum() if count.sum() > 0 else count
            bar.semilogy(p, np.where(share > 0, share, np.nan), marker=".", color=line.get_color())
        base = _num(reliability[names[0]]["base_rate"][i])
        ax.plot([0, 1], [0, 1], color="k", ls="--", lw=1)
        if np.isfinite(base):
            ax.axhline(base, color="k", ls=":", lw=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"> {thr:g}", fontsize=9)
        bar.set_xlabel("forecast probability")
    axes[0][0].set_ylabel("observed frequency")
    axes[1][0].set_ylabel("share of pairs")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_block_artefacts(
    path: str | os.PathLike, curves: Mapping[str, Mapping[str, Any]], *, title: str = ""
) -> Path:
    """Power at the coarse-grid frequency (order 1) and its harmonics relative to the truth's,
    one group of bars per order, one bar per method (log scale); 1 (the truth) dashed and the
    1.2x tolerance dotted.

    ``curves``: name -> the ``"block_artefacts"`` curve of
    :class:`geogan.evaluation.artefacts.BlockArtefacts`.
    """
    names = [n for n in curves if curves[n].get("order")]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 + 0.9 * len(names)), 3.6), layout="constrained")
    orders = sorted({int(h) for n in names for h in curves[n]["order"]})
    width = 0.8 / max(1, len(names))
    for j, name in enumerate(names):
        by_order = dict(zip(curves[name]["order"], curves[name]["ratio"]))
        vals = np.array([_num(by_order.get(h)) for h in orders])
        ax.bar(np.arange(len(orders)) + (j - (len(names) - 1) / 2) * width, vals, width, label=name)
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", ls="--", lw=1)
    ax.axhline(1.2, color="k", ls=":", lw=1)
    ax.set_xticks(range(len(orders)), [f"{h}/f" for h in orders])
    ax.set_xlabel("lattice frequency (cycles per pixel; f = coarse-pixel size)")
    ax.set_ylabel("power / truth's power")
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def _rgb_image(
    channels: Sequence[np.ndarray], lo: float, hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """``[H, W, 3]`` floats in [0, 1] from three ``[H, W]`` fields scaled by ``(lo, hi)``, and
    the ``[H, W]`` mask of pixels where a channel is missing (shown grey)."""
    stack = np.stack([np.asarray(c, dtype=np.float64) for c in channels], axis=-1)
    missing = ~np.isfinite(stack).all(axis=-1)
    img = np.clip((np.nan_to_num(stack) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    img[missing] = 0.74  # the grey of missing pixels in the other maps
    return img, missing


def plot_rgb_composite(
    path: str | os.PathLike,
    coarse: Sequence[np.ndarray],
    truth: Sequence[np.ndarray],
    members: Sequence[np.ndarray],
    valid: np.ndarray | None = None,
    *,
    baselines: Mapping[str, Sequence[np.ndarray]] | None = None,
    n_members: int = 3,
    zoom: int | None = 96,
    names: Sequence[str] = ("red", "green", "blue"),
    title: str = "",
) -> Path:
    """True-colour composites of one time step: input, truth, baselines, members, ensemble
    mean, and the ensemble spread (the three channels' standard deviations, ddof = 1, as
    one colour image on its own scale).

    Every argument holds the three channels in the order of ``names`` (red, green, blue):
    ``coarse`` three ``[h, w]``, ``truth`` three ``[H, W]``, ``members`` three ``[M, H, W]``,
    each of ``baselines`` three ``[H, W]``; ``valid [H, W]`` (unscored pixels grey). All
    composites share one linear scale (0.5th to 99.5th percentile of truth and members over
    the three channels), so the colours compare across panels. ``zoom``: a second row of
    ``zoom x zoom`` pixels around the strongest coarse-block brightness, where a lattice at
    the coarse-pixel spacing or smeared edges would show; None gives one row.
    """
    coarse = [np.asarray(c, dtype=np.float64) for c in coarse]
    truth = [np.asarray(t, dtype=np.float64) for t in truth]
    members = [np.asarray(m, dtype=np.float64) for m in members]
    members = [m[None] if m.ndim == 2 else m for m in members]
    if not (len(coarse) == len(truth) == len(members) == 3):
        raise ValueError("plot_rgb_composite needs three channels (red, green, blue)")
    mask = np.isfinite(truth[0]) if valid is None else np.asarray(valid, dtype=bool)
    factor = max(1, truth[0].shape[0] // max(coarse[0].shape[0], 1))
    rows, cols = _valid_box(mask, factor)
    csl = (
        slice(rows.start // factor, -(-rows.stop // factor)),
        slice(cols.start // factor, -(-cols.stop // factor)),
    )
    mask = mask[rows, cols]
    coarse = [c[csl] for c in coarse]
    truth = [np.where(mask, t[rows, cols], np.nan) for t in truth]
    members = [np.where(mask, m[:, rows, cols], np.nan) for m in members]
    extra = {
        k: [np.where(mask, np.asarray(c, dtype=np.float64)[rows, cols], np.nan) for c in v]
        for k, v in (baselines or {}).items()
    }
    mean = [m.mean(axis=0) for m in members]
    spread = [
        np.where(mask, m.std(axis=0, ddof=1) if m.shape[0] > 1 else np.zeros_like(m[0]), np.nan)
        for m in members
    ]
    shown = min(n_members, members[0].shape[0])
    # the truth's range: it looks as it should, and members out of it show saturated
    values = np.concatenate([t[np.isfinite(t)] for t in truth])
    lo, hi = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
    spread_values = np.concatenate([s[np.isfinite(s)] for s in spread]) if shown else np.zeros(1)
    spread_hi = float(np.percentile(spread_values, 99.5)) if spread_values.size else 1.0

    def panels(sl, csl_):
        out = [("input (coarse)", [c[csl_] for c in coarse]), ("truth", [t[sl] for t in truth])]
        out += [(name, [c[sl] for c in chans]) for name, chans in extra.items()]
        out += [(f"member {i + 1}", [m[i][sl] for m in members]) for i in range(shown)]
        out += [("ensemble mean", [m[sl] for m in mean])]
        return out

    full = (slice(None), slice(None))
    layout = [(panels(full, full), spread, "")]
    if zoom and min(truth[0].shape) >= 2 * zoom:
        brightness = np.mean(truth, axis=0)
        zr, zc = _core_window(brightness, zoom, factor)
        zcsl = (
            slice(zr.start // factor, zr.stop // factor),
            slice(zc.start // factor, zc.stop // factor),
        )
        layout.append(
            (panels((zr, zc), zcsl), [s[zr, zc] for s in spread], f"zoom ({zoom}x{zoom} px)")
        )
    n = len(layout[0][0]) + 1
    fig, axes = plt.subplots(
        len(layout), n, figsize=(2.6 * n, 2.9 * len(layout)), squeeze=False, layout="constrained"
    )
    for row, (items, spread_maps, prefix) in enumerate(layout):
        for ax, (label, chans) in zip(axes[row], items):
            img, _ = _rgb_image(chans, lo, hi)
            ax.imshow(img, interpolation="nearest")
            ax.set_title(label, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        img, _ = _rgb_image(spread_maps, 0.0, spread_hi)
        ax = axes[row][-1]
        ax.imshow(img, interpolation="nearest")
        ax.set_title("ensemble spread (RGB)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        if prefix:
            axes[row][0].set_ylabel(prefix, fontsize=9)
    fig.suptitle(
        title
        or f"true colour ({', '.join(names)}; scale {lo:.3g} to {hi:.3g}; "
        f"spread 0 to {spread_hi:.3g})",
        fontsize=10,
    )
    return _save(fig, path)


def _middle_level(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The 2D maps of a 3D sample (``truth [D, H, W]``): its middle level, and the coarse
    level that covers it (``coarse [d, h, w]``, ``D = f d``)."""
    depth = np.shape(sample["truth"])[0]
    z = depth // 2
    out: dict[str, Any] = {}
    for key, value in sample.items():
        if key == "coarse":
            d = np.shape(value)[0]
            out[key] = np.asarray(value)[z * d // depth]
        elif key == "members":
            out[key] = np.asarray(value)[..., z, :, :]
        elif key == "baselines":
            out[key] = {name: np.asarray(v)[z] for name, v in value.items()}
        else:
            out[key] = np.asarray(value)[z]
    return out


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
    spectrum_ratio: bool = False,
) -> dict[str, Path]:
    """All figures of an :func:`~geogan.evaluation.evaluate.evaluate` result in ``out_dir``.

    ``sample``: optional ``{"coarse": [h, w], "truth": [H, W], "members": [M, H, W],
    "valid": [H, W], "baselines": {name: [H, W]}}`` for the maps figure (3D fields
    ``[D, H, W]`` are shown at their middle level). ``spectrum_ratio``: also plot
    ``rapsd_ratio`` (``"spectrum_ratio"``). Returns name -> PNG path.
    """
    out_dir = Path(out_dir)
    figures: dict[str, Path] = {}
    curves = result["curves"]
    if sample is not None and np.ndim(sample["truth"]) == 3:
        sample = _middle_level(sample)
    if sample is not None:
        figures["sample_maps"] = plot_sample_maps(
            out_dir / "sample_maps.png",
            sample["coarse"],
            sample["truth"],
            sample["members"],
            sample.get("valid"),
            units=units,
            baselines=sample.get("baselines"),
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
        at_q = {
            n: c["rank_histogram_nonzero_at_precision"]
            for n, c in curves.items()
            if "rank_histogram_nonzero_at_precision" in c
        }
        if at_q:
            q = next(
                (m["rank_precision"] for m in result["methods"].values() if "rank_precision" in m),
                None,
            )
            figures["rank_histogram_nonzero_at_precision"] = plot_rank_histograms(
                out_dir / "rank_histogram_nonzero_at_precision.png",
                at_q,
                title=f"at the truth's precision ({q:.3g} {units or ''})\nwithout zero ties"
                if q
                else "at the truth's precision\nwithout zero ties",
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
    ratios = {n: c["rapsd_ratio"] for n, c in curves.items() if "rapsd_ratio" in c}
    if spectrum_ratio and ratios and result.get("truth", {}).get("rapsd_k"):
        figures["spectrum_ratio"] = plot_spectrum_ratio(
            out_dir / "spectrum_ratio.png", result["truth"]["rapsd_k"], ratios
        )
    fss = {n: c["fss"] for n, c in curves.items() if "fss" in c}
    if fss:
        figures["fss"] = plot_fss(out_dir / "fss.png", fss)
    roc = {n: c["roc"] for n, c in curves.items() if "roc" in c}
    if roc:
        figures["roc"] = plot_roc(out_dir / "roc.png", roc)
    rel = {n: c["reliability"] for n, c in curves.items() if "reliability" in c}
    if rel:
        # a deterministic forecast has two probability levels: shown, but the ensembles' matter
        figures["reliability"] = plot_reliability(out_dir / "reliability.png", rel)
    blocks = {n: c["block_artefacts"] for n, c in curves.items() if c.get("block_artefacts")}
    if any(b.get("order") for b in blocks.values()):
        figures["block_artefacts"] = plot_block_artefacts(
            out_dir / "block_artefacts.png", blocks, title="lattice at the coarse-pixel spacing"
        )
    figures["scores"] = plot_scores(out_dir / "scores.png", result["methods"])
    return figures
