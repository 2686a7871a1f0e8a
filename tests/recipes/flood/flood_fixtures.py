"""Tiny flood data made by code: four domains of rendered tiles in the ``geogan index`` layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from geogan.data.image_list import build_index
from geogan.recipes.flood.bundle import write_tile
from geogan.recipes.flood.render import DEFAULT_PALETTE, render_tile

REAL_PALETTE = np.clip(DEFAULT_PALETTE * 1.3 + 0.03, 0, 1)


def make_tiles(
    root: Path, n: int = 3, size: int = 32, seed: int = 0, domains=("rf", "rn", "sf", "sn")
) -> list[dict]:
    """Write ``n`` tiles per domain under ``root/<domain>/<key>/``; real tiles have no ``h``."""
    tiles = []
    for d in domains:
        for i in range(n):
            kind = "flooded" if d[1] == "f" else "dry"
            pal = REAL_PALETTE if d[0] == "r" else DEFAULT_PALETTE
            t = render_tile(size, seed * 1000 + i + 100 * ord(d[1]) + 10 * ord(d[0]), kind, pal)
            tile = {"name": f"{d}_{i:03d}", "domain": d, "x": t["x"], "s": t["s"]}
            if d[0] == "s":
                tile["h"] = t["h"]
            write_tile(root, tile)
            tiles.append(tile)
    return tiles


def make_lists(tmp: Path, n: int = 3, size: int = 32) -> tuple[Path, Path]:
    """``(train list, test list)`` of tiny rendered tiles (test: rf and rn only)."""
    make_tiles(tmp / "train", n, size, seed=0)
    make_tiles(tmp / "test", 2, size, seed=1, domains=("rf", "rn"))
    build_index(tmp / "train", tmp / "train.json", val_fraction=0.25, seed=0)
    build_index(tmp / "test", tmp / "test.json", val_fraction=0.0, seed=0)
    return tmp / "train.json", tmp / "test.json"


def tiny_config(train: Path, test: Path, run_root: Path, **extra) -> dict:
    """A flood config that trains in seconds on the tiny tiles."""
    cfg = {
        "recipe": "flood",
        "name": "tiny",
        "run_root": str(run_root),
        "data": {"list_path": str(train), "test_list_path": str(test), "tile_size": 16},
        "model": {
            "tasks": ["s", "w", "h"],
            "encoder": {"dim": 4, "n_downsample": 2, "n_res": 1},
            "decoder": {"n_res": 0},
            "classifier": {"filters": 8},
            "painter": {"spade_hidden": 8},
            "discriminator": {"filters": 4, "n_layers": 2},
        },
        "train": {
            "steps": 4,
            "representation_steps": 2,
            "batch_size": 2,
            "checkpoint_every": 2,
            "log_every": 1,
            "image_every": 1000,
            "tensorboard": False,
            "log_level": 2,
        },
        "evaluate": {"judge_steps": 5, "judge_filters": 4, "fd_patch": 8, "grid_examples": 2},
    }
    for key, value in extra.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg
