"""Extra command of the example recipe: ``geogan example-fields`` (shows how recipes add one)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
import xarray as xr

from geogan.inference.writers import write_dataset
from geogan.recipes.example.fields import FieldDataset


def fields_command(
    out: Path = typer.Option(..., help="Output .nc or .zarr."),
    n: int = typer.Option(8, help="Number of fields."),
    size: int = typer.Option(32, help="Field edge in pixels."),
    slope: float = typer.Option(3.0, help="Spectral slope: power ~ k^-slope."),
    seed: int = typer.Option(0, help="Seed (the training seed gives the training fields)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
) -> None:
    ds_fields = FieldDataset(size, slope, seed)
    fields = np.stack([ds_fields[i]["target"][0].numpy() for i in range(n)])
    ds = xr.Dataset({"field": (("sample", "y", "x"), fields)})
    suffix = Path(out).suffix
    write_dataset(ds, out, "zarr" if suffix == ".zarr" else "netcdf", overwrite=overwrite)
    typer.echo(json.dumps({"output": str(out), "fields": n, "size": size}, indent=2))
