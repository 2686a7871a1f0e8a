"""Generated ensembles for the demo and the tests (no files outside ``tmp``/the demo folder).

An ensemble at time ``t`` is ``mean_t + spread * eps_m``: a smooth "synoptic" field
(power-law Gaussian field of slope 4, :func:`geogan.data.synthetic.powerlaw_gaussian_field`)
that drifts from time to time, plus member perturbations of slope 3 (finer scales)
modulated by a positive spread map. Like NWP ensembles, the member spread is much smaller
than the variability of the fields themselves (``spread_ratio``), and members of one time
are exchangeable. Every field is periodic in x and y.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from geogan.core.seeding import derive_seed
from geogan.data.synthetic import powerlaw_gaussian_field

__all__ = ["synthetic_ensemble", "write_npy_samples"]


def synthetic_ensemble(
    *,
    times: int = 4,
    members: int = 10,
    shape: tuple[int, int] = (32, 64),
    variables: tuple[str, ...] = ("u", "t2m"),
    spread_ratio: float = 0.1,
    seed: int = 0,
) -> xr.Dataset:
    """Dataset with ``variables`` of dims ``(number, time, latitude, longitude)`` (float32)."""
    h, w = shape
    data = {}
    start = pd.Timestamp("2021-06-01")
    for v_i, var in enumerate(variables):
        arr = np.empty((members, times, h, w), dtype=np.float32)
        spread_map = 1.0 + 0.5 * np.tanh(
            powerlaw_gaussian_field(shape, 4.0, seed=derive_seed(seed, v_i, 1))
        )
        base = powerlaw_gaussian_field(shape, 4.0, seed=derive_seed(seed, v_i, 2))
        for t in range(times):
            drift = powerlaw_gaussian_field(shape, 4.0, seed=derive_seed(seed, v_i, 3, t))
            mean = base + 0.5 * drift
            for m in range(members):
                eps = powerlaw_gaussian_field(shape, 3.0, seed=derive_seed(seed, v_i, 4, t, m))
                arr[m, t] = mean + spread_ratio * spread_map * eps
        offset = 10.0 * v_i  # variables on different scales
        data[var] = (("number", "time", "latitude", "longitude"), arr + offset, {"units": "1"})
    return xr.Dataset(
        data,
        coords={
            "number": np.arange(members),
            "time": pd.date_range(start, periods=times, freq="12h").values,
            "latitude": ("latitude", np.linspace(60.0, -60.0, h), {"units": "degrees_north"}),
            "longitude": (
                "longitude",
                np.arange(w) * 360.0 / w,
                {"units": "degrees_east"},
            ),
        },
        attrs={"title": "geogan synthetic ensemble (generated fields, not data)"},
    )


def write_npy_samples(ds: xr.Dataset, folder: str | Path, lead_time: float = 0.0) -> Path:
    """Write every member of ``ds`` as ``[C, H, W]`` ``.npy`` plus ``labels.csv``
    (Name, Importance, PosX, PosY, Date, LeadTime, Member); returns the CSV path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    variables = list(ds.data_vars)
    stack = np.stack([ds[v].values for v in variables], axis=2)  # [M, T, C, H, W]
    rows = []
    n = 0
    for t_i, t in enumerate(ds["time"].values):
        for m_i, m in enumerate(ds["number"].values):
            name = f"_sample{n}"
            np.save(folder / f"{name}.npy", stack[m_i, t_i])
            rows.append(
                {
                    "Name": name,
                    "Importance": 1.0,
                    "PosX": stack.shape[-1],
                    "PosY": stack.shape[-2],
                    "Date": pd.Timestamp(t).isoformat(),
                    "LeadTime": lead_time,
                    "Member": int(m),
                }
            )
            n += 1
    csv = folder / "labels.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv
