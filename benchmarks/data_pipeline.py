"""Benchmark 3: the data pipeline of recipe 1.

- Samples/s delivered by the Trainer's own DataLoader (``ResumableBatchSampler``, the
  R8 preset's ``num_workers`` / ``prefetch_factor``, batches moved to the device in the
  Trainer's memory format: ``Trainer._next_batch``) from NetCDF directly (a
  :class:`~geogan.recipes.downscaling.samples.PatchDataset` over a synthetic radar-like file) and from a
  Zarr patch store written by ``prepare`` (:class:`~geogan.data.patch_store.ZarrPatchDataset`).
- Peak memory (``ru_maxrss``, fresh process each) of ``prepare`` on the 1x file and on a
  file 10x as long: it must stay flat, because prepare streams.

The synthetic file mimics a radar composite: ``precip`` (mm/h) ``[T, 512, 512]`` float32,
NETCDF4 with zlib level 5 + shuffle and one time step per chunk (as the files in
``../shared/data/radar``), moving Gaussian rain cells, NaN outside a disc, 5-minute steps.
It is written in chunks of time steps, so writing the 10x file needs little memory too.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO_ROOT, peak_rss_mb, run_isolated

WRITE_CHUNK = 25  # time steps generated and written at once


def write_synthetic_radar(
    path: str | Path, times: int, size: int = 512, seed: int = 0, complevel: int = 5
) -> dict[str, Any]:
    """Write ``precip [times, size, size]`` (mm/h, NaN outside a disc) to NetCDF at ``path``."""
    import netCDF4
    import pandas as pd

    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(
        np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij"
    )
    outside = (yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 > (0.47 * size) ** 2
    n_cells = 24
    cy, cx = rng.uniform(0, size, n_cells), rng.uniform(0, size, n_cells)
    vy, vx = rng.normal(0, 0.004 * size, n_cells), rng.normal(0, 0.004 * size, n_cells)
    radius = rng.uniform(0.01, 0.06, n_cells) * size
    peak = rng.gamma(2.0, 4.0, n_cells)
    stamps = pd.date_range("2021-06-01", periods=times, freq="5min")
    t0 = time.perf_counter()
    with netCDF4.Dataset(str(path), "w", format="NETCDF4") as nc:
        nc.createDimension("time", None)
        nc.createDimension("y", size)
        nc.createDimension("x", size)
        tv = nc.createVariable("time", "f8", ("time",))
        tv.units = "seconds since 1970-01-01"
        tv.calendar = "standard"
        yv = nc.createVariable("y", "f8", ("y",))
        yv.units = "m"
        yv[:] = 1000.0 * (size - 1 - np.arange(size))
        xv = nc.createVariable("x", "f8", ("x",))
        xv.units = "m"
        xv[:] = 1000.0 * np.arange(size)
        pv = nc.createVariable(
            "precip",
            "f4",
            ("time", "y", "x"),
            zlib=complevel > 0,
            complevel=max(complevel, 1),
            shuffle=True,
            chunksizes=(1, size, size),
            fill_value=np.float32(np.nan),
        )
        pv.units = "mm/h"
        pv.standard_name = "rainfall_rate"
        nc.source = "geogan benchmark: synthetic radar-like rain rate"
        for start in range(0, times, WRITE_CHUNK):
            stop = min(start + WRITE_CHUNK, times)
            block = np.zeros((stop - start, size, size), dtype=np.float32)
            for i, t in enumerate(range(start, stop)):
                py, px = (cy + vy * t) % size, (cx + vx * t) % size
                for k in range(n_cells):
                    d2 = (yy - py[k]) ** 2 + (xx - px[k]) ** 2
                    block[i] += peak[k] * np.exp(-d2 / (2 * radius[k] ** 2), dtype=np.float32)
            block[block < 0.05] = 0.0
            block[:, outside] = np.nan
            tv[start:stop] = (
                stamps[start:stop].values.astype("datetime64[s]").astype(np.int64)
            ).astype(np.float64)
            pv[start:stop] = block
    return {
        "path": str(path),
        "times": times,
        "size": size,
        "bytes": Path(path).stat().st_size,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def data_config(truth_path: str, overrides: dict[str, Any] | None = None):
    """The R8 preset's ``data`` section (built-in equivalent without the preset) on ``truth_path``."""
    from train_step import R8_CONFIG_CANDIDATES

    from geogan.recipes.downscaling.config import DataConfig

    for path in R8_CONFIG_CANDIDATES:
        if path.is_file():
            from geogan.recipes.config import load_run_config as load_config

            base = load_config(path).data.model_dump()
            source = str(path.relative_to(REPO_ROOT))
            break
    else:
        base = {
            "autocoarsen": True,
            "factor": 8,
            "patch_size": 128,
            "transforms": {"precip": {"log1p": True, "norm": "max"}},
            "sampling": {
                "wet_threshold": 0.1,
                "thresholds": [0.01, 0.1, 0.3],
                "weights": [0.05, 0.15, 0.3, 0.5],
                "candidate_stride": 16,
                "min_valid_fraction": 0.5,
            },
            "split": {"holdout_fraction": 0.25, "group_by": "day"},
        }
        source = "built in"
    base["truth"] = {**base.get("truth", {}), "path": str(truth_path), "variables": ["precip"]}
    base["stats_path"] = None
    base["patch_store"] = None
    base.update(overrides or {})
    return DataConfig(**base), source


