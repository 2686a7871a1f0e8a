"""Adversarial loss pairs: values on known scores, registry, lookup errors."""

import math

import pytest
import torch

import geogan.losses  # noqa: F401  (registers the losses)
from geogan.core.errors import ConfigError
from geogan.core.registry import LOSSES
from geogan.losses import AdversarialLoss, get_adversarial

REAL = torch.tensor([[2.0], [-1.0]])
FAKE = torch.tensor([[0.5], [-3.0]])


def _softplus(v):
    return math.log1p(math.exp(v))


EXPECTED = {
    # name: (critic loss, generator loss) computed by hand from REAL and FAKE
    "wgan": ((0.5 - 3.0) / 2 - (2.0 - 1.0) / 2, -(0.5 - 3.0) / 2),
    "hinge": ((0.0 + 2.0) / 2 + (1.5 + 0.0) / 2, -(0.5 - 3.0) / 2),
    "logistic": (
        (_softplus(-2.0) + _softplus(1.0)) / 2 + (_softplus(0.5) + _softplus(-3.0)) / 2,
        (_softplus(-0.5) + _softplus(3.0)) / 2,
    ),
    "lsgan": (
        0.5 * ((2.0 - 1) ** 2 + (-1.0 - 1) ** 2) / 2 + 0.5 * (0.25 + 9.0) / 2,
        0.5 * ((0.5 - 1) ** 2 + (-3.0 - 1) ** 2) / 2,
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_values(name):
    loss = get_adversarial(name)
    assert isinstance(loss, AdversarialLoss) and LOSSES.get(name) is loss
    assert loss.critic_loss(REAL, FAKE).item() == pytest.approx(EXPECTED[name][0])
    assert loss.generator_loss(FAKE).item() == pytest.approx(EXPECTED[name][1])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bf16_scores_give_fp32_losses_and_gradients(name):
    loss = get_adversarial(name)
    fake = FAKE.to(torch.bfloat16).requires_grad_(True)
    value = loss.critic_loss(REAL.to(torch.bfloat16), fake)
    assert value.dtype == torch.float32
    loss.generator_loss(fake).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_logistic_generator_is_non_saturating():
    # -log(sigmoid(D)) keeps a gradient where log(1 - sigmoid(D)) saturates.
    fake = torch.tensor([-10.0], requires_grad=True)
    get_adversarial("logistic").generator_loss(fake).backward()
    assert fake.grad.item() == pytest.approx(-torch.sigmoid(torch.tensor(10.0)).item(), rel=1e-4)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'hinge'"):
        get_adversarial("hinje")
    with pytest.raises(ConfigError, match="adversarial"):
        get_adversarial("crps")
