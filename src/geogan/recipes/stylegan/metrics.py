"""Ensemble-versus-ensemble metrics of recipe 5, registered in the METRICS registry.

Both compare a forecast ensemble (``[M, T, *S]``, e.g. enriched members) with a reference
ensemble (``[R, T, *S]``, held-out real members) at the same times, any spatial rank:

- ``correlation_length`` (:class:`CorrelationLength`): the local correlation length scale
  of each ensemble's perturbations. With ``e`` a member minus its ensemble mean, divided by
  the ensemble's standard deviation at that pixel, ``L = (mean_axes E[(d e / d s)^2])^-1/2``
  in grid lengths (finite differences; for a Gaussian correlation ``exp(-r^2 / 2 L^2)``
  this is L). The expectation runs over members and times, per pixel; reported are the
  domain means of both ensembles' maps and the mean absolute difference of the maps (seed
  004's ``length_scale_abs``, with this definition of L).
- ``multiscale_pixel_wasserstein`` (:class:`MultiscalePixelWasserstein`): the per-pixel W1
  distance between the two ensembles (:func:`~geogan.evaluation.distributions.ensemble_wasserstein`)
  after averaging both over ``k x k`` blocks, for each ``k`` of ``scales``: do the
  enriched members vary like the real ones at every scale, not just pixel by pixel?
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geogan.core.registry import METRICS
from geogan.evaluation.distributions import ensemble_wasserstein, prepare_reference
from geogan.evaluation.metrics import StreamingMetric

__all__ = ["CorrelationLength", "MultiscalePixelWasserstein", "normalised_perturbations"]


def normalised_perturbations(members: np.ndarray) -> np.ndarray:
    """``[M, T, *S]`` -> members minus their mean, divided by their (population) std, per
    time and pixel (a pixel without spread gets 0)."""
    x = np.asarray(members, dtype=np.float64)
    e = x - x.mean(axis=0, keepdims=True)
    sd = e.std(axis=0, keepdims=True)
    return np.divide(e, sd, out=np.zeros_like(e), where=sd > 0)


class _ReferenceMetric(StreamingMetric):
    reference_ensemble = True

    def update(self, reference, forecast, valid=None) -> None:
        reference, forecast, valid = prepare_reference(reference, forecast, valid, dims=self.dims)
        self._check_members(forecast.shape[0])
        self._update(reference, forecast, valid)


@METRICS.register("correlation_length")
class CorrelationLength(_ReferenceMetric):
    """Local correlation length scales of forecast and reference perturbations (grid units).

    ``periodic_last``: the last spatial axis wraps (global longitude). Pixels count where
    the pixel and its neighbours are valid. Returns ``corr_length``,
    ``corr_length_reference``, ``corr_length_mae`` and ``corr_length_ratio``.
    """

    name = "correlation_length"
    needs_ensemble = True

    def __init__(self, *, periodic_last: bool = False, dims: int = 2) -> None:
        super().__init__(dims=dims)
        self.periodic_last = periodic_last

    def _gradients(self, e: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum over spatial axes of squared differences, meaned over members: ``[T, *S']``
        on the inner grid (last index dropped on non-periodic axes), and its validity."""
        d = self.dims
        total, ok = None, None
        for a in range(d):
            axis = e.ndim - d + a
            vaxis = valid.ndim - d + a
            if self.periodic_last and a == d - 1:
                diff = np.roll(e, -1, axis=axis) - e
                vdiff = valid & np.roll(valid, -1, axis=vaxis)
            else:
                diff = np.diff(e, axis=axis)
                lo = [slice(None)] * valid.ndim
                hi = [slice(None)] * valid.ndim
                lo[vaxis], hi[vaxis] = slice(0, -1), slice(1, None)
                vdiff = valid[tuple(lo)] & valid[tuple(hi)]
                # back to the full grid (the last index along this axis has no pair)
                pad = [(0, 0)] * diff.ndim
                pad[axis] = (0, 1)
                diff = np.pad(diff, pad)
                vpad = [(0, 0)] * vdiff.ndim
                vpad[vaxis] = (0, 1)
                vdiff = np.pad(vdiff, vpad)
            sq = (diff**2).mean(axis=0)
            total = sq if total is None else total + sq
            ok = vdiff if ok is None else ok & vdiff
        inner = tuple(
            slice(None) if (self.periodic_last and a == d - 1) else slice(0, -1) for a in range(d)
        )
        index = (slice(None), *inner)
        return total[index] / d, ok[index]

    def _update(self, reference, forecast, valid):
        for key, ens in (("f", forecast), ("r", reference)):
            g, ok = self._gradients(normalised_perturbations(ens), valid)
            self._add(f"g_{key}", np.where(ok, g, 0.0).sum(axis=0))
            self._add(f"n_{key}", ok.sum(axis=0))

    def finalize(self) -> dict[str, Any]:
        out = {}
        maps = {}
        for key in ("f", "r"):
            n = self.state[f"n_{key}"]
            g = np.divide(self.state[f"g_{key}"], n, out=np.full(n.shape, np.nan), where=n > 0)
            maps[key] = np.where(g > 0, 1.0 / np.sqrt(np.where(g > 0, g, 1.0)), np.nan)
        both = np.isfinite(maps["f"]) & np.isfinite(maps["r"])
        lf, lr = float(np.mean(maps["f"][both])), float(np.mean(maps["r"][both]))
        out["corr_length"] = lf
        out["corr_length_reference"] = lr
        out["corr_length_mae"] = float(np.mean(np.abs(maps["f"] - maps["r"])[both]))
        out["corr_length_ratio"] = lf / lr if lr > 0 else float("nan")
        return out


