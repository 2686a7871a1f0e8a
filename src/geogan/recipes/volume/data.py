"""Volumes for recipe 2: generated fields or file volumes, coarsening, crops, the training dataset.

A :class:`VolumeSet` holds whole volumes in physical units, ``data [C, D, H, W]`` float32 per
volume with a validity mask ``[D, H, W]`` (False where any variable is NaN or the file's mask
variable is 0), the variables' names and units, and an xarray template of each volume's grid
(its spatial dims and coordinates, for writing outputs). :func:`load_volumes` builds it from
``data`` (synthetic: :mod:`geogan.data.synthetic`; file: NetCDF/Zarr/GRIB with a sample dim
such as ``face``, dims fixed by ``select`` and train/test index ranges).

The coarse input is the block mean of the valid truth voxels (:func:`coarsen`); a coarse
cell with no valid voxel is missing. :class:`VolumeDataset` turns a set into training items
(a pure function of ``(seed, index)``)::

    {"input":  [C (+1), *(crop / factor + 2 * pad)]   coarse, normalised (+ valid fraction)
     "target": [C, *crop]                              truth, normalised, 0 where invalid
     "mask":   [1, *crop]}                             1 = valid truth voxel
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from geogan.core.errors import ConfigError, DataError
from geogan.core.seeding import derive_seed
from geogan.data.augment import draw_augmentation
from geogan.data.normalisation import Normalisation
from geogan.data.sources import reader_for
from geogan.data.synthetic import lognormal_field, mantle_like
from geogan.recipes.volume.config import AXES, VolumeData, per_axis

__all__ = [
    "TEST_SEED_OFFSET",
    "Volume",
    "VolumeDataset",
    "VolumeSet",
    "check_periodic_coordinates",
    "coarsen",
    "load_volumes",
    "synthetic_volume",
]

TEST_SEED_OFFSET = 2**40
"""Held-out synthetic volume ``i`` uses ``derive_seed(seed, TEST_SEED_OFFSET + i)``: never a
training seed (those are ``derive_seed(seed, i)`` with ``i < volumes``)."""

_SPEED = "voxel per unit time"
SYNTHETIC_UNITS = {"T": "1", "u": _SPEED, "v": _SPEED, "w": _SPEED, "rho": "1"}
"""Units of the synthetic variables (non-dimensional; velocities in voxels per unit time)."""


@dataclasses.dataclass
class Volume:
    """One volume: ``data [C, D, H, W]`` (physical units, float32, NaN where invalid),
    ``valid [D, H, W]`` bool, and ``template``: an xarray Dataset holding its grid
    (spatial dims and their coordinates, 2D lat/lon, grid mapping), no data."""

    data: np.ndarray
    valid: np.ndarray
    template: xr.Dataset
    label: Any = None


@dataclasses.dataclass
class VolumeSet:
    """Volumes sharing variables (``variables``, ``units``) and spatial dim names ``dims``."""

    volumes: list[Volume]
    variables: list[str]
    units: dict[str, str]
    dims: tuple[str, str, str]
    sample_dim: str = "sample"
    note: str = ""

    @property
    def has_missing(self) -> bool:
        return any(not v.valid.all() for v in self.volumes)

    def shape(self) -> tuple[int, int, int]:
        return tuple(self.volumes[0].data.shape[1:])  # type: ignore[return-value]


# --------------------------------------------------------------------------- coarsening


def coarsen(
    fine: np.ndarray, valid: np.ndarray, factor: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Block means of valid voxels: ``fine [C, *S]``, ``valid [*S]`` -> ``([C, *s], frac [*s])``.

    ``S = s * factor`` per axis (a DataError otherwise). ``frac`` is the valid share of each
    block; blocks without a valid voxel are NaN in the result.
    """
    fine = np.asarray(fine)
    shape = fine.shape[1:]
    if any(n % f for n, f in zip(shape, factor)):
        raise DataError(
            f"volume extents {tuple(shape)} are not multiples of the factor {tuple(factor)}; "
            "crop the volume (data.crop) to a multiple of the factor"
        )
    coarse_shape = tuple(n // f for n, f in zip(shape, factor))
    split = [fine.shape[0]]
    for c, f in zip(coarse_shape, factor):
        split += [c, f]
    w = valid.astype(np.float64).reshape(split[1:])
    x = np.where(valid, fine, 0.0).astype(np.float64).reshape(split)
    block_axes = tuple(range(2, 2 * len(shape) + 1, 2))
    count = w.sum(axis=tuple(a - 1 for a in block_axes))
    total = x.sum(axis=block_axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    frac = count / math.prod(factor)
    return mean.astype(np.float32), frac.astype(np.float32)


# --------------------------------------------------------------------------- synthetic


def synthetic_volume(cfg: VolumeData, seed: int, size: Sequence[int]) -> np.ndarray:
    """One generated volume ``[C, D, H, W]`` for ``cfg.synthetic`` (float32, physical units)."""
    s = cfg.synthetic
    if s.kind == "lognormal":
        return lognormal_field(size, s.slope, seed=seed, sigma=s.sigma)[None]
    fields = mantle_like(
        size,
        seed=seed,
        velocity_slope=s.slope,
        temperature_slope=s.temperature_slope,
        correlation=s.correlation,
        advect_steps=s.advect_steps,
    )
    return np.stack([fields[v] for v in s.variables()])


@functools.lru_cache(maxsize=4)
def _synthetic_set(key: str, split: str) -> VolumeSet:
    cfg = VolumeData.model_validate(json.loads(key))
    s = cfg.synthetic
    if split == "train":
        size, n, offset = per_axis(s.size, "size"), s.volumes, 0
    else:
        size, n, offset = per_axis(s.test_size or s.size, "size"), s.test_volumes, TEST_SEED_OFFSET
    variables = s.variables()
    vols = []
    coords = {d: (d, np.arange(k, dtype=np.float32)) for d, k in zip(AXES, size)}
    for i in range(n):
        data = synthetic_volume(cfg, derive_seed(s.seed, offset + i), size)
        template = xr.Dataset(coords=coords)
        vols.append(Volume(data, np.ones(size, dtype=bool), template, label=i))
    units = {v: SYNTHETIC_UNITS.get(v, "1") for v in variables}
    note = (
        f"synthetic {s.kind} fields ({split}: {n} volumes of {size} voxels; seeds "
        f"{'never used in training' if split == 'test' else 'of training'})"
    )
    return VolumeSet(vols, variables, units, AXES, "sample", note)


# --------------------------------------------------------------------------- files


def _is_longitude(name: str, coord: xr.DataArray) -> bool:
    units = str(coord.attrs.get("units", "")).lower()
    std = str(coord.attrs.get("standard_name", "")).lower()
    return (
        name.lower() in ("lon", "longitude", "x_lon")
        or std == "longitude"
        or units in ("degrees_east", "degree_east", "degrees_e")
    )


def check_periodic_coordinates(ds: xr.Dataset, dim: str, axis: str, path: str) -> None:
    """DataError unless the 1D coordinate of periodic ``dim`` is evenly spaced round the circle.

    A longitude (by name, standard name or units) must also close the circle:
    ``n * spacing = 360`` degrees. A dim without a 1D coordinate is taken as evenly spaced.
    """
    if dim not in ds.coords or ds[dim].ndim != 1:
        return
    values = np.asarray(ds[dim].values, dtype=np.float64)
    n = values.size
    if n < 2:
        return
    steps = np.diff(values)
    step = float(np.mean(steps))
    if step == 0 or not np.allclose(steps, step, rtol=1e-3, atol=0):
        raise DataError(
            f"data.periodic_axes has {axis} ({dim!r} in {path}) but its coordinates are not "
            f"evenly spaced (steps {steps.min():g} to {steps.max():g}); remove {axis} from "
            "data.periodic_axes or regrid to an even spacing"
        )
    if _is_longitude(dim, ds[dim]):
        span = abs(step) * n
        if abs(span - 360.0) > 1e-3 * abs(step) * n:
            raise DataError(
                f"data.periodic_axes has {axis} ({dim!r} in {path}) but {n} longitudes {abs(step):g} "
                f"degrees apart span {span:g} degrees, not the 360 round the circle; remove {axis} "
                "from data.periodic_axes (a regional grid is not periodic)"
            )


def _open(path: str) -> xr.Dataset:
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"data.file.path {path} not found; check the path")
    return reader_for(p)(p)


def check_vectors(cfg: VolumeData, available: Sequence[str], where: str) -> None:
    """ConfigError/DataError for vector components that are not variables of the data."""
    variables = cfg.variables()
    for vec in cfg.augment.vectors:
        missing = [c for c in vec.components if c not in available]
        if missing:
            raise DataError(
                f"data.augment.vectors names components {missing} that are not in {where} "
                f"(variables: {', '.join(available)}); fix the names in data.augment.vectors"
            )
        unused = [c for c in vec.components if c not in variables]
        if unused:
            raise ConfigError(
                f"data.augment.vectors names components {unused} that are not among "
                f"data.file.variables {variables}; add them or remove the vector"
            )


def _file_set(cfg: VolumeData, split: str) -> VolumeSet:
    f = cfg.file
    assert f is not None
    ds = _open(f.path)
    try:
        available = [str(v) for v in ds.data_vars]
        missing = [v for v in f.variables if v not in ds.data_vars]
        if missing:
            raise DataError(
                f"variables {missing} are not in {f.path} (it has {', '.join(available)}); "
                "fix data.file.variables"
            )
        check_vectors(cfg, available, f.path)
        first = ds[f.variables[0]]
        dims = tuple(f.dims) if f.dims else tuple(first.dims[-3:])
        if len(dims) != 3 or any(d not in first.dims for d in dims):
            raise DataError(
                f"{f.variables[0]!r} in {f.path} has dims {first.dims}; data.file.dims must name "
                "its 3 spatial dims in the order z, y, x"
            )
        for axis, dim in zip(AXES, dims):
            if axis in cfg.periodic_axes:
                check_periodic_coordinates(ds, dim, axis, f.path)
        region = dict(f.train if split == "train" else f.test)
        sel = {d: int(i) for d, i in f.select.items()}
        for d, i in sel.items():
            if d not in ds.dims:
                raise DataError(f"data.file.select names {d!r}, not a dim of {f.path}")
            if not 0 <= i < ds.sizes[d]:
                raise DataError(f"data.file.select {d}={i} is outside 0..{ds.sizes[d] - 1}")
        for d, (a, b) in region.items():
            if d not in ds.dims:
                raise DataError(
                    f"data.file.{split} names {d!r}, not a dim of {f.path} ({', '.join(ds.dims)})"
                )
            if b > ds.sizes[d]:
                raise DataError(
                    f"data.file.{split} range {d}=[{a}, {b}) is outside its {ds.sizes[d]} entries"
                )
        ds = ds.isel({**sel, **{d: slice(a, b) for d, (a, b) in region.items()}})
        sample_dim = f.sample_dim
        if sample_dim is not None and sample_dim not in ds.dims:
            raise DataError(f"data.file.sample_dim {sample_dim!r} is not a dim of {f.path}")
        samples = range(ds.sizes[sample_dim]) if sample_dim else [None]
        units = {v: str(ds[v].attrs.get("units", "1")) for v in f.variables}
        vols = []
        for s in samples:
            one = ds.isel({sample_dim: s}) if sample_dim else ds
            arrays = []
            for v in f.variables:
                da = one[v]
                extra = [d for d in da.dims if d not in dims]
                if any(da.sizes[d] != 1 for d in extra):
                    raise DataError(
                        f"{v!r} has dims {da.dims}; fix all but {dims} with data.file.select "
                        "or name the sample dim in data.file.sample_dim"
                    )
                da = da.isel({d: 0 for d in extra}).transpose(*dims)
                arrays.append(np.asarray(da.values, dtype=np.float32))
            data = np.stack(arrays)
            valid = np.isfinite(data).all(axis=0)
            if f.mask_variable:
                if f.mask_variable not in one.variables:
                    raise DataError(
                        f"data.file.mask_variable {f.mask_variable!r} is not in {f.path}"
                    )
                m = one[f.mask_variable]
                m = m.isel({d: 0 for d in m.dims if d not in dims}).transpose(*dims)
                valid &= np.asarray(m.values) > 0
            data[:, ~valid] = np.nan
            coords = {
                name: c.variable
                for name, c in one.coords.items()
                if set(c.dims) <= set(dims) and name not in (sample_dim,)
            }
            template = xr.Dataset(coords=coords)
            if "crs" in ds.variables and "crs" not in template.variables:
                template["crs"] = ds["crs"].variable
            label = int(one[sample_dim].values) if sample_dim and sample_dim in one.coords else s
            vols.append(Volume(data, valid, template, label=label))
    finally:
        ds.close()
    note = f"{f.path}, {split} region {region or 'all'}" + (
        f", samples along {sample_dim}" if sample_dim else ""
    )
    return VolumeSet(vols, list(f.variables), units, dims, sample_dim or "sample", note)


def load_volumes(cfg: VolumeData, split: str = "train") -> VolumeSet:
    """The ``train`` or ``test`` volumes of ``cfg`` (synthetic volumes are cached per process)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if cfg.source == "synthetic":
        key = json.dumps(
            {"source": "synthetic", "synthetic": cfg.synthetic.model_dump(mode="json")},
            sort_keys=True,
        )
        out = _synthetic_set(key, split)
        check_vectors(cfg, out.variables, "the synthetic fields")
        return out
    return _file_set(cfg, split)


def compute_normalisation(cfg: VolumeData, volumes: VolumeSet) -> Normalisation:
    """Statistics (after each variable's transform) over the valid voxels of ``volumes``."""
    chunks = {
        v: [vol.data[c][vol.valid] for vol in volumes.volumes]
        for c, v in enumerate(volumes.variables)
    }
    return Normalisation.compute(chunks, cfg.transforms)


# --------------------------------------------------------------------------- dataset


def _crop_geometry(
    cfg: VolumeData, shape: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(crop, pad)`` per axis in fine voxels; DataError when a crop does not fit."""
    factor = cfg.factors()
    crop = cfg.crops() or shape
    periodic = cfg.periodic()
    pads = []
    for name, c, n, f, per in zip(AXES, crop, shape, factor, periodic):
        if c > n:
            raise DataError(
                f"the volume ({shape[0]}, {shape[1]}, {shape[2]}) is smaller than a training "
                f"crop {tuple(crop)} along {name}; reduce data.crop"
            )
        if n % f and c == n:
            raise DataError(
                f"the volume's {name} extent {n} is not a multiple of the factor {f}; set "
                "data.crop to a multiple of it"
            )
        p = cfg.input_pad * f
        if not per and c + 2 * p > n:
            # no context exists beyond the edge: the networks pad there, as at inference
            p = 0
        pads.append(p)
    return tuple(crop), tuple(pads)


class VolumeDataset(torch.utils.data.Dataset):
    """Endless training crops of a :class:`VolumeSet`; item ``i`` depends on ``(seed, i)`` only.

    Per item: a volume, a crop position (anywhere on periodic axes, which wrap; on the
    others so that crop and context fit), the augmentation of ``cfg.augment`` (a roll moves
    the crop round the periodic volume; flips and axis permutations transform the vector
    components), coarsening, normalisation. See the module docstring for the item layout.
    """

    def __init__(
        self, cfg: VolumeData, volumes: VolumeSet, norm: Normalisation | Any, seed: int
    ) -> None:
        """``norm``: a :class:`Normalisation` or a :class:`~geogan.recipes.volume.levels.
        VolumeNormaliser` (per-level statistics; given the crop's level indices)."""
        self.cfg, self.volumes, self.norm, self.seed = cfg, volumes, norm, int(seed)
        self.per_level = bool(getattr(norm, "profile", None) is not None)
        self.factor = cfg.factors()
        self.periodic = cfg.periodic()
        shapes = {v.data.shape[1:] for v in volumes.volumes}
        self.geometry = {s: _crop_geometry(cfg, s) for s in shapes}
        self.with_mask = volumes.has_missing
        self.variables = volumes.variables

    def __len__(self) -> int:
        return 2**62

    def input_channels(self) -> int:
        return len(self.variables) + (1 if self.with_mask else 0)

    def _indices(self, start: int, length: int, size: int, periodic: bool) -> np.ndarray:
        idx = start + np.arange(length)
        return idx % size if periodic else idx

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(derive_seed(self.seed, int(i)))
        vol = self.volumes.volumes[int(rng.integers(len(self.volumes.volumes)))]
        shape = vol.data.shape[1:]
        crop, pad = self.geometry[shape]
        region = tuple(c + 2 * p for c, p in zip(crop, pad))
        starts = []
        for r, n, per in zip(region, shape, self.periodic):
            starts.append(int(rng.integers(n)) if per else int(rng.integers(n - r + 1)))
        aug = draw_augmentation(rng, self.cfg.augment, region, roll_multiple=1)
        if aug.shifts is not None:  # a roll of the periodic volume = a shifted crop
            starts = [s - d for s, d in zip(starts, aug.shifts)]
            aug = dataclasses.replace(aug, shifts=None)
        index = [
            self._indices(s, r, n, per)
            for s, r, n, per in zip(starts, region, shape, self.periodic)
        ]
        fine = vol.data[np.ix_(range(vol.data.shape[0]), *index)]
        valid = vol.valid[np.ix_(*index)]
        fine = aug.apply(fine, channels=self.variables, vectors=self.cfg.augment.vectors)
        valid = aug.apply(valid[None])[0]
        coarse, frac = coarsen(fine, valid, self.factor)
        core = tuple(slice(p, p + c) for p, c in zip(pad, crop))
        target = fine[(slice(None), *core)]
        mask = valid[core]
        if self.per_level:  # factor 1 along z: coarse and fine share the crop's levels
            levels = index[0][pad[0] : pad[0] + crop[0]]
            inp = self.norm.forward_stack(coarse, self.variables, 0, levels=index[0])
            tgt = self.norm.forward_stack(target, self.variables, 0, levels=levels)
        else:
            inp = self.norm.forward_stack(coarse, self.variables, channel_axis=0)
            tgt = self.norm.forward_stack(target, self.variables, channel_axis=0)
        inp = np.where(np.isfinite(inp), inp, 0.0).astype(np.float32)
        tgt = np.where(mask[None], tgt, 0.0).astype(np.float32)
        if self.with_mask:
            inp = np.concatenate([inp, frac[None]], axis=0)
        return {
            "input": torch.from_numpy(np.ascontiguousarray(inp)),
            "target": torch.from_numpy(np.ascontiguousarray(tgt)),
            "mask": torch.from_numpy(np.ascontiguousarray(mask[None].astype(np.float32))),
        }

    def pads_coarse(self) -> tuple[int, ...]:
        """Context per axis (coarse voxels) of the items (the same for every volume shape)."""
        pads = {tuple(p // f for p, f in zip(g[1], self.factor)) for g in self.geometry.values()}
        if len(pads) != 1:
            raise DataError(
                f"volumes of different shapes give different crop contexts {sorted(pads)}; use "
                "volumes of one shape or a data.crop that fits all with its context"
            )
        return next(iter(pads))
