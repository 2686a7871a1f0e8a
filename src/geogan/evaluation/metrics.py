"""Streaming verification metrics for ensembles of gridded fields, in any spatial rank.

Every metric is a class with ``update(truth, forecast, valid)`` (call it once
per time step or chunk of time steps) and ``finalize() -> dict``; its state is
a handful of float64 sums, so a dataset never has to fit in memory, and
``merge(other)`` adds the sums of another instance (other ranks or workers).
Each class is registered by name in :data:`geogan.core.registry.METRICS`.

Inputs of ``update`` (numpy arrays, physical units, e.g. mm/h), with ``S`` the
spatial axes -- ``(H, W)`` in 2D, ``(D, H, W)`` in 3D; the number of them is the
metric's ``dims`` argument (default 2):

- ``truth``: ``[T, *S]`` (or ``[*S]``), may hold NaN outside ``valid``;
- ``forecast``: ``[M, T, *S]`` ensemble of M members, or ``[T, *S]``
  deterministic (treated as a 1-member ensemble);
- ``valid``: ``[T, *S]`` bool scoring mask (default: finite truth). Metrics
  only look at these pixels; the forecast must be finite on them.

Pixelwise metrics (CRPS, rank histogram, spread-skill, ensemble-mean errors) do
not care about the rank; the spatial ones treat every spatial axis alike: pooling
windows and FSS neighbourhoods are ``k x k (x k)`` boxes, spectra are averaged over
circular (2D) or spherical (3D) shells of wavenumber.

Scalars in the ``finalize`` dict go into the report table; lists and nested
dicts are curves for plots (rank histograms, spectra, FSS per scale).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import METRICS
from geogan.core.spectra import radial_wavenumbers

__all__ = [
    "CRPS",
    "FSS",
    "RAPSD",
    "EnsembleMeanErrors",
    "PooledCRPS",
    "RankHistogram",
    "Spectra",
    "SpreadSkill",
    "StreamingMetric",
    "crps_ensemble",
    "detect_precision",
    "explain_precision",
    "log_spectral_distance",
    "neighbourhood_fractions",
    "power_spectra",
    "prepare",
    "radial_wavenumbers",
    "rapsd",
    "spatial_names",
]


# --------------------------------------------------------------------------- inputs


def spatial_names(dims: int) -> str:
    """The spatial axes of rank ``dims`` as written in shapes: ``"H, W"``, ``"D, H, W"``, ..."""
    check_dims(dims)
    return {1: "W", 2: "H, W", 3: "D, H, W"}.get(dims, ", ".join(f"S{i}" for i in range(dims)))


def check_dims(dims: int) -> int:
    """``dims`` (the number of spatial axes) as an int >= 1, or a ConfigError."""
    if isinstance(dims, bool) or int(dims) != dims or dims < 1:
        raise ConfigError(f"dims (number of spatial axes) must be a positive integer, got {dims!r}")
    return int(dims)


def prepare(
    truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray | None = None, *, dims: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes and return ``(truth [T, *S], forecast [M, T, *S], valid [T, *S] bool)``.

    ``dims`` is the number of spatial axes ``S``; ``truth [*S]`` (one time step) is
    accepted too. Raises :class:`DataError` on mismatched shapes, on a ``valid``
    pixel whose truth is not finite, or on a forecast that is not finite on a valid pixel.
    """
    dims = check_dims(dims)
    names = spatial_names(dims)
    truth = np.asarray(truth)
    forecast = np.asarray(forecast)
    if truth.ndim == dims:
        truth = truth[None]
        if forecast.ndim in (dims, dims + 1):
            forecast = np.expand_dims(forecast, -dims - 1)
        valid = None if valid is None else np.asarray(valid)[None]
    if truth.ndim != dims + 1:
        raise DataError(f"truth must be [T, {names}] or [{names}], got shape {truth.shape}")
    if forecast.ndim == dims + 1:
        forecast = forecast[None]
    if forecast.ndim != dims + 2 or forecast.shape[1:] != truth.shape:
        raise DataError(
            f"forecast must be [M, T, {names}] or [T, {names}] matching truth {truth.shape}, "
            f"got shape {forecast.shape}"
        )
    if valid is None:
        valid = np.isfinite(truth)
    else:
        valid = np.asarray(valid)
        if valid.shape != truth.shape:
            raise DataError(
                f"valid mask must have the truth's shape {truth.shape}, got {valid.shape}"
            )
        if valid.dtype != bool:
            valid = valid.astype(bool)
        if not np.isfinite(truth[valid]).all():
            raise DataError(
                "the valid mask marks pixels where the truth is NaN; AND it with isfinite(truth)"
            )
    if not np.isfinite(forecast[:, valid]).all():
        raise DataError(
            "a forecast is NaN/inf on pixels of the scoring mask; every method must be scored on the "
            "same pixels, so remove them from the mask (evaluation.evaluate.scoring_mask) or fill them"
        )
    return truth, forecast, valid


