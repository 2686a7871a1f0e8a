"""``geogan generate`` for recipe 5: unconditional samples of the generator, physical units.

Member ``m`` uses ``z`` and noise from ``derive_seed(seed, m)``. With ``data.anomaly``
the generator makes normalised anomalies, which need an ensemble's mean (and spread) to
become fields: unconditional samples are then written as anomalies in transformed units
(``anomaly`` attribute), and ``geogan invert`` / ``perturb`` make members.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from geogan.core.progress import ProgressBar
from geogan.core.seeding import derive_seed
from geogan.inference.writers import write_dataset
from geogan.recipes.stylegan.workflow import load_model


def generate(
    checkpoint: str | Path,
    *,
    out: str | Path,
    members: int | None = None,
    seed: int | None = None,
    overwrite: bool = False,
    overrides=(),
    config_path: str | Path | None = None,
    progress: bool = True,
    **_: Any,
) -> dict[str, Any]:
    model = load_model(checkpoint, overrides or [], config_path=config_path)
    cfg = model.cfg.generate
    n = members or cfg.members
    base = cfg.seed if seed is None else seed
    g = model.g
    w_avg = g.mean_w(model.cfg.invert.mean_latents, torch.Generator().manual_seed(0))[0]
    fields = np.empty((n, *model.shape), dtype=np.float32)
    anomaly = model.transform.anomaly != "none"
    with ProgressBar("generate", n, unit="members", enabled=progress) as bar, torch.no_grad():
        for m in range(n):
            gen = torch.Generator().manual_seed(derive_seed(base, m))
            w = g.mapping(torch.randn((1, g.latent_dim), generator=gen))
            if cfg.truncation < 1:
                w = w_avg + cfg.truncation * (w - w_avg)
            y = g.synthesis(w, generator=gen)
            if anomaly:  # anomalies in transformed units: no ensemble mean to add
                fields[m] = y.numpy()[0] * model.transform.scale + model.transform.offset
            else:
                fields[m] = model.transform.inverse(y)[0]
            bar.advance(1)
    ycoord, xcoord = model.meta["coords"]["y"], model.meta["coords"]["x"]
    ydim, xdim = ycoord["name"], xcoord["name"]
    units = model.meta.get("units") or {}
    data = {
        var: (("member", ydim, xdim), fields[:, c], {"units": units.get(var, "")})
        for c, var in enumerate(model.variables)
    }
    ds = xr.Dataset(
        data,
        coords={
            "member": np.arange(n),
            ydim: (ydim, np.asarray(ycoord["values"]), ycoord.get("attrs", {})),
            xdim: (xdim, np.asarray(xcoord["values"]), xcoord.get("attrs", {})),
        },
        attrs={
            "geogan_config": json.dumps(model.cfg.model_dump(mode="json")),
            "seed": int(base),
            "anomaly": model.transform.anomaly,
            "title": "geogan stylegan unconditional samples",
        },
    )
    fmt = "zarr" if Path(out).suffix == ".zarr" else cfg.format
    write_dataset(ds, out, fmt, overwrite=overwrite)
    return {"output": str(out), "members": n, "seed": base, "anomalies": anomaly}
