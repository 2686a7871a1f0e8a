"""Exponential moving average of a model's weights (the generator used for inference)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Holds ``shadow``, a frozen copy of ``model`` updated as
    ``shadow = decay * shadow + (1 - decay) * model`` after each optimizer step.

    Before ``start_step`` the shadow simply copies the model (decay 0), so early
    noisy weights do not linger. Buffers (e.g. batch-norm statistics) are copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, start_step: int = 0) -> None:
        self.decay = decay
        self.start_step = start_step
        self.shadow = copy.deepcopy(_unwrap(model)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = self.decay if step >= self.start_step else 0.0
        src = _unwrap(model)
        ema_params = [p for p in self.shadow.parameters()]
        model_params = [p.detach() for p in src.parameters()]
        if decay == 0.0:
            torch._foreach_copy_(ema_params, model_params)
        else:
            # lerp: ema + (1 - decay) * (model - ema), one fused kernel over all tensors
            torch._foreach_lerp_(ema_params, model_params, 1.0 - decay)
        for b_ema, b in zip(self.shadow.buffers(), src.buffers()):
            b_ema.copy_(b)


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)
