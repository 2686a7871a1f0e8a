"""evaluate(): one scoring mask for every method, baselines, chunking, xarray wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from geogan.config.schema import EvaluateConfig
from geogan.core.errors import DataError
from geogan.evaluation import (
    CRPS_ESTIMATOR,
    SCORING_RULE,
    evaluate,
    evaluate_dataarrays,
    interpolate,
    scoring_mask,
)
from geogan.evaluation.metrics import CRPS

CFG = EvaluateConfig(thresholds=[0.1, 1.0], fss_scales=[1, 4, 8], pool_windows=[(4, 2), (8, 4)])


def _case(seed=0, t=4, h=8, w=10, factor=4, m=5):
    """Rain-like coarse field with a missing pixel, truth made from it, and a noisy ensemble."""
    rng = np.random.default_rng(seed)
    coarse = rng.gamma(0.6, 2.0, (t, h, w)).astype(np.float32)
    coarse[:, 1, 2] = np.nan
    truth = np.clip(
        interpolate(coarse, factor, "bilinear") + rng.normal(0, 0.3, (t, h * factor, w * factor)),
        0,
        None,
    )
    truth[:, -3:, :5] = np.nan  # truth missing too
    ens = np.clip(
        np.nan_to_num(truth)[None] + rng.normal(0, 0.5, (m, *truth.shape)), 0, None
    ).astype(np.float32)
    return coarse, truth, ens, factor


def _assert_same_methods(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for key, value in a[name].items():
            assert value == pytest.approx(b[name][key], rel=1e-9, abs=1e-12), (name, key)


def test_scoring_mask_rule():
    coarse, truth, _, f = _case()
    valid = scoring_mask(truth, coarse, f)
    assert not valid[:, 4:8, 8:12].any()  # below the missing coarse pixel (1, 2)
    assert not valid[:, -3:, :5].any()  # missing truth
    assert valid.sum() == valid.size - 4 * (16 + 15)
    with pytest.raises(DataError, match="check the factor"):
        scoring_mask(truth, coarse, 2)


def test_evaluate_scores_every_method_on_the_same_pixels():
    coarse, truth, ens, f = _case()
    valid = scoring_mask(truth, coarse, f)
    det = np.nan_to_num(truth) + 0.1
    result = evaluate(
        truth,
        {"gan": ens, "det": det},
        valid,
        CFG,
        coarse=coarse,
        factor=f,
        nonnegative=True,
        chunk_size=3,
    )
    assert result["rule"] == SCORING_RULE and result["crps_estimator"] == CRPS_ESTIMATOR
    assert set(result["methods"]) == {"gan", "det", "bilinear", "bicubic", "lanczos"}
    assert {m["n_valid"] for m in result["methods"].values()} == {int(valid.sum())}
    assert result["n_valid"] == valid.sum() and result["n_times"] == 4
    gan, dt = result["methods"]["gan"], result["methods"]["det"]
    assert gan["members"] == 5 and "ssr" in gan and "rank_max_ratio" in gan
    assert "ssr" not in dt and dt["crps"] == pytest.approx(0.1, rel=1e-5) == dt["mae"]
    assert dt["bias"] == pytest.approx(0.1, rel=1e-5)
    # the baseline scored inside evaluate equals the metric run by hand on the same mask
    bil = interpolate(coarse, f, "bilinear", nonnegative=True)
    crps = CRPS()
    crps.update(truth, bil, valid)
    assert result["methods"]["bilinear"]["crps"] == pytest.approx(crps.finalize()["crps"], rel=1e-9)
    curves = result["curves"]["gan"]
    assert len(curves["rank_histogram"]) == 6 and len(curves["rank_histogram_nonzero"]) == 6
    assert np.asarray(curves["fss"]["values"]).shape == (2, 3)
    assert len(result["truth"]["rapsd"]) == len(curves["rapsd"]) == 40 // 2 + 1
    assert "rank_histogram" not in result["curves"]["bilinear"]
    # valid=None builds the same mask chunk by chunk
    again = evaluate(
        truth, {"gan": ens, "det": det}, None, CFG, coarse=coarse, factor=f, nonnegative=True
    )
    _assert_same_methods(again["methods"], result["methods"])


def test_evaluate_chunking_does_not_change_results():
    coarse, truth, ens, f = _case(seed=1, t=5)
    valid = scoring_mask(truth, coarse, f)
    a = evaluate(truth, {"gan": ens}, valid, CFG, chunk_size=1)
    b = evaluate(truth, {"gan": ens}, valid, CFG, chunk_size=5)
    _assert_same_methods(a["methods"], b["methods"])
    np.testing.assert_allclose(a["curves"]["gan"]["rapsd"], b["curves"]["gan"]["rapsd"], rtol=1e-9)


def test_evaluate_rejects_masks_that_break_the_rule():
    coarse, truth, ens, f = _case(seed=2)
    truth[:, 4:8, 8:12] = 1.0  # truth observed below the missing coarse pixel (1, 2) ...
    valid = np.isfinite(truth)  # ... and a mask that forgets the coarse half of the rule
    with pytest.raises(DataError, match="scoring_mask"):
        evaluate(truth, {"gan": ens}, valid, CFG, coarse=coarse, factor=f)
    with pytest.raises(DataError, match="clash"):
        evaluate(truth, {"bilinear": ens}, None, CFG, coarse=coarse, factor=f)
    with pytest.raises(DataError, match="factor"):
        evaluate(truth, {"gan": ens}, None, CFG, coarse=coarse)
    with pytest.raises(DataError, match=r"\[M, T, H, W\]"):
        evaluate(truth, {"gan": ens[None]}, None, CFG)


def test_evaluate_dataarrays_matches_numpy():
    coarse, truth, ens, f = _case(seed=3)
    dims = ("time", "y", "x")
    # grid dims in another order than the arrays' natural one: the wrapper transposes
    t_da = xr.DataArray(truth, dims=dims).transpose("y", "time", "x")
    e_da = xr.DataArray(ens, dims=("member", *dims)).transpose("time", "member", "y", "x")
    c_da = xr.DataArray(coarse, dims=("time", "lat", "lon"))
    result = evaluate_dataarrays(
        t_da, {"gan": e_da}, None, CFG, coarse=c_da, factor=f, chunk_size=2
    )
    ref = evaluate(truth, {"gan": ens}, None, CFG, coarse=coarse, factor=f)
    _assert_same_methods(result["methods"], ref["methods"])
    with pytest.raises(DataError, match="expected dims"):
        evaluate_dataarrays(t_da, {"gan": e_da.rename(member="ens")}, None, CFG)