def _loader_trainer(dataset, batch_size: int, num_workers: int, prefetch_factor: int, run_dir: str):
    """A Trainer with no models: only its data path (DataLoader + ``_next_batch``) is used."""
    import torch

    from geogan.training.phases import TrainingSetup
    from geogan.training.trainer import Trainer

    setup = TrainingSetup(models={}, optimizers={}, phases=[], dataset=dataset, ema_model=None)
    return Trainer(
        setup,
        run_dir=run_dir,
        steps=1,
        batch_size=batch_size,
        device=torch.device("cpu"),
        channels_last=True,
        num_workers=num_workers,
        prefetch_factor=prefetch_factor,
        tensorboard=False,
        progress=False,
    )


def task_write_netcdf(path: str, times: int, size: int = 512, complevel: int = 5) -> dict[str, Any]:
    return write_synthetic_radar(path, times, size, complevel=complevel)


def task_loader(
    source: str,
    path: str,
    batches: int = 50,
    warmup_batches: int = 3,
    num_workers: int | None = None,
    prefetch_factor: int | None = None,
    batch_size: int = 8,
    patch_size: int | None = None,
) -> dict[str, Any]:
    """Samples/s of ``Trainer._next_batch`` over ``source`` ("netcdf": PatchDataset over the
    file at ``path``; "zarr": the patch store at ``path``, cycled as ``build_training`` does)."""
    import torch

    from geogan.recipes.downscaling.data import DownscalingData

    overrides = {"patch_size": patch_size} if patch_size else None
    cfg, cfg_source = data_config(path if source == "netcdf" else "unused.nc", overrides)
    workers = cfg.num_workers if num_workers is None else num_workers
    prefetch = cfg.prefetch_factor if prefetch_factor is None else prefetch_factor
    t0 = time.perf_counter()
    if source == "netcdf":
        data = DownscalingData.from_config(cfg)
        norm = data.compute_normalisation()
        dataset = data.patch_dataset(norm, seed=0, length=2**62)
    elif source == "zarr":
        from geogan.data.patch_store import ZarrPatchDataset
        from geogan.recipes.downscaling.build import _Cycle

        dataset = _Cycle(ZarrPatchDataset(path))
    else:
        raise ValueError(f"unknown loader source {source!r}")
    setup_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="geogan-bench-") as tmp:
        trainer = _loader_trainer(dataset, batch_size, workers, prefetch, tmp)
        t0 = time.perf_counter()
        for _ in range(warmup_batches):
            batch = trainer._next_batch()
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(batches):
            batch = trainer._next_batch()
        elapsed = time.perf_counter() - t0
        shapes = {k: list(v.shape) for k, v in batch.items() if torch.is_tensor(v)}
        trainer._loader_iter = None  # shut the workers down before the temp dir goes
    return {
        "source": source,
        "config_source": cfg_source,
        "num_workers": workers,
        "prefetch_factor": prefetch,
        "batch_size": batch_size,
        "batches": batches,
        "setup_s": round(setup_s, 3),
        "first_batches_s": round(first_s, 3),
        "seconds": elapsed,
        "samples_per_s": batches * batch_size / elapsed,
        "batch_shapes": shapes,
    }


