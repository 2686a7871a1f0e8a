"""Extra commands of the ``flood`` recipe: ``geogan flood-paint`` and ``geogan flood-data``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import typer

from geogan.core.errors import ConfigError


def paint_file(
    checkpoint: str | Path,
    image: str | Path,
    out: str | Path,
    *,
    mask: str | Path | None = None,
    elevation: str | Path | None = None,
    below_m: float | None = None,
    threshold: float = 0.5,
    variable: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Paint one image (PNG/JPEG/TIFF/npy, RGB) and write the result as a PNG (8-bit) beside
    its mask PNG (``<out stem>_mask.png``) and a JSON summary. Mask: ``mask`` (a file on the
    image's grid), else ``elevation`` + ``below_m`` (water where lower), else the masker's
    prediction above ``threshold``. Nothing is written unless every input checks out."""
    from PIL import Image

    from geogan.core.atomic import atomic_path, atomic_write_text, check_writable
    from geogan.data.image_list import read_image
    from geogan.recipes.flood.generate import load_flood_export
    from geogan.recipes.flood.masks import elevation_mask, read_elevation, read_mask

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must be a .png file, got {out}")
    mask_png = out.with_name(out.stem + "_mask.png")
    summary_path = out.with_name(out.stem + ".json")
    for p in (out, mask_png, summary_path):
        check_writable(p, overwrite)
    if mask is not None and elevation is not None:
        raise ConfigError("give either --mask or --elevation (with --below-m), not both")
    if elevation is not None and below_m is None:
        raise ConfigError(
            "--elevation needs --below-m (water where the elevation is lower, metres)"
        )
    model = load_flood_export(checkpoint)
    img = read_image(image)
    if img.shape[0] != 3:
        raise ConfigError(f"{image} has {img.shape[0]} bands; flood-paint paints RGB images")
    shape = img.shape[1:]
    if mask is not None:
        m, source = read_mask(mask, shape, variable=variable), f"file {mask}"
    elif elevation is not None:
        m = elevation_mask(read_elevation(elevation, shape, variable=variable), below_m)
        source = f"elevation below {below_m:g} m ({elevation})"
    else:
        _, prob = model.predict(img)
        if prob is None:
            raise ConfigError("this model predicts no water; give --mask or --elevation")
        m, source = (
            (prob > threshold).astype(np.float32),
            f"predicted (probability > {threshold:g})",
        )
    painted = model.paint(img, m, seed=seed)
    u8 = np.clip(np.round(np.moveaxis(painted, 0, -1) * 255), 0, 255).astype(np.uint8)
    with atomic_path(out) as tmp:
        Image.fromarray(u8).save(tmp, format="PNG")
    with atomic_path(mask_png) as tmp:
        Image.fromarray(np.clip(np.round(m * 255), 0, 255).astype(np.uint8)).save(tmp, format="PNG")
    summary = {
        "output": str(out),
        "mask_png": str(mask_png),
        "mask": source,
        "mask_fraction": float(m.mean()),
        "size": list(shape),
    }
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    return summary


def paint_command(
    checkpoint: Path = typer.Argument(..., help="Export of a flood run (model.safetensors)."),
    image: Path = typer.Option(..., help="RGB image (PNG/JPEG/TIFF/npy) to paint."),
    out: Path = typer.Option(..., help="Output PNG."),
    mask: Path = typer.Option(
        None, help="Mask file (PNG/GeoTIFF/NetCDF/npy) on the image's grid, 1 = water."
    ),
    elevation: Path = typer.Option(None, help="Elevation grid in metres on the image's grid."),
    below_m: float = typer.Option(
        None, help="With --elevation: water where the elevation is below this."
    ),
    threshold: float = typer.Option(
        0.5, help="Without a mask: the masker's water probability threshold."
    ),
    variable: str = typer.Option(None, help="NetCDF variable of --mask / --elevation."),
    seed: int = typer.Option(0, help="Noise seed (painters with noise channels)."),
    overwrite: bool = typer.Option(False, help="Replace existing outputs."),
) -> None:
    summary = paint_file(
        checkpoint,
        image,
        out,
        mask=mask,
        elevation=elevation,
        below_m=below_m,
        threshold=threshold,
        variable=variable,
        seed=seed,
        overwrite=overwrite,
    )
    typer.echo(json.dumps(summary, indent=2, default=str))


def bundle_command(
    out: Path = typer.Option(..., help="Folder to write (must not hold a bundle)."),
    tile: int = typer.Option(64, help="Tile edge in pixels (1/15 degree pixels)."),
    sim_per_domain: int = typer.Option(300, help="Simulated tiles per domain (sf, sn)."),
    seed: int = typer.Option(0, help="Seed of the simulated tiles and the train/val split."),
) -> None:
    from geogan.recipes.flood.bundle import build_bundle

    summary = build_bundle(out, tile=tile, sim_per_domain=sim_per_domain, seed=seed, progress=True)
    summary.pop("palette", None)
    typer.echo(json.dumps(summary, indent=2, default=str))
