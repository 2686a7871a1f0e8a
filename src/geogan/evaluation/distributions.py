"""Distribution distances: pooled value distributions and per-pixel ensemble distributions.

Two streaming metrics (registered in :data:`geogan.core.registry.METRICS`, same
``update``/``merge``/``finalize`` protocol as :mod:`geogan.evaluation.metrics`):

- ``wasserstein`` (:class:`Wasserstein`): Wasserstein-1 distance between the distribution
  of all valid truth values and that of all member values at the same pixels -- does the
  generator produce the right climatology of values (heavy rain as often as observed)?
- ``pixel_wasserstein`` (:class:`PixelWasserstein`): at each valid (time, pixel), the W1
  distance between the M forecast members and R reference members, averaged -- for
  ensembles compared with a reference ensemble (``reference_ensemble = True``: its
  ``update`` takes the reference members ``[R, T, *S]`` where other metrics take the truth).

W1 of two distributions with CDFs F and G is ``integral |F(x) - G(x)| dx`` (units of the
data); it is the mean distance values must move to turn one distribution into the other.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import METRICS
from geogan.evaluation.metrics import StreamingMetric, check_dims, prepare, spatial_names

__all__ = [
    "PixelWasserstein",
    "Wasserstein",
    "ensemble_wasserstein",
    "prepare_reference",
    "wasserstein_from_counts",
]


def wasserstein_from_counts(values: np.ndarray, p: np.ndarray, q: np.ndarray) -> float:
    """Exact W1 between two discrete distributions on the sorted support ``values [K]``.

    ``p``, ``q``: non-negative weights ``[K]`` (normalised here). Returns
    ``sum_i |P_i - Q_i| (v_{i+1} - v_i)`` with ``P``, ``Q`` the cumulative sums.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return float("nan")
    cdf = np.cumsum(p) / p.sum() - np.cumsum(q) / q.sum()
    return float(np.sum(np.abs(cdf[:-1]) * np.diff(values)))


@METRICS.register("wasserstein")
class Wasserstein(StreamingMetric):
    """W1 between the pooled value distributions of truth and forecast over valid pixels.

    The truth distribution holds every valid (time, pixel) truth value once, the
    forecast distribution every member value at those pixels (each member counts once).

    Streaming: values are counted in logarithmic buckets of relative width ``alpha``
    (in the manner of the DDSketch quantile sketch): a value ``x`` with
    ``|x| >= min_abs`` falls in bucket ``sign(x) * ceil(log_g |x|)`` with
    ``g = (1 + alpha) / (1 - alpha)``, represented by ``2 g^k / (g + 1)``, within a
    relative ``alpha`` of ``x``; ``|x| < min_abs`` counts as 0; ``|x|`` beyond
    ``max_abs`` is clamped to it. The buckets are fixed, so states of several ranks
    merge by addition, and the W1 of the two bucketed distributions is computed exactly.
    Moving every value by at most ``alpha |x|`` (or ``min_abs``) moves W1 by at most
    ``alpha (E|truth| + E|forecast|) + 2 min_abs``: with the default ``alpha = 1e-3`` a
    thousandth of the mean magnitude, e.g. 1e-3 mm/h for a mean rain rate of 0.5 mm/h.

    Returns ``wasserstein`` (data units) and ``wasserstein_bound`` (the bound above).
    """

    name = "wasserstein"

    def __init__(
        self,
        *,
        alpha: float = 1e-3,
        min_abs: float = 1e-9,
        max_abs: float = 1e12,
        dims: int = 2,
    ) -> None:
        super().__init__(dims=dims)
        if not 0 < alpha < 0.5:
            raise ConfigError(f"wasserstein alpha must be in (0, 0.5), got {alpha}")
        if not 0 < min_abs < max_abs:
            raise ConfigError(f"need 0 < min_abs < max_abs, got {min_abs}, {max_abs}")
        self.alpha, self.min_abs, self.max_abs = float(alpha), float(min_abs), float(max_abs)
        gamma = (1 + self.alpha) / (1 - self.alpha)
        self._log_gamma = math.log(gamma)
        self._k_lo = math.floor(math.log(self.min_abs) / self._log_gamma)
        self._k_hi = math.ceil(math.log(self.max_abs) / self._log_gamma)
        self._n = self._k_hi - self._k_lo + 1
        positive = (
            2 * gamma ** np.arange(self._k_lo, self._k_hi + 1, dtype=np.float64) / (gamma + 1)
        )
        # bins in increasing value: negatives (largest magnitude first), zero, positives
        self.support = np.concatenate([-positive[::-1], [0.0], positive])

    def bucket(self, x: np.ndarray) -> np.ndarray:
        """Bin index ``[...]`` (into :attr:`support`) of each value of ``x``."""
        x = np.asarray(x, dtype=np.float64)
        a = np.abs(x)
        with np.errstate(divide="ignore"):
            k = np.ceil(np.log(np.maximum(a, self.min_abs)) / self._log_gamma).astype(np.int64)
        k = np.clip(k, self._k_lo, self._k_hi) - self._k_lo
        idx = np.where(x > 0, self._n + 1 + k, self._n - 1 - k)
        return np.where(a < self.min_abs, self._n, idx)

    def _count(self, x: np.ndarray) -> np.ndarray:
        return np.bincount(self.bucket(x).ravel(), minlength=2 * self._n + 1).astype(np.float64)

    def _update(self, truth, forecast, valid):
        obs = truth[valid]
        fc = forecast[:, valid]
        self._add("truth", self._count(obs))
        self._add("forecast", self._count(fc))
        self._add("abs_truth", np.abs(obs).sum())
        self._add("abs_forecast", np.abs(fc).sum())

    def merge(self, other):
        if (other.alpha, other.min_abs, other.max_abs) != (self.alpha, self.min_abs, self.max_abs):
            raise ConfigError("cannot merge wasserstein metrics with different buckets")
        super().merge(other)

    def finalize(self):
        p, q = self._get("truth"), self.state["forecast"]
        n_t, n_f = p.sum(), q.sum()
        bound = (
            self.alpha
            * (self.state["abs_truth"] / max(n_t, 1) + self.state["abs_forecast"] / max(n_f, 1))
            + 2 * self.min_abs
        )
        return {
            "wasserstein": wasserstein_from_counts(self.support, p, q),
            "wasserstein_bound": float(bound),
        }


