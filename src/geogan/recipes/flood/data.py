"""Data lists, the four domains and the multi-domain training dataset of the ``flood`` recipe.

A data list (JSON/YAML, written by ``geogan index FOLDER`` from ``FOLDER/<domain>/<key>/``)
has one entry per sample: ``x`` (the image, required) and optional labels ``s`` (land
cover, class indices), ``w`` (water mask, 0/1), ``h`` (height, metres), ``d`` (depth), plus
``domain`` (rf, rn, sf, sn) and ``split`` (train/val). Tiles are read once into memory
(:class:`DomainStore`); :class:`MultiDomainDataset` item ``i`` holds one random crop of one
random tile of every configured domain, a pure function of ``(seed, i)``::

    {"rf": {"x": [3, T, T], "s": [T, T], "w": [T, T]}, "sf": {..., "h": [1, T, T]}, ...}

Images are float32 in [-1, 1]; ``s`` and ``w`` are int64 with ``ignore_index`` (255) where
unlabelled; ``h`` and ``d`` are float32 divided by their scale, NaN where unlabelled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geogan.core.errors import ConfigError, DataError
from geogan.core.progress import ProgressBar
from geogan.core.seeding import derive_seed
from geogan.data.augment import draw_augmentation
from geogan.data.image_list import ImageList, read_image, split_entries
from geogan.recipes.flood.config import DOMAINS, TASKS, FloodData

log = logging.getLogger(__name__)

__all__ = [
    "DomainStore",
    "MultiDomainDataset",
    "check_tasks",
    "load_list",
    "load_stores",
    "read_sample",
]

CATEGORICAL = ("s", "w")


def load_list(path: str | Path | None, what: str = "data.list_path") -> ImageList:
    """An image list whose every entry has an ``x`` (DataError naming the entry otherwise)."""
    if path is None:
        raise ConfigError(f"{what} is not set; give a data list (geogan index FOLDER --out LIST)")
    return ImageList.load(path, keys=["x"])


def _entry_domain(entry: Mapping[str, Any], source: str, i: int) -> str:
    domain = entry.get("domain")
    if domain is None:
        raise DataError(
            f"entry {i} of {source} has no 'domain'; index a folder laid out as "
            "FOLDER/<rf|rn|sf|sn>/<key>/ or add domain: rf|rn|sf|sn to each entry"
        )
    if domain not in DOMAINS:
        raise DataError(
            f"entry {i} of {source} has domain {domain!r}; use one of {', '.join(DOMAINS)}"
        )
    return str(domain)


def entries_by_domain(
    images: ImageList, split: str | None, val_fraction: float, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """Entries of ``split`` (``train``/``val``; None: all) grouped by domain."""
    if split is None:
        chosen = list(range(len(images.entries)))
    else:
        train, val = split_entries(images.entries, val_fraction, seed, root=images.root)
        chosen = train if split == "train" else val
    out: dict[str, list[dict[str, Any]]] = {d: [] for d in DOMAINS}
    for i in chosen:
        entry = images.entries[i]
        out[_entry_domain(entry, images.source, i)].append(entry)
    return out


def check_domains(groups: Mapping[str, Sequence[Any]], domains: Sequence[str], source: str) -> None:
    """DataError for a configured domain without samples."""
    for d in domains:
        if not groups.get(d):
            have = ", ".join(f"{k} {len(v)}" for k, v in groups.items() if v) or "none"
            raise DataError(
                f"domain {d!r} is in data.domains but {source} has no training sample of it "
                f"(samples per domain: {have}); add its tiles or remove it from data.domains"
            )


def check_tasks(
    groups: Mapping[str, Sequence[Mapping[str, Any]]], tasks: Sequence[str], source: str
) -> dict[str, list[str]]:
    """``{domain: tasks with labels in it}``; ConfigError for a task labelled nowhere."""
    present = {d: sorted({t for e in es for t in TASKS if t in e}) for d, es in groups.items()}
    for task in tasks:
        if not any(task in p for p in present.values()):
            raise ConfigError(
                f"model.tasks includes {task!r} but no sample in {source} has a {task!r} file "
                f"(keys present: {sorted({t for p in present.values() for t in p}) or 'x only'}); "
                "remove it from model.tasks or add the labels"
            )
    return {d: [t for t in tasks if t in present[d]] for d in groups}


def read_sample(entry: Mapping[str, Any], keys: Sequence[str], where: str) -> dict[str, np.ndarray]:
    """The arrays of one entry: ``x [C, H, W]`` float32 in [0, 1] (8/16-bit scaled), ``s``/``w``
    int64 ``[H, W]``, ``h``/``d`` float32 ``[1, H, W]`` (raw units). Every label must be on the
    image's grid (DataError otherwise)."""
    out: dict[str, np.ndarray] = {"x": read_image(entry["x"])}
    h, w = out["x"].shape[-2:]
    for key in keys:
        if key == "x" or key not in entry:
            continue
        arr = read_image(entry[key], categorical=key in CATEGORICAL, scale=key not in ("h", "d"))
        if arr.shape[-2:] != (h, w):
            raise DataError(
                f"{where}: {key!r} ({entry[key]}) is {arr.shape[-2]}x{arr.shape[-1]} but its image "
                f"x is {h}x{w}; resample the {key!r} file to the image grid"
            )
        if key in ("h", "d") and arr.shape[0] != 1:
            raise DataError(
                f"{where}: {key!r} ({entry[key]}) must have one band, got {arr.shape[0]}"
            )
        out[key] = arr
    return out


