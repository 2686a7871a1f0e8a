"""upfirdn as depthwise convolutions, checked against the direct formula, scipy, and the
properties StyleGAN2 relies on (mean kept, periodic boundaries, 3D, memory formats)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.signal
import torch

from geogan.core.errors import ConfigError
from geogan.nn.upfirdn import Blur, FirDownsample, FirUpsample, fir_kernel, fir_pads, upfirdn

TAPS = np.array([1.0, 2.0, 5.0, 1.5])  # asymmetric: flips and offsets show


def naive_1d(x: np.ndarray, k: np.ndarray, up: int, down: int, p0: int, p1: int) -> np.ndarray:
    """The module docstring's formula, literally: zero insertion, zero padding, convolution."""
    n, taps = len(x), len(k)
    xu = np.zeros(n * up)
    xu[::up] = x
    n_out = (n * up + p0 + p1 - taps) // down + 1
    out = np.zeros(n_out)
    for j in range(n_out):
        for t in range(taps):
            m = j * down + t - p0
            if 0 <= m < n * up:
                out[j] += xu[m] * k[taps - 1 - t]
    return out


def naive_nd(x: np.ndarray, k: np.ndarray, up: int, down: int, p0: int, p1: int) -> np.ndarray:
    """Separable kernel: the 1D formula along every axis in turn."""
    for axis in range(x.ndim):
        x = np.apply_along_axis(naive_1d, axis, x, k, up, down, p0, p1)
    return x


CASES = [
    (1, 1, 1, 2),
    (2, 1, 2, 1),
    (1, 2, 1, 1),
    (2, 2, 1, 3),
    (3, 1, 2, 3),
    (1, 1, -1, 2),
    (2, 1, -2, 0),
]


@pytest.mark.parametrize("up,down,p0,p1", CASES)
def test_2d_matches_the_direct_formula(up, down, p0, p1):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 9))
    kernel = torch.tensor(np.outer(TAPS, TAPS))
    out = upfirdn(torch.tensor(x), kernel, up=up, down=down, pad=(p0, p1)).numpy()
    ref = np.stack(
        [[naive_nd(x[b, c], TAPS, up, down, p0, p1) for c in range(3)] for b in range(2)]
    )
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("up,down", [(1, 2), (2, 1)])
def test_3d_matches_the_direct_formula(up, down):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 6, 4))
    k = TAPS[:3]
    kernel = torch.tensor(np.einsum("i,j,k->ijk", k, k, k))
    out = upfirdn(torch.tensor(x), kernel, up=up, down=down, pad=(1, 1)).numpy()
    ref = np.stack([naive_nd(x[0, c], k, up, down, 1, 1) for c in range(2)])[None]
    np.testing.assert_allclose(out, ref, atol=1e-12)


def test_agrees_with_scipy_upfirdn():
    # scipy.signal.upfirdn(h, x, up) is the full convolution of the zero-inserted signal:
    # our formula with pads (K - 1, K - 1), less the last up - 1 zero-insertion tail samples
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 11, 1))
    for up, down in itertools.product((1, 2, 3), (1, 2)):
        ref = scipy.signal.upfirdn(TAPS, x[0, 0, :, 0], up, down)
        kernel = torch.tensor(TAPS.reshape(-1, 1) * np.array([[1.0]]))
        out = upfirdn(torch.tensor(x), kernel, up=(up, 1), down=(down, 1), pad=[(3, 3), (0, 0)])
        out = out[0, 0, :, 0].numpy()
        n = min(len(ref), len(out))
        np.testing.assert_allclose(out[:n], ref[:n], atol=1e-12)


def test_modules_keep_the_mean_and_give_the_stylegan_sizes():
    x = torch.full((2, 3, 8, 16), 2.5)
    up, down, blur = FirUpsample(2), FirDownsample(2), Blur(2)
    assert up(x).shape == (2, 3, 16, 32) and down(x).shape == (2, 3, 4, 8)
    assert blur(x).shape == x.shape
    # away from the zero-padded edges a constant stays constant
    assert torch.allclose(up(x)[..., 3:-3, 3:-3], torch.tensor(2.5))
    assert torch.allclose(down(x)[..., 1:-1, 1:-1], torch.tensor(2.5))
    assert fir_pads(4, up=2) == (2, 1) and fir_pads(4, down=2, kernel_size=3) == (2, 2)
    assert float(fir_kernel([1, 3, 3, 1], 2).sum()) == pytest.approx(1.0)
    assert float(fir_kernel([1, 3, 3, 1], 3, gain=2.0).sum()) == pytest.approx(8.0)


@pytest.mark.parametrize("module", ["up", "down", "blur"])
def test_circular_axis_equals_the_filter_of_the_periodic_signal(module):
    torch.manual_seed(0)
    make = {
        "up": lambda modes: FirUpsample(2, modes=modes),
        "down": lambda modes: FirDownsample(2, modes=modes),
        "blur": lambda modes: Blur(2, modes=modes),
    }[module]
    x = torch.randn(1, 2, 8, 12, dtype=torch.float64)
    periodic = make(["zeros", "circular"]).double()
    zeros = make("zeros").double()
    out = periodic(x)
    tiled = zeros(torch.cat([x, x, x], dim=-1))
    n = out.shape[-1]
    torch.testing.assert_close(out, tiled[..., n : 2 * n])
    # and it commutes with rolls along that axis (by whole input pixels at factor 2)
    shift = 2
    out_shift = {"up": 2 * shift, "down": shift // 2, "blur": shift}[module]
    torch.testing.assert_close(periodic(torch.roll(x, shift, -1)), torch.roll(out, out_shift, -1))


def test_channels_last_and_gradients():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    k = fir_kernel([1, 3, 3, 1], 2).double()
    a = upfirdn(x, k, up=2, pad=(2, 1))
    b = upfirdn(x.contiguous(memory_format=torch.channels_last), k, up=2, pad=(2, 1))
    torch.testing.assert_close(a, b)
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: upfirdn(t, k, down=2, pad=(1, 1)), (x,))
    assert torch.autograd.gradgradcheck(lambda t: upfirdn(t, k, up=2, pad=(2, 1)), (x,))


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="sum to 0"):
        fir_kernel([1, -1], 2)
    with pytest.raises(ConfigError, match=">= 1"):
        upfirdn(torch.zeros(1, 1, 4, 4), fir_kernel([1, 1], 2), up=0)
    with pytest.raises(ValueError, match="expects"):
        Blur(2)(torch.zeros(1, 1, 4))