def task_prepare(
    path: str, out_dir: str, patches: int = 0, patch_size: int | None = None
) -> dict[str, Any]:
    """Run ``geogan.recipes.downscaling.prepare`` (statistics, candidates, optionally ``patches`` patches)."""
    from geogan.recipes.downscaling.prepare import prepare

    cfg, cfg_source = data_config(path, {"patch_size": patch_size} if patch_size else None)
    out = Path(out_dir)
    store = out / "patches.zarr" if patches else None
    t0 = time.perf_counter()
    summary = prepare(cfg, None, out / "stats.json", store, patches, seed=0, overwrite=True)
    return {
        "config_source": cfg_source,
        "seconds": round(time.perf_counter() - t0, 2),
        "patches": patches,
        "patch_store": str(store) if store else None,
        "times": summary.get("times"),
        "candidates": summary.get("candidates"),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def run(
    quick: bool = False,
    times: int | None = None,
    size: int | None = None,
    batches: int | None = None,
    workdir: str | None = None,
) -> dict[str, Any]:
    """All data-pipeline measurements (each in a fresh subprocess); see the module docstring."""
    times = times or (12 if quick else 100)
    size = size or (128 if quick else 512)
    batches = batches or (4 if quick else 40)
    n_patches = 32 if quick else 1024
    patch_size = 64 if quick else None
    result: dict[str, Any] = {"quick": quick, "times": times, "size": size}
    with tempfile.TemporaryDirectory(prefix="geogan-bench-data-", dir=workdir) as tmp:
        tmp = Path(tmp)
        small, big = tmp / "radar_1x.nc", tmp / "radar_10x.nc"
        result["netcdf_1x"] = run_isolated(
            "write_netcdf", {"path": str(small), "times": times, "size": size}
        )
        loader: dict[str, Any] = {}
        common = {"batches": batches, "patch_size": patch_size}
        loader["netcdf_default"] = run_isolated(
            "loader", {"source": "netcdf", "path": str(small), **common}
        )
        loader["netcdf_2_workers"] = run_isolated(
            "loader", {"source": "netcdf", "path": str(small), "num_workers": 2, **common}
        )
        prep_dir = tmp / "prepared"
        prep_dir.mkdir()
        if patch_size:
            result["note"] = f"quick: patch_size {patch_size} instead of the preset's"
        prep = run_isolated(
            "prepare",
            {
                "path": str(small),
                "out_dir": str(prep_dir),
                "patches": n_patches,
                "patch_size": patch_size,
            },
        )
        if "error" not in prep:
            loader["zarr_default"] = run_isolated(
                "loader", {"source": "zarr", "path": prep["patch_store"], **common}
            )
            loader["zarr_2_workers"] = run_isolated(
                "loader",
                {"source": "zarr", "path": prep["patch_store"], "num_workers": 2, **common},
            )
        result["prepare_with_patches_1x"] = prep
        result["loader"] = loader
        # prepare's peak memory must not grow with the record: 1x vs 10x, statistics + candidates
        result["netcdf_10x"] = run_isolated(
            "write_netcdf", {"path": str(big), "times": 10 * times, "size": size}
        )
        mem = {}
        for label, path in (("1x", small), ("10x", big)):
            out = tmp / f"prep_{label}"
            out.mkdir()
            mem[label] = run_isolated(
                "prepare", {"path": str(path), "out_dir": str(out), "patch_size": patch_size}
            )
        if all("peak_rss_mb" in m for m in mem.values()):
            mem["ratio_10x_to_1x"] = mem["10x"]["peak_rss_mb"] / mem["1x"]["peak_rss_mb"]
            mem["flat_within_20pct"] = mem["ratio_10x_to_1x"] <= 1.2
        result["prepare_memory"] = mem
    return result


def consumption(train_result: dict[str, Any]) -> float | None:
    """Samples/s an R8 training run consumes: batch x (critic steps + 1) / s per iteration."""
    if not train_result or "s_per_iter" not in train_result:
        return None
    spec = train_result["spec"]
    return spec["batch_size"] * (spec["critic_steps"] + 1) / train_result["s_per_iter"]


__all__ = ["run", "write_synthetic_radar", "consumption", "math"]
