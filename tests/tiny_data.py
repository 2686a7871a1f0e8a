"""Tiny radar-like data sets and recipe-1 configs for end-to-end tests (made by code).

Imported as ``tiny_data`` (the tests folder is on ``sys.path``, see ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def make_rain(
    path: Path, n_times: int = 8, size: int = 48, seed: int = 0, start: str = "2021-06-01T00:00"
) -> Path:
    """``precip`` (mm/h) on a 1D lat/lon grid with moving Gaussian rain cells and a NaN corner."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(52.0, 50.0, size)  # descending, as radar files often are
    lon = np.linspace(4.0, 6.0, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    fields = []
    for _t in range(n_times):
        f = np.zeros((size, size), np.float32)
        for _ in range(4):
            cy, cx = rng.uniform(0, size, 2)
            amp, width = rng.uniform(1, 10), rng.uniform(2, 6)
            f += amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
        f[f < 0.05] = 0.0
        f[:6, :6] = np.nan  # outside radar range
        fields.append(f)
    times = pd.date_range(start, periods=n_times, freq="3h")
    ds = xr.Dataset(
        {
            "precip": (
                ("time", "lat", "lon"),
                np.stack(fields),
                {"units": "mm/h", "long_name": "rain rate"},
            )
        },
        coords={
            "time": times,
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )
    ds.to_netcdf(path)
    return path


def make_constants(path: Path) -> Path:
    """Orography and land-sea mask on their own coarser, larger lat/lon grid."""
    lat = np.linspace(53.0, 49.0, 21)
    lon = np.linspace(3.0, 7.0, 21)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    ds = xr.Dataset(
        {
            "orography": (
                ("lat", "lon"),
                (100 * (la - 49) + 20 * (lo - 3)).astype(np.float32),
                {"units": "m"},
            ),
            "lsm": (("lat", "lon"), (lo > 5).astype(np.float32), {"units": "1"}),
        },
        coords={"lat": lat, "lon": lon},
    )
    ds.to_netcdf(path)
    return path


def base_config(truth: Path, constants: Path | None, run_root: Path) -> dict:
    cfg = {
        "recipe": "downscaling",
        "name": "tiny",
        "run_root": str(run_root),
        "data": {
            "truth": {"path": str(truth), "variables": ["precip"]},
            "autocoarsen": True,
            "factor": 4,
            "patch_size": 16,
            "transforms": {"precip": {"log1p": True, "norm": "max"}},
            "sampling": {"candidate_stride": 4, "thresholds": [0.1], "weights": [0.5, 0.5]},
        },
        "model": {"filters_gen": 8, "filters_disc": 8, "noise_channels": 2},
        "train": {
            "steps": 2,
            "batch_size": 2,
            "critic_steps": 2,
            "content": {"kind": "crps", "members": 2},
            "checkpoint_every": 2,
            "tensorboard": False,
        },
        "generate": {"members": 3, "overlap": 4, "batch_size": 4},
        "evaluate": {
            "thresholds": [0.5],
            "fss_scales": [1, 4],
            "pool_windows": [[4, 2]],
            "sample_times": 1,
        },
    }
    if constants is not None:
        cfg["data"]["constants"] = {"path": str(constants), "variables": ["orography", "lsm"]}
    return cfg
