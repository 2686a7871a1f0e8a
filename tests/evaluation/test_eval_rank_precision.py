"""Rank histograms at the observations' precision (quantised radar rain rates)."""

from __future__ import annotations

import numpy as np
import pytest
import scores.probability
import xarray as xr

from geogan.config.schema import EvaluateConfig
from geogan.core.errors import ConfigError
from geogan.evaluation.evaluate import evaluate
from geogan.evaluation.metrics import RankHistogram, detect_precision


def _rain(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Continuous rain rates (mm/h): dry half the time, exponential (mean 1) otherwise."""
    return np.where(rng.random(shape) < 0.5, 0.0, rng.exponential(1.0, shape))


def _quantise(x: np.ndarray, q: float) -> np.ndarray:
    """What a radar reports: the rate rounded to a multiple of ``q``, stored as float32."""
    return (np.rint(x / q) * q).astype(np.float32)


@pytest.mark.parametrize("q", [0.12, 0.3])
def test_detect_precision_finds_the_radar_quantum(q):
    rng = np.random.default_rng(0)
    x = _quantise(_rain(rng, (4, 64, 64)), q)
    assert detect_precision(x) == pytest.approx(q, rel=1e-4)
    # with NaN outside the radar disc and the smallest multiple never observed
    f = np.float32(q)
    y = x.astype(np.float64)
    y[y == f] = 2 * f
    y[:, :8] = np.nan
    assert detect_precision(y) == pytest.approx(q, rel=1e-4)


def test_detect_precision_refuses_continuous_or_scarce_data():
    rng = np.random.default_rng(1)
    assert detect_precision(_rain(rng, (2, 64, 64))) is None  # continuous
    assert detect_precision(np.zeros((3, 10, 10))) is None  # all dry
    few = np.zeros((10, 10))
    few[0, :5] = 0.12
    assert detect_precision(few) is None  # fewer than 100 positive values
    # multiples of 0.1 plus one value off the lattice
    x = _quantise(_rain(rng, (2, 64, 64)), 0.1).astype(np.float64)
    x[0, 0, 0] = 0.1234
    assert detect_precision(x) is None


def test_rank_at_precision_by_hand():
    # truth 0.12; members 0.05, 0.13, 0.30 -> at q = 0.12: truth 1, members 0, 1, 2 (rint(2.5)=2)
    truth = np.array([[[0.12]]])
    ens = np.array([0.05, 0.13, 0.30]).reshape(3, 1, 1, 1)
    metric = RankHistogram(ties="split", precision=0.12)
    metric.update(truth, ens)
    out = metric.finalize()
    # raw: only 0.05 is below 0.12 -> rank 1
    np.testing.assert_allclose(out["rank_histogram"], [0, 1, 0, 0])
    # at precision: one member below, one tied -> ranks 1 and 2 half each
    np.testing.assert_allclose(out["rank_histogram_at_precision"], [0, 0.5, 0.5, 0])
    assert out["rank_precision"] == 0.12
    assert out["rank_n_nonzero_at_precision"] == 1


def test_rank_at_precision_matches_scores_on_rounded_values():
    rng = np.random.default_rng(2)
    q, m = 0.12, 6
    truth = _quantise(_rain(rng, (2, 32, 32)), q)
    ens = _rain(rng, (m, 2, 32, 32))
    metric = RankHistogram(ties="split", precision=q)
    metric.update(truth, ens)
    ref = scores.probability.rank_histogram(
        xr.DataArray(np.rint(ens / q), dims=["member", "t", "y", "x"]),
        xr.DataArray(np.rint(truth / q), dims=["t", "y", "x"]),
        "member",
    )
    np.testing.assert_allclose(
        metric.finalize()["rank_histogram_at_precision"], ref.values, atol=1e-12
    )


def test_quantised_truth_skews_raw_ranks_but_not_ranks_at_precision():
    """A calibrated ensemble (members and the latent truth exchangeable) ranked against the
    radar's rounded truth: raw ranks pile up in the lowest bin, ranks at the precision are flat."""
    rng = np.random.default_rng(3)
    q, m = 0.12, 16
    latent = rng.exponential(0.3, (4, 96, 96))  # mostly light rain: rounding matters
    truth = _quantise(latent, q)
    ens = rng.exponential(0.3, (m, 4, 96, 96))
    metric = RankHistogram(precision=q)
    metric.update(truth, ens)
    out = metric.finalize()
    assert out["rank_max_ratio_nonzero"] > 1.5  # the artefact
    assert 0.85 < out["rank_min_ratio_nonzero_at_precision"]
    assert out["rank_max_ratio_nonzero_at_precision"] < 1.15


def test_rank_precision_merge_and_validation():
    with pytest.raises(ConfigError):
        RankHistogram(precision=0.0)
    a, b = RankHistogram(precision=0.12), RankHistogram(precision=0.3)
    rng = np.random.default_rng(4)
    for metric in (a, b):
        metric.update(_quantise(_rain(rng, (1, 8, 8)), 0.12), _rain(rng, (3, 1, 8, 8)))
    with pytest.raises(ConfigError):
        a.merge(b)
    with pytest.raises(ValueError, match="rank_precision"):
        EvaluateConfig(rank_precision=-1.0)


@pytest.mark.parametrize(
    ("setting", "expected"), [("auto", 0.3), (None, None), (0.5, 0.5)], ids=str
)
def test_evaluate_resolves_rank_precision(setting, expected):
    rng = np.random.default_rng(5)
    truth = _quantise(_rain(rng, (3, 48, 48)), 0.3)
    ens = _rain(rng, (4, 3, 48, 48))
    cfg = EvaluateConfig(rank_precision=setting, fss_scales=[1], pool_windows=[(4, 2)])
    result = evaluate(truth, {"gan": ens}, None, cfg)
    gan = result["methods"]["gan"]
    if expected is None:
        assert "rank_precision" not in gan
        assert "rank_histogram_nonzero_at_precision" not in result["curves"]["gan"]
    else:
        assert gan["rank_precision"] == pytest.approx(expected, rel=1e-4)
        assert len(result["curves"]["gan"]["rank_histogram_nonzero_at_precision"]) == 5


def test_evaluate_auto_on_continuous_truth_has_no_precision():
    rng = np.random.default_rng(6)
    truth = rng.normal(size=(2, 32, 32))
    result = evaluate(truth, {"gan": rng.normal(size=(3, 2, 32, 32))}, None, EvaluateConfig())
    assert "rank_precision" not in result["methods"]["gan"]
