"""Training phases of recipe 1: critic (WGAN-GP) and generator (adversarial + ensemble content loss).

Batches are dataset items stacked: ``input [B, C_in, h, w]``, ``target [B, C_out, H, W]``,
``constants [B, K, H, W]``, ``mask [B, 1, H, W]`` (1 = valid truth and input). Masked
pixels are zero in ``target``; generated images are multiplied by the mask
before the critic sees them, so the critic cannot tell real from fake by the
masked area, and content losses ignore masked pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from geogan.losses.adversarial import get_adversarial
from geogan.losses.content import crps_ensemble_loss, ensemble_mean_mse, kl_divergence, l2
from geogan.losses.regularisers import gradient_penalty
from geogan.models.downscaling import sample_latent
from geogan.training.phases import StepContext

NOISE_TAG, GP_TAG, LATENT_TAG = 0, 1, 2


def _constants(batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
    c = batch.get("constants")
    return c if c is not None and c.shape[1] > 0 else None


def _repeat(x: torch.Tensor | None, k: int) -> torch.Tensor | None:
    """``[B, ...] -> [k * B, ...]`` (member-major) so k members run in one forward pass."""
    if x is None or k == 1:
        return x
    # cat, not Tensor.repeat: the same values, and it keeps a channels_last layout (repeat
    # returns NCHW, which made every full-resolution layer convert layouts back and forth)
    return torch.cat([x] * k, dim=0)


def sample_members(
    batch: dict[str, torch.Tensor],
    ctx: StepContext,
    mode: str,
    members: int,
    tag: int = NOISE_TAG,
    block_error: list | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``members`` generated images ``[members, B, C_out, H, W]`` and the KL term (vaegan) or None.

    ``block_error``: a list that receives the generator's block-mean error before its
    ``conserve_mean`` constraint (``[members * B, C_out, h, w]`` or None)."""
    g = ctx.models["generator"]
    x, c = batch["input"], _constants(batch)
    xr, cr = _repeat(x, members), _repeat(c, members)
    kl = None
    kw = {"return_block_error": True} if block_error is not None else {}
    if mode == "vaegan":
        mean, logvar = ctx.models["encoder"](x, c)
        kl = kl_divergence(mean.float(), logvar.float())
        eps = ctx.randn((members * x.shape[0], *mean.shape[1:]), tag=LATENT_TAG + 10 * tag)
        z = sample_latent(
            _repeat(mean, members), _repeat(logvar, members), noise=eps.to(mean.dtype)
        )
        fake = g(xr, cr, z, **kw)
    elif mode == "det":
        fake = g(xr, cr, None, **kw)
    else:
        noise = ctx.randn(g.noise_shape(xr), tag=tag) if g.noise_channels else None
        fake = g(xr, cr, noise, **kw)
    if block_error is not None:
        fake, error = fake
        block_error.append(error)
    return fake.reshape(members, x.shape[0], *fake.shape[1:]), kl


