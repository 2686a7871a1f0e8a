"""Configuration schema of the ``flood`` recipe (multi-task masker + SPADE painter, omnigan).

The engine sections (trainer, optimizers, schedules, stages, EMA, tracking) come from
:mod:`geogan.config.schema`; this module adds the data lists and domains, the models, the
losses table of the seed (``train.losses``: ``G`` / ``D`` / ``C``, each entry a weight and
a kind), the representation -> translation schedule, the log level, the painting masks
(``generate``) and the verification settings (``evaluate``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from geogan.config.schema import (
    AugmentConfig,
    DataSection,
    GenerateConfig,
    OptimConfig,
    RunConfig,
    Section,
    TrainConfig,
)

__all__ = [
    "DOMAINS",
    "TASKS",
    "FloodConfig",
    "FloodData",
    "FloodEvaluate",
    "FloodGenerate",
    "FloodLosses",
    "FloodModel",
    "FloodTrain",
    "LossTerm",
]

DOMAINS = ("rf", "rn", "sf", "sn")
"""real flooded, real not flooded, simulated flooded, simulated not flooded."""
TASKS = ("d", "h", "s", "w")
"""depth, height, land-cover segmentation, water mask."""
Domain = Literal["rf", "rn", "sf", "sn"]
Task = Literal["d", "h", "s", "w"]
LossKind = Literal["l1", "l2", "ce"]
AdversarialKind = Literal["lsgan", "hinge", "logistic", "wgan"]


class FloodData(DataSection):
    """Data lists and domains.

    ``list_path``: a JSON/YAML data list (``geogan index FOLDER``, one entry per sample with
    ``x`` and optional ``s``/``d``/``h``/``w`` files, ``domain`` in rf/rn/sf/sn and ``split``
    train/val); ``test_list_path``: the held-out list (other regions) that ``evaluate`` and
    ``generate`` use. Entries without ``split`` are split by ``val_fraction`` (seeded hash).
    """

    list_path: str | None = None
    test_list_path: str | None = None
    domains: list[Domain] = Field(default_factory=lambda: list(DOMAINS))
    """Domains of each multi-domain batch, in the seed's order; one sample of each per item."""
    tile_size: PositiveInt = 64
    """Training crops (pixels); images larger than this are cropped at random."""
    n_classes: PositiveInt = 17
    ignore_index: int = 255
    """Class value of unlabelled pixels in ``s`` and ``w`` (not scored, no loss)."""
    height_scale: float = Field(1000.0, gt=0)
    """Metres per unit of the ``h`` decoder's output."""
    depth_scale: float = Field(100.0, gt=0)
    """Units of ``d`` per unit of the ``d`` decoder's output."""
    val_fraction: float = Field(0.1, ge=0, lt=1)
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig(flip=True, rot90=True))


class EncoderConfig(Section):
    """MUNIT content encoder: projection conv, ``n_downsample`` strided convs, ``n_res`` blocks."""

    dim: PositiveInt = 32
    n_downsample: int = Field(2, ge=1, le=5)
    n_res: int = Field(4, ge=0)
    norm: Literal["instance", "layer", "batch", "none"] = "instance"


class DecoderConfig(Section):
    """Task and adaptation decoders (MUNIT style)."""

    n_res: int = Field(1, ge=0)
    norm: Literal["instance", "layer", "batch", "none"] = "layer"
    up_kernel: Literal[3, 5, 7] = 5
    out_kernel: Literal[1, 3, 5, 7] = 7
    skip: bool = False
    """Task decoders concatenate the encoder's features at each resolution they upsample to
    (DeepLabV3+'s low-level features, as ClimateGAN's segmentation decoder): sharp
    full-resolution masks from a 1/2**n_downsample code. The adaptation decoders and the
    painter never take skips: they must work from the code alone."""


class ClassifierConfig(Section):
    """Domain classifier on the encoder's features; the encoder is trained to fool it.

    ``domains``: ``realism`` classifies real vs simulated (2 classes: what domain adaptation
    must hide; flooded vs not is what the water decoder needs, so the encoder should keep
    it), ``all`` the four domains rf/rn/sf/sn as in the seed."""

    enabled: bool = True
    domains: Literal["realism", "all"] = "realism"
    filters: PositiveInt = 64
    n_layers: PositiveInt = 2


class PainterConfig(Section):
    """SPADE painter (the translation decoder), conditioned on the masked image and the mask.

    ``unflood``: the painter also learns the reverse translation (paint dry land where the
    mask says), the ``t/n`` side of the seed's update table; ``cond_segmentation``: land-cover
    one-hot (labels, else the masker's prediction) joins the condition."""

    enabled: bool = True
    noise_channels: int = Field(0, ge=0)
    spade_hidden: PositiveInt = 64
    norm: Literal["instance", "batch", "none"] = "instance"
    unflood: bool = True
    cond_segmentation: bool = False
    mask_dilate: int = Field(1, ge=0)
    """Training masks are the water labels dilated by this many pixels (coast mixed pixels)."""


