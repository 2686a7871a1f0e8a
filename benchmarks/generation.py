"""Benchmark 2: ensemble generation with the R8 generator.

Members per second for one 512x512 domain at x8 (input 64x64), tiled with overlap through
:func:`geogan.inference.generate_ensemble` and a :class:`~geogan.inference.TileSpec` with
the settings the ``generate`` command derives from the radar preset (tile 256 high-res
pixels = 32 low-res, overlap 16 high-res = 2 low-res, batch 16 tiles), in fp32 and bf16,
generator in channels_last and eval mode (as ``generate`` runs it). Weights are random:
the cost does not depend on them.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch


def run(
    precision: str = "bf16",
    members: int | None = None,
    quick: bool = False,
    repeats: int = 2,
    config: str = "R8",
) -> dict[str, Any]:
    from train_step import get_config

    from geogan.inference import TileSpec, generate_ensemble
    from geogan.models.downscaling import DownscalingGenerator
    from geogan.training.trainer import keep_freed_memory

    keep_freed_memory()
    spec = get_config(config, quick=quick)
    factor = math.prod(spec["factors"])
    low = 16 if quick else 64
    tile_hr, overlap_hr, batch = (64, 16, 4) if quick else (256, 16, 16)
    members = members or (2 if quick else 16)
    torch.manual_seed(0)
    g = DownscalingGenerator(
        dims=2,
        in_channels=spec["in_channels"],
        constant_channels=spec["constant_channels"],
        out_channels=spec["out_channels"],
        filters=spec["filters_gen"],
        noise_channels=spec["noise_channels"],
        upsampling_factors=spec["factors"],
        arch=spec["arch"],
        padding_mode=spec["padding_mode"],
        output_activation=spec["output_activation"],
        residual_input=spec.get("residual_input", False),
        conserve_mean=spec.get("conserve_mean", "none"),
    )
    g = g.eval().to(memory_format=torch.channels_last)
    patch_lr = max(tile_hr // factor, 2)
    overlap_lr = min(max(overlap_hr // factor, 1), patch_lr - 1)
    tiles = TileSpec(
        patch_lowres=(patch_lr, patch_lr), overlap_lowres=(overlap_lr, overlap_lr), factor=factor
    )
    g_rng = torch.Generator().manual_seed(0)
    field = {
        "input": torch.rand(spec["in_channels"], low, low, generator=g_rng),
        "constants": torch.randn(
            spec["constant_channels"], low * factor, low * factor, generator=g_rng
        ),
    }

    def once() -> torch.Tensor:
        return generate_ensemble(
            g,
            field,
            members,
            seed=0,
            spec=tiles,
            noise_channels=g.noise_channels,
            batch_size=batch,
            precision=precision,
        )

    out = once()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = once()
        times.append(time.perf_counter() - t0)
    median = sorted(times)[len(times) // 2]
    return {
        "config": config,
        "filters_gen": spec["filters_gen"],
        "precision": precision,
        "domain_highres": [low * factor, low * factor],
        "input_lowres": [low, low],
        "tile_lowres": patch_lr,
        "overlap_lowres": overlap_lr,
        "batch_tiles": batch,
        "members": members,
        "seconds": median,
        "samples_s": [round(t, 4) for t in times],
        "members_per_s": members / median,
        "output_shape": list(out.shape),
        "finite": bool(torch.isfinite(out).all()),
    }