def _without_parameter_grads(model: torch.nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """``model(*args)`` recorded for gradients with respect to the inputs only.

    The generator step back-propagates through the critic to the generated images; the
    critic's own weight gradients would be computed (a third of its backward pass and a
    gradient buffer the size of its weights) and then thrown away, since the critic is
    not stepped here.
    """
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        return model(*args)
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


class CriticPhase:
    """``critic_steps`` critic updates per step: adversarial critic loss + gradient penalty.

    ``share_low_features`` (default): the critic's low-resolution stream, which depends on
    the condition only, runs once for the real, generated and interpolated images (same
    values, less work). False runs the whole critic three times, as ``dsrnngan`` does (the
    equal-work speed benchmark).
    """

    name = "critic"
    optimizer = "critic"
    updates_ema = False

    def __init__(
        self,
        *,
        repeats: int,
        mode: str,
        adversarial: str,
        gp_weight: float,
        share_low_features: bool = True,
    ) -> None:
        self.repeats = repeats
        self.mode = mode
        self.adversarial = get_adversarial(adversarial)
        self.gp_weight = gp_weight
        self.share_low_features = share_low_features

    def loss(self, batch, ctx: StepContext):
        d = ctx.models["critic"]
        x, c, y, mask = batch["input"], _constants(batch), batch["target"], batch["mask"]
        split = self.share_low_features and hasattr(d, "low_features") and hasattr(d, "score")
        # One autocast region for the whole loss: each weight is cast to bf16 once per step
        # (autocast caches casts until its outermost region exits), not once per critic call.
        with ctx.autocast():
            with torch.no_grad():
                fake, _ = sample_members(batch, ctx, self.mode, 1)
            fake = fake[0] * mask
            if split:
                # The low-resolution stream depends on the condition only: computed once and
                # shared by the real, generated and interpolated images (its backward runs
                # once, on the summed gradient). Real and generated images go through the
                # rest of the critic as one batch of 2B (samples are independent: no batch norm).
                low = d.low_features(x, c)
                scores = d.score(_repeat(low, 2), _repeat(c, 2), torch.cat([y, fake.to(y.dtype)]))
                real_s, fake_s = scores[: y.shape[0]], scores[y.shape[0] :]

                def critic_fn(im: torch.Tensor) -> torch.Tensor:
                    return d.score(low, c, im)

            else:
                real_s, fake_s = d(x, c, y), d(x, c, fake)

                def critic_fn(im: torch.Tensor) -> torch.Tensor:
                    return d(x, c, im)

            loss = self.adversarial.critic_loss(real_s, fake_s)
            parts = {"wdist": (real_s.float().mean() - fake_s.float().mean()).detach()}
            if self.gp_weight > 0:
                gp = gradient_penalty(critic_fn, y, fake, self.gp_weight, generator=ctx.rng(GP_TAG))
                loss = loss + gp
                parts["gp"] = gp.detach()
        return loss, parts


class GeneratorPhase:
    """One generator update: adversarial loss on one member + weighted ensemble content loss.

    By default the adversarial member is the first of the ``members`` the content loss uses
    (``members`` generator samples per condition). ``separate_adversarial=True`` draws it
    apart, as ``dsrnngan`` does (``members + 1`` samples: one for the critic, ``members``
    for the content loss; all in one batched generator call).

    ``block_mean_weight`` (with a generator whose ``conserve_mean`` is additive or smooth):
    adds ``weight * mean |coarse - pool(output before the constraint)|`` over the valid
    coarse pixels (normalised units), so the network matches the block means itself and the
    exact constraint only trims a small remainder: left free, the corrected error differs
    from member to member and the ensemble spread shows the coarse grid as a lattice.
    """

    name = "generator"
    optimizer = "generator"
    updates_ema = True
    repeats = 1

    def __init__(
        self,
        *,
        mode: str,
        adversarial: str,
        content_kind: str,
        content_weight: float,
        members: int,
        kl_weight: float,
        to_physical: Callable[[torch.Tensor], torch.Tensor] | None = None,
        separate_adversarial: bool = False,
        block_mean_weight: float = 0.0,
    ) -> None:
        self.mode = mode
        self.block_mean_weight = float(block_mean_weight)
        self.adversarial = get_adversarial(adversarial) if mode != "det" else None
        self.content_kind = "mse" if mode == "det" else content_kind
        self.content_weight = 1.0 if mode == "det" else content_weight
        self.members = 1 if mode == "det" or content_kind == "none" else members
        if self.content_kind == "crps" and self.members < 2:
            self.members = 2  # CRPS needs a spread
        self.kl_weight = kl_weight
        self.to_physical = to_physical
        self.separate_adversarial = bool(separate_adversarial) and self.adversarial is not None

    def loss(self, batch, ctx: StepContext):
        x, c, y, mask = batch["input"], _constants(batch), batch["target"], batch["mask"]
        parts: dict[str, torch.Tensor] = {}
        extra = 1 if self.separate_adversarial else 0
        block_error: list | None = [] if self.block_mean_weight > 0 else None
        with ctx.autocast():
            fakes, kl = sample_members(
                batch, ctx, self.mode, self.members + extra, block_error=block_error
            )
            adversarial_fake = fakes[0]
            fakes = fakes[extra:]
            loss = torch.zeros((), device=y.device)
            if self.adversarial is not None:
                scores = _without_parameter_grads(
                    ctx.models["critic"], x, c, adversarial_fake * mask
                )
                adv = self.adversarial.generator_loss(scores)
                loss = loss + adv
                parts["adv"] = adv.detach()
        fakes, target = fakes.float(), y.float()
        if self.to_physical is not None:
            fakes, target = self.to_physical(fakes), self.to_physical(target)
        if self.content_kind == "mse":
            content = l2(fakes[0], target, mask)
        elif self.content_kind == "ensemble_mse":
            content = ensemble_mean_mse(fakes, target, mask)
        elif self.content_kind == "crps":
            content = crps_ensemble_loss(fakes, target, mask)
        else:
            content = None
        if content is not None:
            loss = loss + self.content_weight * content
            parts["content"] = content.detach()
        if kl is not None:
            loss = loss + self.kl_weight * kl
            parts["kl"] = kl.detach()
        if block_error and block_error[0] is not None:
            error = block_error[0].float()
            f = y.shape[-1] // error.shape[-1]
            pool = (
                torch.nn.functional.avg_pool2d
                if error.ndim == 4
                else torch.nn.functional.avg_pool3d
            )
            # coarse pixels whose every truth pixel is valid (others carry no information)
            ok = (pool(mask.float(), f) > 0.999).to(error.dtype)
            ok = torch.cat([ok] * (error.shape[0] // ok.shape[0]), dim=0)
            penalty = (error.abs() * ok).sum() / ok.sum().clamp_min(1.0) / error.shape[1]
            loss = loss + self.block_mean_weight * penalty
            parts["block_error"] = penalty.detach()
        return loss, parts
