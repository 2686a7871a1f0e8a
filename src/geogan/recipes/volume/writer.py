"""Stream volumes slab by slab to NetCDF or Zarr with ``member`` and sample dims.

Each output variable has dims ``(member, <sample dim>, z, y, x)`` (the file's own spatial
dim names), float32, chunks of one member x one sample x ``chunk`` voxels along the first
spatial axis x the whole horizontal plane. Slabs arrive in any order (tiled generation
hands over rows of the first axis as they are finished); they are gathered in memory until a
chunk is complete and then written, so the peak memory is a few chunks, whatever the volume.
The file is written under a temporary name and renamed by :meth:`VolumeWriter.close`; an
error (or an incomplete volume) leaves nothing at the final path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

from geogan.core.atomic import atomic_path, check_writable
from geogan.core.errors import DataError
from geogan.inference.writers import StreamingWriter, check_format, global_attrs, quiet_zarr

__all__ = ["VolumeWriter", "merge_templates"]


def merge_templates(templates: Sequence[xr.Dataset], sample_dim: str) -> dict[str, xr.Variable]:
    """Coordinates of several volumes: equal ones once, differing ones stacked along ``sample_dim``."""
    out: dict[str, xr.Variable] = {}
    first = templates[0]
    for name, coord in first.variables.items():
        same = all(name in t.variables and t.variables[name].equals(coord) for t in templates[1:])
        var = coord.to_base_variable().copy(deep=False)
        var.encoding = {}
        if same:
            out[str(name)] = var
        elif all(name in t.variables and t.variables[name].shape == coord.shape for t in templates):
            stacked = xr.Variable(
                (sample_dim, *coord.dims),
                np.stack([np.asarray(t[name].values) for t in templates]),
                coord.attrs,
            )
            out[str(name)] = stacked
    return out


class VolumeWriter(StreamingWriter):
    """Write ``[C, rows, H, W]`` slabs of (member, sample) volumes into one file.

    Args:
        path: ``.nc`` or ``.zarr`` output (refused if it exists unless ``overwrite``).
        fmt: ``"netcdf"`` or ``"zarr"``.
        variables, units: output variables (channel order) and their units.
        n_members: number of members; the ``member`` coordinate is ``0 .. n - 1``.
        sample_dim, samples: name and labels of the volumes' dim (faces, test volumes).
        dims, shape: spatial dim names (z, y, x order) and extents of every volume.
        coords: coordinates (``merge_templates``), e.g. depth, lat/lon per face, crs.
        attrs: global attributes (JSON-encoded when not scalars).
        chunk: voxels along the first spatial axis per chunk.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: Literal["netcdf", "zarr"],
        variables: Sequence[str],
        units: Mapping[str, str],
        n_members: int,
        sample_dim: str,
        samples: Sequence[Any],
        dims: Sequence[str],
        shape: Sequence[int],
        coords: Mapping[str, xr.Variable] | None = None,
        attrs: Mapping[str, Any] | None = None,
        chunk: int = 16,
        overwrite: bool = False,
    ) -> None:
        check_format(fmt)
        self.path = check_writable(Path(path), overwrite)
        self.fmt = fmt
        self.variables = list(variables)
        self.n_members, self.n_samples = int(n_members), len(samples)
        self.shape = tuple(int(n) for n in shape)
        self.chunk = max(1, min(int(chunk), self.shape[0]))
        self.all_dims = ("member", sample_dim, *dims)
        self._buffers: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._done = np.zeros((self.n_members, self.n_samples, self._n_chunks), dtype=bool)
        self._stack = ExitStack()
        self._nc: Any = None
        self._closed = False
        ds = xr.Dataset(
            coords={
                "member": ("member", np.arange(self.n_members, dtype=np.int32)),
                sample_dim: (sample_dim, np.asarray(samples)),
                **dict(coords or {}),
            }
        )
        ds["member"].attrs = {
            "long_name": "ensemble member",
            "seed_rule": "derive_seed(seed, member)",
        }
        ds.attrs = global_attrs(attrs, title="geogan volume ensemble")
        full = (self.n_members, self.n_samples, *self.shape)
        chunks = (1, 1, self.chunk, *self.shape[1:])
        try:
            self._tmp = self._stack.enter_context(atomic_path(self.path, is_dir=fmt == "zarr"))
            if fmt == "zarr":
                import dask.array as da

                for name in self.variables:
                    ds[name] = xr.Variable(
                        self.all_dims,
                        da.full(full, np.nan, dtype=np.float32, chunks=chunks),
                        {"units": units.get(name, "1"), "long_name": name},
                    )
                enc = {n: {"chunks": chunks} for n in self.variables}
                with quiet_zarr():
                    ds.to_zarr(self._tmp, mode="w", encoding=enc, compute=False)
                import zarr

                self._group = zarr.open_group(str(self._tmp), mode="r+")
            else:
                import netCDF4

                enc = {n: {"_FillValue": None} for n, v in ds.coords.items() if v.dtype.kind == "f"}
                ds.to_netcdf(self._tmp, engine="netcdf4", format="NETCDF4", encoding=enc)
                self._nc = netCDF4.Dataset(self._tmp, "a")
                for d, n in zip(self.all_dims, full):
                    if d not in self._nc.dimensions:  # dims no coordinate defines
                        self._nc.createDimension(d, n)
                for name in self.variables:
                    v = self._nc.createVariable(
                        name,
                        "f4",
                        self.all_dims,
                        zlib=True,
                        complevel=4,
                        shuffle=True,
                        chunksizes=chunks,
                        fill_value=np.float32(np.nan),
                    )
                    v.units = units.get(name, "1")
                    v.long_name = name
        except Exception as exc:
            raise self._fail(exc) from None
        except BaseException:
            self._abort()
            raise

    @property
    def _n_chunks(self) -> int:
        return -(-self.shape[0] // self.chunk)

    def _chunk_rows(self, j: int) -> tuple[int, int]:
        return j * self.chunk, min((j + 1) * self.chunk, self.shape[0])

    def write(self, member: int, sample: int, start: int, block: np.ndarray) -> None:
        """Rows ``start : start + block.shape[1]`` of the first spatial axis of one volume;
        ``block [C, rows, H, W]`` in physical units (NaN where invalid)."""
        block = np.asarray(block, dtype=np.float32)
        expect = (len(self.variables), *self.shape[1:])
        if (block.shape[0], *block.shape[2:]) != expect or start < 0:
            raise DataError(f"slab of shape {block.shape} at {start} does not fit {self.shape}")
        stop = start + block.shape[1]
        if stop > self.shape[0]:
            raise DataError(f"slab rows {start}:{stop} exceed the volume's {self.shape[0]}")
        for j in range(start // self.chunk, -(-stop // self.chunk)):
            a, b = self._chunk_rows(j)
            lo, hi = max(a, start), min(b, stop)
            key = (member, sample, j)
            if key not in self._buffers:
                self._buffers[key] = (
                    np.full((len(self.variables), b - a, *self.shape[1:]), np.nan, np.float32),
                    np.zeros(b - a, dtype=bool),
                )
            buf, filled = self._buffers[key]
            buf[:, lo - a : hi - a] = block[:, lo - start : hi - start]
            filled[lo - a : hi - a] = True
            if filled.all():
                self._flush(key)

    def _flush(self, key: tuple[int, int, int]) -> None:
        member, sample, j = key
        buf, _ = self._buffers.pop(key)
        a, b = self._chunk_rows(j)
        try:
            for c, name in enumerate(self.variables):
                if self._nc is not None:
                    self._nc[name][member, sample, a:b] = buf[c]
                else:
                    self._group[name][member, sample, a:b] = buf[c]
        except Exception as exc:
            raise self._fail(exc) from None
        self._done[member, sample, j] = True

    def close(self) -> Path:
        """Check that every voxel of every volume was written, then rename onto ``path``."""
        if self._closed:
            return self.path
        if self._buffers or not self._done.all():
            missing = int((~self._done).sum())
            self._abort()
            raise DataError(
                f"{self.path}: {missing} chunks were never completely written; nothing was saved"
            )
        try:
            if self._nc is not None:
                nc, self._nc = self._nc, None
                nc.close()
            else:
                import zarr

                with quiet_zarr():
                    zarr.consolidate_metadata(str(self._tmp))
        except Exception as exc:
            raise self._fail(exc) from None
        self._closed = True
        self._stack.close()
        return self.path

    def _on_abort(self) -> None:
        self._buffers.clear()
