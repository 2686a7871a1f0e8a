"""Image metrics: SSIM, segmentation scores from a confusion matrix, Fréchet feature
distance, and the log-spectral distance of image spectra.

Shapes: images ``[N, C, H, W]`` (float, any fixed range, e.g. RGB in [0, 1]); class maps
``[N, H, W]`` (integers, ``ignore_index`` marks pixels not scored); feature sets
``[N, F]`` (one row per sample).

- :func:`ssim` / :class:`SSIM`: structural similarity (Wang et al. 2004) computed by
  scikit-image (``skimage.metrics.structural_similarity``: 7-pixel uniform window,
  K1 = 0.01, K2 = 0.03), averaged over the pixels scored; ``SSIM`` is registered in
  ``METRICS`` as ``ssim`` (streaming, fields ``[T, *S]`` in 2D or 3D).
- :class:`ConfusionMatrix`: streaming confusion matrix; per-class IoU ``TP / (TP + FP +
  FN)``, per-class accuracy ``TP / (TP + FN)`` (the share of the class's true pixels
  labelled right, a.k.a. producer's accuracy or recall), overall pixel accuracy, and
  their means over the classes present (a class absent from both truth and prediction
  has no IoU and is left out of the mean, not counted as 0 or 1).
- :class:`FeatureStats` / :func:`frechet_distance`: the Fréchet distance between two
  Gaussians fitted to feature sets, ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.
  With Inception features this is the FID; here it is computed on whatever features are
  given (e.g. a land-cover classifier's), so it must be reported as "Fréchet distance on
  <network> features", not as an FID.
- :func:`image_rapsd` / :func:`image_lsd`: radially averaged power spectra of images
  (mean over channels, :func:`geogan.evaluation.metrics.rapsd`) and the log-spectral
  distance in dB between two sets of images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import METRICS
from geogan.evaluation.metrics import StreamingMetric, log_spectral_distance, rapsd

__all__ = [
    "SSIM",
    "ConfusionMatrix",
    "FeatureStats",
    "frechet_distance",
    "frechet_distance_features",
    "image_lsd",
    "image_rapsd",
    "segmentation_scores",
    "ssim",
]


# --------------------------------------------------------------------------- SSIM


def _ssim_map(
    x: np.ndarray,
    y: np.ndarray,
    data_range: float,
    channel_axis: int | None,
    win_size: int,
) -> np.ndarray:
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(
        np.asarray(x, np.float64),
        np.asarray(y, np.float64),
        data_range=data_range,
        channel_axis=channel_axis,
        win_size=win_size,
        full=True,
    )
    if channel_axis is not None:
        full = full.mean(axis=channel_axis)
    return full


def _interior(a: np.ndarray, win_size: int) -> np.ndarray:
    # scikit-image averages SSIM without a border of (win_size - 1) // 2 pixels (its windows
    # would reach past the edge there); the mean over the scored pixels follows that rule
    pad = (win_size - 1) // 2
    return a[tuple(slice(pad, n - pad) for n in a.shape)]


def _check_window(shape: Sequence[int], win_size: int) -> None:
    if min(shape) < win_size:
        raise DataError(
            f"SSIM needs every spatial size >= its window ({win_size}), got {list(shape)}; "
            "use larger tiles or a smaller odd win_size"
        )


def ssim(
    x: np.ndarray,
    y: np.ndarray,
    *,
    data_range: float = 1.0,
    channel_axis: int | None = 0,
    valid: np.ndarray | None = None,
    win_size: int = 7,
) -> float:
    """Mean SSIM of one image pair (scikit-image), over ``valid`` pixels (default all).

    ``x``, ``y``: ``[C, H, W]`` with ``channel_axis=0`` (SSIM per channel, averaged), or
    ``[*S]`` (any rank) with ``channel_axis=None``. ``data_range``: max - min of the
    values (1 for images in [0, 1]). ``valid``: ``[H, W]`` / ``[*S]`` pixels averaged.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        raise DataError(f"SSIM needs images of one shape, got {x.shape} and {y.shape}")
    spatial = [n for a, n in enumerate(x.shape) if channel_axis is None or a != channel_axis]
    _check_window(spatial, win_size)
    full = _interior(_ssim_map(x, y, data_range, channel_axis, win_size), win_size)
    if valid is None:
        return float(full.mean())
    valid = _interior(np.asarray(valid, bool), win_size)
    if not valid.any():
        raise DataError("SSIM: no valid pixel (away from the border) to average over")
    return float(full[valid].mean())


