"""Training phases of recipe 5: StyleGAN2's four optimisation steps, as rosinality's
``train.py`` runs them in one iteration.

1. ``discriminator``: logistic loss on real and generated fields (the generator runs
   without gradients);
2. ``r1`` every ``d_reg_every`` steps, lazy: ``gamma / 2 * E ||grad D(real)||^2``;
3. ``generator``: non-saturating loss through the discriminator (whose weight gradients
   are not computed), with style mixing; the EMA follows this step;
4. ``path_length`` every ``g_reg_every`` steps, lazy, on ``batch // path_batch_shrink``
   samples, with the running mean of path lengths as phase state (saved in resume
   checkpoints, averaged over ranks so that every rank keeps the same value).

Batches: ``{"fields": [B, C, H, W]}`` normalised. Every random draw comes from
``ctx.rng(tag)``: the same after a resume, different per rank.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from geogan.losses.regularisers import path_length_penalty, r1_penalty
from geogan.training.phases import StepContext

Z_TAG, MIX_TAG, NOISE_TAG, PL_TAG = 0, 1, 2, 3


def sample_latents(
    g, batch: int, ctx: StepContext, mixing: float, tag: int
) -> tuple[torch.Tensor, torch.Tensor | None, int | None]:
    """``(z [B, D], mix_z or None, mix_index or None)``: style mixing with prob. ``mixing``."""
    z = ctx.randn((batch, g.latent_dim), tag=Z_TAG + 10 * tag)
    if mixing <= 0:
        return z, None, None
    gen = ctx.rng(MIX_TAG + 10 * tag)
    u = torch.rand((), generator=gen, device=ctx.device)
    if float(u) >= mixing or g.n_latent < 2:
        return z, None, None
    mix_z = torch.randn((batch, g.latent_dim), generator=gen, device=ctx.device)
    index = int(torch.randint(1, g.n_latent, (), generator=gen, device=ctx.device))
    return z, mix_z, index


def generate(g, batch: int, ctx: StepContext, mixing: float, tag: int, return_ws: bool = False):
    """Generated fields ``[B, C, H, W]`` (and their ``ws`` if asked) from fresh latents."""
    z, mix_z, index = sample_latents(g, batch, ctx, mixing, tag)
    return g(
        z,
        mix_z=mix_z,
        mix_index=index,
        generator=ctx.rng(NOISE_TAG + 10 * tag),
        return_ws=return_ws,
    )


def _to_format(x: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    return x.contiguous(memory_format=ctx.memory_format) if x.ndim == 4 else x


def _frozen_call(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` differentiable in ``x`` only: the weight gradients of a model that is not
    stepped here would cost a third of its backward pass and be thrown away."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        return model(x)
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def _scores(d, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(D(fake), D(real))`` as float32, in one batched call when that gives the same
    scores: the minibatch-stddev groups of ``[f0, r0, f1, r1, ...]`` hold only fakes or only
    reals when the group size divides the batch (one pass of 2B instead of two of B)."""
    b, group = fake.shape[0], getattr(d, "mbstd_group", None)
    if group is None or b % min(group, b) or b < group:
        return d(fake).float(), d(real).float()
    both = torch.stack([fake, real.to(fake.dtype)], dim=1).flatten(0, 1)
    scores = d(both).float()
    return scores[0::2], scores[1::2]


class DiscriminatorPhase:
    name, optimizer, updates_ema, repeats = "discriminator", "discriminator", False, 1

    def __init__(self, mixing: float) -> None:
        self.mixing = mixing

    def loss(self, batch, ctx: StepContext):
        g, d = ctx.models["generator"], ctx.models["discriminator"]
        real = batch["fields"]
        with ctx.autocast():
            with torch.no_grad():
                fake = _to_format(generate(g, real.shape[0], ctx, self.mixing, 0), ctx)
            fake_s, real_s = _scores(d, fake, real)
            loss = F.softplus(fake_s).mean() + F.softplus(-real_s).mean()
        return loss, {"real_score": real_s.mean().detach(), "fake_score": fake_s.mean().detach()}


class R1Phase:
    name, optimizer, updates_ema, repeats, lazy = "r1", "discriminator", False, 1, True

    def __init__(self, gamma: float, every: int) -> None:
        self.gamma, self.every = gamma, every

    def loss(self, batch, ctx: StepContext):
        d = ctx.models["discriminator"]
        with ctx.autocast():
            penalty = r1_penalty(lambda x: d(_to_format(x, ctx)), batch["fields"], self.gamma)
        return penalty, {"r1": penalty.detach()}


class GeneratorPhase:
    name, optimizer, updates_ema, repeats = "generator", "generator", True, 1

    def __init__(self, mixing: float) -> None:
        self.mixing = mixing

    def loss(self, batch, ctx: StepContext):
        g, d = ctx.models["generator"], ctx.models["discriminator"]
        with ctx.autocast():
            fake = _to_format(generate(g, batch["fields"].shape[0], ctx, self.mixing, 1), ctx)
            loss = F.softplus(-_frozen_call(d, fake).float()).mean()
        return loss, {}


class PathLengthPhase:
    """Path-length regularisation; ``state_dict`` holds the running mean of path lengths."""

    name, optimizer, updates_ema, repeats, lazy = "path_length", "generator", False, 1, True

    def __init__(self, weight: float, every: int, shrink: int, mixing: float, decay: float) -> None:
        self.weight, self.every, self.shrink = weight, every, shrink
        self.mixing, self.decay = mixing, decay
        self.mean_path_length = torch.zeros(())

    def loss(self, batch, ctx: StepContext):
        g = ctx.models["generator"]
        n = max(1, batch["fields"].shape[0] // self.shrink)
        with ctx.autocast():
            fake, ws = generate(g, n, ctx, self.mixing, 2, return_ws=True)
            penalty, new_mean = path_length_penalty(
                fake,
                ws,
                self.mean_path_length.to(fake.device),
                self.decay,
                generator=ctx.rng(PL_TAG),
            )
        if dist.is_available() and dist.is_initialized():
            # a linear update: the mean of the ranks' new means is the update with the mean
            # of all ranks' path lengths, and every rank keeps the same state
            dist.all_reduce(new_mean, op=dist.ReduceOp.SUM)
            new_mean = new_mean / dist.get_world_size()
        self.mean_path_length = new_mean.detach().float().cpu()
        return self.weight * penalty, {
            "path_penalty": penalty.detach(),
            "mean_path_length": self.mean_path_length.clone(),
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean_path_length": self.mean_path_length.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean_path_length = torch.as_tensor(state["mean_path_length"]).float().clone()
