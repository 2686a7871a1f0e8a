"""2D results pinned to the values of the 2D-only code (before metrics became rank-generic).

The numbers were computed with the metrics and baselines as they were before the N-D
generalisation; the generic code must reproduce them (to rounding of the last bits).
"""

from __future__ import annotations

import numpy as np
import pytest

from geogan.config.schema import EvaluateConfig
from geogan.evaluation import evaluate, interpolate
from geogan.evaluation.metrics import rapsd

CFG = EvaluateConfig(thresholds=[0.1, 1.0], fss_scales=[1, 4, 8], pool_windows=[(4, 2), (8, 4)])
RECIPE_1 = [
    "crps",
    "pooled_crps",
    "ensemble_mean_errors",
    "fss",
    "rapsd",
    "rank_histogram",
    "spread_skill",
]


def _case(seed=0, t=4, h=8, w=10, factor=4, m=5):
    rng = np.random.default_rng(seed)
    coarse = rng.gamma(0.6, 2.0, (t, h, w)).astype(np.float32)
    coarse[:, 1, 2] = np.nan
    truth = np.clip(
        interpolate(coarse, factor, "bilinear") + rng.normal(0, 0.3, (t, h * factor, w * factor)),
        0,
        None,
    )
    truth[:, -3:, :5] = np.nan
    ens = np.clip(
        np.nan_to_num(truth)[None] + rng.normal(0, 0.5, (m, *truth.shape)), 0, None
    ).astype(np.float32)
    return coarse, truth, ens, factor


PINNED = {
    "gan": {
        "crps": 0.16130747654829194,
        "crps_fair": 0.1107858026891201,
        "crps_pool8s4": 0.0302647979114501,
        "fss_1_4px": 0.9834744627690705,
        "lsd_db": 2.986780517944895,
        "rmse": 0.21570613810853895,
        "rank_max_ratio": 1.8578863090472377,
        "ssr": 2.3182190389245205,
        "n_valid": 4996,
        "n_pool4s2": 1080,
    },
    "det": {"crps": 0.1, "fss_1_4px": 0.9912695277384661, "crps_pool8s4": 0.1},
    "bicubic": {
        "crps": 0.29437534930151116,
        "crps_pool8s4": 0.07540785175012502,
        "fss_1_4px": 0.9760875183541623,
        "lsd_db": 2.6090773524292135,
        "rmse": 0.38658458013291347,
    },
}


@pytest.mark.parametrize("metrics", [None, RECIPE_1])
def test_evaluate_2d_values_are_pinned(metrics):
    coarse, truth, ens, f = _case()
    det = np.nan_to_num(truth) + 0.1
    kwargs = {} if metrics is None else {"metrics": metrics}
    result = evaluate(
        truth,
        {"gan": ens, "det": det},
        None,
        CFG,
        coarse=coarse,
        factor=f,
        nonnegative=True,
        chunk_size=3,
        **kwargs,
    )
    for method, expected in PINNED.items():
        for key, value in expected.items():
            assert result["methods"][method][key] == pytest.approx(value, rel=1e-12), (method, key)
    np.testing.assert_allclose(
        result["curves"]["gan"]["rapsd"][:4],
        [2042.3805220667532, 31.96289397801336, 27.46919962987797, 14.686966896055353],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        result["truth"]["rapsd"][19:21], [0.11724072964261002, 0.09954146687252438], rtol=1e-12
    )


def test_baselines_and_rapsd_2d_values_are_pinned():
    coarse, *_ = _case()
    sums = {
        "bilinear": 6035.947601994965,
        "bicubic": 6036.020849059177,
        "lanczos": 6036.291237495432,
    }
    squares = {
        "bilinear": 7136.356452577933,
        "bicubic": 8075.888140848898,
        "lanczos": 8736.502274270442,
    }
    for method in sums:
        out = interpolate(coarse, 4, method)
        assert out.dtype == np.float32 and out.shape == (4, 32, 40)
        assert float(np.nansum(out.astype(np.float64))) == pytest.approx(sums[method], rel=1e-9)
        out64 = interpolate(coarse.astype(np.float64), 3, method, nonnegative=True, halo=1)
        assert float(np.nansum(out64**2)) == pytest.approx(squares[method], rel=1e-12)
    rng = np.random.default_rng(5)
    fields = rng.normal(size=(3, 24, 40))
    np.testing.assert_allclose(
        rapsd(fields)[[0, 3, 19, 20]],
        [0.7970690021415414, 0.9117290131898597, 1.0128599078867246, 0.9663001303917649],
        rtol=1e-12,
    )
    valid = rng.random((3, 24, 40)) > 0.2
    np.testing.assert_allclose(
        rapsd(fields, valid)[[1, 7]], [1.3792369106920228, 0.6647840115674787], rtol=1e-12
    )
