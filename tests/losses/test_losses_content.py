"""Content losses: fair CRPS against the `scores` package, masks, ensemble MSE, KL, L1/L2."""

import numpy as np
import pytest
import torch
import xarray as xr
from scores.probability import crps_for_ensemble

from geogan.core.errors import ConfigError
from geogan.losses import (
    crps_ensemble,
    crps_ensemble_loss,
    ensemble_mean_mse,
    kl_divergence,
    l1,
    l2,
    masked_mean,
)

DIMS = ["b", "c", "y", "x"]


def _scores_crps(ensemble, target, mask=None):
    fc = xr.DataArray(ensemble.double().numpy(), dims=["member", *DIMS])
    obs = xr.DataArray(target.double().numpy(), dims=DIMS)
    per_pixel = crps_for_ensemble(
        fc, obs, ensemble_member_dim="member", method="fair", preserve_dims=DIMS
    )
    values = per_pixel.values
    if mask is None:
        return float(values.mean())
    m = np.broadcast_to(mask.numpy(), values.shape)
    return float(values[m > 0].mean())


@pytest.mark.parametrize("members", [2, 3, 8])
def test_fair_crps_matches_scores(members):
    torch.manual_seed(members)
    ens, y = torch.randn(members, 2, 2, 5, 6), torch.randn(2, 2, 5, 6)
    per_pixel = crps_ensemble(ens, y)
    fc = xr.DataArray(ens.double().numpy(), dims=["member", *DIMS])
    obs = xr.DataArray(y.double().numpy(), dims=DIMS)
    ref = crps_for_ensemble(
        fc, obs, ensemble_member_dim="member", method="fair", preserve_dims=DIMS
    )
    np.testing.assert_allclose(per_pixel.numpy(), ref.values, atol=1e-5)
    assert crps_ensemble_loss(ens, y).item() == pytest.approx(_scores_crps(ens, y), abs=1e-5)


def test_masked_crps_matches_scores_on_valid_pixels_and_ignores_nan():
    torch.manual_seed(0)
    ens, y = torch.rand(4, 2, 1, 6, 6), torch.rand(2, 1, 6, 6)
    mask = (torch.rand(2, 1, 6, 6) > 0.4).float()
    expected = _scores_crps(ens, y, mask)
    y_nan = torch.where(mask > 0, y, torch.nan)
    ens = ens.requires_grad_(True)
    loss = crps_ensemble_loss(ens, y_nan, mask)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    loss.backward()
    assert torch.isfinite(ens.grad).all()
    assert (ens.grad[:, mask.expand(2, 1, 6, 6) == 0] == 0).all()  # masked pixels get nothing


def test_crps_of_identical_members_is_mae_and_needs_two_members():
    y = torch.randn(1, 1, 3, 3)
    member = torch.randn(1, 1, 3, 3)
    ens = member.expand(3, 1, 1, 3, 3)
    torch.testing.assert_close(crps_ensemble(ens, y), (member - y).abs())
    with pytest.raises(ConfigError, match="at least 2 members"):
        crps_ensemble(member[None], y)
    with pytest.raises(ValueError, match="ensemble"):
        crps_ensemble(torch.randn(3, 1, 1, 2, 3), y)


@pytest.mark.parametrize(
    "loss",
    [
        lambda e, y, m: crps_ensemble_loss(e, y, m),
        lambda e, y, m: ensemble_mean_mse(e, y, m),
        lambda e, y, m: l1(e[0], y, m),
        lambda e, y, m: l2(e[0], y, m),
    ],
)
def test_all_zero_mask_gives_zero_loss_and_zero_gradient(loss):
    ens = torch.randn(3, 2, 1, 4, 4, requires_grad=True)
    y = torch.full((2, 1, 4, 4), torch.nan)
    value = loss(ens, y, torch.zeros(2, 1, 4, 4))
    assert value.item() == 0.0
    value.backward()
    assert (ens.grad == 0).all()


def test_ensemble_mean_mse():
    torch.manual_seed(0)
    ens, y = torch.randn(4, 2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    expected = (ens.mean(0) - y).square().mean()
    assert ensemble_mean_mse(ens, y).item() == pytest.approx(expected.item(), rel=1e-6)
    mask = torch.zeros(2, 1, 5, 5)
    mask[0, 0, 1:3, 2:4] = 1
    sq = (ens.mean(0) - y).square()[0, :, 1:3, 2:4]
    assert ensemble_mean_mse(ens, y, mask).item() == pytest.approx(sq.mean().item(), rel=1e-6)


def test_masked_mean_weights_and_broadcasting():
    x = torch.tensor([[[[1.0, 2.0], [3.0, torch.inf]]]]).expand(1, 2, 2, 2)
    mask = torch.tensor([[[[1.0, 0.5], [0.5, 0.0]]]])
    # (1 + 1 + 1.5) per channel, weights 2 per channel
    assert masked_mean(x, mask).item() == pytest.approx(3.5 / 2)
    assert masked_mean(torch.tensor([1.0, 3.0])).item() == 2.0


def test_l1_l2_match_torch():
    torch.manual_seed(0)
    p, y = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert l1(p, y).item() == pytest.approx(torch.nn.functional.l1_loss(p, y).item(), rel=1e-6)
    assert l2(p, y).item() == pytest.approx(torch.nn.functional.mse_loss(p, y).item(), rel=1e-6)


def test_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mean, logvar = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    post = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(post, prior).sum(1).mean()
    assert kl_divergence(mean, logvar).item() == pytest.approx(expected.item(), rel=1e-5)
    assert kl_divergence(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3)).item() == 0.0
