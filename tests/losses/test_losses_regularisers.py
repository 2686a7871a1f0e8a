"""Gradient penalty, R1 and path length against closed forms for linear maps."""

import pytest
import torch

from geogan.losses import gradient_penalty, path_length_penalty, r1_penalty
from geogan.models import DownscalingCritic


def _linear_critic(shape, seed=0):
    torch.manual_seed(seed)
    w = torch.randn(shape, requires_grad=True)
    b = torch.randn((), requires_grad=True)
    return w, b, lambda x: (x * w).flatten(1).sum(1, keepdim=True) + b


def test_gradient_penalty_equals_closed_form_for_linear_critic():
    # f(x) = <w, x> + b has gradient w everywhere, so GP = weight * (||w|| - 1)^2.
    w, b, critic = _linear_critic((1, 2, 3, 4))
    real, fake = torch.randn(5, 2, 3, 4), torch.randn(5, 2, 3, 4)
    gp = gradient_penalty(critic, real, fake, weight=10.0)
    expected = 10.0 * (w.detach().norm() - 1) ** 2
    assert gp.item() == pytest.approx(expected.item(), rel=1e-5)
    # and its gradient w.r.t. the critic's weights is that of the closed form
    gp.backward()
    norm = w.detach().norm()
    torch.testing.assert_close(w.grad, 20.0 * (norm - 1) * w.detach() / norm)
    assert b.grad is None or b.grad.abs().sum() == 0


def test_gradient_penalty_does_not_reach_the_generator():
    _, _, critic = _linear_critic((1, 1, 2, 2))
    gen_weight = torch.ones((), requires_grad=True)
    fake = gen_weight * torch.randn(3, 1, 2, 2)
    gradient_penalty(critic, torch.randn(3, 1, 2, 2), fake).backward()
    assert gen_weight.grad is None


def test_gradient_penalty_is_reproducible_with_a_generator():
    torch.manual_seed(0)
    critic_net = DownscalingCritic(in_channels=1, filters=4, downsampling_factors=[2])
    x = torch.randn(3, 1, 2, 2)
    real, fake = torch.rand(3, 1, 4, 4), torch.rand(3, 1, 4, 4)

    def critic(image):
        return critic_net(x, None, image)

    a = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    b = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(1))
    c = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(2))
    assert a.item() == b.item() != c.item()
    a.backward()  # reaches the critic's weights (not its last bias: it has no input gradient)
    assert critic_net.high_down[0][0].weight.grad.abs().sum() > 0


def test_gradient_penalty_under_bf16_autocast_is_fp32_and_close():
    w, _, _ = _linear_critic((1, 1, 4, 4))
    conv = torch.nn.Conv2d(1, 1, 4)  # a linear critic that autocast runs in bf16
    with torch.no_grad():
        conv.weight.copy_(w.detach())

    def critic(x):
        return conv(x).flatten(1)

    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(critic, real, fake)
    assert gp.dtype == torch.float32
    expected = 10.0 * (w.detach().norm() - 1) ** 2
    assert gp.item() == pytest.approx(expected.item(), rel=2e-2)


def test_gradient_penalty_finite_when_gradient_is_zero():
    weight = torch.zeros(1, 1, 2, 2, requires_grad=True)
    gp = gradient_penalty(
        lambda x: (x * weight).flatten(1).sum(1), torch.randn(2, 1, 2, 2), torch.randn(2, 1, 2, 2)
    )
    assert gp.item() == pytest.approx(10.0)
    gp.backward()
    assert torch.isfinite(weight.grad).all()


def test_r1_equals_closed_form_for_linear_critic():
    w, _, critic = _linear_critic((1, 3, 2, 2))
    r1 = r1_penalty(critic, torch.randn(4, 3, 2, 2), gamma=4.0)
    assert r1.item() == pytest.approx(2.0 * w.detach().square().sum().item(), rel=1e-5)


@pytest.mark.parametrize("latent_shape", [(3, 5), (3, 2, 5)])
def test_path_length_matches_linear_generator(latent_shape):
    # images = A w (per layer, averaged): J^T y = A^T y, computed by hand below.
    torch.manual_seed(0)
    latents = torch.randn(latent_shape, requires_grad=True)
    a = torch.randn(5, 1 * 4 * 4)
    w = latents if latents.ndim == 2 else latents.mean(dim=1)
    images = (w @ a).reshape(3, 1, 4, 4)
    penalty, new_mean = path_length_penalty(
        images, latents, mean_path_length=1.0, decay=0.5, generator=torch.Generator().manual_seed(3)
    )
    y = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(3)) / 4.0
    grad_w = y.flatten(1) @ a.T  # [B, D]
    if latents.ndim == 3:
        grad = grad_w[:, None, :].expand(3, 2, 5) / 2
        lengths = grad.square().sum(-1).mean(1).sqrt()
    else:
        lengths = grad_w.square().sum(-1).sqrt()
    expected_mean = 1.0 + 0.5 * (lengths.mean() - 1.0)
    assert new_mean.item() == pytest.approx(expected_mean.item(), rel=1e-5)
    assert penalty.item() == pytest.approx(
        (lengths - expected_mean).square().mean().item(), rel=1e-4
    )
