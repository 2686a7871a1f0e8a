"""Recipe 1: stochastic downscaling of coarse fields into high-resolution ensembles."""

from __future__ import annotations

from geogan.core.registry import RECIPES
from geogan.recipes.base import Recipe, delegate
from geogan.recipes.downscaling.config import DownscalingConfig, migrate_config


@RECIPES.register("downscaling")
class DownscalingRecipe(Recipe):
    """Commands of recipe 1; heavy modules are imported only when a command runs."""

    name = "downscaling"
    description = (
        "stochastic downscaling: coarse fields + high-resolution constants + noise -> "
        "an ensemble of high-resolution fields (WGAN-GP, VAE-GAN or deterministic)"
    )
    config_schema = DownscalingConfig
    export_format = "downscaling/"

    def migrate_config(self, tree):
        return migrate_config(tree)

    def prepare(self, cfg, *, patches: int = 0, overwrite: bool = False):
        from geogan.recipes.downscaling.prepare import prepare

        stats = cfg.data.stats_path or f"{cfg.run_root}/{cfg.name}_normalisation.json"
        return prepare(
            cfg.data,
            None,
            stats,
            cfg.data.patch_store if patches else None,
            patches,
            cfg.seed,
            overwrite,
        )

    build_training = delegate("build", "build_training")
    generate = delegate("generate", "generate")
    evaluate = delegate("evaluate", "evaluate")
    demo = delegate("demo", "run_demo")
