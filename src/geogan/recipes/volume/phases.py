"""Training phases of recipe 2: MSE pre-training, critic (WGAN-GP or other + lazy R1), generator.

Batches are dataset items stacked (see :mod:`geogan.recipes.volume.data`): ``input
[B, C_in, *(s + 2 pad)]`` coarse with context, ``target [B, C, *S]`` and ``mask [B, 1, *S]``
on the crop, ``S = s * factor``. The generator runs on the input with its context; its
output is trimmed to the crop (``pad * factor`` voxels per side). The critic sees the coarse
input of the crop itself (its condition) and the image times the mask, so masked voxels
(land, missing data) tell it nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from geogan.losses.adversarial import get_adversarial
from geogan.losses.content import l2
from geogan.losses.regularisers import gradient_penalty, r1_penalty
from geogan.losses.spectral import SpectralLoss
from geogan.models.srsgan import narrow
from geogan.training.phases import StepContext

NOISE_TAG, GP_TAG = 0, 1


def in_layout(batch: dict[str, torch.Tensor], channels_last: bool) -> dict[str, torch.Tensor]:
    """The batch's volumes in channels_last_3d when asked (the networks then run in it)."""
    if not channels_last:
        return batch
    fmt = torch.channels_last_3d
    return {k: v.contiguous(memory_format=fmt) if v.dim() == 5 else v for k, v in batch.items()}


def draw_noise(g: torch.nn.Module, x: torch.Tensor, ctx: StepContext, tag: int = NOISE_TAG):
    """The generator's noise tensors for input ``x``, reproducible from the step context."""
    return [
        ctx.randn(tuple(shape), tag=100 * (tag + 1) + k).to(x.dtype)
        for k, shape in enumerate(g.noise_shapes(x.shape))
    ]


def generate(
    batch: dict[str, torch.Tensor], ctx: StepContext, pad_fine: Sequence[int], tag: int = NOISE_TAG
) -> torch.Tensor:
    """Generated crops ``[B, C, *S]`` (the generator's output without its context)."""
    g = ctx.models["generator"]
    x = batch["input"]
    return narrow(g(x, draw_noise(g, x, ctx, tag)), pad_fine)


