"""ROC/AUC, reliability and the Brier score against direct formulas (no sklearn here)."""

from __future__ import annotations

import numpy as np
import pytest

from geogan.config.schema import EvaluateConfig
from geogan.core.registry import METRICS
from geogan.evaluation import evaluate
from geogan.evaluation.categorical import (
    ROC,
    Reliability,
    exceedance_counts,
    roc_points,
    trapezoid_auc,
)
from geogan.evaluation.plots import plot_reliability, plot_roc


def _case(seed=0, m=5, t=3, h=12, w=14):
    rng = np.random.default_rng(seed)
    truth = rng.gamma(0.8, 2.0, (t, h, w))
    truth[rng.random((t, h, w)) < 0.3] = 0.0
    ens = np.clip(truth[None] + rng.normal(0, 1.5, (m, t, h, w)), 0, None)
    valid = rng.random((t, h, w)) > 0.1
    truth = np.where(valid, truth, np.nan)
    return truth, ens, valid


def _mann_whitney(p: np.ndarray, o: np.ndarray) -> float:
    """P(p_event > p_non-event) + P(equal) / 2 over all (event, non-event) pairs, by brute force."""
    pe, pn = p[o], p[~o]
    greater = (pe[:, None] > pn[None, :]).mean()
    equal = (pe[:, None] == pn[None, :]).mean()
    return float(greater + 0.5 * equal)


def test_registered_and_counts_match_direct_tally():
    assert METRICS.get("roc") is ROC and METRICS.get("reliability") is Reliability
    truth, ens, valid = _case()
    counts = exceedance_counts(truth, ens, valid, [1.0])
    k = (ens[:, valid] > 1.0).sum(axis=0)
    o = truth[valid] > 1.0
    for j in range(ens.shape[0] + 1):
        assert counts[0, j, 1] == np.sum((k == j) & o)
        assert counts[0, j, 0] == np.sum((k == j) & ~o)
    assert counts.sum() == valid.sum()


@pytest.mark.parametrize("thr", [0.5, 1.0, 3.0])
def test_auc_equals_mann_whitney_and_points_by_brute_force(thr):
    truth, ens, valid = _case(seed=1, m=6)
    metric = ROC(thresholds=[thr])
    metric.update(truth, ens, valid)
    out = metric.finalize()
    p = (ens[:, valid] > thr).mean(axis=0)
    o = truth[valid] > thr
    assert out[f"roc_auc_{thr:g}"] == pytest.approx(_mann_whitney(p, o), rel=1e-12)
    # each point: warn when at least j of M members exceed the threshold
    far, hit = out["roc"]["false_alarm_rate"][0], out["roc"]["hit_rate"][0]
    m = ens.shape[0]
    for i, j in enumerate(range(m, -1, -1), start=1):
        warn = (ens[:, valid] > thr).sum(axis=0) >= j
        assert hit[i] == pytest.approx((warn & o).sum() / o.sum())
        assert far[i] == pytest.approx((warn & ~o).sum() / (~o).sum())
    assert (far[0], hit[0], far[-1], hit[-1]) == (0.0, 0.0, 1.0, 1.0)


def test_deterministic_and_perfect_and_no_events():
    truth, ens, valid = _case(seed=2)
    det = ens[0]
    metric = ROC(thresholds=[1.0])
    metric.update(truth, det, valid)
    out = metric.finalize()
    o = truth[valid] > 1.0
    f = det[valid] > 1.0
    h, fa = (f & o).sum() / o.sum(), (f & ~o).sum() / (~o).sum()
    assert out["roc_auc_1"] == pytest.approx((h + 1 - fa) / 2)
    perfect = ROC(thresholds=[1.0])
    perfect.update(truth, np.stack([np.nan_to_num(truth)] * 3), valid)
    assert perfect.finalize()["roc_auc_1"] == pytest.approx(1.0)
    none = ROC(thresholds=[1e6])
    none.update(truth, ens, valid)
    assert np.isnan(none.finalize()["roc_auc_1e+06"])
    far, hit = roc_points(np.array([[5.0, 0.0], [0.0, 0.0]]))
    assert np.isnan(hit).all() and trapezoid_auc(far, hit) != trapezoid_auc(far, hit)  # NaN


def test_reliability_and_brier_direct_formula_and_decomposition():
    truth, ens, valid = _case(seed=3, m=4)
    metric = Reliability(thresholds=[0.5, 2.0])
    metric.update(truth, ens, valid)
    out = metric.finalize()
    for i, thr in enumerate([0.5, 2.0]):
        p = (ens[:, valid] > thr).mean(axis=0)
        o = (truth[valid] > thr).astype(float)
        tag = f"{thr:g}"
        assert out[f"brier_{tag}"] == pytest.approx(np.mean((p - o) ** 2), rel=1e-12)
        # Murphy: BS = REL - RES + UNC, exactly, with the ensemble's own levels as bins
        assert out[f"brier_{tag}"] == pytest.approx(
            out[f"brier_rel_{tag}"] - out[f"brier_res_{tag}"] + out[f"brier_unc_{tag}"],
            rel=1e-10,
        )
        assert out[f"brier_unc_{tag}"] == pytest.approx(o.mean() * (1 - o.mean()))
        curve = out["reliability"]
        for k, level in enumerate(curve["probability"]):
            sel = np.isclose(p, level)
            assert curve["count"][i][k] == sel.sum()
            if sel.any():
                assert curve["observed_frequency"][i][k] == pytest.approx(o[sel].mean())
            else:
                assert np.isnan(curve["observed_frequency"][i][k])
    # a calibrated ensemble: members and truth exchangeable -> REL near 0
    rng = np.random.default_rng(4)
    mean = rng.gamma(1.0, 2.0, (1, 40, 40))
    draws = rng.exponential(np.broadcast_to(mean, (9, 1, 40, 40)))
    cal = Reliability(thresholds=[1.0])
    cal.update(draws[0], draws[1:])
    res = cal.finalize()
    assert res["brier_rel_1"] < 0.01 < res["brier_res_1"]


def test_streaming_merge_and_evaluate_integration(tmp_path):
    truth, ens, valid = _case(seed=5, t=4)
    one, a, b = ROC(thresholds=[1.0]), ROC(thresholds=[1.0]), ROC(thresholds=[1.0])
    one.update(truth, ens, valid)
    a.update(truth[:2], ens[:, :2], valid[:2])
    b.update(truth[2:], ens[:, 2:], valid[2:])
    a.merge(b)
    assert a.finalize()["roc_auc_1"] == one.finalize()["roc_auc_1"]
    cfg = EvaluateConfig(thresholds=[0.5, 1.0])
    result = evaluate(
        truth, {"gan": ens, "det": ens[0]}, valid, cfg, metrics=["roc", "reliability"]
    )
    assert set(result["methods"]["gan"]) >= {"roc_auc_0.5", "brier_1", "brier_rel_0.5"}
    assert result["curves"]["det"]["roc"]["thresholds"] == [0.5, 1.0]
    roc_png = plot_roc(tmp_path / "roc.png", {n: c["roc"] for n, c in result["curves"].items()})
    rel_png = plot_reliability(
        tmp_path / "rel.png", {n: c["reliability"] for n, c in result["curves"].items()}
    )
    assert roc_png.read_bytes()[:4] == b"\x89PNG" and rel_png.read_bytes()[:4] == b"\x89PNG"
