"""Verification of downscaling ensembles and baselines on one scoring mask (recipe 1).

:class:`Evaluator` streams chunks of time steps through the metrics of
:mod:`geogan.evaluation.metrics` for every method; :func:`evaluate` runs it over
whole arrays (numpy, memory-mapped or dask-backed: only ``chunk_size`` time
steps are loaded at a time); :func:`evaluate_dataarrays` does the same for
xarray DataArrays.

Scoring rule: a pixel is scored when its truth is valid AND the coarse input
pixel that produced it is valid (:func:`scoring_mask`); every method, network
or baseline, is scored on exactly these pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from geogan.config.schema import EvaluateConfig
from geogan.core.errors import DataError
from geogan.evaluation.baselines import BASELINES, coarse_valid_mask
from geogan.evaluation.metrics import (
    CRPS,
    FSS,
    RAPSD,
    EnsembleMeanErrors,
    PooledCRPS,
    RankHistogram,
    SpreadSkill,
    StreamingMetric,
    detect_precision,
    prepare,
)

__all__ = [
    "CRPS_ESTIMATOR",
    "SCORING_RULE",
    "Evaluator",
    "evaluate",
    "evaluate_dataarrays",
    "scoring_mask",
]

SCORING_RULE = (
    "A pixel is scored when its truth value is valid (finite) and the coarse input pixel that "
    "produced it is valid; every method (network ensembles and interpolation baselines alike) is "
    "scored on exactly this set of pixels. Pooled CRPS uses only pooling windows whose pixels are "
    "all valid; spectra fill the unscored pixels of each field with that field's mean over "
    "scored pixels; FSS neighbourhoods count scored pixels only."
)

CRPS_ESTIMATOR = (
    "CRPS is the ensemble CRPS of the empirical CDF of the members ('ecdf' in "
    "scores.probability.crps_for_ensemble: mean|x_i - y| - sum_ij|x_i - x_j| / (2 M^2)); this is "
    "the headline 'crps'. 'crps_fair' is Ferro's (2014) fair estimator (denominator 2 M (M - 1)), "
    "which removes the penalty a small ensemble pays for its size. For a deterministic forecast "
    "both equal its mean absolute error."
)


def scoring_mask(truth: np.ndarray, coarse: np.ndarray, factor: int) -> np.ndarray:
    """The scoring mask ``[T, H, W]`` bool: truth finite AND its coarse input pixel finite.

    ``truth [T, H, W]`` (NaN where missing), ``coarse [T, h, w]`` the coarse
    input of the target variable, ``H = factor * h``.
    """
    truth = np.asarray(truth)
    coarse = np.asarray(coarse)
    from_coarse = coarse_valid_mask(coarse, factor)
    if from_coarse.shape != truth.shape:
        raise DataError(
            f"coarse {coarse.shape} times factor {factor} gives {from_coarse.shape}, "
            f"but truth is {truth.shape}; check the factor and the grids"
        )
    return np.isfinite(truth) & from_coarse


def _members(forecast_shape: tuple[int, ...], truth_ndim: int) -> int:
    if len(forecast_shape) == truth_ndim:
        return 1
    if len(forecast_shape) == truth_ndim + 1:
        return int(forecast_shape[0])
    raise DataError(
        f"a forecast must be [M, T, H, W] or [T, H, W], got shape {tuple(forecast_shape)}"
    )


class Evaluator:
    """Streaming evaluation of several methods against one truth.

    Args:
        cfg: thresholds, FSS scales and pooling windows.
        members: method name -> number of members (1 for a deterministic forecast).
        seed: seed of the rank-histogram tie breaking.
        ties: rank-histogram tie rule (``"random"`` or ``"split"``).
        rapsd_fill: how spectra fill unscored pixels (``"mean"`` or ``"zero"``).
        min_valid_fraction: pooled-CRPS window rule (1.0: fully valid windows only).

    Call :meth:`update` with consecutive chunks of time steps, then :meth:`finalize`.
    """

    def __init__(
        self,
        cfg: EvaluateConfig,
        members: Mapping[str, int],
        *,
        seed: int = 0,
        ties: str = "random",
        rapsd_fill: str = "mean",
        min_valid_fraction: float = 1.0,
    ) -> None:
        if not members:
            raise DataError("nothing to evaluate: give at least one forecast or baseline")
        self.cfg = cfg
        self.members = dict(members)
        self.metrics: dict[str, list[StreamingMetric]] = {}
        for name, m in self.members.items():
            metrics: list[StreamingMetric] = [
                CRPS(),
                PooledCRPS(windows=cfg.pool_windows, min_valid_fraction=min_valid_fraction),
                EnsembleMeanErrors(),
                FSS(thresholds=cfg.thresholds, scales=cfg.fss_scales),
                RAPSD(fill=rapsd_fill),  # type: ignore[arg-type]
            ]
            if m >= 2:
                metrics += [RankHistogram(ties=ties, seed=seed), SpreadSkill()]  # type: ignore[arg-type]
            self.metrics[name] = metrics
        self.n_times = 0
        # "auto" is resolved from the first chunk of truth, before any metric sees data
        self._precision_pending = cfg.rank_precision == "auto"
        if isinstance(cfg.rank_precision, float):
            self._set_precision(cfg.rank_precision)

    def _set_precision(self, q: float | None) -> None:
        for metrics in self.metrics.values():
            for metric in metrics:
                if isinstance(metric, RankHistogram):
                    metric.precision = q
        self._precision_pending = False

    def update(
        self, truth: np.ndarray, forecasts: Mapping[str, np.ndarray], valid: np.ndarray
    ) -> None:
        """Add a chunk: truth ``[T, H, W]``, forecasts name -> ``[M, T, H, W]`` / ``[T, H, W]``, valid ``[T, H, W]``."""
        missing = set(self.metrics) - set(forecasts)
        extra = set(forecasts) - set(self.metrics)
        if missing or extra:
            raise DataError(
                f"forecasts must be exactly {sorted(self.metrics)}; missing {sorted(missing)}, extra {sorted(extra)}"
            )
        if self._precision_pending:
            self._set_precision(detect_precision(np.asarray(truth)[np.asarray(valid, dtype=bool)]))
        for name, fc in forecasts.items():
            t, f, v = prepare(truth, fc, valid)  # one shape/finiteness check per method
            for metric in self.metrics[name]:
                metric._check_members(f.shape[0])
                metric._update(t, f, v)
        self.n_times += np.asarray(truth).shape[0] if np.ndim(truth) == 3 else 1

    def finalize(self) -> dict[str, Any]:
        """The result dict; see :func:`evaluate`."""
        methods: dict[str, dict[str, Any]] = {}
        curves: dict[str, dict[str, Any]] = {}
        truth_spectrum: dict[str, Any] = {}
        n_valid = 0
        for name, metrics in self.metrics.items():
            scalars: dict[str, Any] = {"members": self.members[name]}
            curve: dict[str, Any] = {}
            for metric in metrics:
                for key, value in metric.finalize().items():
                    if key in ("rapsd_truth", "rapsd_k"):
                        truth_spectrum[key.replace("rapsd_", "")] = value
                    elif isinstance(value, (int, float)):
                        scalars[key] = value
                    else:
                        curve[key] = value
            n_valid = int(scalars.get("n_valid", n_valid))
            methods[name] = scalars
            curves[name] = curve
        return {
            "rule": SCORING_RULE,
            "crps_estimator": CRPS_ESTIMATOR,
            "n_times": self.n_times,
            "n_valid": n_valid,
            "config": self.cfg.model_dump(mode="json"),
            "methods": methods,
            "curves": curves,
            "truth": {
                "rapsd_k": truth_spectrum.get("k", []),
                "rapsd": truth_spectrum.get("truth", []),
            },
        }


def evaluate(
    truth: np.ndarray,
    forecasts: Mapping[str, np.ndarray],
    valid: np.ndarray | None,
    cfg: EvaluateConfig | None = None,
    *,
    coarse: np.ndarray | None = None,
    factor: int | None = None,
    nonnegative: bool = False,
    chunk_size: int = 8,
    seed: int = 0,
    ties: str = "random",
    rapsd_fill: str = "mean",
) -> dict[str, Any]:
    """Verify forecasts against the truth on the scoring mask.

    Args:
        truth: ``[T, H, W]`` in physical units (e.g. mm/h), NaN where missing.
        forecasts: name -> ``[M, T, H, W]`` ensemble or ``[T, H, W]`` deterministic forecast.
        valid: ``[T, H, W]`` bool scoring mask (see :func:`scoring_mask`), or None to
            build it chunk by chunk: :func:`scoring_mask` with ``coarse``, else finite truth.
        cfg: verification settings (default ``EvaluateConfig()``).
        coarse: ``[T, h, w]`` coarse input of the target variable; when given, the
            baselines named in ``cfg.baselines`` are computed from it (chunk by chunk)
            and scored too, and ``valid`` is checked against the scoring rule.
        factor: downscaling factor (``H = factor * h``); needed with ``coarse``.
        nonnegative: clip baselines at 0 (precipitation).
        chunk_size: time steps loaded and scored at a time.
        seed, ties, rapsd_fill: see :class:`Evaluator`.

    Returns:
        ``{"rule": str, "crps_estimator": str, "n_times", "n_valid", "config",
        "methods": {name: {metric: float}}, "curves": {name: {"rank_histogram": [...],
        "rapsd": [...], "fss": {...}, ...}}, "truth": {"rapsd_k": [...], "rapsd": [...]}}``.
    """
    cfg = cfg or EvaluateConfig()
    t_len = int(np.shape(truth)[0]) if np.ndim(truth) == 3 else -1
    if t_len < 0:
        raise DataError(f"truth must be [T, H, W], got shape {np.shape(truth)}")
    members = {name: _members(np.shape(fc), 3) for name, fc in forecasts.items()}
    baselines: list[str] = []
    if coarse is not None:
        if factor is None:
            raise DataError("evaluate(coarse=...) needs the downscaling factor")
        baselines = list(cfg.baselines)
        clash = set(baselines) & set(members)
        if clash:
            raise DataError(f"forecast names {sorted(clash)} clash with baselines; rename them")
        members.update({b: 1 for b in baselines})
        if np.shape(coarse)[0] != t_len:
            raise DataError(f"coarse has {np.shape(coarse)[0]} time steps but truth has {t_len}")
    evaluator = Evaluator(cfg, members, seed=seed, ties=ties, rapsd_fill=rapsd_fill)
    for t0 in range(0, t_len, max(1, int(chunk_size))):
        sl = slice(t0, min(t0 + chunk_size, t_len))
        truth_c = np.asarray(truth[sl])
        chunk: dict[str, np.ndarray] = {}
        for name, fc in forecasts.items():
            chunk[name] = np.asarray(fc[sl] if members[name] == 1 else fc[:, sl])
        valid_c = np.isfinite(truth_c) if valid is None else np.asarray(valid[sl], dtype=bool)
        if coarse is not None:
            coarse_c = np.asarray(coarse[sl])
            rule = scoring_mask(truth_c, coarse_c, int(factor))  # type: ignore[arg-type]
            if valid is None:
                valid_c = rule
            elif (valid_c & ~rule).any():
                raise DataError(
                    "the valid mask scores pixels whose truth or coarse input pixel is missing; "
                    "build it with geogan.evaluation.evaluate.scoring_mask(truth, coarse, factor)"
                )
            for b in baselines:
                chunk[b] = BASELINES[b](coarse_c, int(factor), nonnegative=nonnegative)  # type: ignore[arg-type]
        evaluator.update(truth_c, chunk, valid_c)
    return evaluator.finalize()


def evaluate_dataarrays(
    truth: Any,
    forecasts: Mapping[str, Any],
    valid: Any = None,
    cfg: EvaluateConfig | None = None,
    *,
    coarse: Any = None,
    factor: int | None = None,
    time_dim: str = "time",
    member_dim: str = "member",
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`evaluate` for ``xarray.DataArray`` inputs (lazy/dask arrays are loaded chunk by chunk).

    ``truth``: dims ``(time_dim, y, x)`` in any order (the two non-time dims are
    the grid, kept in their order); ``forecasts``: the same dims plus
    ``member_dim`` for ensembles; ``valid``: like truth, or None to build it chunk by chunk from
    ``truth`` and ``coarse`` with :func:`scoring_mask` (finite truth when no
    coarse field is given); ``coarse``: ``(time_dim, y', x')``.
    """
    if time_dim not in truth.dims or truth.ndim != 3:
        raise DataError(f"truth must have 3 dims including {time_dim!r}, got {truth.dims}")
    grid = [d for d in truth.dims if d != time_dim]
    order = (time_dim, *grid)

    def data(da: Any, ens: bool = False) -> Any:
        dims = ((member_dim,) if ens else ()) + order
        if set(da.dims) != set(dims):
            raise DataError(f"expected dims {dims}, got {da.dims}")
        return da.transpose(*dims).data

    truth_a = data(truth)
    fc = {name: data(da, ens=member_dim in da.dims) for name, da in forecasts.items()}
    coarse_a = None
    if coarse is not None:
        coarse_grid = [d for d in coarse.dims if d != time_dim]
        coarse_a = coarse.transpose(time_dim, *coarse_grid).data
    valid_a = None if valid is None else data(valid)
    return evaluate(truth_a, fc, valid_a, cfg, coarse=coarse_a, factor=factor, **kwargs)
