"""Ensemble outputs as xarray Datasets, written as NetCDF or Zarr.

An output Dataset has one variable per output channel with dims
``(member, time, *spatial)`` where ``spatial`` are the spatial dims of the
truth grid (``(y, x)``, ``(lat, lon)`` or 3D), the grid's coordinates (1D and
2D lat/lon), its grid-mapping variable (``crs``), a ``member`` coordinate and
CF attributes. Files are written atomically (temporary name, then rename).

:class:`EnsembleWriter` streams: it preallocates the file, writes one time at a
time (memory for one time only) and renames on ``close()``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr

import geogan
from geogan.core.atomic import atomic_path, check_writable, output_error
from geogan.core.errors import DataError

__all__ = [
    "EnsembleWriter",
    "StreamingWriter",
    "check_format",
    "ensemble_to_dataset",
    "global_attrs",
    "quiet_zarr",
    "spatial_dims",
    "write_dataset",
]

Format = Literal["netcdf", "zarr"]
_NON_SPATIAL = ("member", "time")


def spatial_dims(template: xr.Dataset, ndim: int | None = None) -> tuple[str, ...]:
    """The spatial dims of ``template`` in order (e.g. ``("y", "x")``).

    Taken from the first data variable with spatial dims (so the order of the
    truth variables is kept), else from the template's dims; ``member``,
    ``time`` and bounds dims (``bnds``/``nv``) are not spatial.
    """
    skip = set(_NON_SPATIAL) | {"bnds", "bounds", "nv", "nbnd"}
    dims: tuple[str, ...] = ()
    for var in template.data_vars.values():
        cand = tuple(d for d in var.dims if d not in skip)
        if len(cand) >= 2 and (ndim is None or len(cand) == ndim):
            dims = cand
            break
    if not dims:
        dims = tuple(d for d in template.dims if d not in skip)
    if ndim is not None and len(dims) != ndim:
        raise DataError(
            f"template has spatial dims {dims}, but the ensemble has {ndim} spatial dims; "
            "pass a template on the output grid"
        )
    return dims


def _netcdf_attr(value: Any) -> Any:
    """A value NetCDF/Zarr can store as an attribute (bools as ints, containers as JSON)."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, str | int | float | np.integer | np.floating):
        return value
    if isinstance(value, Path):
        return str(value)
    return json.dumps(value, default=str)


