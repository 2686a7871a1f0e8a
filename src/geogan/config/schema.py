"""Typed configuration schemas (pydantic v2).

Every section forbids unknown keys: a misspelt key is an error naming the
closest valid key (see :mod:`geogan.config.loader`). Sizes are in pixels of
the high-resolution (truth) grid unless a field says otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(Section):
    """One NetCDF/Zarr/GRIB source and the variables read from it."""

    path: str | None = None
    variables: list[str] = Field(default_factory=list)
    time_dim: str = "time"


class TransformConfig(Section):
    """Per-variable transform applied before normalisation.

    ``log1p``: x -> log(1 + x / scale) (rain); then ``norm``: ``zscore`` (x - mean) / std,
    ``minmax`` (x - min) / (max - min), ``max`` x / max (keeps zero at zero), or ``none``.
    """

    log1p: bool = False
    log1p_scale: float = Field(1.0, gt=0)
    norm: Literal["zscore", "minmax", "max", "none"] = "zscore"


class SplitConfig(Section):
    """Train/test split by time: the last ``holdout_fraction`` of each group is held out."""

    holdout_fraction: float = Field(0.25, ge=0, lt=1)
    group_by: Literal["day", "all"] = "day"


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
    variable: str | None = (
        None  # target variable that defines wetness; None: the first target variable
    )

    @model_validator(mode="after")
    def _check_weights(self) -> SamplingConfig:
        if len(self.weights) != len(self.thresholds) + 1:
            raise ValueError(
                f"sampling.weights needs {len(self.thresholds) + 1} entries (one per class), got {len(self.weights)}"
            )
        if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
            raise ValueError("sampling.weights must be non-negative and not all zero")
        if sorted(self.thresholds) != list(self.thresholds):
            raise ValueError("sampling.thresholds must be increasing")
        return self


SPATIAL_AXES = ("x", "y", "z")
"""Names of the spatial axes of a ``[C, *S]`` array, counted from the last: ``x`` is the last
axis (columns), ``y`` the one before (rows), ``z`` the one before that (levels/depth, 3D)."""


class VectorConfig(Section):
    """Channels that form one vector field: component ``components[i]`` points along
    spatial axis ``axes[i]`` (e.g. ``{components: [u, v], axes: [x, y]}``; 3D
    ``{components: [u, v, w], axes: [x, y, z]}``). Augmentations that flip an axis negate
    the component along it; permutations of axes permute the components with them."""

    components: list[str] = Field(min_length=1)
    axes: list[Literal["x", "y", "z"]] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> VectorConfig:
        if len(self.components) != len(self.axes):
            raise ValueError(
                f"a vector needs one axis per component: {self.components} vs {self.axes}"
            )
        if len(set(self.axes)) != len(self.axes) or len(set(self.components)) != len(
            self.components
        ):
            raise ValueError(f"vector components and axes must be distinct: {self.model_dump()}")
        return self


class AugmentConfig(Section):
    """Random symmetry transforms applied identically to every array of a sample.

    ``flip``: flip each spatial axis with probability 1/2 (``flip_axes`` restricts which);
    ``rot90``: a random number of quarter turns in the y-x plane (square crops only);
    ``permute``: a random permutation of the spatial axes named in ``permute_axes``
    (default all; equal sizes only, e.g. cubic 3D crops); ``roll_axes``: a random circular
    shift along these (periodic) axes; ``vectors``: channels that are vector components
    and transform as vectors, not as scalars.
    """

    flip: bool = True
    flip_axes: list[Literal["x", "y", "z"]] | None = None
    rot90: bool = True
    permute: bool = False
    permute_axes: list[Literal["x", "y", "z"]] | None = None
    roll_axes: list[Literal["x", "y", "z"]] = Field(default_factory=list)
    vectors: list[VectorConfig] = Field(default_factory=list)


class DataConfig(Section):
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
    num_workers: int = Field(0, ge=0)
    prefetch_factor: PositiveInt = 4
    regrid_method: Literal["linear", "nearest"] = "linear"

    @model_validator(mode="after")
    def _check_patch(self) -> DataConfig:
        if self.patch_size % self.factor != 0:
            raise ValueError(
                f"data.patch_size ({self.patch_size}) must be divisible by data.factor ({self.factor}); "
                f"try {self.patch_size - self.patch_size % self.factor or self.factor}"
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
    padding_mode: Literal["reflect", "zeros", "replicate", "circular"] = "reflect"
    dims: Literal[2, 3] = 2
    residual_input: bool = False
    """Generator adds the bilinear interpolation of the target fields' coarse input to its output."""
    conserve_mean: Literal["none", "additive", "smooth", "softmax"] = "none"
    """Hard constraint: each output block's mean equals its coarse input pixel (perfect-model
    setups). ``additive`` shifts each block by a constant; ``smooth`` spreads the same
    correction smoothly across block edges (no seams); ``softmax`` shares the coarse value
    out over the block (non-negative fields: zero stays zero)."""


