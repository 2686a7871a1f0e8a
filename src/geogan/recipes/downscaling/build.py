"""Build recipe 1's data, models, optimizers and phases from a DownscalingConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from geogan.core.errors import ConfigError
from geogan.data.normalisation import Normalisation
from geogan.data.units import is_nonnegative_quantity
from geogan.models.downscaling import DownscalingCritic, DownscalingEncoder, DownscalingGenerator
from geogan.recipes.downscaling.config import DownscalingConfig
from geogan.recipes.downscaling.data import DownscalingData
from geogan.recipes.downscaling.phases import CriticPhase, GeneratorPhase
from geogan.training.optim import build_optimizers
from geogan.training.phases import TrainingSetup

EXPORT_FORMAT = "downscaling/1"


def is_nonnegative(units: str | None, standard_name: str | None = None) -> bool:
    """Whether a variable cannot be negative (precipitation): generated members and the
    interpolation baselines are clipped at 0 (see :func:`geogan.data.units.is_nonnegative_quantity`)."""
    return is_nonnegative_quantity(units, standard_name)


def factorise(factor: int) -> list[int]:
    """Upsampling stages whose product is ``factor``: prime factors, largest first (10 -> [5, 2])."""
    stages, n, p = [], factor, 2
    while n > 1:
        while n % p == 0:
            stages.append(p)
            n //= p
        p += 1
    return sorted(stages, reverse=True) or [1]


def upsampling_factors(cfg: DownscalingConfig) -> list[int]:
    factors = cfg.model.upsampling_factors or factorise(cfg.data.factor)
    product = 1
    for f in factors:
        product *= f
    if product != cfg.data.factor:
        raise ConfigError(
            f"model.upsampling_factors {factors} multiply to {product}, not data.factor ({cfg.data.factor}); "
            f"use e.g. {factorise(cfg.data.factor)}"
        )
    return factors


def model_kwargs(cfg: DownscalingConfig, data: DownscalingData) -> dict[str, dict[str, Any]]:
    """Constructor arguments of every model of this run (JSON values)."""
    m, mode = cfg.model, cfg.train.mode
    if (m.residual_input or m.conserve_mean != "none") and data.input_vars[
        : len(data.target_vars)
    ] != data.target_vars:
        raise ConfigError(
            f"model.residual_input and model.conserve_mean need the target variables {data.target_vars} first among the inputs "
            f"(got {data.input_vars}); use data.autocoarsen or list them first in data.input.variables"
        )
    if m.conserve_mean == "softmax":
        signed = [
            v
            for v in data.target_vars
            if cfg.data.transforms.get(v) is None or cfg.data.transforms[v].norm == "zscore"
        ]
        if signed:
            raise ConfigError(
                f"model.conserve_mean: softmax needs non-negative targets, but {signed} are "
                "z-scored (negative values); use data.transforms.<var>.norm: max, minmax or none, "
                "or conserve_mean: additive"
            )
    factors = upsampling_factors(cfg)
    common = {
        "dims": m.dims,
        "in_channels": len(data.input_vars),
        "constant_channels": len(data.constant_vars),
        "padding_mode": m.padding_mode,
        "arch": m.arch,
        "batch_norm": m.batch_norm,
    }
    out = {
        "generator": {
            **common,
            "out_channels": len(data.target_vars),
            "filters": m.filters_gen,
            "noise_channels": 0 if mode != "gan" else m.noise_channels,
            "latent_variables": m.latent_variables if mode == "vaegan" else 0,
            "upsampling_factors": factors,
            "output_activation": m.output_activation,
            "residual_input": m.residual_input,
            "conserve_mean": m.conserve_mean,
        }
    }
    if mode in ("gan", "vaegan"):
        # WGAN-GP forbids batch norm in the critic (the penalty is per sample)
        out["critic"] = {
            **common,
            "batch_norm": False,
            "out_channels": len(data.target_vars),
            "filters": m.filters_disc,
            "downsampling_factors": factors,
        }
    if mode == "vaegan":
        out["encoder"] = {
            **common,
            "latent_variables": m.latent_variables,
            "filters": m.filters_gen,
            "downsampling_factors": factors,
        }
    return out


_MODEL_CLASSES = {
    "generator": DownscalingGenerator,
    "critic": DownscalingCritic,
    "encoder": DownscalingEncoder,
}


def load_data(cfg: DownscalingConfig, stats: Normalisation | None = None) -> DownscalingData:
    """Open the sources of ``cfg.data`` (relative paths are relative to the working directory)."""
    return DownscalingData.from_config(cfg.data, base_dir=None, stats=stats)


def normalisation_for(
    cfg: DownscalingConfig, data: DownscalingData, run_dir: Path | None
) -> Normalisation:
    """Statistics from ``data.stats_path`` when it exists (``geogan prepare``), else computed now
    over the training times; saved in the run directory either way."""
    stats_path = Path(cfg.data.stats_path) if cfg.data.stats_path else None
    if stats_path is not None and stats_path.exists():
        norm = Normalisation.load(stats_path)
        norm.check_compatible(data.all_vars, cfg.data.transforms)
    else:
        norm = data.compute_normalisation()
    if run_dir is not None:
        norm.save(run_dir / "normalisation.json")
    data.normalisation = norm
    return norm


class _Cycle(torch.utils.data.Dataset):
    """A finite dataset (a prepared Zarr patch store) seen as an endless stream: item i is i mod n."""

    def __init__(self, ds: torch.utils.data.Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int):
        return self.ds[i % len(self.ds)]


def to_physical_fn(norm: Normalisation, target_vars: list[str]):
    """``[..., C_out, H, W]`` normalised -> physical units (for content losses in physical space)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        return norm.inverse_stack(x, target_vars, channel_axis=-3)

    return fn


