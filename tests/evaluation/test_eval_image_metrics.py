"""Image metrics (geogan.evaluation.image_metrics) against scikit-image, direct formulas
and closed forms."""

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from geogan.core.errors import DataError
from geogan.core.registry import METRICS
from geogan.evaluation.image_metrics import (
    SSIM,
    ConfusionMatrix,
    FeatureStats,
    frechet_distance,
    frechet_distance_features,
    image_lsd,
    image_rapsd,
    segmentation_scores,
    ssim,
)
from geogan.evaluation.metrics import rapsd


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(0)
    x = rng.random((3, 20, 24))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    want = structural_similarity(x, y, data_range=1.0, channel_axis=0)
    assert ssim(x, y) == pytest.approx(want, rel=1e-9)
    assert ssim(x, x) == pytest.approx(1.0)
    with pytest.raises(DataError, match="window"):
        ssim(x[:, :5, :5], y[:, :5, :5])


def test_streaming_ssim_metric():
    assert METRICS.get("ssim") is SSIM
    rng = np.random.default_rng(1)
    truth = rng.random((2, 16, 16))
    ens = np.clip(truth[None] + rng.normal(0, 0.2, (3, 2, 16, 16)), 0, 1)
    m = SSIM(data_range=1.0)
    m.update(truth[:1], ens[:, :1])
    part = SSIM(data_range=1.0)
    part.update(truth[1:], ens[:, 1:])
    m.merge(part)
    want = np.mean(
        [
            structural_similarity(truth[t], ens[k, t], data_range=1.0)
            for k in range(3)
            for t in range(2)
        ]
    )
    assert m.finalize()["ssim"] == pytest.approx(want, rel=1e-9)


def test_confusion_matrix_scores_by_hand():
    truth = np.array([0, 0, 1, 1, 2, 2, 255])
    pred = np.array([0, 1, 1, 1, 0, 2, 3])
    cm = ConfusionMatrix(4, ignore_index=255)
    cm.update(truth, pred)
    out = cm.finalize(["a", "b", "c", "d"])
    # class 0: TP 1, FP 1, FN 1 -> 1/3; class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: 1/2
    assert out["iou"][:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert out["iou"][3] is None  # absent from truth and prediction: no IoU, not in the mean
    assert out["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert out["accuracy"][:3] == pytest.approx([0.5, 1.0, 0.5])
    assert out["pixel_accuracy"] == pytest.approx(4 / 6)
    assert out["support"] == [2, 2, 2, 0] and out["n_pixels"] == 6
    with pytest.raises(DataError):
        cm.update(np.array([0]), np.array([7]))


def test_segmentation_scores_absent_class_predicted():
    # a class in the prediction only has IoU 0 (it counts), accuracy undefined
    m = np.array([[5, 1], [0, 0]])
    out = segmentation_scores(m)
    assert out["iou"] == [pytest.approx(5 / 6), 0.0]
    assert out["accuracy"][1] is None


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, -1.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 1.0])
    want = 1 + 4 + (1 + 9 - 2 * 3) + (4 + 1 - 2 * 2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want)
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, (4000, 3))
    assert frechet_distance_features(a, a) == pytest.approx(0.0, abs=1e-8)
    b = a * 2 + 1
    # b = 2a + 1: mean shift mu_a + 1, covariance 4S: FD = |mu_a + 1|^2 + tr(S + 4S - 4S)
    cov = np.cov(a, rowvar=False)
    shift = a.mean(0) + 1
    assert frechet_distance_features(a, b) == pytest.approx(shift @ shift + np.trace(cov), rel=1e-6)
    stats = FeatureStats(3)
    stats.update(a[:1000])
    rest = FeatureStats(3)
    rest.update(a[1000:])
    stats.merge(rest)
    mu, c = stats.mean_cov()
    np.testing.assert_allclose(mu, a.mean(0))
    np.testing.assert_allclose(c, cov)


def test_image_spectra_and_lsd():
    rng = np.random.default_rng(3)
    imgs = rng.random((4, 3, 16, 16))
    np.testing.assert_allclose(image_rapsd(imgs), rapsd(imgs.reshape(12, 16, 16)))
    assert image_lsd(imgs, imgs) == 0.0
    # doubling the amplitude of the fluctuations is +6.02 dB at every k >= 1
    doubled = 2 * (imgs - imgs.mean(axis=(2, 3), keepdims=True)) + imgs.mean(
        axis=(2, 3), keepdims=True
    )
    assert image_lsd(imgs, doubled) == pytest.approx(10 * np.log10(4), rel=1e-6)