class DiscriminatorConfig(Section):
    """PatchGAN discriminators, one per (decoder, domain): ``a/r``, ``a/s``, ``t/f``, ``t/n``."""

    filters: PositiveInt = 32
    n_layers: PositiveInt = 3


class UNetConfig(Section):
    """The plain U-Net baseline (``model.kind: unet``): one task, real domain only."""

    filters: PositiveInt = 32
    depth: PositiveInt = 3


class FloodModel(Section):
    """What is built. ``kind: omni`` is the recipe's model (masker + painter); ``kind: unet``
    the plain U-Net segmenter baseline (trained on ``s`` of the real domains only)."""

    kind: Literal["omni", "unet"] = "omni"
    tasks: list[Task] = Field(default_factory=lambda: ["s", "w"])
    """Task decoders; every task named here needs labels in at least one sample."""
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    adaptation: bool = True
    """Adaptation decoders real <-> simulated (``a/r``, ``a/s``) with their discriminators."""
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    painter: PainterConfig = Field(default_factory=PainterConfig)
    discriminator: DiscriminatorConfig = Field(default_factory=DiscriminatorConfig)
    unet: UNetConfig = Field(default_factory=UNetConfig)

    @model_validator(mode="after")
    def _check(self) -> FloodModel:
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"model.tasks lists a task twice: {self.tasks}")
        if self.kind == "omni" and not self.tasks and not self.painter.enabled:
            raise ValueError("model.tasks is empty and the painter is off: nothing to train")
        return self


class LossTerm(Section):
    """One entry of the losses table: a weight and the kind of loss."""

    weight: float = Field(1.0, ge=0)
    kind: LossKind = "l1"


class GanTerm(Section):
    weight: float = Field(1.0, ge=0)


def _term(weight: float, kind: str) -> LossTerm:
    return LossTerm(weight=weight, kind=kind)


class DecoderTerms(Section):
    """Per decoder family: ``a`` adaptation (real <-> simulated), ``t`` translation (painter)."""

    a: LossTerm = Field(default_factory=lambda: _term(10.0, "l1"))
    t: LossTerm = Field(default_factory=lambda: _term(10.0, "l1"))


class GanTerms(Section):
    a: GanTerm = Field(default_factory=GanTerm)
    t: GanTerm = Field(default_factory=GanTerm)


class TaskTerms(Section):
    d: LossTerm = Field(default_factory=lambda: _term(1.0, "l1"))
    h: LossTerm = Field(default_factory=lambda: _term(1.0, "l1"))
    s: LossTerm = Field(default_factory=lambda: _term(1.0, "ce"))
    w: LossTerm = Field(default_factory=lambda: _term(1.0, "ce"))


class GeneratorLosses(Section):
    """``G``: gan (from the discriminators), cycle, auto-encoding, tasks, classifier."""

    gan: GanTerms = Field(default_factory=GanTerms)
    cycle: DecoderTerms = Field(
        default_factory=lambda: DecoderTerms(a=_term(10.0, "l1"), t=_term(0.0, "l1"))
    )
    auto: DecoderTerms = Field(default_factory=DecoderTerms)
    tasks: TaskTerms = Field(default_factory=TaskTerms)
    classifier: LossTerm = Field(default_factory=lambda: _term(0.1, "ce"))


class AdversarialTerm(Section):
    weight: float = Field(1.0, ge=0)
    kind: AdversarialKind = "lsgan"


class FloodLosses(Section):
    """The seed's losses table: ``G`` (generator parts), ``D`` (discriminators), ``C``
    (domain classifier). ``D.kind`` is the adversarial loss of every GAN term."""

    G: GeneratorLosses = Field(default_factory=GeneratorLosses)
    D: AdversarialTerm = Field(default_factory=AdversarialTerm)
    C: LossTerm = Field(default_factory=lambda: _term(1.0, "ce"))


def _optimizers() -> dict[str, OptimConfig]:
    adam = {"lr": 2e-4, "betas": (0.5, 0.999)}
    return {
        "masker": OptimConfig(**adam),
        "painter": OptimConfig(**adam),
        "discriminators": OptimConfig(**adam),
        "classifier": OptimConfig(**adam),
        "segmenter": OptimConfig(lr=1e-3, betas=(0.9, 0.999)),
    }


