"""``geogan generate`` for recipe 3: members of generated imagery.

Two modes:

- default: the held-out mixed samples (:func:`~.data.eval_samples` over ``data.test_regions``
  or the image list's ``split: test`` entries): for each, ``members`` images
  ``G(rgb_a, lc_ab)`` and one identity reconstruction ``G(rgb_a, lc_a)``, written with the
  inputs and the target so that ``geogan evaluate`` needs nothing else;
- ``generate.image`` + ``generate.landcover`` (files): one image and a (changed) class map,
  tiled seamlessly over the whole image (overlap blending), ``members`` images.

Member ``m`` draws its dropout masks (and explicit noise) from ``derive_seed(seed, m)``.
Images are written in [0, 1] reflectance (band: red, green, blue).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from geogan.core.errors import ConfigError, DataError
from geogan.core.seeding import derive_seed
from geogan.inference.export import load_export
from geogan.inference.writers import write_dataset
from geogan.recipes.landcover import models as _models  # noqa: F401 - registers MixLCGenerator
from geogan.recipes.landcover.config import LandcoverConfig
from geogan.recipes.landcover.data import eval_samples, load_source, one_hot

__all__ = ["generate", "generator_fn", "load_generator", "run_members"]

BANDS = ["red", "green", "blue"]


def load_generator(checkpoint: str | Path, overrides=(), config_path=None):
    """``(generator, cfg, meta)`` of a ``mixlc`` or ``pix2pix`` export."""
    from geogan.recipes.config import load_run_config, run_config_from_dict

    models, meta = load_export(checkpoint, format_prefix="landcover")
    if "generator" not in models:
        raise ConfigError(
            f"{checkpoint} is a land-cover {meta.get('model_kind')} export without a generator; "
            "generate with a mixlc or pix2pix export"
        )
    if config_path is not None:
        cfg = load_run_config(config_path, overrides)
    else:
        cfg = run_config_from_dict(
            meta["config"], source=f"checkpoint {checkpoint}", overrides=overrides
        )
    if not isinstance(cfg, LandcoverConfig):
        raise ConfigError(f"{checkpoint} was not written by the landcover recipe")
    return models["generator"], cfg, meta


def generator_fn(g: torch.nn.Module, kind: str, n_classes: int) -> Callable:
    """``fn(rgb [B, 3, H, W] in [-1, 1], lc [B, H, W] int64, noise | None) -> [B, 3, H, W]``."""

    def fn(rgb: torch.Tensor, lc: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        lc1h = one_hot(lc, n_classes)
        if kind == "mixlc":
            return g(rgb, lc1h) if noise is None else g(rgb, lc1h, noise)
        return g(torch.cat([rgb, lc1h], dim=1))

    return fn


def run_members(
    fn: Callable,
    rgb: np.ndarray,
    lc: np.ndarray,
    members: int,
    seed: int,
    *,
    noise_channels: int = 0,
    batch_size: int = 16,
    member_offset: int = 0,
) -> np.ndarray:
    """Members ``[M, N, 3, T, T]`` in [0, 1] for inputs ``rgb [N, 3, T, T]`` in [0, 1] and
    ``lc [N, T, T]`` (ignore index = n_classes). Member ``m`` seeds torch's RNG (dropout) and
    its noise with ``derive_seed(seed, member_offset + m)``; the global RNG is restored."""
    out = np.empty((members, *rgb.shape), np.float32)
    x_all = torch.from_numpy(np.asarray(rgb, np.float32) * 2 - 1)
    lc_all = torch.from_numpy(np.asarray(lc, np.int64))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        for m in range(members):
            torch.manual_seed(derive_seed(seed, member_offset + m))
            for i in range(0, rgb.shape[0], batch_size):
                x, c = x_all[i : i + batch_size], lc_all[i : i + batch_size]
                noise = (
                    torch.randn(x.shape[0], noise_channels, *x.shape[2:])
                    if noise_channels
                    else None
                )
                out[m, i : i + batch_size] = ((fn(x, c, noise) + 1) / 2).clamp(0, 1).numpy()
    return out


def _eval_dataset(
    g, cfg: LandcoverConfig, meta: dict, members: int, seed: int, checkpoint
) -> xr.Dataset:
    kind, n = meta.get("model_kind", cfg.model.kind), cfg.data.n_classes
    source = load_source(cfg.data, "test")
    s = eval_samples(source, cfg.data, cfg.generate.eval_samples, cfg.data.seed)
    fn = generator_fn(g, kind, n)
    noise = cfg.model.noise_channels if kind == "mixlc" else 0
    bs = cfg.generate.batch_size
    gen = run_members(
        fn, s["rgb_a"], s["lc_ab"], members, seed, noise_channels=noise, batch_size=bs
    )
    ident = run_members(
        fn, s["rgb_a"], s["lc_a"], 1, seed, noise_channels=noise, batch_size=bs, member_offset=10**6
    )[0]
    dims5 = ("member", "sample", "band", "y", "x")
    dims4 = ("sample", "band", "y", "x")
    scene_names = [sc.name for sc in source.scenes]
    ds = xr.Dataset(
        {
            "generated": (dims5, gen, {"long_name": "G(rgb_a, lc_ab)", "units": "1"}),
            "identity": (dims4, ident, {"long_name": "G(rgb_a, lc_a)", "units": "1"}),
            "rgb_a": (dims4, s["rgb_a"].astype(np.float32), {"units": "1"}),
            "rgb_ab": (
                dims4,
                s["rgb_ab"].astype(np.float32),
                {"long_name": "target", "units": "1"},
            ),
            "lc_a": (("sample", "y", "x"), s["lc_a"].astype(np.int16)),
            "lc_ab": (("sample", "y", "x"), s["lc_ab"].astype(np.int16)),
            "box": (("sample", "y", "x"), s["box"][:, 0].astype(np.int8)),
            "scene": (("sample",), s["scene"].astype(np.int16)),
            "corner": (("sample", "rc"), s["corner"].astype(np.int32)),
        },
        coords={"member": np.arange(members), "band": BANDS},
        attrs={
            "geogan_config": json.dumps(cfg.model_dump(mode="json")),
            "mode": "eval_samples",
            "model_kind": kind,
            "checkpoint": str(Path(checkpoint).resolve()),
            "seed": int(seed),
            "scenes": json.dumps(scene_names),
            "classes": json.dumps(meta.get("classes", [])),
            "nodata_class": n,
        },
    )
    return ds


def _file_dataset(
    g, cfg: LandcoverConfig, meta: dict, members: int, seed: int, checkpoint
) -> xr.Dataset:
    from geogan.data.image_list import read_image
    from geogan.data.landcover import match_grid
    from geogan.inference.ensemble import generate_ensemble
    from geogan.inference.tiling import TileSpec
    from geogan.recipes.landcover.data import _encode

    gc, d = cfg.generate, cfg.data
    rgb = read_image(gc.image)
    if rgb.shape[0] == 1:
        rgb = np.repeat(rgb, 3, axis=0)
    if rgb.shape[0] != 3:
        raise DataError(f"{gc.image} has {rgb.shape[0]} bands; give an RGB image")
    classes = read_image(gc.landcover, categorical=True)
    classes = match_grid(
        classes,
        rgb.shape[1:],
        d.regrid,
        n_classes=d.n_classes,
        nodata=d.nodata,
        what=f"class map {gc.landcover}",
    )
    lc = _encode(classes, d, f"class map {gc.landcover}")
    t = d.tile
    if min(rgb.shape[1:]) < t:
        raise DataError(
            f"{gc.image} is {rgb.shape[1]}x{rgb.shape[2]}, smaller than the {t}-pixel tiles"
        )
    kind, n = meta.get("model_kind", cfg.model.kind), d.n_classes
    noise_channels = cfg.model.noise_channels if kind == "mixlc" else 0

    def forward(batch):
        lc1h = batch["lc"]  # one-hot already (cut into tiles like the image)
        if kind == "mixlc":
            return (
                g(batch["rgb"], lc1h)
                if not noise_channels
                else g(batch["rgb"], lc1h, batch["noise"])
            )
        return g(torch.cat([batch["rgb"], lc1h], 1))

    field = {
        "rgb": torch.from_numpy(np.clip(rgb, 0, 1) * 2 - 1),
        "lc": one_hot(torch.from_numpy(lc)[None], n)[0],
    }
    spec = TileSpec(patch_lowres=(t, t), overlap_lowres=min(gc.overlap, t - 1), factor=1)
    noise = {"noise": (noise_channels, *rgb.shape[1:])} if noise_channels else None
    out = np.empty((members, 3, *rgb.shape[1:]), np.float32)
    with torch.random.fork_rng(devices=[]):
        for m in range(members):  # one member at a time: its dropout masks come from its seed
            torch.manual_seed(derive_seed(seed, m))
            res = generate_ensemble(
                forward,
                field,
                1,
                seed,
                spec,
                batch_size=gc.batch_size,
                member_offset=m,
                lowres_keys=["rgb", "lc"],
                noise=noise,
            )
            out[m] = ((res[0] + 1) / 2).clamp(0, 1).numpy()
    return xr.Dataset(
        {
            "generated": (("member", "band", "y", "x"), out, {"units": "1"}),
            "rgb": (("band", "y", "x"), rgb.astype(np.float32), {"long_name": "input image"}),
            "lc": (
                ("y", "x"),
                lc.astype(np.int16),
                {"long_name": "class map (nodata = n_classes)"},
            ),
        },
        coords={"member": np.arange(members), "band": BANDS},
        attrs={
            "geogan_config": json.dumps(cfg.model_dump(mode="json")),
            "mode": "files",
            "model_kind": kind,
            "checkpoint": str(Path(checkpoint).resolve()),
            "seed": int(seed),
        },
    )


def generate(
    checkpoint: str | Path,
    *,
    out: str | Path,
    overrides=(),
    members: int | None = None,
    seed: int | None = None,
    config_path: str | Path | None = None,
    overwrite: bool = False,
    **_: Any,
) -> dict[str, Any]:
    """Write members to ``out`` (NetCDF or Zarr); returns a summary."""
    from geogan.core.atomic import check_writable

    check_writable(out, overwrite)  # refuse before any work
    g, cfg, meta = load_generator(checkpoint, overrides, config_path)
    n_members = members or cfg.generate.members
    base = cfg.generate.seed if seed is None else seed
    files = cfg.generate.image is not None or cfg.generate.landcover is not None
    if files and not (cfg.generate.image and cfg.generate.landcover):
        raise ConfigError("give both generate.image and generate.landcover (or neither)")
    make = _file_dataset if files else _eval_dataset
    ds = make(g, cfg, meta, n_members, base, checkpoint)
    fmt = "zarr" if Path(out).suffix == ".zarr" else cfg.generate.format
    write_dataset(ds, out, fmt, overwrite=overwrite)
    return {
        "output": str(out),
        "mode": ds.attrs["mode"],
        "members": n_members,
        "samples": int(ds.sizes.get("sample", 1)),
        "seed": base,
    }
