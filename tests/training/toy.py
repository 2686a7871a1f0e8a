"""A tiny recipe-free GAN setup for exercising the Trainer (not a test module)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from geogan.core.modules import register_model
from geogan.core.registry import MODELS
from geogan.training.phases import TrainingSetup


def _register():
    if "test_toy_generator" in MODELS:
        return MODELS.get("test_toy_generator"), MODELS.get("test_toy_critic")

    @register_model("test_toy_generator")
    class ToyGenerator(nn.Module):
        def __init__(self, *, channels: int = 4) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(2, channels, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(channels, 1, 1)
            )

        def forward(self, x, noise):
            return self.net(torch.cat([x, noise], dim=1))

    @register_model("test_toy_critic")
    class ToyCritic(nn.Module):
        def __init__(self, *, channels: int = 4) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(2, channels, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(channels, 1, 1)
            )

        def forward(self, x, y):
            return self.net(torch.cat([x, y], dim=1)).mean(dim=(1, 2, 3))

    return ToyGenerator, ToyCritic


class ToyDataset(torch.utils.data.Dataset):
    """Item i is a deterministic function of i: a condition and a target 8x8 field."""

    def __getitem__(self, i):
        rng = np.random.default_rng([7, i])
        x = rng.standard_normal((1, 8, 8)).astype(np.float32)
        y = (2 * x + 0.3 * rng.standard_normal((1, 8, 8))).astype(np.float32)
        return {"input": torch.from_numpy(x), "target": torch.from_numpy(y)}

    def __len__(self):
        return 2**31


class CriticPhase:
    name = "critic"
    optimizer = "critic"
    updates_ema = False

    def __init__(self, repeats=2, nan_at=()):
        self.repeats = repeats
        self.nan_at = set(nan_at)

    def loss(self, batch, ctx):
        g, d = ctx.models["generator"], ctx.models["critic"]
        x, y = batch["input"], batch["target"]
        with torch.no_grad():
            fake = g(x, ctx.randn(tuple(x.shape)))
        real_s, fake_s = d(x, y), d(x, fake)
        alpha = torch.rand((x.shape[0], 1, 1, 1), generator=ctx.rng(1))
        mix = (alpha * y + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(x, mix).sum(), mix, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss = fake_s.mean() - real_s.mean() + 10 * gp
        if ctx.step in self.nan_at:
            loss = loss * float("nan")
        return loss, {"gp": gp}


class GeneratorPhase:
    name = "generator"
    optimizer = "generator"
    updates_ema = True
    repeats = 1

    def loss(self, batch, ctx):
        g, d = ctx.models["generator"], ctx.models["critic"]
        x, y = batch["input"], batch["target"]
        fake = g(x, ctx.randn(tuple(x.shape)))
        mse = ((fake - y) ** 2).mean()
        return -d(x, fake).mean() + mse, {"mse": mse}


def make_setup(nan_at=(), seed=0) -> TrainingSetup:
    ToyGenerator, ToyCritic = _register()
    torch.manual_seed(seed)
    g, d = ToyGenerator(channels=4), ToyCritic(channels=4)
    return TrainingSetup(
        models={"generator": g, "critic": d},
        optimizers={
            "generator": torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.9)),
            "critic": torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.9)),
        },
        phases=[CriticPhase(nan_at=nan_at), GeneratorPhase()],
        dataset=ToyDataset(),
        export_meta={"note": "toy"},
    )


def all_state(trainer) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in trainer.models.items():
        out.update({f"{name}/{k}": v.detach().clone() for k, v in m.state_dict().items()})
    out.update({f"ema/{k}": v.detach().clone() for k, v in trainer.ema.shadow.state_dict().items()})
    for name, o in trainer.optimizers.items():
        for i, st in o.state_dict()["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    out[f"opt/{name}/{i}/{k}"] = v.clone()
    return out
