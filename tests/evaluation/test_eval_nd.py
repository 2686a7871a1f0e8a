"""Metrics, baselines and the Evaluator on 3D fields, new distribution metrics, metric sets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from geogan.config.schema import EvaluateConfig
from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import METRICS
from geogan.evaluation import (
    Evaluator,
    build_metrics,
    coarse_valid_mask,
    evaluate,
    interpolate,
    power_spectra,
    scoring_mask,
)
from geogan.evaluation.baselines import METHODS, method_for_rank, resample_matrix
from geogan.evaluation.distributions import (
    PixelWasserstein,
    Wasserstein,
    ensemble_wasserstein,
)
from geogan.evaluation.metrics import (
    CRPS,
    FSS,
    RAPSD,
    EnsembleMeanErrors,
    PooledCRPS,
    RankHistogram,
    SpreadSkill,
    prepare,
    radial_wavenumbers,
    rapsd,
)
from geogan.evaluation.plots import make_figures


def _synthetic_3d(seed=0, m=4, t=2, d=6, h=7, w=8, hole=True):
    rng = np.random.default_rng(seed)
    truth = rng.gamma(0.7, 2.0, (t, d, h, w))
    truth[rng.random(truth.shape) < 0.3] = 0.0
    ens = np.clip(truth[None] + rng.normal(0, 1.0, (m, *truth.shape)), 0, None)
    valid = np.ones(truth.shape, dtype=bool)
    if hole:
        valid[:, 1:3, 2:4, 3:6] = False
        truth[~valid] = np.nan
        ens[:, :, 1, 2, 3] = np.nan
    return truth, ens, valid


# --------------------------------------------------------------------------- inputs


def test_prepare_nd_shapes_and_messages():
    truth, ens, valid = _synthetic_3d()
    t, f, v = prepare(truth[0], ens[:, 0], valid[0], dims=3)  # one time step
    assert t.shape == (1, 6, 7, 8) and f.shape == (4, 1, 6, 7, 8) and v.shape == t.shape
    t, f, v = prepare(truth, ens[0], valid, dims=3)  # deterministic
    assert f.shape == (1, 2, 6, 7, 8)
    with pytest.raises(DataError, match=r"\[M, T, D, H, W\]"):
        prepare(truth, ens[..., :4], valid, dims=3)
    with pytest.raises(DataError, match=r"\[T, D, H, W\] or \[D, H, W\]"):
        prepare(truth[0, 0], ens, dims=3)
    with pytest.raises(ConfigError, match="dims"):
        CRPS(dims=0)


# --------------------------------------------------------------------------- pixelwise metrics


def test_pixelwise_metrics_do_not_depend_on_the_rank():
    """Pixelwise scores of [T, D, H, W] equal those of the same values as [T, D*H, W]."""
    truth, ens, valid = _synthetic_3d(seed=1)
    flat = lambda a: a.reshape(*a.shape[:-3], -1, a.shape[-1])  # noqa: E731
    for cls in (CRPS, EnsembleMeanErrors, SpreadSkill, RankHistogram):
        three, two = cls(dims=3), cls()
        three.update(truth, ens, valid)
        two.update(flat(truth), flat(ens), flat(valid))
        assert three.finalize() == two.finalize(), cls.__name__
    # and against a direct formula: CRPS = mean|x - y| - mean|x - x'| / 2 (ecdf)
    crps = CRPS(dims=3)
    crps.update(truth, ens, valid)
    fc, obs = ens[:, valid], truth[valid]
    direct = np.abs(fc - obs).mean(0) - np.abs(fc[:, None] - fc[None]).mean((0, 1)) / 2
    assert crps.finalize()["crps"] == pytest.approx(direct.mean(), rel=1e-12)


# --------------------------------------------------------------------------- pooled CRPS


def test_pooled_crps_3d_vs_manual_pooling():
    truth, ens, valid = _synthetic_3d(seed=2, d=6, h=6, w=7)
    k, s = 3, 2
    metric = PooledCRPS(windows=[(k, s)], dims=3)
    metric.update(truth, ens, valid)
    out = metric.finalize()
    pt, pf = [], []
    for t in range(truth.shape[0]):
        for a, b, c in itertools.product(*(range(0, n - k + 1, s) for n in truth.shape[1:])):
            box = (t, slice(a, a + k), slice(b, b + k), slice(c, c + k))
            if valid[box].all():
                pt.append(truth[box].mean())
                pf.append(ens[(slice(None), *box)].mean(axis=(1, 2, 3)))
    pt, pf = np.array(pt), np.array(pf).T
    direct = np.abs(pf - pt).mean(0) - np.abs(pf[:, None] - pf[None]).mean((0, 1)) / 2
    assert out["n_pool3s2"] == len(pt) > 0
    assert out["crps_pool3s2"] == pytest.approx(direct.mean(), rel=1e-10)
    with pytest.raises(ConfigError, match=r"6 x 6 x 7"):
        PooledCRPS(windows=[(8, 4)], dims=3).update(truth, ens, valid)


# --------------------------------------------------------------------------- FSS


def _brute_fss_nd(truth, ens, valid, thr, n):
    """Direct loops over every pixel of [T, *S]: window [i - n//2, i - n//2 + n) per axis."""
    diff = f2 = o2 = 0.0
    for t in range(truth.shape[0]):
        obs = (np.nan_to_num(truth[t], nan=-np.inf) > thr) & valid[t]
        prob = (np.nan_to_num(ens[:, t], nan=-np.inf) > thr).mean(axis=0) * valid[t]
        for idx in np.ndindex(*truth.shape[1:]):
            if not valid[t][idx]:
                continue
            box = tuple(
                slice(max(i - n // 2, 0), min(i - n // 2 + n, size))
                for i, size in zip(idx, truth.shape[1:])
            )
            count = valid[t][box].sum()
            po, pf = obs[box].sum() / count, prob[box].sum() / count
            diff += (pf - po) ** 2
            f2 += pf**2
            o2 += po**2
    return 1 - diff / (f2 + o2)


def test_fss_3d_vs_brute_force_with_mask():
    truth, ens, valid = _synthetic_3d(seed=3, m=3, d=5, h=6, w=4)
    metric = FSS(thresholds=[0.5, 2.0], scales=[1, 2, 3], dims=3)
    metric.update(truth, ens, valid)
    out = metric.finalize()
    for thr, n in itertools.product((0.5, 2.0), (1, 2, 3)):
        assert out[f"fss_{thr:g}_{n}px"] == pytest.approx(
            _brute_fss_nd(truth, ens, valid, thr, n), rel=1e-10
        )


def test_fss_3d_identical_is_one_and_shifted_point_by_hand():
    truth, _, valid = _synthetic_3d(seed=4)
    same = FSS(thresholds=[0.5, 2.0], scales=[1, 3], dims=3)
    same.update(truth, np.stack([truth, truth]), valid)
    np.testing.assert_allclose(same.finalize()["fss"]["values"], 1.0)
    # one event, forecast one pixel away in x, far from the edges: at n = 1 no overlap
    # (FSS 0); 3x3x3 windows around the two points share 18 of 27 pixels:
    # sum (Pf - Po)^2 = 2 * 9 / 27^2, sum Pf^2 + Po^2 = 2 * 27 / 27^2 -> FSS = 1 - 18/54
    obs = np.zeros((1, 9, 9, 9))
    fc = np.zeros((1, 9, 9, 9))
    obs[0, 4, 4, 4] = 1.0
    fc[0, 4, 4, 5] = 1.0
    metric = FSS(thresholds=[0.5], scales=[1, 3], dims=3)
    metric.update(obs, fc)
    out = metric.finalize()
    assert out["fss_0.5_1px"] == 0.0
    assert out["fss_0.5_3px"] == pytest.approx(2 / 3, rel=1e-12)


# --------------------------------------------------------------------------- spectra


def test_radial_wavenumbers_3d_by_hand():
    k, n = radial_wavenumbers((4, 6, 8))
    assert n == 5 and k.shape == (4, 6, 8)
    for i, j, q in np.ndindex(4, 6, 8):
        f = np.array([np.fft.fftfreq(4)[i], np.fft.fftfreq(6)[j], np.fft.fftfreq(8)[q]])
        assert k[i, j, q] == round(8 * np.sqrt((f**2).sum()))


def test_rapsd_3d_plane_wave_in_one_shell():
    n = 16
    z, y, x = np.meshgrid(*[np.arange(n)] * 3, indexing="ij")
    wave = (3, 4, 0)  # |k| = 5 cycles per domain
    field = np.cos(2 * np.pi * (wave[0] * z + wave[1] * y + wave[2] * x) / n)
    p = rapsd(field, dims=3)
    assert p.shape == (n // 2 + 1,) and np.argmax(p) == 5
    assert p[[k for k in range(p.size) if k != 5]].max() < 1e-20
    # Parseval: the shell's mean times its bin count is the field's total power
    k3, _ = radial_wavenumbers((n, n, n))
    assert p[5] * (k3 == 5).sum() == pytest.approx((field**2).sum(), rel=1e-12)


def test_rapsd_3d_white_noise_is_flat_at_the_variance():
    rng = np.random.default_rng(5)
    p = rapsd(rng.normal(0, 2.0, (4, 32, 32, 32)), dims=3)
    assert p[1:].mean() == pytest.approx(4.0, rel=0.02)
    np.testing.assert_allclose(p[2:], 4.0, rtol=0.15)


def test_power_spectra_ratio_and_3d_metric():
    truth, _, valid = _synthetic_3d(seed=6, d=8, h=8, w=8)
    sp = power_spectra(truth, 2 * np.nan_to_num(truth), valid, dims=3)
    assert sp.k.tolist() == list(range(5))
    ok = sp.truth > 0
    np.testing.assert_allclose(sp.ratio[ok], 4.0, rtol=1e-12)  # power scales with amplitude^2
    metric = RAPSD(dims=3)
    metric.update(truth, 2 * np.nan_to_num(truth), valid)
    out = metric.finalize()
    assert out["lsd_db"] == pytest.approx(10 * np.log10(4), rel=1e-9)
    np.testing.assert_allclose(out["rapsd_ratio"], sp.ratio, rtol=1e-12)


# --------------------------------------------------------------------------- Wasserstein


def test_wasserstein_vs_scipy_within_its_bound():
    rng = np.random.default_rng(7)
    truth = rng.normal(1.0, 2.0, (3, 6, 10, 10))
    ens = rng.normal(1.5, 3.0, (4, 3, 6, 10, 10))
    valid = rng.random(truth.shape) > 0.2
    metric = Wasserstein(dims=3)
    metric.update(truth[:2], ens[:, :2], valid[:2])
    metric.update(truth[2:], ens[:, 2:], valid[2:])
    out = metric.finalize()
    ref = stats.wasserstein_distance(truth[valid], ens[:, valid].ravel())
    assert abs(out["wasserstein"] - ref) <= out["wasserstein_bound"]
    assert out["wasserstein_bound"] < 0.01 * ref
    # finer buckets get closer; identical distributions give 0
    fine = Wasserstein(alpha=1e-5, dims=3)
    fine.update(truth, ens, valid)
    assert fine.finalize()["wasserstein"] == pytest.approx(ref, rel=1e-4)
    same = Wasserstein()
    same.update(truth[0, 0], np.stack([truth[0, 0]] * 3))
    assert same.finalize()["wasserstein"] == 0.0


def test_wasserstein_zero_heavy_rain_and_merge():
    rng = np.random.default_rng(8)
    rain = np.where(rng.random((4, 16, 16)) < 0.6, 0.0, rng.exponential(2.0, (4, 16, 16)))
    ens = np.where(rng.random((3, 4, 16, 16)) < 0.5, 0.0, rng.exponential(1.5, (3, 4, 16, 16)))
    one = Wasserstein()
    one.update(rain, ens)
    a, b = Wasserstein(), Wasserstein()
    a.update(rain[:1], ens[:, :1])
    b.update(rain[1:], ens[:, 1:])
    a.merge(b)
    assert a.finalize() == one.finalize()
    ref = stats.wasserstein_distance(rain.ravel(), ens.ravel())
    assert one.finalize()["wasserstein"] == pytest.approx(ref, rel=2e-3)
    with pytest.raises(ConfigError, match="different buckets"):
        Wasserstein(alpha=0.01).merge(one)


def test_ensemble_wasserstein_exact_vs_scipy():
    rng = np.random.default_rng(9)
    a = rng.normal(size=(5, 40))
    b = rng.normal(0.5, 2.0, size=(7, 40))
    b[:, 0] = a[0, 0]  # ties across the two samples
    w = ensemble_wasserstein(a, b)
    ref = [stats.wasserstein_distance(a[:, i], b[:, i]) for i in range(40)]
    np.testing.assert_allclose(w, ref, rtol=1e-12, atol=1e-15)
    c = rng.normal(size=(5, 40))  # equal sizes: mean distance of the sorted samples
    np.testing.assert_allclose(
        ensemble_wasserstein(a, c), np.abs(np.sort(a, 0) - np.sort(c, 0)).mean(0), rtol=1e-12
    )


def test_pixel_wasserstein_metric_3d():
    truth, ens, valid = _synthetic_3d(seed=10)
    rng = np.random.default_rng(10)
    reference = np.where(valid, np.nan_to_num(truth), np.nan)[None] + rng.normal(
        0, 1, (6, *truth.shape)
    )
    metric = PixelWasserstein(dims=3)
    metric.update(reference, ens, valid)
    out = metric.finalize()
    fc, ref = ens[:, valid], reference[:, valid]
    direct = np.mean([stats.wasserstein_distance(fc[:, i], ref[:, i]) for i in range(fc.shape[1])])
    assert out["pixel_wasserstein"] == pytest.approx(direct, rel=1e-12)
    assert out["n_pixel_wasserstein"] == valid.sum()
    # a deterministic forecast: mean_r |x - y_r|
    det = PixelWasserstein(dims=3)
    det.update(reference, ens[0], valid)
    assert det.finalize()["pixel_wasserstein"] == pytest.approx(
        np.abs(ens[0][valid][None] - ref).mean(), rel=1e-12
    )
    # valid defaults to pixels where every reference member is finite
    default = PixelWasserstein(dims=3)
    default.update(reference, np.nan_to_num(ens))
    assert default.finalize()["n_pixel_wasserstein"] == valid.sum()
    with pytest.raises(DataError, match="reference members must be"):
        PixelWasserstein(dims=3).update(reference[0, 0], ens, valid)


# --------------------------------------------------------------------------- baselines


def test_linear_and_cubic_in_2d_equal_the_2d_names():
    rng = np.random.default_rng(11)
    coarse = rng.gamma(0.6, 2.0, (2, 5, 6)).astype(np.float32)
    coarse[0, 1, 1] = np.nan
    for generic, named in (("linear", "bilinear"), ("cubic", "bicubic")):
        np.testing.assert_array_equal(
            interpolate(coarse, 3, generic, nonnegative=True),
            interpolate(coarse, 3, named, nonnegative=True),
        )
    assert method_for_rank("bilinear", 3) == "trilinear"
    assert method_for_rank("bicubic", 3) == "tricubic"
    assert (
        method_for_rank("lanczos", 3) == "lanczos" and method_for_rank("bilinear", 2) == "bilinear"
    )
    with pytest.raises(ConfigError, match="'trilinear'"):
        interpolate(np.zeros((2, 3, 3, 3)), 2, "bilinear", dims=3)
    with pytest.raises(ConfigError, match="unknown baseline"):
        interpolate(np.zeros((3, 3)), 2, "quadrilinear")


def _fine(n: int, f: int) -> np.ndarray:
    return (np.arange(n * f) + 0.5) / f - 0.5


def test_trilinear_ramp_and_tricubic_quadratic_are_exact_in_the_interior():
    d, h, w, f = 6, 7, 8, 3
    z, y, x = np.meshgrid(np.arange(d), np.arange(h), np.arange(w), indexing="ij")
    fz, fy, fx = np.meshgrid(_fine(d, f), _fine(h, f), _fine(w, f), indexing="ij")
    ramp = 0.3 * z - 0.7 * y + 1.1 * x + 2.0
    out = interpolate(ramp, f, "trilinear")
    assert out.shape == (d * f, h * f, w * f) and out.dtype == np.float64
    s = slice(f, -f)
    np.testing.assert_allclose(
        out[s, s, s], (0.3 * fz - 0.7 * fy + 1.1 * fx + 2.0)[s, s, s], atol=1e-12
    )
    quad = 0.1 * z**2 - 0.05 * y**2 + 0.2 * x * y
    out = interpolate(quad, f, "tricubic")
    s = slice(2 * f, -2 * f)
    np.testing.assert_allclose(
        out[s, s, s], (0.1 * fz**2 - 0.05 * fy**2 + 0.2 * fx * fy)[s, s, s], atol=1e-9
    )


@pytest.mark.parametrize("method", ["linear", "cubic", "lanczos"])
def test_3d_interpolation_is_separable_1d_application(method):
    rng = np.random.default_rng(12)
    coarse = rng.normal(size=(2, 4, 5, 6))
    out = interpolate(coarse, (2, 3, 4), method, dims=3)
    az, ay, ax = (resample_matrix(n, f, method) for n, f in zip((4, 5, 6), (2, 3, 4)))
    ref = coarse
    for axis, a in zip((1, 2, 3), (az, ay, ax)):
        ref = np.moveaxis(np.tensordot(a, ref, axes=([1], [axis])), 0, axis)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    # a factor of 1 along z keeps the levels: each level is the 2D interpolation
    levels = interpolate(coarse, (1, 3, 3), method, dims=3)
    planar = interpolate(coarse, 3, method, dims=2)
    np.testing.assert_allclose(levels, planar, rtol=1e-12, atol=1e-12)


def test_3d_missing_values_and_valid_mask():
    rng = np.random.default_rng(13)
    coarse = rng.random((4, 4, 4))
    coarse[1, 2, 3] = np.nan
    out = interpolate(coarse, 2, "trilinear", nonnegative=True)
    expected = np.zeros((8, 8, 8), dtype=bool)
    expected[2:4, 4:6, 6:8] = True
    np.testing.assert_array_equal(np.isnan(out), expected)
    np.testing.assert_array_equal(coarse_valid_mask(coarse, 2, dims=3), ~expected)
    # halo 1: the 26-neighbourhood (clipped at the edge x = 3)
    assert (~coarse_valid_mask(coarse, 2, halo=1, dims=3)).sum() == 3 * 3 * 2 * 8
    truth = np.ones((1, 8, 8, 8))
    assert scoring_mask(truth, coarse[None], 2, dims=3).sum() == 512 - 8


# --------------------------------------------------------------------------- Evaluator


def _case_3d(seed=14, t=3, m=4, factor=2):
    rng = np.random.default_rng(seed)
    coarse = rng.gamma(0.6, 2.0, (t, 4, 5, 5))
    coarse[:, 0, 1, 1] = np.nan
    truth = np.clip(
        interpolate(coarse, factor, "trilinear") + rng.normal(0, 0.3, (t, 8, 10, 10)), 0, None
    )
    ens = np.clip(np.nan_to_num(truth)[None] + rng.normal(0, 0.5, (m, *truth.shape)), 0, None)
    return coarse, truth, ens, factor


def test_evaluate_3d_with_coarse_baselines_and_a_named_metric_set():
    coarse, truth, ens, f = _case_3d()
    cfg = EvaluateConfig(fss_scales=[1, 3], pool_windows=[(4, 2)], thresholds=[0.5])
    result = evaluate(truth, {"gan": ens}, None, cfg, coarse=coarse, factor=f, chunk_size=2)
    assert result["dims"] == 3
    assert set(result["methods"]) == {"gan", "trilinear", "tricubic", "lanczos"}
    valid = scoring_mask(truth, coarse, f, dims=3)
    assert {m["n_valid"] for m in result["methods"].values()} == {int(valid.sum())}
    assert len(result["truth"]["rapsd"]) == 10 // 2 + 1
    # a baseline inside evaluate equals the metric run by hand on the same mask
    crps = CRPS(dims=3)
    crps.update(truth, interpolate(coarse, f, "tricubic"), valid)
    assert result["methods"]["tricubic"]["crps"] == pytest.approx(crps.finalize()["crps"])
    # chunking does not matter
    again = evaluate(truth, {"gan": ens}, valid, cfg, coarse=coarse, factor=f, chunk_size=3)
    for key, value in result["methods"]["gan"].items():
        assert again["methods"]["gan"][key] == pytest.approx(value, rel=1e-9), key
    # a recipe's own metric set, with explicit kwargs and a reference ensemble
    rng = np.random.default_rng(0)
    reference = np.nan_to_num(truth)[None] + rng.normal(0, 0.5, (5, *truth.shape))
    own = evaluate(
        truth,
        {"gan": ens},
        None,
        cfg,
        metrics=["wasserstein", {"pixel_wasserstein": {}}, {"fss": {"scales": [2]}}],
        coarse=coarse,
        factor=f,
        baselines=["linear"],
        reference=reference,
    )
    assert own["metrics"] == ["wasserstein", "pixel_wasserstein", "fss"]
    assert set(own["methods"]) == {"gan", "linear"}
    gan = own["methods"]["gan"]
    assert {"wasserstein", "pixel_wasserstein", "fss_0.5_2px"} <= set(gan)
    assert "crps" not in gan and own["truth"] == {}
    ref_direct = PixelWasserstein(dims=3)
    ref_direct.update(reference, ens, valid)
    assert gan["pixel_wasserstein"] == pytest.approx(ref_direct.finalize()["pixel_wasserstein"])


def test_evaluator_metric_specs_and_errors():
    truth, ens, valid = _synthetic_3d(seed=15)
    ev = Evaluator(
        EvaluateConfig(rank_precision=None),
        {"a": 4, "det": 1},
        metrics={"crps": {}, "rank_histogram": {"ties": "split"}},
        dims=3,
    )
    ev.update(truth, {"a": ens, "det": ens[0]}, valid)
    out = ev.finalize()
    assert "rank_histogram" in out["curves"]["a"] and "rank_histogram" not in out["curves"]["det"]
    manual = RankHistogram(ties="split", dims=3)
    manual.update(truth, ens, valid)
    assert out["curves"]["a"]["rank_histogram"] == manual.finalize()["rank_histogram"]
    with pytest.raises(ConfigError, match="did you mean 'crps'"):
        Evaluator(None, {"a": 4}, metrics=["crsp"])
    with pytest.raises(ConfigError, match="named twice"):
        Evaluator(None, {"a": 4}, metrics=["crps", {"crps": {}}])
    with pytest.raises(ConfigError, match="no argument"):
        build_metrics([{"crps": {"scales": [1]}}])
    needs_ref = Evaluator(None, {"a": 4}, metrics=["pixel_wasserstein"], dims=3)
    with pytest.raises(DataError, match="reference="):
        needs_ref.update(truth, {"a": ens}, valid)
    # cfg fields reach the metrics; spec kwargs win over them
    fss, pooled = build_metrics(
        ["fss", {"pooled_crps": {"windows": [(2, 1)]}}],
        EvaluateConfig(fss_scales=[3], pool_windows=[(4, 4)]),
    )
    assert fss.scales == [3] and pooled.windows == [(2, 1)]


def test_every_registered_metric_runs_in_3d():
    truth, ens, valid = _synthetic_3d(seed=16, d=8, h=8, w=8)
    reference = np.where(valid, np.nan_to_num(truth), np.nan)[None] + np.arange(3).reshape(
        3, 1, 1, 1, 1
    )
    small = {
        "pooled_crps": {"windows": [(4, 2)]},
        "fss": {"scales": [1, 3]},
        "block_artefacts": {"factor": 2, "tile": 4},
        "roc": {"thresholds": [0.5]},
        "reliability": {"thresholds": [0.5]},
    }
    for name, cls in METRICS.items():
        if not cls.__module__.startswith("geogan.evaluation"):
            continue
        metric = cls(dims=3, **small.get(name, {}))
        metric.update(reference if cls.reference_ensemble else truth, ens, valid)
        out = metric.finalize()
        scalars = [v for v in out.values() if isinstance(v, float)]
        assert scalars and all(np.isfinite(scalars)), name
    assert {"wasserstein", "pixel_wasserstein"} <= set(METRICS)
    assert set(METHODS) >= {"bilinear", "bicubic", "lanczos", "trilinear", "tricubic"}


def test_figures_of_a_3d_result(tmp_path):
    coarse, truth, ens, f = _case_3d(seed=17)
    cfg = EvaluateConfig(fss_scales=[1, 2], pool_windows=[(4, 2)])
    result = evaluate(truth, {"gan": ens}, None, cfg, coarse=coarse, factor=f)
    valid = scoring_mask(truth, coarse, f, dims=3)
    sample = {"coarse": coarse[0], "truth": truth[0], "members": ens[:, 0], "valid": valid[0]}
    figures = make_figures(tmp_path, result, sample=sample, spectrum_ratio=True)
    assert {"sample_maps", "rapsd", "spectrum_ratio", "fss", "rank_histogram"} <= set(figures)
    for path in figures.values():
        with Image.open(path) as im:
            assert im.format == "PNG"


def test_evaluate_dataarrays_3d_with_reference():
    import xarray as xr

    coarse, truth, ens, f = _case_3d(seed=18)
    rng = np.random.default_rng(1)
    reference = np.nan_to_num(truth)[None] + rng.normal(0, 0.5, (3, *truth.shape))
    dims = ("time", "z", "y", "x")
    t_da = xr.DataArray(truth, dims=dims).transpose("z", "time", "y", "x")  # grid order kept
    e_da = xr.DataArray(ens, dims=("member", *dims)).transpose("time", "member", "z", "y", "x")
    r_da = xr.DataArray(reference, dims=("member", *dims)).transpose(
        "x", "member", "time", "z", "y"
    )
    c_da = xr.DataArray(coarse, dims=("time", "lev", "lat", "lon"))
    cfg = EvaluateConfig(fss_scales=[1], pool_windows=[(4, 2)])
    metric_set = ["crps", "pixel_wasserstein", "wasserstein"]
    kwargs = {"metrics": metric_set, "chunk_size": 2}
    from geogan.evaluation import evaluate_dataarrays

    got = evaluate_dataarrays(
        t_da, {"gan": e_da}, None, cfg, coarse=c_da, factor=f, reference=r_da, **kwargs
    )
    ref = evaluate(
        truth, {"gan": ens}, None, cfg, coarse=coarse, factor=f, reference=reference, **kwargs
    )
    for name in ref["methods"]:
        for key, value in ref["methods"][name].items():
            assert got["methods"][name][key] == pytest.approx(value, rel=1e-12), (name, key)
