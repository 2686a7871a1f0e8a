"""Generated physical fields (geogan.data.synthetic): spectra, statistics, divergence, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from geogan.core.errors import ConfigError
from geogan.data.synthetic import (
    lognormal_field,
    mantle_like,
    powerlaw_gaussian_field,
    solenoidal_velocity,
)
from geogan.evaluation.metrics import rapsd


def _slope(power: np.ndarray, lo: int, hi: int) -> float:
    k = np.arange(power.size)
    return float(np.polyfit(np.log(k[lo:hi]), np.log(power[lo:hi]), 1)[0])


@pytest.mark.parametrize("shape,slope", [((128, 128), 3.0), ((32, 32, 32), 4.0)])
def test_gaussian_field_has_the_asked_spectrum_and_variance(shape, slope):
    fields = np.stack(
        [powerlaw_gaussian_field(shape, slope, seed=s, variance=2.5) for s in range(4)]
    )
    assert fields.dtype == np.float32 and fields.shape == (4, *shape)
    np.testing.assert_allclose(fields.reshape(4, -1).var(axis=1), 2.5, rtol=1e-4)
    np.testing.assert_allclose(fields.reshape(4, -1).mean(axis=1), 0.0, atol=1e-5)
    fitted = _slope(rapsd(fields, dims=len(shape)), 2, max(shape) // 2 - 2)
    assert fitted == pytest.approx(-slope, abs=0.3)


def test_fields_are_pure_functions_of_the_seed():
    a = powerlaw_gaussian_field((16, 16, 16), 3.0, seed=7)
    np.testing.assert_array_equal(a, powerlaw_gaussian_field((16, 16, 16), 3.0, seed=7))
    assert not np.allclose(a, powerlaw_gaussian_field((16, 16, 16), 3.0, seed=8))
    m1, m2 = mantle_like((16, 16, 16), seed=3), mantle_like((16, 16, 16), seed=3)
    for k in m1:
        np.testing.assert_array_equal(m1[k], m2[k])


def test_lognormal_is_positive_with_mean_one_and_a_gaussian_log():
    rho = lognormal_field((48, 48, 48), 3.0, seed=1, sigma=0.8)
    assert rho.min() > 0
    assert rho.mean() == pytest.approx(1.0, abs=0.05)
    # log rho is the Gaussian field shifted by -sigma^2/2: its variance is sigma^2
    assert np.log(rho).var() == pytest.approx(0.64, rel=1e-3)
    assert np.log(rho).mean() == pytest.approx(-0.32, abs=1e-3)


def _spectral_divergence(vel: np.ndarray) -> np.ndarray:
    nd = vel.shape[0]
    shape = vel.shape[1:]
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij")
    total = 0
    for c in range(nd):  # component c points along axis nd - 1 - c
        total = total + 2j * np.pi * freqs[nd - 1 - c] * np.fft.fftn(vel[c])
    return np.fft.ifftn(total).real


@pytest.mark.parametrize("shape", [(32, 48), (16, 24, 20)])
def test_solenoidal_velocity_is_divergence_free_spectrally(shape):
    vel = solenoidal_velocity(shape, 3.0, seed=2, rms=1.5)
    assert vel.shape == (len(shape), *shape)
    rms = np.sqrt(np.mean(np.sum(vel.astype(np.float64) ** 2, axis=0)))
    assert rms == pytest.approx(1.5, rel=1e-5)
    div = _spectral_divergence(vel.astype(np.float64))
    grad = np.abs(np.gradient(vel[0].astype(np.float64), axis=-1)).mean()
    assert np.abs(div).mean() < 1e-5 * grad
    # its finite-difference divergence is not zero (the stencil's truncation error)
    fd = sum(np.gradient(vel[c], axis=len(shape) - 1 - c) for c in range(len(shape)))
    assert np.abs(fd).mean() > 0.05 * grad


def test_velocity_spectrum_follows_the_slope():
    vel = solenoidal_velocity((48, 48, 48), 4.0, seed=0)
    p = rapsd(vel[0], dims=3)
    assert _slope(p, 3, 20) == pytest.approx(-4.0, abs=0.4)


def test_mantle_like_temperature_rises_with_w_and_has_its_moments():
    m = mantle_like((32, 32, 32), seed=5, correlation=0.8, temperature_std=0.2)
    assert set(m) == {"T", "u", "v", "w"}
    assert m["T"].mean() == pytest.approx(0.5, abs=1e-5)
    assert m["T"].std() == pytest.approx(0.2, rel=1e-4)
    corr = np.corrcoef(m["T"].ravel(), m["w"].ravel())[0, 1]
    assert 0.4 < corr < 0.95  # correlated with the upwelling, blurred by advection
    two_d = mantle_like((32, 32), seed=5)
    assert set(two_d) == {"T", "u", "v"}


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="slope"):
        powerlaw_gaussian_field((8, 8), -1.0, seed=0)
    with pytest.raises(ConfigError, match="axis >= 2"):
        powerlaw_gaussian_field((1, 8), 2.0, seed=0)
    with pytest.raises(ConfigError, match="2 or 3 axes"):
        solenoidal_velocity((8,), 2.0, seed=0)
    with pytest.raises(ConfigError, match="correlation"):
        mantle_like((8, 8, 8), seed=0, correlation=2.0)
