"""The spectral loss against the numpy RAPSD / LSD of the evaluation code (direct formula)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geogan.evaluation.metrics import log_spectral_distance, rapsd
from geogan.losses import SpectralLoss, batch_rapsd, spectral_loss


@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (2, 2, 24, 40), (2, 1, 20, 27)])
def test_batch_rapsd_matches_numpy_rapsd(shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    got = batch_rapsd(x).numpy()
    want = np.stack([rapsd(x[:, c].numpy()) for c in range(shape[1])])
    assert got.shape == want.shape == (shape[1], max(shape[-2:]) // 2 + 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_batch_rapsd_3d_matches_numpy_rapsd():
    x = torch.randn(2, 1, 8, 12, 10, generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(
        batch_rapsd(x, dims=3)[0].numpy(), rapsd(x[:, 0].numpy(), dims=3), rtol=1e-5
    )


def test_spectral_loss_is_the_squared_lsd_in_natural_log_units():
    g = torch.Generator().manual_seed(2)
    target = torch.randn(3, 1, 32, 32, generator=g)
    pred = torch.nn.functional.avg_pool2d(torch.randn(3, 1, 32, 32, generator=g), 3, 1, 1)
    lsd_db = log_spectral_distance(rapsd(pred[:, 0].numpy()), rapsd(target[:, 0].numpy()))
    loss = spectral_loss(pred, target).item()
    assert loss == pytest.approx((lsd_db * math.log(10) / 10) ** 2, rel=1e-4)


def test_spectral_loss_of_a_scaled_field_is_log_of_the_power_ratio_squared():
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    assert spectral_loss(x, x).item() == pytest.approx(0.0, abs=1e-10)
    assert spectral_loss(2 * x, x).item() == pytest.approx(math.log(4.0) ** 2, rel=1e-5)


def test_spectral_loss_gradient_raises_missing_fine_scale_power():
    g = torch.Generator().manual_seed(4)
    target = torch.randn(4, 1, 32, 32, generator=g)
    pred = torch.nn.functional.avg_pool2d(target, 5, 1, 2).clone().requires_grad_(True)
    opt = torch.optim.Adam([pred], lr=0.05)
    before = spectral_loss(pred, target).item()
    for _ in range(30):
        opt.zero_grad()
        spectral_loss(pred, target).backward()
        opt.step()
    assert spectral_loss(pred, target).item() < 0.2 * before
    assert target.grad is None


def test_spectral_loss_under_bf16_autocast_is_computed_in_float32():
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = spectral_loss(x.bfloat16(), x)
    assert loss.dtype == torch.float32
    assert loss.item() < 1e-3


def test_hann_window_keeps_the_power_of_white_noise():
    x = torch.randn(64, 1, 8, 8, 8, generator=torch.Generator().manual_seed(6))
    p = SpectralLoss((8, 8, 8), window=True).spectra(x)[0, 1:]
    assert p.mean().item() == pytest.approx(1.0, rel=0.05)
