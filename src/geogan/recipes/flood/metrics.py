"""Masker and painter metrics of the ``flood`` recipe.

Masker, water (the seed's metrics, ClimateGAN's ``eval_metrics``): each labelled pixel is
*must* (water), *cannot* (land) or *may* (within ``may_band`` pixels of a water edge:
mixed coastal pixels where a 0.05 degree land cover and a 1/15 degree image disagree by
construction). With the binary prediction ``p`` (probability above the threshold):

- ``tpr = TP / must``, ``fpr = FP / cannot``, ``precision = TP / (TP + FP)``;
- ``f05 = 1.25 * precision * tpr / (0.25 * precision + tpr)`` (F-beta, beta 0.5: precision
  counts more: painting water where there is none is the worse error);
- ``error = (FP + FN) / all labelled pixels``, ``accuracy = (TP + TN) / all``;
- ``mnr`` ("may" negative rate) ``= may pixels predicted dry / may pixels`` (``mpr = 1 - mnr``);
- ``edge_coherence``: per image, the standard deviation of the distance from each edge
  pixel of the prediction to the nearest edge pixel of the *must* label, divided by the
  image height (1 for an empty prediction of an image with water; images without water in
  both are skipped); the mean over images. Edges: pixels where the Sobel gradient of the
  binary map is non-zero (as the seed, with scipy's Sobel).

Rates are pooled over all pixels of the set (``f05`` etc.); ``f05_per_image`` is the mean
over images with water, as the seed averaged. Land cover: mIoU and accuracy from
:class:`geogan.evaluation.image_metrics.ConfusionMatrix`.

Both are streaming metrics registered in ``METRICS`` (``flood_water``, ``flood_landcover``):
``update(truth [T, H, W], forecast [T, H, W] or [M, T, H, W], valid [T, H, W])``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from geogan.core.registry import METRICS
from geogan.evaluation.image_metrics import ConfusionMatrix
from geogan.evaluation.metrics import StreamingMetric

__all__ = ["LandCoverScores", "WaterScores", "edge_coherence", "edges", "may_labels"]

CANNOT, MUST, MAY = 0, 1, 2


def may_labels(water: np.ndarray, band: int, valid: np.ndarray | None = None) -> np.ndarray:
    """Seed labels ``[H, W]``: 0 cannot (land), 1 must (water), 2 may (within ``band`` pixels
    of the water edge, on either side), -1 unlabelled."""
    w = water.astype(bool)
    out = np.where(w, MUST, CANNOT).astype(np.int8)
    if band > 0:
        st = np.ones((2 * band + 1, 2 * band + 1), bool)
        ring = ndimage.binary_dilation(w, st) & ~ndimage.binary_erosion(w, st, border_value=1)
        out[ring] = MAY
    if valid is not None:
        out[~valid.astype(bool)] = -1
    return out


def edges(binary: np.ndarray) -> np.ndarray:
    """Pixels ``[H, W]`` where the Sobel gradient of a binary map is non-zero."""
    b = binary.astype(np.float64)
    return np.hypot(ndimage.sobel(b, 0, mode="nearest"), ndimage.sobel(b, 1, mode="nearest")) > 0


def edge_coherence(pred: np.ndarray, must: np.ndarray) -> float | None:
    """Std of the distances (in image heights) from the prediction's edge pixels to the
    nearest edge pixel of ``must`` (seed definition); 1.0 for an empty prediction of an
    image with water; None when neither has an edge."""
    from scipy.spatial import cKDTree

    pe, le = np.argwhere(edges(pred)), np.argwhere(edges(must))
    if len(pe) == 0:
        return 1.0 if must.any() else None
    if len(le) == 0:
        return None
    dist, _ = cKDTree(le).query(pe)
    return float(np.std(dist / pred.shape[0]))


@METRICS.register("flood_water")
class WaterScores(StreamingMetric):
    """Water-mask scores of the seed (module docstring): truth water 0/1, forecast water
    probability (members averaged), valid = labelled pixels."""

    name = "flood_water"

    def __init__(self, *, dims: int = 2, may_band: int = 1, threshold: float = 0.5) -> None:
        super().__init__(dims=dims)
        if dims != 2:
            from geogan.core.errors import ConfigError

            raise ConfigError("flood_water scores 2D masks only (dims=2)")
        self.may_band, self.threshold = may_band, threshold
        self.n = 0
        self._edges: list[float] = []
        self._f05: list[float] = []

    def update(self, truth, forecast, valid=None, *, ignore_index: int | None = None) -> None:  # type: ignore[override]
        truth = np.asarray(truth)
        if ignore_index is not None:
            valid = (
                (truth != ignore_index)
                if valid is None
                else (np.asarray(valid, bool) & (truth != ignore_index))
            )
            truth = np.where(truth == ignore_index, 0, truth)
        super().update(truth.astype(np.float64), np.asarray(forecast, np.float64), valid)

    def _update(self, truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray) -> None:
        prob = forecast.mean(axis=0)  # [T, H, W]
        for t in range(truth.shape[0]):
            v = valid[t]
            if not v.any():
                continue
            lab = may_labels(truth[t] > 0.5, self.may_band, v)
            p = (prob[t] > self.threshold) & v
            must, cannot, may = lab == MUST, lab == CANNOT, lab == MAY
            tp, fp = float((p & must).sum()), float((p & cannot).sum())
            fn, tn = float((~p & must).sum()), float((~p & cannot).sum())
            self._add(
                "counts",
                [tp, fp, fn, tn, float((~p & may).sum()), float((p & may).sum()), float(v.sum())],
            )
            if must.any():
                prec = tp / (tp + fp) if tp + fp else 0.0
                rec = tp / (tp + fn)
                self._f05.append(1.25 * prec * rec / (0.25 * prec + rec) if prec + rec else 0.0)
            ec = edge_coherence(p, truth[t] > 0.5)
            if ec is not None:
                self._edges.append(ec)
            self.n += 1

    def merge(self, other: StreamingMetric) -> None:
        super().merge(other)
        self.n += other.n
        self._edges += other._edges
        self._f05 += other._f05

    def finalize(self) -> dict[str, Any]:
        tp, fp, fn, tn, may_neg, may_pos, total = (float(v) for v in self._get("counts"))

        def ratio(a: float, b: float) -> float:
            return a / b if b else float("nan")

        prec, tpr = ratio(tp, tp + fp), ratio(tp, tp + fn)
        f05 = 1.25 * prec * tpr / (0.25 * prec + tpr) if prec + tpr > 0 else 0.0
        return {
            "f05": f05,
            "precision": prec,
            "tpr": tpr,
            "fpr": ratio(fp, fp + tn),
            "error": ratio(fp + fn, total),
            "accuracy": ratio(tp + tn, total),
            "mnr": ratio(may_neg, may_neg + may_pos),
            "mpr": ratio(may_pos, may_neg + may_pos),
            "edge_coherence": float(np.mean(self._edges)) if self._edges else float("nan"),
            "f05_per_image": float(np.mean(self._f05)) if self._f05 else float("nan"),
            "n_images": float(self.n),
        }


@METRICS.register("flood_landcover")
class LandCoverScores(StreamingMetric):
    """Land-cover mIoU, mean and pixel accuracy: truth classes ``[T, H, W]``, forecast
    predicted classes ``[T, H, W]`` (a single member), valid = labelled pixels."""

    name = "flood_landcover"

    def __init__(self, *, dims: int = 2, n_classes: int = 17) -> None:
        super().__init__(dims=dims)
        self.cm = ConfusionMatrix(n_classes)

    def _update(self, truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray) -> None:
        if forecast.shape[0] != 1:
            from geogan.core.errors import DataError

            raise DataError("flood_landcover scores one predicted class map per image (1 member)")
        self.cm.update(
            np.where(valid, truth, -1).astype(np.int64),
            np.where(valid, forecast[0], 0).astype(np.int64),
        )
        self._add("n", 1.0)

    def merge(self, other: StreamingMetric) -> None:
        super().merge(other)
        self.cm.merge(other.cm)

    def finalize(self) -> dict[str, Any]:
        out = self.cm.finalize()
        return {
            "miou": out["miou"],
            "accuracy": out["pixel_accuracy"],
            "mean_accuracy": out["mean_accuracy"],
            "iou": out["iou"],
        }
