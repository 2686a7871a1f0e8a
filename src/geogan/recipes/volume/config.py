"""Configuration schema of recipe 2 (``recipe: volume``): 3D volumetric super-resolution.

Volumes are ``[D, H, W]`` per variable; axes are named as everywhere in geogan
(:data:`~geogan.config.schema.SPATIAL_AXES`): ``x`` the last (columns), ``y`` the one before,
``z`` the first (levels or depth). Sizes are fine (truth-grid) voxels unless a key says
"coarse". The factor may differ per axis (``[1, 4, 4]``: levels kept, x4 horizontally).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from geogan.config.schema import (
    AugmentConfig,
    DataSection,
    EvaluateConfig,
    GenerateConfig,
    OptimConfig,
    RunConfig,
    Section,
    TrainConfig,
    TransformConfig,
)

__all__ = [
    "AXES",
    "FileSource",
    "SyntheticSource",
    "VolumeConfig",
    "VolumeData",
    "VolumeEvaluate",
    "VolumeGenerate",
    "VolumeModel",
    "VolumeTrain",
    "per_axis",
]

AXES = ("z", "y", "x")
"""The spatial axes of a volume ``[D, H, W]``, in array order."""

Axis = Literal["x", "y", "z"]
IntOrAxes = PositiveInt | list[PositiveInt]


def per_axis(value: int | list[int] | None, what: str) -> tuple[int, ...] | None:
    """``value`` as one int per axis (z, y, x); a scalar is broadcast."""
    if value is None:
        return None
    out = (int(value),) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(out) != 3:
        raise ValueError(f"{what} needs one value or three (z, y, x), got {list(out)}")
    return out


class SyntheticSource(Section):
    """Generated physical fields (:mod:`geogan.data.synthetic`), periodic on every axis.

    ``kind``: ``mantle`` (variables T, u, v, w: a solenoidal velocity and a temperature
    correlated with it and advected by it) or ``lognormal`` (variable ``rho``: a log-normal
    density with a power-law spectrum). ``volumes`` training volumes of ``size`` voxels per
    axis are generated from seeds derived from ``seed``; held-out volumes (``test_volumes``)
    use seeds never used in training.
    """

    kind: Literal["mantle", "lognormal"] = "mantle"
    size: IntOrAxes = 64
    volumes: PositiveInt = 16
    test_volumes: PositiveInt = 4
    test_size: IntOrAxes | None = None
    """Voxels per axis of the held-out volumes (default: ``size``)."""
    seed: int = 0
    slope: float = Field(4.0, ge=0)
    """Spectral slope of the velocity (mantle) or of the Gaussian field (lognormal)."""
    temperature_slope: float = Field(4.0, ge=0)
    correlation: float = Field(0.7, ge=-1, le=1)
    advect_steps: NonNegativeInt = 2
    sigma: float = Field(1.0, gt=0)
    """Standard deviation of log(rho) (lognormal)."""

    @field_validator("size", "test_size")
    @classmethod
    def _sizes(cls, v):
        per_axis(v, "synthetic size")
        return v

    def variables(self) -> list[str]:
        return ["T", "u", "v", "w"] if self.kind == "mantle" else ["rho"]


class FileSource(Section):
    """Volumes read from a NetCDF/Zarr/GRIB file.

    ``dims``: the three spatial dims of each variable in the order z, y, x (default: the
    variable's last three dims). ``select``: other dims fixed to one index (``{time: 0}``);
    ``sample_dim``: a dim whose entries are separate volumes (``face`` of a cubed sphere).
    ``train`` / ``test``: index ranges ``[start, stop)`` per dim (``{face: [0, 4]}``,
    ``{x: [0, 60]}`` with the spatial dims' own names); a dim not named is taken whole.
    ``mask_variable``: a fine-grid mask (1 = valid, e.g. an ocean's ``wet``); NaN values
    are missing as well.
    """

    path: str
    variables: list[str] = Field(min_length=1)
    dims: list[str] | None = None
    select: dict[str, int] = Field(default_factory=dict)
    sample_dim: str | None = None
    train: dict[str, tuple[int, int]] = Field(default_factory=dict)
    test: dict[str, tuple[int, int]] = Field(default_factory=dict)
    mask_variable: str | None = None

    @field_validator("dims")
    @classmethod
    def _three(cls, v):
        if v is not None and len(v) != 3:
            raise ValueError(f"data.file.dims needs the 3 spatial dims (z, y, x), got {v}")
        return v

    @field_validator("train", "test")
    @classmethod
    def _ranges(cls, v):
        for dim, (a, b) in v.items():
            if not 0 <= a < b:
                raise ValueError(f"range of {dim!r} must be [start, stop) with 0 <= start < stop")
        return v


def _default_augment() -> AugmentConfig:
    return AugmentConfig(flip=True, rot90=False, permute=False)


class VolumeData(DataSection):
    """Training volumes, crops, coarsening, periodicity, augmentation and transforms.

    The coarse input is the block mean of the truth over ``factor`` voxels per axis (the
    cell average a coarse simulation carries), of valid voxels only. ``crop``: fine voxels
    per axis of each training crop (a thin crop is a slice; null: the whole volume), a
    multiple of the factor; ``input_pad``: coarse voxels of context around it that the
    generator sees but is not scored on (``map2map``'s ``in_pad``). ``periodic_axes``:
    axes on which the volume wraps round (crops and their context wrap there; generation
    tiles round the circle and pads whole-axis tiles circularly); ``padding_mode``: how
    the networks pad their convolutions (``zeros`` runs inside the convolution, the fastest).
    """

    source: Literal["synthetic", "file"] = "synthetic"
    synthetic: SyntheticSource = Field(default_factory=SyntheticSource)
    file: FileSource | None = None
    factor: IntOrAxes = 4
    crop: IntOrAxes | None = 32
    input_pad: NonNegativeInt = 1
    periodic_axes: list[Axis] = Field(default_factory=lambda: ["x", "y", "z"])
    padding_mode: Literal["replicate", "reflect", "zeros"] = "zeros"
    augment: AugmentConfig = Field(default_factory=_default_augment)
    transforms: dict[str, TransformConfig] = Field(default_factory=dict)
    normalise_per_level: bool = False
    """Standardise each level of each variable again after ``transforms`` (for volumes with
    a strong vertical profile: geopotential, ocean temperature); needs factor 1 along z and
    no flip or permutation of z (:mod:`geogan.recipes.volume.levels`)."""
    seed: int = 0
    stats_path: str | None = None

    @model_validator(mode="after")
    def _check(self) -> VolumeData:
        factor = per_axis(self.factor, "data.factor")
        crop = per_axis(self.crop, "data.crop")
        if crop is not None:
            for name, c, f in zip(AXES, crop, factor):
                if c % f:
                    raise ValueError(
                        f"data.factor {list(factor)} does not divide data.crop {list(crop)} "
                        f"along {name} ({c} voxels, factor {f}); use a crop that is a multiple "
                        "of the factor"
                    )
        if self.source == "file" and self.file is None:
            raise ValueError("data.source is 'file' but data.file is missing; add data.file.path")
        if self.normalise_per_level:
            a = self.augment
            if factor[0] != 1:
                raise ValueError(
                    f"data.normalise_per_level keeps the levels: it needs factor 1 along z, got "
                    f"{list(factor)}; use e.g. [1, 4, 4] or turn it off"
                )
            if (a.flip and (a.flip_axes is None or "z" in a.flip_axes)) or (
                a.permute and (a.permute_axes is None or "z" in a.permute_axes)
            ):
                raise ValueError(
                    "data.normalise_per_level needs augmentations that leave z alone; set "
                    "data.augment.flip_axes / permute_axes without z (or flip/permute false)"
                )
        bad = sorted(set(self.augment.roll_axes) - set(self.periodic_axes))
        if bad:
            raise ValueError(
                f"data.augment.roll_axes {bad} are not periodic (data.periodic_axes "
                f"{self.periodic_axes}); a roll is only valid along a periodic axis"
            )
        return self

    def factors(self) -> tuple[int, int, int]:
        return per_axis(self.factor, "data.factor")  # type: ignore[return-value]

    def crops(self) -> tuple[int, int, int] | None:
        return per_axis(self.crop, "data.crop")  # type: ignore[return-value]

    def variables(self) -> list[str]:
        if self.source == "synthetic":
            return self.synthetic.variables()
        assert self.file is not None
        return list(self.file.variables)

    def periodic(self) -> tuple[bool, bool, bool]:
        return tuple(a in self.periodic_axes for a in AXES)  # type: ignore[return-value]


class VolumeModel(Section):
    """Generator and critic sizes (srsgan's channel schedule ``clamp(base / 2^b, min, max)``)."""

    chan_base: PositiveInt = 64
    chan_min: PositiveInt = 16
    chan_max: PositiveInt = 64
    noise: Literal["add", "concat", "none"] = "add"
    residual: bool = True
    proj_activation: bool = False
    critic_chan_base: PositiveInt = 64
    critic_chan_min: PositiveInt = 16
    critic_chan_max: PositiveInt = 128
    critic_padding: Literal["valid", "same"] = "valid"
    explicit_padding: bool = True
    """Pad with a separate op before unpadded 3x3 convolutions (faster on CPU with
    contiguous activations); false: zero padding inside the convolution (use it with
    ``train.channels_last_3d``)."""


def _optimizers() -> dict[str, OptimConfig]:
    return {
        "generator": OptimConfig(lr=2e-4, betas=(0.5, 0.9)),
        "critic": OptimConfig(lr=2e-4, betas=(0.5, 0.9)),
    }


class VolumeTrain(TrainConfig):
    """Stages: supervised MSE pre-training for ``pretrain_steps``, then adversarial training.

    ``adversarial_loss`` + ``regulariser``: ``wgan`` + ``gp`` (WGAN-GP, ``critic_steps``
    critic updates per generator update, penalty ``gp_weight``) or e.g. ``logistic`` + ``r1``
    (lazy R1 every ``r1_interval`` steps, weight ``r1_gamma``, scaled by the interval).
    The generator's adversarial loss can be joined by an MSE term (``content_weight``) and a
    power-spectrum term (``spectral_weight``: squared log-ratio of the batch's 3D spectra,
    per variable and wavenumber shell). ``mse_export``: write the pre-trained network, as it
    is when the adversarial stage starts, to ``<run>/mse_model.safetensors`` (the MSE-only
    baseline of ``geogan evaluate``).
    """

    steps: PositiveInt = 2000
    batch_size: PositiveInt = 4
    optimizers: dict[str, OptimConfig] = Field(default_factory=_optimizers)
    pretrain_steps: NonNegativeInt = 200
    adversarial_loss: Literal["wgan", "hinge", "logistic", "lsgan"] = "wgan"
    regulariser: Literal["gp", "r1", "none"] = "gp"
    critic_steps: PositiveInt = 5
    gp_weight: float = Field(10.0, ge=0)
    r1_gamma: float = Field(1.0, ge=0)
    r1_interval: PositiveInt = 16
    content_weight: float = Field(0.0, ge=0)
    spectral_weight: float = Field(0.0, ge=0)
    mse_export: bool = True
    checkpoint_every: PositiveInt = 500
    share_fake: bool = False
    """One generator forward per step (map2map's loop): the critic steps on the detached
    output, the generator then steps on the same output and batch. Needs critic_steps 1."""
    channels_last_3d: bool = False
    """Run the networks on channels_last_3d (NDHWC) activations (oneDNN's faster layout for
    narrow 3D convolutions on some CPUs; measure with benchmarks/volume_speed.py)."""

    @model_validator(mode="after")
    def _check_loss(self) -> VolumeTrain:
        if self.share_fake and self.critic_steps != 1:
            raise ValueError(
                f"train.share_fake reuses the generator output of one critic step; set "
                f"train.critic_steps: 1 (got {self.critic_steps}) or share_fake: false"
            )
        if self.adversarial_loss == "wgan" and self.regulariser == "r1":
            raise ValueError(
                "train.regulariser r1 regularises a non-WGAN critic; use adversarial_loss "
                "logistic (or hinge) with r1, or regulariser gp with wgan"
            )
        return self


class VolumeGenerate(GenerateConfig):
    """Whole-volume generation by overlapping tiles, streamed to NetCDF/Zarr.

    ``input``: ``test`` (the held-out volumes of the config's data, coarsened from their
    truth) or a path to a coarse NetCDF/Zarr file with the training variables on the same
    dims (``input_select`` fixes other dims, e.g. ``{time: 0}``). ``tile``: coarse voxels per
    tile per axis (null: the whole volume in one call); tiles overlap by twice the
    generator's receptive radius and are assembled exactly. ``chunk``: fine voxels along
    the first axis per storage chunk.
    """

    members: PositiveInt = 8
    batch_size: PositiveInt = 2
    input: str = "test"
    input_select: dict[str, int] = Field(default_factory=dict)
    tile: IntOrAxes | None = 16
    chunk: PositiveInt = 16
    precision: Literal["fp32", "bf16"] = "fp32"

    @field_validator("tile")
    @classmethod
    def _tile(cls, v):
        per_axis(v, "generate.tile")
        return v


def _baselines() -> list:
    return ["trilinear", "tricubic"]


class VolumeEvaluate(EvaluateConfig):
    """Verification: spectra, distributions, divergence, CRPS/spread-skill, slices, baselines.

    ``mse_network``: also score the MSE-only network (``<run>/mse_model.safetensors``) when
    the run has one. ``velocity``: the velocity components (by name) and the axes they
    point along, for the divergence statistics (default: the first vector of
    ``data.augment.vectors``). ``slice_member``: members shown in the slice plots.
    """

    baselines: list[
        Literal["bilinear", "bicubic", "lanczos", "linear", "cubic", "trilinear", "tricubic"]
    ] = Field(default_factory=_baselines)
    mse_network: bool = True
    velocity: list[str] | None = None
    velocity_axes: list[Axis] | None = None
    slice_members: PositiveInt = 2
    checkpoint: str | None = None
    """Export to use for the MSE-only baseline's run folder (default: the ensemble's run)."""


class VolumeConfig(RunConfig):
    recipe: Literal["volume"] = "volume"
    data: VolumeData = Field(default_factory=VolumeData)
    model: VolumeModel = Field(default_factory=VolumeModel)
    train: VolumeTrain = Field(default_factory=VolumeTrain)
    generate: VolumeGenerate = Field(default_factory=VolumeGenerate)
    evaluate: VolumeEvaluate = Field(default_factory=VolumeEvaluate)
