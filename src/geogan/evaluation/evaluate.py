"""Verification of ensembles and baselines against one truth on one scoring mask, any spatial rank.

:class:`Evaluator` streams chunks of time steps through a set of metrics from
:data:`geogan.core.registry.METRICS` (named by the caller: each recipe names its
metric set) for every method; :func:`evaluate` runs it over whole arrays (numpy,
memory-mapped or dask-backed: only ``chunk_size`` time steps are loaded at a
time); :func:`evaluate_dataarrays` does the same for xarray DataArrays. Fields
are ``[T, *S]`` with 2D ``S = (H, W)`` or 3D ``S = (D, H, W)``.

With a coarse input (``coarse=``, ``factor=``), interpolation baselines computed
from it are scored too, and the scoring rule is: a pixel is scored when its truth
is valid AND the coarse input pixel that covers it is valid (:func:`scoring_mask`);
every method, network or baseline, is scored on exactly these pixels.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from geogan.config.schema import EvaluateConfig
from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import METRICS
from geogan.evaluation import distributions as _distributions  # noqa: F401  (registers metrics)
from geogan.evaluation.baselines import coarse_valid_mask, interpolate, method_for_rank
from geogan.evaluation.distributions import prepare_reference
from geogan.evaluation.metrics import (
    StreamingMetric,
    check_dims,
    explain_precision,
    prepare,
    spatial_names,
)

__all__ = [
    "CRPS_ESTIMATOR",
    "DEFAULT_METRICS",
    "SCORING_RULE",
    "Evaluator",
    "MetricSpec",
    "build_metrics",
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

#: the standard ensemble verification set, used when a caller names none
DEFAULT_METRICS: tuple[str, ...] = (
    "crps",
    "pooled_crps",
    "ensemble_mean_errors",
    "fss",
    "rapsd",
    "rank_histogram",
    "spread_skill",
)

#: a metric name, or ``{name: constructor kwargs}``
MetricSpec = str | Mapping[str, Mapping[str, Any]]


def scoring_mask(
    truth: np.ndarray, coarse: np.ndarray, factor: int | Sequence[int], *, dims: int = 2
) -> np.ndarray:
    """The scoring mask ``[T, *S]`` bool: truth finite AND its coarse input pixel finite.

    ``truth [T, *S]`` (NaN where missing), ``coarse [T, *s]`` the coarse input of the
    target variable, ``S = factor * s`` per axis (``factor``: one int or one per
    spatial axis); ``dims``: number of spatial axes (2: ``[T, H, W]``).
    """
    truth = np.asarray(truth)
    coarse = np.asarray(coarse)
    from_coarse = coarse_valid_mask(coarse, factor, dims=dims)
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
    names = spatial_names(truth_ndim - 1)
    raise DataError(
        f"a forecast must be [M, T, {names}] or [T, {names}], got shape {tuple(forecast_shape)}"
    )


def _parse_specs(specs: Sequence[MetricSpec] | Mapping[str, Any]) -> list[tuple[str, dict]]:
    """``[(name, kwargs)]`` from names, ``{name: kwargs}`` items, or one ``{name: kwargs}`` mapping."""
    if isinstance(specs, Mapping):
        specs = [{name: kwargs} for name, kwargs in specs.items()]
    if isinstance(specs, str):
        specs = [specs]
    out: list[tuple[str, dict]] = []
    for spec in specs:
        if isinstance(spec, str):
            items = [(spec, {})]
        elif isinstance(spec, Mapping) and len(spec) == 1:
            items = [(str(k), dict(v or {})) for k, v in spec.items()]
        else:
            raise ConfigError(f"a metric is a name or {{name: {{argument: value}}}}, got {spec!r}")
        for name, kwargs in items:
            METRICS.get(name)  # unknown names: a ConfigError naming the closest
            if any(name == n for n, _ in out):
                raise ConfigError(f"metric {name!r} is named twice; give it once")
            out.append((name, kwargs))
    if not out:
        raise ConfigError("no metrics to compute: name at least one")
    return out


def build_metrics(
    specs: Sequence[MetricSpec] | Mapping[str, Any],
    cfg: EvaluateConfig | None = None,
    *,
    members: int = 2,
    dims: int = 2,
    **options: Any,
) -> list[StreamingMetric]:
    """Instances of the metrics ``specs`` names, for a method with ``members`` members.

    Each metric's constructor arguments come from, in increasing priority: its
    ``config_fields`` read from ``cfg`` (e.g. FSS thresholds and scales); ``options``
    whose name the constructor takes (e.g. ``seed``, ``ties``, ``fill``,
    ``min_valid_fraction``); ``dims``; and the kwargs of the spec itself. Metrics that
    need an ensemble (``needs_ensemble``) are left out for ``members < 2``. A
    ``precision`` of ``"auto"`` is kept as the string; the :class:`Evaluator` resolves it.
    """
    cfg = cfg or EvaluateConfig()
    dims = check_dims(dims)
    out: list[StreamingMetric] = []
    for name, spec_kwargs in _parse_specs(specs):
        cls = METRICS.get(name)
        if cls.needs_ensemble and members < 2:
            continue
        accepted = inspect.signature(cls).parameters
        kwargs: dict[str, Any] = {}
        for arg, field in cls.config_fields.items():
            if hasattr(cfg, field):
                kwargs[arg] = getattr(cfg, field)
        kwargs.update({k: v for k, v in options.items() if k in accepted})
        kwargs["dims"] = dims
        kwargs.update(spec_kwargs)
        unknown = set(kwargs) - set(accepted)
        if unknown:
            raise ConfigError(
                f"metric {name!r} has no argument {sorted(unknown)}; it takes {sorted(accepted)}"
            )
        auto = kwargs.get("precision") == "auto"
        if auto:
            kwargs["precision"] = None
        metric = cls(**kwargs)
        metric.auto_precision = auto  # resolved from the first chunk of truth
        out.append(metric)
    return out


class Evaluator:
    """Streaming evaluation of several methods against one truth, with a named metric set.

    Args:
        cfg: verification settings read by the metrics (thresholds, FSS scales, pooling
            windows, rank precision); default ``EvaluateConfig()``.
        members: method name -> number of members (1 for a deterministic forecast).
        metrics: the metric set: names in :data:`~geogan.core.registry.METRICS` or
            ``{name: kwargs}`` (default :data:`DEFAULT_METRICS`). Metrics that need an
            ensemble are skipped for 1-member methods.
        dims: number of spatial axes of the fields (2: ``[T, H, W]``, 3: ``[T, D, H, W]``).
        seed: seed of the rank-histogram tie breaking.
        ties: rank-histogram tie rule (``"random"`` or ``"split"``).
        rapsd_fill: how spectra fill unscored pixels (``"mean"`` or ``"zero"``).
        min_valid_fraction: pooled-CRPS window rule (1.0: fully valid windows only).
        rule: the sentence saying which pixels are scored (goes into the result).

    Call :meth:`update` with consecutive chunks of time steps, then :meth:`finalize`.
    """

    def __init__(
        self,
        cfg: EvaluateConfig | None = None,
        members: Mapping[str, int] | None = None,
        *,
        metrics: Sequence[MetricSpec] | Mapping[str, Any] | None = None,
        dims: int = 2,
        seed: int = 0,
        ties: str = "random",
        rapsd_fill: str = "mean",
        min_valid_fraction: float = 1.0,
        rule: str = SCORING_RULE,
    ) -> None:
        if not members:
            raise DataError("nothing to evaluate: give at least one forecast or baseline")
        self.cfg = cfg or EvaluateConfig()
        self.dims = check_dims(dims)
        self.members = dict(members)
        self.specs = _parse_specs(DEFAULT_METRICS if metrics is None else metrics)
        self.rule = rule
        options = {
            "seed": seed,
            "ties": ties,
            "fill": rapsd_fill,
            "min_valid_fraction": min_valid_fraction,
        }
        self.metrics: dict[str, list[StreamingMetric]] = {
            name: build_metrics(
                [{n: kw} for n, kw in self.specs], self.cfg, members=m, dims=self.dims, **options
            )
            for name, m in self.members.items()
        }
        self.n_times = 0
        # "auto" is resolved from the first chunk of truth, before any metric sees data
        self._precision_pending = any(
            metric.auto_precision for ms in self.metrics.values() for metric in ms
        )
        self.precision_note: str | None = None  # why "auto" found (or did not find) a quantum
        self.needs_reference = any(
            metric.reference_ensemble for ms in self.metrics.values() for metric in ms
        )

    def _set_precision(self, q: float | None) -> None:
        for metrics in self.metrics.values():
            for metric in metrics:
                if metric.auto_precision:
                    metric.precision = q
        self._precision_pending = False

    def update(
        self,
        truth: np.ndarray,
        forecasts: Mapping[str, np.ndarray],
        valid: np.ndarray | None = None,
        *,
        reference: np.ndarray | None = None,
    ) -> None:
        """Add a chunk of time steps.

        ``truth [T, *S]``; ``forecasts``: name -> ``[M, T, *S]`` / ``[T, *S]``; ``valid
        [T, *S]`` (default finite truth); ``reference [R, T, *S]``: reference members for
        the metrics that compare with an ensemble (``reference_ensemble``).
        """
        missing = set(self.metrics) - set(forecasts)
        extra = set(forecasts) - set(self.metrics)
        if missing or extra:
            raise DataError(
                f"forecasts must be exactly {sorted(self.metrics)}; missing {sorted(missing)}, extra {sorted(extra)}"
            )
        if self.needs_reference and reference is None:
            names = sorted(
                {m.name for ms in self.metrics.values() for m in ms if m.reference_ensemble}
            )
            raise DataError(
                f"metrics {names} compare with reference members: pass reference=[R, T, "
                f"{spatial_names(self.dims)}]"
            )
        truth = np.asarray(truth)
        if valid is None:
            valid = np.isfinite(truth)
        if self._precision_pending:
            q, self.precision_note = explain_precision(truth[np.asarray(valid, dtype=bool)])
            self._set_precision(q)
        for name, fc in forecasts.items():
            t, f, v = prepare(truth, fc, valid, dims=self.dims)  # one check per method
            r = None
            for metric in self.metrics[name]:
                metric._check_members(f.shape[0])
                if metric.reference_ensemble:
                    if r is None:
                        r, _, _ = prepare_reference(reference, f, v, dims=self.dims)
                    metric._update(r, f, v)
                else:
                    metric._update(t, f, v)
        self.n_times += truth.shape[0] if truth.ndim == self.dims + 1 else 1

    def finalize(self) -> dict[str, Any]:
        """The result dict; see :func:`evaluate`."""
        methods: dict[str, dict[str, Any]] = {}
        curves: dict[str, dict[str, Any]] = {}
        truth_curves: dict[str, Any] = {}
        n_valid = 0
        for name, metrics in self.metrics.items():
            scalars: dict[str, Any] = {"members": self.members[name]}
            curve: dict[str, Any] = {}
            for metric in metrics:
                for key, value in metric.finalize().items():
                    if key in metric.truth_curves:
                        truth_curves[metric.truth_curves[key]] = value
                    elif isinstance(value, (int, float)):
                        scalars[key] = value
                    else:
                        curve[key] = value
            n_valid = int(scalars.get("n_valid", n_valid))
            methods[name] = scalars
            curves[name] = curve
        return {
            "rule": self.rule,
            "crps_estimator": CRPS_ESTIMATOR,
            "n_times": self.n_times,
            "n_valid": n_valid,
            "dims": self.dims,
            "metrics": [name for name, _ in self.specs],
            "config": self.cfg.model_dump(mode="json"),
            "methods": methods,
            "curves": curves,
            "truth": truth_curves,
            "rank_precision_note": self.precision_note,
        }


def evaluate(
    truth: np.ndarray,
    forecasts: Mapping[str, np.ndarray],
    valid: np.ndarray | None,
    cfg: EvaluateConfig | None = None,
    *,
    metrics: Sequence[MetricSpec] | Mapping[str, Any] | None = None,
    coarse: np.ndarray | None = None,
    factor: int | Sequence[int] | None = None,
    baselines: Sequence[str] | None = None,
    nonnegative: bool = False,
    reference: np.ndarray | None = None,
    chunk_size: int = 8,
    seed: int = 0,
    ties: str = "random",
    rapsd_fill: str = "mean",
    rule: str | None = None,
) -> dict[str, Any]:
    """Verify forecasts against the truth on the scoring mask, in chunks of time steps.

    Args:
        truth: ``[T, *S]`` in physical units (e.g. mm/h), NaN where missing; the
            spatial rank is ``truth.ndim - 1`` (2D ``[T, H, W]``, 3D ``[T, D, H, W]``).
        forecasts: name -> ``[M, T, *S]`` ensemble or ``[T, *S]`` deterministic forecast.
        valid: ``[T, *S]`` bool scoring mask (see :func:`scoring_mask`), or None to
            build it chunk by chunk: :func:`scoring_mask` with ``coarse``, else finite truth.
        cfg: verification settings (default ``EvaluateConfig()``).
        metrics: the metric set (names or ``{name: kwargs}``; default :data:`DEFAULT_METRICS`).
        coarse: ``[T, *s]`` coarse input of the target variable; when given, the
            interpolation baselines are computed from it (chunk by chunk) and scored too,
            and ``valid`` is checked against the scoring rule.
        factor: resolution factor (``S = factor * s``; one int or one per axis); needed
            with ``coarse``.
        baselines: interpolation names (:data:`~geogan.evaluation.baselines.METHODS`);
            default ``cfg.baselines``, whose 2D names are read at the data's rank
            (``bilinear`` -> ``trilinear`` in 3D; see ``method_for_rank``).
        nonnegative: clip baselines at 0 (precipitation).
        reference: ``[R, T, *S]`` reference members, for metrics that compare with an
            ensemble (e.g. ``pixel_wasserstein``).
        chunk_size: time steps loaded and scored at a time.
        seed, ties, rapsd_fill: see :class:`Evaluator`.
        rule: the scoring-rule sentence of the result (default :data:`SCORING_RULE`).

    Returns:
        ``{"rule": str, "crps_estimator": str, "n_times", "n_valid", "dims", "metrics",
        "config", "methods": {name: {metric: float}}, "curves": {name: {"rank_histogram":
        [...], "rapsd": [...], "fss": {...}, ...}}, "truth": {"rapsd_k": [...], "rapsd": [...]}}``.
    """
    cfg = cfg or EvaluateConfig()
    ndim = int(np.ndim(truth))
    if ndim < 2:
        raise DataError(f"truth must be [T, H, W] or [T, D, H, W], got shape {np.shape(truth)}")
    dims = ndim - 1
    t_len = int(np.shape(truth)[0])
    members = {name: _members(np.shape(fc), ndim) for name, fc in forecasts.items()}
    names: list[str] = []
    if coarse is not None:
        if factor is None:
            raise DataError("evaluate(coarse=...) needs the resolution factor")
        if baselines is None:
            names = [method_for_rank(b, dims) for b in cfg.baselines]
        else:
            names = list(baselines)
        clash = set(names) & set(members)
        if clash:
            raise DataError(f"forecast names {sorted(clash)} clash with baselines; rename them")
        members.update({b: 1 for b in names})
        if np.shape(coarse)[0] != t_len:
            raise DataError(f"coarse has {np.shape(coarse)[0]} time steps but truth has {t_len}")
    if reference is not None and (
        np.ndim(reference) != ndim + 1 or np.shape(reference)[1] != t_len
    ):
        raise DataError(
            f"reference members must be [R, T, {spatial_names(dims)}] with T = {t_len}, "
            f"got shape {np.shape(reference)}"
        )
    evaluator = Evaluator(
        cfg,
        members,
        metrics=metrics,
        dims=dims,
        seed=seed,
        ties=ties,
        rapsd_fill=rapsd_fill,
        rule=SCORING_RULE if rule is None else rule,
    )
    for t0 in range(0, t_len, max(1, int(chunk_size))):
        sl = slice(t0, min(t0 + chunk_size, t_len))
        truth_c = np.asarray(truth[sl])
        chunk: dict[str, np.ndarray] = {}
        for name, fc in forecasts.items():
            chunk[name] = np.asarray(fc[sl] if members[name] == 1 else fc[:, sl])
        valid_c = np.isfinite(truth_c) if valid is None else np.asarray(valid[sl], dtype=bool)
        if coarse is not None:
            coarse_c = np.asarray(coarse[sl])
            rule_mask = scoring_mask(truth_c, coarse_c, factor, dims=dims)  # type: ignore[arg-type]
            if valid is None:
                valid_c = rule_mask
            elif (valid_c & ~rule_mask).any():
                raise DataError(
                    "the valid mask scores pixels whose truth or coarse input pixel is missing; "
                    "build it with geogan.evaluation.evaluate.scoring_mask(truth, coarse, factor)"
                )
            for b in names:
                chunk[b] = interpolate(coarse_c, factor, b, dims=dims, nonnegative=nonnegative)  # type: ignore[arg-type]
        ref_c = None if reference is None else np.asarray(reference[:, sl])
        evaluator.update(truth_c, chunk, valid_c, reference=ref_c)
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
    reference: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """:func:`evaluate` for ``xarray.DataArray`` inputs (lazy/dask arrays are loaded chunk by chunk).

    ``truth``: dims ``(time_dim, *grid)`` in any order, with 2 (``y, x``) or 3 (``z, y, x``)
    grid dims kept in their order; ``forecasts``: the same dims plus ``member_dim`` for
    ensembles; ``valid``: like truth, or None to build it chunk by chunk from
    ``truth`` and ``coarse`` with :func:`scoring_mask` (finite truth when no
    coarse field is given); ``coarse``: ``(time_dim, *coarse grid)``; ``reference``:
    reference members with the truth's dims plus ``member_dim``.
    """
    if time_dim not in truth.dims or truth.ndim < 2:
        raise DataError(f"truth must have {time_dim!r} and 2 or 3 grid dims, got {truth.dims}")
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
    ref_a = None if reference is None else data(reference, ens=True)
    return evaluate(
        truth_a, fc, valid_a, cfg, coarse=coarse_a, factor=factor, reference=ref_a, **kwargs
    )
