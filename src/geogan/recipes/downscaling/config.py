"""Configuration schema of recipe 1 (``recipe: downscaling``).

The engine sections (trainer, optimizers, schedules, stages, tracking, checkpointing)
come from :mod:`geogan.config.schema`; this module adds recipe 1's own sections and
keys. Sizes are in pixels of the high-resolution (truth) grid unless a field says otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from geogan.config.schema import (
    AugmentConfig,
    DataSection,
    EvaluateConfig,
    GenerateConfig,
    OptimConfig,
    RunConfig,
    Section,
    SourceConfig,
    SplitConfig,
    TrainConfig,
    TransformConfig,
)

__all__ = [
    "ContentLossConfig",
    "DataConfig",
    "DownscalingConfig",
    "DownscalingGenerateConfig",
    "DownscalingTrainConfig",
    "EvaluateConfig",
    "ModelConfig",
    "SamplingConfig",
    "migrate_config",
]


class SamplingConfig(Section):
    """Class-balanced patch sampling by wet fraction.

    A patch's class is the index of the first threshold its wet fraction
    (share of valid truth pixels above ``wet_threshold``) is below; the
    last class is everything at or above the last threshold. ``weights``
    has one entry per class (``len(thresholds) + 1``).
    """

    wet_threshold: float = 0.1
    thresholds: list[float] = Field(default_factory=lambda: [0.01, 0.1, 0.3])
    weights: list[float] = Field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4])
    candidate_stride: PositiveInt = 16
    min_valid_fraction: float = Field(0.5, ge=0, le=1)
    variable: str | None = None
    """Target variable that defines wetness; None: the first target variable."""

    @model_validator(mode="after")
    def _check_weights(self) -> SamplingConfig:
        if len(self.weights) != len(self.thresholds) + 1:
            raise ValueError(
                f"sampling.weights needs {len(self.thresholds) + 1} entries (one per class), "
                f"got {len(self.weights)}"
            )
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError("sampling.weights must be non-negative and not all zero")
        if sorted(self.thresholds) != list(self.thresholds):
            raise ValueError("sampling.thresholds must be increasing")
        return self


class DataConfig(DataSection):
    """Where the fields come from and how training patches are made."""

    truth: SourceConfig = Field(default_factory=SourceConfig)
    input: SourceConfig = Field(default_factory=SourceConfig)
    constants: SourceConfig = Field(default_factory=SourceConfig)
    autocoarsen: bool = False
    factor: PositiveInt = 4
    patch_size: PositiveInt = 64
    transforms: dict[str, TransformConfig] = Field(default_factory=dict)
    split: SplitConfig = Field(default_factory=SplitConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    stats_path: str | None = None
    patch_store: str | None = None
    regrid_method: Literal["linear", "nearest"] = "linear"

    @model_validator(mode="after")
    def _check_patch(self) -> DataConfig:
        if self.patch_size % self.factor != 0:
            raise ValueError(
                f"data.patch_size ({self.patch_size}) must be divisible by data.factor "
                f"({self.factor}); try {self.patch_size - self.patch_size % self.factor or self.factor}"
            )
        return self


class ModelConfig(Section):
    """Generator and critic architecture (recipe 1)."""

    arch: Literal["normal", "forceconv", "forceconv-long"] = "forceconv"
    filters_gen: PositiveInt = 64
    filters_disc: PositiveInt = 128
    noise_channels: int = Field(4, ge=0)
    latent_variables: PositiveInt = 1
    output_activation: Literal["softplus", "linear"] = "softplus"
    batch_norm: bool = False
    upsampling_factors: list[PositiveInt] | None = None
    padding_mode: (
        Literal["reflect", "zeros", "replicate", "circular"]
        | list[Literal["reflect", "zeros", "replicate", "circular"]]
    ) = "reflect"
    """One mode for every axis, or one per spatial axis in array order (e.g. ``[reflect,
    circular]``: reflect in latitude, circular (periodic) in longitude)."""
    dims: Literal[2, 3] = 2
    residual_input: bool = False
    """Generator adds the bilinear interpolation of the target fields' coarse input to its output."""
    conserve_mean: Literal["none", "additive", "smooth", "softmax"] = "none"
    """Hard constraint: each output block's mean equals its coarse input pixel (perfect-model
    setups). ``additive`` shifts each block by a constant; ``smooth`` spreads the same
    correction smoothly across block edges (no seams); ``softmax`` shares the coarse value
    out over the block (non-negative fields: zero stays zero)."""

    @model_validator(mode="after")
    def _check_padding(self) -> ModelConfig:
        if isinstance(self.padding_mode, list) and len(self.padding_mode) != self.dims:
            raise ValueError(
                f"model.padding_mode lists {len(self.padding_mode)} modes but model.dims is "
                f"{self.dims}; give one mode per spatial axis or a single mode"
            )
        return self


