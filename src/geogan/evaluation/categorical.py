"""Verification of exceedance probabilities: ROC curves with their area, reliability diagrams
and the Brier score with its decomposition, at several thresholds, in any spatial rank.

An ensemble of ``M`` members gives, at every scored pixel and threshold ``thr``, the
probability ``p = k / M`` with ``k`` the number of members above ``thr`` (strictly); the
event is ``truth > thr``. A deterministic forecast is a 1-member ensemble (``p`` is 0 or 1).
Both metrics keep, per threshold, the number of (time, pixel) pairs with each ``k`` among
events and among non-events (a ``[thresholds, M + 1, 2]`` table of float64 counts), so they
stream over chunks, merge across ranks and never depend on how the data were chunked.

Inputs as in :mod:`geogan.evaluation.metrics`: truth ``[T, *S]``, forecast ``[M, T, *S]`` or
``[T, *S]``, valid ``[T, *S]`` (physical units, e.g. mm/h; thresholds in the same units).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geogan.core.registry import METRICS
from geogan.evaluation.metrics import StreamingMetric

__all__ = ["ROC", "Reliability", "exceedance_counts", "roc_points", "trapezoid_auc"]


def exceedance_counts(
    truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray, thresholds: Sequence[float]
) -> np.ndarray:
    """Counts ``[len(thresholds), M + 1, 2]``: entry ``[i, k, o]`` is the number of valid
    (time, pixel) pairs where ``k`` of the ``M`` members exceed ``thresholds[i]`` and the event
    ``truth > thresholds[i]`` did (``o = 1``) or did not (``o = 0``) happen.

    ``truth [T, *S]``, ``forecast [M, T, *S]``, ``valid [T, *S]`` bool (checked shapes).
    """
    m = forecast.shape[0]
    fc = forecast[:, valid]
    obs = truth[valid]
    out = np.zeros((len(thresholds), m + 1, 2), dtype=np.float64)
    for i, thr in enumerate(thresholds):
        k = (fc > thr).sum(axis=0)
        event = (obs > thr).astype(np.int64)
        out[i] = np.bincount(2 * k + event, minlength=2 * (m + 1)).reshape(m + 1, 2)
    return out


def roc_points(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC points of one threshold from its ``[M + 1, 2]`` counts (see :func:`exceedance_counts`).

    The warning rule "at least ``j`` of the ``M`` members exceed the threshold", for ``j = M,
    M - 1, ..., 0``, gives the false-alarm rate ``F_j`` (share of non-events warned) and the hit
    rate ``H_j`` (share of events warned). Returns ``(F, H)``, each ``[M + 2]``, from ``(0, 0)``
    (never warn) to ``(1, 1)`` (``j = 0``: always warn), non-decreasing. NaN when the table
    has no events (``H``) or no non-events (``F``).
    """
    counts = np.asarray(counts, dtype=np.float64)
    # warned at level j: k >= j; cumulative sums from k = M downwards
    warned = np.cumsum(counts[::-1], axis=0)  # [M + 1, 2]: j = M, ..., 0
    totals = counts.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        far = np.concatenate([[0.0], warned[:, 0] / totals[0]])
        hit = np.concatenate([[0.0], warned[:, 1] / totals[1]])
    if totals[0] <= 0:
        far[:] = np.nan
    if totals[1] <= 0:
        hit[:] = np.nan
    return far, hit


def trapezoid_auc(far: np.ndarray, hit: np.ndarray) -> float:
    """Area under the ROC curve through the points ``(far, hit)`` (trapezoidal rule).

    With the ensemble's own ``M + 1`` probability levels this equals the Mann-Whitney
    statistic: the probability that an event gets a higher ``p`` than a non-event, ties
    counted half. 0.5 is no skill, 1 is perfect discrimination.
    """
    far, hit = np.asarray(far, dtype=np.float64), np.asarray(hit, dtype=np.float64)
    if not (np.isfinite(far).all() and np.isfinite(hit).all()):
        return float("nan")
    return float(np.sum(np.diff(far) * (hit[1:] + hit[:-1]) / 2))


class _Exceedance(StreamingMetric):
    """Shared state of :class:`ROC` and :class:`Reliability`: exceedance counts per threshold."""

    config_fields = {"thresholds": "thresholds"}

    def __init__(self, *, thresholds: Sequence[float] = (0.1, 1.0, 5.0), dims: int = 2) -> None:
        super().__init__(dims=dims)
        self.thresholds = [float(t) for t in thresholds]

    def _update(self, truth, forecast, valid):
        self._add("counts", exceedance_counts(truth, forecast, valid, self.thresholds))

    def _tag(self, thr: float) -> str:
        return f"{thr:g}"


