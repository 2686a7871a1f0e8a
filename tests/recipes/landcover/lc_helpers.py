"""Helpers of the land-cover recipe tests: a tiny image list made by code (PNG tiles and
class maps), and overrides that train on it in seconds. (A module of its own: ``conftest``
is a different module in every test folder, so tests cannot import from it by name.)"""

from __future__ import annotations

import numpy as np
import yaml
from PIL import Image

# class -> mean colour: water, evergreen broadleaf forest, grassland, cropland, barren
COLOURS = {
    0: (20, 40, 90),
    2: (25, 60, 20),
    10: (120, 110, 60),
    12: (150, 120, 80),
    16: (200, 170, 120),
}


def make_scene(rng: np.random.Generator, size: int = 48, block: int = 8):
    """A blocky class map [size, size] and an RGB image whose colour follows it, with texture."""
    classes = np.array(list(COLOURS))
    coarse = rng.choice(classes, size=(size // block, size // block), p=[0.1, 0.3, 0.2, 0.3, 0.1])
    lc = np.kron(coarse, np.ones((block, block), np.int64)).astype(np.uint8)
    rgb = np.zeros((size, size, 3))
    for c, col in COLOURS.items():
        rgb[lc == c] = col
    rgb += rng.normal(0, 12, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), lc


def write_image_list(folder, n_train: int = 3, n_test: int = 2, size: int = 48, seed: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n_train + n_test):
        rgb, lc = make_scene(rng, size)
        Image.fromarray(rgb).save(folder / f"x{i}.png")
        Image.fromarray(lc).save(folder / f"s{i}.png")
        entry = {"name": f"tile{i}", "x": f"x{i}.png", "s": f"s{i}.png"}
        if i >= n_train:
            entry["split"] = "test"
        entries.append(entry)
    path = folder / "list.yaml"
    path.write_text(yaml.safe_dump({"entries": entries}))
    return path


def tiny_overrides(list_path, run_root) -> list[str]:
    return [
        "data.source=image_list",
        f"data.image_list.path={list_path}",
        "data.tile=16",
        "data.train_tile_step=8",
        "data.min_land=0.3",
        "model.filters=4",
        "model.depth=3",
        "model.disc_filters=4",
        "model.disc_layers=2",
        "model.seg_filters=4",
        "model.seg_depth=3",
        "train.batch_size=2",
        "train.time_limit_minutes=null",
        "train.checkpoint_every=1000",
        "train.channels_last=false",
        "train.style.pretrain_steps=2",
        "generate.eval_samples=6",
        "generate.batch_size=4",
        f"run_root={run_root}",
    ]
