"""Ensemble members of recipe 5: read from a metadata CSV of ``.npy`` samples or from a
NetCDF/Zarr/GRIB file with a member dimension, selected by dates, lead times and members.

:class:`EnsembleSamples` is one table of samples (``frame``: ``Date``, ``LeadTime``,
``Member``, one row per sample) with ``read(i) -> [C, H, W]`` float32 in physical units,
the channel names and units, and the grid coordinates written back into outputs.
:class:`TrainingFields` is the Dataset the Trainer streams: item ``i`` is a pure function
of ``(seed, i)`` (a training sample chosen by a hash, a random longitude roll where the
grid is periodic, the training draws of the transforms).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import closest
from geogan.core.seeding import derive_seed
from geogan.data.augment import draw_augmentation
from geogan.data.npy_samples import (
    DateRangeConfig,
    EnsembleGroup,
    LeadTimeRangeConfig,
    NpySampleDataset,
    group_ensembles,
)
from geogan.data.sources import reader_for
from geogan.data.splits import select_times
from geogan.recipes.stylegan.config import EnsembleSourceConfig, StyleGANData
from geogan.recipes.stylegan.transforms import FieldTransform

__all__ = ["EnsembleSamples", "TrainingFields", "load_samples", "select_samples"]


@dataclass
class EnsembleSamples:
    """Samples ``i = 0 .. N-1`` of ensembles, ``read(i) -> float32 [C, H, W]`` (physical).

    ``frame`` columns: ``Date`` (datetime64, naive UTC), ``LeadTime`` (hours), ``Member``
    (int). ``coords``: ``{"y": (name, values, attrs), "x": (...)}`` of the (cropped) grid.
    """

    variables: list[str]
    units: dict[str, str]
    shape: tuple[int, int, int]
    frame: pd.DataFrame
    reader: Callable[[int], np.ndarray]
    coords: dict[str, tuple[str, np.ndarray, dict]]
    source: str
    cache: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.frame)

    def read(self, i: int) -> np.ndarray:
        i = int(i)
        if i in self.cache:
            return self.cache[i]
        return self.reader(i)

    def stack(self, rows: Sequence[int]) -> np.ndarray:
        """Samples ``rows`` as ``[M, C, H, W]``."""
        return np.stack([self.read(r) for r in rows])

    def load_all(self, limit_mb: float = 4096.0) -> None:
        """Read every sample into memory (small data sets: ERA5, the demo)."""
        size_mb = len(self) * int(np.prod(self.shape)) * 4 / 2**20
        if size_mb > limit_mb:
            raise DataError(
                f"{self.source}: {len(self)} samples need {size_mb:.0f} MiB in memory, more than "
                f"{limit_mb:.0f}; select fewer dates/lead times or use data.anomaly: none"
            )
        for i in range(len(self)):
            self.cache[i] = self.reader(i)

    def ensembles(self) -> list[EnsembleGroup]:
        """The samples grouped by (Date, LeadTime), members ascending."""
        return group_ensembles(self.frame, source=self.source)

    def subset(self, rows: Sequence[int]) -> EnsembleSamples:
        rows = [int(r) for r in rows]
        parent = self

        def reader(i: int) -> np.ndarray:
            return parent.read(rows[i])

        return replace(
            self,
            frame=self.frame.iloc[rows].reset_index(drop=True),
            reader=reader,
            cache={},
        )

    def describe(self) -> str:
        dates = self.frame["Date"]
        return (
            f"{len(self)} samples ({dates.min()} .. {dates.max()}, lead times "
            f"{sorted(set(self.frame['LeadTime'].tolist()))}, members "
            f"{sorted(set(self.frame['Member'].tolist()))})"
        )


# --------------------------------------------------------------------------- .npy + CSV


def _from_npy(cfg: StyleGANData) -> EnsembleSamples:
    ds = NpySampleDataset.from_config(cfg.npy)
    c, h, w = ds.shape
    variables = ds.variables or [f"c{i}" for i in range(c)]
    y0, _, x0, _ = ds.crop
    frame = ds.index.frame[["Date", "LeadTime", "Member"]].reset_index(drop=True)
    return EnsembleSamples(
        variables=list(variables),
        units={},
        shape=(c, h, w),
        frame=frame,
        reader=ds.read,
        coords={
            "y": (
                "y",
                np.arange(y0, y0 + h, dtype=np.int64),
                {"long_name": "row of the full field"},
            ),
            "x": (
                "x",
                np.arange(x0, x0 + w, dtype=np.int64),
                {"long_name": "column of the full field"},
            ),
        },
        source=str(ds.index.csv),
    )


# --------------------------------------------------------------------------- xarray


def _lead_hours(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.timedelta64):
        return values.astype("timedelta64[s]").astype(np.float64) / 3600.0
    return values.astype(np.float64)


def _open(paths: list[str]) -> xr.Dataset:
    datasets = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise DataError(f"data.source.path {path} not found; check the path")
        datasets.append(reader_for(path)(path))
    if len(datasets) == 1:
        return datasets[0]
    try:
        return xr.concat(datasets, dim="time")
    except (ValueError, KeyError) as exc:
        raise DataError(f"cannot concatenate {paths} along time ({exc})") from None


def _from_source(src: EnsembleSourceConfig) -> EnsembleSamples:
    paths = [src.path] if isinstance(src.path, str) else list(src.path)
    ds = _open(paths)
    where = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1})"
    missing = [v for v in src.variables if v not in ds.data_vars]
    if missing:
        hint = closest(missing[0], [str(v) for v in ds.data_vars])
        raise DataError(
            f"{where} has no variable {missing[0]!r}{f' (did you mean {hint!r}?)' if hint else ''}; "
            f"it holds {', '.join(map(str, ds.data_vars))}; fix data.source.variables"
        )
    first = ds[src.variables[0]]
    needed = [src.member_dim, src.time_dim] + [
        d for d in (src.lead_time_dim, src.level_dim) if d is not None
    ]
    for d in needed:
        if d not in first.dims:
            raise DataError(
                f"{where}: variable {src.variables[0]!r} has dims {first.dims}, not {d!r}; set "
                "data.source.member_dim / time_dim / lead_time_dim / level_dim to its dim names"
            )
    spatial = [d for d in first.dims if d not in needed]
    if len(spatial) != 2:
        raise DataError(
            f"{where}: {src.variables[0]!r} has dims {first.dims}; after {needed} two spatial dims "
            "must remain (select or name the others)"
        )
    ydim, xdim = spatial
    ny, nx = int(ds.sizes[ydim]), int(ds.sizes[xdim])
    y0, y1, x0, x1 = src.crop if src.crop is not None else (0, ny, 0, nx)
    if min(y0, x0) < 0 or y1 <= y0 or x1 <= x0:
        raise ConfigError(
            f"data.source.crop {list(src.crop)} is empty or negative; use 0 <= y0 < y1 and 0 <= x0 < x1"
        )
    if y1 > ny or x1 > nx:
        raise DataError(
            f"data.source.crop [y0, y1, x0, x1] = {[y0, y1, x0, x1]} is outside the {ny} x {nx} "
            f"field of {where}; use y1 <= {ny} and x1 <= {nx}"
        )
    members = (
        ds[src.member_dim].values
        if src.member_dim in ds.coords
        else np.arange(ds.sizes[src.member_dim])
    )
    if src.members is not None:
        absent = sorted(set(src.members) - set(int(m) for m in members))
        if absent:
            raise DataError(
                f"{where} has members {[int(m) for m in members]}, not {absent}; fix data.source.members"
            )
    member_pos = [
        int(np.flatnonzero(members == m)[0]) for m in (src.members or [int(m) for m in members])
    ]
    times = ds[src.time_dim].values
    lead = (
        _lead_hours(ds[src.lead_time_dim].values) if src.lead_time_dim is not None else np.zeros(1)
    )
    channels: list[tuple[str, xr.DataArray]] = []
    units: dict[str, str] = {}
    for var in src.variables:
        da = ds[var]
        if tuple(sorted(da.dims)) != tuple(sorted(first.dims)):
            raise DataError(
                f"{where}: {var!r} has dims {da.dims} but {src.variables[0]!r} has {first.dims}"
            )
        order = [src.member_dim, src.time_dim]
        if src.lead_time_dim is not None:
            order.append(src.lead_time_dim)
        if src.level_dim is not None:
            order.append(src.level_dim)
        da = da.transpose(*order, ydim, xdim)
        if src.level_dim is not None:
            have = ds[src.level_dim].values
            for lv in src.levels or []:
                hit = np.flatnonzero(np.isclose(have.astype(np.float64), lv))
                if hit.size == 0:
                    raise DataError(
                        f"{where} has {src.level_dim} {have.tolist()}, not {lv:g}; fix data.source.levels"
                    )
                name = f"{var}{lv:g}"
                channels.append((name, da.isel({src.level_dim: int(hit[0])})))
                units[name] = str(da.attrs.get("units", ""))
        else:
            channels.append((var, da))
            units[var] = str(da.attrs.get("units", ""))
    rows = []
    for t_i, t in enumerate(times):
        for l_i, lt in enumerate(lead):
            for m_i in member_pos:
                rows.append((t_i, l_i, m_i, t, lt, int(members[m_i])))
    frame = pd.DataFrame(
        {
            "Date": pd.to_datetime([r[3] for r in rows]),
            "LeadTime": np.asarray([r[4] for r in rows], dtype=np.float64),
            "Member": np.asarray([r[5] for r in rows], dtype=np.int64),
        }
    )
    index = [(r[0], r[1], r[2]) for r in rows]
    arrays = [da for _, da in channels]
    has_lead = src.lead_time_dim is not None

    def reader(i: int) -> np.ndarray:
        t_i, l_i, m_i = index[i]
        out = np.empty((len(arrays), y1 - y0, x1 - x0), dtype=np.float32)
        for c, da in enumerate(arrays):
            sel = (m_i, t_i, l_i) if has_lead else (m_i, t_i)
            try:
                out[c] = da[sel][y0:y1, x0:x1].values
            except (OSError, ValueError, RuntimeError) as exc:
                raise DataError(f"could not read {da.name!r} from {where} ({exc})") from None
        if not np.isfinite(out).all():
            raise DataError(
                f"{where}: sample {i} (time {frame['Date'].iloc[i]}, member "
                f"{frame['Member'].iloc[i]}) holds NaN or inf; this recipe needs complete fields"
            )
        return out

    def coord(dim: str, lo: int, hi: int) -> tuple[str, np.ndarray, dict]:
        if dim in ds.coords:
            c = ds[dim]
            return dim, np.asarray(c.values[lo:hi]), dict(c.attrs)
        return dim, np.arange(lo, hi), {}

    return EnsembleSamples(
        variables=[n for n, _ in channels],
        units=units,
        shape=(len(channels), y1 - y0, x1 - x0),
        frame=frame,
        reader=reader,
        coords={"y": coord(ydim, y0, y1), "x": coord(xdim, x0, x1)},
        source=where,
    )


def load_samples(cfg: StyleGANData) -> EnsembleSamples:
    """Every sample the ``data`` section names (before the training selection)."""
    return _from_npy(cfg) if cfg.npy is not None else _from_source(cfg.source)


def _date_mask(frame: pd.DataFrame, dates: DateRangeConfig | None) -> np.ndarray:
    keep = np.ones(len(frame), dtype=bool)
    if dates is None:
        return keep
    d = frame["Date"]
    if dates.start is not None:
        keep &= (d >= pd.Timestamp(dates.start)).to_numpy()
    if dates.end is not None:
        end = pd.Timestamp(dates.end)
        if len(str(dates.end).strip()) <= 10:  # a bare date covers its whole day
            end = end + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
        keep &= (d <= end).to_numpy()
    return keep


def _lead_mask(frame: pd.DataFrame, lead: list[float] | LeadTimeRangeConfig | None) -> np.ndarray:
    values = frame["LeadTime"].to_numpy(dtype=np.float64)
    if lead is None:
        return np.ones(len(frame), dtype=bool)
    if isinstance(lead, LeadTimeRangeConfig):
        k = (values - lead.start) / lead.step
        return (
            (k > -1e-6) & (values < lead.stop - 1e-6 * lead.step) & (np.abs(k - np.round(k)) < 1e-6)
        )
    return np.isclose(values[:, None], np.asarray(lead, dtype=np.float64)[None, :], atol=1e-6).any(
        1
    )


def training_rows(samples: EnsembleSamples, cfg: StyleGANData) -> np.ndarray:
    """Rows of the training selection (``data.dates`` and ``data.lead_times``)."""
    keep = _date_mask(samples.frame, cfg.dates) & _lead_mask(samples.frame, cfg.lead_times)
    if not keep.any():
        raise DataError(
            f"data.dates/data.lead_times select no sample of {samples.source} "
            f"({samples.describe()}); widen them"
        )
    return np.flatnonzero(keep)


def select_samples(
    samples: EnsembleSamples,
    cfg: StyleGANData,
    *,
    times: str = "all",
    lead_times: Sequence[float] | None = None,
    members: Sequence[int] | None = None,
) -> EnsembleSamples:
    """The samples whose Date matches ``times`` (``all``, ``train`` = the training dates,
    ``test`` = the others, ``START/END`` inclusive, or a list ``T1,T2``), whose LeadTime is
    in ``lead_times`` and whose Member is in ``members`` (None: all)."""
    frame = samples.frame
    dates = np.asarray(sorted(set(frame["Date"].to_numpy())), dtype="datetime64[ns]")
    train_dates = set(frame["Date"].to_numpy()[training_rows(samples, cfg)])
    train_idx = np.flatnonzero([d in train_dates for d in dates])
    test_idx = np.flatnonzero([d not in train_dates for d in dates])
    if times == "test" and test_idx.size == 0:
        raise ConfigError(
            "--times test: every date of the data is a training date (data.dates); name the "
            "dates to use (--times START/END)"
        )
    chosen = set(dates[select_times(dates, times, train_idx, test_idx)])
    keep = np.asarray([d in chosen for d in frame["Date"].to_numpy()])
    if lead_times is not None:
        keep &= _lead_mask(frame, list(lead_times))
    if members is not None:
        keep &= frame["Member"].isin([int(m) for m in members]).to_numpy()
    if not keep.any():
        raise DataError(
            f"the selection (times {times!r}, lead times {lead_times}, members {members}) "
            f"matches no sample of {samples.source} ({samples.describe()})"
        )
    return samples.subset(np.flatnonzero(keep))


# --------------------------------------------------------------------------- training set


class TrainingFields(torch.utils.data.Dataset):
    """Normalised training fields: item ``i`` -> ``{"fields": float32 [C, H, W]}``.

    Item ``i`` draws, from ``derive_seed(seed, i)``, one training sample (uniformly), the
    augmentation of ``data.augment`` (e.g. a random roll along the periodic x axis) and
    the transforms' training draws. The ensemble statistics of every training ensemble
    (``data.anomaly``) are computed once, here.
    """

    def __init__(
        self,
        samples: EnsembleSamples,
        transform: FieldTransform,
        cfg: StyleGANData,
        *,
        periodic_x: bool,
        seed: int,
    ) -> None:
        self.samples = samples
        self.transform = transform
        self.cfg = cfg
        self.seed = seed
        self.periodic_x = periodic_x
        self.group_of = np.zeros(len(samples), dtype=np.int64)
        self.group_stats: list[Any] = []
        for g, group in enumerate(samples.ensembles()):
            self.group_of[list(group.rows)] = g
            stats = transform.group_stats(
                samples.stack(group.rows),
                blur=cfg.anomaly_blur,
                floor=cfg.anomaly_floor,
                periodic_x=periodic_x,
            )
            self.group_stats.append(stats)

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(derive_seed(self.seed, int(i)))
        j = int(rng.integers(len(self.samples)))
        x = self.transform.forward(
            self.samples.read(j)[None], self.group_stats[self.group_of[j]], rng
        )[0]
        aug = self.cfg.augment
        if aug.flip or aug.rot90 or aug.permute or aug.roll_axes:
            augmentation = draw_augmentation(rng, aug, x.shape[1:])
            x = augmentation.apply(x, self.transform.variables, aug.vectors)
        return {"fields": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))}


def describe_source(cfg: StyleGANData) -> str:
    if cfg.npy is not None:
        return os.fspath(cfg.npy.path)
    return str(cfg.source.path)
