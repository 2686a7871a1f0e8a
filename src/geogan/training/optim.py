"""Optimizers built from the engine's config, one parameter group per model, and LR schedules.

Each optimizer trains one or more models; every model is its own parameter group
(``group["model"]`` names it), so a stage can freeze one model or scale its learning
rate without touching the others. The learning rate of a group at a step is
``base_lr * schedule(step) * stage_factor(model) * guard_scale``, recomputed from the
step number alone, so a resumed run follows exactly the same rates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from geogan.config.schema import LRScheduleConfig, OptimConfig
from geogan.core.errors import ConfigError

__all__ = ["build_optimizer", "build_optimizers", "lr_factor"]


def build_optimizer(models: Mapping[str, nn.Module], cfg: OptimConfig) -> torch.optim.Optimizer:
    """An optimizer over ``models`` (name -> module), one parameter group per model."""
    groups = [
        {"params": list(m.parameters()), "model": name, "base_lr": cfg.lr}
        for name, m in models.items()
    ]
    if cfg.kind == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True
        )
    cls = torch.optim.AdamW if cfg.kind == "adamw" else torch.optim.Adam
    # foreach: one fused kernel per parameter group instead of one per tensor
    return cls(
        groups,
        lr=cfg.lr,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        foreach=True,
    )


def build_optimizers(
    models: Mapping[str, nn.Module],
    plan: Mapping[str, Sequence[str]],
    configs: Mapping[str, OptimConfig],
) -> dict[str, torch.optim.Optimizer]:
    """Optimizers by name: ``plan`` says which models each trains (``{"generator":
    ["generator", "encoder"], "critic": ["critic"]}``; absent models are skipped), ``configs``
    holds ``train.optimizers`` (an optimizer without an entry gets the defaults)."""
    unknown = sorted(set(configs) - set(plan))
    if unknown:
        raise ConfigError(
            f"train.optimizers names {unknown}, but this run has optimizers {sorted(plan)}; "
            "rename or remove them"
        )
    out = {}
    for name, model_names in plan.items():
        chosen = {m: models[m] for m in model_names if m in models}
        if chosen:
            out[name] = build_optimizer(chosen, configs.get(name, OptimConfig()))
    return out


def schedule_seconds(cfg: LRScheduleConfig, time_limit_minutes: float | None) -> float | None:
    """Length in seconds of a schedule over time, or None when it runs over steps.

    ``over: time`` without any time budget (no ``total_minutes``, no time limit) runs over
    steps, so a step-limited run of a time-decaying preset still decays.
    """
    minutes = cfg.total_minutes or time_limit_minutes
    return minutes * 60.0 if cfg.over == "time" and minutes else None


def lr_factor(
    cfg: LRScheduleConfig,
    step: int,
    total_steps: int,
    *,
    time_fraction: float | None = None,
) -> float:
    """The schedule's learning-rate factor at ``step`` (0-based, the step being taken).

    ``time_fraction``: the share of the schedule's time budget spent so far (used, and
    required, when ``cfg.over == "time"``; the warm-up still counts steps).
    """
    total = cfg.total_steps or total_steps
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.kind == "constant":
        return 1.0
    if cfg.kind == "step":
        return cfg.gamma ** sum(step >= m for m in cfg.milestones)
    if cfg.over == "time" and time_fraction is not None:
        progress = min(max(time_fraction, 0.0), 1.0)
    else:
        span = max(total - cfg.warmup_steps, 1)
        progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    if cfg.kind == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:  # linear
        shape = 1.0 - progress
    return cfg.min_factor + (1.0 - cfg.min_factor) * shape