class ContentLossConfig(Section):
    """Ensemble content loss added to the generator loss.

    ``ensemble_mse``: MSE of the mean of ``members`` samples against the truth;
    ``crps``: fair CRPS of the ``members`` samples; ``none``: no content loss.
    ``block_mean_weight``: weight of ``mean |coarse - pool(output before the constraint)|``
    (normalised units) with ``model.conserve_mean: additive`` or ``smooth``, so the network
    matches the block means itself and the constraint only trims a remainder (0: off).
    """

    kind: Literal["ensemble_mse", "crps", "none"] = "ensemble_mse"
    weight: float = Field(1.0, ge=0)
    members: PositiveInt = 8
    block_mean_weight: float = Field(0.0, ge=0)


def _default_optimizers() -> dict[str, OptimConfig]:
    return {"generator": OptimConfig(), "critic": OptimConfig()}


class DownscalingTrainConfig(TrainConfig):
    """Engine settings plus recipe 1's losses. Optimizers: ``generator`` (generator and, for
    the VAE-GAN, the encoder) and ``critic``."""

    mode: Literal["gan", "vaegan", "det"] = "gan"
    critic_steps: PositiveInt = 5
    gp_weight: float = Field(10.0, ge=0)
    adversarial_loss: Literal["wgan", "hinge", "logistic", "lsgan"] = "wgan"
    content: ContentLossConfig = Field(default_factory=ContentLossConfig)
    kl_weight: float = Field(1e-5, ge=0)
    transformed_space: bool = True
    optimizers: dict[str, OptimConfig] = Field(default_factory=_default_optimizers)


class DownscalingGenerateConfig(GenerateConfig):
    """Ensemble generation over full domains, tiled."""

    tile_size: PositiveInt = 256
    """Tile edge in high-resolution pixels (any multiple of the factor; larger is faster,
    uses more memory)."""
    overlap: int = Field(16, ge=0)


class DownscalingConfig(RunConfig):
    """A recipe-1 run: data, model, training, generation and verification."""

    recipe: Literal["downscaling"] = "downscaling"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: DownscalingTrainConfig = Field(default_factory=DownscalingTrainConfig)
    generate: DownscalingGenerateConfig = Field(default_factory=DownscalingGenerateConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)


_LEGACY_OPTIMIZERS = {"gen_optim": "generator", "disc_optim": "critic"}


def migrate_config(tree: dict[str, Any]) -> list[str]:
    """Rename keys of older recipe-1 configs in place; returns one note per renamed key.

    ``train.gen_optim`` / ``train.disc_optim`` (before the engine's named optimizers)
    become ``train.optimizers.generator`` / ``train.optimizers.critic``.
    """
    notes = []
    train = tree.get("train")
    if isinstance(train, dict):
        for old, new in _LEGACY_OPTIMIZERS.items():
            if old in train:
                opts = train.setdefault("optimizers", {})
                if isinstance(opts, dict) and new not in opts:
                    opts[new] = train.pop(old)
                    notes.append(f"train.{old} is now train.optimizers.{new}")
    return notes
