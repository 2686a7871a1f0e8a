"""Recipe 5: ensemble enrichment with a pure-PyTorch StyleGAN2 (seed 004).

Train a StyleGAN2 on ensemble members (``geogan train stylegan/<preset>``), invert real
members into its latent space (``geogan invert``), choose the perturbation intensity per
style input on held-out members (``geogan tune``), generate many more members around the
inverted ones (``geogan perturb``) and verify them against held-out members
(``geogan evaluate``). Heavy modules are imported only when a command runs.
"""

from __future__ import annotations

from geogan.core.registry import RECIPES
from geogan.recipes.base import Recipe
from geogan.recipes.stylegan.config import StyleGANConfig


@RECIPES.register("stylegan")
class StyleGANRecipe(Recipe):
    name = "stylegan"
    description = (
        "ensemble enrichment: StyleGAN2 trained on members, real members inverted into W/W+, "
        "perturbed into hundreds of members with tuned spread (invert, tune, perturb)"
    )
    config_schema = StyleGANConfig
    export_format = "stylegan/"

    def build_training(self, cfg, *, device, run_dir, dist_info):
        from geogan.recipes.stylegan.build import build_training

        return build_training(cfg, device=device, run_dir=run_dir, dist_info=dist_info)

    def generate(self, checkpoint, **options):
        from geogan.recipes.stylegan.generate import generate

        return generate(checkpoint, **options)

    def evaluate(self, ensemble, **options):
        from geogan.recipes.stylegan.evaluate import evaluate

        return evaluate(ensemble, **options)

    def demo(self, out, **options):
        from geogan.recipes.stylegan.demo import run_demo

        return run_demo(out, **options)

    def commands(self):
        from geogan.recipes.stylegan import commands

        return {
            "invert": commands.invert_command,
            "perturb": commands.perturb_command,
            "tune": commands.tune_command,
        }

    def register_commands(self, app) -> None:
        from geogan.recipes.stylegan import commands

        app.command("invert", help=commands.INVERT_HELP)(commands.invert_command)
        app.command("perturb", help=commands.PERTURB_HELP)(commands.perturb_command)
        app.command("tune", help=commands.TUNE_HELP)(commands.tune_command)
