"""Inference of the ``flood`` recipe: water/land-cover prediction and painting, one image or a list.

Images are ``[3, H, W]`` float32 RGB in [0, 1] of any size: they are padded (reflect) to a
multiple of the encoder's grid and cropped back. Painting composites in [0, 1]:
``out = m * painted + (1 - m) * image`` where ``m > 0`` and ``out = image`` exactly where
``m == 0``, so pixels outside the mask are unchanged bit for bit.

``geogan generate model.safetensors --out painted.nc`` paints the held-out list
(``generate.split``) with ``generate.mask`` masks (predicted, label, file, rule) and writes
a NetCDF with ``image [sample, band, y, x]``, ``mask [sample, y, x]``, ``painted [sample,
member, band, y, x]`` (and ``water_probability`` for predicted masks); ``geogan evaluate``
reads it back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geogan.core.errors import CheckpointError, ConfigError, DataError
from geogan.core.progress import track
from geogan.core.seeding import derive_seed

__all__ = ["FloodModel", "generate", "load_flood_export"]


class FloodModel:
    """An exported flood model: ``predict`` (classes, water probability) and ``paint``."""

    def __init__(self, models: Mapping[str, torch.nn.Module], meta: Mapping[str, Any]) -> None:
        self.models, self.meta = dict(models), dict(meta)
        self.multiple = int(meta.get("multiple", 4))
        self.kind = meta.get("model_kind", "omni")

    @property
    def can_paint(self) -> bool:
        return "painter" in self.models

    def _pad(self, image: np.ndarray) -> tuple[torch.Tensor, int, int]:
        if image.ndim != 3 or image.shape[0] != 3:
            raise DataError(f"an image must be RGB [3, H, W], got shape {list(image.shape)}")
        h, w = image.shape[1:]
        ph, pw = -h % self.multiple, -w % self.multiple
        x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None] * 2 - 1
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        return x, h, w

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``(classes [H, W] int64 or None, water probability [H, W] float32 or None)``."""
        from geogan.recipes.flood.build import predict

        x, h, w = self._pad(image)
        s, p = predict(self.models, x)
        s = s[0, :h, :w].numpy() if s is not None else None
        p = p[0, :h, :w].numpy().astype(np.float32) if p is not None else None
        return s, p

    @torch.no_grad()
    def paint(self, image: np.ndarray, mask: np.ndarray, seed: int = 0) -> np.ndarray:
        """``image [3, H, W]`` in [0, 1] with water painted where ``mask [H, W]`` (in [0, 1])
        says; unchanged where the mask is 0."""
        from geogan.recipes.flood.phases import paint

        if not self.can_paint:
            raise CheckpointError("this export has no painter (model.painter.enabled was false)")
        if mask.shape != image.shape[1:]:
            raise DataError(
                f"mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                f"{image.shape[1]}x{image.shape[2]}; give a mask on the image's grid"
            )
        x, h, w = self._pad(image)
        m = torch.zeros((1, 1, *x.shape[2:]))
        m[0, 0, :h, :w] = torch.from_numpy(np.asarray(mask, np.float32))
        seg = None
        if self.meta.get("cond_segmentation"):
            s, _ = self.predict(image)
            onehot = np.zeros((int(self.meta["n_classes"]), *x.shape[2:]), np.float32)
            onehot[s, np.arange(h)[:, None], np.arange(w)[None]] = 1.0
            seg = torch.from_numpy(onehot)[None]
        painter = self.models["painter"]
        noise = None
        if getattr(painter, "noise_channels", 0):
            g = torch.Generator().manual_seed(derive_seed(seed))
            f = self.multiple
            noise = torch.randn(
                (1, painter.noise_channels, x.shape[2] // f, x.shape[3] // f), generator=g
            )
        painted, _ = paint(self.models, x, m, 1.0, seg=seg, noise=noise)
        p01 = ((painted[0, :, :h, :w].float() + 1) / 2).clamp(0, 1).numpy()
        m01 = np.asarray(mask, np.float32)[None]
        img = np.asarray(image, np.float32)
        return np.where(m01 > 0, m01 * p01 + (1 - m01) * img, img).astype(np.float32)


def load_flood_export(path: str | Path) -> FloodModel:
    """A flood export checkpoint as a :class:`FloodModel` (eval mode, CPU)."""
    import geogan.models  # noqa: F401  (registers omni, unet)
    from geogan.inference.export import load_export

    models, meta = load_export(path, format_prefix="flood/")
    return FloodModel(models, meta)


def _entries(cfg, split: str):
    from geogan.data.image_list import split_entries
    from geogan.recipes.flood.data import load_list

    if split == "test":
        images = load_list(cfg.data.test_list_path, "data.test_list_path")
        return images.entries
    images = load_list(cfg.data.list_path)
    train, val = split_entries(images.entries, cfg.data.val_fraction, cfg.seed, root=images.root)
    return [images.entries[i] for i in (train if split == "train" else val)]


def mask_for(
    entry: Mapping[str, Any], image: np.ndarray, gcfg, model: FloodModel, water_prob
) -> np.ndarray:
    """The painting mask of one entry per ``generate.mask`` ([H, W] float32 in [0, 1])."""
    from geogan.recipes.flood.masks import elevation_mask, read_elevation, read_mask

    shape = image.shape[1:]
    name = str(entry.get("name", Path(entry["x"]).stem))
    if gcfg.mask == "predicted":
        if water_prob is None:
            raise CheckpointError(
                "this export predicts no water (no 'w' or 's' decoder); use generate.mask: file or rule"
            )
        mask = (water_prob > gcfg.threshold).astype(np.float32)
    elif gcfg.mask == "label":
        if "w" not in entry:
            raise DataError(f"sample {name} has no 'w' file for generate.mask: label")
        from geogan.data.image_list import read_image

        w = read_image(entry["w"], categorical=True)
        mask = (w == 1).astype(np.float32)
    elif gcfg.mask == "file":
        mask = read_mask(_find(gcfg.mask_path, name, "generate.mask_path"), shape)
    else:
        elev = read_elevation(_find(gcfg.elevation_path, name, "generate.elevation_path"), shape)
        mask = elevation_mask(elev, gcfg.below_m)
    if mask.shape != shape:
        raise DataError(f"mask of {name} is {mask.shape} but its image is {shape}")
    if gcfg.dilate:
        from scipy import ndimage

        k = 2 * gcfg.dilate + 1
        mask = np.maximum(
            mask, ndimage.binary_dilation(mask > 0, np.ones((k, k), bool)).astype(np.float32)
        )
    return mask


def _find(path: str | None, name: str, key: str) -> Path:
    if path is None:
        raise ConfigError(f"{key} is not set")
    p = Path(path)
    if p.is_dir():
        hits = sorted(q for q in p.iterdir() if q.stem == name and not q.name.startswith("."))
        if not hits:
            raise DataError(f"no file named {name}.* in {p} (one per image, named like the image)")
        return hits[0]
    return p


def generate(
    checkpoint: str | Path,
    *,
    out: str | Path,
    overrides=(),
    members: int | None = None,
    seed: int | None = None,
    config_path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **_: Any,
) -> dict[str, Any]:
    """Paint the images of ``generate.split`` and write them (module docstring)."""
    import xarray as xr

    from geogan.core.atomic import check_writable
    from geogan.data.image_list import read_image
    from geogan.inference.writers import write_dataset
    from geogan.recipes.config import load_run_config, run_config_from_dict

    out = check_writable(Path(out), overwrite)
    model = load_flood_export(checkpoint)
    if config_path is not None:
        cfg = load_run_config(config_path, overrides)
    else:
        cfg = run_config_from_dict(
            model.meta["config"], source=f"checkpoint {checkpoint}", overrides=overrides
        )
    g = cfg.generate
    if not model.can_paint:
        raise CheckpointError(
            f"{checkpoint} has no painter; train with model.painter.enabled: true"
        )
    n_members = members or g.members
    if not getattr(model.models["painter"], "noise_channels", 0):
        n_members = 1  # a painter without noise paints one image per mask
    base = g.seed if seed is None else seed
    entries = _entries(cfg, g.split)[: g.max_images]
    images, masks, painted, probs, names = [], [], [], [], []
    for e in track(entries, "painting", enabled=progress, unit="images"):
        img = read_image(e["x"])
        if img.shape[0] != 3:
            raise DataError(f"{e['x']} has {img.shape[0]} bands; the recipe paints RGB images")
        _, prob = model.predict(img)
        mask = mask_for(e, img, g, model, prob)
        name = str(e.get("name", Path(e["x"]).stem))
        painted.append(
            np.stack([model.paint(img, mask, derive_seed(base, m)) for m in range(n_members)])
        )
        images.append(img)
        masks.append(mask)
        probs.append(prob if prob is not None else np.full(mask.shape, np.nan, np.float32))
        names.append(name)
    if not images:
        raise DataError(f"no image in the {g.split} split to paint")
    if len({im.shape for im in images}) > 1:
        raise DataError(
            "generate writes equal-size tiles into one file; paint single images of other sizes with geogan flood-paint"
        )
    ds = xr.Dataset(
        {
            "image": (("sample", "band", "y", "x"), np.stack(images)),
            "mask": (("sample", "y", "x"), np.stack(masks)),
            "painted": (("sample", "member", "band", "y", "x"), np.stack(painted)),
            "water_probability": (("sample", "y", "x"), np.stack(probs)),
        },
        coords={"sample": names, "member": np.arange(n_members), "band": ["red", "green", "blue"]},
        attrs={
            "geogan_config": json.dumps(cfg.model_dump(mode="json")),
            "checkpoint": str(Path(checkpoint).resolve()),
            "mask_source": g.mask,
            "split": g.split,
            "seed": int(base),
        },
    )
    write_dataset(ds, out, g.format, overwrite=overwrite)
    return {
        "output": str(out),
        "samples": len(names),
        "members": n_members,
        "mask": g.mask,
        "split": g.split,
    }
