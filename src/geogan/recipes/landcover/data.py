"""Image / land-cover pairs of recipe 3: sources, mixed samples, held-out samples.

A *source* is a list of scenes (a region of Blue Marble + MODIS, or one entry of an image
list), each an RGB image ``[3, H, W]`` in [0, 1] and a class map ``[H, W]`` (int64, no
data as ``n_classes``, the ignore index), plus the corners of the tiles that may be cut
from it.

A *sample* is ``(rgb_a, lc_a, rgb_b, lc_b)``: two tiles. :func:`mix_sample` pastes a box of
b into a: ``lc_ab`` is ``lc_a`` with the box from ``lc_b``, ``rgb_ab`` is ``rgb_a`` with
the box from ``rgb_b``; the generator gets ``(rgb_a, lc_ab)`` and should produce
``rgb_ab``. Dataset items (:class:`MixDataset`) are dicts of tensors, images in [-1, 1]::

    {"rgb_a": [3, T, T], "lc_a": [T, T] int64, "lc_ab": [T, T] int64,
     "rgb_ab": [3, T, T], "box": [1, T, T] (1 inside the pasted box)}
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from geogan.core.errors import DataError
from geogan.core.seeding import derive_seed
from geogan.data.augment import draw_augmentation
from geogan.recipes.landcover.config import LandcoverData, MixConfig

__all__ = [
    "Scene",
    "Source",
    "MixDataset",
    "class_mean_colours",
    "draw_box",
    "eval_samples",
    "load_source",
    "mix_sample",
    "one_hot",
]


@dataclass
class Scene:
    """One image and its class map on the same grid, and the tiles that may be cut from it."""

    name: str
    rgb: np.ndarray  # float32 [3, H, W] in [0, 1]
    lc: np.ndarray  # int64 [H, W], no data = n_classes
    tiles: np.ndarray  # int64 [N, 2] upper-left corners
    lat: np.ndarray | None = None
    lon: np.ndarray | None = None


@dataclass
class Source:
    scenes: list[Scene]
    n_classes: int
    tile: int
    weights: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        counts = np.array([len(s.tiles) for s in self.scenes], np.float64)
        if counts.sum() == 0:
            raise DataError(
                f"no {self.tile}x{self.tile} tile with enough land in "
                f"{', '.join(s.name for s in self.scenes)}; lower data.min_land or data.tile"
            )
        self.weights = counts / counts.sum()

    def tile_at(self, scene: int, corner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, (r, c), t = self.scenes[scene], corner, self.tile
        return s.rgb[:, r : r + t, c : c + t], s.lc[r : r + t, c : c + t]

    def random_tile(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = int(rng.choice(len(self.scenes), p=self.weights))
        tiles = self.scenes[k].tiles
        return self.tile_at(k, tiles[int(rng.integers(len(tiles)))])


# --------------------------------------------------------------------------- loading


def _encode(lc: np.ndarray, cfg: LandcoverData, what: str) -> np.ndarray:
    from geogan.data.landcover import check_class_values

    lc = np.asarray(lc).astype(np.int64)
    nodata = lc == cfg.nodata
    if cfg.remap is not None:
        n_src = len(cfg.remap)
        check_class_values(lc, n_src, nodata=cfg.nodata, what=what)
        lc = np.asarray(cfg.remap, np.int64)[np.where(nodata, 0, lc)]
    check_class_values(lc[~nodata], cfg.n_classes, what=what)
    return np.where(nodata, cfg.n_classes, lc)


def _tiles(lc: np.ndarray, cfg: LandcoverData, step: int) -> np.ndarray:
    from geogan.data.landcover import tile_grid

    return tile_grid(lc, cfg.tile, step, min_land=cfg.min_land, water=(0,), nodata=cfg.n_classes)


@functools.lru_cache(maxsize=16)
def _bluemarble_region(box: tuple, stride: int, regrid: str) -> dict[str, np.ndarray]:
    from geogan.data.bluemarble import Region
    from geogan.data.landcover import load_region

    return load_region(Region(*box), stride, regrid, classes=_mcd12c1())


@functools.lru_cache(maxsize=1)
def _mcd12c1() -> np.ndarray:
    from geogan.data.landcover import load_mcd12c1

    return load_mcd12c1()


def load_source(cfg: LandcoverData, split: str, *, tile_step: int | None = None) -> Source:
    """The train or test scenes of ``cfg`` (``split``: ``train`` / ``test``).

    Raises a one-line DataError for a class map on another grid than its image when
    ``regrid`` is null, class values outside ``[0, n_classes)``, a missing image file, and
    a split without any usable tile.
    """
    step = tile_step or (cfg.train_tile_step if split == "train" else cfg.tile)
    scenes = []
    if cfg.source == "bluemarble":
        if cfg.regrid is None:
            raise DataError(
                "the MODIS land cover (0.05 degree) is not on the Blue Marble grid (1/15 degree) "
                "and data.regrid is null; set data.regrid: majority (or nearest)"
            )
        regions = cfg.train_regions if split == "train" else cfg.test_regions
        for r in regions:
            box = (r.name, r.lat_min, r.lat_max, r.lon_min, r.lon_max)
            d = _bluemarble_region(box, cfg.stride, cfg.regrid)
            lc = _encode(d["lc"], cfg, f"MODIS land cover of {r.name}")
            scenes.append(Scene(r.name, d["rgb"], lc, _tiles(lc, cfg, step), d["lat"], d["lon"]))
    else:
        scenes = _image_list_scenes(cfg, split, step)
    return Source(scenes, cfg.n_classes, cfg.tile)


def _image_list_scenes(cfg: LandcoverData, split: str, step: int) -> list[Scene]:
    from geogan.data.image_list import ImageList, read_image
    from geogan.data.landcover import match_grid

    src = cfg.image_list
    images = ImageList.load(src.path, keys=[src.image_key, src.class_key])  # checks files
    scenes = []
    for i, entry in enumerate(images.entries):
        is_test = entry.get("split") == "test"
        if is_test != (split == "test"):
            continue
        name = str(entry.get("name", f"entry {i}"))
        rgb = read_image(entry[src.image_key])
        if rgb.shape[0] == 1:
            rgb = np.repeat(rgb, 3, axis=0)
        if rgb.shape[0] != 3:
            raise DataError(
                f"{entry[src.image_key]} has {rgb.shape[0]} bands; the land-cover recipe needs RGB"
            )
        classes = read_image(entry[src.class_key], categorical=True)
        classes = match_grid(
            classes,
            rgb.shape[1:],
            cfg.regrid,
            n_classes=cfg.n_classes if cfg.remap is None else len(cfg.remap),
            nodata=cfg.nodata,
            what=f"class map {entry[src.class_key]}",
        )
        lc = _encode(classes, cfg, f"class map {entry[src.class_key]}")
        scenes.append(Scene(name, np.clip(rgb, 0, 1), lc, _tiles(lc, cfg, step)))
    if not scenes:
        raise DataError(
            f"image list {src.path} has no {split} entries; mark held-out entries with "
            "split: test and keep at least one other"
        )
    return scenes


# --------------------------------------------------------------------------- samples


def draw_box(rng: np.random.Generator, tile: int, mix: MixConfig) -> tuple[int, int, int, int]:
    """``(row, col, height, width)`` of the pasted box inside a ``tile x tile`` sample."""
    lo, hi = max(1, round(mix.box_min * tile)), max(1, round(mix.box_max * tile))
    h = int(rng.integers(lo, hi + 1))
    w = int(rng.integers(lo, hi + 1))
    if mix.placement == "centre":
        return (tile - h) // 2, (tile - w) // 2, h, w
    return int(rng.integers(0, tile - h + 1)), int(rng.integers(0, tile - w + 1)), h, w


def mix_sample(
    rgb_a: np.ndarray,
    lc_a: np.ndarray,
    rgb_b: np.ndarray,
    lc_b: np.ndarray,
    box: tuple[int, int, int, int] | None,
) -> dict[str, np.ndarray]:
    """Paste ``box`` (row, col, height, width) of sample b into sample a.

    Returns ``{"rgb_a", "lc_a", "rgb_ab", "lc_ab", "box"}`` (numpy; ``box`` float32
    ``[1, T, T]``, all zero when ``box`` is None: then ``ab`` equals ``a``).
    """
    rgb_ab, lc_ab = rgb_a.copy(), lc_a.copy()
    mask = np.zeros((1, *lc_a.shape), np.float32)
    if box is not None:
        r, c, h, w = box
        rgb_ab[:, r : r + h, c : c + w] = rgb_b[:, r : r + h, c : c + w]
        lc_ab[r : r + h, c : c + w] = lc_b[r : r + h, c : c + w]
        mask[:, r : r + h, c : c + w] = 1.0
    return {"rgb_a": rgb_a, "lc_a": lc_a, "rgb_ab": rgb_ab, "lc_ab": lc_ab, "box": mask}


def _to_item(sample: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {}
    for k, v in sample.items():
        if k.startswith("rgb"):
            out[k] = torch.from_numpy(np.ascontiguousarray(v, np.float32) * 2.0 - 1.0)
        elif k.startswith("lc"):
            out[k] = torch.from_numpy(np.ascontiguousarray(v, np.int64))
        else:
            out[k] = torch.from_numpy(np.ascontiguousarray(v, np.float32))
    return out


class MixDataset(torch.utils.data.Dataset):
    """Mixed training samples; item ``i`` is a pure function of ``(seed, i)``.

    Tiles a and b are drawn from the source (scene by its share of tiles), each flipped
    by ``cfg.augment`` (flips with probability 0.5 per axis), then mixed with
    probability ``cfg.mix.probability``.
    """

    def __init__(self, source: Source, cfg: LandcoverData, seed: int, offset: int = 0) -> None:
        self.source, self.cfg, self.seed, self.offset = source, cfg, seed, offset

    def __len__(self) -> int:
        return 2**62

    def sample(self, i: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(derive_seed(self.seed, self.offset + int(i)))
        t = self.source.tile
        pair = []
        for _ in range(2):
            rgb, lc = self.source.random_tile(rng)
            aug = draw_augmentation(rng, self.cfg.augment, (t, t))
            pair += [aug.apply(rgb), aug.apply(lc[None])[0]]
        mixed = rng.random() < self.cfg.mix.probability
        box = draw_box(rng, t, self.cfg.mix) if mixed else None
        return mix_sample(*pair, box)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return _to_item(self.sample(i))


def eval_samples(source: Source, cfg: LandcoverData, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` held-out mixed samples, deterministic: tiles a in order over a spread of the
    source's tile grid, b drawn from the rest, boxes from ``cfg.mix``, no flips.

    Returns stacked numpy arrays (images in [0, 1]): ``rgb_a``/``rgb_ab`` ``[N, 3, T, T]``,
    ``lc_a``/``lc_ab`` ``[N, T, T]``, ``box`` ``[N, 1, T, T]``, ``scene`` ``[N]``,
    ``corner`` ``[N, 2]``.
    """
    rng = np.random.default_rng(derive_seed(seed, 2**40))
    all_tiles = [(k, corner) for k, s in enumerate(source.scenes) for corner in s.tiles]
    if not all_tiles:
        raise DataError("no held-out tile; lower data.min_land")
    pick = np.linspace(0, len(all_tiles) - 1, min(n, len(all_tiles))).round().astype(int)
    rows: dict[str, list[Any]] = {
        k: [] for k in ("rgb_a", "lc_a", "rgb_ab", "lc_ab", "box", "scene", "corner")
    }
    for j in pick:
        k, corner = all_tiles[j]
        rgb_a, lc_a = source.tile_at(k, corner)
        kb, cb = all_tiles[int(rng.integers(len(all_tiles)))]
        rgb_b, lc_b = source.tile_at(kb, cb)
        s = mix_sample(rgb_a, lc_a, rgb_b, lc_b, draw_box(rng, source.tile, cfg.mix))
        for key, v in s.items():
            rows[key].append(v)
        rows["scene"].append(k)
        rows["corner"].append(np.asarray(corner))
    return {k: np.stack(v) for k, v in rows.items()}


def class_mean_colours(source: Source) -> np.ndarray:
    """Mean RGB ``[n_classes, 3]`` in [0, 1] per class over every pixel of the source's
    scenes (training data); a class absent from them gets the mean of all pixels."""
    n = source.n_classes
    sums, counts = np.zeros((n, 3)), np.zeros(n)
    for s in source.scenes:
        valid = s.lc < n
        lc = s.lc[valid]
        counts += np.bincount(lc, minlength=n)[:n]
        for ch in range(3):
            sums[:, ch] += np.bincount(lc, weights=s.rgb[ch][valid], minlength=n)[:n]
    overall = sums.sum(0) / max(counts.sum(), 1)
    return np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], overall).astype(
        np.float32
    )


def one_hot(
    lc: torch.Tensor,
    n_classes: int,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """``[B, H, W]`` int64 (ignore index ``n_classes`` = no data) -> float ``[B, N, H, W]``;
    no-data pixels are all zero, classes absent from a tile are zero channels."""
    x = torch.nn.functional.one_hot(lc.clamp(0, n_classes), n_classes + 1)[..., :n_classes]
    return x.permute(0, 3, 1, 2).float().contiguous(memory_format=memory_format)
