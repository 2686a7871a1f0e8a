"""Generators, critics and encoders, registered by name in ``geogan.core.registry.MODELS``.

Importing this package registers every model.
"""

# Each module registers its models on import: omni (flood masker and painter), patchgan and
# unet (pix2pix), srsgan (3D super-resolution), stylegan2 (ensemble enrichment).
from geogan.models import omni, patchgan, srsgan, stylegan2, unet  # noqa: F401
from geogan.models.downscaling import (
    DownscalingCritic,
    DownscalingEncoder,
    DownscalingGenerator,
    sample_latent,
)

__all__ = ["DownscalingCritic", "DownscalingEncoder", "DownscalingGenerator", "sample_latent"]
