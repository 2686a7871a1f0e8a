"""Fixtures of the volume tests, made by code: tiny configs and NetCDF volumes in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from geogan.recipes.config import run_config_from_dict


def tiny_config(tmp_path: Path, **sections) -> dict:
    """A seconds-long synthetic run: 16^3 mantle volumes, x4, narrow networks."""
    cfg = {
        "recipe": "volume",
        "name": "tiny",
        "run_root": str(tmp_path / "runs"),
        "data": {
            "source": "synthetic",
            "synthetic": {"kind": "mantle", "size": 16, "volumes": 2, "test_volumes": 1},
            "factor": 4,
            "crop": 16,
            "input_pad": 1,
            "augment": {
                "flip": True,
                "rot90": False,
                "permute": True,
                "roll_axes": ["x", "y", "z"],
                "vectors": [{"components": ["u", "v", "w"], "axes": ["x", "y", "z"]}],
            },
        },
        "model": {
            "chan_base": 8,
            "chan_min": 4,
            "chan_max": 8,
            "critic_chan_base": 8,
            "critic_chan_min": 4,
            "critic_chan_max": 8,
        },
        "train": {
            "steps": 4,
            "batch_size": 2,
            "pretrain_steps": 2,
            "critic_steps": 1,
            "checkpoint_every": 2,
            "log_every": 1,
            "image_every": 1000,
            "tensorboard": False,
            "spectral_weight": 0.1,
        },
        "generate": {"members": 2, "tile": 4, "batch_size": 2},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    return cfg


def validated(tree: dict):
    return run_config_from_dict(tree)


def write_ocean(path: Path, *, faces: int = 3, depth: int = 5, n: int = 16, lon_step=None) -> Path:
    """An MITgcm-like file: theta, u, v on (time, face, depth, j, i), NaN land, a wet mask."""
    rng = np.random.default_rng(0)
    shape = (2, faces, depth, n, n)
    wet = np.ones(shape[1:], dtype=np.int8)
    wet[:, :, :3, :3] = 0  # a corner of land on every face and level
    data = {}
    for name, scale in (("theta", 5.0), ("u", 0.1), ("v", 0.1)):
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        a[:, wet == 0] = np.nan
        data[name] = (
            ("time", "face", "depth", "j", "i"),
            a,
            {"units": "degC" if name == "theta" else "m s-1"},
        )
    coords = {
        "time": ("time", np.arange(2)),
        "face": ("face", np.arange(1, faces + 1)),
        "depth": ("depth", np.linspace(25.0, 500.0, depth), {"units": "m"}),
    }
    if lon_step is not None:
        coords["i"] = ("i", np.cumsum(np.full(n, lon_step)) - lon_step, {"units": "degrees_east"})
    ds = xr.Dataset(data, coords=coords)
    ds["wet"] = (("face", "depth", "j", "i"), wet)
    ds.to_netcdf(path)
    return path


def ocean_config(tmp_path: Path, path: Path, **data) -> dict:
    tree = tiny_config(tmp_path)
    tree["data"] = {
        "source": "file",
        "file": {
            "path": str(path),
            "variables": ["theta", "u", "v"],
            "dims": ["depth", "j", "i"],
            "select": {"time": 0},
            "sample_dim": "face",
            "train": {"face": [0, 2]},
            "test": {"face": [2, 3]},
            "mask_variable": "wet",
        },
        "factor": [1, 4, 4],
        "crop": [5, 16, 16],
        "input_pad": 0,
        "periodic_axes": [],
        "augment": {
            "flip": True,
            "rot90": False,
            "flip_axes": ["x", "y"],
            "vectors": [{"components": ["u", "v"], "axes": ["x", "y"]}],
        },
        **data,
    }
    return tree
