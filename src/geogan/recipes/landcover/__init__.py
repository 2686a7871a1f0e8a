"""Recipe 3: land-cover-conditioned satellite imagery (MixLC ACGAN, seed 002).

Trains on Blue Marble RGB and MODIS MCD12C1 2019 IGBP land cover of training regions (or
the user's image list), generates imagery for a changed land-cover map, and verifies it
with a land-cover classifier trained on real training-region images, against the
class-mean-colour and plain pix2pix baselines. See docs/recipes/landcover.md.
"""

from __future__ import annotations

from geogan.core.registry import RECIPES
from geogan.recipes.base import Recipe, delegate
from geogan.recipes.landcover.config import LandcoverConfig


@RECIPES.register("landcover")
class LandcoverRecipe(Recipe):
    """Commands of recipe 3; heavy modules are imported only when a command runs."""

    name = "landcover"
    description = (
        "land-cover-conditioned satellite imagery: (image, changed land-cover map) -> "
        "plausible imagery (MixLC ACGAN: two U-Nets, PatchGAN with a land-cover head)"
    )
    config_schema = LandcoverConfig
    export_format = "landcover/"

    build_training = delegate("build", "build_training")
    generate = delegate("generate", "generate")
    evaluate = delegate("evaluate", "evaluate")
    demo = delegate("demo", "run_demo")
