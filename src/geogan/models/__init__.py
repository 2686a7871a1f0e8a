"""Generators, critics and encoders, registered by name in ``geogan.core.registry.MODELS``.

Importing this package registers every model.
"""

from geogan.models.downscaling import (
    DownscalingCritic,
    DownscalingEncoder,
    DownscalingGenerator,
    sample_latent,
)

__all__ = ["DownscalingCritic", "DownscalingEncoder", "DownscalingGenerator", "sample_latent"]