def _without_parameter_grads(
    model: torch.nn.Module, fn: Callable[[], torch.Tensor]
) -> torch.Tensor:
    """``fn()`` recorded for gradients with respect to inputs only (the critic is not stepped
    in the generator phase, so its weight gradients would be computed and thrown away)."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        return fn()
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


class SharedFake:
    """One generator forward per step for a critic step and the generator step after it.

    map2map's (and pix2pix's) scheme: the critic steps on the detached output, then the
    generator steps through the updated critic on that same output (its graph kept). The
    critic phase stores ``(step, batch, output)``; the generator phase of the same step
    takes it instead of drawing a batch and running the generator again.
    """

    def __init__(self) -> None:
        self.item: tuple[int, dict[str, torch.Tensor], torch.Tensor] | None = None

    def put(self, step: int, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> None:
        self.item = (step, batch, fake)

    def take(self, step: int) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
        item, self.item = self.item, None
        if item is None or item[0] != step:
            return None
        return item[1], item[2]


class MSEPhase:
    """Supervised pre-training: masked MSE of one generated crop against the truth."""

    name = "mse"
    optimizer = "generator"
    updates_ema = True
    repeats = 1

    def __init__(self, pad_fine: Sequence[int], channels_last: bool = False) -> None:
        self.pad_fine = tuple(pad_fine)
        self.channels_last = channels_last

    def loss(self, batch, ctx: StepContext):
        batch = in_layout(batch, self.channels_last)
        with ctx.autocast():
            fake = generate(batch, ctx, self.pad_fine)
        mse = l2(fake.float(), batch["target"], batch["mask"])
        return mse, {"mse": mse.detach()}


class CriticPhase:
    """``repeats`` critic updates per step: adversarial critic loss (+ WGAN-GP penalty)."""

    name = "critic"
    optimizer = "critic"
    updates_ema = False

    def __init__(
        self,
        *,
        repeats: int,
        adversarial: str,
        gp_weight: float,
        pad_fine,
        pad_coarse,
        channels_last: bool = False,
        shared: SharedFake | None = None,
    ) -> None:
        self.channels_last = channels_last
        self.shared = shared
        self.repeats = int(repeats)
        self.adversarial = get_adversarial(adversarial)
        self.gp_weight = float(gp_weight)
        self.pad_fine, self.pad_coarse = tuple(pad_fine), tuple(pad_coarse)

    def loss(self, batch, ctx: StepContext):
        batch = in_layout(batch, self.channels_last)
        d = ctx.models["critic"]
        real, mask = batch["target"], batch["mask"]
        b = real.shape[0]
        # one autocast region: each weight is cast once per step, not once per critic call
        with ctx.autocast():
            if self.shared is not None:
                with_graph = generate(batch, ctx, self.pad_fine)
                self.shared.put(ctx.step, batch, with_graph)
                fake = with_graph.detach() * mask
            else:
                with torch.no_grad():
                    fake = generate(batch, ctx, self.pad_fine) * mask
            up = d.condition_features(narrow(batch["input"], self.pad_coarse))
            # real and generated crops through the critic as one batch of 2B
            scores = d.score(torch.cat([up, up]), torch.cat([real, fake.to(real.dtype)]))
            real_s, fake_s = scores[:b], scores[b:]
            loss = self.adversarial.critic_loss(real_s, fake_s)
            parts = {"wdist": (real_s.float().mean() - fake_s.float().mean()).detach()}
            if self.gp_weight > 0:
                gp = gradient_penalty(
                    lambda im: d.score(up, im),
                    real,
                    fake,
                    self.gp_weight,
                    generator=ctx.rng(GP_TAG),
                )
                loss = loss + gp
                parts["gp"] = gp.detach()
        return loss, parts


class R1Phase:
    """Lazy R1 penalty on real crops every ``every`` steps (the Trainer scales it by ``every``)."""

    name = "r1"
    optimizer = "critic"
    updates_ema = False
    repeats = 1
    lazy = True

    def __init__(
        self, *, gamma: float, every: int, pad_coarse, channels_last: bool = False
    ) -> None:
        self.gamma, self.every = float(gamma), int(every)
        self.pad_coarse = tuple(pad_coarse)
        self.channels_last = channels_last

    def loss(self, batch, ctx: StepContext):
        batch = in_layout(batch, self.channels_last)
        d = ctx.models["critic"]
        with ctx.autocast():
            up = d.condition_features(narrow(batch["input"], self.pad_coarse))
            r1 = r1_penalty(lambda im: d.score(up, im), batch["target"], self.gamma)
        return r1, {"r1": r1.detach()}


class GeneratorPhase:
    """One generator update: adversarial loss + optional MSE and spectral terms.

    ``on_start(generator)`` runs once, at this phase's first call (before its update): the
    build uses it to export the pre-trained (MSE-only) network.
    """

    name = "generator"
    optimizer = "generator"
    updates_ema = True
    repeats = 1

    def __init__(
        self,
        *,
        adversarial: str,
        content_weight: float,
        spectral: SpectralLoss | None,
        spectral_weight: float,
        pad_fine,
        pad_coarse,
        on_start: Callable[[torch.nn.Module, StepContext], None] | None = None,
        channels_last: bool = False,
        shared: SharedFake | None = None,
    ) -> None:
        self.channels_last = channels_last
        self.shared = shared
        self.adversarial = get_adversarial(adversarial)
        self.content_weight = float(content_weight)
        self.spectral, self.spectral_weight = spectral, float(spectral_weight)
        self.pad_fine, self.pad_coarse = tuple(pad_fine), tuple(pad_coarse)
        self.on_start = on_start

    def loss(self, batch, ctx: StepContext):
        if self.on_start is not None:
            start, self.on_start = self.on_start, None
            start(ctx.models["generator"], ctx)
        kept = self.shared.take(ctx.step) if self.shared is not None else None
        if kept is not None:
            batch, fake = kept  # the critic's batch and generator output of this step
        else:
            batch = in_layout(batch, self.channels_last)
        d = ctx.models["critic"]
        real, mask = batch["target"], batch["mask"]
        parts: dict[str, torch.Tensor] = {}
        with ctx.autocast():
            if kept is None:
                fake = generate(batch, ctx, self.pad_fine)
            up = d.condition_features(narrow(batch["input"], self.pad_coarse))
            scores = _without_parameter_grads(d, lambda: d.score(up, fake * mask))
            loss = self.adversarial.generator_loss(scores)
            parts["adv"] = loss.detach()
        if self.content_weight > 0:
            mse = l2(fake.float(), real, mask)
            loss = loss + self.content_weight * mse
            parts["mse"] = mse.detach()
        if self.spectral is not None and self.spectral_weight > 0:
            spec = self.spectral(fake.float() * mask, real)
            loss = loss + self.spectral_weight * spec
            parts["spectral"] = spec.detach()
        return loss, parts
