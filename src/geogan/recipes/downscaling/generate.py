"""``geogan generate`` for recipe 1: an N-member ensemble for every selected time, full domain."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geogan.config.schema import RunConfig
from geogan.core.atomic import atomic_write_text, check_writable
from geogan.core.distributed import select_device
from geogan.core.errors import CheckpointError
from geogan.core.progress import ProgressBar
from geogan.core.seeding import derive_seed
from geogan.data import splits
from geogan.data.normalisation import Normalisation
from geogan.data.transforms import pre_inverse
from geogan.data.units import same_units
from geogan.inference import EnsembleWriter, TileSpec, generate_ensemble
from geogan.inference.export import load_export as load_any_export
from geogan.recipes.downscaling.build import EXPORT_FORMAT, is_nonnegative, load_data
from geogan.training.trainer import bf16_supported_on_cpu, resolve_precision

log = logging.getLogger(__name__)


def load_export(path: str | Path) -> tuple[dict[str, torch.nn.Module], dict[str, Any]]:
    """Models (eval mode, CPU) and metadata of a recipe 1 export; refuses other checkpoints."""
    return load_any_export(path, format_prefix=EXPORT_FORMAT)


def generation_precision(device: torch.device, train_precision: str) -> str:
    """Autocast precision of generation for a model trained at ``train_precision``.

    On CPU, bf16 (for bf16 or auto training) only where the processor has native bf16:
    emulated bf16 convolutions ran about 7x slower than fp32 on an AVX2-only CPU
    (benchmarks/roofline.py: 9.7 vs 70.5 GFLOP/s).
    A model trained in fp32 is generated in fp32. On CUDA, as in training.
    """
    if device.type == "cpu":
        native = bf16_supported_on_cpu()
        return "bf16" if train_precision in ("bf16", "auto") and native else "fp32"
    return resolve_precision(device, train_precision)


def check_data_matches(meta: dict[str, Any], data, path: str | Path) -> None:
    """Refuse data whose variables differ from what the model was trained on (silent wrong weights)."""
    for key, have in (
        ("input_vars", data.input_vars),
        ("target_vars", data.target_vars),
        ("constant_vars", data.constant_vars),
    ):
        want = list(meta[key])
        if list(have) != want:
            raise CheckpointError(
                f"{path} was trained with {key.replace('_vars', '')} variables {want} but the data give {list(have)}; "
                "select the same variables in the same order (data.*.variables)"
            )
    saved_units = meta.get("units") or {}
    for var in dict.fromkeys(data.input_vars + data.target_vars):
        if same_units(saved_units.get(var), data.units.get(var)) is False:
            raise CheckpointError(
                f"{path} was trained with {var!r} in {saved_units[var]!r} but the data give "
                f"{data.units[var]!r}; convert the data to the training units"
            )
    if int(meta["factor"]) != data.factor:
        raise CheckpointError(
            f"{path} downscales by {meta['factor']} but data.factor is {data.factor}"
        )


def select_times(data, which: str) -> np.ndarray:
    """Indices of the times to generate for (see :func:`geogan.data.splits.select_times`)."""
    return splits.select_times(data.times, which, data.train_index, data.test_index)


def training_range(norm: Normalisation, var: str) -> tuple[float, float] | None:
    """``(min, max)`` of a variable over the training times, in physical units."""
    if var not in norm.stats:
        return None
    st, cfg = norm.stats[var], norm.transforms[var]
    lo, hi = pre_inverse(np.array([st.min, st.max], dtype=np.float64), cfg)
    return float(lo), float(hi)


#: inputs further than this share of the training range beyond it are out of distribution
RANGE_MARGIN = 0.25


class RangeWatch:
    """Warns once per input variable that leaves the training range by more than a margin
    (e.g. a model trained up to 29 mm/h applied to fields reaching 167 mm/h: its ensembles
    are then likely to be too narrow)."""

    def __init__(self, norm: Normalisation, variables: list[str], units: dict[str, str]):
        self.ranges = {v: r for v in variables if (r := training_range(norm, v)) is not None}
        self.units = units
        self.warned: set[str] = set()
        self.seen: dict[str, list[float]] = {}

    def check(self, raw_input: np.ndarray, variables: list[str]) -> None:
        for c, var in enumerate(variables):
            if var not in self.ranges:
                continue
            vals = raw_input[c][np.isfinite(raw_input[c])]
            if vals.size == 0:
                continue
            lo, hi = float(vals.min()), float(vals.max())
            seen = self.seen.setdefault(var, [lo, hi])
            seen[0], seen[1] = min(seen[0], lo), max(seen[1], hi)
            t_lo, t_hi = self.ranges[var]
            margin = RANGE_MARGIN * max(t_hi - t_lo, 1e-12)
            if var not in self.warned and (hi > t_hi + margin or lo < t_lo - margin):
                self.warned.add(var)
                unit = self.units.get(var, "")
                log.warning(
                    "input %r reaches %.4g..%.4g %s, outside the training range %.4g..%.4g %s by "
                    "more than %d%%: the model extrapolates there (expect too narrow ensembles)",
                    var,
                    lo,
                    hi,
                    unit,
                    t_lo,
                    t_hi,
                    unit,
                    int(RANGE_MARGIN * 100),
                )


def resolve_config(
    meta: dict[str, Any], path: str | Path, config_path: str | Path | None, overrides: list[str]
) -> RunConfig:
    from geogan.recipes.config import load_run_config, run_config_from_dict

    if config_path is not None:
        return load_run_config(config_path, overrides)
    return run_config_from_dict(meta["config"], source=f"checkpoint {path}", overrides=overrides)


def input_valid_highres(raw_input: np.ndarray, factor: int) -> np.ndarray:
    """``[C_in, h, w]`` physical input -> ``[H, W]`` bool: every input variable finite in the covering coarse pixel."""
    ok = np.isfinite(raw_input).all(axis=0)
    return np.repeat(np.repeat(ok, factor, axis=0), factor, axis=1)


def generate(
    checkpoint: str | Path,
    *,
    out: str | Path,
    overrides: list[str] = (),
    members: int | None = None,
    seed: int | None = None,
    times: str = "test",
    config_path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    started = time.perf_counter()
    out = Path(out)
    check_writable(out, overwrite)
    models, meta = load_export(checkpoint)
    cfg = resolve_config(meta, checkpoint, config_path, list(overrides))
    norm = Normalisation.from_dict(meta["normalisation"])
    data = load_data(cfg)
    check_data_matches(meta, data, checkpoint)
    data.normalisation = norm
    gen = cfg.generate
    n_members = members or gen.members
    base_seed = gen.seed if seed is None else seed
    idx = select_times(data, times)
    device = select_device(cfg.device)
    generator = models["generator"].to(device)
    if cfg.train.channels_last and getattr(generator, "dims", 2) == 2:
        # as in training: oneDNN convolutions in NHWC are about twice as fast on CPU
        generator = generator.to(memory_format=torch.channels_last)
    encoder = models.get("encoder")
    factor = data.factor
    patch_lr = max(gen.tile_size // factor, 2)
    overlap_lr = min(max(gen.overlap // factor, 1), patch_lr - 1)
    spec = TileSpec(
        patch_lowres=(patch_lr, patch_lr), overlap_lowres=(overlap_lr, overlap_lr), factor=factor
    )
    precision = generation_precision(device, cfg.train.precision)
    target_vars = list(meta["target_vars"])
    units = meta.get("units") or {}
    nonneg_channels = [
        c
        for c, v in enumerate(target_vars)
        if is_nonnegative(
            units.get(v, data.units.get(v)), data.var_attrs.get(v, {}).get("standard_name")
        )
    ]
    cfg_json = json.dumps(cfg.model_dump(mode="json"))
    attrs = {
        "geogan_config": cfg_json,
        "geogan_checkpoint": str(checkpoint),
        "geogan_step": int(meta.get("step", 0)),
        "seed": int(base_seed),
        "member_seed_rule": "member m uses derive_seed(seed, m)",
        "times_selection": times,
    }
    watch = RangeWatch(norm, data.input_vars, data.units)
    with (
        ProgressBar("generate", len(idx), unit="times", enabled=progress) as bar,
        EnsembleWriter(
            out,
            data.truth_template(),
            target_vars,
            {v: data.units.get(v, "") for v in target_vars},
            n_members,
            times=data.times[idx],
            format=gen.format,
            attrs=attrs,
            overwrite=overwrite,
        ) as writer,
    ):
        for i, t in enumerate(idx):
            field = data.field(int(t), norm)
            raw = data.raw_field(int(t))
            watch.check(raw["input"], data.input_vars)
            time_seed = derive_seed(base_seed, splits.time_seconds(data.times[t]))
            ens = _member_ensemble(
                generator,
                encoder,
                field,
                n_members,
                time_seed,
                spec,
                gen.batch_size,
                device,
                precision,
            )
            phys = norm.inverse_stack(ens.numpy(), target_vars, channel_axis=-3).astype(np.float32)
            for c in nonneg_channels:
                # rain cannot be negative: a linear output layer (or zscore) may go below 0
                np.maximum(phys[:, c], 0.0, out=phys[:, c])
            phys[:, :, ~input_valid_highres(raw["input"], factor)] = np.nan
            writer.write(phys, time_index=i)
            bar.update(i + 1)
    elapsed = time.perf_counter() - started
    summary = {
        "output": str(out),
        "members": n_members,
        "times": int(len(idx)),
        "times_selection": times,
        "grid": list(data.truth_shape),
        "seconds": elapsed,
        "members_per_second": n_members * len(idx) / elapsed,
        "checkpoint": str(checkpoint),
        "seed": base_seed,
        "input_range": {v: r for v, r in watch.seen.items()},
        "training_range": watch.ranges,
        "out_of_training_range": sorted(watch.warned),
    }
    atomic_write_text(Path(f"{out}.summary.json"), json.dumps(summary, indent=2))
    return summary


def _member_ensemble(
    generator, encoder, field, n_members, seed, spec, batch_size, device, precision
):
    """``[M, C_out, H, W]`` members (normalised) for one field: tiled, noise per member.

    The generator is called as ``generator(input, constants | None, noise | None)``;
    the noise is Gaussian ``[N, h, w]`` over the whole coarse domain (GAN), the VAE
    latent sample (VAE-GAN), or absent (deterministic baseline).
    """
    use_consts = field["constants"].shape[0] > 0
    noise = None
    if encoder is None and generator.noise_channels > 0:
        noise = {"noise": (generator.noise_channels, *field["input"].shape[1:])}
    random = encoder is not None or noise is not None

    def forward(batch):
        return generator(
            batch["input"],
            batch["constants"] if use_consts else None,
            batch["noise"] if random else None,
        )

    return generate_ensemble(
        forward,
        {"input": field["input"], "constants": field["constants"]},
        n_members,
        seed,
        spec=spec,
        lowres_keys=["input", "noise"] if random else ["input"],
        highres_keys=["constants"],
        noise=noise,
        noise_fn=_vae_noise(encoder, field, device) if encoder is not None else None,
        batch_size=batch_size,
        device=device,
        precision=precision,
    )


def _vae_noise(encoder, field, device):
    """Latent noise for the VAE-GAN: z = mean + sigma * eps over the whole low-res domain."""
    x = field["input"][None].to(device)
    c = field["constants"][None].to(device) if field["constants"].shape[0] else None
    with torch.no_grad():
        mean, logvar = encoder(x, c)

    def noise_fn(member_seed: int, _field) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(member_seed)
        eps = torch.randn(mean.shape[1:], generator=g).to(device)
        return {"noise": (mean[0] + torch.exp(0.5 * logvar[0]) * eps).cpu()}

    return noise_fn