def ensemble_wasserstein(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact W1 between the empirical distributions ``a [M, N]`` and ``b [R, N]`` per column.

    Both samples are merged and sorted per column; between consecutive merged values the
    two empirical CDFs are constant, so ``W1 = sum_i |F_i - G_i| (z_{i+1} - z_i)``.
    Returns ``[N]`` in the data's units. For ``M == R`` this equals
    ``mean |sort(a) - sort(b)|``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, r = a.shape[0], b.shape[0]
    z = np.concatenate([a, b], axis=0)
    order = np.argsort(z, axis=0, kind="stable")
    z = np.take_along_axis(z, order, axis=0)
    from_a = order < m
    cdf = np.cumsum(from_a, axis=0) / m - np.cumsum(~from_a, axis=0) / r
    return np.sum(np.abs(cdf[:-1]) * np.diff(z, axis=0), axis=0)


def prepare_reference(
    reference: np.ndarray,
    forecast: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    dims: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes: ``(reference [R, T, *S], forecast [M, T, *S], valid [T, *S] bool)``.

    ``reference``: ``[R, T, *S]`` or ``[R, *S]`` (one time step); ``forecast``:
    ``[M, T, *S]`` or ``[T, *S]`` (one member), matching; ``valid`` default: every
    reference member finite. The reference must be finite on valid pixels, and so must
    the forecast.
    """
    dims = check_dims(dims)
    names = spatial_names(dims)
    reference = np.asarray(reference)
    if reference.ndim == dims + 1:
        reference = reference[:, None]
        forecast = np.asarray(forecast)
        forecast = np.expand_dims(forecast, -dims - 1)
        valid = None if valid is None else np.asarray(valid)[None]
    if reference.ndim != dims + 2:
        raise DataError(
            f"reference members must be [R, T, {names}] or [R, {names}], got shape {reference.shape}"
        )
    if valid is None:
        valid = np.isfinite(reference).all(axis=0)
    else:
        valid = np.asarray(valid, dtype=bool)
        if not np.isfinite(reference[:, valid]).all():
            raise DataError(
                "the valid mask marks pixels where a reference member is NaN; AND it with "
                "isfinite(reference).all(axis=0)"
            )
    # the forecast checks of prepare() against the first reference member's grid
    _, forecast, valid = prepare(np.where(valid, reference[0], np.nan), forecast, valid, dims=dims)
    return reference, forecast, valid


@METRICS.register("pixel_wasserstein")
class PixelWasserstein(StreamingMetric):
    """Mean over valid (time, pixel) of the W1 distance between forecast and reference members.

    ``update(reference [R, T, *S], forecast [M, T, *S], valid [T, *S])``: at each pixel
    the M forecast values and the R reference values are two empirical distributions;
    their exact W1 (:func:`ensemble_wasserstein`) is averaged over valid pixels and
    times. A 1-member forecast gets ``mean_r |x - y_r|``. 0 for identical ensembles;
    for two samples of the same distribution it is positive and shrinks like
    ``1 / sqrt(min(M, R))``, so compare methods with the same member counts.

    Returns ``pixel_wasserstein`` (data units) and ``n_pixel_wasserstein``.
    """

    name = "pixel_wasserstein"
    reference_ensemble = True

    def update(
        self, reference: np.ndarray, forecast: np.ndarray, valid: np.ndarray | None = None
    ) -> None:
        """Add a chunk: reference ``[R, T, *S]``, forecast ``[M, T, *S]`` / ``[T, *S]``, valid ``[T, *S]``."""
        reference, forecast, valid = prepare_reference(reference, forecast, valid, dims=self.dims)
        self._check_members(forecast.shape[0])
        self._update(reference, forecast, valid)

    def _update(self, reference, forecast, valid):
        if not valid.any():
            self._add("sum", 0.0)
            self._add("n", 0)
            return
        w = ensemble_wasserstein(forecast[:, valid], reference[:, valid])
        self._add("sum", w.sum())
        self._add("n", w.size)

    def finalize(self) -> dict[str, Any]:
        n = float(self._get("n"))
        return {
            "pixel_wasserstein": float(self.state["sum"] / n) if n > 0 else float("nan"),
            "n_pixel_wasserstein": int(n),
        }
