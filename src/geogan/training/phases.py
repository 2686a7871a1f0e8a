"""What a recipe hands the Trainer: models, optimizers and phases.

A *phase* is one kind of optimisation step (e.g. "critic" repeated 5 times,
then "generator"). Each repeat draws a fresh batch, computes a loss inside the
Trainer's autocast context and steps one optimizer. The Trainer knows nothing
about recipes: everything recipe-specific lives in the phases' ``loss``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from geogan.core.seeding import derive_seed


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

    def rng(self, tag: int = 0) -> torch.Generator:
        """A generator seeded from (seed, step, repeat, rank, tag): the same on resume,
        different on each rank, independent of any global RNG state."""
        g = torch.Generator(device=self.device)
        g.manual_seed(derive_seed(self.seed, self.step, self.repeat, self.rank, tag))
        return g

    def randn(self, shape: tuple[int, ...], tag: int = 0) -> torch.Tensor:
        return torch.randn(shape, generator=self.rng(tag), device=self.device)


class Phase(Protocol):
    """One kind of optimisation step."""

    name: str
    optimizer: str  # key into TrainingSetup.optimizers
    repeats: int  # how many times per training step, each on a fresh batch
    updates_ema: bool  # update the EMA model after this phase's optimizer step

    def loss(
        self, batch: dict[str, torch.Tensor], ctx: StepContext
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(loss to minimise, {name: scalar tensor to log})``."""
        ...


@dataclass
class TrainingSetup:
    """Everything a recipe builds for the Trainer."""

    models: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    phases: list[Phase]
    dataset: torch.utils.data.Dataset
    ema_model: str | None = "generator"
    export_models: list[str] = field(default_factory=list)
    export_meta: dict[str, Any] = field(default_factory=dict)
    image_fn: Callable[[dict[str, nn.Module], dict[str, torch.Tensor]], torch.Tensor] | None = None
    collate_fn: Callable | None = None


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
