"""``geogan invert``: project real members into the generator's latent space, write the latents."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geogan.core.atomic import atomic_write_text, check_writable
from geogan.core.progress import ProgressBar
from geogan.inference.writers import write_dataset
from geogan.recipes.stylegan.inversion import invert_fields, members_per_minute
from geogan.recipes.stylegan.workflow import (
    inversion_dataset,
    load_model,
    summary_path,
)

__all__ = ["run_invert"]


def run_invert(
    checkpoint: str | Path,
    *,
    out: str | Path,
    times: str = "test",
    lead_times: Sequence[float] | None = None,
    members: Sequence[int] | None = None,
    overrides: Iterable[str] = (),
    config_path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    device: str = "cpu",
) -> dict[str, Any]:
    """Invert every selected member; each ensemble is normalised with the statistics of its
    inverted members (``data.anomaly``). Writes ``out`` (NetCDF, or Zarr for ``.zarr``) and a
    JSON summary beside it; returns the summary."""
    out = check_writable(out, overwrite)
    summary_file = check_writable(summary_path(out), overwrite)
    model = load_model(checkpoint, overrides, device, config_path)
    cfg = model.cfg.invert
    samples = model.samples(times=times, lead_times=lead_times, members=members)
    targets = np.empty((len(samples), *model.shape), dtype=np.float32)
    for group in samples.ensembles():
        phys = samples.stack(group.rows)
        targets[list(group.rows)] = model.normalise(phys, model.group_stats(phys)).numpy()
    t0 = time.perf_counter()
    with ProgressBar(
        "invert", len(samples) * cfg.steps, unit="field-steps", enabled=progress
    ) as bar:
        result = invert_fields(
            model.g, torch.from_numpy(targets), cfg, progress=bar.advance, device=device
        )
    seconds = time.perf_counter() - t0
    ds = inversion_dataset(result, samples, model, cfg.space)
    fmt = "zarr" if Path(out).suffix == ".zarr" else "netcdf"
    write_dataset(ds, out, fmt, overwrite=overwrite)
    last = result.steps[-1]
    summary = {
        "output": str(out),
        "checkpoint": str(model.path),
        "samples": len(samples),
        "ensembles": len(samples.ensembles()),
        "space": cfg.space,
        "steps": cfg.steps,
        "saved_steps": result.steps,
        "psnr_db": {
            "mean": float(result.psnr[last].mean()),
            "min": float(result.psnr[last].min()),
            "max": float(result.psnr[last].max()),
        },
        "seconds": seconds,
        "members_per_minute": members_per_minute(len(samples), seconds),
        "selection": samples.describe(),
    }
    atomic_write_text(summary_file, json.dumps(summary, indent=2, default=str))
    return summary
