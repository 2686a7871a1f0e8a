"""Training phases of recipe 3: MixLC ACGAN, plain pix2pix, and the land-cover segmenter.

Batches are :class:`~geogan.recipes.landcover.data.MixDataset` items stacked: images in
[-1, 1] ``[B, 3, T, T]``, class maps ``[B, T, T]`` (ignore index = ``n_classes``), box
``[B, 1, T, T]``.

MixLC (seed 002): the generator maps ``(rgb_a, lc_ab)`` to ``rgb_ab``.

- discriminator: adversarial loss of ``D(rgb_ab, lc_ab)`` (real) against
  ``D(G(rgb_a, lc_ab), lc_ab)`` (fake), plus the cross-entropy of its auxiliary head on the
  real image against ``lc_ab`` (weight 1, real images only: trained on fakes too, the head
  could learn to accept whatever the generator draws for a class);
- generator: ``adversarial * adv + pixel * L1(fake, rgb_ab) + style * S(fake, rgb_ab) +
  identity * (L1(G(rgb_a, lc_a), rgb_a) + S(G(rgb_a, lc_a), rgb_a)) + local * L1 on the
  box + aux * CE(head(fake), lc_ab) + spectral * spectral_loss(fake, rgb_ab)`` where ``S``
  is the Gram-matrix style loss.

pix2pix (the baseline): one U-Net on ``cat(rgb_a, one_hot(lc_ab))``, PatchGAN on
``cat(input, image)``, ``0.5 * (BCE real + BCE fake)`` for D (as pix2pix), ``adv + 100 * L1``
for G; no auxiliary head, no style loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from geogan.losses import get_adversarial, l1, masked_mean, spectral_loss
from geogan.recipes.landcover.data import one_hot
from geogan.training.phases import StepContext

__all__ = [
    "MixLCDiscriminatorPhase",
    "MixLCGeneratorPhase",
    "Pix2PixDiscriminatorPhase",
    "Pix2PixGeneratorPhase",
    "SegmenterPhase",
    "generator_input",
]


@contextlib.contextmanager
def no_param_grads(model: nn.Module) -> Iterator[None]:
    """Run the model's forward without recording gradients for its parameters (the input
    still gets them): the generator phase does not need the discriminator's weight grads."""
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def generator_input(kind: str, rgb: torch.Tensor, lc1h: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The generator's positional inputs: ``(rgb, one-hot)`` for MixLC, one concatenated
    tensor for pix2pix."""
    return (rgb, lc1h) if kind == "mixlc" else (torch.cat([rgb, lc1h], dim=1),)


def _ce(logits: torch.Tensor, lc: torch.Tensor, n_classes: int) -> torch.Tensor:
    return F.cross_entropy(logits.float(), lc, ignore_index=n_classes)


class _Base:
    optimizer = "generator"
    repeats = 1
    updates_ema = False

    def __init__(self, n_classes: int, noise_channels: int = 0) -> None:
        self.n_classes, self.noise_channels = n_classes, noise_channels

    def _noise(self, like: torch.Tensor, ctx: StepContext, tag: int) -> torch.Tensor | None:
        if not self.noise_channels:
            return None
        return ctx.randn((like.shape[0], self.noise_channels, *like.shape[2:]), tag=tag)

    def _g(self, ctx: StepContext, rgb, lc1h, tag: int) -> torch.Tensor:
        noise = self._noise(rgb, ctx, tag)
        g = ctx.models["generator"]
        return g(rgb, lc1h) if noise is None else g(rgb, lc1h, noise)


class MixLCDiscriminatorPhase(_Base):
    name, optimizer = "discriminator", "discriminator"

    def __init__(self, n_classes: int, adversarial: str, noise_channels: int = 0) -> None:
        super().__init__(n_classes, noise_channels)
        self.adv = get_adversarial(adversarial)

    def loss(self, batch, ctx):
        d = ctx.models["discriminator"]
        lc_ab = batch["lc_ab"]
        lc1h = one_hot(lc_ab, self.n_classes, ctx.memory_format)
        with ctx.autocast():
            with torch.no_grad():
                fake = self._g(ctx, batch["rgb_a"], lc1h, tag=1)
            real_logits, real_aux = d(batch["rgb_ab"], lc1h)
            fake_logits, _ = d(fake, lc1h)
            adv = self.adv.critic_loss(real_logits, fake_logits)
            aux = _ce(real_aux, lc_ab, self.n_classes)
        return adv + aux, {"adv": adv.detach(), "aux_ce": aux.detach()}


class MixLCGeneratorPhase(_Base):
    name, updates_ema = "generator", True

    def __init__(
        self,
        n_classes: int,
        adversarial: str,
        weights,
        style: nn.Module | None,
        noise_channels: int = 0,
    ) -> None:
        super().__init__(n_classes, noise_channels)
        self.adv, self.w, self.style = get_adversarial(adversarial), weights, style

    def loss(self, batch, ctx):
        d, w = ctx.models["discriminator"], self.w
        rgb_a, rgb_ab, box = batch["rgb_a"], batch["rgb_ab"], batch["box"]
        lc1h = one_hot(batch["lc_ab"], self.n_classes, ctx.memory_format)
        parts: dict[str, torch.Tensor] = {}
        with ctx.autocast():
            fake = self._g(ctx, rgb_a, lc1h, tag=1)
            with no_param_grads(d):
                logits, aux = d(fake, lc1h)
            parts["adv"] = self.adv.generator_loss(logits)
            parts["pixel"] = l1(fake, rgb_ab)
            parts["local"] = masked_mean((fake.float() - rgb_ab.float()).abs(), box)
            parts["aux_ce"] = _ce(aux, batch["lc_ab"], self.n_classes)
            use_style = self.style is not None and (w.style > 0 or w.identity > 0)
            if use_style and w.style > 0:
                parts["style"] = self.style(fake, rgb_ab)
            if w.identity > 0:
                ident = self._g(
                    ctx, rgb_a, one_hot(batch["lc_a"], self.n_classes, ctx.memory_format), tag=2
                )
                parts["identity"] = l1(ident, rgb_a)
                if use_style:
                    parts["identity"] = parts["identity"] + self.style(ident, rgb_a)
        if w.spectral > 0:
            parts["spectral"] = spectral_loss(fake, rgb_ab)
        total = (
            w.adversarial * parts["adv"]
            + w.pixel * parts["pixel"]
            + w.local * parts["local"]
            + w.aux * parts["aux_ce"]
            + w.style * parts.get("style", 0.0)
            + w.identity * parts.get("identity", 0.0)
            + w.spectral * parts.get("spectral", 0.0)
        )
        return total, {k: v.detach() for k, v in parts.items()}


class Pix2PixDiscriminatorPhase(_Base):
    name, optimizer = "discriminator", "discriminator"

    def __init__(self, n_classes: int, adversarial: str) -> None:
        super().__init__(n_classes)
        self.adv = get_adversarial(adversarial)

    def loss(self, batch, ctx):
        d, g = ctx.models["discriminator"], ctx.models["generator"]
        x = torch.cat(
            [batch["rgb_a"], one_hot(batch["lc_ab"], self.n_classes, ctx.memory_format)], 1
        )
        with ctx.autocast():
            with torch.no_grad():
                fake = g(x)
            adv = 0.5 * self.adv.critic_loss(d(batch["rgb_ab"], x), d(fake, x))
        return adv, {"adv": adv.detach()}


class Pix2PixGeneratorPhase(_Base):
    name, updates_ema = "generator", True

    def __init__(self, n_classes: int, adversarial: str, l1_weight: float) -> None:
        super().__init__(n_classes)
        self.adv, self.l1_weight = get_adversarial(adversarial), l1_weight

    def loss(self, batch, ctx):
        d, g = ctx.models["discriminator"], ctx.models["generator"]
        x = torch.cat(
            [batch["rgb_a"], one_hot(batch["lc_ab"], self.n_classes, ctx.memory_format)], 1
        )
        with ctx.autocast():
            fake = g(x)
            with no_param_grads(d):
                adv = self.adv.generator_loss(d(fake, x))
            pixel = l1(fake, batch["rgb_ab"])
        return adv + self.l1_weight * pixel, {"adv": adv.detach(), "pixel": pixel.detach()}


class SegmenterPhase(_Base):
    """Cross-entropy of the land-cover segmenter on real images (``rgb_a`` -> ``lc_a``)."""

    name, optimizer = "segmenter", "segmenter"

    def loss(self, batch, ctx):
        with ctx.autocast():
            logits = ctx.models["segmenter"](batch["rgb_a"])
            ce = _ce(logits, batch["lc_a"], self.n_classes)
        with torch.no_grad():
            valid = batch["lc_a"] < self.n_classes
            acc = (logits.argmax(1) == batch["lc_a"])[valid].float().mean()
        return ce, {"ce": ce.detach(), "pixel_accuracy": acc}