def global_attrs(attrs: Mapping[str, Any] | None, title: str = "geogan ensemble") -> dict[str, Any]:
    """CF global attributes of a geogan output plus ``attrs`` (None dropped, containers JSON)."""
    out: dict[str, Any] = {
        "Conventions": "CF-1.8",
        "title": title,
        "geogan_version": geogan.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for key, value in (attrs or {}).items():
        if value is not None:  # NetCDF cannot store None: leave the attribute out
            out[key] = _netcdf_attr(value)
    return out


def _without_encoding(var: xr.Variable) -> xr.Variable:
    """A shallow copy without the on-disk encoding of the file the template came from."""
    out = var.copy(deep=False)
    out.encoding = {}
    return out


def _build_dataset(
    data: Mapping[str, Any],
    template: xr.Dataset,
    var_names: Sequence[str],
    units: Mapping[str, str],
    n_members: int,
    times: Any,
    attrs: Mapping[str, Any] | None,
    long_names: Mapping[str, str] | None,
    member_offset: int,
    ndim: int,
) -> xr.Dataset:
    """Dataset from ``data[name]`` arrays ``[M, T, *S]`` (numpy or dask)."""
    dims = spatial_dims(template, ndim)
    missing = [n for n in var_names if n not in units]
    if missing:
        raise DataError(f"no units given for output variables {missing}; add them to `units`")
    if times is None:
        if "time" not in template.coords and "time" not in template:
            raise DataError("template has no `time` coordinate; pass `times` explicitly")
        time_values = template["time"].values
    else:
        time_values = np.asarray(times)
    time_values = np.atleast_1d(time_values)
    time_attrs = dict(template["time"].attrs) if "time" in template.variables else {}

    coords: dict[str, Any] = {
        "member": ("member", np.arange(member_offset, member_offset + n_members, dtype=np.int32)),
        "time": ("time", time_values, time_attrs),
    }
    for name, coord in template.coords.items():
        if name in coords:
            continue
        if set(coord.dims) <= set(dims):  # grid coordinates: 1D y/x, 2D lat/lon, scalars
            coords[name] = _without_encoding(coord.variable)
    # 2D lat/lon stored as data variables in the source are coordinates of the output.
    for name, var in template.data_vars.items():
        is_latlon = name in ("lat", "lon", "latitude", "longitude") or var.attrs.get(
            "standard_name"
        ) in ("latitude", "longitude")
        if is_latlon and var.ndim >= 1 and set(var.dims) <= set(dims) and name not in coords:
            coords[name] = _without_encoding(var.variable)
    ds = xr.Dataset(coords=coords)
    ds["member"].attrs = {"long_name": "ensemble member", "seed_rule": "derive_seed(seed, member)"}

    # Scalar data variables are grid mappings (crs) and the like: keep them.
    grid_mapping = None
    for name, var in template.data_vars.items():
        if var.ndim == 0:
            ds[name] = _without_encoding(var.variable)
    for var in template.data_vars.values():
        gm = var.attrs.get("grid_mapping") or var.encoding.get("grid_mapping")
        if gm and gm in ds:
            grid_mapping = gm
            break
    if grid_mapping is None and "crs" in ds:
        grid_mapping = "crs"

    for name in var_names:
        arr = data[name]
        expected = (n_members, len(time_values), *(template.sizes[d] for d in dims))
        if tuple(arr.shape) != expected:
            raise DataError(
                f"output {name!r} has shape {tuple(arr.shape)}; expected {expected} "
                f"(member, time, {', '.join(dims)})"
            )
        var_attrs = {"units": units[name], "long_name": (long_names or {}).get(name, name)}
        if grid_mapping is not None:
            var_attrs["grid_mapping"] = grid_mapping
        ds[name] = xr.Variable(("member", "time", *dims), arr, var_attrs)
    ds.attrs = global_attrs(attrs)
    return ds


def ensemble_to_dataset(
    members: np.ndarray,
    template: xr.Dataset,
    var_names: Sequence[str],
    units: Mapping[str, str],
    attrs: Mapping[str, Any] | None = None,
    *,
    times: Any = None,
    long_names: Mapping[str, str] | None = None,
    member_offset: int = 0,
) -> xr.Dataset:
    """Wrap ``members [M, T, C, *S]`` (physical units) into a Dataset on the template's grid.

    ``template`` holds the truth grid: its spatial coords (1D ``y``/``x`` or
    ``lat``/``lon``, optional 2D ``lat``/``lon``), scalar grid-mapping
    variables (``crs``), and ``time`` values (or pass ``times``). Variables
    ``var_names[c] = members[:, :, c]`` get dims ``(member, time, *spatial)``,
    float32, attrs ``units``/``long_name`` (default: the name) and
    ``grid_mapping``. ``member`` runs ``member_offset .. member_offset + M - 1``.
    Global attrs: ``geogan_version``, ``created`` (UTC, unless given), and
    ``attrs`` (e.g. seed, checkpoint; non-scalar values stored as JSON).
    """
    members = np.asarray(members)
    if members.ndim < 4:
        raise DataError(f"members must be [M, T, C, *S], got shape {members.shape}")
    if members.shape[2] != len(var_names):
        raise DataError(
            f"members has {members.shape[2]} channels but {len(var_names)} var_names {list(var_names)}"
        )
    data = {
        name: members[:, :, c].astype(np.float32, copy=False) for c, name in enumerate(var_names)
    }
    return _build_dataset(
        data,
        template,
        var_names,
        units,
        members.shape[0],
        times,
        attrs,
        long_names,
        member_offset,
        members.ndim - 3,
    )


def _time_encoding(time: xr.Variable) -> dict[str, Any]:
    """Explicit CF encoding (units, calendar, dtype) for a time coordinate.

    Fixed from the full time axis so that a file written one time at a time (whose
    time axis starts empty) is encoded exactly like one written at once.
    """
    if time.size == 0:
        return {}
    # datetime64, or cftime dates of a non-standard calendar (noleap, 360_day, ...), which
    # keep their calendar: encoded with it, never converted to the standard calendar
    is_cftime = time.dtype == object and hasattr(np.asarray(time.values).flat[0], "calendar")
    if time.dtype.kind not in "mM" and not is_cftime:
        return {}
    encoded = xr.conventions.encode_cf_variable(time.to_base_variable(), name="time")
    enc: dict[str, Any] = {"units": encoded.attrs["units"], "dtype": encoded.dtype}
    if "calendar" in encoded.attrs:
        enc["calendar"] = encoded.attrs["calendar"]
    return enc


def _encoding(
    ds: xr.Dataset, fmt: Format, time: xr.Variable | None = None
) -> dict[str, dict[str, Any]]:
    """Chunks of one member x one time for ensemble variables; zlib for NetCDF.

    ``time``: the full time axis (default ``ds["time"]``) that fixes the time units.
    """
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.coords.items():
        if np.issubdtype(var.dtype, np.floating):
            # CF: coordinates have no missing values, so no _FillValue attribute.
            enc[str(name)] = {"_FillValue": None}
    if "time" in ds.coords:
        enc["time"] = _time_encoding(time if time is not None else ds["time"].variable)
    for name, var in ds.data_vars.items():
        if var.ndim == 0:
            continue
        e: dict[str, Any] = {}
        if var.dims[:2] == ("member", "time"):
            chunks = (1, 1, *var.shape[2:])
            e["chunksizes" if fmt == "netcdf" else "chunks"] = chunks
        if fmt == "netcdf":
            e.update(zlib=True, complevel=4, shuffle=True)
        enc[str(name)] = e
    return enc


def check_format(fmt: str) -> Format:
    """``fmt`` if it is "netcdf" or "zarr" (DataError otherwise)."""
    if fmt not in ("netcdf", "zarr"):
        raise DataError(f"output format must be 'netcdf' or 'zarr', got {fmt!r}")
    return fmt  # type: ignore[return-value]


@contextlib.contextmanager
def quiet_zarr() -> Iterator[None]:
    with warnings.catch_warnings():
        # Consolidated metadata is a zarr-python extension to format 3; we keep it
        # because it makes opening a store on object storage one request.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        yield


def _write(
    ds: xr.Dataset,
    target: Path,
    fmt: Format,
    compute: bool = True,
    time: xr.Variable | None = None,
) -> Any:
    encoding = _encoding(ds, fmt, time)
    t_enc = encoding.get("time") or {}
    if "time" in ds.coords and ds.sizes.get("time") == 0 and ds["time"].dtype == object and t_enc:
        # an empty cftime axis carries no dates for xarray to encode: write it pre-encoded
        encoding.pop("time")
        attrs = {**ds["time"].attrs, "units": t_enc["units"]}
        if "calendar" in t_enc:
            attrs["calendar"] = t_enc["calendar"]
        ds = ds.assign_coords(time=xr.Variable("time", np.zeros(0, t_enc["dtype"]), attrs))
    if fmt == "netcdf":
        # An unlimited time axis lets the streaming writer grow the file one time at a
        # time without preallocating (and compressing) placeholder chunks.
        unlimited = ("time",) if "time" in ds.dims else None
        return ds.to_netcdf(
            target,
            engine="netcdf4",
            format="NETCDF4",
            encoding=encoding,
            unlimited_dims=unlimited,
            compute=compute,
        )
    with quiet_zarr():
        return ds.to_zarr(target, mode="w", encoding=encoding, compute=compute)


def write_dataset(
    ds: xr.Dataset, path: str | os.PathLike, format: Format = "netcdf", overwrite: bool = False
) -> Path:
    """Write ``ds`` to ``path`` as NetCDF4 (zlib, chunks of 1 member x 1 time) or Zarr.

    Refuses an existing ``path`` unless ``overwrite`` (``OutputExistsError``);
    writes to a temporary name beside it and renames, so ``path`` never holds
    a partial file.
    """
    fmt = check_format(format)
    path = check_writable(path, overwrite)
    try:
        with atomic_path(path, is_dir=fmt == "zarr") as tmp:
            _write(ds, tmp, fmt)
    except Exception as exc:
        raise output_error(exc, path) from None
    return path


class StreamingWriter:
    """Lifecycle shared by the streaming writers: a temporary file (``atomic_path`` entered on
    ``self._stack``) that :meth:`close` renames onto ``self.path`` and any failure removes.

    Subclasses set ``path``, ``_stack``, ``_nc`` (an open netCDF4 Dataset or None) and
    ``_closed`` in ``__init__`` and implement ``close``; :meth:`_on_abort` drops their own
    state (e.g. buffered slabs).
    """

    path: Path
    _stack: ExitStack
    _nc: Any
    _closed: bool

    def _on_abort(self) -> None:
        """Drop the subclass's buffered state (called by :meth:`_abort`)."""

    def _fail(self, exc: Exception) -> Exception:
        """Abort after a failed write; returns what to raise (an OutputWriteError for a full disk)."""
        failure = output_error(exc, self.path)  # before the temporary file is removed
        self._abort()
        return failure

    def _abort(self) -> None:
        """Drop the temporary file; nothing appears at ``path``."""
        self._closed = True
        try:
            if self._nc is not None:
                self._nc.close()
        finally:
            self._nc = None
            self._on_abort()
            # Exiting atomic_path with an exception removes its temporary folder.
            err = RuntimeError(f"{type(self).__name__} aborted")
            self._stack.__exit__(type(err), err, None)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
        else:
            self.close()


class EnsembleWriter(StreamingWriter):
    """Stream an ensemble to NetCDF/Zarr one time at a time (memory for one time only).

    ``EnsembleWriter(path, template, var_names, units, n_members, times, format)``
    creates, under a temporary name, a file with the same layout, coordinates,
    encodings and attributes as ``write_dataset(ensemble_to_dataset(...))``;
    :meth:`write` stores one time (``members [M, C, *S]``, physical units), in
    any order; :meth:`close` checks that every time was written and renames the
    file onto ``path``. As a context manager, an exception (or a missing time)
    removes the temporary file and leaves nothing at ``path``.

    NetCDF: the time axis is unlimited and starts empty; each write appends
    (or fills) one time with netCDF4, time value included. Zarr: the store is
    created with ``compute=False`` (metadata and coordinates only) and each time
    is a region write of whole chunks.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        template: xr.Dataset,
        var_names: Sequence[str],
        units: Mapping[str, str],
        n_members: int,
        times: Any = None,
        format: Format = "netcdf",
        *,
        attrs: Mapping[str, Any] | None = None,
        long_names: Mapping[str, str] | None = None,
        member_offset: int = 0,
        overwrite: bool = False,
    ) -> None:
        self.format = check_format(format)
        self.path = check_writable(path, overwrite)
        self.var_names = list(var_names)
        self.n_members = int(n_members)
        if times is None:
            if "time" not in template.variables:
                raise DataError("template has no `time` coordinate; pass `times` explicitly")
            times = template["time"].values
        time_values = np.atleast_1d(np.asarray(times))
        self.n_times = len(time_values)
        dims = spatial_dims(template)
        self.spatial_shape = tuple(template.sizes[d] for d in dims)
        self._written = np.zeros(self.n_times, dtype=bool)
        self._stack = ExitStack()
        self._nc: Any = None
        self._closed = False

        def skeleton(n_times: int, make: Any) -> xr.Dataset:
            shape = (self.n_members, n_times, *self.spatial_shape)
            return _build_dataset(
                {n: make(shape) for n in self.var_names},
                template,
                self.var_names,
                units,
                self.n_members,
                time_values[:n_times],
                attrs,
                long_names,
                member_offset,
                len(dims),
            )

        try:
            self._tmp = self._stack.enter_context(
                atomic_path(self.path, is_dir=self.format == "zarr")
            )
            if self.format == "netcdf":
                import netCDF4

                full_time = skeleton(self.n_times, _lazy_nan)["time"].variable
                _write(skeleton(0, _empty), self._tmp, "netcdf", time=full_time)
                encoded = full_time.copy(deep=False)
                encoded.encoding = _time_encoding(full_time)
                self._time_values = xr.conventions.encode_cf_variable(encoded, name="time").values
                self._nc = netCDF4.Dataset(self._tmp, "a")
                self._nc.set_auto_maskandscale(False)
            else:
                # compute=False writes coordinates and metadata only (xarray's region-write recipe).
                self._zarr_dims = ("member", "time", *dims)
                _write(skeleton(self.n_times, _lazy_nan), self._tmp, "zarr", compute=False)
        except Exception as exc:
            raise self._fail(exc) from None
        except BaseException:
            self._abort()
            raise

    @property
    def next_time(self) -> int:
        """Index of the first time not yet written (``n_times`` when all are)."""
        missing = np.flatnonzero(~self._written)
        return int(missing[0]) if missing.size else self.n_times

    def write(self, members: np.ndarray, time_index: int | None = None) -> None:
        """Write ``members [M, C, *S]`` (physical units) at ``time_index`` (default: next time)."""
        if self._closed:
            raise RuntimeError(f"EnsembleWriter for {self.path} is closed")
        t = self.next_time if time_index is None else int(time_index)
        if not 0 <= t < self.n_times:
            raise IndexError(f"time index {t} outside 0..{self.n_times - 1}")
        members = np.asarray(members, dtype=np.float32)
        expected = (self.n_members, len(self.var_names), *self.spatial_shape)
        if members.shape != expected:
            raise DataError(f"members for one time have shape {members.shape}; expected {expected}")
        try:
            if self.format == "netcdf":
                self._nc["time"][t] = self._time_values[t]
                for c, name in enumerate(self.var_names):
                    self._nc[name][:, t, ...] = members[:, c]
            else:
                region = xr.Dataset(
                    {
                        n: (self._zarr_dims, members[:, c, None])
                        for c, n in enumerate(self.var_names)
                    }
                )
                with quiet_zarr():
                    region.to_zarr(self._tmp, region={"time": slice(t, t + 1)})
        except Exception as exc:
            raise self._fail(exc) from None
        self._written[t] = True

    def close(self) -> Path:
        """Finish: check every time was written, rename onto ``path``; returns ``path``."""
        if self._closed:
            return self.path
        missing = np.flatnonzero(~self._written)
        if missing.size:
            self._abort()
            raise DataError(
                f"{self.path}: times {missing.tolist()[:10]} were never written; nothing was saved"
            )
        try:
            if self._nc is not None:
                nc, self._nc = self._nc, None
                nc.close()  # flushes: a full disk may show up only here
        except Exception as exc:
            raise self._fail(exc) from None
        self._closed = True
        self._stack.close()  # atomic_path renames the temporary file onto self.path
        return self.path


def _empty(shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape, dtype=np.float32)


def _lazy_nan(shape: tuple[int, ...]) -> Any:
    """NaN placeholder chunked like the file: never held in memory, never computed."""
    import dask.array as da

    return da.full(shape, np.nan, dtype=np.float32, chunks=(1, 1, *shape[2:]))
