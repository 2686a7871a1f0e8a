"""``geogan evaluate`` for recipe 1: the ensemble, other forecasts (e.g. the deterministic
network) and the interpolation baselines, all scored on the same pixels."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from geogan.core.atomic import atomic_write_text
from geogan.core.errors import DataError, OutputExistsError
from geogan.core.progress import ProgressBar
from geogan.evaluation.baselines import BASELINES
from geogan.evaluation.evaluate import evaluate as evaluate_arrays
from geogan.evaluation.plots import make_figures, plot_rgb_composite
from geogan.evaluation.report import write_report
from geogan.recipes.downscaling.build import is_nonnegative, load_data

__all__ = ["METRIC_SET", "evaluate", "metric_specs", "rgb_channels"]

#: recipe 1's metric set (names in geogan.core.registry.METRICS), scored for every method;
#: ``block_artefacts`` gets the run's ``data.factor`` (see :func:`metric_specs`)
METRIC_SET = [
    "crps",
    "pooled_crps",
    "ensemble_mean_errors",
    "fss",
    "rapsd",
    "rank_histogram",
    "spread_skill",
    "roc",
    "reliability",
    "block_artefacts",
]

#: the name of the ensemble being evaluated among the methods of the report
MODEL = "geogan"


def metric_specs(names: Sequence[Any] | None, factor: int) -> list[Any]:
    """The metric list for :func:`geogan.evaluation.evaluate.evaluate`: ``names`` (default
    :data:`METRIC_SET`) with ``block_artefacts`` given the resolution factor unless its spec
    names one."""
    out: list[Any] = []
    for spec in names or METRIC_SET:
        if spec == "block_artefacts":
            spec = {"block_artefacts": {"factor": factor}}
        elif isinstance(spec, Mapping) and "block_artefacts" in spec:
            kwargs = dict(spec["block_artefacts"] or {})
            kwargs.setdefault("factor", factor)
            spec = {"block_artefacts": kwargs}
        out.append(spec)
    return out


def rgb_channels(variables: Sequence[str]) -> list[str] | None:
    """The red, green and blue variables (in that order) of multi-channel imagery, or None.

    Recognised names, case-insensitive: ``red``/``green``/``blue`` and ``r``/``g``/``b``.
    """
    lower = {v.lower(): v for v in variables}
    for names in (("red", "green", "blue"), ("r", "g", "b")):
        if all(n in lower for n in names):
            return [lower[n] for n in names]
    return None


def _open(path: Path) -> xr.Dataset:
    engine = "zarr" if path.is_dir() or path.suffix == ".zarr" else None
    try:
        return xr.open_dataset(path, engine=engine)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read ensemble {path}: {exc}") from None


def _mean_over_variables(per_var: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method, the mean of each scalar metric over variables (same-unit fields such as RGB)."""
    methods: dict[str, dict[str, list[float]]] = {}
    for result in per_var.values():
        for method, scores in result["methods"].items():
            for k, v in scores.items():
                if isinstance(v, (int, float)) and v is not None:
                    methods.setdefault(method, {}).setdefault(k, []).append(float(v))
    return {m: {k: float(np.mean(v)) for k, v in s.items()} for m, s in methods.items()}


class _Bar:
    """One :class:`ProgressBar` per task, in turn (rate and ETA), or nothing when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.current: ProgressBar | None = None

    def task(self, description: str, total: int, unit: str):
        """A callable ``advance(n=1)`` for a new task of ``total`` ``unit``s."""
        self.close()
        self.current = ProgressBar(description, total, unit=unit, enabled=self.enabled).start()
        return self.current.advance

    def close(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


class _Chunks:
    """A ``[T, ...]`` array seen by :func:`geogan.evaluation.evaluate.evaluate`, which reads it
    one chunk of time steps at a time: each read advances the progress bar by its time steps."""

    def __init__(self, array: np.ndarray, advance) -> None:
        self.array, self.advance = array, advance
        self.shape, self.ndim = array.shape, array.ndim

    def __getitem__(self, index):
        out = self.array[index]
        if isinstance(index, slice):
            self.advance(len(range(*index.indices(self.shape[0]))))
        return out


def _extra_forecasts(
    extra: Mapping[str, str | os.PathLike],
    times: np.ndarray,
    variables: list[str],
    grid: tuple[int, ...],
) -> dict[str, dict[str, np.ndarray]]:
    """Other forecasts to score beside the ensemble: name -> variable -> ``[M, T, H, W]``
    (``[T, H, W]`` when the file has one member: a deterministic forecast), on ``times``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    reserved = {MODEL, *BASELINES}
    for name, path in extra.items():
        if not name or name in reserved:
            raise DataError(
                f"extra forecast name {name!r} is taken (by the ensemble or a baseline); "
                "choose another, e.g. det=det.nc"
            )
        path = Path(path)
        ds = _open(path)
        try:
            missing = [v for v in variables if v not in ds]
            if missing:
                raise DataError(f"extra forecast {name} ({path}) has no variable {missing[0]!r}")
            file_times = ds["time"].values.astype("datetime64[ns]")
            index = {t: i for i, t in enumerate(file_times)}
            try:
                sel = [index[np.datetime64(t, "ns")] for t in times]
            except KeyError as exc:
                raise DataError(
                    f"extra forecast {name} ({path}) has no time {exc}; generate it for the "
                    "same times as the ensemble (e.g. the same --times)"
                ) from None
            fields = {}
            for var in variables:
                da = ds[var]
                da = da.transpose("member", "time", ...) if "member" in da.dims else da
                values = np.asarray(da.isel(time=sel).values, dtype=np.float32)
                if values.ndim == len(grid) + 1:
                    values = values[None]
                if tuple(values.shape[2:]) != tuple(grid):
                    raise DataError(
                        f"extra forecast {name} ({path}) is on a {values.shape[2:]} grid, the "
                        f"truth on {tuple(grid)}; generate it with the same data"
                    )
                fields[var] = values[0] if values.shape[0] == 1 else values
            out[name] = fields
        finally:
            ds.close()
    return out


