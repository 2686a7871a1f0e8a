"""Recipe 2's own metrics (registered in :data:`geogan.core.registry.METRICS`).

- ``divergence`` (:class:`DivergenceStats`): statistics of the divergence of a velocity field,
  ``sum_a d u_a / d x_a`` by second-order central differences in grid units (one-sided at
  non-periodic edges, wrapping round periodic axes). Its ``update`` takes the velocity
  components stacked on a component axis: truth ``[T, K, *S]``, forecast ``[M, T, K, *S]``.
  The divergence of a gridded solenoidal field is not zero: it measures the difference
  stencil's truncation error on the smallest resolved scales, so a super-resolved velocity
  with the right small-scale structure has about the truth's mean |div|, while an
  interpolation (too smooth) has much less and an unconstrained noisy one more.
- ``spectrum_band`` (:class:`SpectrumBand`): the radially averaged power spectrum ratio
  ``P_forecast / P_truth`` (as ``rapsd``) summarised over wavenumbers ``1 .. k_max`` (the
  Nyquist wavenumber by default): its minimum, maximum, the value at ``k_max`` and the share
  of wavenumbers within ``[1 - tol, 1 + tol]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from geogan.core.errors import DataError
from geogan.core.registry import METRICS
from geogan.evaluation.metrics import RAPSD, StreamingMetric

__all__ = ["DivergenceStats", "SpectrumBand", "divergence", "divergence_valid"]


def _derivative(f: np.ndarray, axis: int, periodic: bool) -> np.ndarray:
    if periodic:
        return 0.5 * (np.roll(f, -1, axis=axis) - np.roll(f, 1, axis=axis))
    return np.gradient(f, axis=axis)


def divergence(
    components: Sequence[np.ndarray], axes: Sequence[int], periodic: Sequence[bool]
) -> np.ndarray:
    """``sum_i d components[i] / d x_{axes[i]}`` ``[..., *S]`` (float64, per grid cell).

    ``axes[i]``: the spatial axis (negative, counted from the last: -1 is x) that component
    ``i`` points along; ``periodic``: per spatial axis of ``S`` (in array order).
    """
    nd = len(periodic)
    out = None
    for comp, axis in zip(components, axes):
        c = np.asarray(comp, dtype=np.float64)
        d = _derivative(c, axis, bool(periodic[nd + axis]))
        out = d if out is None else out + d
    assert out is not None
    return out


def divergence_valid(
    valid: np.ndarray, axes: Sequence[int], periodic: Sequence[bool]
) -> np.ndarray:
    """Voxels whose difference stencil along ``axes`` sees only valid voxels."""
    nd = len(periodic)
    ok = np.asarray(valid, dtype=bool).copy()
    for axis in axes:
        per = bool(periodic[nd + axis])
        for shift in (1, -1):
            rolled = np.roll(valid, shift, axis=axis)
            if not per:
                edge = [slice(None)] * valid.ndim
                edge[axis] = 0 if shift == 1 else -1
                rolled[tuple(edge)] = valid[tuple(edge)]  # one-sided difference there
            ok &= rolled
    return ok


@METRICS.register("divergence")
class DivergenceStats(StreamingMetric):
    """Mean |div u| and RMS div u of forecast and truth velocities on valid voxels.

    ``axes``: the spatial axis each component points along (negative indices, -1 = x);
    ``periodic``: per spatial axis. ``update(truth [T, K, *S], forecast [M, T, K, *S] or
    [T, K, *S], valid [T, *S])``. Returns ``mean_abs_div``, ``mean_abs_div_truth``,
    ``div_ratio`` (forecast / truth mean |div|), ``rms_div``, ``rms_div_truth`` (units of the
    velocity per grid cell).
    """

    name = "divergence"

    def __init__(
        self,
        *,
        axes: Sequence[int] = (-1, -2, -3),
        periodic: Sequence[bool] = (False, False, False),
        dims: int = 3,
    ) -> None:
        super().__init__(dims=dims)
        self.axes = tuple(int(a) for a in axes)
        self.periodic = tuple(bool(p) for p in periodic)
        if len(self.periodic) != dims:
            raise DataError(f"divergence needs one periodic flag per spatial axis ({dims})")

    def update(self, truth, forecast, valid=None) -> None:
        truth = np.asarray(truth)
        forecast = np.asarray(forecast)
        k = len(self.axes)
        if truth.ndim != self.dims + 2 or truth.shape[1] != k:
            raise DataError(
                f"divergence truth must be [T, {k} components, *S], got shape {truth.shape}"
            )
        if forecast.ndim == truth.ndim:
            forecast = forecast[None]
        if forecast.shape[1:] != truth.shape:
            raise DataError(
                f"divergence forecast must be [M, {', '.join(map(str, truth.shape))}], got {forecast.shape}"
            )
        if valid is None:
            valid = np.isfinite(truth).all(axis=1)
        self._check_members(forecast.shape[0])
        self._update(truth, forecast, valid)

    def _update(self, truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray) -> None:
        """Accumulate checked ``truth [T, K, *S]``, ``forecast [M, T, K, *S]``, ``valid [T, *S]``
        (:meth:`update` has its own shape rules: the velocity components are an axis)."""
        for t in range(truth.shape[0]):
            ok = divergence_valid(valid[t], self.axes, self.periodic)
            d_true = divergence(list(truth[t]), self.axes, self.periodic)[ok]
            self._add("abs_truth", np.abs(d_true).sum())
            self._add("sq_truth", (d_true**2).sum())
            self._add("n_truth", d_true.size)
            for m in range(forecast.shape[0]):
                d = divergence(list(forecast[m, t]), self.axes, self.periodic)[ok]
                self._add("abs", np.abs(d).sum())
                self._add("sq", (d**2).sum())
                self._add("n", d.size)

    def finalize(self):
        n, nt = float(self._get("n")), float(self._get("n_truth"))
        mean_abs = float(self.state["abs"]) / max(n, 1)
        mean_abs_t = float(self.state["abs_truth"]) / max(nt, 1)
        return {
            "mean_abs_div": mean_abs,
            "mean_abs_div_truth": mean_abs_t,
            "div_ratio": mean_abs / mean_abs_t if mean_abs_t > 0 else float("nan"),
            "rms_div": math.sqrt(float(self.state["sq"]) / max(n, 1)),
            "rms_div_truth": math.sqrt(float(self.state["sq_truth"]) / max(nt, 1)),
        }


@METRICS.register("spectrum_band")
class SpectrumBand(RAPSD):
    """How far the forecast's radial power spectrum strays from the truth's, up to ``k_max``.

    Returns ``ratio_min``, ``ratio_max`` (of ``P_forecast / P_truth`` over ``k = 1 ..
    k_max``; default ``k_max``: the Nyquist wavenumber ``max(S) // 2``), ``ratio_at_kmax``
    and ``share_in_band`` (share of those wavenumbers with the ratio in ``[1 - tol, 1 + tol]``).
    """

    name = "spectrum_band"
    truth_curves = {}

    def __init__(self, *, tol: float = 0.1, k_max: int | None = None, fill="mean", dims: int = 2):
        super().__init__(fill=fill, dims=dims)
        self.tol, self.k_max = float(tol), k_max

    def finalize(self):
        sp = self.spectra()
        top = sp.ratio.size - 1 if self.k_max is None else min(int(self.k_max), sp.ratio.size - 1)
        r = sp.ratio[1 : top + 1]
        r = r[np.isfinite(r)]
        if r.size == 0:
            return {"ratio_min": float("nan"), "ratio_max": float("nan")}
        return {
            "ratio_min": float(r.min()),
            "ratio_max": float(r.max()),
            "ratio_at_kmax": float(sp.ratio[top]),
            "share_in_band": float(np.mean(np.abs(r - 1) <= self.tol)),
        }
