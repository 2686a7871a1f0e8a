"""The example recipe: the smallest complete recipe, and the template for new ones.

It learns to generate Gaussian random fields with a power-law spectrum (an unconditional
WGAN-GP on ``[1, N, N]`` fields) and verifies the generated spectra against fresh truth
fields. Everything it needs lives in this folder: its schema, data, models, phases,
generation, evaluation, a preset and an extra command (``geogan example-fields``).
``docs/architecture.md`` ("How to add a recipe") walks through it.
"""

from __future__ import annotations

from geogan.core.registry import RECIPES
from geogan.recipes.base import Recipe
from geogan.recipes.example.config import ExampleConfig


@RECIPES.register("example")
class ExampleRecipe(Recipe):
    name = "example"
    description = "tiny template recipe: unconditional WGAN-GP on power-law Gaussian random fields"
    config_schema = ExampleConfig
    export_format = "example/"

    def build_training(self, cfg, *, device, run_dir, dist_info):
        from geogan.recipes.example.build import build_training

        return build_training(cfg)

    def generate(self, checkpoint, **options):
        from geogan.recipes.example.generate import generate

        return generate(checkpoint, **options)

    def evaluate(self, ensemble, **options):
        from geogan.recipes.example.evaluate import evaluate

        return evaluate(ensemble, **options)

    def demo(self, out, **options):
        from geogan.recipes.example.demo import run_demo

        return run_demo(out, **options)

    def commands(self):
        from geogan.recipes.example.commands import fields_command

        return {"example-fields": fields_command}

    def register_commands(self, app) -> None:
        from geogan.recipes.example.commands import fields_command

        app.command(
            "example-fields",
            help=(
                "Write N truth fields of the example recipe to NetCDF (to look at them).\n\n"
                "Example:\n\n  geogan example-fields --out fields.nc --n 8 --size 32"
            ),
        )(fields_command)