@METRICS.register("ssim")
class SSIM(StreamingMetric):
    """Mean SSIM between each forecast member and the truth, over scored pixels.

    Fields ``[T, *S]`` (2D or 3D, one channel); invalid pixels are filled with the truth's
    mean over the valid ones (in truth and forecast alike) before the windows are taken,
    and only valid pixels away from the border are averaged (as scikit-image's mean). ``data_range``: fixed range of the values
    (e.g. 1.0 for reflectance); None: each truth field's valid max - min (0 -> 1).
    Result: ``{"ssim": mean over members, times and pixels, "n_fields": count}``.
    """

    name = "ssim"

    def __init__(self, *, dims: int = 2, data_range: float | None = None, win_size: int = 7):
        super().__init__(dims=dims)
        if data_range is not None and not data_range > 0:
            raise ConfigError(f"ssim data_range must be > 0, got {data_range}")
        if win_size < 3 or win_size % 2 == 0:
            raise ConfigError(f"ssim win_size must be an odd integer >= 3, got {win_size}")
        self.data_range, self.win_size = data_range, win_size

    def _update(self, truth: np.ndarray, forecast: np.ndarray, valid: np.ndarray) -> None:
        _check_window(truth.shape[1:], self.win_size)
        total, count, fields = 0.0, 0, 0
        for t in range(truth.shape[0]):
            v = valid[t]
            if not v.any():
                continue
            inner = _interior(v, self.win_size)
            fill = float(truth[t][v].mean())
            tt = np.where(v, truth[t], fill)
            rng = self.data_range
            if rng is None:
                rng = float(truth[t][v].max() - truth[t][v].min()) or 1.0
            for m in range(forecast.shape[0]):
                ff = np.where(v, forecast[m, t], fill)
                full = _interior(_ssim_map(tt, ff, rng, None, self.win_size), self.win_size)
                total += float(full[inner].sum())
                count += int(inner.sum())
                fields += 1
        self._add("sum", total)
        self._add("count", count)
        self._add("fields", fields)

    def finalize(self) -> dict[str, Any]:
        count = float(self._get("count"))
        return {
            "ssim": float(self._get("sum")) / count if count else float("nan"),
            "n_fields": float(self._get("fields")),
        }


# --------------------------------------------------------------------------- segmentation


