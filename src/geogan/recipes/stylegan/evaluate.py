"""``geogan evaluate`` for recipe 5: enriched ensembles against held-out real members.

For every ensemble of an enriched file (``geogan perturb``), the real members of the same
date and lead time that were *not* used for conditioning are the truth. Three methods are
scored on them, per variable:

- ``enriched``: the file's members;
- ``conditioning``: the N conditioning members alone;
- ``linear_combination``: random linear combinations of the conditioning anomalies with
  their spread (:func:`~geogan.recipes.stylegan.baselines.linear_combinations`), as many
  members as the enriched ensemble.

Each held-out member is one truth (the forecasts are scored against each in turn): CRPS
(ecdf and fair; only the fair one compares ensembles of different sizes), rank
histograms and their flatness, spread-skill ratio, ensemble-mean errors; against the
held-out members as an ensemble: per-pixel and multi-scale Wasserstein distances,
correlation length scales, and power spectra of the members (full fields and
perturbations about the ensemble mean). Everything goes into ``report.html`` and
``metrics.json``.

Rank-histogram flatness (comparable across ensemble sizes): ``rank_cdf_rms``, the
root-mean-square over the ``M`` inner bin edges ``u = k / (M + 1)`` of the difference
between the cumulative rank frequency and ``u`` (0 for a flat histogram; a U shape or a
hump gives a large value whatever M); and Candille & Talagrand's ``rank_delta``
(``sum_i (n_i - n / (M + 1))^2 / (n M / (M + 1))``, 1 for a reliable ensemble of
independent cases, larger when pixels are correlated).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from geogan.core.atomic import atomic_write_text, check_writable
from geogan.core.errors import ConfigError, DataError
from geogan.core.seeding import derive_seed
from geogan.evaluation.distributions import PixelWasserstein
from geogan.evaluation.metrics import CRPS, EnsembleMeanErrors, RankHistogram, SpreadSkill, rapsd
from geogan.evaluation.report import to_jsonable, write_report
from geogan.recipes.stylegan.baselines import linear_combinations
from geogan.recipes.stylegan.metrics import CorrelationLength, MultiscalePixelWasserstein
from geogan.recipes.stylegan.perturb import PERTURB_FORMAT
from geogan.recipes.stylegan.workflow import group_members

__all__ = ["evaluate", "rank_flatness", "spectrum_deviation"]

METHODS = ("enriched", "conditioning", "linear_combination")
_CRPS_PIXELS = 2048  # pixels per CRPS update: the ecdf estimator holds M x M x pixels floats


def rank_flatness(freq: list[float] | np.ndarray, n: int) -> dict[str, float]:
    """``rank_cdf_rms`` and ``rank_delta`` of a normalised rank histogram (module docstring)."""
    f = np.asarray(freq, dtype=np.float64)
    m = f.size - 1
    cdf = np.cumsum(f)[:-1]
    u = np.arange(1, m + 1) / (m + 1)
    counts = f * n
    delta = float(((counts - n / (m + 1)) ** 2).sum() / (n * m / (m + 1))) if n > 0 else np.nan
    return {"rank_cdf_rms": float(np.sqrt(np.mean((cdf - u) ** 2))), "rank_delta": delta}


def spectrum_deviation(p_method: np.ndarray, p_ref: np.ndarray) -> float:
    """``max_k>=1 |P_method(k) / P_ref(k) - 1|`` (0: identical spectra)."""
    k = np.arange(p_ref.size)
    sel = (k >= 1) & (p_ref > 0)
    return float(np.max(np.abs(p_method[sel] / p_ref[sel] - 1.0)))


class _Spectra:
    """Mean RAPSD of members (full fields) and of perturbations about the ensemble mean
    (with the M / (M - 1) correction, so ensembles of different sizes compare)."""

    def __init__(self) -> None:
        self.full: list[np.ndarray] = []
        self.pert: list[np.ndarray] = []

    def add(self, members: np.ndarray) -> None:
        m = members.shape[0]
        self.full.append(rapsd(members))
        if m > 1:
            pert = members - members.mean(axis=0, keepdims=True)
            self.pert.append(rapsd(pert) * m / (m - 1))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return np.mean(self.full, axis=0), np.mean(self.pert, axis=0)


def _open(path: Path) -> xr.Dataset:
    if not path.exists():
        raise DataError(f"ensemble {path} not found; run 'geogan perturb' first")
    engine = "zarr" if path.is_dir() or path.suffix == ".zarr" else None
    try:
        return xr.open_dataset(path, engine=engine)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read ensemble {path} ({exc})") from None


def evaluate(
    ensemble: str | Path,
    *,
    out: str | Path,
    overwrite: bool = False,
    overrides=(),
    **_: Any,
) -> dict[str, Any]:
    """Score an enriched file against its held-out members; writes the report folder ``out``."""
    from geogan.recipes.config import run_config_from_dict
    from geogan.recipes.stylegan.data import load_samples

    ensemble = Path(ensemble)
    out = check_writable(out, overwrite)
    with _open(ensemble) as ds:
        if ds.attrs.get("format") != PERTURB_FORMAT:
            raise ConfigError(
                f"{ensemble} is not an enriched ensemble of 'geogan perturb' (unconditional "
                "samples have no held-out members to be scored against); evaluate the output of "
                "geogan perturb"
            )
        cfg = run_config_from_dict(
            json.loads(ds.attrs["geogan_config"]),
            source=f"ensemble {ensemble}",
            overrides=list(overrides or []),
        )
        variables = [v for v in ds.data_vars if v != "conditioning_member"]
        enriched = np.stack([ds[v].values for v in variables], axis=2)  # [M, T, C, H, W]
        cond_members = ds["conditioning_member"].values
        dates = pd.to_datetime(ds["time"].values)
        leads = ds["lead_time"].values.astype(np.float64)
        units = {v: str(ds[v].attrs.get("units", "")) for v in variables}
        rule = ds.attrs.get("rule", "")
    ev = cfg.evaluate
    periodic = ev.periodic_x
    if periodic is None:
        from geogan.recipes.stylegan.build import is_periodic_x

        periodic = is_periodic_x(cfg.model.padding_mode)
    samples = load_samples(cfg.data)
    if list(samples.variables) != variables:
        raise DataError(
            f"{ensemble} holds {variables} but the config's data give {samples.variables}; "
            "evaluate with the data the ensemble was made for"
        )
    n_members = enriched.shape[0]
    k_base = ev.baseline_members or n_members
    metrics = {
        (method, c): {
            "crps": CRPS(),
            "rank": RankHistogram(seed=derive_seed(ev.seed, c)),
            "ssr": SpreadSkill(),
            "errors": EnsembleMeanErrors(),
            "pw": PixelWasserstein(),
            "mpw": MultiscalePixelWasserstein(scales=ev.wasserstein_scales),
            "cl": CorrelationLength(periodic_last=periodic),
            "spec": _Spectra(),
        }
        for method in METHODS
        for c in range(len(variables))
    }
    real_spectra = {c: _Spectra() for c in range(len(variables))}
    cases = []
    for e, (date, lead) in enumerate(zip(dates, leads)):
        rows, members = group_members(samples, date, float(lead))
        cond = [int(m) for m in cond_members[e] if m >= 0]
        held = [r for r, m in zip(rows, members) if m not in cond]
        cond_rows = [r for r, m in zip(rows, members) if m in cond]
        if not held:
            raise DataError(
                f"{date} lead time {lead:g} h: every real member ({members}) was used for "
                "conditioning, so none is left to score against; invert fewer members"
            )
        if len(cond_rows) != len(cond):
            raise DataError(
                f"conditioning members {cond} of {date} are not all in {samples.source}"
            )
        truth = samples.stack(held)  # [R, C, H, W]
        conditioning = samples.stack(cond_rows)
        forecasts = {
            "enriched": enriched[:, e],
            "conditioning": conditioning,
            "linear_combination": linear_combinations(
                conditioning, k_base, derive_seed(ev.seed, 7, e)
            ),
        }
        cases.append(
            {
                "date": str(date),
                "lead_time": float(lead),
                "held_out": len(held),
                "conditioning": cond,
            }
        )
        for c in range(len(variables)):
            ref = truth[:, None, c]  # [R, 1, H, W]
            real_spectra[c].add(truth[:, c])
            for method, fc_all in forecasts.items():
                fc = fc_all[:, None, c].astype(np.float64)  # [M, 1, H, W]
                mt = metrics[(method, c)]
                flat = fc.reshape(fc.shape[0], 1, -1)
                for r in range(ref.shape[0]):
                    y = ref[r]
                    yf = y.reshape(1, -1)
                    for lo in range(0, yf.shape[1], _CRPS_PIXELS):
                        sl = slice(lo, lo + _CRPS_PIXELS)
                        mt["crps"].update(yf[:, sl][:, :, None], flat[:, :, sl][..., None])
                    mt["rank"].update(y, fc)
                    mt["ssr"].update(y, fc)
                    mt["errors"].update(y, fc)
                mt["pw"].update(ref, fc)
                mt["mpw"].update(ref, fc)
                mt["cl"].update(ref, fc)
                mt["spec"].add(fc[:, 0])
    table: dict[str, dict[str, float]] = {m: {} for m in METHODS}
    curves: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for c, var in enumerate(variables):
        p_real_full, p_real_pert = real_spectra[c].result()
        curves[var] = {"real_spectrum": p_real_full, "real_perturbation_spectrum": p_real_pert}
        for method in METHODS:
            mt = metrics[(method, c)]
            row = {}
            row.update(mt["crps"].finalize())
            rank = mt["rank"].finalize()
            row.update(rank_flatness(rank["rank_histogram"], rank["rank_n"]))
            row["rank_max_ratio"] = rank["rank_max_ratio"]
            row.update(mt["ssr"].finalize())
            row.update(mt["errors"].finalize())
            row.update(mt["pw"].finalize())
            row.update(mt["mpw"].finalize())
            row.update(mt["cl"].finalize())
            p_full, p_pert = mt["spec"].result()
            row["spectrum_max_dev"] = spectrum_deviation(p_full, p_real_full)
            row["perturbation_spectrum_max_dev"] = spectrum_deviation(p_pert, p_real_pert)
            row["members"] = int(mt["crps"].members or 0)
            for key, value in row.items():
                if key in ("n_valid", "n_pixel_wasserstein"):
                    continue
                table[method][f"{key} [{var}]"] = value
            curves[var][method] = {
                "rank_histogram": rank["rank_histogram"],
                "spectrum": p_full,
                "perturbation_spectrum": p_pert,
            }
        en, co, lc = (table[m] for m in METHODS)
        checks[var] = {
            "fair_crps_at_least_as_good_as_conditioning": en[f"crps_fair [{var}]"]
            <= co[f"crps_fair [{var}]"],
            "fair_crps_at_least_as_good_as_linear_combination": en[f"crps_fair [{var}]"]
            <= lc[f"crps_fair [{var}]"],
            "rank_flatter_than_conditioning": en[f"rank_cdf_rms [{var}]"]
            < co[f"rank_cdf_rms [{var}]"],
            "ssr_closer_to_1_than_conditioning": abs(en[f"ssr [{var}]"] - 1)
            < abs(co[f"ssr [{var}]"] - 1),
            "member_spectra_within_10pct": en[f"spectrum_max_dev [{var}]"] <= 0.10,
            "perturbation_spectra_within_10pct": en[f"perturbation_spectrum_max_dev [{var}]"]
            <= 0.10,
        }
    out.mkdir(parents=True, exist_ok=True)
    figures = _figures(out, variables, curves, units)
    result = {
        "methods": table,
        "checks": checks,
        "cases": cases,
        "rule": rule,
        "curves": curves,
        "ensemble": str(ensemble),
        "rank_flatness_measure": (
            "rank_cdf_rms: RMS over the M inner bin edges u = k / (M + 1) of (cumulative rank "
            "frequency - u); rank_delta: Candille & Talagrand's delta"
        ),
    }
    notes = [
        f"Ensemble {ensemble.name}: {n_members} enriched members per ensemble ({rule}), "
        f"{len(cases)} ensembles; truth = each held-out real member in turn "
        f"({sum(c['held_out'] for c in cases)} member-fields).",
        "Methods: enriched (this file), conditioning (the members the enrichment started "
        "from), linear_combination (random linear combinations of the conditioning anomalies "
        "with their spread, as many members as the enriched ensemble).",
        "Only the fair CRPS compares ensembles of different sizes (the ecdf CRPS penalises "
        "small ensembles by E|X - X'| / 2M). " + result["rank_flatness_measure"] + ".",
        "spectrum_max_dev: max over wavenumbers k >= 1 of |P_method(k) / P_real(k) - 1| for "
        "the members' full fields; perturbation_spectrum_max_dev: the same for members minus "
        "their ensemble mean (scaled by M / (M - 1)).",
        "Checks: " + json.dumps(to_jsonable(checks)),
    ]
    report = write_report(
        out,
        to_jsonable(result),
        figures,
        title=f"geogan stylegan: enriched ensemble {ensemble.name}",
        notes=notes,
    )
    summary = {
        "report": str(report),
        "ensembles": len(cases),
        "members": n_members,
        "checks": checks,
        "crps_fair": {
            var: {m: table[m][f"crps_fair [{var}]"] for m in METHODS} for var in variables
        },
    }
    atomic_write_text(out / "summary.json", json.dumps(to_jsonable(summary), indent=2))
    return summary


def _figures(out: Path, variables, curves, units) -> dict[str, Path]:
    from geogan.evaluation.plots import plot_rank_histograms, plot_rapsd, plot_spectrum_ratio

    figures: dict[str, Path] = {}
    for var in variables:
        cv = curves[var]
        figures[f"rank histograms of the held-out members, {var}"] = plot_rank_histograms(
            out / f"rank_{var}.png",
            {m: cv[m]["rank_histogram"] for m in METHODS},
            title=var,
        )
        k = np.arange(len(cv["real_perturbation_spectrum"]))
        figures[f"perturbation spectra (member - ensemble mean), {var}"] = plot_rapsd(
            out / f"spectrum_pert_{var}.png",
            k,
            cv["real_perturbation_spectrum"],
            {m: cv[m]["perturbation_spectrum"] for m in METHODS},
            units=units.get(var, ""),
            title=f"{var}: perturbations (truth = held-out members)",
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = {
                m: (np.asarray(cv[m]["spectrum"]) / np.asarray(cv["real_spectrum"])).tolist()
                for m in METHODS
            }
        figures[f"member spectrum ratio to the held-out members, {var}"] = plot_spectrum_ratio(
            out / f"spectrum_ratio_{var}.png", k, ratios, title=var
        )
    return figures