class FloodTrain(TrainConfig):
    """Engine settings plus the recipe's: losses table, schedule, log level.

    ``batch_size`` is per domain: a step's multi-domain batch holds ``batch_size`` samples
    of each domain in ``data.domains``. Optimizers: ``masker`` (encoder, task and
    adaptation decoders), ``painter`` (painter, and the encoder when the translation stage
    trains it), ``discriminators`` (the four PatchGANs), ``classifier``; ``segmenter`` (the
    U-Net of ``model.kind: unet``). An optimizer whose models a run does not build is unused.

    Default stages (when ``stages`` is empty): ``representation`` for
    ``representation_steps`` steps (masker, classifier, adaptation discriminators), then
    ``translation`` until ``steps`` (painter and translation discriminators), with the
    encoder ``encoder_in_translation``: ``frozen`` or a learning-rate factor.
    """

    losses: FloodLosses = Field(default_factory=FloodLosses)
    representation_steps: PositiveInt = 500
    encoder_in_translation: Literal["frozen"] | float = "frozen"
    log_level: Literal[0, 1, 2] = 1
    """0: only each phase's total; 1: aggregated losses (gan, cycle, auto, tasks,
    classifier); 2: every loss (per decoder, task and domain)."""
    optimizers: dict[str, OptimConfig] = Field(default_factory=_optimizers)

    @model_validator(mode="after")
    def _check_encoder(self) -> FloodTrain:
        v = self.encoder_in_translation
        if isinstance(v, float) and not v >= 0:
            raise ValueError("train.encoder_in_translation must be 'frozen' or a factor >= 0")
        return self


class FloodGenerate(GenerateConfig):
    """Painting: which images, which masks.

    ``mask``: ``predicted`` (the masker's water probability above ``threshold``), ``label``
    (the samples' own ``w``), ``file`` (``mask_path``: one NetCDF/GeoTIFF/PNG/npy mask for
    one image, or a folder of masks named like the images), or ``rule``: water where
    ``elevation`` (``elevation_path``, metres) is below ``below_m``.
    """

    split: Literal["test", "val", "train"] = "test"
    mask: Literal["predicted", "label", "file", "rule"] = "predicted"
    mask_path: str | None = None
    elevation_path: str | None = None
    below_m: float = 5.0
    threshold: float = Field(0.5, gt=0, lt=1)
    dilate: int = Field(0, ge=0)
    members: PositiveInt = 1
    max_images: PositiveInt | None = None


class UserExample(Section):
    """A user-mask example for the report: an image and a mask file, or an elevation grid
    with the rule "elevation below ``below_m`` metres"."""

    image_path: str
    mask_path: str | None = None
    elevation_path: str | None = None
    below_m: float = 5.0

    @model_validator(mode="after")
    def _one(self) -> UserExample:
        if (self.mask_path is None) == (self.elevation_path is None):
            raise ValueError("a user example needs exactly one of mask_path or elevation_path")
        return self


class FloodEvaluate(Section):
    """Verification on the held-out list.

    ``may_band``: pixels within this many pixels of a water edge are "may be water" (the
    seed's *may* label: mixed coastal pixels; scored only by ``mnr``); ``judge_steps``: steps
    of the water/land classifier whose features give the Frechet distance; ``fd_patch``: patch
    size of the features; ``unet_checkpoint``: export of a ``model.kind: unet`` run, scored
    as the plain U-Net baseline.
    """

    may_band: int = Field(1, ge=0)
    judge_steps: PositiveInt = 300
    judge_filters: PositiveInt = 32
    fd_patch: PositiveInt = 16
    fd_min_cover: float = Field(0.5, gt=0, le=1)
    unet_checkpoint: str | None = None
    grid_examples: PositiveInt = 6
    threshold: float = Field(0.5, gt=0, lt=1)
    user_examples: list[UserExample] = Field(default_factory=list)


class FloodConfig(RunConfig):
    """A ``flood`` run: data lists, masker/painter, training, painting, verification."""

    recipe: Literal["flood"] = "flood"
    data: FloodData = Field(default_factory=FloodData)
    model: FloodModel = Field(default_factory=FloodModel)
    train: FloodTrain = Field(default_factory=FloodTrain)
    generate: FloodGenerate = Field(default_factory=FloodGenerate)
    evaluate: FloodEvaluate = Field(default_factory=FloodEvaluate)

    @model_validator(mode="after")
    def _check(self) -> FloodConfig:
        if len(set(self.data.domains)) != len(self.data.domains):
            raise ValueError(f"data.domains lists a domain twice: {self.data.domains}")
        if not self.data.domains:
            raise ValueError("data.domains is empty; list at least one of rf, rn, sf, sn")
        if self.data.tile_size % (2**self.model.encoder.n_downsample):
            raise ValueError(
                f"data.tile_size ({self.data.tile_size}) must be a multiple of "
                f"2**model.encoder.n_downsample ({2**self.model.encoder.n_downsample})"
            )
        t = self.train.losses.G.tasks
        for task in ("h", "d"):
            if getattr(t, task).kind == "ce":
                raise ValueError(
                    f"train.losses.G.tasks.{task}.kind: {task} is a regression; use l1 or l2"
                )
        # the painter's EMA starts when the translation stage does (unless set explicitly)
        if "start_step" not in self.train.ema.model_fields_set and self.model.painter.enabled:
            self.train.ema.start_step = self.train.representation_steps
        return self
