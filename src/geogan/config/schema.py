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


NonfinitePolicy = Literal["refuse", "mask"]
NegativePolicy = Literal["refuse", "clip", "allow"]


class SourceConfig(Section):
    """One NetCDF/Zarr/GRIB source and the variables read from it.

    ``rename``: file name -> name used by geogan (``{rain: precip}`` lets a model trained on
    ``precip`` read a file that calls it ``rain``); ``variables`` use the new names.
    ``units``: the units geogan expects per variable (``{precip: mm h-1}``): data in other
    but convertible units are converted (``mm/hr``, ``m s-1``; for precipitation also water
    mass fluxes such as ``kg m-2 s-1``), incompatible units are refused. ``on_nonfinite``
    (one policy, or one per variable): ``+-inf`` values are refused (default) or, with
    ``mask``, treated as missing like NaN; either way they are counted and reported.
    ``on_negative``: negative values of a quantity that cannot be negative (precipitation)
    are clipped to 0 (default), refused, or allowed; counted and reported.
    """

    path: str | None = None
    variables: list[str] = Field(default_factory=list)
    time_dim: str = "time"
    rename: dict[str, str] = Field(default_factory=dict)
    units: dict[str, str] = Field(default_factory=dict)
    on_nonfinite: NonfinitePolicy | dict[str, NonfinitePolicy] = "refuse"
    on_negative: NegativePolicy | dict[str, NegativePolicy] = "clip"

    def nonfinite_policy(self, var: str) -> str:
        p = self.on_nonfinite
        return p.get(var, "refuse") if isinstance(p, dict) else p

    def negative_policy(self, var: str) -> str:
        p = self.on_negative
        return p.get(var, "clip") if isinstance(p, dict) else p


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


class EvaluateConfig(Section):
    """Verification settings."""

    thresholds: list[float] = Field(default_factory=lambda: [0.1, 1.0, 5.0])
    fss_scales: list[PositiveInt] = Field(default_factory=lambda: [1, 4, 16, 32])
    pool_windows: list[tuple[PositiveInt, PositiveInt]] = Field(
        default_factory=lambda: [(4, 2), (16, 4)]
    )
    baselines: list[
        Literal["bilinear", "bicubic", "lanczos", "linear", "cubic", "trilinear", "tricubic"]
    ] = Field(default_factory=lambda: ["bilinear", "bicubic", "lanczos"])
    """Interpolation baselines: ``bilinear``/``bicubic`` (2D), ``trilinear``/``tricubic`` (3D),
    ``linear``/``cubic``/``lanczos`` (any rank)."""
    metrics: list[str | dict[str, dict]] | None = None
    """Metric set by registry name (or ``{name: {kwargs}}``); null: the recipe's own set."""
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


# --------------------------------------------------------------------------- engine sections
# Shared by every recipe: the trainer, optimizers, schedules, stages, tracking, checkpointing.
# A recipe's schema subclasses these (adding its own keys) and RunConfig (adding its sections).


class DataSection(Section):
    """Base of every recipe's ``data`` section: how the engine's DataLoader reads it."""

    num_workers: int = Field(0, ge=0)
    prefetch_factor: PositiveInt = 4


class EMAConfig(Section):
    """Exponential moving average of the generator's weights (used for export and inference).

    Either a fixed per-step ``decay`` or, when ``half_life_images`` is set, a half-life in
    training images (StyleGAN2's ``ema_kimg`` x 1000): per step the weight of the past is
    ``0.5 ** (images_per_step / half_life)``. ``rampup`` (e.g. 0.05) caps the half-life at
    ``rampup * images seen so far``, so early weights do not linger. Before
    ``start_step`` the average copies the model.
    """

    decay: float = Field(0.999, ge=0, lt=1)
    half_life_images: float | None = Field(None, gt=0)
    rampup: float | None = Field(None, gt=0)
    start_step: int = Field(0, ge=0)


class NanGuardConfig(Section):
    """Non-finite losses or gradients skip the step; after ``max_consecutive`` in a row,
    roll back to the last good checkpoint with the learning rates times ``lr_factor``
    (at most ``max_rollbacks`` times), then stop."""

    max_consecutive: PositiveInt = 5
    lr_factor: float = Field(0.5, gt=0, le=1)
    max_rollbacks: int = Field(2, ge=0)


class OptimConfig(Section):
    """One optimizer. ``clip_grad_norm``: clip the global gradient norm of its parameters
    (after averaging over ranks) to this value; null: no clipping."""

    kind: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.9)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.0, ge=0)
    clip_grad_norm: float | None = Field(None, gt=0)


