"""Build the ``flood`` recipe's data, models, optimizers, phases and stages from a FloodConfig."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from geogan.core.errors import ConfigError, DataError
from geogan.models.omni import OmniClassifier, OmniDecoder, OmniEncoder, OmniPainter
from geogan.models.patchgan import PatchGAN
from geogan.models.unet import UNet
from geogan.recipes.flood.config import FloodConfig
from geogan.recipes.flood.data import DomainStore, MultiDomainDataset, load_stores, real_domains
from geogan.recipes.flood.phases import (
    ClassifierPhase,
    DiscriminatorPhase,
    MaskerPhase,
    PainterPhase,
    paint,
    task_loss,
    water_mask,
)
from geogan.training.optim import build_optimizers
from geogan.training.phases import TrainingSetup

log = logging.getLogger(__name__)

EXPORT_FORMAT = "flood/1"
TASK_CHANNELS = {"d": 1, "h": 1, "w": 1}


def painter_cond_channels(cfg: FloodConfig) -> int:
    """Masked RGB + mask + paint-water flag (+ land-cover one-hot)."""
    return 5 + (cfg.data.n_classes if cfg.model.painter.cond_segmentation else 0)


def model_kwargs(cfg: FloodConfig, domains: list[str]) -> dict[str, dict[str, Any]]:
    """Constructor arguments of every model of this run (JSON values), by model name."""
    m = cfg.model
    if m.kind == "unet":
        return {
            "unet": {
                "dims": 2,
                "in_channels": 3,
                "out_channels": cfg.data.n_classes,
                "filters": m.unet.filters,
                "depth": m.unet.depth,
                "norm": "batch",
                "output_activation": "none",
            }
        }
    enc = {
        "dims": 2,
        "in_channels": 3,
        "dim": m.encoder.dim,
        "n_downsample": m.encoder.n_downsample,
        "n_res": m.encoder.n_res,
        "norm": m.encoder.norm,
    }
    z = m.encoder.dim * 2**m.encoder.n_downsample
    dec = {
        "dims": 2,
        "in_channels": z,
        "n_upsample": m.encoder.n_downsample,
        "n_res": m.decoder.n_res,
        "norm": m.decoder.norm,
        "up_kernel": m.decoder.up_kernel,
        "out_kernel": m.decoder.out_kernel,
    }
    out: dict[str, dict[str, Any]] = {"encoder": enc}
    task_dec = dict(dec)
    if m.decoder.skip:
        n = m.encoder.n_downsample
        task_dec["skip_channels"] = [m.encoder.dim * 2**i for i in reversed(range(n))]
    for t in m.tasks:
        out[f"decoder_{t}"] = {
            **task_dec,
            "out_channels": TASK_CHANNELS.get(t, cfg.data.n_classes),
        }
    realisms = {d[0] for d in domains}
    disc = {
        "dims": 2,
        "in_channels": 3,
        "cond_channels": 0,
        "filters": m.discriminator.filters,
        "n_layers": m.discriminator.n_layers,
        "norm": "instance",
        "tail": "same",
    }
    if m.adaptation and realisms == {"r", "s"}:
        for r in ("r", "s"):
            out[f"adapt_{r}"] = {**dec, "out_channels": 3, "activation": "tanh"}
            out[f"disc_a_{r}"] = dict(disc)
    if m.classifier.enabled:
        n = 2 if m.classifier.domains == "realism" else 4
        distinct = len(realisms) if m.classifier.domains == "realism" else len(domains)
        if distinct >= 2 and m.tasks:
            out["classifier"] = {
                "dims": 2,
                "in_channels": z,
                "n_domains": n,
                "filters": m.classifier.filters,
                "n_layers": m.classifier.n_layers,
            }
    if m.painter.enabled:
        out["painter"] = {
            "dims": 2,
            "z_channels": z,
            "cond_channels": painter_cond_channels(cfg),
            "n_up": m.encoder.n_downsample,
            "noise_channels": m.painter.noise_channels,
            "spade_hidden": m.painter.spade_hidden,
            "norm": m.painter.norm,
        }
        out["disc_t_f"] = dict(disc)
        if m.painter.unflood:
            out["disc_t_n"] = dict(disc)
    return out


_CLASSES = {
    "encoder": OmniEncoder,
    "classifier": OmniClassifier,
    "painter": OmniPainter,
    "unet": UNet,
}


def build_models(kwargs: Mapping[str, Mapping[str, Any]]) -> dict[str, torch.nn.Module]:
    out = {}
    for name, kw in kwargs.items():
        if name in _CLASSES:
            cls = _CLASSES[name]
        elif name.startswith(("decoder_", "adapt_")):
            cls = OmniDecoder
        else:
            cls = PatchGAN
        out[name] = cls(**kw)
    return out


def default_stages(
    cfg: FloodConfig, models: Mapping[str, Any], phases: list[str]
) -> list[dict[str, Any]]:
    """``representation`` (masker, classifier, adaptation discriminators) for
    ``train.representation_steps``, then ``translation`` (painter, translation
    discriminators) with the masker frozen and the encoder frozen or at an LR factor."""
    adapt_d = any(n.startswith("disc_a_") for n in models)
    rep = [p for p in ("masker", "classifier") if p in phases]
    rep += ["discriminators"] if adapt_d and "discriminators" in phases else []
    if cfg.model.kind == "unet":
        return [{"name": "segmentation", "phases": ["segmenter"]}]
    has_painter = "painter" in models
    has_masker = "masker" in phases
    if not has_painter:
        return [{"name": "representation", "phases": rep}]
    trans = ["painter"] + (
        ["discriminators"] if "disc_t_f" in models and "discriminators" in phases else []
    )
    masker_models = [
        n for n in models if n.startswith(("decoder_", "adapt_", "disc_a_")) or n == "classifier"
    ]
    enc = cfg.train.encoder_in_translation
    translation = {
        "name": "translation",
        "phases": trans,
        "models": {
            **{n: "frozen" for n in masker_models},
            "encoder": enc if has_masker else "trainable",
        },
    }
    if not has_masker:
        return [translation]
    return [
        {
            "name": "representation",
            "steps": cfg.train.representation_steps,
            "phases": rep,
            "models": {
                "painter": "frozen",
                "disc_t_f": "frozen",
                **({"disc_t_n": "frozen"} if "disc_t_n" in models else {}),
            },
        },
        translation,
    ]


def _active_parts(stages: list[Any], phases: list[str]) -> dict[str, list[str]]:
    out = {}
    for s in stages:
        name = s["name"] if isinstance(s, Mapping) else s.name
        ph = s.get("phases") if isinstance(s, Mapping) else s.phases
        ph = phases if ph is None else ph
        parts = (["a"] if "masker" in ph else []) + (["t"] if "painter" in ph else [])
        out[name] = parts
    return out


def mean_water_colour(stores: Mapping[str, DomainStore], ignore: int) -> list[float]:
    """Mean RGB in [0, 1] of the water pixels of the real flooded training tiles (the
    mean-colour fill baseline); of any flooded tiles when there are no real ones."""
    for domains in (["rf"], ["sf", "rf"]):
        sums, n = np.zeros(3), 0
        for d in domains:
            for item in stores[d].arrays if d in stores else []:
                if "w" not in item:
                    continue
                sel = item["w"] == 1
                if sel.any():
                    sums += item["x"].astype(np.float64)[:, sel].sum(axis=1)
                    n += int(sel.sum())
        if n:
            return (sums / n).round(6).tolist()
    return [0.04, 0.07, 0.17]


class SegmenterPhase:
    """The plain U-Net baseline: cross-entropy on the land cover of real tiles."""

    name, optimizer, updates_ema, repeats = "segmenter", "segmenter", False, 1

    def __init__(self, ignore_index: int, kind: str) -> None:
        self.ignore, self.kind = ignore_index, kind

    def loss(self, batch, ctx):
        have = [d for d in batch if "s" in batch[d]]
        with ctx.autocast():
            logits = ctx.models["unet"](torch.cat([batch[d]["x"] for d in have]))
        target = torch.cat([batch[d]["s"] for d in have])
        loss = task_loss("s", self.kind, logits, target, self.ignore)
        return loss, {}


def build_training(cfg: FloodConfig, *, device, run_dir, dist_info) -> TrainingSetup:
    m = cfg.model
    domains = list(cfg.data.domains)
    if m.kind == "unet":
        domains = real_domains(domains)
        if not domains:
            raise ConfigError(
                "model.kind unet trains on the real domains only; add rf or rn to data.domains"
            )
        tasks = ["s"]
    else:
        tasks = list(m.tasks)
    data_cfg = cfg.data.model_copy(update={"domains": domains})
    painting = m.kind == "omni" and m.painter.enabled
    stores = load_stores(
        data_cfg,
        tasks,
        split="train",
        seed=cfg.seed,
        progress=dist_info.is_main,
        extra=["w"] if painting else [],
    )
    if painting and not [d for d in ("rf", "sf") if d in stores and "w" in stores[d].tasks]:
        raise DataError(
            "the painter learns from flooded tiles with water masks, but no rf or sf sample "
            "has a 'w' file; add w labels or set model.painter.enabled: false"
        )
    dataset = MultiDomainDataset(stores, data_cfg, cfg.seed)
    kwargs = model_kwargs(cfg, list(stores))
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    models = build_models(kwargs)
    t = cfg.train
    phases: list[Any] = []
    if m.kind == "unet":
        phases.append(SegmenterPhase(cfg.data.ignore_index, t.losses.G.tasks.s.kind))
        plan = {
            "segmenter": ["unet"],
            "masker": [],
            "painter": [],
            "discriminators": [],
            "classifier": [],
        }
    else:
        for fam in ("cycle", "auto"):
            for part in ("a", "t"):
                if getattr(getattr(t.losses.G, fam), part).kind == "ce":
                    raise ConfigError(
                        f"train.losses.G.{fam}.{part}.kind: images need l1 or l2, not ce"
                    )
        cmode = m.classifier.domains if "classifier" in models else None
        if tasks:
            phases.append(
                MaskerPhase(
                    tasks=tasks,
                    losses=t.losses,
                    ignore_index=cfg.data.ignore_index,
                    adaptation="adapt_r" in models,
                    classifier=cmode,
                    log_level=t.log_level,
                )
            )
        if "classifier" in models:
            phases.append(ClassifierPhase(losses=t.losses, mode=cmode, log_level=t.log_level))
        if "painter" in models:
            phases.append(
                PainterPhase(
                    losses=t.losses,
                    ignore_index=cfg.data.ignore_index,
                    mask_dilate=m.painter.mask_dilate,
                    unflood=m.painter.unflood,
                    noise_channels=m.painter.noise_channels,
                    log_level=t.log_level,
                )
            )
        plan = {
            "masker": ["encoder"] + [n for n in models if n.startswith(("decoder_", "adapt_"))],
            "painter": ["painter", "encoder"],
            "discriminators": [n for n in models if n.startswith("disc_")],
            "classifier": ["classifier"],
            "segmenter": [],
        }
        if not tasks:
            plan["masker"] = []
        names = [p.name for p in phases] + (
            ["discriminators"] if plan.get("discriminators") else []
        )
        defaults = default_stages(cfg, models, names)
        if plan.get("discriminators"):
            phases.append(
                DiscriminatorPhase(
                    losses=t.losses,
                    ignore_index=cfg.data.ignore_index,
                    mask_dilate=m.painter.mask_dilate,
                    active=_active_parts(list(t.stages or defaults), names),
                    noise_channels=m.painter.noise_channels,
                    log_level=t.log_level,
                )
            )
    if m.kind == "unet":
        defaults = default_stages(cfg, models, ["segmenter"])
    optimizers = build_optimizers(models, plan, t.optimizers)
    ema = "painter" if "painter" in models else None
    export = [n for n in models if n == "encoder" or n.startswith("decoder_") or n == "unet"]
    val = _validation(cfg, data_cfg, tasks) if t.validation.every else None
    return TrainingSetup(
        models=models,
        optimizers=optimizers,
        phases=phases,
        dataset=dataset,
        ema_model=ema,
        export_models=export,
        export_meta=export_meta(cfg, list(stores), tasks, stores),
        image_fn=image_grid,
        stages=defaults,
        validate=val,
        compile_models=[n for n in models if n == "encoder" or n.startswith("decoder_")],
    )


def export_meta(cfg: FloodConfig, domains: list[str], tasks: list[str], stores) -> dict[str, Any]:
    """What painting and evaluation need besides the weights."""
    return {
        "format": EXPORT_FORMAT,
        "model_kind": cfg.model.kind,
        "tasks": tasks,
        "domains": domains,
        "n_classes": cfg.data.n_classes,
        "ignore_index": cfg.data.ignore_index,
        "tile_size": cfg.data.tile_size,
        "height_scale": cfg.data.height_scale,
        "depth_scale": cfg.data.depth_scale,
        "multiple": 2
        ** (cfg.model.unet.depth if cfg.model.kind == "unet" else cfg.model.encoder.n_downsample),
        "cond_segmentation": cfg.model.painter.cond_segmentation,
        "mask_dilate": cfg.model.painter.mask_dilate,
        "water_colour": mean_water_colour(stores, cfg.data.ignore_index),
    }


def _validation(cfg: FloodConfig, data_cfg, tasks: list[str]):
    """Validation callback: water F0.5 and land-cover accuracy on the val split."""
    try:
        stores = load_stores(data_cfg, tasks, split="val", seed=cfg.seed)
    except DataError:
        return None
    if not stores:
        return None
    ds = MultiDomainDataset(stores, data_cfg, cfg.seed + 1, augment=False)

    def validate(models, batches: int) -> dict[str, float]:
        from geogan.recipes.flood.metrics import WaterScores

        dev = next(models["encoder" if "encoder" in models else "unet"].parameters()).device
        scores, correct, count = WaterScores(), 0, 0
        for b in range(batches):
            item = ds[b]
            for sample in item.values():
                x = sample["x"][None].to(dev)
                s_pred, w_prob = predict(models, x, cfg.data.ignore_index)
                if "w" in sample and w_prob is not None:
                    scores.update(
                        sample["w"].numpy()[None],
                        w_prob.cpu().numpy(),
                        ignore_index=cfg.data.ignore_index,
                    )
                if "s" in sample and s_pred is not None:
                    ok = sample["s"] != cfg.data.ignore_index
                    correct += int((s_pred.cpu()[0] == sample["s"])[ok].sum())
                    count += int(ok.sum())
        out = scores.finalize() if scores.n else {}
        res = {k: out[k] for k in ("f05", "error") if k in out}
        if count:
            res["s_accuracy"] = correct / count
        return res

    return validate


@torch.no_grad()
def predict(models: Mapping[str, torch.nn.Module], x: torch.Tensor, ignore_index: int = 255):
    """``(classes [B, *S] or None, water probability [B, *S] or None)`` of images ``x``
    ``[B, 3, *S]`` in [-1, 1]: from the masker (``encoder`` + decoders) or the U-Net
    (water = class 0). Without a ``w`` decoder, water is the probability of class 0."""
    if "unet" in models:
        logits = models["unet"](x).float()
        return logits.argmax(1), logits.softmax(1)[:, 0]
    z, skips = models["encoder"](x, return_skips=True)
    s = models["decoder_s"](z, skips).float() if "decoder_s" in models else None
    if "decoder_w" in models:
        w = models["decoder_w"](z, skips).float()[:, 0].sigmoid()
    else:
        w = s.softmax(1)[:, 0] if s is not None else None
    return (s.argmax(1) if s is not None else None), w


@torch.no_grad()
def image_grid(models: dict[str, Any], batch: dict[str, Any]) -> torch.Tensor | None:
    """Rows for TensorBoard: flooded images, predicted water, painted (water masked out)."""
    d = "rf" if "rf" in batch else next(iter(batch))
    x = batch[d]["x"]
    rows = [(x + 1) / 2]
    if "encoder" in models:
        _, w = predict(models, x)
        if w is not None:
            rows.append(w[:, None].expand_as(x))
        painter = models.get("ema") or models.get("painter")
        if painter is not None and "w" in batch[d]:
            mask = water_mask(batch[d]["w"], 255, 1)
            _, comp = paint(models, x, mask, 1.0, painter=painter)
            rows.append((comp.float() + 1) / 2)
    return torch.cat(rows).clamp(0, 1)
