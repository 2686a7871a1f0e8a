"""``geogan evaluate`` for recipe 2: verification of a volume ensemble against the held-out truth.

For every variable: 3D power spectra and their ratio to the truth's (``rapsd``,
``spectrum_band``), the value distribution and its Wasserstein-1 distance to the truth's,
ensemble CRPS (= MAE for a single field), rank histogram and spread-skill ratio; for the
velocity, the divergence statistics (``divergence``). Methods: the GAN ensemble, the
interpolation baselines of ``evaluate.baselines`` (trilinear, tricubic; wrapping round
periodic axes) and, when the run has one, the MSE-only network (the pre-trained generator,
``<run>/mse_model.safetensors``). Slice plots (horizontal and vertical) show input, truth,
members and baselines. Everything goes into ``report.html`` and ``metrics.json``, with
``targets`` (the skill targets of the recipe's issue) evaluated where they apply.

Scoring rule: a voxel is scored when its truth is valid and its coarse input cell is valid;
every method is scored on exactly these voxels. Volumes are streamed one at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from geogan.core.atomic import check_writable
from geogan.core.errors import DataError
from geogan.evaluation.baselines import interpolate
from geogan.evaluation.evaluate import CRPS_ESTIMATOR, Evaluator
from geogan.evaluation.plots import plot_rank_histograms, plot_rapsd, plot_spectrum_ratio
from geogan.evaluation.report import to_jsonable, write_report
from geogan.recipes.volume import metrics as _metrics  # noqa: F401 - registers the metrics
from geogan.recipes.volume.build import MSE_EXPORT
from geogan.recipes.volume.config import VolumeConfig, per_axis
from geogan.recipes.volume.generate import (
    _inputs_from_test,
    generate_volume,
    load_export,
    prepare_input,
    tile_spec,
)
from geogan.recipes.volume.levels import VolumeNormaliser
from geogan.recipes.volume.metrics import DivergenceStats, divergence, divergence_valid
from geogan.recipes.volume.plots import plot_distributions, plot_divergence, plot_slices

__all__ = ["METRIC_SET", "RULE", "check_targets", "evaluate", "interpolate_volume"]

METRIC_SET = (
    "crps",
    "ensemble_mean_errors",
    "rapsd",
    {"spectrum_band": {"tol": 0.1}},
    "wasserstein",
    "rank_histogram",
    "spread_skill",
)

RULE = (
    "A voxel is scored when its truth value is valid and the coarse input cell that covers it "
    "is valid; every method (GAN members, MSE-only network, interpolations) is scored on "
    "exactly these voxels. Spectra fill unscored voxels with the volume's mean over scored ones."
)


def interpolate_volume(coarse: np.ndarray, factor, method: str, periodic) -> np.ndarray:
    """``coarse [C, *s] -> [C, *(s * factor)]`` by ``method``, wrapping round periodic axes.

    Periodic axes are padded circularly by 3 coarse cells (more than the cubic kernel's
    reach) before interpolating and cut back after, so the interpolation is that of the
    periodic field, not of one clamped at its edges.
    """
    pad = [3 if p and n > 1 else 0 for p, n in zip(periodic, coarse.shape[1:])]
    x = coarse
    for a, p in enumerate(pad):
        if p:
            x = np.concatenate(
                [x.take(range(-p, 0), axis=1 + a), x, x.take(range(p), axis=1 + a)], axis=1 + a
            )
    y = interpolate(x, tuple(factor), method, dims=3)
    sl = [slice(None)] + [
        slice(p * f, y.shape[1 + a] - p * f) for a, (p, f) in enumerate(zip(pad, factor))
    ]
    return y[tuple(sl)]


def _open(path: Path) -> xr.Dataset:
    if not path.exists():
        raise DataError(f"ensemble {path} not found; run 'geogan generate' first")
    engine = "zarr" if path.is_dir() or path.suffix == ".zarr" else None
    try:
        return xr.open_dataset(path, engine=engine)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read ensemble {path}: {exc}") from None


def _velocity(cfg: VolumeConfig, variables: list[str]) -> tuple[list[str], list[int]] | None:
    """Velocity components and the axes (negative indices) they point along, if any."""
    e = cfg.evaluate
    if e.velocity:
        axes = e.velocity_axes or ["x", "y", "z"][: len(e.velocity)]
        comps, names = list(e.velocity), list(axes)
    elif cfg.data.augment.vectors:
        vec = cfg.data.augment.vectors[0]
        comps, names = list(vec.components), list(vec.axes)
    else:
        return None
    if any(c not in variables for c in comps):
        raise DataError(f"evaluate.velocity {comps} are not all among the variables {variables}")
    return comps, [-1 - ("x", "y", "z").index(a) for a in names]


def check_targets(result: dict[str, Any], *, velocity: bool) -> dict[str, Any]:
    """The issue's skill targets, per variable: pass/fail with the values they compare.

    Spectrum ratio of the members within [0.9, 1.1] at every k up to Nyquist; tricubic below
    0.5 there (at Nyquist); W1 at most half tricubic's; CRPS at least 10% below the best
    interpolation's MAE; spread-skill in [0.7, 1.3]; mean |div| within 20% of the truth's.
    """
    out: dict[str, Any] = {}
    for var, res in result["variables"].items():
        m = res["methods"]
        gan, tric = m.get("gan", {}), m.get("tricubic", {})
        interps = [k for k in m if k in ("trilinear", "tricubic", "linear", "cubic", "lanczos")]
        best_mae = min((m[k]["mae"] for k in interps), default=float("nan"))
        checks = {
            "spectrum_ratio_in_band": (gan.get("ratio_min", np.nan) >= 0.9)
            and (gan.get("ratio_max", np.nan) <= 1.1),
            "tricubic_below_half_at_nyquist": tric.get("ratio_at_kmax", np.nan) < 0.5,
            "wasserstein_half_of_tricubic": gan.get("wasserstein", np.nan)
            <= 0.5 * tric.get("wasserstein", np.nan),
            "crps_10pct_below_best_mae": gan.get("crps", np.nan) <= 0.9 * best_mae,
            "spread_skill_in_range": 0.7 <= gan.get("ssr", np.nan) <= 1.3,
        }
        values = {
            "ratio_min": gan.get("ratio_min"),
            "ratio_max": gan.get("ratio_max"),
            "tricubic_ratio_at_kmax": tric.get("ratio_at_kmax"),
            "wasserstein": gan.get("wasserstein"),
            "wasserstein_tricubic": tric.get("wasserstein"),
            "crps": gan.get("crps"),
            "best_interpolation_mae": best_mae,
            "ssr": gan.get("ssr"),
        }
        out[var] = {"passed": {k: bool(v) for k, v in checks.items()}, "values": values}
    if velocity and "divergence" in result:
        ratio = result["divergence"].get("gan", {}).get("div_ratio", np.nan)
        out["divergence"] = {
            "passed": {"within_20pct": bool(abs(ratio - 1) <= 0.2)},
            "values": {"div_ratio": ratio},
        }
    out["all_passed"] = all(all(v["passed"].values()) for v in out.values() if isinstance(v, dict))
    return out


def evaluate(
    ensemble: str | Path,
    *,
    out: str | Path,
    overwrite: bool = False,
    overrides=(),
    progress: bool = True,
    mse_checkpoint: str | Path | None = None,
    **_: Any,
) -> dict[str, Any]:
    """Verify ``ensemble`` (from ``geogan generate`` with ``generate.input: test``); write the
    report folder ``out`` (``report.html``, ``metrics.json``, PNG figures)."""
    from geogan.recipes.config import run_config_from_dict

    ensemble = Path(ensemble)
    out = check_writable(Path(out), overwrite)
    ds = _open(ensemble)
    try:
        cfg = run_config_from_dict(
            json.loads(ds.attrs["geogan_config"]),
            source=f"ensemble {ensemble}",
            overrides=overrides,
        )
        if cfg.generate.input != "test":
            raise DataError(
                f"{ensemble} was generated from {cfg.generate.input}, which has no truth; "
                "evaluate ensembles generated with generate.input: test"
            )
        factor = tuple(int(f) for f in json.loads(str(ds.attrs["factor"])))
        vs, items = _inputs_from_test(cfg, factor)
        variables = vs.variables
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            raise DataError(f"{ensemble} lacks the variables {missing}")
        n_members = int(ds.sizes["member"])
        if ds.sizes[vs.sample_dim] != len(items):
            raise DataError(
                f"{ensemble} holds {ds.sizes[vs.sample_dim]} volumes but the test set has {len(items)}"
            )
        result = _score(cfg, ds, vs, items, factor, n_members, ensemble, mse_checkpoint, out)
    finally:
        ds.close()
    return result


def _score(cfg, ds, vs, items, factor, n_members, ensemble, mse_checkpoint, out):
    variables = vs.variables
    periodic = cfg.data.periodic()
    ev = cfg.evaluate
    baselines = [b for b in ev.baselines if b not in ("bilinear", "bicubic")]
    mse_path = (
        Path(mse_checkpoint) if mse_checkpoint else Path(ds.attrs["checkpoint"]).parent / MSE_EXPORT
    )
    mse = None
    if ev.mse_network and mse_path.exists():
        models, meta = load_export(mse_path)
        mse = (models["generator"], VolumeNormaliser.from_meta(meta), meta)
    methods = {"gan": n_members, **{b: 1 for b in baselines}}
    if mse is not None:
        methods["mse"] = 1
    evaluators = {
        v: Evaluator(ev, methods, metrics=list(METRIC_SET), dims=3, rule=RULE) for v in variables
    }
    velocity = _velocity(cfg, variables)
    div_metrics = None
    if velocity is not None:
        div_metrics = {
            name: DivergenceStats(axes=velocity[1], periodic=periodic, dims=3) for name in methods
        }
    rng = np.random.default_rng(0)
    dist: dict[str, dict[str, list]] = {v: {} for v in variables}
    div_samples: dict[str, list] = {}
    slices: dict[str, dict[str, np.ndarray]] = {}
    tile = per_axis(cfg.generate.tile, "generate.tile")
    for si, ((coarse, frac, valid_truth), vol) in enumerate(zip(items, vs.volumes)):
        truth = vol.data
        coarse_ok = frac > 0
        for a, f in enumerate(factor):
            coarse_ok = np.repeat(coarse_ok, f, axis=a)
        valid = valid_truth & coarse_ok
        ens = np.stack(
            [
                np.asarray(ds[v].isel({vs.sample_dim: si}).values, dtype=np.float32)
                for v in variables
            ],
            axis=1,
        )  # [M, C, *S]
        fields: dict[str, np.ndarray] = {"gan": ens}
        for b in baselines:
            fields[b] = interpolate_volume(coarse, factor, b, periodic)[None]
        if mse is not None:
            g, norm, meta = mse
            x = prepare_input(coarse, frac, norm, variables, bool(meta["with_mask"]))
            spec = tile_spec(g, coarse.shape[1:], tile, tuple(meta["periodic"]))
            y = generate_volume(
                g,
                x,
                factor=factor,
                seed=cfg.generate.seed + 7,
                member=0,
                spec=spec,
                periodic=tuple(meta["periodic"]),
            )
            fields["mse"] = norm.inverse_stack(y.numpy(), variables, channel_axis=0)[None]
        for c, v in enumerate(variables):
            t = np.where(valid, truth[c], np.nan)[None]
            fc = {
                name: (f[:, c][:, None] if methods[name] > 1 else f[0, c][None])
                for name, f in fields.items()
            }
            fc = {
                k: np.where(valid[None], a, 0.0)
                if k != "gan"
                else np.where(valid[None, None], a, 0.0)
                for k, a in fc.items()
            }
            evaluators[v].update(t, fc, valid[None])
            take = rng.choice(int(valid.sum()), size=min(20000, int(valid.sum())), replace=False)
            dist[v].setdefault("truth", []).append(truth[c][valid][take])
            for name, f in fields.items():
                dist[v].setdefault(name, []).append(f[0, c][valid][take])
        if div_metrics is not None:
            idx = [variables.index(comp) for comp in velocity[0]]
            tvec = np.where(valid[None], truth[idx], 0.0)[None]
            ok = divergence_valid(valid, velocity[1], periodic)
            d_t = divergence(list(tvec[0]), velocity[1], periodic)[ok]
            pick = rng.choice(d_t.size, size=min(50000, d_t.size), replace=False)
            div_samples.setdefault("truth", []).append(d_t[pick])
            for name, f in fields.items():
                vec = np.where(valid[None, None], f[:, idx], 0.0)
                div_metrics[name].update(
                    tvec, vec[:, None] if vec.shape[0] > 1 else vec, valid[None]
                )
                d = divergence(list(vec[0]), velocity[1], periodic)[ok]
                div_samples.setdefault(name, []).append(d[pick])
        if si == 0:
            for c, v in enumerate(variables):
                up = coarse[c]
                for a, f in enumerate(factor):
                    up = np.repeat(up, f, axis=a)
                panels = {"input": up, "truth": np.where(valid_truth, truth[c], np.nan)}
                for m in range(min(ev.slice_members, n_members)):
                    panels[f"member {m}"] = np.where(valid_truth, ens[m, c], np.nan)
                for name, f in fields.items():
                    if name != "gan":
                        panels[name] = np.where(valid_truth, f[0, c], np.nan)
                slices[v] = panels
    per_var = {v: evaluators[v].finalize() for v in variables}
    result: dict[str, Any] = {
        "rule": RULE,
        "crps_estimator": CRPS_ESTIMATOR,
        "ensemble": str(ensemble),
        "members": n_members,
        "volumes": len(items),
        "factor": list(factor),
        "note": vs.note,
        "variables": per_var,
    }
    if div_metrics is not None:
        result["divergence"] = {name: m.finalize() for name, m in div_metrics.items()}
        result["divergence_components"] = {"components": velocity[0], "axes": velocity[1]}
    result["targets"] = check_targets(result, velocity=div_metrics is not None)
    # one table: rows "<variable>: <metric>", columns = methods
    table: dict[str, dict[str, Any]] = {name: {} for name in methods}
    for v, res in per_var.items():
        for name, scalars in res["methods"].items():
            for key, value in scalars.items():
                if key != "members":
                    table[name][f"{v}: {key}"] = value
    if div_metrics is not None:
        for name, d in result["divergence"].items():
            for key in ("mean_abs_div", "div_ratio"):
                table[name][f"divergence: {key}"] = d[key]
    result["methods"] = table
    result["n_times"] = len(items)
    result["n_valid"] = int(per_var[variables[0]].get("n_valid", 0) or 0)
    figures = _figures(out, per_var, dist, div_samples, slices, vs.units)
    notes = [
        f"Data: {vs.note}. Factor {list(factor)}; {n_members} members per volume.",
        "Methods: gan = the EMA generator's ensemble; mse = the MSE-only network (pre-training "
        "stage exported on its own; one field); trilinear/tricubic = interpolations of the "
        "coarse input (periodic axes wrapped).",
        "Targets: " + json.dumps(to_jsonable(result["targets"])),
    ]
    write_report(out, result, figures, title=f"geogan volume verification: {cfg.name}", notes=notes)
    return {
        "report": str(out / "report.html"),
        "metrics": str(out / "metrics.json"),
        "targets": result["targets"],
    }


def _figures(out: Path, per_var, dist, div_samples, slices, units) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    for v, res in per_var.items():
        curves = res["curves"]
        truth_curves = res["truth"]
        spectra = {k: c["rapsd"] for k, c in curves.items() if "rapsd" in c}
        ratios = {k: c["rapsd_ratio"] for k, c in curves.items() if "rapsd_ratio" in c}
        figures[f"{v}: 3D power spectra"] = plot_rapsd(
            out / f"spectra_{v}.png",
            truth_curves["rapsd_k"],
            truth_curves["rapsd"],
            spectra,
            units=units.get(v, ""),
            title=f"{v}: radially averaged 3D power spectrum",
        )
        figures[f"{v}: spectrum ratio P_method / P_truth (target band 0.9-1.1)"] = (
            plot_spectrum_ratio(
                out / f"spectrum_ratio_{v}.png",
                truth_curves["rapsd_k"],
                ratios,
                title=f"{v}: power ratio to the truth",
            )
        )
        ranks = {k: c["rank_histogram"] for k, c in curves.items() if "rank_histogram" in c}
        if ranks:
            figures[f"{v}: rank histogram"] = plot_rank_histograms(
                out / f"rank_{v}.png", ranks, title=f"{v}: rank of the truth among the members"
            )
        if v in slices:
            figures[f"{v}: slices of the first volume"] = plot_slices(
                out / f"slices_{v}.png", slices[v], variable=v, units=units.get(v, "")
            )
    joined = {v: {k: np.concatenate(a) for k, a in d.items()} for v, d in dist.items()}
    figures["value distributions"] = plot_distributions(
        out / "distributions.png", joined, units=units
    )
    if div_samples:
        figures["divergence of the velocity (per grid cell)"] = plot_divergence(
            out / "divergence.png", {k: np.concatenate(a) for k, a in div_samples.items()}
        )
    return figures
