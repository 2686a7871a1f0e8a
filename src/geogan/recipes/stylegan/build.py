"""Build recipe 5's data, models, optimizers and phases from a StyleGANConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from geogan.config.schema import OptimConfig
from geogan.core.errors import ConfigError
from geogan.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from geogan.nn.conv import padding_modes
from geogan.recipes.stylegan.config import StyleGANConfig
from geogan.recipes.stylegan.data import (
    EnsembleSamples,
    TrainingFields,
    load_samples,
    training_rows,
)
from geogan.recipes.stylegan.phases import (
    DiscriminatorPhase,
    GeneratorPhase,
    PathLengthPhase,
    R1Phase,
)
from geogan.recipes.stylegan.transforms import FieldTransform
from geogan.training.optim import build_optimizers
from geogan.training.phases import TrainingSetup

EXPORT_FORMAT = "stylegan/1"
IN_MEMORY_MB = 1024.0

__all__ = [
    "EXPORT_FORMAT",
    "build_training",
    "discriminator_kwargs",
    "fit_transform",
    "generator_kwargs",
    "is_periodic_x",
    "lazy_optimizers",
]


def is_periodic_x(padding_mode: str | list[str]) -> bool:
    """Whether the x (last) axis is circular in the model's padding."""
    return padding_modes(padding_mode, 2)[-1] == "circular"


def generator_kwargs(cfg: StyleGANConfig, shape: tuple[int, int, int]) -> dict[str, Any]:
    """Constructor arguments of the generator for fields of ``shape = (C, H, W)``."""
    m = cfg.model
    return {
        "dims": 2,
        "size": [int(shape[1]), int(shape[2])],
        "base_size": list(m.base_size),
        "out_channels": int(shape[0]),
        "latent_dim": m.latent_dim,
        "n_mlp": m.n_mlp,
        "channel_multiplier": m.channel_multiplier,
        "channel_base": m.channel_base,
        "channel_max": m.channel_max,
        "channels": m.g_channels,
        "use_noise": m.use_noise,
        "tanh_output": m.tanh_output,
        "blur_kernel": list(m.blur_kernel),
        "lr_mlp": m.lr_mlp,
        "padding_mode": m.padding_mode,
    }


def discriminator_kwargs(cfg: StyleGANConfig, shape: tuple[int, int, int]) -> dict[str, Any]:
    m = cfg.model
    return {
        "dims": 2,
        "size": [int(shape[1]), int(shape[2])],
        "base_size": list(m.base_size),
        "in_channels": int(shape[0]),
        "channel_multiplier": m.channel_multiplier,
        "channel_base": m.channel_base,
        "channel_max": m.channel_max,
        "channels": m.d_channels,
        "blur_kernel": list(m.blur_kernel),
        "mbstd_group": m.mbstd_group,
        "padding_mode": m.padding_mode,
    }


def lazy_optimizers(cfg: StyleGANConfig) -> dict[str, OptimConfig]:
    """``train.optimizers`` with StyleGAN2's correction for lazy regularisation: learning
    rate times ``c = N / (N + 1)`` and betas to the power ``c`` (``N``: the interval)."""
    t = cfg.train
    out = dict(t.optimizers)
    if not t.lazy_correction:
        return out
    for name, every in (("generator", t.g_reg_every), ("discriminator", t.d_reg_every)):
        base = out.get(name, OptimConfig())
        c = every / (every + 1)
        out[name] = base.model_copy(
            update={"lr": base.lr * c, "betas": (base.betas[0] ** c, base.betas[1] ** c)}
        )
    return out


def check_config(cfg: StyleGANConfig) -> None:
    if cfg.data.anomaly != "none":
        sym = [v for v, s in cfg.data.transforms.items() if s.symmetrize]
        if sym or cfg.data.default.symmetrize:
            raise ConfigError(
                f"data.transforms symmetrize ({sym or 'default'}) cannot be combined with "
                "data.anomaly (a sign flip of an anomaly has no inverse); turn one off"
            )


