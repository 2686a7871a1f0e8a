"""What a recipe hands the Trainer: models, optimizers, phases, and optional callbacks.

A *phase* is one kind of optimisation step (e.g. "critic" repeated 5 times, then
"generator", then a lazy "r1" regulariser every 16 steps). Each repeat draws a fresh
batch, computes a loss inside the Trainer's autocast context and steps one optimizer.
The Trainer knows nothing about recipes: everything recipe-specific lives in the phases'
``loss``, and which phases run when is said by stages (see :class:`Stage`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from geogan.core.seeding import derive_seed

Batch = dict[str, Any]
"""A batch: tensors stacked along a first batch axis, possibly nested one level per
domain (``{"rf": {"x": [B, 3, H, W], ...}, "sn": {...}}``); the Trainer moves every tensor
to the device."""


@dataclass
class StepContext:
    """Per-step facts a phase may use: where we are, and reproducible randomness."""

    step: int
    repeat: int
    rank: int
    seed: int
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager]
    models: dict[str, nn.Module]
    memory_format: torch.memory_format = torch.contiguous_format
    every: int = 1
    stage: str = ""

    def rng(self, tag: int = 0) -> torch.Generator:
        """A generator seeded from (seed, step, repeat, rank, tag): the same on resume,
        different on each rank, independent of any global RNG state."""
        g = torch.Generator(device=self.device)
        g.manual_seed(derive_seed(self.seed, self.step, self.repeat, self.rank, tag))
        return g

    def randn(self, shape: tuple[int, ...], tag: int = 0) -> torch.Tensor:
        return torch.randn(shape, generator=self.rng(tag), device=self.device)


class Phase(Protocol):
    """One kind of optimisation step.

    Optional attributes (read with defaults by the Trainer):

    - ``every: int = 1``: run only at steps that are multiples of ``every`` (lazy
      regularisation);
    - ``lazy: bool = False``: multiply the loss by ``every`` so that the regulariser keeps
      its weight when applied less often (StyleGAN2);
    - ``state_dict() -> dict[str, Tensor]`` / ``load_state_dict(state)``: state the phase
      keeps between steps (e.g. the path-length running mean), saved in resume checkpoints.
    """

    name: str
    optimizer: str  # key into TrainingSetup.optimizers
    repeats: int  # how many times per training step, each on a fresh batch
    updates_ema: bool  # update the EMA model after this phase's optimizer step

    def loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(loss to minimise, {name: scalar tensor to log})``."""
        ...


@dataclass(frozen=True)
class Stage:
    """Steps ``[start, stop)`` (``stop`` None: to the end) running ``phases`` (None: all), with
    per-model ``frozen`` / ``trainable`` / learning-rate factor settings."""

    name: str
    start: int
    stop: int | None
    phases: frozenset[str] | None = None
    models: dict[str, str | float] = field(default_factory=dict)

    def runs(self, phase: str) -> bool:
        return self.phases is None or phase in self.phases

    def lr_factor(self, model: str) -> float:
        mode = self.models.get(model, "trainable")
        return float(mode) if isinstance(mode, (int, float)) else 1.0

    def frozen(self, model: str) -> bool:
        return self.models.get(model) == "frozen"


@dataclass
class TrainingSetup:
    """Everything a recipe builds for the Trainer.

    ``stages``: the recipe's default stages as ``StageConfig``-like mappings or
    :class:`Stage` objects (``train.stages`` in the config replaces them); empty: one stage
    running every phase. ``validate(models, batches) -> {metric: float}`` is called every
    ``train.validation.every`` steps (``models`` includes ``"ema"``). ``compile_models``:
    models that ``train.compile`` may wrap in ``torch.compile`` (not those a phase
    differentiates twice, e.g. a critic under a gradient penalty).
    """

    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    phases: list[Phase]
    dataset: torch.utils.data.Dataset
    ema_model: str | None = "generator"
    export_models: list[str] = field(default_factory=list)
    export_meta: dict[str, Any] = field(default_factory=dict)
    image_fn: Callable[[dict[str, nn.Module], Batch], torch.Tensor] | None = None
    collate_fn: Callable | None = None
    stages: list[Any] = field(default_factory=list)
    validate: Callable[[dict[str, nn.Module], int], dict[str, float]] | None = None
    compile_models: list[str] = field(default_factory=list)


class ResumableBatchSampler:
    """Infinite batch sampler over global sample indices, resumable by batch count.

    Global batch ``b`` covers indices ``[b * world * B, (b + 1) * world * B)``; rank
    ``r`` takes its contiguous slice. Datasets are deterministic functions of the
    index, so restarting at batch ``b`` reproduces the same stream exactly.
    """

    def __init__(
        self, batch_size: int, start_batch: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.batch_size = batch_size
        self.start_batch = start_batch
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[list[int]]:
        b = self.start_batch
        while True:
            base = (b * self.world_size + self.rank) * self.batch_size
            yield list(range(base, base + self.batch_size))
            b += 1

    def __len__(self) -> int:  # DataLoader asks; the stream is unbounded
        return 2**62