def _block_mean(x: np.ndarray, k: int, dims: int) -> np.ndarray:
    """Mean over non-overlapping ``k``-blocks of the last ``dims`` axes (edges cropped)."""
    if k == 1:
        return x
    lead = x.shape[: x.ndim - dims]
    spatial = x.shape[x.ndim - dims :]
    cut = tuple(slice(0, (n // k) * k) for n in spatial)
    x = x[(Ellipsis, *cut)]
    shape = list(lead)
    for n in spatial:
        shape += [n // k, k]
    x = x.reshape(shape)
    return x.mean(axis=tuple(len(lead) + 2 * a + 1 for a in range(dims)))


@METRICS.register("multiscale_pixel_wasserstein")
class MultiscalePixelWasserstein(_ReferenceMetric):
    """Per-pixel W1 distance of the two ensembles after block averaging at each scale.

    Returns ``pixel_wasserstein_k<k>`` for each scale (data units) and
    ``pixel_wasserstein_multiscale`` (their mean). Blocks with an invalid pixel are skipped.
    """

    name = "multiscale_pixel_wasserstein"

    def __init__(self, *, scales: Sequence[int] = (1, 2, 4, 8), dims: int = 2) -> None:
        super().__init__(dims=dims)
        self.scales = [int(k) for k in scales]

    def _update(self, reference, forecast, valid):
        for k in self.scales:
            if min(valid.shape[-self.dims :]) < k:
                continue
            ok = _block_mean(valid.astype(np.float64), k, self.dims) == 1.0
            f = _block_mean(np.where(valid, forecast, 0.0), k, self.dims)
            r = _block_mean(np.where(valid, reference, 0.0), k, self.dims)
            if not ok.any():
                continue
            w = ensemble_wasserstein(f[:, ok], r[:, ok])
            self._add(f"sum_{k}", w.sum())
            self._add(f"n_{k}", w.size)

    def finalize(self) -> dict[str, Any]:
        out = {}
        values = []
        for k in self.scales:
            n = float(self.state.get(f"n_{k}", 0.0))
            v = float(self.state[f"sum_{k}"] / n) if n > 0 else float("nan")
            out[f"pixel_wasserstein_k{k}"] = v
            if np.isfinite(v):
                values.append(v)
        out["pixel_wasserstein_multiscale"] = float(np.mean(values)) if values else float("nan")
        return out
