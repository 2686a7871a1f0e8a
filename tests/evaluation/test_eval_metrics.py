"""Every streaming metric against an independent formula or library value."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scores.continuous
import scores.probability
import scores.spatial
import xarray as xr
from scipy import stats

from geogan.core.errors import DataError
from geogan.core.registry import METRICS
from geogan.evaluation import metrics as M
from geogan.evaluation.metrics import (
    CRPS,
    FSS,
    RAPSD,
    EnsembleMeanErrors,
    PooledCRPS,
    RankHistogram,
    SpreadSkill,
    crps_ensemble,
    log_spectral_distance,
    rapsd,
)


def _brute_crps(members: np.ndarray, obs: np.ndarray, fair: bool = False) -> np.ndarray:
    """O(M^2) CRPS per point: mean|x_i - y| - sum_ij |x_i - x_j| / (2 K), K = M^2 or M (M - 1)."""
    m = members.shape[0]
    skill = np.abs(members - obs[None]).mean(axis=0)
    pairs = np.abs(members[:, None] - members[None, :]).sum(axis=(0, 1))
    k = m * (m - 1) if fair else m * m
    return skill - pairs / (2 * k)


def _synthetic(seed=0, m=6, t=3, h=20, w=24, hole=True):
    rng = np.random.default_rng(seed)
    truth = rng.gamma(0.7, 2.0, (t, h, w))
    truth[rng.random((t, h, w)) < 0.3] = 0.0  # dry pixels, ties at zero
    ens = np.clip(truth[None] + rng.normal(0, 1.0, (m, t, h, w)), 0, None)
    valid = np.ones((t, h, w), dtype=bool)
    if hole:
        valid[:, 3:7, 5:11] = False
        truth[:, 3:7, 5:11] = np.nan
        ens[:, :, 4, 6] = np.nan  # forecasts may be NaN off the mask
    return truth, ens, valid


# --------------------------------------------------------------------------- CRPS


def test_crps_pointwise_vs_brute_force_and_scores():
    rng = np.random.default_rng(0)
    members = rng.normal(size=(7, 300))
    obs = rng.normal(size=300)
    ecdf, fair = crps_ensemble(members, obs)
    np.testing.assert_allclose(ecdf, _brute_crps(members, obs), rtol=1e-12)
    np.testing.assert_allclose(fair, _brute_crps(members, obs, fair=True), rtol=1e-12)
    ref = scores.probability.crps_for_ensemble(
        xr.DataArray(members, dims=["member", "p"]),
        xr.DataArray(obs, dims=["p"]),
        "member",
        method="fair",
        preserve_dims="all",
    )
    np.testing.assert_allclose(fair, ref.values, rtol=1e-12)


def test_crps_hand_value():
    # members {0, 1}, obs 0.5: ecdf = 0.5 - 2 / 8 = 0.25; fair = 0.5 - 2 / 4 = 0
    ecdf, fair = crps_ensemble(np.array([[0.0], [1.0]]), np.array([0.5]))
    assert ecdf[0] == pytest.approx(0.25) and fair[0] == pytest.approx(0.0)


def test_crps_metric_masked_mean_and_one_member_is_mae():
    truth, ens, valid = _synthetic()
    metric = CRPS()
    metric.update(truth, ens, valid)
    out = metric.finalize()
    fc, obs = ens[:, valid], truth[valid]
    assert out["crps"] == pytest.approx(_brute_crps(fc, obs).mean(), rel=1e-12)
    assert out["crps_fair"] == pytest.approx(_brute_crps(fc, obs, fair=True).mean(), rel=1e-12)
    assert out["n_valid"] == valid.sum()
    # deterministic forecast ([T, H, W]) and 1-member ensemble: CRPS = MAE
    for fc1 in (ens[0], ens[:1]):
        det = CRPS()
        det.update(truth, fc1, valid)
        mae = np.abs(ens[0][valid] - truth[valid]).mean()
        assert det.finalize()["crps"] == pytest.approx(mae, rel=1e-12)
        assert det.finalize()["crps_fair"] == pytest.approx(mae, rel=1e-12)


def test_pooled_crps_vs_manual_pooling():
    truth, ens, valid = _synthetic(seed=1, t=2, h=16, w=20)
    metric = PooledCRPS(windows=[(4, 2), (4, 4)])
    metric.update(truth, ens, valid)
    out = metric.finalize()
    for k, s in [(4, 2), (4, 4)]:
        pooled_t, pooled_f = [], []
        for t in range(truth.shape[0]):
            for i in range(0, truth.shape[1] - k + 1, s):
                for j in range(0, truth.shape[2] - k + 1, s):
                    if valid[t, i : i + k, j : j + k].all():
                        pooled_t.append(truth[t, i : i + k, j : j + k].mean())
                        pooled_f.append(ens[:, t, i : i + k, j : j + k].mean(axis=(1, 2)))
        pt, pf = np.array(pooled_t), np.array(pooled_f).T
        assert out[f"n_pool{k}s{s}"] == len(pooled_t)
        assert out[f"crps_pool{k}s{s}"] == pytest.approx(_brute_crps(pf, pt).mean(), rel=1e-10)
        assert out[f"crps_fair_pool{k}s{s}"] == pytest.approx(
            _brute_crps(pf, pt, fair=True).mean(), rel=1e-10
        )
    # a lower window-validity threshold admits partially valid windows, averaged over valid pixels
    loose = PooledCRPS(windows=[(4, 4)], min_valid_fraction=0.5)
    loose.update(truth, ens, valid)
    assert loose.finalize()["n_pool4s4"] > out["n_pool4s4"]


# --------------------------------------------------------------------------- rank histogram


def test_rank_histogram_uniform_for_exchangeable_members():
    rng = np.random.default_rng(2)
    m = 9
    truth = rng.normal(size=(4, 64, 64))
    ens = rng.normal(size=(m, 4, 64, 64))
    metric = RankHistogram()
    metric.update(truth, ens)
    out = metric.finalize()
    counts = np.asarray(out["rank_histogram"]) * out["rank_n"]
    chi2 = stats.chisquare(counts).pvalue
    assert chi2 > 1e-3
    assert len(out["rank_histogram"]) == m + 1
    assert 0.9 < out["rank_min_ratio"] <= 1.0 <= out["rank_max_ratio"] < 1.1


def test_rank_histogram_degenerate_cases():
    m = 4
    truth = np.zeros((1, 4, 5))
    ens = np.zeros((m, 1, 4, 5))
    truth[0, :2] = 10.0  # above every member -> last bin
    ens[:, 0, 2] = 5.0  # truth 0 below every member -> first bin
    # row 3: truth and members all zero -> ties at zero rain
    split = RankHistogram(ties="split")
    split.update(truth, ens)
    out = split.finalize()
    n = 20
    expected = np.full(m + 1, 5 / (m + 1) / n)
    expected[-1] += 10 / n
    expected[0] += 5 / n
    np.testing.assert_allclose(out["rank_histogram"], expected)
    # the no-rain variant drops the 5 all-zero pixels
    expected_nz = np.zeros(m + 1)
    expected_nz[-1], expected_nz[0] = 10 / 15, 5 / 15
    np.testing.assert_allclose(out["rank_histogram_nonzero"], expected_nz)
    assert out["rank_n_nonzero"] == 15
    assert out["rank_max_ratio_nonzero"] == pytest.approx(10 / 15 * (m + 1))
    assert out["rank_min_ratio_nonzero"] == 0.0
    # random tie breaking: the tied pixels land somewhere in 0..M, the rest exactly as above
    rand = RankHistogram(ties="random", seed=3)
    rand.update(truth, ens)
    counts = np.asarray(rand.finalize()["rank_histogram"]) * n
    np.testing.assert_allclose(counts.sum(), n)
    assert counts[-1] >= 10 and counts[0] >= 5


def test_rank_histogram_ties_match_scores_and_random_is_unbiased():
    rng = np.random.default_rng(4)
    m = 5
    truth = rng.integers(0, 4, (2, 40, 40)).astype(float)  # many ties
    ens = rng.integers(0, 4, (m, 2, 40, 40)).astype(float)
    split = RankHistogram(ties="split")
    split.update(truth, ens)
    ref = scores.probability.rank_histogram(
        xr.DataArray(ens, dims=["member", "t", "y", "x"]),
        xr.DataArray(truth, dims=["t", "y", "x"]),
        "member",
    )
    np.testing.assert_allclose(split.finalize()["rank_histogram"], ref.values, atol=1e-12)
    rand = RankHistogram(ties="random")
    rand.update(truth, ens)
    np.testing.assert_allclose(rand.finalize()["rank_histogram"], ref.values, atol=0.02)


def test_rank_histogram_random_ties_do_not_depend_on_chunking():
    truth, ens, valid = _synthetic(seed=5, t=4)
    one = RankHistogram(seed=7)
    one.update(truth, ens, valid)
    two = RankHistogram(seed=7)
    two.update(truth[:1], ens[:, :1], valid[:1])
    two.update(truth[1:], ens[:, 1:], valid[1:])
    assert one.finalize() == two.finalize()
    other_seed = RankHistogram(seed=8)
    other_seed.update(truth, ens, valid)
    assert other_seed.finalize()["rank_histogram"] != one.finalize()["rank_histogram"]


# --------------------------------------------------------------------------- spread-skill


def test_spread_skill_calibrated_and_underdispersive():
    rng = np.random.default_rng(6)
    m, t, h, w = 10, 4, 64, 64
    mu = rng.normal(0, 3, (t, h, w))
    sigma = 1.5
    truth = mu + rng.normal(0, sigma, mu.shape)
    ens = mu[None] + rng.normal(0, sigma, (m, *mu.shape))
    metric = SpreadSkill()
    metric.update(truth, ens)
    assert metric.finalize()["ssr"] == pytest.approx(1.0, abs=0.05)
    # members with spread s_m around mu: E s^2 = s_m^2, MSE = s_m^2 / M + sigma^2
    s_m = 0.5
    under = mu[None] + rng.normal(0, s_m, (m, *mu.shape))
    metric = SpreadSkill()
    metric.update(truth, under)
    expected = np.sqrt((m + 1) / m * s_m**2) / np.sqrt(s_m**2 / m + sigma**2)
    out = metric.finalize()
    assert out["ssr"] == pytest.approx(expected, rel=0.05)
    assert out["spread"] == pytest.approx(s_m, rel=0.02)


def test_spread_skill_exact_formula_and_needs_members():
    truth, ens, valid = _synthetic(seed=7)
    metric = SpreadSkill()
    metric.update(truth, ens, valid)
    fc, obs = ens[:, valid], truth[valid]
    m = fc.shape[0]
    expected = np.sqrt((m + 1) / m * fc.var(axis=0, ddof=1).mean()) / np.sqrt(
        ((fc.mean(0) - obs) ** 2).mean()
    )
    assert metric.finalize()["ssr"] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(DataError, match="at least 2 members"):
        SpreadSkill().update(truth, ens[0], valid)


# --------------------------------------------------------------------------- errors


def test_ensemble_mean_errors_vs_scores():
    truth, ens, valid = _synthetic(seed=8)
    metric = EnsembleMeanErrors()
    metric.update(truth, ens, valid)
    out = metric.finalize()
    fc = xr.DataArray(ens[:, valid].mean(axis=0), dims=["p"])
    obs = xr.DataArray(truth[valid], dims=["p"])
    assert out["bias"] == pytest.approx(float(scores.continuous.mean_error(fc, obs)), rel=1e-12)
    assert out["rmse"] == pytest.approx(float(scores.continuous.rmse(fc, obs)), rel=1e-12)
    assert out["mae"] == pytest.approx(float(scores.continuous.mae(fc, obs)), rel=1e-12)


# --------------------------------------------------------------------------- RAPSD / LSD


def test_rapsd_white_noise_is_flat():
    rng = np.random.default_rng(9)
    sigma = 2.0
    fields = rng.normal(0, sigma, (8, 128, 128))
    p = rapsd(fields)
    assert p.shape == (65,)
    # |FFT|^2 / (H W) of white noise has expectation sigma^2 at every wavenumber
    assert p[1:].mean() == pytest.approx(sigma**2, rel=0.03)
    np.testing.assert_allclose(p[8:], sigma**2, rtol=0.2)
    slope = np.polyfit(np.log(np.arange(8, 65)), np.log(p[8:]), 1)[0]
    assert abs(slope) < 0.05


def test_rapsd_sinusoid_peaks_at_its_wavenumber():
    y, x = np.mgrid[0:64, 0:64]
    p = rapsd(np.sin(2 * np.pi * 10 * x / 64) + np.cos(2 * np.pi * 3 * y / 64))
    assert set(np.argsort(p)[-2:]) == {3, 10}
    assert p[[k for k in range(p.size) if k not in (3, 10)]].max() < 1e-20
    # non-square: wavenumbers are in cycles per longer side (L = 64), so 5 cycles over H = 32 -> k = 10
    y, x = np.mgrid[0:32, 0:64]
    assert np.argmax(rapsd(np.sin(2 * np.pi * 5 * y / 32))) == 10
    assert np.argmax(rapsd(np.sin(2 * np.pi * 7 * x / 64))) == 7


def test_lsd_identical_and_scaled():
    rng = np.random.default_rng(10)
    truth = rng.gamma(0.5, 1.0, (3, 32, 32))
    valid = np.ones(truth.shape, dtype=bool)
    valid[:, :4, :4] = False
    truth[~valid] = np.nan
    same = RAPSD()
    same.update(truth, np.stack([truth, truth]), valid)
    assert same.finalize()["lsd_db"] == pytest.approx(0.0, abs=1e-9)
    # scaling a field by sqrt(c) scales its power by c: 10 log10(c) dB at every k
    c = 3.0
    scaled = RAPSD()
    scaled.update(truth, np.sqrt(c) * np.nan_to_num(truth), valid)
    assert scaled.finalize()["lsd_db"] == pytest.approx(10 * abs(np.log10(c)), rel=1e-9)
    assert log_spectral_distance(np.ones(5), np.full(5, 10.0)) == pytest.approx(10.0)


def test_rapsd_fill_ignores_unscored_pixels():
    truth, ens, valid = _synthetic(seed=11)
    garbage = ens.copy()
    garbage[:, ~valid] = 1e6
    for fill in ("mean", "zero"):
        a, b = RAPSD(fill=fill), RAPSD(fill=fill)
        a.update(truth, ens, valid)
        b.update(truth, garbage, valid)
        np.testing.assert_allclose(a.finalize()["rapsd"], b.finalize()["rapsd"])


# --------------------------------------------------------------------------- FSS


def _brute_fss(truth, ens, valid, thr, n):
    """Direct loops: window [i - n//2, i - n//2 + n) clipped to the field, valid pixels only."""
    t_len, h, w = truth.shape
    diff = f2 = o2 = 0.0
    for t in range(t_len):
        obs = (np.nan_to_num(truth[t], nan=-np.inf) > thr) & valid[t]
        prob = (np.nan_to_num(ens[:, t], nan=-np.inf) > thr).mean(axis=0) * valid[t]
        for i, j in itertools.product(range(h), range(w)):
            if not valid[t, i, j]:
                continue
            r = slice(max(i - n // 2, 0), min(i - n // 2 + n, h))
            c = slice(max(j - n // 2, 0), min(j - n // 2 + n, w))
            count = valid[t, r, c].sum()
            po = obs[r, c].sum() / count
            pf = prob[r, c].sum() / count
            diff += (pf - po) ** 2
            f2 += pf**2
            o2 += po**2
    return 1 - diff / (f2 + o2)


def test_fss_vs_brute_force_with_mask():
    truth, ens, valid = _synthetic(seed=12, m=3, t=2, h=12, w=10)
    metric = FSS(thresholds=[0.5, 2.0], scales=[1, 2, 3, 5])
    metric.update(truth, ens, valid)
    out = metric.finalize()
    for thr in (0.5, 2.0):
        for n in (1, 2, 3, 5):
            assert out[f"fss_{thr:g}_{n}px"] == pytest.approx(
                _brute_fss(truth, ens, valid, thr, n), rel=1e-10
            )
    assert out["fss"]["scales"] == [1, 2, 3, 5]
    base_rate = ((np.nan_to_num(truth, nan=0) > 0.5) & valid).sum() / valid.sum()
    assert out["fss"]["useful"][0] == pytest.approx(0.5 + base_rate / 2)


def test_fss_perfect_forecast_is_one():
    truth, _, valid = _synthetic(seed=13)
    metric = FSS(thresholds=[0.1, 1.0, 5.0], scales=[1, 4, 16])
    metric.update(truth, np.stack([truth, truth]), valid)
    values = np.asarray(metric.finalize()["fss"]["values"])
    np.testing.assert_allclose(values, 1.0)
    none = FSS(thresholds=[1e9], scales=[1])
    none.update(truth, truth, valid)
    assert np.isnan(none.finalize()["fss_1e+09_1px"])  # no event anywhere: undefined


def test_fss_deterministic_matches_scores():
    rng = np.random.default_rng(14)
    t, h, w, border = 3, 48, 40, 8
    truth = np.zeros((t, h, w))
    fc = np.zeros((t, h, w))
    # events away from the edges, so truncated edge windows and scores' interior windows agree
    truth[:, border:-border, border:-border] = rng.gamma(
        0.5, 2.0, (t, h - 2 * border, w - 2 * border)
    )
    fc[:, border:-border, border:-border] = rng.gamma(0.5, 2.0, (t, h - 2 * border, w - 2 * border))
    metric = FSS(thresholds=[1.0], scales=[1, 4, 7])
    metric.update(truth, fc)
    out = metric.finalize()
    for n in (1, 4, 7):
        ref = scores.spatial.fss_2d(
            xr.DataArray(fc, dims=["t", "y", "x"]),
            xr.DataArray(truth, dims=["t", "y", "x"]),
            event_threshold=1.0,
            window_size=(n, n),
            spatial_dims=("y", "x"),
            reduce_dims="all",  # aggregate the decomposed sums over time
        )
        assert out[f"fss_1_{n}px"] == pytest.approx(float(ref), rel=1e-10)
    # identical members make an ensemble equal to its deterministic member
    ens = FSS(thresholds=[1.0], scales=[1, 4, 7])
    ens.update(truth, np.stack([fc, fc, fc]))
    assert ens.finalize()["fss"] == out["fss"]


# --------------------------------------------------------------------------- streaming, registry, inputs


def _all_metrics():
    return [
        CRPS(),
        PooledCRPS(windows=[(4, 2), (8, 4)]),
        RankHistogram(),
        SpreadSkill(),
        EnsembleMeanErrors(),
        RAPSD(),
        FSS(thresholds=[0.1, 1.0], scales=[1, 4]),
    ]


def _close(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _close(a[k], b[k])
    else:
        np.testing.assert_allclose(
            np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9, atol=1e-12
        )


def test_streaming_two_chunks_equals_one_shot_and_merge():
    truth, ens, valid = _synthetic(seed=15, t=5)
    for one, two, merged, part in zip(
        _all_metrics(), _all_metrics(), _all_metrics(), _all_metrics()
    ):
        one.update(truth, ens, valid)
        two.update(truth[:2], ens[:, :2], valid[:2])
        two.update(truth[2:], ens[:, 2:], valid[2:])
        _close(one.finalize(), two.finalize())
        if isinstance(one, RankHistogram):
            continue  # random tie draws are keyed by the global time index of one stream
        merged.update(truth[:2], ens[:, :2], valid[:2])
        part.update(truth[2:], ens[:, 2:], valid[2:])
        merged.merge(part)
        _close(one.finalize(), merged.finalize())


def test_every_registered_metric_runs():
    names = [n for n, cls in METRICS.items() if cls.__module__ == M.__name__]
    assert set(names) == {
        "crps",
        "pooled_crps",
        "rank_histogram",
        "spread_skill",
        "ensemble_mean_errors",
        "rapsd",
        "fss",
    }
    truth, ens, valid = _synthetic(seed=16, h=40, w=40)
    for name in names:
        metric = METRICS.get(name)()
        metric.update(truth, ens, valid)
        out = metric.finalize()
        scalars = [v for v in out.values() if isinstance(v, float)]
        assert scalars and all(np.isfinite(scalars)), name


def test_input_checks():
    truth, ens, valid = _synthetic(seed=17)
    bad = ens.copy()
    bad[0, 0, 0, 0] = np.nan  # NaN on a scored pixel
    with pytest.raises(DataError, match="NaN/inf on pixels of the scoring mask"):
        CRPS().update(truth, bad, valid)
    with pytest.raises(DataError, match="truth is NaN"):
        CRPS().update(truth, ens, np.ones_like(valid))
    with pytest.raises(DataError, match="forecast must be"):
        CRPS().update(truth, ens[:, :, :5], valid)
    metric = CRPS()
    metric.update(truth, ens, valid)
    with pytest.raises(DataError, match="members"):
        metric.update(truth, ens[:2], valid)
    with pytest.raises(DataError, match="no data"):
        CRPS().finalize()
    # a single [H, W] field is one time step
    single = CRPS()
    single.update(truth[0], ens[:, 0], valid[0])
    first = CRPS()
    first.update(truth[:1], ens[:, :1], valid[:1])
    assert single.finalize() == first.finalize()


def test_every_registered_metric_is_concrete():
    """StreamingMetric is an ABC: a registered metric missing ``_update``/``finalize`` would
    only fail when a config first asks for it."""
    import importlib
    import inspect

    from geogan.core.registry import METRICS

    for module in (
        "geogan.recipes.volume.metrics",
        "geogan.recipes.flood.metrics",
        "geogan.recipes.stylegan.metrics",
        "geogan.evaluation.image_metrics",
        "geogan.evaluation.distributions",
        "geogan.evaluation.artefacts",
        "geogan.evaluation.categorical",
    ):
        importlib.import_module(module)
    abstract = [name for name, cls in METRICS.items() if inspect.isabstract(cls)]
    assert not abstract, abstract
    assert "divergence" in METRICS and "crps" in METRICS
