"""Open gridded sources (NetCDF, Zarr, GRIB) as xarray Datasets with one layout.

After :func:`open_source` a Dataset holds only the selected variables, and

- the time dimension is called ``time`` (renamed from ``time_dim``), sorted
  ascending; duplicate times are rejected with a :class:`DataError` (we do not
  guess which of two frames with the same time stamp is right);
- every variable has dims ``(time, y, x)`` (fields) or ``(y, x)`` (constants,
  ``require_time=False``; a length-1 time dim is dropped), where ``y, x`` are the
  last two dims of the variable in the file, whatever their names; other
  length-1 dims are dropped, longer ones are an error;
- the spatial orientation is kept as in the file (latitude may descend): the
  truth grid is the output grid, so it is never reordered. Regridding sorts its
  own copy of a source (see :mod:`geogan.data.grids`);
- arrays stay lazy (backend-indexed, not dask): nothing is read until values
  are requested, so a caller can stream over time chunks.

Readers are registered by file suffix in :data:`geogan.core.registry.READERS`;
each takes a path and returns the raw Dataset.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from geogan.config.schema import SourceConfig
from geogan.core.errors import DataError
from geogan.core.registry import READERS, closest

log = logging.getLogger(__name__)

NETCDF_SIGNATURES = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
GRIB_SIGNATURE = b"GRIB"
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zmetadata")
_LATLON_NAMES = ("lat", "lon", "latitude", "longitude", "nav_lat", "nav_lon")

# Errors the IO backends raise for unreadable files; anything else is a bug.
# OverflowError: corrupt time values that cannot be decoded.
_READ_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, IndexError, OverflowError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _head(path: Path, n: int = 8) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError as exc:  # a folder, no permission, an I/O error
        raise DataError(
            f"{path} could not be opened ({_short(exc)}); check the path and its permissions"
        ) from None


def read_netcdf(path: Path) -> xr.Dataset:
    """A NetCDF file (classic or NETCDF4/HDF5), opened lazily."""
    head = _head(path)
    if not head.startswith(NETCDF_SIGNATURES):
        raise DataError(
            f"{path} is not a NetCDF file (no NetCDF/HDF5 signature at its start); "
            "check the path or convert the file to NetCDF"
        )
    if head.startswith((b"CDF\x01", b"CDF\x02")):
        # Classic and 64-bit-offset files go through scipy's pure-Python reader: the netCDF-C
        # library can crash the process (segfault) or allocate without bound on a corrupt
        # classic header, where scipy raises an exception (found by fuzzing, issue 4).
        engine = "scipy"
    else:
        try:
            import netCDF4  # noqa: F401

            engine = "netcdf4"
        except ImportError:  # pragma: no cover - netCDF4 is a dependency
            engine = "h5netcdf" if head.startswith(b"\x89HDF") else "scipy"
    try:
        # cache=False: reading a time slice must not keep the whole variable in memory.
        return xr.open_dataset(path, engine=engine, cache=False)
    except (*_READ_ERRORS, MemoryError) as exc:  # MemoryError: a header declaring absurd sizes
        raise DataError(
            f"{path} could not be read as NetCDF ({_short(exc)}); the file may be corrupt or truncated"
        ) from None


def read_zarr(path: Path) -> xr.Dataset:
    """A Zarr store (v2 or v3, folder), opened lazily without dask."""
    if not path.is_dir() or not any((path / m).exists() for m in ZARR_MARKERS):
        raise DataError(
            f"{path} is not a Zarr store (no zarr.json or .zgroup inside); check the path"
        )
    try:
        with warnings.catch_warnings():
            # Stores without consolidated metadata are fine; xarray warns before falling back.
            warnings.simplefilter("ignore", RuntimeWarning)
            return xr.open_zarr(path, chunks=None, consolidated=None)
    except _READ_ERRORS as exc:
        raise DataError(
            f"{path} could not be read as Zarr ({_short(exc)}); the store may be incomplete"
        ) from None


def read_grib(path: Path) -> xr.Dataset:
    """A GRIB file through cfgrib (optional extra ``geogan[grib]``: cfgrib + eccodes), lazily.

    No ``.idx`` index file is written beside the data (inputs may be read-only or shared),
    and a corrupt or truncated message is an error, not a silently shorter Dataset
    (cfgrib's default skips bad messages with a warning).
    """
    try:
        import cfgrib  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        # RuntimeError: cfgrib is installed but cannot find the ecCodes library.
        raise DataError(
            f"reading GRIB file {path} needs cfgrib: pip install 'geogan[grib]' (cfgrib and "
            f"ecCodes; {_short(exc)}), or convert the file to NetCDF"
        ) from None
    try:
        from gribapi.errors import GribInternalError  # eccodes' error base class
    except ImportError:  # pragma: no cover - gribapi ships with eccodes
        GribInternalError = RuntimeError  # noqa: N806
    try:
        # indexpath="": never write .idx files beside (possibly read-only) data.
        # errors="raise": a truncated file must not open as fewer time steps.
        return xr.open_dataset(
            path, engine="cfgrib", backend_kwargs={"indexpath": "", "errors": "raise"}
        )
    except EOFError:  # cfgrib: "No valid message found"
        raise DataError(
            f"{path} holds no GRIB message; check the path or that the file is GRIB"
        ) from None
    except (*_READ_ERRORS, GribInternalError) as exc:
        raise DataError(
            f"{path} could not be read as GRIB ({_short(exc)}); the file may be corrupt or truncated"
        ) from None


for _suffix in ("nc", "nc4", "cdf", "netcdf"):
    READERS.register(_suffix)(read_netcdf)
READERS.register("zarr")(read_zarr)
for _suffix in ("grib", "grib2", "grb", "grb2"):
    READERS.register(_suffix)(read_grib)


def reader_for(path: Path):
    """The reader for ``path``: by suffix, else by content (Zarr folder, NetCDF/GRIB signature)."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix in READERS:
        return READERS.get(suffix)
    if path.is_dir():
        return read_zarr
    head = _head(path)
    if head.startswith(NETCDF_SIGNATURES):
        return read_netcdf
    if head.startswith(GRIB_SIGNATURE):
        return read_grib
    raise DataError(
        f"{path} is not a NetCDF, Zarr or GRIB source (unknown suffix {path.suffix!r} and no known signature); "
        f"supported suffixes: {', '.join('.' + s for s in READERS.names())}"
    )


def _hint(role: str | None, key: str) -> str:
    return f"check data.{role}.{key}" if role else f"check the {key}"


def open_source(
    path: str | os.PathLike,
    variables: list[str],
    time_dim: str = "time",
    *,
    role: str | None = None,
    require_time: bool = True,
    opened: dict[Path, xr.Dataset] | None = None,
    rename: dict[str, str] | None = None,
) -> xr.Dataset:
    """Open ``variables`` of a NetCDF/Zarr/GRIB source in the common layout (module docstring).

    Args:
        path: file or Zarr folder.
        variables: names of the data variables to keep (at least one).
        time_dim: name of the time dimension in the file; renamed to ``time``.
        role: config section the source comes from (``truth``, ``input``, ``constants``),
            used only to point error messages at the right key.
        require_time: fields need a time dim; constants (``False``) must not vary in time.
        rename: file variable name -> the name ``variables`` use (``{"rain": "precip"}``).
        opened: files already opened, by resolved path: a file named again is not opened a
            second time and a new one is added. The caller then closes them (not the result).
            One handle per file also avoids a netCDF-C crash on files opened twice at once
            (vlen strings, found by fuzzing).

    Returns:
        A lazy Dataset; fields ``(time, y, x)``, constants ``(y, x)``.
    """
    path = Path(path)
    if not variables:
        raise DataError(f"no variables selected from {path}; {_hint(role, 'variables')}")
    if not path.exists():
        raise DataError(f"{role or 'source'} file {path} not found; {_hint(role, 'path')}")
    if opened is not None:
        key = path.resolve()
        if key not in opened:
            opened[key] = reader_for(path)(path)
        return normalise_dataset(
            opened[key],
            variables,
            time_dim,
            role=role,
            path=path,
            require_time=require_time,
            rename=rename,
        )
    ds = reader_for(path)(path)
    try:
        result = normalise_dataset(
            ds, variables, time_dim, role=role, path=path, require_time=require_time, rename=rename
        )
    except BaseException:
        ds.close()
        raise
    result.set_close(ds.close)  # selecting variables drops it: closing the result closes the file
    return result


def normalise_dataset(
    ds: xr.Dataset,
    variables: list[str],
    time_dim: str = "time",
    *,
    role: str | None = None,
    path: str | os.PathLike = "the dataset",
    require_time: bool = True,
    rename: dict[str, str] | None = None,
) -> xr.Dataset:
    """Select ``variables`` of an opened Dataset and bring them to the common layout (module docstring).

    Idempotent with ``time_dim="time"``: a Dataset already in the layout comes back
    unchanged. ``path`` only names the source in error messages. ``rename`` maps names in
    the file to the names ``variables`` use.
    """
    variables = list(variables)
    if rename:
        missing = [old for old in rename if old not in ds.data_vars]
        if missing and not all(rename[old] in ds.data_vars for old in missing):
            raise DataError(
                f"{_hint(role, 'rename')}: {path} has no variable {missing[0]!r} to rename "
                f"(available: {', '.join(map(str, ds.data_vars))})"
            )
        ds = ds.rename({old: new for old, new in rename.items() if old in ds.data_vars})
    if not variables:
        raise DataError(f"no variables selected from {path}; {_hint(role, 'variables')}")
    available = [str(v) for v in ds.data_vars]
    for var in variables:
        if var not in ds.data_vars:
            hint = closest(var, available)
            suggestion = f"did you mean {hint!r}? " if hint else ""
            raise DataError(
                f"variable {var!r} not in {path}; {suggestion}(available: {', '.join(available) or 'none'}); "
                f"{_hint(role, 'variables')}"
            )
    # lat/lon stored as data variables (no CF ``coordinates`` attribute) are still the grid.
    promote = {v for v in available if v.lower() in _LATLON_NAMES and v not in variables}
    # The CF grid-mapping variable (e.g. ``crs``) describes the grid: keep it as a coordinate.
    for var in variables:
        mapping = str(ds[var].attrs.get("grid_mapping", "")).split(":")[0].strip()
        if mapping in ds.data_vars and mapping not in variables:
            promote.add(mapping)
    promote = sorted(promote)
    ds = ds.set_coords(promote)[variables]
    if time_dim != "time":
        if time_dim in ds.dims:
            if "time" in ds.variables:
                ds = ds.drop_vars("time")  # e.g. a forecast reference time beside valid_time
            if "time" in ds.dims:
                raise DataError(
                    f"{path} has both a {time_dim!r} and a 'time' dimension; "
                    f"{_hint(role, 'time_dim')} (the dimension of the valid times)"
                )
            ds = ds.rename({time_dim: "time"})
        elif "time" in ds.dims and require_time:
            raise DataError(
                f"{path} has no time dimension {time_dim!r} (it has 'time'); {_hint(role, 'time_dim')}"
            )

    grid: tuple[str, str] | None = None
    for var in variables:
        da = ds[var]
        has_time = "time" in da.dims
        if require_time and not has_time:
            raise DataError(
                f"variable {var!r} in {path} has no time dimension {time_dim!r} (dims: {', '.join(map(str, da.dims))}); "
                f"{_hint(role, 'time_dim')}"
            )
        if not require_time and has_time:
            if da.sizes["time"] != 1:
                raise DataError(
                    f"constant {var!r} in {path} varies in time ({da.sizes['time']} steps); "
                    "constants must be fixed fields (select one time)"
                )
            da = da.isel(time=0, drop=True)
            has_time = False
        others = [d for d in da.dims if d != "time"]
        if len(others) < 2:
            raise DataError(
                f"variable {var!r} in {path} has dims {da.dims}; expected two spatial dims"
            )
        extra = others[:-2]
        for d in extra:
            if da.sizes[d] != 1:
                raise DataError(
                    f"variable {var!r} in {path} has an extra dimension {d!r} of size {da.sizes[d]}; "
                    "select one level per variable (a 2D field per time)"
                )
        da = da.isel({d: 0 for d in extra}, drop=True)
        ydim, xdim = str(others[-2]), str(others[-1])
        if grid is None:
            grid = (ydim, xdim)
        elif grid != (ydim, xdim) or any(ds[variables[0]].sizes[d] != da.sizes[d] for d in grid):
            raise DataError(
                f"variables {variables[0]!r} and {var!r} in {path} are on different grids; "
                "put variables on different grids in separate sources"
            )
        ds[var] = da.transpose("time", ydim, xdim) if has_time else da.transpose(ydim, xdim)
    if not require_time and "time" in ds.dims:
        ds = ds.isel(time=0, drop=True)
    if require_time:
        ds = _sort_times(ds, path)
    for d in grid or ():
        if ds.sizes[d] == 0:
            raise DataError(f"{path} has an empty {d!r} dimension; the selection holds no data")
    return ds


def _sort_times(ds: xr.Dataset, path: str | os.PathLike) -> xr.Dataset:
    times = ds["time"].values if "time" in ds.variables else np.arange(ds.sizes["time"])
    if times.size == 0:
        raise DataError(f"{path} has no time steps; the selection is empty")
    order = np.argsort(times, kind="stable")
    times_sorted = times[order]
    dup = times_sorted[1:] == times_sorted[:-1]
    if dup.any():
        first = times_sorted[1:][dup][0]
        raise DataError(
            f"{path} has {int(dup.sum())} duplicate time(s) (first: {format_time(first)}); "
            "remove the duplicates from the source"
        )
    if np.any(order != np.arange(order.size)):
        ds = ds.isel(time=order)
    return ds


def format_time(t) -> str:
    """A short ISO string for a time stamp (minutes), or ``str`` for non-datetime values."""
    if isinstance(t, np.datetime64):
        return str(np.datetime_as_string(t, unit="m"))
    return str(t)


def describe_times(times: np.ndarray) -> str:
    """``first..last`` of a time axis, for messages."""
    if len(times) == 0:
        return "empty"
    return f"{format_time(times[0])}..{format_time(times[-1])}"


def spatial_dims(obj: xr.Dataset | xr.DataArray) -> tuple[str, str]:
    """The ``(y, x)`` dim names of a Dataset in the common layout (last two dims of its variables)."""
    da = obj if isinstance(obj, xr.DataArray) else obj[next(iter(obj.data_vars))]
    return str(da.dims[-2]), str(da.dims[-1])


def load_values(
    da: xr.DataArray,
    path: str | os.PathLike,
    out: np.ndarray | None = None,
    policy: ValuePolicy | None = None,
) -> np.ndarray:
    """Read ``da`` into a float32 array (into ``out`` when given), as a DataError if the read fails.

    A truncated file can open (its header is intact) and fail only when the data are read.
    ``policy`` converts units and applies the rules for non-finite and negative values
    (:class:`ValuePolicy`) to what was read.
    """
    try:
        values = da.values
    except _READ_ERRORS as exc:
        raise DataError(
            f"could not read {da.name!r} from {path} ({_short(exc)}); the file may be corrupt or truncated"
        ) from None
    if out is None:
        out = np.asarray(values, dtype=np.float32)
        if out is values:
            out = out.copy()  # never modify the source's own array
    else:
        out[...] = values
    if policy is not None:
        policy.apply(out, path)
    return out


@dataclass
class ValuePolicy:
    """What happens to one variable's values as they are read.

    ``convert``: unit conversion (in place of float32 values); ``nonfinite``: ``+-inf`` is
    ``refuse``d (a :class:`DataError` naming the variable, the file and the count) or
    ``mask``ed (set to NaN, i.e. missing); ``negative`` (only for quantities that cannot be
    negative): ``clip`` to 0, ``refuse``, or ``allow``. ``counts`` adds up what was masked or
    clipped, for the summaries (``prepare``, training logs).
    """

    name: str
    role: str = "truth"
    convert: Callable[[np.ndarray], np.ndarray] | None = None
    nonfinite: str = "refuse"
    negative: str = "allow"
    counts: dict[str, int] = field(default_factory=lambda: {"nonfinite": 0, "negative": 0})

    def apply(self, values: np.ndarray, path: str | os.PathLike) -> None:
        """Apply the rules to ``values`` (float32, modified in place)."""
        if self.convert is not None:
            values[...] = self.convert(values)
        infinite = np.isinf(values)
        n_inf = int(infinite.sum())
        if n_inf:
            if self.nonfinite == "refuse":
                raise DataError(
                    f"{path}: variable {self.name!r} has {n_inf} infinite values; fix the file, or "
                    f"set data.{self.role}.on_nonfinite: mask to treat them as missing"
                )
            values[infinite] = np.nan
            self.counts["nonfinite"] += n_inf
        if self.negative != "allow":
            with np.errstate(invalid="ignore"):
                negative = values < 0
            n_neg = int(negative.sum())
            if n_neg:
                if self.negative == "refuse":
                    raise DataError(
                        f"{path}: variable {self.name!r} cannot be negative but has {n_neg} "
                        f"negative values (min {float(np.nanmin(values)):.4g}); fix the file, or set "
                        f"data.{self.role}.on_negative: clip (to 0) or allow"
                    )
                values[negative] = 0.0
                self.counts["negative"] += n_neg


def value_policy(
    source: SourceConfig, var: str, attrs: dict, role: str, path: str | os.PathLike
) -> tuple[ValuePolicy, str]:
    """The :class:`ValuePolicy` of variable ``var`` of a source, and its units after conversion.

    Units come from the file's ``units`` attribute; when the config expects other units
    (``source.units[var]``) convertible ones are converted (precipitation also from water
    mass fluxes) and incompatible ones refused. Missing or unknown units are used as they
    are, with a warning that names the variable.
    """
    from geogan.data.units import (
        converter,
        convertible,
        describe,
        is_nonnegative_quantity,
        parse_units,
    )

    have = str(attrs.get("units", "") or "").strip()
    want = source.units.get(var)
    convert = None
    units = have
    if want is not None:
        water = is_nonnegative_quantity(want, attrs.get("standard_name"))
        if parse_units(have) is None:
            log.warning(
                "%s: variable %r has %s units; assuming the expected %r (data.%s.units)",
                path,
                var,
                "no" if not have else f"unknown ({have!r})",
                want,
                role,
            )
        elif convertible(have, want, water=water) is False:
            raise DataError(
                f"{path}: variable {var!r} is in {describe(have)}, which cannot be converted to "
                f"the expected {describe(want)} (data.{role}.units); check the variable or the file"
            )
        elif parse_units(have) != parse_units(want):
            convert = converter(have, want, water=water, name=f"{path}: {var!r}")
            log.info("%s: converting %r from %r to %r", path, var, have, want)
        units = want
    elif parse_units(have) is None:
        log.warning(
            "%s: variable %r has %s units; its values are used as they are (set data.%s.units "
            "to declare them)",
            path,
            var,
            "no" if not have else f"unknown ({have!r})",
            role,
        )
    nonneg = is_nonnegative_quantity(units, attrs.get("standard_name"))
    policy = ValuePolicy(
        name=var,
        role=role,
        convert=convert,
        nonfinite=source.nonfinite_policy(var),
        negative=source.negative_policy(var) if nonneg else "allow",
    )
    return policy, units
