"""Adversarial losses: pairs of critic and generator losses on raw critic scores.

Scores are the critic's raw outputs (no sigmoid), any shape, e.g. ``[B, 1]``;
every loss is a mean over all elements, computed in float32 so that bf16 scores
under autocast do not lose precision in the mean. Registered in
``geogan.core.registry.LOSSES`` as ``wgan``, ``hinge``, ``logistic`` and ``lsgan``
(each an :class:`AdversarialLoss`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from geogan.core.errors import ConfigError
from geogan.core.registry import LOSSES, closest

ScoreLoss = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class AdversarialLoss:
    """A named pair of losses, both minimised.

    ``critic_loss(real_scores, fake_scores) -> scalar`` trains the critic;
    ``generator_loss(fake_scores) -> scalar`` trains the generator.
    """

    name: str
    critic_loss: ScoreLoss
    generator_loss: ScoreLoss


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.float()


def wgan_critic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein: ``E[D(fake)] - E[D(real)]`` (pair it with a gradient penalty)."""
    return _f32(fake).mean() - _f32(real).mean()


def wgan_generator(fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein: ``-E[D(fake)]``."""
    return -_f32(fake).mean()


def hinge_critic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge: ``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``."""
    return F.relu(1 - _f32(real)).mean() + F.relu(1 + _f32(fake)).mean()


def logistic_critic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Logistic (binary cross-entropy on logits): ``E[softplus(-D(real))] + E[softplus(D(fake))]``."""
    return F.softplus(-_f32(real)).mean() + F.softplus(_f32(fake)).mean()


def logistic_generator(fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic: ``E[softplus(-D(fake))]`` (= ``-E[log sigmoid(D(fake))]``)."""
    return F.softplus(-_f32(fake)).mean()


def lsgan_critic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Least squares (Mao et al. 2017, targets 1 real / 0 fake): ``E[(D(real)-1)^2]/2 + E[D(fake)^2]/2``."""
    return 0.5 * (_f32(real) - 1).square().mean() + 0.5 * _f32(fake).square().mean()


def lsgan_generator(fake: torch.Tensor) -> torch.Tensor:
    """Least squares: ``E[(D(fake) - 1)^2] / 2``."""
    return 0.5 * (_f32(fake) - 1).square().mean()


ADVERSARIAL_LOSSES = {
    loss.name: LOSSES.register(loss.name)(loss)
    for loss in (
        AdversarialLoss("wgan", wgan_critic, wgan_generator),
        # Hinge GANs (SAGAN, BigGAN) train the generator with the Wasserstein loss.
        AdversarialLoss("hinge", hinge_critic, wgan_generator),
        AdversarialLoss("logistic", logistic_critic, logistic_generator),
        AdversarialLoss("lsgan", lsgan_critic, lsgan_generator),
    )
}


def get_adversarial(name: str) -> AdversarialLoss:
    """The :class:`AdversarialLoss` called ``name``; a ConfigError naming the closest otherwise."""
    if name in ADVERSARIAL_LOSSES:
        return ADVERSARIAL_LOSSES[name]
    hint = closest(name, list(ADVERSARIAL_LOSSES))
    suggestion = f"; did you mean {hint!r}?" if hint else ""
    raise ConfigError(
        f"unknown adversarial loss {name!r}{suggestion} (choices: {', '.join(ADVERSARIAL_LOSSES)})"
    )
