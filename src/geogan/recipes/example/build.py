"""Models, optimizers and phases of the example recipe (what the Trainer runs)."""

from __future__ import annotations

import torch

from geogan.losses.regularisers import gradient_penalty
from geogan.recipes.example.config import ExampleConfig
from geogan.recipes.example.fields import FieldDataset
from geogan.recipes.example.models import ExampleCritic, ExampleGenerator
from geogan.training.optim import build_optimizers
from geogan.training.phases import StepContext, TrainingSetup

EXPORT_FORMAT = "example/1"


def _fake(batch: dict, ctx: StepContext) -> torch.Tensor:
    g = ctx.models["generator"]
    target = batch["target"]
    return g(ctx.randn(g.noise_shape(target.shape[0], target.shape[-1])))


class CriticPhase:
    """WGAN critic loss + gradient penalty, ``repeats`` times per step."""

    name, optimizer, updates_ema = "critic", "critic", False

    def __init__(self, repeats: int, gp_weight: float) -> None:
        self.repeats, self.gp_weight = repeats, gp_weight

    def loss(self, batch, ctx):
        d, real = ctx.models["critic"], batch["target"]
        with ctx.autocast():
            with torch.no_grad():
                fake = _fake(batch, ctx)
            wdist = d(real).float().mean() - d(fake).float().mean()
            gp = gradient_penalty(d, real, fake, self.gp_weight, generator=ctx.rng(1))
        return gp - wdist, {"wdist": wdist.detach(), "gp": gp.detach()}


class GeneratorPhase:
    name, optimizer, updates_ema, repeats = "generator", "generator", True, 1

    def loss(self, batch, ctx):
        with ctx.autocast():
            score = ctx.models["critic"](_fake(batch, ctx)).float().mean()
        return -score, {}


def build_training(cfg: ExampleConfig) -> TrainingSetup:
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    models = {
        "generator": ExampleGenerator(
            latent_channels=cfg.model.latent_channels, filters=cfg.model.filters
        ),
        "critic": ExampleCritic(filters=cfg.model.filters),
    }
    plan = {"generator": ["generator"], "critic": ["critic"]}
    return TrainingSetup(
        models=models,
        optimizers=build_optimizers(models, plan, cfg.train.optimizers),
        phases=[CriticPhase(cfg.train.critic_steps, cfg.train.gp_weight), GeneratorPhase()],
        dataset=FieldDataset(cfg.data.size, cfg.data.slope, cfg.data.seed),
        export_meta={"format": EXPORT_FORMAT, "size": cfg.data.size},
        compile_models=["generator"],
    )
