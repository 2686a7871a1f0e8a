"""Models, optimizers, phases and dataset of recipe 3 (what the Trainer runs)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geogan.core.checkpoint import module_tensors, save_checkpoint
from geogan.core.errors import CheckpointError
from geogan.core.modules import model_spec
from geogan.data.landcover import IGBP_CLASSES
from geogan.losses.style import EncoderFeatures, StyleLoss, VGG16Features
from geogan.models.patchgan import PatchGAN
from geogan.models.unet import UNet
from geogan.recipes.landcover.config import LandcoverConfig
from geogan.recipes.landcover.data import MixDataset, Source, load_source, one_hot
from geogan.recipes.landcover.models import MixLCGenerator
from geogan.recipes.landcover.phases import (
    MixLCDiscriminatorPhase,
    MixLCGeneratorPhase,
    Pix2PixDiscriminatorPhase,
    Pix2PixGeneratorPhase,
    SegmenterPhase,
)
from geogan.training.optim import build_optimizers
from geogan.training.phases import TrainingSetup

__all__ = [
    "EXPORT_FORMAT",
    "build_models",
    "build_training",
    "class_names",
    "load_segmenter",
    "save_export",
    "style_features",
    "train_segmenter",
]

EXPORT_FORMAT = "landcover/1"
STYLE_FILE = "style_features.safetensors"
log = logging.getLogger(__name__)


def class_names(cfg: LandcoverConfig) -> list[str]:
    n = cfg.data.n_classes
    if cfg.data.remap is None and n == len(IGBP_CLASSES):
        return list(IGBP_CLASSES)
    return [f"class {c}" for c in range(n)]


def build_segmenter(cfg: LandcoverConfig) -> UNet:
    """Land-cover classifier: U-Net ``[B, 3, T, T]`` (images in [-1, 1]) -> logits ``[B, N, T, T]``."""
    m = cfg.model
    return UNet(
        in_channels=3,
        out_channels=cfg.data.n_classes,
        filters=m.seg_filters,
        depth=m.seg_depth,
        norm="batch",
        dropout=0.0,
        output_activation="none",
        init_gain=0.0,
    )


def build_models(cfg: LandcoverConfig) -> dict[str, nn.Module]:
    m, n = cfg.model, cfg.data.n_classes
    if m.kind == "segmenter":
        return {"segmenter": build_segmenter(cfg)}
    if m.kind == "mixlc":
        g: nn.Module = MixLCGenerator(
            n_classes=n,
            noise_channels=m.noise_channels,
            filters=m.filters,
            depth=m.depth,
            max_filters=m.max_filters,
            branch_channels=m.branch_channels,
            norm=m.norm,
            dropout=m.dropout,
            dropout_levels=m.dropout_levels,
            dropout_at_inference=m.dropout_at_inference,
            residual=m.residual,
        )
        d = PatchGAN(
            in_channels=3,
            cond_channels=n,
            filters=m.disc_filters,
            n_layers=m.disc_layers,
            norm=m.disc_norm,
            tail=m.disc_tail,
            aux_classes=n,
            aux_layers=m.aux_layers,
        )
    else:  # pix2pix: one U-Net on the concatenated input, plain conditional PatchGAN
        g = UNet(
            in_channels=3 + n,
            out_channels=3,
            filters=m.filters,
            depth=m.depth,
            max_filters=m.max_filters,
            norm=m.norm,
            dropout=m.dropout,
            dropout_levels=m.dropout_levels,
            dropout_at_inference=m.dropout_at_inference,
        )
        d = PatchGAN(
            in_channels=3,
            cond_channels=3 + n,
            filters=m.disc_filters,
            n_layers=m.disc_layers,
            norm=m.disc_norm,
            tail=m.disc_tail,
        )
    return {"generator": g, "discriminator": d}


def save_export(
    path: Path, models: dict[str, nn.Module], cfg: LandcoverConfig, **meta: Any
) -> Path:
    """An export checkpoint (``landcover/1``) of ``models``, readable by ``load_export``."""
    tensors: dict[str, torch.Tensor] = {}
    for name, model in models.items():
        tensors.update(module_tensors(name, model))
    return save_checkpoint(
        path,
        tensors,
        {
            "kind": "export",
            "format": EXPORT_FORMAT,
            "models": {n: model_spec(mod) for n, mod in models.items()},
            "config": cfg.model_dump(mode="json"),
            **meta,
        },
    )


def load_segmenter(path: str | Path, device: torch.device | str = "cpu") -> tuple[UNet, dict]:
    """The segmenter of a ``model.kind: segmenter`` export (or a style-features file)."""
    from geogan.inference.export import load_export

    models, meta = load_export(path, format_prefix="landcover", device=device)
    if "segmenter" not in models:
        raise CheckpointError(
            f"{path} holds no land-cover segmenter (models {sorted(models)}); train one with "
            "a config of model.kind: segmenter"
        )
    return models["segmenter"], meta


def train_segmenter(
    cfg: LandcoverConfig,
    source: Source,
    steps: int,
    *,
    lr: float,
    seed: int,
    device: torch.device,
    progress: bool = False,
) -> UNet:
    """A land-cover segmenter trained for ``steps`` Adam steps on real tiles of ``source``
    (the style-feature network when no VGG16 weights are given); returned in eval mode."""
    torch.manual_seed(seed)
    seg = build_segmenter(cfg).to(device)
    data = MixDataset(source, cfg.data, seed=seed, offset=2**41)
    opt = torch.optim.Adam(seg.parameters(), lr=lr, betas=(0.9, 0.999))
    phase = SegmenterPhase(cfg.data.n_classes)
    n, bs = cfg.data.n_classes, cfg.train.batch_size
    seg.train()
    for step in range(steps):
        items = [data[step * bs + k] for k in range(bs)]
        batch = {k: torch.stack([it[k] for it in items]).to(device) for k in ("rgb_a", "lc_a")}
        logits = seg(batch["rgb_a"])
        loss = torch.nn.functional.cross_entropy(logits, batch["lc_a"], ignore_index=n)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress and (step + 1) % 50 == 0:
            log.info("style segmenter step %d/%d: ce %.3f", step + 1, steps, float(loss))
    del phase
    return seg.eval().requires_grad_(False)


def style_features(
    cfg: LandcoverConfig, source: Source | None, run_dir: Path | None, device: torch.device
) -> nn.Module | None:
    """The frozen style-feature network (see :class:`~.config.StyleConfig`), or None."""
    s = cfg.train.style
    kind = s.features
    if kind == "auto":
        kind = "vgg16" if s.vgg16_weights else "classifier"
    if kind == "none" or (cfg.train.weights.style == 0 and cfg.train.weights.identity == 0):
        return None
    if kind == "vgg16":
        if not s.vgg16_weights:
            raise CheckpointError(
                "train.style.features is vgg16 but train.style.vgg16_weights is not set; name "
                "a local VGG16 weights file (nothing downloads) or use features: classifier"
            )
        return VGG16Features(s.vgg16_weights, layers=s.layers, input_range="-1,1").to(device)
    if s.classifier:
        seg, _ = load_segmenter(s.classifier, device)
    else:
        cached = run_dir / STYLE_FILE if run_dir is not None else None
        if cached is not None and cached.is_file():  # resume: the same features as before
            seg, _ = load_segmenter(cached, device)
        else:
            if source is None:
                source = load_source(cfg.data, "train")
            seg = train_segmenter(
                cfg, source, s.pretrain_steps, lr=s.pretrain_lr, seed=cfg.seed + 7919, device=device
            )
            if cached is not None:
                save_export(cached, {"segmenter": seg}, cfg, model_kind="segmenter", role="style")
    return EncoderFeatures(seg, levels=s.levels).to(device)


def _image_fn(kind: str, n_classes: int):
    from geogan.data.landcover import class_colours

    palette = torch.from_numpy(class_colours(n_classes + 1))

    def fn(models, batch):
        g = models.get("ema") or models.get("generator")
        lc1h = one_hot(batch["lc_ab"], n_classes)
        x = (batch["rgb_a"], lc1h) if kind == "mixlc" else (torch.cat([batch["rgb_a"], lc1h], 1),)
        fake = g(*x) if getattr(g, "noise_channels", 0) == 0 else None
        if fake is None:
            return None
        lc_img = palette.to(fake.device)[batch["lc_ab"].clamp(0, n_classes)].permute(0, 3, 1, 2)
        rows = [(batch["rgb_a"] + 1) / 2, lc_img, (fake + 1) / 2, (batch["rgb_ab"] + 1) / 2]
        return torch.cat(rows, dim=0).clamp(0, 1)

    return fn


_OPTIMIZERS = {"generator", "discriminator", "segmenter"}


def _optim_configs(configs: dict, plan: dict) -> dict:
    # the defaults name all three optimizers; drop those this model kind does not build
    # (a misspelt name still reaches build_optimizers, which says so)
    return {k: v for k, v in configs.items() if k in plan or k not in _OPTIMIZERS}


def build_training(cfg: LandcoverConfig, *, device, run_dir, dist_info=None) -> TrainingSetup:
    source = load_source(cfg.data, "train")
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    models = build_models(cfg)
    n, t = cfg.data.n_classes, cfg.train
    meta: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "model_kind": cfg.model.kind,
        "n_classes": n,
        "classes": class_names(cfg),
        "tile": cfg.data.tile,
    }
    if cfg.model.kind == "segmenter":
        return TrainingSetup(
            models=models,
            optimizers=build_optimizers(
                models, {"segmenter": ["segmenter"]}, _optim_configs(t.optimizers, {"segmenter": 1})
            ),
            phases=[SegmenterPhase(n)],
            dataset=MixDataset(source, cfg.data, cfg.data.seed),
            ema_model=None,
            export_models=["segmenter"],
            export_meta=meta,
        )
    plan = {"generator": ["generator"], "discriminator": ["discriminator"]}
    if cfg.model.kind == "mixlc":
        style = style_features(cfg, source, Path(run_dir) if run_dir else None, device)
        if style is not None and t.channels_last:
            style = style.to(memory_format=torch.channels_last)  # as the Trainer's models
        loss = StyleLoss(style) if style is not None else None
        meta["style_features"] = "none" if style is None else type(style).__name__
        phases = [
            MixLCDiscriminatorPhase(n, t.adversarial, cfg.model.noise_channels),
            MixLCGeneratorPhase(n, t.adversarial, t.weights, loss, cfg.model.noise_channels),
        ]
    else:
        phases = [
            Pix2PixDiscriminatorPhase(n, t.adversarial),
            Pix2PixGeneratorPhase(n, t.adversarial, t.pix2pix_l1),
        ]
    return TrainingSetup(
        models=models,
        optimizers=build_optimizers(models, plan, _optim_configs(t.optimizers, plan)),
        phases=phases,
        dataset=MixDataset(source, cfg.data, cfg.data.seed),
        export_meta=meta,
        image_fn=_image_fn(cfg.model.kind, n),
        compile_models=["generator"],
    )
