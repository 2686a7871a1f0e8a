"""Schema of the example recipe: the engine's sections plus three small ones of its own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from geogan.config.schema import (
    DataSection,
    GenerateConfig,
    OptimConfig,
    RunConfig,
    Section,
    TrainConfig,
)


class ExampleData(DataSection):
    """Truth fields: zero-mean unit-variance Gaussian random fields ``[1, size, size]`` whose
    power falls off as ``k ** -slope``; field ``i`` is a pure function of ``(seed, i)``."""

    size: PositiveInt = 32
    slope: float = Field(3.0, ge=0)
    seed: int = 0


class ExampleModel(Section):
    latent_channels: PositiveInt = 4
    filters: PositiveInt = 16


def _optimizers() -> dict[str, OptimConfig]:
    return {"generator": OptimConfig(lr=2e-4), "critic": OptimConfig(lr=2e-4)}


class ExampleTrain(TrainConfig):
    critic_steps: PositiveInt = 2
    gp_weight: float = Field(10.0, ge=0)
    optimizers: dict[str, OptimConfig] = Field(default_factory=_optimizers)


class ExampleEvaluate(Section):
    truth_fields: PositiveInt = 64
    """Fresh truth fields (seeds never used in training) the members are compared with."""


class ExampleConfig(RunConfig):
    recipe: Literal["example"] = "example"
    data: ExampleData = Field(default_factory=ExampleData)
    model: ExampleModel = Field(default_factory=ExampleModel)
    train: ExampleTrain = Field(default_factory=ExampleTrain)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    evaluate: ExampleEvaluate = Field(default_factory=ExampleEvaluate)
