"""``geogan evaluate`` for recipe 1: the ensemble and interpolation baselines on the same pixels."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from geogan.core.atomic import atomic_write_text
from geogan.core.errors import DataError, OutputExistsError
from geogan.evaluation.baselines import BASELINES
from geogan.evaluation.evaluate import evaluate as evaluate_arrays
from geogan.evaluation.plots import make_figures
from geogan.evaluation.report import write_report
from geogan.recipes.downscaling.build import is_nonnegative, load_data

__all__ = ["METRIC_SET", "evaluate"]

#: recipe 1's metric set (names in geogan.core.registry.METRICS), scored for every method
METRIC_SET = [
    "crps",
    "pooled_crps",
    "ensemble_mean_errors",
    "fss",
    "rapsd",
    "rank_histogram",
    "spread_skill",
]


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


def evaluate(
    ensemble: str | Path, *, out: str | Path, overrides: list[str] = (), overwrite: bool = False
) -> dict[str, Any]:
    started = time.perf_counter()
    ensemble, out = Path(ensemble), Path(out)
    if out.exists():
        if not overwrite:
            raise OutputExistsError(
                f"report folder {out} exists; pass --overwrite or choose another --out"
            )
        shutil.rmtree(out)
    ds = _open(ensemble)
    try:
        from geogan.recipes.config import run_config_from_dict

        cfg = run_config_from_dict(
            json.loads(ds.attrs["geogan_config"]), source=str(ensemble), overrides=list(overrides)
        )
    except KeyError:
        raise DataError(
            f"{ensemble} has no geogan_config attribute; evaluate files written by 'geogan generate'"
        ) from None
    data = load_data(cfg)
    positions = {
        np.datetime64(t, "ns"): i for i, t in enumerate(data.times.astype("datetime64[ns]"))
    }
    try:
        t_index = [positions[np.datetime64(t, "ns")] for t in ds["time"].values]
    except KeyError as exc:
        raise DataError(f"ensemble time {exc} is not in the truth data of its config") from None
    factor = data.factor
    per_var: dict[str, Any] = {}
    figures: dict[str, Path] = {}
    out.mkdir(parents=True)
    notes = []
    for c, var in enumerate(data.target_vars):
        raws = [data.raw_field(t) for t in t_index]
        truth = np.stack([r["target"][c] for r in raws])
        coarse = None
        if var in data.input_vars:
            coarse = np.stack([r["input"][data.input_vars.index(var)] for r in raws])
        else:
            notes.append(
                f"{var}: no input variable of the same name, so no interpolation baselines"
            )
        # scoring rule: truth valid AND every input variable valid in the covering coarse pixel
        ok_in = np.stack([np.isfinite(r["input"]).all(axis=0) for r in raws])
        valid = np.isfinite(truth) & np.repeat(np.repeat(ok_in, factor, axis=1), factor, axis=2)
        members = ds[var].transpose("member", "time", ...).values
        valid &= np.isfinite(members).all(axis=0)
        nonneg = is_nonnegative(
            data.units.get(var), data.var_attrs.get(var, {}).get("standard_name")
        )
        result = evaluate_arrays(
            np.where(valid, truth, np.nan),
            {"geogan": members},
            valid,
            cfg.evaluate,
            metrics=cfg.evaluate.metrics or METRIC_SET,
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
        var_dir = out / var if len(data.target_vars) > 1 else out
        figs = make_figures(var_dir, result, sample=sample, units=data.units.get(var, ""))
        figures.update(
            {f"{var}: {k}" if len(data.target_vars) > 1 else k: p for k, p in figs.items()}
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
    ds_attrs = dict(ds.attrs)
    metrics["ensemble"] = str(ensemble)
    metrics["members"] = int(ds.sizes["member"])
    metrics["times"] = [str(t) for t in ds["time"].values]
    ds.close()
    # titled after the data scored (a model applied to another radar is scored on that one)
    scored = Path(str(cfg.data.truth.path or ensemble)).name
    title = f"geogan verification: {', '.join(data.target_vars)} of {scored}"
    notes.insert(
        0,
        f"Truth: {cfg.data.truth.path}; model: {ds_attrs.get('geogan_checkpoint', '?')} (run {cfg.name}).",
    )
    report = write_report(out, metrics, figures, title=title, notes=notes)
    summary = {
        "report": str(report),
        "metrics_file": str(out / "metrics.json"),
        "seconds": time.perf_counter() - started,
        "metrics": {"methods": metrics["methods"]},
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary
