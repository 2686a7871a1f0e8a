"""Recipe 2: 3D volumetric super-resolution (srsgan-style GAN) with whole-volume tiled inference.

Coarse volumes (several variables, e.g. temperature and three velocity components) are
super-resolved into an ensemble of fine volumes by a generator in the style of map2map's
``srsgan`` (noise in every block, x2 upsampling stages), trained with MSE pre-training and
then WGAN-GP (or a logistic loss with lazy R1) against a critic conditioned on the
upsampled input. ``geogan generate`` assembles volumes of any size from overlapping 3D
tiles (periodic axes included), exactly, and streams them to NetCDF/Zarr; ``geogan
evaluate`` writes 3D spectra, distributions, divergence, CRPS/spread-skill and slice plots
against trilinear/tricubic interpolation and the MSE-only network.
"""

from __future__ import annotations

from geogan.core.registry import RECIPES
from geogan.recipes.base import Recipe, delegate
from geogan.recipes.volume.config import VolumeConfig


@RECIPES.register("volume")
class VolumeRecipe(Recipe):
    """Commands of recipe 2; heavy modules are imported only when a command runs."""

    name = "volume"
    description = (
        "3D volumetric super-resolution: coarse volumes (T, u, v, w, ...) -> an ensemble of "
        "fine volumes (srsgan-style WGAN-GP/R1), assembled from exact 3D tiles"
    )
    config_schema = VolumeConfig
    export_format = "volume/"

    build_training = delegate("build", "build_training")
    generate = delegate("generate", "generate")
    evaluate = delegate("evaluate", "evaluate")
    demo = delegate("demo", "run_demo")