def evaluate(
    ensemble: str | Path,
    *,
    out: str | Path,
    overrides: list[str] = (),
    overwrite: bool = False,
    extra: Mapping[str, str | os.PathLike] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score ``ensemble`` (a ``geogan generate`` output) against the truth of its config.

    ``extra``: name -> another output of ``geogan generate`` for the same times (e.g.
    ``{"det": "det.nc"}``, the deterministic network), scored as a method beside the
    ensemble and the interpolations, on the same pixels (a one-member file is a
    deterministic forecast). ``progress``: bars with rate and ETA while reading and scoring.
    The report folder ``out`` appears complete or not at all.
    """
    started = time.perf_counter()
    ensemble, out = Path(ensemble), Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(
            f"report folder {out} exists; pass --overwrite or choose another --out"
        )
    ds = _open(ensemble)
    try:
        from geogan.recipes.config import run_config_from_dict

        cfg = run_config_from_dict(
            json.loads(ds.attrs["geogan_config"]), source=str(ensemble), overrides=list(overrides)
        )
    except KeyError:
        ds.close()
        raise DataError(
            f"{ensemble} has no geogan_config attribute; evaluate files written by 'geogan generate'"
        ) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    bar = _Bar(progress)
    try:
        result = _evaluate(ds, cfg, ensemble, work, extra or {}, bar)
        bar.close()
        if out.exists():
            shutil.rmtree(out)
        os.replace(work, out)
    except BaseException:
        bar.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        ds.close()
    metrics = result
    summary = {
        "report": str(out / "report.html"),
        "metrics_file": str(out / "metrics.json"),
        "seconds": time.perf_counter() - started,
        "metrics": {"methods": metrics["methods"]},
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def _evaluate(
    ds: xr.Dataset,
    cfg,
    ensemble: Path,
    out: Path,
    extra: Mapping[str, str | os.PathLike],
    bar: _Bar,
) -> dict[str, Any]:
    """Score into the (temporary) folder ``out``; returns the metrics written there."""
    data = load_data(cfg)
    positions = {
        np.datetime64(t, "ns"): i for i, t in enumerate(data.times.astype("datetime64[ns]"))
    }
    try:
        t_index = [positions[np.datetime64(t, "ns")] for t in ds["time"].values]
    except KeyError as exc:
        raise DataError(f"ensemble time {exc} is not in the truth data of its config") from None
    factor = data.factor
    advance = bar.task("read truth", len(t_index), "times")
    raws = []
    for t in t_index:
        raws.append(data.raw_field(t))
        advance()
    grid = tuple(raws[0]["target"].shape[1:]) if raws else tuple(data.truth_shape)
    others = _extra_forecasts(extra, ds["time"].values, list(data.target_vars), grid)
    # scoring rule: truth valid AND every input variable valid in the covering coarse pixel
    ok_in = np.stack([np.isfinite(r["input"]).all(axis=0) for r in raws])
    valid_in = np.repeat(np.repeat(ok_in, factor, axis=1), factor, axis=2)
    specs = metric_specs(cfg.evaluate.metrics, factor)
    per_var: dict[str, Any] = {}
    figures: dict[str, Path] = {}
    samples: dict[str, dict[str, Any]] = {}
    notes = []
    for c, var in enumerate(data.target_vars):
        truth = np.stack([r["target"][c] for r in raws])
        coarse = None
        if var in data.input_vars:
            coarse = np.stack([r["input"][data.input_vars.index(var)] for r in raws])
        else:
            notes.append(
                f"{var}: no input variable of the same name, so no interpolation baselines"
            )
        members = ds[var].transpose("member", "time", ...).values
        valid = np.isfinite(truth) & valid_in & np.isfinite(members).all(axis=0)
        forecasts = {MODEL: members}
        for name, fields in others.items():
            fc = fields[var]
            valid &= np.isfinite(fc).all(axis=0) if fc.ndim == members.ndim else np.isfinite(fc)
            forecasts[name] = fc
        nonneg = is_nonnegative(
            data.units.get(var), data.var_attrs.get(var, {}).get("standard_name")
        )
        result = evaluate_arrays(
            _Chunks(
                np.where(valid, truth, np.nan),
                bar.task(f"score {var}", len(t_index), "times"),
            ),
            forecasts,
            valid,
            cfg.evaluate,
            metrics=specs,
            coarse=coarse,
            factor=factor if coarse is not None else None,
            nonnegative=nonneg,
            seed=cfg.seed,
        )
        per_var[var] = result
        if result.get("rank_precision_note"):
            notes.append(
                f"{var}: rank-histogram precision (rank_precision: auto) {result['rank_precision_note']}."
            )
        # the sample maps: the held-out time with the most signal variance
        t_best = int(np.argmax([np.nanvar(np.where(v, x, np.nan)) for x, v in zip(truth, valid)]))
        sample = {
            "coarse": coarse[t_best] if coarse is not None else raws[t_best]["input"][0],
            "truth": np.where(valid[t_best], truth[t_best], np.nan),
            "members": members[:, t_best],
            "valid": valid[t_best],
        }
        if coarse is not None and "bicubic" in BASELINES:
            # the interpolation a reader compares against: does the GAN sharpen the cores?
            bicubic = BASELINES["bicubic"](coarse[t_best][None], factor, nonnegative=nonneg)[0]
            sample["baselines"] = {"bicubic": bicubic}
        samples[var] = {"truth": truth, "coarse": coarse, "members": members, "valid": valid}
        var_dir = out / var if len(data.target_vars) > 1 else out
        figs = make_figures(var_dir, result, sample=sample, units=data.units.get(var, ""))
        figures.update(
            {f"{var}: {k}" if len(data.target_vars) > 1 else k: p for k, p in figs.items()}
        )
    rgb = rgb_channels(data.target_vars)
    if rgb is not None and np.ndim(samples[rgb[0]]["truth"]) == 3:  # [T, H, W] maps
        figures = {"true colour": _rgb_figure(out, rgb, samples, factor), **figures}
    if others:
        notes.append(
            "Other forecasts scored beside the ensemble: "
            + "; ".join(f"{name}: {path}" for name, path in extra.items())
            + " (one member: a deterministic forecast, its CRPS is its MAE)."
        )
    if len(per_var) == 1:
        metrics = dict(next(iter(per_var.values())))
    else:
        first = next(iter(per_var.values()))
        metrics = {
            "rule": first["rule"],
            "crps_estimator": first["crps_estimator"],
            "n_times": first["n_times"],
            "methods": _mean_over_variables(per_var),
            "variables": {v: {"methods": r["methods"]} for v, r in per_var.items()},
        }
        notes.append(
            f"Table: mean over variables {', '.join(per_var)} (same units); per-variable scores in metrics.json."
        )
    metrics["ensemble"] = str(ensemble)
    metrics["members"] = int(ds.sizes["member"])
    metrics["times"] = [str(t) for t in ds["time"].values]
    if others:
        metrics["extra_forecasts"] = {name: str(path) for name, path in extra.items()}
    # titled after the data scored (a model applied to another radar is scored on that one)
    scored = Path(str(cfg.data.truth.path or ensemble)).name
    title = f"geogan verification: {', '.join(data.target_vars)} of {scored}"
    notes.insert(
        0,
        f"Truth: {cfg.data.truth.path}; model: {ds.attrs.get('geogan_checkpoint', '?')} (run {cfg.name}).",
    )
    write_report(out, metrics, figures, title=title, notes=notes)
    return metrics


def _rgb_figure(out: Path, rgb: list[str], samples: dict[str, dict[str, Any]], factor: int) -> Path:
    """The true-colour composite of the held-out time with the most brightness variance."""
    truth = [samples[v]["truth"] for v in rgb]
    valid = np.logical_and.reduce([samples[v]["valid"] for v in rgb])
    brightness = np.mean(truth, axis=0)
    t = int(np.argmax([np.nanvar(np.where(v, x, np.nan)) for x, v in zip(brightness, valid)]))
    coarse = []
    baselines: dict[str, list[np.ndarray]] = {"bicubic": []}
    for v in rgb:
        c = samples[v]["coarse"]
        if c is None:  # no coarse input of that name: show its block mean of the truth
            h, w = truth[0].shape[1] // factor, truth[0].shape[2] // factor
            block = samples[v]["truth"][t, : h * factor, : w * factor]
            c_t = block.reshape(h, factor, w, factor).mean(axis=(1, 3))
            baselines.pop("bicubic", None)
        else:
            c_t = c[t]
            if "bicubic" in baselines:
                baselines["bicubic"].append(BASELINES["bicubic"](c_t[None], factor)[0])
        coarse.append(c_t)
    return plot_rgb_composite(
        out / "true_colour.png",
        coarse,
        [np.where(valid[t], x[t], np.nan) for x in truth],
        [samples[v]["members"][:, t] for v in rgb],
        valid[t],
        baselines=baselines or None,
        names=rgb,
    )
