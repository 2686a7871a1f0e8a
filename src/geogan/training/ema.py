"""Exponential moving average of a model's weights (the generator used for inference)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from geogan.core.modules import unwrap


class EMA:
    """Holds ``shadow``, a frozen copy of ``model`` updated as
    ``shadow = beta * shadow + (1 - beta) * model`` after each optimizer step.

    ``beta`` is ``decay``, or, when ``half_life_images`` is given, ``0.5 ** (images_per_step
    / half_life)`` (StyleGAN2's EMA by half-life), with the half-life capped at ``rampup *
    images seen`` when ``rampup`` is given. Before ``start_step`` the shadow simply copies
    the model (beta 0), so early noisy weights do not linger. Buffers (e.g. batch-norm
    statistics) are copied.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.999,
        start_step: int = 0,
        *,
        half_life_images: float | None = None,
        rampup: float | None = None,
        images_per_step: int = 1,
    ) -> None:
        self.decay = decay
        self.start_step = start_step
        self.half_life_images = half_life_images
        self.rampup = rampup
        self.images_per_step = images_per_step
        self.shadow = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)

    def beta(self, step: int) -> float:
        """The weight of the past at optimizer step ``step`` (0-based)."""
        if step < self.start_step:
            return 0.0
        if self.half_life_images is None:
            return self.decay
        half_life = self.half_life_images
        if self.rampup is not None:
            half_life = min(half_life, (step + 1) * self.images_per_step * self.rampup)
        return 0.5 ** (self.images_per_step / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = self.beta(step)
        src = unwrap(model)
        ema_params = list(self.shadow.parameters())
        model_params = [p.detach() for p in src.parameters()]
        if decay == 0.0:
            torch._foreach_copy_(ema_params, model_params)
        else:
            # lerp: ema + (1 - decay) * (model - ema), one fused kernel over all tensors
            torch._foreach_lerp_(ema_params, model_params, 1.0 - decay)
        for b_ema, b in zip(self.shadow.buffers(), src.buffers()):
            b_ema.copy_(b)

    @torch.no_grad()
    def copy_from(self, model: nn.Module) -> None:
        """Make the shadow an exact copy of ``model`` (after a warm start)."""
        self.shadow.load_state_dict(unwrap(model).state_dict())