def crps_ensemble(
    members: np.ndarray, obs: np.ndarray, *, member_axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise ensemble CRPS, ``(ecdf, fair)``, computed with ``scores.probability.crps_for_ensemble``.

    ``members``: ``[M, ...]`` (member axis ``member_axis``), ``obs``: the other
    axes; returns two arrays shaped like ``obs`` in the data's units.

    ecdf (``method="ecdf"`` in scores, the headline): the exact CRPS of the
    empirical CDF of the M members,
    ``mean_i |x_i - y| - sum_ij |x_i - x_j| / (2 M^2)``.
    fair (Ferro 2014): the same with ``2 M (M - 1)`` in the denominator, an
    unbiased estimate of the CRPS of the distribution the members are drawn
    from. For M = 1 both reduce to ``|x - y|`` (no pairs: the spread term is 0).
    """
    import scores.probability  # imported here: it takes seconds, and only CRPS needs it
    import xarray as xr

    members = np.moveaxis(np.asarray(members, dtype=np.float64), member_axis, 0)
    obs = np.asarray(obs, dtype=np.float64)
    m = members.shape[0]
    dims = [f"d{i}" for i in range(obs.ndim)]
    out = scores.probability.crps_for_ensemble(
        xr.DataArray(members, dims=["member", *dims]),
        xr.DataArray(obs, dims=dims),
        "member",
        method="ecdf",
        preserve_dims="all",
        include_components=True,
    )
    ecdf = out.sel(component="total").transpose(*dims).values
    spread = out.sel(component="spread").transpose(*dims).values  # sum_ij |x_i - x_j| / (2 M^2)
    # fair = mean|x - y| - spread * M / (M - 1) = ecdf - spread / (M - 1)
    fair = ecdf - spread / (m - 1) if m > 1 else ecdf.copy()
    return ecdf, fair


# --------------------------------------------------------------------------- base


class StreamingMetric(ABC):
    """Base class: float64 sums in ``self.state``; ``merge`` adds them elementwise.

    ``dims``: the number of spatial axes of the fields (2: ``[T, H, W]``, 3: ``[T, D, H, W]``).
    """

    name: ClassVar[str] = ""
    #: needs at least 2 members (rank histogram, spread-skill)
    needs_ensemble: ClassVar[bool] = False
    #: ``update``'s first argument is an ensemble of reference members ``[R, T, *S]``
    #: instead of one truth ``[T, *S]`` (ensemble-versus-ensemble metrics)
    reference_ensemble: ClassVar[bool] = False
    #: constructor argument -> field of :class:`~geogan.config.schema.EvaluateConfig`
    #: that the :class:`~geogan.evaluation.evaluate.Evaluator` fills it from
    config_fields: ClassVar[Mapping[str, str]] = {}
    #: ``finalize`` key -> key in the result's ``"truth"`` section (curves of the truth
    #: alone, the same for every method, e.g. its spectrum)
    truth_curves: ClassVar[Mapping[str, str]] = {}
    #: the ``precision`` argument was "auto": the Evaluator sets it from the first chunk
    auto_precision: bool = False

    def __init__(self, *, dims: int = 2) -> None:
        self.dims = check_dims(dims)
        self.state: dict[str, np.ndarray] = {}
        self.members: int | None = None

    def _check_members(self, m: int) -> None:
        if self.members is None:
            if self.needs_ensemble and m < 2:
                raise DataError(
                    f"metric {self.name!r} needs an ensemble of at least 2 members, got {m}"
                )
            self.members = m
        elif m != self.members:
            raise DataError(
                f"metric {self.name!r} got {m} members after {self.members} in earlier updates"
            )

    def _add(self, key: str, value: Any) -> None:
        value = np.asarray(value, dtype=np.float64)
        if key in self.state:
            self.state[key] = self.state[key] + value
        else:
            self.state[key] = value.copy()

    def update(
        self, truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        """Add one chunk: truth ``[T, *S]``, forecast ``[M, T, *S]`` or ``[T, *S]``, valid ``[T, *S]``."""
        truth, forecast, valid = prepare(truth, forecast, valid, dims=self.dims)
        self._check_members(forecast.shape[0])
        self._update(truth, forecast, valid)

    @abstractmethod
    def _update(self, truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray) -> None:
        """Add the sums of one prepared chunk to ``self.state`` (every metric defines it)."""

    def merge(self, other: StreamingMetric) -> None:
        """Add the sums of ``other`` (same class and settings, e.g. from another rank)."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        if other.dims != self.dims:
            raise ConfigError(
                f"cannot merge {self.name!r} over {other.dims} spatial axes into one over {self.dims}"
            )
        if other.members is not None:
            self._check_members(other.members)
        for key, value in other.state.items():
            self._add(key, value)

    @abstractmethod
    def finalize(self) -> dict[str, Any]:
        """The metric's values from the accumulated sums (every metric defines it)."""

    def _get(self, key: str) -> np.ndarray:
        if key not in self.state:
            raise DataError(
                f"metric {self.name!r} has no data: call update() with valid pixels first"
            )
        return self.state[key]


def _summed_area(x: np.ndarray, dims: int = 2) -> np.ndarray:
    """Summed-area table ``[..., S0 + 1, ..., Sn + 1]`` (float64, zero first slice along each
    spatial axis) of ``x [..., *S]``: cumulative sums along each of the last ``dims`` axes."""
    spatial = x.shape[x.ndim - dims :]
    table = np.zeros((*x.shape[: x.ndim - dims], *(n + 1 for n in spatial)), dtype=np.float64)
    total = x
    for axis in range(-dims, 0):
        total = np.cumsum(total, axis=axis, dtype=np.float64)
    table[(Ellipsis, *[slice(1, None)] * dims)] = total
    return table


def _box_sums(table: np.ndarray, lo: Sequence[np.ndarray], hi: Sequence[np.ndarray]) -> np.ndarray:
    """Sums over the boxes ``[lo[0], hi[0]) x [lo[1], hi[1]) x ...`` (outer product of the
    per-axis ranges) from a summed-area table: inclusion-exclusion over the ``2^dims`` corners.

    The corners are visited from all-``hi`` down (in 2D: ``t[r1, c1] - t[r0, c1] - t[r1, c0]
    + t[r0, c0]``, left to right), so 2D sums keep their historical rounding.
    """
    dims = len(lo)

    def along(axis: int, index: np.ndarray) -> np.ndarray:
        return index.reshape([-1 if a == axis else 1 for a in range(dims)])

    out = None
    for corner in range(2**dims - 1, -1, -1):
        upper = [(corner >> a) & 1 for a in range(dims)]
        term = table[(Ellipsis, *(along(a, hi[a] if upper[a] else lo[a]) for a in range(dims)))]
        if out is None:
            out = term
        elif (dims - sum(upper)) % 2:
            out = out - term
        else:
            out = out + term
    return out


def _window_sums(x: np.ndarray, k: int, stride: int, dims: int = 2) -> np.ndarray:
    """Sums of ``x [..., *S]`` over ``k x ... x k`` windows at ``stride`` (no padding)."""
    lo = [np.arange(0, n - k + 1, stride) for n in x.shape[x.ndim - dims :]]
    return _box_sums(_summed_area(x, dims), lo, [s + k for s in lo])


def _safe_div(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


# --------------------------------------------------------------------------- CRPS


@METRICS.register("crps")
class CRPS(StreamingMetric):
    """Pixelwise ensemble CRPS over valid pixels, mean over all (time, pixel) pairs.

    Returns ``crps`` (ecdf estimator, headline), ``crps_fair`` (Ferro's fair
    estimator), ``n_valid``; see :func:`crps_ensemble`. A deterministic forecast
    gets its MAE for both.
    """

    name = "crps"

    def _update(self, truth, forecast, valid):
        if not valid.any():
            return
        ecdf, fair = crps_ensemble(forecast[:, valid], truth[valid])
        self._add("ecdf", ecdf.sum())
        self._add("fair", fair.sum())
        self._add("n", valid.sum())

    def finalize(self):
        n = float(self._get("n"))
        return {
            "crps": _safe_div(self.state["ecdf"], n),
            "crps_fair": _safe_div(self.state["fair"], n),
            "n_valid": int(n),
        }


@METRICS.register("pooled_crps")
class PooledCRPS(StreamingMetric):
    """CRPS of spatially average-pooled fields.

    Truth and every member are averaged over ``k x k`` windows (``k x k x k`` in 3D:
    the same extent along every spatial axis) moved by ``stride`` along each axis
    (no padding; ``(k, stride)`` pairs from ``EvaluateConfig.pool_windows``),
    then the ensemble CRPS is computed on the pooled values. A window is scored
    only if at least ``min_valid_fraction`` of its pixels are valid (default
    1.0: only fully valid windows, so no pooled value mixes in unobserved
    pixels); its pooled values are the means over its valid pixels.

    Returns ``crps_pool{k}s{stride}`` (ecdf), ``crps_fair_pool{k}s{stride}``, ``n_pool{k}s{stride}``.
    """

    name = "pooled_crps"
    config_fields = {"windows": "pool_windows"}

    def __init__(
        self,
        *,
        windows: Sequence[tuple[int, int]] = ((4, 2), (16, 4)),
        min_valid_fraction: float = 1.0,
        dims: int = 2,
    ) -> None:
        super().__init__(dims=dims)
        self.windows = [(int(k), int(s)) for k, s in windows]
        if not 0 < min_valid_fraction <= 1:
            raise ConfigError(f"min_valid_fraction must be in (0, 1], got {min_valid_fraction}")
        self.min_valid_fraction = float(min_valid_fraction)

    @staticmethod
    def pool(
        x: np.ndarray, valid: np.ndarray, k: int, stride: int, dims: int = 2
    ) -> tuple[np.ndarray, np.ndarray]:
        """Masked window means of ``x [..., *S]`` over ``k^dims`` windows every ``stride`` pixels.

        Returns ``(means [..., *S'], valid fraction [..., *S'])`` with
        ``S'_i = (S_i - k) // stride + 1``; a window without valid pixels has mean NaN.
        """
        count = _window_sums(np.asarray(valid, dtype=np.float64), k, stride, dims)
        total = _window_sums(np.where(valid, x, 0.0), k, stride, dims)
        with np.errstate(invalid="ignore", divide="ignore"):
            return total / count, count / (k**dims)

    def _update(self, truth, forecast, valid):
        spatial = truth.shape[1:]
        for k, s in self.windows:
            if k > min(spatial):
                raise ConfigError(
                    f"pool window {k} is larger than the field ({' x '.join(map(str, spatial))}); "
                    "remove it from pool_windows"
                )
            pooled_truth, frac = self.pool(truth, valid, k, s, self.dims)
            pooled_fc, _ = self.pool(forecast, valid, k, s, self.dims)
            keep = frac >= self.min_valid_fraction - 1e-9
            tag = f"pool{k}s{s}"
            self._add(f"n_{tag}", keep.sum())
            if keep.any():
                ecdf, fair = crps_ensemble(pooled_fc[:, keep], pooled_truth[keep])
                self._add(f"ecdf_{tag}", ecdf.sum())
                self._add(f"fair_{tag}", fair.sum())
            else:
                self._add(f"ecdf_{tag}", 0.0)
                self._add(f"fair_{tag}", 0.0)

    def finalize(self):
        out: dict[str, Any] = {}
        for k, s in self.windows:
            tag = f"pool{k}s{s}"
            n = float(self._get(f"n_{tag}"))
            out[f"crps_{tag}"] = _safe_div(self.state[f"ecdf_{tag}"], n)
            out[f"crps_fair_{tag}"] = _safe_div(self.state[f"fair_{tag}"], n)
            out[f"n_{tag}"] = int(n)
        return out


# --------------------------------------------------------------------------- rank histogram


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """Counter-based hash of uint64 keys (SplitMix64 finaliser): same key -> same value."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def detect_precision(values: np.ndarray, *, max_values: int = 2_000_000) -> float | None:
    """The quantum ``q`` of quantised data (every value a multiple of ``q``), or None.

    Radar rain rates are integer counts of a gauge or radar unit scaled to mm/h: KNMI
    and MeteoNet report multiples of 0.12 mm/h (0.01 mm per 5 minutes), BoM
    Rainfields multiples of 0.3 mm/h (0.05 mm per 10 minutes). ``q`` is the
    smallest gap between the distinct non-negative finite values (zero included);
    it is accepted when every value is within 1 % of ``q`` of a multiple of it and
    the data have at least 100 positive values, far fewer distinct values than
    values. Continuous data (model output, reflectance) give None.
    """
    return explain_precision(values, max_values=max_values)[0]


def explain_precision(
    values: np.ndarray, *, max_values: int = 2_000_000
) -> tuple[float | None, str]:
    """:func:`detect_precision` with the reason: ``(q, "detected: ...")`` or ``(None, why not)``."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v) & (v >= 0)][:max_values]
    positive = int((v > 0).sum())
    if positive < 100:
        return None, f"not detected: only {positive} positive values (at least 100 needed)"
    distinct = np.unique(np.concatenate([[0.0], v]))
    if distinct.size > 0.25 * positive:
        return None, (
            f"not detected: {distinct.size} distinct values among {positive} positive ones "
            "(continuous data, not multiples of a quantum)"
        )
    q = float(np.diff(distinct).min())
    if not q > 0:
        return None, "not detected: no gap between distinct values"
    # refine by least squares over all multiples: float32 storage makes single gaps off by
    # an ulp, which would grow to a visible error at hundreds of multiples
    k = np.rint(distinct / q)
    q = float((k * distinct).sum() / (k * k).sum())
    ratio = distinct / q
    worst = float(np.abs(ratio - np.rint(ratio)).max())
    if worst > 0.01:
        return None, (
            f"not detected: values are not all multiples of the smallest gap {q:.4g} "
            f"(worst off by {worst:.2f} of it)"
        )
    return q, f"detected: every value is a multiple of {q:.4g}"


@METRICS.register("rank_histogram")
class RankHistogram(StreamingMetric):
    """Rank histogram (Talagrand diagram) with M + 1 bins, over valid pixels.

    The rank of the truth is the number of members strictly below it. Ties
    (members equal to the truth, e.g. zero rain) are broken by assigning a rank
    uniformly at random among the ``n_equal + 1`` tied positions
    (``ties="random"``, Hamill 2001). The random draw is a hash of
    ``(seed, global time index, pixel)`` (the pixel's flat index in ``S``: row and
    column in 2D), so the result does not depend on how the data are chunked. ``ties="split"`` instead spreads weight
    ``1 / (n_equal + 1)`` over the tied ranks (the expectation of the random
    rule; what ``scores.probability.rank_histogram`` does).

    Two histograms: over all valid pixels, and ``_nonzero`` excluding pixels
    where the truth and every member are ``<= dry_threshold`` (ties at zero rain
    that say nothing about calibration).

    ``precision`` (the observations' quantum, e.g. 0.12 mm/h for KNMI radar; see
    :func:`detect_precision`) adds the same two histograms computed at the
    precision of the observations (suffix ``_at_precision``): truth and members
    are rounded to the nearest multiple of ``precision`` before ranking, so a
    member of 0.05 mm/h ties with a truth of 0 and one of 0.15 mm/h with a truth
    of 0.12 (the radar cannot tell them apart), and those ties are broken as
    above. Without it, a continuous ensemble ranked against quantised truth puts
    the truth strictly below every member whenever all members exceed its
    rounded value, which inflates the lowest bin although the ensemble may be
    calibrated.

    Returns ``rank_histogram`` (normalised frequencies, list of M + 1),
    ``rank_max_ratio`` / ``rank_min_ratio`` = max / min frequency divided by
    the uniform ``1 / (M + 1)`` (1 and 1 when flat), the same with
    ``_nonzero`` (and with ``_at_precision`` when ``precision`` is set), and the
    pixel counts.
    """

    name = "rank_histogram"
    needs_ensemble = True
    config_fields = {"precision": "rank_precision"}

    def __init__(
        self,
        *,
        ties: Literal["random", "split"] = "random",
        dry_threshold: float = 0.0,
        seed: int = 0,
        precision: float | None = None,
        dims: int = 2,
    ) -> None:
        super().__init__(dims=dims)
        if ties not in ("random", "split"):
            raise ConfigError(f"ties must be 'random' or 'split', got {ties!r}")
        if precision is not None and not (np.isfinite(precision) and precision > 0):
            raise ConfigError(f"rank histogram precision must be > 0 or None, got {precision!r}")
        self.ties = ties
        self.dry_threshold = float(dry_threshold)
        self.seed = int(seed)
        self.precision = None if precision is None else float(precision)
        self._t = 0  # global time index of the next update, for chunk-independent tie breaking

    def _uniform(self, shape: tuple[int, ...]) -> np.ndarray:
        """Uniform [0, 1) per (time, pixel) of ``shape = (T, *S)``, keyed by global time and pixel."""
        t, spatial = shape[0], shape[1:]
        n = math.prod(spatial)
        tt = np.arange(self._t, self._t + t, dtype=np.uint64).reshape(-1, *[1] * len(spatial))
        pixel = np.arange(n, dtype=np.uint64).reshape(spatial)
        with np.errstate(over="ignore"):
            # (t * N + pixel) mod 2^64; in 2D the same key as (t * H + row) * W + column
            key = _splitmix64(np.uint64(self.seed & 0xFFFFFFFFFFFFFFFF)) ^ (
                tt * np.uint64(n) + pixel
            )
        return (_splitmix64(key) >> np.uint64(11)).astype(np.float64) / float(1 << 53)

    def _histogram(self, below: np.ndarray, equal: np.ndarray, u: np.ndarray, m: int) -> np.ndarray:
        if self.ties == "random":
            rank = below + np.minimum(np.floor(u * (equal + 1)).astype(np.int64), equal)
            return np.bincount(rank, minlength=m + 1).astype(np.float64)
        weight = 1.0 / (equal + 1)
        diff = np.bincount(below, weights=weight, minlength=m + 2) - np.bincount(
            below + equal + 1, weights=weight, minlength=m + 2
        )
        return np.cumsum(diff)[: m + 1]

    def _add_ranks(
        self, key: str, fc: np.ndarray, obs: np.ndarray, dry: float, u: np.ndarray, m: int
    ) -> None:
        below = (fc < obs).sum(axis=0)
        equal = (fc == obs).sum(axis=0)
        self._add(key, self._histogram(below, equal, u, m))
        wet = (obs > dry) | (fc > dry).any(axis=0)
        self._add(f"{key}_nonzero", self._histogram(below[wet], equal[wet], u[wet], m))

    def _update(self, truth, forecast, valid):
        m = forecast.shape[0]
        u = self._uniform(truth.shape)[valid]
        self._t += truth.shape[0]
        fc = forecast[:, valid]
        obs = truth[valid]
        self._add_ranks("all", fc, obs, self.dry_threshold, u, m)
        if self.precision is not None:
            # integer multiples of the quantum: exact ties, no float comparison tolerance
            q = self.precision
            self._add_ranks(
                "prec",
                np.rint(fc / q).astype(np.int64),
                np.rint(obs / q).astype(np.int64),
                float(np.rint(self.dry_threshold / q)),
                u,
                m,
            )

    def merge(self, other):
        if other.precision != self.precision:
            raise ConfigError(
                f"cannot merge rank histograms at precision {other.precision} and {self.precision}"
            )
        super().merge(other)
        self._t += other._t

    def finalize(self):
        m = int(self.members or 0)
        out: dict[str, Any] = {}
        keys = [("all", ""), ("all_nonzero", "_nonzero")]
        if self.precision is not None:
            out["rank_precision"] = self.precision
            keys += [("prec", "_at_precision"), ("prec_nonzero", "_nonzero_at_precision")]
        for key, suffix in keys:
            counts = self._get(key)
            total = counts.sum()
            freq = counts / total if total > 0 else np.full(m + 1, np.nan)
            out[f"rank_histogram{suffix}"] = freq.tolist()
            out[f"rank_max_ratio{suffix}"] = float(freq.max() * (m + 1))
            out[f"rank_min_ratio{suffix}"] = float(freq.min() * (m + 1))
            out[f"rank_n{suffix}"] = int(round(total))
        return out


# --------------------------------------------------------------------------- spread-skill


@METRICS.register("spread_skill")
class SpreadSkill(StreamingMetric):
    """Spread-skill ratio with the finite-ensemble correction (Fortin et al. 2014).

    ``SSR = sqrt((M + 1) / M * mean(s^2)) / sqrt(mean((xbar - y)^2))`` where
    ``s^2`` is the unbiased (ddof = 1) variance of the M members at a pixel,
    ``xbar`` their mean and the means run over all valid (time, pixel) pairs.
    For an ensemble whose members and truth are exchangeable draws from the
    same distribution, ``E[(xbar - y)^2] = (M + 1) / M * E[s^2]``, so SSR -> 1;
    < 1 is under-dispersive, > 1 over-dispersive.

    Returns ``ssr``, ``spread`` (``sqrt(mean s^2)``, uncorrected) and
    ``ensemble_mean_rmse``.
    """

    name = "spread_skill"
    needs_ensemble = True

    def _update(self, truth, forecast, valid):
        fc = forecast[:, valid].astype(np.float64)
        self._add("var", fc.var(axis=0, ddof=1).sum())
        self._add("se", ((fc.mean(axis=0) - truth[valid]) ** 2).sum())
        self._add("n", valid.sum())

    def finalize(self):
        m = int(self.members or 0)
        n = float(self._get("n"))
        mean_var = _safe_div(self.state["var"], n)
        mse = _safe_div(self.state["se"], n)
        return {
            "ssr": _safe_div(math.sqrt((m + 1) / m * mean_var), math.sqrt(mse)),
            "spread": math.sqrt(mean_var),
            "ensemble_mean_rmse": math.sqrt(mse),
        }


# --------------------------------------------------------------------------- errors


@METRICS.register("ensemble_mean_errors")
class EnsembleMeanErrors(StreamingMetric):
    """Bias (mean error, forecast - truth), RMSE and MAE of the ensemble mean over valid pixels.

    For a deterministic forecast the "ensemble mean" is the forecast itself.
    Returns ``bias``, ``rmse``, ``mae`` in the data's units, the truth's mean over the
    same pixels ``mean_truth`` and ``relative_bias = bias / mean_truth`` (e.g. a wet bias
    as a share of the mean rain rate; NaN when the truth's mean is 0).
    """

    name = "ensemble_mean_errors"

    def _update(self, truth, forecast, valid):
        err = forecast[:, valid].astype(np.float64).mean(axis=0) - truth[valid]
        self._add("sum", err.sum())
        self._add("sq", (err**2).sum())
        self._add("abs", np.abs(err).sum())
        self._add("n", err.size)
        self._add("truth", truth[valid].astype(np.float64).sum())

    def finalize(self):
        n = float(self._get("n"))
        bias = _safe_div(self.state["sum"], n)
        mean_truth = _safe_div(self.state["truth"], n) if "truth" in self.state else float("nan")
        return {
            "bias": bias,
            "rmse": math.sqrt(_safe_div(self.state["sq"], n)),
            "mae": _safe_div(self.state["abs"], n),
            "mean_truth": mean_truth,
            "relative_bias": bias / mean_truth if mean_truth else float("nan"),
        }


# --------------------------------------------------------------------------- RAPSD


def rapsd(
    fields: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    fill: str = "mean",
    dims: int = 2,
) -> np.ndarray:
    """Radially averaged power spectral density, averaged over fields.

    ``fields [..., *S]`` with ``dims`` spatial axes (any leading axes are fields to
    average over); ``valid`` (broadcastable to ``fields``) marks pixels to keep: the
    others are replaced by the field's mean over valid pixels (``fill="mean"``) or by 0
    (``fill="zero"``) before the FFT. Power is ``|FFT|^2 / N`` with ``N = prod(S)`` the
    number of pixels of a field (so white noise of variance s^2 has a flat spectrum
    equal to s^2, in every rank), averaged -- not summed -- over the FFT bins of each
    integer radial wavenumber ``k = 0 .. max(S) // 2`` (rings in 2D, spherical shells in
    3D; see :func:`radial_wavenumbers`). Returns ``[max(S) // 2 + 1]`` in units^2.
    """
    dims = check_dims(dims)
    fields = np.asarray(fields, dtype=np.float64)
    if fields.ndim < dims:
        raise DataError(f"fields must be [..., {spatial_names(dims)}], got shape {fields.shape}")
    spatial = fields.shape[fields.ndim - dims :]
    axes = tuple(range(-dims, 0))
    flat = fields.reshape(-1, *spatial)
    if valid is not None:
        v = np.broadcast_to(np.asarray(valid, dtype=bool), fields.shape).reshape(-1, *spatial)
        if fill == "mean":
            count = v.sum(axis=axes, keepdims=True)
            mean = np.where(v, flat, 0.0).sum(axis=axes, keepdims=True) / np.maximum(count, 1)
            flat = np.where(v, flat, mean)
        elif fill == "zero":
            flat = np.where(v, flat, 0.0)
        else:
            raise ConfigError(f"fill must be 'mean' or 'zero', got {fill!r}")
    power = (np.abs(np.fft.fftn(flat, axes=axes)) ** 2).sum(axis=0) / (
        math.prod(spatial) * flat.shape[0]
    )
    k, nbins = radial_wavenumbers(spatial)
    keep = k < nbins
    total = np.bincount(k[keep], weights=power[keep], minlength=nbins)
    count = np.bincount(k[keep], minlength=nbins)
    return total / np.maximum(count, 1)


@dataclass(frozen=True)
class Spectra:
    """Radially averaged power spectra of truth and forecast and their ratio.

    ``k``: integer wavenumbers (cycles per domain length, ``[K]``); ``truth``,
    ``forecast``: power ``[K]`` in units^2 (see :func:`rapsd`); ``ratio``:
    ``forecast / truth`` ``[K]`` (dimensionless; NaN where the truth has no power).
    A ratio below 1 at high ``k`` is a forecast smoother than the truth.
    """

    k: np.ndarray
    truth: np.ndarray
    forecast: np.ndarray
    ratio: np.ndarray

    @classmethod
    def from_power(cls, p_truth: np.ndarray, p_forecast: np.ndarray) -> Spectra:
        p_truth = np.asarray(p_truth, dtype=np.float64)
        p_forecast = np.asarray(p_forecast, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(p_truth > 0, p_forecast / p_truth, np.nan)
        return cls(np.arange(p_truth.size), p_truth, p_forecast, ratio)


def power_spectra(
    truth: np.ndarray,
    forecast: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    dims: int = 2,
    fill: Literal["mean", "zero"] = "mean",
) -> Spectra:
    """Spectra of truth ``[T, *S]`` and forecast ``[M, T, *S]`` / ``[T, *S]`` and their ratio.

    The truth spectrum averages the T truth fields, the forecast spectrum all M x T
    member fields; unscored pixels (``valid [T, *S]``, default finite truth) are filled
    the same way in both (see :func:`rapsd`). For data larger than memory, stream them
    through :class:`RAPSD` and call its :meth:`RAPSD.spectra`.
    """
    metric = RAPSD(fill=fill, dims=dims)
    metric.update(truth, forecast, valid)
    return metric.spectra()


def log_spectral_distance(p_model: np.ndarray, p_truth: np.ndarray, k_min: int = 1) -> float:
    """LSD in dB: ``sqrt(mean_k (10 log10(P_model(k) / P_truth(k)))^2)`` over ``k >= k_min``.

    ``p_model``, ``p_truth``: radial spectra ``[K]`` (:func:`rapsd`, any spatial rank:
    the spectra are 1-D in ``k`` whatever the rank of the fields). Bins where either
    power is 0 (e.g. empty fields) are skipped.
    """
    p_model = np.asarray(p_model, dtype=np.float64)[k_min:]
    p_truth = np.asarray(p_truth, dtype=np.float64)[k_min:]
    ok = (p_model > 0) & (p_truth > 0)
    if not ok.any():
        return float("nan")
    db = 10.0 * np.log10(p_model[ok] / p_truth[ok])
    return float(np.sqrt(np.mean(db**2)))


@METRICS.register("rapsd")
class RAPSD(StreamingMetric):
    """RAPSD of forecast and truth fields, averaged over times (and members), and their LSD.

    Each ``[*S]`` field (2D or 3D: rings or spherical shells, see :func:`rapsd`) has its invalid pixels filled (``fill="mean"``: the
    field's mean over valid pixels, ``"zero"``: 0; the same mask for truth and
    forecasts, so the mask's imprint on the spectrum is shared) and its spectrum
    computed by :func:`rapsd`. The forecast spectrum averages all M x T member
    fields; the truth spectrum the T truth fields.

    Returns ``lsd_db`` (log-spectral distance, dB, over ``k >= 1``; see
    :func:`log_spectral_distance`) and curves ``rapsd_k`` (wavenumber,
    cycles per domain), ``rapsd`` and ``rapsd_truth`` (units^2) and ``rapsd_ratio``
    (``rapsd / rapsd_truth``, NaN where the truth has no power).
    """

    name = "rapsd"
    truth_curves = {"rapsd_k": "rapsd_k", "rapsd_truth": "rapsd"}

    def __init__(self, *, fill: Literal["mean", "zero"] = "mean", dims: int = 2) -> None:
        super().__init__(dims=dims)
        if fill not in ("mean", "zero"):
            raise ConfigError(f"fill must be 'mean' or 'zero', got {fill!r}")
        self.fill = fill

    def _update(self, truth, forecast, valid):
        m, t = forecast.shape[:2]
        fc = rapsd(forecast, valid[None], fill=self.fill, dims=self.dims)
        self._add("forecast", fc * (m * t))
        self._add("n_forecast", m * t)
        self._add("truth", rapsd(truth, valid, fill=self.fill, dims=self.dims) * t)
        self._add("n_truth", t)

    def spectra(self) -> Spectra:
        """The spectra of everything seen so far, with ``forecast / truth`` (see :class:`Spectra`)."""
        p_fc = self._get("forecast") / self.state["n_forecast"]
        return Spectra.from_power(self.state["truth"] / self.state["n_truth"], p_fc)

    def finalize(self):
        sp = self.spectra()
        return {
            "lsd_db": log_spectral_distance(sp.forecast, sp.truth),
            "rapsd_k": sp.k.tolist(),
            "rapsd": sp.forecast.tolist(),
            "rapsd_truth": sp.truth.tolist(),
            "rapsd_ratio": sp.ratio.tolist(),
        }


# --------------------------------------------------------------------------- FSS


def _box_sum(x: np.ndarray, n: int, dims: int = 2) -> np.ndarray:
    """Sum of ``x [..., *S]`` over the ``n^dims`` window of each pixel, truncated at the edges.

    The window of pixel ``i`` covers ``[i - n // 2, i - n // 2 + n)`` on each axis
    (centred for odd ``n``; one pixel more before than after for even ``n``);
    outside the field counts as 0. Summed-area table (cumulative sums along every
    spatial axis) in float64.
    """
    spatial = x.shape[x.ndim - dims :]
    lo = [np.clip(np.arange(s) - n // 2, 0, s) for s in spatial]
    hi = [np.clip(np.arange(s) - n // 2 + n, 0, s) for s in spatial]
    return _box_sums(_summed_area(x, dims), lo, hi)


def neighbourhood_fractions(
    binary: np.ndarray,
    valid: np.ndarray,
    n: int,
    valid_count: np.ndarray | None = None,
    dims: int = 2,
) -> np.ndarray:
    """Fraction of valid pixels in each ``n^dims`` window where ``binary [..., *S]`` holds.

    ``binary`` may be fractional (an ensemble exceedance probability). Only
    valid pixels count, in the numerator and the denominator, so missing data
    and the field's edges shrink the window instead of counting as "no event".
    Pixels whose window has no valid pixel get 0. ``valid_count``: the
    precomputed ``_box_sum(valid, n)`` (shared by every threshold).
    """
    num = _box_sum(np.where(valid, binary, 0.0), n, dims)
    den = _box_sum(valid.astype(np.float64), n, dims) if valid_count is None else valid_count
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


@METRICS.register("fss")
class FSS(StreamingMetric):
    """Ensemble fractions skill score (Roberts and Lean 2008) at several thresholds and scales.

    Per time step: observed event field ``O = truth > thr``; forecast
    probability ``F`` = fraction of members ``> thr`` (0 or 1 for a deterministic
    forecast). Neighbourhood fractions ``Po``, ``Pf`` are the means of ``O``,
    ``F`` over the valid pixels of the ``n x n`` (3D: ``n x n x n``) window around each pixel (see
    :func:`neighbourhood_fractions`). Summed over valid pixels and all times:
    ``FSS = 1 - sum (Pf - Po)^2 / (sum Pf^2 + sum Po^2)`` (NaN when neither
    has an event). Also ``fss_useful`` = ``0.5 + f0 / 2`` per threshold, with
    ``f0`` the observed base rate (the "useful" skill level).

    Returns flat scalars ``fss_{thr:g}_{n}px`` and the curve ``fss`` =
    ``{"thresholds": [...], "scales": [...], "values": [[per scale] per threshold],
    "useful": [per threshold]}``.
    """

    name = "fss"
    config_fields = {"thresholds": "thresholds", "scales": "fss_scales"}

    def __init__(
        self,
        *,
        thresholds: Sequence[float] = (0.1, 1.0, 5.0),
        scales: Sequence[int] = (1, 4, 16, 32),
        dims: int = 2,
    ) -> None:
        super().__init__(dims=dims)
        self.thresholds = [float(t) for t in thresholds]
        self.scales = [int(s) for s in scales]
        if any(s < 1 for s in self.scales):
            raise ConfigError(f"FSS scales must be positive pixel counts, got {self.scales}")

    def _update(self, truth, forecast, valid):
        shape = (len(self.thresholds), len(self.scales))
        diff, f2, o2 = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        events = np.zeros(len(self.thresholds))
        counts = {n: _box_sum(valid.astype(np.float64), n, self.dims) for n in self.scales}
        for i, thr in enumerate(self.thresholds):
            obs = (np.where(valid, truth, -np.inf) > thr).astype(np.float64)
            prob = (np.where(valid[None], forecast, -np.inf) > thr).mean(axis=0, dtype=np.float64)
            events[i] = obs.sum()
            for j, n in enumerate(self.scales):
                po = neighbourhood_fractions(obs, valid, n, counts[n], self.dims)[valid]
                pf = neighbourhood_fractions(prob, valid, n, counts[n], self.dims)[valid]
                diff[i, j] = ((pf - po) ** 2).sum()
                f2[i, j] = (pf**2).sum()
                o2[i, j] = (po**2).sum()
        self._add("diff", diff)
        self._add("f2", f2)
        self._add("o2", o2)
        self._add("events", events)
        self._add("n", valid.sum())

    def finalize(self):
        diff, f2, o2 = self._get("diff"), self.state["f2"], self.state["o2"]
        den = f2 + o2
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(den > 0, 1.0 - diff / den, np.nan)
        n = float(self.state["n"])
        useful = [0.5 + _safe_div(e, n) / 2 for e in self.state["events"]]
        out: dict[str, Any] = {}
        for i, thr in enumerate(self.thresholds):
            for j, s in enumerate(self.scales):
                out[f"fss_{thr:g}_{s}px"] = float(values[i, j])
        out["fss"] = {
            "thresholds": self.thresholds,
            "scales": self.scales,
            "values": values.tolist(),
            "useful": useful,
        }
        return out