class DomainStore:
    """The tiles of one domain in memory: images ``[3, H, W]`` (float16, [0, 1]) and labels.

    Labels a tile lacks are stored as unlabelled (``ignore_index`` / NaN), so that every
    item of the domain has the same keys ``tasks``.
    """

    def __init__(
        self,
        domain: str,
        entries: Sequence[Mapping[str, Any]],
        tasks: Sequence[str],
        *,
        n_classes: int,
        ignore_index: int,
        min_size: int = 1,
        progress: Any = None,
    ) -> None:
        self.domain, self.tasks = domain, list(tasks)
        self.names: list[str] = []
        self.arrays: list[dict[str, np.ndarray]] = []
        for i, entry in enumerate(entries):
            where = f"{domain} sample {entry.get('name', i)}"
            arr = read_sample(entry, self.tasks, where)
            if arr["x"].shape[0] != 3:
                raise DataError(
                    f"{where}: image {entry['x']} has {arr['x'].shape[0]} bands; the recipe needs RGB"
                )
            hh, ww = arr["x"].shape[-2:]
            if min(hh, ww) < min_size:
                raise DataError(
                    f"{where}: image {entry['x']} is {hh}x{ww}, smaller than data.tile_size "
                    f"({min_size}); lower data.tile_size or use larger tiles"
                )
            item = {"x": arr["x"].astype(np.float16)}
            for t in self.tasks:
                if t in arr:
                    v = arr[t]
                    if t in CATEGORICAL:
                        limit = 2 if t == "w" else n_classes
                        bad = (v < 0) | ((v >= limit) & (v != ignore_index))
                        if bad.any():
                            raise DataError(
                                f"{where}: {t!r} ({entry[t]}) holds values outside 0..{limit - 1} "
                                f"(and {ignore_index} for unlabelled); fix the labels or data.n_classes"
                            )
                        item[t] = v.astype(np.uint8 if max(limit, ignore_index) < 256 else np.int64)
                    else:
                        item[t] = v.astype(np.float32)
                else:
                    item[t] = (
                        np.full((hh, ww), ignore_index, np.int64)
                        if t in CATEGORICAL
                        else np.full((1, hh, ww), np.nan, np.float32)
                    )
            self.arrays.append(item)
            self.names.append(str(entry.get("name", Path(entry["x"]).stem)))
            if progress is not None:
                progress()

    def __len__(self) -> int:
        return len(self.arrays)


