"""Every loss registered by geogan.losses is exercised; a new one must get a case here."""

import pytest
import torch

import geogan.losses  # noqa: F401  (registers the losses)
from geogan.core.registry import LOSSES
from geogan.losses import AdversarialLoss


def _critic(x):
    return x.flatten(1).sum(1, keepdim=True) * 0.3


def _path_length(f):
    w = torch.randn(2, 4, requires_grad=True)
    images = (w @ torch.randn(4, 9)).reshape(2, 1, 3, 3)
    penalty, new_mean = f(images, w, 0.0)
    assert new_mean.ndim == 0
    return penalty


ENS, TARGET, MASK = torch.rand(3, 2, 1, 4, 4), torch.rand(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
CASES = {
    "crps": lambda f: f(ENS, TARGET, MASK),
    "ensemble_mean_mse": lambda f: f(ENS, TARGET, MASK),
    "l1": lambda f: f(ENS[0], TARGET, MASK),
    "l2": lambda f: f(ENS[0], TARGET, MASK),
    "kl": lambda f: f(torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)),
    "gradient_penalty": lambda f: f(_critic, TARGET, ENS[0]),
    "r1": lambda f: f(_critic, TARGET),
    "path_length": _path_length,
}


def _geogan_losses():
    names = []
    for name, entry in LOSSES.items():
        module = type(entry).__module__ if isinstance(entry, AdversarialLoss) else entry.__module__
        if module.startswith("geogan.losses"):
            names.append(name)
    return names


def test_every_registered_loss_has_a_case():
    adversarial = {n for n in _geogan_losses() if isinstance(LOSSES.get(n), AdversarialLoss)}
    missing = sorted(set(_geogan_losses()) - set(CASES) - adversarial)
    assert not missing, f"add cases for {missing}"
    assert adversarial == {"wgan", "hinge", "logistic", "lsgan"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_registered_loss_returns_finite_scalar(name):
    torch.manual_seed(0)
    value = CASES[name](LOSSES.get(name))
    assert value.ndim == 0 and value.dtype == torch.float32 and torch.isfinite(value)