class LRScheduleConfig(Section):
    """Learning-rate factor by step, the same for every optimizer.

    ``warmup_steps``: linear rise from ``1 / warmup_steps`` to 1; then ``kind``:
    ``constant``; ``cosine`` from 1 down to ``min_factor`` at ``total_steps``
    (default: train.steps); ``linear`` likewise, straight; ``step``: times ``gamma`` at each
    of ``milestones``.

    ``over: time`` runs ``cosine`` / ``linear`` over training time instead of steps, for
    time-budgeted runs whose step count is not known in advance: the decay ends after
    ``total_minutes`` of training (default: train.time_limit_minutes), counted over every
    run of a resumed training (the time limit itself counts one invocation); without
    any time budget it runs over steps.
    """

    kind: Literal["constant", "cosine", "linear", "step"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_factor: float = Field(0.0, ge=0, le=1)
    total_steps: PositiveInt | None = None
    over: Literal["steps", "time"] = "steps"
    total_minutes: float | None = Field(None, gt=0)
    milestones: list[PositiveInt] = Field(default_factory=list)
    gamma: float = Field(0.1, gt=0)


class StageConfig(Section):
    """A named stage: a range of consecutive steps with its own phases and model settings.

    ``steps``: how many steps the stage lasts (null for the last stage: until train.steps).
    ``phases``: names of the recipe's phases that run in this stage (null: all).
    ``models``: per model, ``frozen`` (no gradients, not updated), ``trainable``, or a
    number: trainable with the learning rate times that factor.
    """

    name: str
    steps: PositiveInt | None = None
    phases: list[str] | None = None
    models: dict[str, Literal["frozen", "trainable"] | float] = Field(default_factory=dict)

    @field_validator("models")
    @classmethod
    def _check_factors(cls, v: dict) -> dict:
        for name, mode in v.items():
            if isinstance(mode, float) and not mode >= 0:
                raise ValueError(f"learning-rate factor of model {name!r} must be >= 0")
        return v


class ValidationConfig(Section):
    """Every ``every`` steps (0: never) the recipe's validation callback runs on
    ``batches`` held-out batches and its metrics are logged under ``val/``."""

    every: int = Field(0, ge=0)
    batches: PositiveInt = 4


class InitFromConfig(Section):
    """Start from the weights of another run: an export (``model.safetensors``) or a resume
    checkpoint. ``models`` maps this run's model names to the names in that checkpoint
    (default: the same names, for every model the checkpoint holds that this run builds);
    ``strict``: every tensor of each mapped model must be present and of the same shape."""

    path: str
    models: dict[str, str] = Field(default_factory=dict)
    strict: bool = True


class TrainConfig(Section):
    """The training engine's settings (every recipe); recipes add their own keys by subclassing."""

    steps: PositiveInt = 1000
    batch_size: PositiveInt = 8
    optimizers: dict[str, OptimConfig] = Field(default_factory=dict)
    """Settings per optimizer the recipe builds (by name); missing names get the defaults."""
    lr_schedule: LRScheduleConfig = Field(default_factory=LRScheduleConfig)
    stages: list[StageConfig] = Field(default_factory=list)
    """Named stages over consecutive step ranges; empty: the recipe's default stages."""
    init_from: InitFromConfig | None = None
    ema: EMAConfig = Field(default_factory=EMAConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    precision: Literal["fp32", "bf16", "fp16", "auto"] = "fp32"
    channels_last: bool = False
    compile: Literal[False, True, "inductor", "aot_eager", "eager"] = False
    """``torch.compile`` the models the recipe marks as compilable (true = inductor)."""
    checkpoint_every: PositiveInt = 500
    keep_checkpoints: PositiveInt = 3
    log_every: PositiveInt = 10
    image_every: PositiveInt = 250
    nan_guard: NanGuardConfig = Field(default_factory=NanGuardConfig)
    tensorboard: bool = True
    mlflow: bool = False
    time_limit_minutes: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_stages(self) -> TrainConfig:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"train.stages names must be unique, got {names}")
        for s in self.stages[:-1]:
            if s.steps is None:
                raise ValueError(
                    f"train.stages: stage {s.name!r} needs 'steps' (only the last stage may "
                    "run until train.steps)"
                )
        return self


class GenerateConfig(Section):
    """Ensemble generation over whole domains (recipes add their own keys by subclassing)."""

    members: PositiveInt = 16
    seed: int = 0
    batch_size: PositiveInt = 8
    format: Literal["netcdf", "zarr"] = "netcdf"
    use_ema: bool = True


class RunConfig(Section):
    """A complete run. ``recipe`` selects the schema: each recipe subclasses this with its
    own ``data``, ``model``, ``train``, ``generate`` and ``evaluate`` sections.

    Top-level keys starting with ``x-`` are ignored (a place for YAML anchors, as in
    docker-compose): ``x-optim: &optim {lr: 2e-4}`` then ``train: {optimizers:
    {generator: *optim}}``.
    """

    recipe: str
    name: str = "run"
    seed: int = 0
    device: str = "auto"
    run_root: str = "runs"
    train: TrainConfig = Field(default_factory=TrainConfig)

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if v not in {"auto", "cpu"} and not v.startswith("cuda"):
            raise ValueError("device must be 'auto', 'cpu' or 'cuda[:N]'")
        return v