def fit_transform(
    cfg: StyleGANConfig, samples: EnsembleSamples, periodic_x: bool
) -> FieldTransform:
    """Transform statistics over the training ensembles."""
    specs = {v: cfg.data.transform_for(v) for v in samples.variables}
    return FieldTransform.fit(
        samples.variables,
        specs,
        (samples.stack(g.rows) for g in samples.ensembles()),
        anomaly=cfg.data.anomaly,
        anomaly_blur=cfg.data.anomaly_blur,
        anomaly_floor=cfg.data.anomaly_floor,
        periodic_x=periodic_x,
    )


def training_samples(cfg: StyleGANConfig) -> tuple[EnsembleSamples, EnsembleSamples]:
    """``(all samples, the training selection)``; small selections are read into memory."""
    samples = load_samples(cfg.data)
    train = samples.subset(training_rows(samples, cfg.data))
    size_mb = len(train) * int(np.prod(train.shape)) * 4 / 2**20
    if size_mb <= IN_MEMORY_MB:
        train.load_all(IN_MEMORY_MB)
    return samples, train


def build_training(cfg: StyleGANConfig, *, device, run_dir: Path, dist_info) -> TrainingSetup:
    check_config(cfg)
    periodic = is_periodic_x(cfg.model.padding_mode)
    _, train = training_samples(cfg)
    transform = fit_transform(cfg, train, periodic)
    dataset = TrainingFields(
        train, transform, cfg.data, periodic_x=periodic, seed=derive(cfg.seed, cfg.data.seed)
    )
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    models = {
        "generator": StyleGAN2Generator(**generator_kwargs(cfg, train.shape)),
        "discriminator": StyleGAN2Discriminator(**discriminator_kwargs(cfg, train.shape)),
    }
    plan = {"generator": ["generator"], "discriminator": ["discriminator"]}
    optimizers = build_optimizers(models, plan, lazy_optimizers(cfg))
    t = cfg.train
    phases: list[Any] = [DiscriminatorPhase(t.mixing)]
    if t.r1 > 0:
        phases.append(R1Phase(t.r1, t.d_reg_every))
    phases.append(GeneratorPhase(t.mixing))
    if t.path_regularize > 0:
        phases.append(
            PathLengthPhase(
                t.path_regularize, t.g_reg_every, t.path_batch_shrink, t.mixing, t.path_decay
            )
        )
    return TrainingSetup(
        models=models,
        optimizers=optimizers,
        phases=phases,
        dataset=dataset,
        ema_model="generator",
        export_meta=export_meta(cfg, train, transform, periodic),
        image_fn=image_grid,
    )


def derive(*keys: int) -> int:
    from geogan.core.seeding import derive_seed

    return derive_seed(*keys)


def export_meta(
    cfg: StyleGANConfig, train: EnsembleSamples, transform: FieldTransform, periodic_x: bool
) -> dict[str, Any]:
    """What inversion, perturbation and generation need besides the weights."""

    def coord(c):
        name, values, attrs = c
        values = np.asarray(values)
        if np.issubdtype(values.dtype, np.datetime64):
            values = values.astype("datetime64[s]").astype(str)
        return {"name": name, "values": values.tolist(), "attrs": _json_attrs(attrs)}

    return {
        "format": EXPORT_FORMAT,
        "variables": train.variables,
        "units": train.units,
        "shape": list(train.shape),
        "transform": transform.to_dict(),
        "anomaly": cfg.data.anomaly,
        "anomaly_blur": cfg.data.anomaly_blur,
        "anomaly_floor": cfg.data.anomaly_floor,
        "periodic_x": periodic_x,
        "coords": {"y": coord(train.coords["y"]), "x": coord(train.coords["x"])},
        "source": train.source,
        "training_samples": len(train),
    }


def _json_attrs(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, (str, int, float, bool)):
            out[str(k)] = v
        elif isinstance(v, np.generic):
            out[str(k)] = v.item()
    return out


@torch.no_grad()
def image_grid(models: dict[str, Any], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """TensorBoard rows: real fields, then EMA samples; first channel, scaled to [0, 1]."""
    g = models.get("ema") or models["generator"]
    real = batch["fields"][:, :1].float()
    gen = torch.Generator(device=real.device).manual_seed(0)
    z = torch.randn((real.shape[0], g.latent_dim), generator=gen, device=real.device)
    fake = g(z, generator=gen)[:, :1].float()
    grid = torch.cat([real, fake])
    lo, hi = grid.amin(), grid.amax()
    return (grid - lo) / (hi - lo + 1e-8)
