"""Recipe 5: ensemble enrichment with a pure-PyTorch StyleGAN2 (seed 004).

Train a StyleGAN2 on ensemble members (``geogan train stylegan/<preset>``), invert real
members into its latent space (``geogan invert``), choose the perturbation intensity per
style input on held-out members (``geogan tune``), generate many more members around the
inverted ones (``geogan perturb``) and verify them against held-out members
(``geogan evaluate``). Heavy modules are imported only when a command runs.
"""

from __future__ import annotations

from geogan.core.registry import RECIPES
from geogan.recipes.base import Recipe, delegate
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

    build_training = delegate("build", "build_training")
    generate = delegate("generate", "generate")
    evaluate = delegate("evaluate", "evaluate")
    demo = delegate("demo", "run_demo")

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