def build_training(
    cfg: DownscalingConfig, *, device: torch.device, run_dir: Path, dist_info
) -> TrainingSetup:
    data = load_data(cfg)
    norm = normalisation_for(cfg, data, run_dir if dist_info.is_main else None)
    if cfg.data.patch_store and Path(cfg.data.patch_store).exists():
        from geogan.data.patch_store import ZarrPatchDataset

        dataset: torch.utils.data.Dataset = _Cycle(ZarrPatchDataset(cfg.data.patch_store))
    else:
        dataset = data.patch_dataset(norm, seed=cfg.seed, length=2**62)
    kwargs = model_kwargs(cfg, data)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank and every run with this seed
    models = {name: _MODEL_CLASSES[name](**kw) for name, kw in kwargs.items()}
    t = cfg.train
    # the VAE-GAN's encoder is trained with the generator, by the generator's optimizer
    optimizers = build_optimizers(
        models, {"generator": ["generator", "encoder"], "critic": ["critic"]}, t.optimizers
    )
    phases: list[Any] = []
    if "critic" in models:
        phases.append(
            CriticPhase(
                repeats=t.critic_steps,
                mode=t.mode,
                adversarial=t.adversarial_loss,
                gp_weight=t.gp_weight,
            )
        )
    phases.append(
        GeneratorPhase(
            mode=t.mode,
            adversarial=t.adversarial_loss,
            content_kind=t.content.kind,
            content_weight=t.content.weight,
            members=t.content.members,
            kl_weight=t.kl_weight,
            to_physical=None if t.transformed_space else to_physical_fn(norm, data.target_vars),
            block_mean_weight=t.content.block_mean_weight,
        )
    )
    return TrainingSetup(
        models=models,
        optimizers=optimizers,
        phases=phases,
        dataset=dataset,
        ema_model="generator",
        export_models=["encoder"] if "encoder" in models else [],
        export_meta=export_meta(cfg, data, norm),
        image_fn=image_grid,
        compile_models=["generator"],  # the critic is differentiated twice (gradient penalty)
    )


def export_meta(
    cfg: DownscalingConfig, data: DownscalingData, norm: Normalisation
) -> dict[str, Any]:
    """What generation needs besides weights: variables, units, factor, normalisation."""
    return {
        "format": EXPORT_FORMAT,
        "mode": cfg.train.mode,
        "input_vars": data.input_vars,
        "target_vars": data.target_vars,
        "constant_vars": data.constant_vars,
        "units": data.units,
        "factor": data.factor,
        "patch_size": data.patch_size,
        "normalisation": norm.to_dict(),
    }


@torch.no_grad()
def image_grid(models: dict[str, Any], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """TensorBoard grid rows: input (nearest-upsampled), truth, two EMA members; first target channel."""
    g = models.get("ema") or models["generator"]
    g.eval()
    x, c, y = batch["input"], batch.get("constants"), batch["target"]
    c = c if c is not None and c.shape[1] > 0 else None
    rows = []
    up = torch.nn.functional.interpolate(x[:, :1], size=y.shape[-2:], mode="nearest")
    rows += [up, y[:, :1]]
    for _ in range(2):
        if getattr(g, "latent_variables", 0):
            noise = torch.randn((x.shape[0], g.latent_variables, *x.shape[2:]), device=x.device)
        elif getattr(g, "noise_channels", 0):
            noise = torch.randn(g.noise_shape(x), device=x.device)
        else:
            noise = None
        rows.append(g(x, c, noise)[:, :1].float())
    grid = torch.cat(rows, dim=0)
    lo, hi = grid.amin(), grid.amax()
    return (grid - lo) / (hi - lo + 1e-8)
