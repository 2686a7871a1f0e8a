"""Interpolation baselines: exactness on ramps, agreement with PIL and torch, NaN handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from geogan.core.errors import ConfigError
from geogan.evaluation.baselines import (
    BASELINES,
    KERNELS,
    coarse_valid_mask,
    interpolate,
    resample_matrix,
)

SUPPORT = {name: support for name, (_, support) in KERNELS.items()}
PIL_FILTER = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}


def _fine_coords(n: int, factor: int) -> np.ndarray:
    """Centres of fine pixels in coarse-index units (align_corners=False)."""
    return (np.arange(n * factor) + 0.5) / factor - 0.5


def _interior(factor: int, method: str) -> slice:
    margin = SUPPORT[method] * factor
    return slice(margin, -margin)


@pytest.mark.parametrize("method", ["bilinear", "bicubic"])
def test_linear_ramp_reproduced_in_interior(method):
    h, w, f = 9, 11, 4
    jj, ii = np.meshgrid(np.arange(w), np.arange(h))
    coarse = 0.7 * ii - 1.3 * jj + 2.0
    out = interpolate(coarse, f, method)
    cx, cy = np.meshgrid(_fine_coords(w, f), _fine_coords(h, f))
    expected = 0.7 * cy - 1.3 * cx + 2.0
    s = _interior(f, method)
    np.testing.assert_allclose(out[s, s], expected[s, s], atol=1e-5)
    assert out.dtype == np.float64  # float64 in, float64 out


def test_bicubic_reproduces_quadratic_and_lanczos_near_linear():
    # Keys a = -0.5 is exact up to quadratics; normalised Lanczos-3 is close on a ramp
    h, f = 12, 3
    coarse = np.tile((np.arange(h) ** 2 * 0.1)[:, None], (1, 12))
    out = interpolate(coarse, f, "bicubic")
    c = _fine_coords(h, f)
    s = _interior(f, "bicubic")
    np.testing.assert_allclose(out[s, 5], (0.1 * c**2)[s], atol=1e-9)
    ramp = np.tile(np.arange(h, dtype=np.float64)[:, None], (1, 12))
    lan = interpolate(ramp, f, "lanczos")
    s = _interior(f, "lanczos")
    np.testing.assert_allclose(lan[s, 5], c[s], atol=0.02)  # < 2 % of a coarse pixel


@pytest.mark.parametrize("method", list(KERNELS))
def test_constant_field_exact_everywhere(method):
    out = interpolate(np.full((2, 5, 7), 3.25, dtype=np.float32), 4, method)
    assert out.shape == (2, 20, 28) and out.dtype == np.float32
    np.testing.assert_allclose(out, 3.25, rtol=1e-6)


@pytest.mark.parametrize("method", list(KERNELS))
def test_matches_pil_in_interior(method):
    rng = np.random.default_rng(1)
    coarse = rng.gamma(0.6, 2.0, (14, 17)).astype(np.float32)
    f = 4
    ours = interpolate(coarse, f, method)
    pil = np.asarray(
        Image.fromarray(coarse, mode="F").resize((17 * f, 14 * f), PIL_FILTER[method]),
        dtype=np.float32,
    )
    s = _interior(f, method)
    # identical kernel, centres and tap normalisation away from the edges
    np.testing.assert_allclose(ours[s, s], pil[s, s], atol=2e-5 * coarse.max())
    # edges differ only by replicate padding (ours) vs truncate-and-renormalise (PIL)
    assert np.abs(ours - pil).max() < 0.5 * (coarse.max() - coarse.min())
    if method == "bilinear":  # for the triangle kernel both edge rules coincide
        np.testing.assert_allclose(ours, pil, atol=1e-5 * coarse.max())


def test_bilinear_matches_torch_align_corners_false():
    rng = np.random.default_rng(2)
    coarse = rng.normal(size=(3, 2, 8, 6)).astype(np.float32)
    ours = interpolate(coarse, 5, "bilinear")
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(coarse), scale_factor=5, mode="bilinear", align_corners=False
    ).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_resample_matrix_rows_sum_to_one():
    for method in KERNELS:
        m = resample_matrix(7, 3, method)
        assert m.shape == (21, 7)
        np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("method", list(KERNELS))
def test_nan_handling(method):
    rng = np.random.default_rng(3)
    coarse = rng.random((10, 10))
    coarse_nan = coarse.copy()
    coarse_nan[4, 6] = np.nan
    f = 2
    out = interpolate(coarse_nan, f, method)
    expected_nan = np.zeros((20, 20), dtype=bool)
    expected_nan[8:10, 12:14] = True
    np.testing.assert_array_equal(np.isnan(out), expected_nan)
    np.testing.assert_array_equal(coarse_valid_mask(coarse_nan, f), ~expected_nan)
    # pixels whose kernel never reaches the missing coarse pixel are unaffected by the fill
    reference = interpolate(coarse, f, method)
    far = np.ones((20, 20), dtype=bool)
    r = (SUPPORT[method] + 1) * f
    far[8 - r : 10 + r, 12 - r : 14 + r] = False
    np.testing.assert_allclose(out[far], reference[far], atol=1e-12)
    # halo = 1 widens the NaN region to the 3 x 3 coarse neighbourhood
    wide = interpolate(coarse_nan, f, method, halo=1)
    assert np.isnan(wide).sum() == 9 * f * f
    assert np.isnan(wide[6:12, 10:16]).all()


def test_all_nan_map_stays_nan():
    coarse = np.full((2, 4, 4), np.nan)
    coarse[1] = 1.0
    out = interpolate(coarse, 2, "bicubic")
    assert np.isnan(out[0]).all() and np.allclose(out[1], 1.0)


def test_nonnegative_clipping():
    spike = np.zeros((12, 12))
    spike[5:7, 5:7] = 10.0  # a sharp rain cell: Lanczos rings below zero around it
    raw = interpolate(spike, 4, "lanczos")
    assert raw.min() < -0.1
    clipped = interpolate(spike, 4, "lanczos", nonnegative=True)
    assert clipped.min() == 0.0
    np.testing.assert_allclose(clipped[raw > 0], raw[raw > 0])
    # per-channel flags on [T, C, h, w]
    both = np.stack([spike, spike])[None]
    out = interpolate(both, 4, "lanczos", nonnegative=[True, False])
    assert out[0, 0].min() == 0.0 and out[0, 1].min() < -0.1
    with pytest.raises(ConfigError):
        interpolate(both, 4, "lanczos", nonnegative=[True, False, True])


def test_registry_and_errors():
    assert set(BASELINES) == {"bilinear", "bicubic", "lanczos"}
    coarse = np.arange(12.0).reshape(3, 4)
    for name, fn in BASELINES.items():
        np.testing.assert_array_equal(fn(coarse, 2), interpolate(coarse, 2, name))
    with pytest.raises(ConfigError, match="unknown baseline"):
        interpolate(coarse, 2, "nearest-ish")
    with pytest.raises(ConfigError, match="positive integer"):
        interpolate(coarse, 0, "bilinear")
