"""Masker metrics against hand computations and brute force."""

import numpy as np
import pytest

from geogan.core.registry import METRICS
from geogan.recipes.flood.metrics import (
    MAY,
    MUST,
    LandCoverScores,
    WaterScores,
    edge_coherence,
    edges,
    may_labels,
)


def test_may_band_is_both_sides_of_the_edge():
    w = np.zeros((8, 8), bool)
    w[:, :4] = True
    lab = may_labels(w, 1)
    assert (lab[:, 3:5] == MAY).all()
    assert (lab[:, :3] == MUST).all() and (lab[:, 5:] == 0).all()
    np.testing.assert_array_equal(may_labels(w, 0), w.astype(np.int8))


def test_water_scores_by_hand():
    truth = np.zeros((1, 6, 6))
    truth[0, :, :3] = 1
    prob = np.zeros((1, 6, 6))
    prob[0, :, :2] = 0.9  # misses column 2 (water)
    prob[0, 0, 5] = 0.8  # one false alarm on land
    m = WaterScores(may_band=0)
    m.update(truth, prob)
    r = m.finalize()
    tp, fp, fn, tn = 12, 1, 6, 17
    prec, rec = tp / (tp + fp), tp / (tp + fn)
    assert r["precision"] == pytest.approx(prec) and r["tpr"] == pytest.approx(rec)
    assert r["f05"] == pytest.approx(1.25 * prec * rec / (0.25 * prec + rec))
    assert r["error"] == pytest.approx((fp + fn) / 36) and r["accuracy"] == pytest.approx(
        (tp + tn) / 36
    )
    # with a 1-pixel may band columns 2 and 3 are "may", both predicted dry
    m1 = WaterScores(may_band=1)
    m1.update(truth, prob)
    r1 = m1.finalize()
    assert r1["mnr"] == 1.0 and r1["mpr"] == 0.0
    prec1 = 12 / 13  # must = columns 0-1 (all found), cannot = columns 4-5 (one false alarm)
    assert r1["f05"] == pytest.approx(1.25 * prec1 / (0.25 * prec1 + 1.0))


def test_ignored_pixels_and_registry():
    truth = np.array([[[1, 255], [0, 0]]])
    prob = np.array([[[0.9, 0.9], [0.1, 0.1]]])
    m = METRICS.get("flood_water")(may_band=0)
    m.update(truth, prob, ignore_index=255)
    assert m.finalize()["f05"] == pytest.approx(1.0)
    assert "flood_landcover" in METRICS


def test_edge_coherence_against_brute_force():
    rng = np.random.default_rng(0)
    must = np.zeros((20, 20), bool)
    must[5:15, 4:12] = True
    pred = np.zeros((20, 20), bool)
    pred[6:16, 5:14] = True
    pe, le = np.argwhere(edges(pred)), np.argwhere(edges(must))
    d = np.sqrt(((pe[:, None, :] - le[None, :, :]) ** 2).sum(-1)).min(axis=1) / 20
    assert edge_coherence(pred, must) == pytest.approx(np.std(d))
    assert edge_coherence(pred, pred) == 0.0
    assert edge_coherence(np.zeros_like(pred), must) == 1.0  # seed: blank prediction
    assert edge_coherence(np.zeros_like(pred), np.zeros_like(pred)) is None
    assert rng is not None


def test_landcover_scores_match_direct_iou():
    truth = np.array([[[0, 0, 1, 2], [1, 1, 2, 2]]])
    pred = np.array([[[0, 1, 1, 2], [1, 1, 0, 2]]])
    m = LandCoverScores(n_classes=3)
    m.update(truth.astype(float), pred.astype(float), np.ones_like(truth, bool))
    r = m.finalize()
    ious = []
    for c in range(3):
        inter = ((truth == c) & (pred == c)).sum()
        union = ((truth == c) | (pred == c)).sum()
        ious.append(inter / union)
    assert r["miou"] == pytest.approx(np.mean(ious))
    assert r["accuracy"] == pytest.approx((truth == pred).mean())
