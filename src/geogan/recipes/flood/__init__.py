"""Recipe 4, ``flood``: a multi-task masker and a SPADE painter (omnigan / ClimateGAN) that show
water and floods on satellite imagery, from a predicted mask or one the user gives.

- data: JSON/YAML data lists (``geogan index``) of four domains, real/simulated x
  flooded/not flooded (rf, rn, sf, sn), with optional labels x/s/d/h/w; the bundled real
  domain is Blue Marble + MODIS land cover, the simulated one is rendered by geogan
  (:mod:`~geogan.recipes.flood.render`);
- models: a shared MUNIT encoder, task decoders, a domain classifier, adaptation decoders,
  a SPADE painter, per-domain PatchGAN discriminators (:mod:`geogan.models.omni`);
- training: the seed's losses table, a representation stage then a translation stage;
- ``geogan generate``: paint the held-out images with predicted, labelled, file or rule masks;
  ``geogan flood-paint``: one image with the user's own mask (PNG/GeoTIFF/NetCDF/npy or
  ``--below-m`` with an elevation grid);
- ``geogan evaluate``: masker and painter scores against baselines, HTML report;
- ``geogan demo --recipe flood``: everything on the bundled data, offline.
"""

from __future__ import annotations

from geogan.core.registry import RECIPES
from geogan.recipes.base import Recipe, delegate
from geogan.recipes.flood.config import FloodConfig


@RECIPES.register("flood")
class FloodRecipe(Recipe):
    name = "flood"
    description = (
        "multi-task masker + SPADE painter (omnigan): predict water and land cover on satellite "
        "tiles, paint floods from predicted or user masks (PNG/GeoTIFF/NetCDF, elevation rule)"
    )
    config_schema = FloodConfig
    export_format = "flood/"

    build_training = delegate("build", "build_training")
    generate = delegate("generate", "generate")
    evaluate = delegate("evaluate", "evaluate")
    demo = delegate("demo", "run_demo")

    def commands(self):
        from geogan.recipes.flood.commands import bundle_command, paint_command

        return {"flood-paint": paint_command, "flood-data": bundle_command}

    def register_commands(self, app) -> None:
        from geogan.recipes.flood.commands import bundle_command, paint_command

        app.command(
            "flood-paint",
            help=(
                "Paint water onto one image with a trained flood model, from the masker's "
                "prediction, your own mask (PNG/GeoTIFF/NetCDF/npy, same size as the image) or "
                "an elevation rule.\n\nExamples:\n\n"
                "  geogan flood-paint run/model.safetensors --image tile.png --out painted.png\n\n"
                "  geogan flood-paint run/model.safetensors --image tile.png --mask mask.tif --out p.png\n\n"
                "  geogan flood-paint run/model.safetensors --image tile.png --elevation dem.tif "
                "--below-m 5 --out p.png"
            ),
        )(paint_command)
        app.command(
            "flood-data",
            help=(
                "Write the bundled flood data (Blue Marble + MODIS land cover tiles, rendered "
                "simulated tiles) in the folder layout of 'geogan index', with train/test lists."
                "\n\nExample:\n\n  geogan flood-data --out data/flood --tile 64"
            ),
        )(bundle_command)
