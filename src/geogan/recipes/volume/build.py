"""Build recipe 2's data, models, optimizers, phases and stages from a VolumeConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from geogan.core.checkpoint import module_tensors, save_checkpoint
from geogan.core.errors import ConfigError
from geogan.core.modules import model_spec
from geogan.data.normalisation import Normalisation
from geogan.losses.spectral import SpectralLoss
from geogan.models.srsgan import SRSGANCritic, SRSGANGenerator
from geogan.recipes.volume.config import AXES, VolumeConfig
from geogan.recipes.volume.data import (
    VolumeDataset,
    VolumeSet,
    compute_normalisation,
    load_volumes,
)
from geogan.recipes.volume.levels import LevelProfile, VolumeNormaliser
from geogan.recipes.volume.phases import (
    CriticPhase,
    GeneratorPhase,
    MSEPhase,
    R1Phase,
    SharedFake,
    draw_noise,
)
from geogan.training.optim import build_optimizers
from geogan.training.phases import StepContext, TrainingSetup

EXPORT_FORMAT = "volume/1"
MSE_EXPORT = "mse_model.safetensors"
"""The MSE-only (pre-trained) network, written into the run folder when adversarial training starts."""


def padding_modes(cfg: VolumeConfig) -> list[str]:
    """One padding mode per axis (z, y, x): ``data.padding_mode`` on every axis.

    The networks never pad circularly, even on periodic axes: training crops of a periodic
    volume are not periodic (they are cut with the wrap-round context the network needs),
    and generation wraps the tiles round the periodic axes itself (see
    :class:`geogan.recipes.volume.generate.GeneratorCall`). Zero padding runs inside the
    convolution; a circular padding op would copy every activation (a third of the
    generator's time in a profile of the mantle preset).
    """
    return [cfg.data.padding_mode] * 3


def model_kwargs(cfg: VolumeConfig, in_channels: int, out_channels: int) -> dict[str, dict]:
    """Constructor arguments (JSON) of the generator and the critic."""
    m, modes = cfg.model, padding_modes(cfg)
    factor = list(cfg.data.factors())
    return {
        "generator": {
            "dims": 3,
            "in_channels": in_channels,
            "out_channels": out_channels,
            "factor": factor,
            "chan_base": m.chan_base,
            "chan_min": m.chan_min,
            "chan_max": m.chan_max,
            "noise": m.noise,
            "padding_mode": modes,
            "residual": m.residual,
            "proj_activation": m.proj_activation,
            "explicit_padding": m.explicit_padding,
        },
        "critic": {
            "dims": 3,
            "condition_channels": in_channels,
            "image_channels": out_channels,
            "factor": factor,
            "chan_base": m.critic_chan_base,
            "chan_min": m.critic_chan_min,
            "chan_max": m.critic_chan_max,
            "padding": m.critic_padding,
            "padding_mode": modes,
        },
    }


def normalisation_for(cfg: VolumeConfig, volumes: VolumeSet, run_dir: Path | None) -> Normalisation:
    """Statistics from ``data.stats_path`` when it exists, else computed over the training
    volumes; saved in the run folder either way."""
    path = Path(cfg.data.stats_path) if cfg.data.stats_path else None
    if path is not None and path.exists():
        norm = Normalisation.load(path)
        norm.check_compatible(volumes.variables, cfg.data.transforms)
        norm = norm.subset(volumes.variables)
    else:
        norm = compute_normalisation(cfg.data, volumes)
    if run_dir is not None:
        norm.save(run_dir / "normalisation.json")
    return norm


def volume_normaliser(
    cfg: VolumeConfig, volumes: VolumeSet, norm: Normalisation
) -> VolumeNormaliser:
    """``norm``, with the per-level profile of the training volumes when
    ``data.normalise_per_level`` is set."""
    if not cfg.data.normalise_per_level:
        return VolumeNormaliser(norm)
    pairs = [(v.data, v.valid) for v in volumes.volumes]
    return VolumeNormaliser(norm, LevelProfile.compute(pairs, norm, volumes.variables))


def export_meta(
    cfg: VolumeConfig,
    volumes: VolumeSet,
    norm: Normalisation,
    dataset: VolumeDataset,
    profile: LevelProfile | None = None,
) -> dict[str, Any]:
    """What generation needs besides the weights."""
    return {
        "level_profile": profile.to_dict() if profile is not None else None,
        "format": EXPORT_FORMAT,
        "variables": volumes.variables,
        "units": volumes.units,
        "factor": list(cfg.data.factors()),
        "with_mask": dataset.with_mask,
        "input_pad": list(dataset.pads_coarse()),
        "periodic": list(cfg.data.periodic()),
        "dims": list(volumes.dims),
        "normalisation": norm.to_dict(),
    }


def default_stages(cfg: VolumeConfig, phases: list[Any]) -> list[dict[str, Any]]:
    """``pretrain`` (MSE only, critic frozen) for ``train.pretrain_steps``, then ``adversarial``."""
    adversarial = [p.name for p in phases if p.name != "mse"]
    stages: list[dict[str, Any]] = []
    if cfg.train.pretrain_steps > 0:
        stages.append(
            {
                "name": "pretrain",
                "steps": cfg.train.pretrain_steps,
                "phases": ["mse"],
                "models": {"critic": "frozen"},
            }
        )
    stages.append({"name": "adversarial", "phases": adversarial})
    return stages


def _mse_exporter(cfg: VolumeConfig, run_dir: Path, meta: dict[str, Any], is_main: bool):
    """``on_start`` of the generator phase: export the generator as pre-training left it."""
    config = cfg.model_dump(mode="json")

    def write(generator: torch.nn.Module, ctx: StepContext) -> None:
        path = run_dir / MSE_EXPORT
        if not is_main or ctx.step == 0 or path.exists():
            return  # no pre-training happened, or a resumed run wrote it already
        meta_out = {
            "kind": "export",
            "step": ctx.step,
            "stage": "pretrain",
            "models": {"generator": model_spec(generator)},
            "config": config,
            **meta,
        }
        save_checkpoint(path, module_tensors("generator", generator), meta_out)

    return write


def build_training(
    cfg: VolumeConfig, *, device: torch.device, run_dir: Path, dist_info
) -> TrainingSetup:
    volumes = load_volumes(cfg.data, "train")
    norm = normalisation_for(cfg, volumes, run_dir if dist_info.is_main else None)
    normaliser = volume_normaliser(cfg, volumes, norm)
    dataset = VolumeDataset(cfg.data, volumes, normaliser, seed=cfg.seed)
    factor = cfg.data.factors()
    pad_coarse = dataset.pads_coarse()
    pad_fine = tuple(p * f for p, f in zip(pad_coarse, factor))
    crop = next(iter(dataset.geometry.values()))[0]
    kwargs = model_kwargs(cfg, dataset.input_channels(), len(volumes.variables))
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank and run
    models = {
        "generator": SRSGANGenerator(**kwargs["generator"]),
        "critic": SRSGANCritic(**kwargs["critic"]),
    }
    need = models["critic"].min_image_size()
    if any(c < n for c, n in zip(crop, need)):
        raise ConfigError(
            f"data.crop {list(crop)} is smaller than the critic needs ({list(need)} voxels with "
            f"{cfg.model.critic_padding} padding); enlarge data.crop or set "
            "model.critic_padding: same"
        )
    t = cfg.train
    optimizers = build_optimizers(
        models, {"generator": ["generator"], "critic": ["critic"]}, t.optimizers
    )
    meta = export_meta(cfg, volumes, norm, dataset, normaliser.profile)
    shared = SharedFake() if t.share_fake else None
    phases: list[Any] = []
    if t.pretrain_steps > 0:
        phases.append(MSEPhase(pad_fine, t.channels_last_3d))
    phases.append(
        CriticPhase(
            repeats=t.critic_steps,
            adversarial=t.adversarial_loss,
            gp_weight=t.gp_weight if t.regulariser == "gp" else 0.0,
            pad_fine=pad_fine,
            pad_coarse=pad_coarse,
            channels_last=t.channels_last_3d,
            shared=shared,
        )
    )
    if t.regulariser == "r1" and t.r1_gamma > 0:
        phases.append(
            R1Phase(
                gamma=t.r1_gamma,
                every=t.r1_interval,
                pad_coarse=pad_coarse,
                channels_last=t.channels_last_3d,
            )
        )
    spectral = SpectralLoss(crop, window=True) if t.spectral_weight > 0 else None
    phases.append(
        GeneratorPhase(
            adversarial=t.adversarial_loss,
            content_weight=t.content_weight,
            spectral=spectral,
            spectral_weight=t.spectral_weight,
            pad_fine=pad_fine,
            pad_coarse=pad_coarse,
            on_start=(
                _mse_exporter(cfg, Path(run_dir), meta, dist_info.is_main)
                if t.mse_export and t.pretrain_steps > 0
                else None
            ),
            channels_last=t.channels_last_3d,
            shared=shared,
        )
    )
    return TrainingSetup(
        models=models,
        optimizers=optimizers,
        phases=phases,
        dataset=dataset,
        ema_model="generator",
        export_meta=meta,
        image_fn=image_grid_fn(pad_fine),
        stages=default_stages(cfg, phases),
        compile_models=["generator"],  # the critic is differentiated twice (GP, R1)
    )


def image_grid_fn(pad_fine):
    """TensorBoard rows (middle z slice, first variable): input, truth, two EMA members."""

    @torch.no_grad()
    def image_grid(models: dict[str, Any], batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from geogan.models.srsgan import narrow

        g = models.get("ema") or models["generator"]
        g.eval()
        x, y = batch["input"], batch["target"]
        rows = []
        z = y.shape[2] // 2
        up = torch.nn.functional.interpolate(
            x[:, :1].float(), scale_factor=g.factor, mode="nearest"
        )
        rows.append(narrow(up, pad_fine)[:, :, z])
        rows.append(y[:, :1, z])
        for _ in range(2):
            noise = [torch.randn(s, device=x.device) for s in g.noise_shapes(x.shape)]
            rows.append(narrow(g(x, noise), pad_fine)[:, :1, z].float())
        grid = torch.cat(rows, dim=0)
        lo, hi = grid.amin(), grid.amax()
        return (grid - lo) / (hi - lo + 1e-8)

    return image_grid


__all__ = [
    "AXES",
    "EXPORT_FORMAT",
    "MSE_EXPORT",
    "build_training",
    "draw_noise",
    "export_meta",
    "model_kwargs",
    "padding_modes",
]
