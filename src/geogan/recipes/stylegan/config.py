"""Configuration schema of recipe 5 (``recipe: stylegan``): ensemble enrichment with StyleGAN2.

Sections: ``data`` (a metadata CSV of ``.npy`` samples or a NetCDF/Zarr/GRIB file with a
member dimension, the variables, crop and the seed-004 transforms), ``model`` (StyleGAN2
sizes), ``train`` (the engine's trainer plus the StyleGAN2 losses and lazy regularisers),
``invert``, ``perturb``, ``tune`` (the three enrichment steps), ``generate`` and
``evaluate``. Defaults follow rosinality/stylegan2-pytorch and the seed-004 scripts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from geogan.config.schema import (
    AugmentConfig,
    DataSection,
    EMAConfig,
    GenerateConfig,
    OptimConfig,
    RunConfig,
    Section,
    TrainConfig,
)
from geogan.data.npy_samples import DateRangeConfig, LeadTimeRangeConfig, NpySamplesConfig

__all__ = [
    "EnsembleSourceConfig",
    "EvaluateSection",
    "InvertConfig",
    "ModelSection",
    "PerturbConfig",
    "StyleGANConfig",
    "StyleGANData",
    "StyleGANTrain",
    "TransformSpec",
    "TuneConfig",
]

Crop = tuple[int, int, int, int]


class EnsembleSourceConfig(Section):
    """A NetCDF/Zarr/GRIB file (or a list of them, concatenated along time) whose variables
    have a member dimension, e.g. ERA5 EDA ``(number, time, isobaricInhPa, latitude,
    longitude)``.

    ``variables`` are read and, with ``level_dim``/``levels``, split into one channel per
    level named ``<var><level>`` (``z500``); ``crop`` is ``[y0, y1, x0, x1]`` in pixels of
    the last two dims (half-open). ``lead_time_dim``: a dimension of lead times (hours, or
    timedelta); none: every field has lead time 0. ``members``: the members read (default
    all).
    """

    path: str | list[str]
    variables: list[str] = Field(min_length=1)
    member_dim: str = "number"
    time_dim: str = "time"
    lead_time_dim: str | None = None
    level_dim: str | None = None
    levels: list[float] | None = None
    members: list[int] | None = Field(default=None, min_length=1)
    crop: Crop | None = None

    @model_validator(mode="after")
    def _levels(self) -> EnsembleSourceConfig:
        if (self.level_dim is None) != (self.levels is None):
            raise ValueError("level_dim and levels go together: name the dimension and its values")
        return self


class TransformSpec(Section):
    """Seed-004 transform of one variable, applied in this order and inverted on output.

    - ``log_iterations``: ``x -> log(1 + x)`` applied k times (rain; needs ``x > -1``);
    - ``symmetrize``: a random sign per sample (``x -> -x`` with probability 1/2 in
      training), so the GAN sees a symmetric distribution; the output is ``|x|``;
    - ``noise_below``: in training, values below this threshold (after the log) are
      replaced by ``|N(0, noise_below)|`` noise (no exact zeros for the generator to
      imitate); outputs below it are set to 0 on the way back;
    - ``norm``: ``mean`` ((x - mean) / std), ``minmax`` (to ``[-1, 1]`` times
      ``minmax_scale``, so a ``tanh`` output reaches the extremes), or ``none``;
      ``per_pixel`` statistics (maps) or global ones; ``blur_iterations``: passes of a
      3x3 Gaussian filter over the statistic maps (per-pixel maps from few samples are
      noisy).
    """

    log_iterations: int = Field(0, ge=0)
    symmetrize: bool = False
    noise_below: float | None = Field(None, gt=0)
    norm: Literal["mean", "minmax", "none"] = "mean"
    per_pixel: bool = False
    blur_iterations: int = Field(0, ge=0)
    minmax_scale: float = Field(0.95, gt=0, le=1)


class StyleGANData(DataSection):
    """The ensemble members the GAN learns from, and how they are transformed.

    Exactly one of ``npy`` (metadata CSV + ``.npy`` samples; its ``channels``/``crop``/
    ``dates``/``lead_times``/``members`` select what is read) and ``source`` (NetCDF/Zarr/
    GRIB with a member dimension). ``dates`` and ``lead_times`` select the training
    ensembles of a ``source`` by range (an ``npy`` section has its own). ``transforms``:
    per variable (channel name), ``default`` for the others.

    ``anomaly``: ``none`` learns the members themselves; ``mean`` learns each member minus
    the mean of its ensemble (same Date and LeadTime); ``standardised`` also divides by the
    ensemble's standard deviation map (population std, ``anomaly_blur`` passes of the 3x3
    Gaussian filter, floored at ``anomaly_floor`` times its domain mean). Enrichment then
    adds generated anomalies to the conditioning members' own mean and spread, which is
    what lets a small training set resolve spreads far smaller than the fields (ERA5:
    a member spread of 12 m2 s-2 on a geopotential of 5e4).
    """

    npy: NpySamplesConfig | None = None
    source: EnsembleSourceConfig | None = None
    dates: DateRangeConfig | None = None
    lead_times: list[float] | LeadTimeRangeConfig | None = None
    transforms: dict[str, TransformSpec] = Field(default_factory=dict)
    default: TransformSpec = Field(default_factory=TransformSpec)
    anomaly: Literal["none", "mean", "standardised"] = "none"
    anomaly_blur: int = Field(2, ge=0)
    anomaly_floor: float = Field(0.05, ge=0)
    augment: AugmentConfig = Field(
        default_factory=lambda: AugmentConfig(flip=False, rot90=False, permute=False)
    )
    seed: int = 0

    @model_validator(mode="after")
    def _one_source(self) -> StyleGANData:
        if (self.npy is None) == (self.source is None):
            raise ValueError(
                "data needs exactly one of 'npy' (metadata CSV + .npy samples) and 'source' "
                "(NetCDF/Zarr/GRIB with a member dimension)"
            )
        return self

    def transform_for(self, var: str) -> TransformSpec:
        return self.transforms.get(var, self.default)


class ModelSection(Section):
    """StyleGAN2 sizes (see :class:`geogan.models.stylegan2.StyleGAN2Generator`). The output
    size is the data's (after the crop); ``base_size`` must divide it by a power of 2.
    ``padding_mode``: one mode for both axes or ``[y, x]`` (``[zeros, circular]`` on a
    global latitude-longitude grid)."""

    base_size: list[PositiveInt] = Field(default_factory=lambda: [4, 4])
    latent_dim: PositiveInt = 512
    n_mlp: PositiveInt = 8
    channel_multiplier: PositiveInt = 2
    channel_base: PositiveInt = 16384
    channel_max: PositiveInt = 512
    g_channels: list[PositiveInt] | None = None
    d_channels: list[PositiveInt] | None = None
    use_noise: bool = True
    tanh_output: bool = False
    blur_kernel: list[float] = Field(default_factory=lambda: [1.0, 3.0, 3.0, 1.0])
    lr_mlp: PositiveFloat = 0.01
    padding_mode: str | list[str] = "zeros"
    mbstd_group: PositiveInt = 4


def _optimizers() -> dict[str, OptimConfig]:
    return {
        "generator": OptimConfig(lr=0.002, betas=(0.0, 0.99)),
        "discriminator": OptimConfig(lr=0.002, betas=(0.0, 0.99)),
    }


class StyleGANTrain(TrainConfig):
    """StyleGAN2 training (rosinality's ``train.py`` defaults).

    Logistic (non-saturating) losses; R1 with weight ``r1`` on real samples every
    ``d_reg_every`` steps and the path-length penalty with weight ``path_regularize``
    every ``g_reg_every`` steps on ``batch_size // path_batch_shrink`` samples, both lazy
    (loss times the interval). ``lazy_correction``: scale each optimizer's learning rate
    by ``c = N / (N + 1)`` and its betas to the power ``c`` (``N`` its regularisation
    interval), as StyleGAN2 does. ``mixing``: probability of style mixing.
    """

    batch_size: PositiveInt = 4
    optimizers: dict[str, OptimConfig] = Field(default_factory=_optimizers)
    ema: EMAConfig = Field(default_factory=lambda: EMAConfig(half_life_images=10000.0))
    r1: float = Field(10.0, ge=0)
    d_reg_every: PositiveInt = 16
    path_regularize: float = Field(2.0, ge=0)
    g_reg_every: PositiveInt = 4
    path_batch_shrink: PositiveInt = 2
    path_decay: float = Field(0.01, gt=0, le=1)
    mixing: float = Field(0.9, ge=0, le=1)
    lazy_correction: bool = True


class InvertConfig(Section):
    """Projection of real members into the generator's latent space (rosinality's
    ``projector.py``, seed-004 defaults).

    Adam on ``w`` (``space: w``, one vector per member) or ``ws`` (``w+``, one per style
    input), starting from the mean ``w``, and on the noise maps (if the generator uses
    noise). Learning rate ``lr`` with a cosine ramp-up over the first ``lr_rampup`` and
    ramp-down over the last ``lr_rampdown`` of the steps; Gaussian noise of strength
    ``noise * rms(w)`` added to the latent, decaying quadratically to 0 at ``noise_ramp``;
    noise maps regularised (``noise_regularize``, autocorrelation at every scale) and
    renormalised. Loss: ``loss_intensity * mse`` (or ``mae``) in normalised units.
    ``save_steps``: steps whose latents are written (the last step always is).
    """

    steps: PositiveInt = 1000
    lr: PositiveFloat = 0.1
    lr_rampup: float = Field(0.05, ge=0, le=1)
    lr_rampdown: float = Field(0.25, ge=0, le=1)
    noise: float = Field(0.005, ge=0)
    noise_ramp: float = Field(0.75, gt=0, le=1)
    noise_regularize: float = Field(1e5, ge=0)
    loss: Literal["mse", "mae"] = "mse"
    loss_intensity: PositiveFloat = 1.0
    space: Literal["w", "w+"] = "w+"
    save_steps: list[PositiveInt] = Field(default_factory=lambda: [200, 400, 600, 800, 1000])
    batch_size: PositiveInt = 16
    mean_latents: PositiveInt = 10000
    seed: int = 0


SampleRule = Literal["random", "normal", "w", "extrapolation"]


class PerturbConfig(Section):
    """Enrichment of inverted members (``geogan perturb``).

    Output member ``k`` starts from conditioning member ``m = k mod N`` (``N`` =
    ``conditioning_members``, the first N inverted members of each ensemble, default
    all): ``w_start = alpha * mean(W) + (1 - alpha) * W_m`` per style input, and the style
    inputs listed in ``style_indices`` (default all) move by ``scale * delta``, with
    ``delta`` drawn by ``rule``:

    - ``random``: ``map(z) - mean over the batch of map(z)``, fresh ``z ~ N(0, I)``
      (random directions of the prior; seed 004's non-PCA styles);
    - ``normal``: a draw of the Gaussian with the conditioning members' covariance in W,
      ``sum_j e_j (W_j - mean(W)) / sqrt(N - 1)``, ``e ~ N(0, I)`` (seed 004's PCA styles);
    - ``w``: toward a random point of the prior, ``map(z) - w_start``;
    - ``extrapolation``: along the difference of two conditioning members,
      ``u * (W_m - W_j)``, ``j != m`` random, ``u ~ N(0, 1)``.

    ``scale`` and ``alpha``: one value, or one per style input; a tuning file
    (``geogan tune``) replaces them. ``keep_residual``: add the part of the member the
    inversion did not reproduce (``x_m - G(W_m)``) to every member made from it, so that
    ``scale = 0`` returns the conditioning members exactly. ``n_samples`` members out.
    """

    rule: SampleRule = "normal"
    style_indices: list[int] | None = None
    conditioning_members: PositiveInt | None = None
    n_samples: PositiveInt = 100
    scale: float | list[float] = 0.5
    alpha: float | list[float] = 0.0
    keep_residual: bool = True
    inversion_step: PositiveInt | None = None
    batch_size: PositiveInt = 16
    seed: int = 0
    format: Literal["netcdf", "zarr"] = "netcdf"

    @field_validator("style_indices")
    @classmethod
    def _unique(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"style_indices lists an index twice: {v}")
        return v


class TuneConfig(Section):
    """Choice of the perturbation intensity per style input (``geogan tune``, seed 004's
    ``scale_tune.py``).

    Adam on one ``scale`` per perturbed style input (and one ``alpha`` per style input if
    ``tune_alpha``), ``steps`` steps over the tuning ensembles, each step generating
    ``samples`` members from a fresh draw and minimising, in normalised units,
    ``lambda_bias * |mean(gen) - mean(ref)| + lambda_spread * |std(gen) - (1 + inflate)
    std(ref)|`` (pixel means of absolute differences) against the held-out reference
    members (those of the tuning ensembles that were not inverted, else all of them).
    ``inflate: auto`` is ``sqrt(1 + 1/N) - 1``: an ensemble centred on the mean of N
    members must be that much wider than the members' spread to be reliable.
    ``scale_rule``: ``sigmoid`` keeps scales in (0, ``max_scale``), ``exp`` positive.
    """

    steps: PositiveInt = 200
    lr: PositiveFloat = 0.05
    samples: PositiveInt = 32
    inflate: float | Literal["auto"] = "auto"
    lambda_bias: float = Field(1.0, ge=0)
    lambda_spread: float = Field(1.0, ge=0)
    tune_alpha: bool = False
    scale_rule: Literal["sigmoid", "exp"] = "exp"
    max_scale: PositiveFloat = 4.0
    init_scale: PositiveFloat = 0.3
    anneal: float = Field(0.1, ge=0)
    seed: int = 0


class EvaluateSection(Section):
    """Verification of enriched ensembles against the held-out members (``geogan
    evaluate``): the metrics of the engine (fair and ecdf CRPS, rank histograms,
    spread-skill, spectra, per-pixel Wasserstein) and this recipe's (multi-scale pixel
    Wasserstein over ``wasserstein_scales``, correlation length scales), for the enriched
    ensemble, the conditioning members alone and the linear-combination baseline
    (``baseline_members`` random combinations of the conditioning anomalies with their
    spread; 0: as many as the enriched ensemble)."""

    wasserstein_scales: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 4, 8])
    baseline_members: int = Field(0, ge=0)
    seed: int = 0
    periodic_x: bool | None = None
    """Longitude is periodic (gradients and pooling wrap); null: from model.padding_mode."""


class StyleGANGenerate(GenerateConfig):
    """Unconditional samples (``geogan generate``); ``truncation`` < 1 pulls w to its mean."""

    truncation: float = Field(1.0, gt=0, le=1)


class StyleGANConfig(RunConfig):
    recipe: Literal["stylegan"] = "stylegan"
    data: StyleGANData
    model: ModelSection = Field(default_factory=ModelSection)
    train: StyleGANTrain = Field(default_factory=StyleGANTrain)
    invert: InvertConfig = Field(default_factory=InvertConfig)
    perturb: PerturbConfig = Field(default_factory=PerturbConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    generate: StyleGANGenerate = Field(default_factory=StyleGANGenerate)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)