class ContentLossConfig(Section):
    """Ensemble content loss added to the generator loss.

    ``ensemble_mse``: MSE of the mean of ``members`` samples against the truth;
    ``crps``: fair CRPS of the ``members`` samples; ``none``: no content loss.
    """

    kind: Literal["ensemble_mse", "crps", "none"] = "ensemble_mse"
    weight: float = Field(1.0, ge=0)
    members: PositiveInt = 8


class EMAConfig(Section):
    decay: float = Field(0.999, ge=0, lt=1)
    start_step: int = Field(0, ge=0)


class NanGuardConfig(Section):
    """Non-finite losses or gradients skip the step; after ``max_consecutive`` in a row,
    roll back to the last good checkpoint with the learning rates times ``lr_factor``
    (at most ``max_rollbacks`` times), then stop."""

    max_consecutive: PositiveInt = 5
    lr_factor: float = Field(0.5, gt=0, le=1)
    max_rollbacks: int = Field(2, ge=0)


class OptimConfig(Section):
    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.9)
    weight_decay: float = Field(0.0, ge=0)


class TrainConfig(Section):
    """Training loop settings."""

    mode: Literal["gan", "vaegan", "det"] = "gan"
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 8
    critic_steps: PositiveInt = 5
    gp_weight: float = Field(10.0, ge=0)
    adversarial_loss: Literal["wgan", "hinge", "logistic", "lsgan"] = "wgan"
    content: ContentLossConfig = Field(default_factory=ContentLossConfig)
    kl_weight: float = Field(1e-5, ge=0)
    transformed_space: bool = True
    gen_optim: OptimConfig = Field(default_factory=OptimConfig)
    disc_optim: OptimConfig = Field(default_factory=OptimConfig)
    ema: EMAConfig = Field(default_factory=EMAConfig)
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    channels_last: bool = False
    checkpoint_every: PositiveInt = 500
    keep_checkpoints: PositiveInt = 3
    log_every: PositiveInt = 10
    image_every: PositiveInt = 250
    nan_guard: NanGuardConfig = Field(default_factory=NanGuardConfig)
    tensorboard: bool = True
    mlflow: bool = False
    compile: bool = False
    time_limit_minutes: float | None = Field(None, gt=0)


class GenerateConfig(Section):
    """Ensemble generation over full domains."""

    members: PositiveInt = 16
    seed: int = 0
    tile_size: PositiveInt = 256
    """Tile edge in high-resolution pixels (any multiple of the factor; larger is faster, uses more memory)."""
    overlap: int = Field(16, ge=0)
    batch_size: PositiveInt = 8
    format: Literal["netcdf", "zarr"] = "netcdf"
    use_ema: bool = True


class EvaluateConfig(Section):
    """Verification settings."""

    thresholds: list[float] = Field(default_factory=lambda: [0.1, 1.0, 5.0])
    fss_scales: list[PositiveInt] = Field(default_factory=lambda: [1, 4, 16, 32])
    pool_windows: list[tuple[PositiveInt, PositiveInt]] = Field(
        default_factory=lambda: [(4, 2), (16, 4)]
    )
    baselines: list[Literal["bilinear", "bicubic", "lanczos"]] = Field(
        default_factory=lambda: ["bilinear", "bicubic", "lanczos"]
    )
    sample_times: PositiveInt = 2
    rank_precision: float | Literal["auto"] | None = "auto"
    """Quantum of the observations (e.g. 0.12 mm/h for KNMI radar): rank histograms are also
    computed with truth and members rounded to it (``*_at_precision``). ``auto`` detects it
    from the first chunk of truth (None for continuous data); null turns it off."""

    @field_validator("rank_precision")
    @classmethod
    def _check_precision(cls, v: float | str | None) -> float | str | None:
        if isinstance(v, float) and not v > 0:
            raise ValueError("rank_precision must be > 0, 'auto' or null")
        return v


class RunConfig(Section):
    """A complete run: which recipe, its data, model, training, generation and verification."""

    recipe: str = "downscaling"
    name: str = "run"
    seed: int = 0
    device: str = "auto"
    run_root: str = "runs"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if v not in {"auto", "cpu"} and not v.startswith("cuda"):
            raise ValueError("device must be 'auto', 'cpu' or 'cuda[:N]'")
        return v
