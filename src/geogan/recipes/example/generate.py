"""``geogan generate`` for the example recipe: N members written to NetCDF/Zarr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from geogan.core.seeding import derive_seed
from geogan.inference.export import load_export
from geogan.inference.writers import write_dataset
from geogan.recipes.example import models as _models  # noqa: F401 - registers the models


def generate(
    checkpoint: str | Path,
    *,
    out: str | Path,
    members: int | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    overrides=(),
    **_: Any,
) -> dict[str, Any]:
    """Members ``[M, y, x]`` of the export's generator; member ``m`` uses ``derive_seed(seed, m)``."""
    from geogan.recipes.config import run_config_from_dict

    models, meta = load_export(checkpoint, format_prefix="example/")
    cfg = run_config_from_dict(
        meta["config"], source=f"checkpoint {checkpoint}", overrides=overrides
    )
    n = members or cfg.generate.members
    base = cfg.generate.seed if seed is None else seed
    g, size = models["generator"], int(meta["size"])
    fields = []
    with torch.no_grad():
        for m in range(n):
            gen = torch.Generator().manual_seed(derive_seed(base, m))
            fields.append(g(torch.randn(g.noise_shape(1, size), generator=gen))[0, 0].numpy())
    ds = xr.Dataset(
        {"field": (("member", "y", "x"), np.stack(fields).astype(np.float32))},
        coords={"member": np.arange(n)},
        attrs={"geogan_config": json.dumps(cfg.model_dump(mode="json")), "seed": int(base)},
    )
    write_dataset(ds, out, cfg.generate.format, overwrite=overwrite)
    return {"output": str(out), "members": n, "seed": base}
