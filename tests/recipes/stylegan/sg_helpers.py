"""Tiny generated ensembles and configs for the recipe-5 tests (everything in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import yaml

from geogan.recipes.stylegan.synthetic import synthetic_ensemble

TINY_MODEL = {
    "base_size": [4, 8],
    "latent_dim": 8,
    "n_mlp": 1,
    "g_channels": [8, 8],
    "d_channels": [8, 8],
    "use_noise": False,
    "padding_mode": ["zeros", "circular"],
}


def write_ensemble(
    folder: Path, *, times: int = 4, members: int = 6, shape=(8, 16), seed: int = 0
) -> Path:
    path = folder / "ensemble.nc"
    synthetic_ensemble(times=times, members=members, shape=shape, seed=seed).to_netcdf(path)
    return path


def tiny_config(folder: Path, data: Path, **sections) -> Path:
    """A YAML config training on the first 3 times of ``data`` for a few steps."""
    cfg = {
        "recipe": "stylegan",
        "name": "tiny",
        "run_root": str(folder / "runs"),
        "data": {
            "source": {"path": str(data), "variables": ["u", "t2m"], "member_dim": "number"},
            "dates": {"end": "2021-06-02T00:00"},
            "anomaly": "standardised",
            "augment": {"flip": False, "rot90": False, "roll_axes": ["x"]},
        },
        "model": dict(TINY_MODEL),
        "train": {
            "steps": 4,
            "batch_size": 4,
            "checkpoint_every": 2,
            "log_every": 1,
            "tensorboard": False,
            "image_every": 1000,
            "d_reg_every": 2,
            "g_reg_every": 2,
        },
        "invert": {"steps": 8, "save_steps": [4], "mean_latents": 64, "batch_size": 4},
        "perturb": {"n_samples": 6, "batch_size": 4},
        "tune": {"steps": 3, "samples": 6},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
