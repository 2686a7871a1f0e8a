"""Losses, registered by name in ``geogan.core.registry.LOSSES``.

Importing this package registers every loss.
"""

from geogan.losses.adversarial import ADVERSARIAL_LOSSES, AdversarialLoss, get_adversarial
from geogan.losses.content import (
    crps_ensemble,
    crps_ensemble_loss,
    ensemble_mean_mse,
    kl_divergence,
    l1,
    l2,
    masked_mean,
)
from geogan.losses.regularisers import gradient_penalty, path_length_penalty, r1_penalty
from geogan.losses.spectral import SpectralLoss, batch_rapsd, spectral_loss

__all__ = [
    "ADVERSARIAL_LOSSES",
    "AdversarialLoss",
    "SpectralLoss",
    "batch_rapsd",
    "crps_ensemble",
    "crps_ensemble_loss",
    "ensemble_mean_mse",
    "get_adversarial",
    "gradient_penalty",
    "kl_divergence",
    "l1",
    "l2",
    "masked_mean",
    "path_length_penalty",
    "r1_penalty",
    "spectral_loss",
]