def load_stores(
    cfg: FloodData,
    tasks: Sequence[str],
    *,
    split: str = "train",
    seed: int = 0,
    progress: bool = False,
    extra: Sequence[str] = (),
) -> dict[str, DomainStore]:
    """The configured domains' tiles of ``split`` from ``cfg.list_path``, checked: every entry
    has ``x``, every configured domain has samples, every task has labels somewhere.
    ``extra``: labels read too where present (not required anywhere)."""
    images = load_list(cfg.list_path)
    groups = entries_by_domain(images, split, cfg.val_fraction, seed)
    used = {d: groups[d] for d in cfg.domains}
    if split == "train":
        check_domains(used, cfg.domains, images.source)
    present = check_tasks(used, tasks, images.source)
    for d, es in used.items():
        for t in extra:
            if t not in present[d] and any(t in e for e in es):
                present[d].append(t)
    total = sum(len(v) for v in used.values())
    with ProgressBar(f"reading {split} tiles", total, unit="tiles", enabled=progress) as bar:
        return {
            d: DomainStore(
                d,
                used[d],
                present[d],
                n_classes=cfg.n_classes,
                ignore_index=cfg.ignore_index,
                min_size=cfg.tile_size,
                progress=bar.advance,
            )
            for d in cfg.domains
            if used[d]
        }


def to_tensors(
    item: Mapping[str, np.ndarray], scales: Mapping[str, float]
) -> dict[str, torch.Tensor]:
    """Model-ready tensors of a crop: ``x`` in [-1, 1], classes int64, regressions scaled."""
    out: dict[str, torch.Tensor] = {}
    for k, v in item.items():
        if k == "x":
            out[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32) * 2.0 - 1.0)
        elif k in CATEGORICAL:
            out[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.int64))
        else:
            out[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32) / scales[k])
    return out


class MultiDomainDataset(torch.utils.data.Dataset):
    """Item ``i``: ``{domain: {"x", task labels...}}`` with one ``tile x tile`` crop of one tile
    per domain, augmented (flips/rot90 of :class:`~geogan.config.schema.AugmentConfig`),
    a pure function of ``(seed, i)``; length unbounded (the Trainer streams indices)."""

    def __init__(
        self,
        stores: Mapping[str, DomainStore],
        cfg: FloodData,
        seed: int,
        *,
        augment: bool = True,
    ) -> None:
        if not stores:
            raise DataError("no domain has samples; check data.list_path and data.domains")
        self.stores, self.cfg, self.seed, self.augment = dict(stores), cfg, seed, augment
        self.scales = {"h": cfg.height_scale, "d": cfg.depth_scale}

    def __len__(self) -> int:
        return 2**62

    def sample(self, domain: str, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        store = self.stores[domain]
        item = store.arrays[int(rng.integers(len(store)))]
        t = self.cfg.tile_size
        hh, ww = item["x"].shape[-2:]
        r0 = int(rng.integers(hh - t + 1))
        c0 = int(rng.integers(ww - t + 1))
        crop = {k: v[..., r0 : r0 + t, c0 : c0 + t] for k, v in item.items()}
        if self.augment:
            aug = draw_augmentation(rng, self.cfg.augment, (t, t))
            crop = {k: aug.apply(v) for k, v in crop.items()}
        return to_tensors(crop, self.scales)

    def __getitem__(self, i: int) -> dict[str, dict[str, torch.Tensor]]:
        out = {}
        for k, domain in enumerate(self.stores):
            rng = np.random.default_rng(derive_seed(self.seed, int(i), k))
            out[domain] = self.sample(domain, rng)
        return out


def real_domains(domains: Sequence[str]) -> list[str]:
    return [d for d in domains if d.startswith("r")]


def domain_label(domain: str, mode: str) -> int:
    """Class index of a domain for the domain classifier: ``realism`` r=0, s=1; ``all`` the
    index in rf, rn, sf, sn."""
    return (0 if domain[0] == "r" else 1) if mode == "realism" else DOMAINS.index(domain)