class ConfusionMatrix:
    """Streaming ``[N, N]`` confusion matrix (rows: truth, columns: prediction).

    ``update(truth [..], pred [..])`` with integer classes; pixels where the truth is
    ``ignore_index`` (or outside ``[0, N)``) are not counted; a prediction outside
    ``[0, N)`` is a DataError.
    """

    def __init__(self, n_classes: int, *, ignore_index: int | None = None) -> None:
        if n_classes < 1:
            raise ConfigError(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes, self.ignore_index = int(n_classes), ignore_index
        self.matrix = np.zeros((n_classes, n_classes), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        truth, pred = np.asarray(truth), np.asarray(pred)
        if truth.shape != pred.shape:
            raise DataError(f"truth {truth.shape} and prediction {pred.shape} differ in shape")
        keep = (truth >= 0) & (truth < self.n_classes)
        if self.ignore_index is not None:
            keep &= truth != self.ignore_index
        t, p = truth[keep].astype(np.int64), pred[keep].astype(np.int64)
        if p.size and (p.min() < 0 or p.max() >= self.n_classes):
            raise DataError(f"predicted classes must be in [0, {self.n_classes})")
        self.matrix += np.bincount(t * self.n_classes + p, minlength=self.n_classes**2).reshape(
            self.n_classes, self.n_classes
        )

    def merge(self, other: ConfusionMatrix) -> None:
        if other.n_classes != self.n_classes:
            raise ConfigError("cannot merge confusion matrices of different class counts")
        self.matrix += other.matrix

    def finalize(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        return segmentation_scores(self.matrix, class_names)


def segmentation_scores(
    matrix: np.ndarray, class_names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Scores of a confusion matrix ``[N, N]`` (rows truth, columns prediction).

    Returns ``iou`` and ``accuracy`` per class (lists, None where undefined: IoU when the
    class is in neither truth nor prediction, accuracy when it is not in the truth),
    ``miou`` and ``mean_accuracy`` (means over the defined ones), ``pixel_accuracy``,
    ``support`` (true pixels per class) and ``n_pixels``.
    """
    m = np.asarray(matrix, np.float64)
    tp = np.diag(m)
    truth_n, pred_n = m.sum(axis=1), m.sum(axis=0)
    union = truth_n + pred_n - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(truth_n > 0, tp / truth_n, np.nan)
    total = m.sum()
    out: dict[str, Any] = {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "mean_accuracy": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "iou": [None if np.isnan(v) else float(v) for v in iou],
        "accuracy": [None if np.isnan(v) else float(v) for v in acc],
        "support": [int(v) for v in truth_n],
        "n_pixels": int(total),
    }
    if class_names is not None:
        out["classes"] = list(class_names)
    return out


# --------------------------------------------------------------------------- Fréchet distance


class FeatureStats:
    """Streaming mean and covariance of feature vectors ``[N, F]`` (float64 sums)."""

    def __init__(self, n_features: int) -> None:
        self.n = 0
        self.sum = np.zeros(n_features)
        self.outer = np.zeros((n_features, n_features))

    def update(self, features: np.ndarray) -> None:
        f = np.asarray(features, np.float64)
        if f.ndim != 2 or f.shape[1] != self.sum.size:
            raise DataError(f"features must be [N, {self.sum.size}], got {f.shape}")
        self.n += f.shape[0]
        self.sum += f.sum(axis=0)
        self.outer += f.T @ f

    def merge(self, other: FeatureStats) -> None:
        self.n += other.n
        self.sum += other.sum
        self.outer += other.outer

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``[F]`` and unbiased covariance ``[F, F]``; needs at least 2 vectors."""
        if self.n < 2:
            raise DataError("a Fréchet distance needs at least 2 feature vectors per set")
        mu = self.sum / self.n
        cov = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, cov


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(cov1 + cov2 - 2 sqrtm(cov1 @ cov2))`` (scipy's ``sqrtm``; the
    imaginary part left by round-off is dropped, a singular product gets a tiny ridge)."""
    from scipy import linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():
        ridge = np.eye(cov1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov1 + ridge) @ (cov2 + ridge))
    covmean = np.real(covmean)
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean)
    return float(max(value, 0.0))


def frechet_distance_features(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to feature sets ``a [N, F]``, ``b [M, F]``."""
    sa, sb = FeatureStats(np.shape(a)[1]), FeatureStats(np.shape(b)[1])
    sa.update(a)
    sb.update(b)
    return frechet_distance(*sa.mean_cov(), *sb.mean_cov())


# --------------------------------------------------------------------------- spectra


def image_rapsd(images: np.ndarray) -> np.ndarray:
    """RAPSD ``[K]`` of images ``[N, C, H, W]`` (or ``[C, H, W]``), averaged over images and
    channels (``|FFT|^2 / (H W)`` per channel, see :func:`~geogan.evaluation.metrics.rapsd`)."""
    x = np.asarray(images, np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise DataError(f"images must be [N, C, H, W], got shape {x.shape}")
    return rapsd(x.reshape(-1, *x.shape[-2:]))


def image_lsd(real: np.ndarray, fake: np.ndarray, k_min: int = 1) -> float:
    """Log-spectral distance (dB) between the mean spectra of two image sets ``[N, C, H, W]``."""
    return log_spectral_distance(image_rapsd(fake), image_rapsd(real), k_min=k_min)