@METRICS.register("roc")
class ROC(_Exceedance):
    """ROC curve and its area (AUC) for the events ``truth > thr`` at each threshold.

    The curve's points are the warning rules "at least ``j`` of ``M`` members above ``thr``"
    (see :func:`roc_points`); the area is the trapezoidal one (:func:`trapezoid_auc`), which
    for a deterministic forecast (one point) is ``(H + 1 - F) / 2``.

    Returns ``roc_auc_{thr:g}`` per threshold (NaN when the scored pixels hold no event or
    no non-event at that threshold) and the curve ``roc`` = ``{"thresholds": [...],
    "false_alarm_rate": [[M + 2 values] per threshold], "hit_rate": [...], "auc": [...],
    "events": [...], "non_events": [...]}``.
    """

    name = "roc"

    def finalize(self) -> dict[str, Any]:
        counts = self._get("counts")
        out: dict[str, Any] = {}
        far_all, hit_all, aucs = [], [], []
        for i, thr in enumerate(self.thresholds):
            far, hit = roc_points(counts[i])
            auc = trapezoid_auc(far, hit)
            out[f"roc_auc_{self._tag(thr)}"] = auc
            far_all.append(far.tolist())
            hit_all.append(hit.tolist())
            aucs.append(auc)
        out["roc"] = {
            "thresholds": self.thresholds,
            "false_alarm_rate": far_all,
            "hit_rate": hit_all,
            "auc": aucs,
            "events": counts[:, :, 1].sum(axis=1).tolist(),
            "non_events": counts[:, :, 0].sum(axis=1).tolist(),
        }
        return out


@METRICS.register("reliability")
class Reliability(_Exceedance):
    """Reliability diagram and Brier score of the exceedance probability at each threshold.

    The probability bins are the ensemble's own levels ``p = k / M`` (``k = 0 .. M``), so
    no binning error enters: the observed frequency of bin ``k`` is the share of events among
    the pairs forecast with ``p = k / M``. The Brier score ``BS = mean (p - o)^2`` then splits
    exactly (Murphy 1973) into ``BS = REL - RES + UNC`` with reliability
    ``REL = sum_k n_k (p_k - obar_k)^2 / N`` (0 is perfect), resolution
    ``RES = sum_k n_k (obar_k - obar)^2 / N`` and uncertainty ``UNC = obar (1 - obar)``.

    Returns per threshold ``brier_{thr:g}``, ``brier_rel_{thr:g}``, ``brier_res_{thr:g}``,
    ``brier_unc_{thr:g}`` and the curve ``reliability`` = ``{"thresholds": [...],
    "probability": [M + 1 levels], "observed_frequency": [[M + 1] per threshold] (NaN for
    empty bins), "count": [[M + 1] per threshold], "base_rate": [...]}``.
    """

    name = "reliability"

    def finalize(self) -> dict[str, Any]:
        counts = self._get("counts")
        m = counts.shape[1] - 1
        p = np.arange(m + 1, dtype=np.float64) / max(m, 1)
        out: dict[str, Any] = {}
        observed, totals, base = [], [], []
        for i, thr in enumerate(self.thresholds):
            n_k = counts[i].sum(axis=1)  # [M + 1] pairs per probability level
            events_k = counts[i, :, 1]
            n = n_k.sum()
            with np.errstate(invalid="ignore", divide="ignore"):
                obar_k = np.where(n_k > 0, events_k / n_k, np.nan)
            obar = events_k.sum() / n if n > 0 else float("nan")
            used = n_k > 0
            if n > 0:
                # sum over pairs of (p - o)^2: events contribute (p - 1)^2, non-events p^2
                bs = float(((1 - p) ** 2 * events_k + p**2 * counts[i, :, 0]).sum() / n)
                rel = float((n_k[used] * (p[used] - obar_k[used]) ** 2).sum() / n)
                res = float((n_k[used] * (obar_k[used] - obar) ** 2).sum() / n)
                unc = float(obar * (1 - obar))
            else:
                bs = rel = res = unc = float("nan")
            tag = self._tag(thr)
            out[f"brier_{tag}"] = bs
            out[f"brier_rel_{tag}"] = rel
            out[f"brier_res_{tag}"] = res
            out[f"brier_unc_{tag}"] = unc
            observed.append(obar_k.tolist())
            totals.append(n_k.tolist())
            base.append(obar)
        out["reliability"] = {
            "thresholds": self.thresholds,
            "probability": p.tolist(),
            "observed_frequency": observed,
            "count": totals,
            "base_rate": base,
        }
        return out
