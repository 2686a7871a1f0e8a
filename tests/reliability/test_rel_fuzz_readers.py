"""Property tests of the data readers (issue 4, item 7): work, or a clear GeoganError.

Generated NetCDF files (three formats) with random dimension names, orders and sizes
(including 0), dtypes, packing, NaN/inf, constant fields, unit attributes, grid
mappings, time axes with duplicates, disorder, NaT, numbers or strings, and lat/lon
coordinates ascending, descending, 0..360, 2D or missing; plus random bytes behind
real signatures and real files truncated or with flipped bytes. ``open_source``
(and reading every variable) and ``DownscalingData.from_config`` (autocoarsen and
an input file, then statistics, patch candidates and one item) must either work or
raise :class:`GeoganError` with a one-line message: never another exception.

``GEOGAN_FUZZ_EXAMPLES=2000`` runs a longer search locally.
"""

from __future__ import annotations

import functools
import itertools
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from geogan.core.errors import DataError, GeoganError
from geogan.data.sources import load_values, open_source
from geogan.recipes.downscaling.config import DataConfig
from geogan.recipes.downscaling.data import DownscalingData

N_EXAMPLES = int(os.environ.get("GEOGAN_FUZZ_EXAMPLES", 150))
FUZZ = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
_counter = itertools.count()

DIMS = ["time", "lat", "lon", "y", "x", "t", "level"]
VAR_NAMES = ["precip", "rain", "lat", "crs"]
DTYPES = ["float32", "float64", "int16", "int32", "uint8", "int64"]
UNITS = ["mm/h", "mm h-1", "kg m-2 s-1", "K", "kelvin", "degC", "", "1", "m", "?? odd//units"]
FORMATS = ["NETCDF4", "NETCDF4_CLASSIC", "NETCDF3_64BIT"]


def _clean(stage: str, call):
    """Run ``call``; a GeoganError must have a one-line message. Returns the result or None.

    Outcomes are counted per stage (``pytest --hypothesis-show-statistics``).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = call()
    except GeoganError as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        event(f"{stage}: {type(exc).__name__}")
        return None
    event(f"{stage}: ok")
    return result


# ----------------------------------------------------------------- generated datasets
@st.composite
def coordinate(draw, dim: str, size: int):
    """Values for a 1D coordinate of ``dim`` (or None: no coordinate)."""
    kind = draw(
        st.sampled_from(
            ["none", "linear", "random", "constant", "nan"]
            + (["time"] * 3 if dim in ("time", "t") else [])
        )
    )
    if kind == "none":
        return None
    if kind == "time":
        hours = draw(st.lists(st.integers(-48, 96), min_size=size, max_size=size))
        values = pd.Timestamp("2021-06-01").to_datetime64() + np.asarray(hours, "timedelta64[h]")
        if size and draw(st.booleans()):
            values[draw(st.integers(0, size - 1))] = np.datetime64("NaT")
        if draw(st.booleans()) and size:
            return values.astype(str)  # times as text
        return values
    start = draw(st.sampled_from([-180.0, -1.0, 0.0, 4.0, 52.0, 350.0]))
    step = draw(st.sampled_from([-0.5, -0.05, 0.05, 1.0]))
    values = start + step * np.arange(size)
    if kind == "random":
        values = np.random.default_rng(size).uniform(-200, 400, size)
    elif kind == "constant":
        values = np.full(size, start)
    elif kind == "nan" and size:
        values[size // 2] = np.nan
    return values


@st.composite
def datasets(draw):
    # half the examples look like real fields (time + two spatial dims, most in that order)
    # so that the later stages (alignment, statistics, sampling) are reached too
    plausible = draw(st.booleans())
    if plausible:
        y, x = draw(st.sampled_from([("lat", "lon"), ("y", "x"), ("lon", "lat")]))
        pool = ["time", y, x] + (["level"] if draw(st.integers(0, 3)) == 0 else [])
        sizes = {d: draw(st.integers(4, 9)) for d in (y, x)}
        sizes["time"] = draw(st.integers(1, 9))
        sizes["level"] = draw(st.integers(1, 2))
    else:
        pool = draw(st.lists(st.sampled_from(DIMS), max_size=4, unique=True))
        sizes = {d: draw(st.integers(0, 9)) for d in pool}
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    data_vars, encoding = {}, {}
    names = ["precip", *draw(st.lists(st.sampled_from(VAR_NAMES[1:]), max_size=1))]
    for name in (
        names
        if plausible
        else draw(st.lists(st.sampled_from(VAR_NAMES), min_size=1, max_size=2, unique=True))
    ):
        if plausible and name != "precip" and draw(st.booleans()):
            dims = pool[1:3]  # a fixed field beside the data, e.g. orography
        elif plausible and draw(st.integers(0, 3)) > 0:
            dims = [d for d in pool if d != "level" or draw(st.booleans())]
        else:
            dims = draw(st.permutations(pool)) if pool else []
            dims = dims[: draw(st.integers(0, len(dims)))] if dims else []
        shape = tuple(sizes[d] for d in dims)
        dtype = draw(st.sampled_from(DTYPES))
        fill = draw(st.sampled_from(["gamma", "constant", "nan", "normal"]))
        if fill == "gamma":
            values = rng.gamma(0.5, 2.0, shape)
        elif fill == "normal":
            values = rng.normal(280, 10, shape)
        else:
            values = np.full(shape, 3.0 if fill == "constant" else np.nan)
        if np.issubdtype(np.dtype(dtype), np.floating):
            values[rng.random(shape) < draw(st.sampled_from([0.0, 0.2, 0.9]))] = np.nan
            if values.size and draw(st.booleans()):
                values.flat[0] = np.inf
        else:
            values = np.nan_to_num(values, nan=0, posinf=0).clip(0, 200)
        attrs = {"units": draw(st.sampled_from(UNITS))}
        if draw(st.booleans()):
            attrs["grid_mapping"] = "crs"
        data_vars[name] = (tuple(dims), values.astype(dtype), attrs)
        enc = {}
        if np.issubdtype(np.dtype(dtype), np.floating) and draw(st.booleans()):
            enc = draw(
                st.sampled_from(
                    [
                        {"_FillValue": -9999.0},
                        {"dtype": "int16", "scale_factor": 0.1, "_FillValue": -1},
                    ]
                )
            )
        encoding[name] = enc
    coords = {}
    for d in pool:
        if d in data_vars:
            continue
        values = draw(coordinate(d, sizes[d]))
        if values is not None:
            units = draw(st.sampled_from(["", "degrees_north", "degrees_east", "m"]))
            coords[d] = (d, values, {"units": units} if units else {})
    if (
        {"y", "x"} <= set(pool)
        and "lat" not in pool
        and "lat" not in data_vars
        and draw(st.booleans())
    ):
        la = 52 + 0.01 * np.arange(sizes["y"])[:, None] + 0.0 * np.arange(sizes["x"])[None, :]
        coords["lat"] = (("y", "x"), la, {"standard_name": "latitude"})
        coords["lon"] = (
            ("y", "x"),
            5 + 0.0 * la + 0.01 * np.arange(sizes["x"])[None, :],
            {"standard_name": "longitude"},
        )
    try:
        ds = xr.Dataset(data_vars, coords=coords)
    except (ValueError, TypeError):
        reject()
    return ds, encoding, draw(st.sampled_from(FORMATS)), [d for d in pool if sizes[d] == 0]


def _write(ds, encoding, fmt, zero_dims, path) -> bool:
    unlimited = zero_dims[:1] if fmt.startswith("NETCDF3") else zero_dims
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.to_netcdf(path, format=fmt, encoding=encoding, unlimited_dims=unlimited)
        return True
    except Exception:  # not every generated dataset can be stored in every format
        return False


def _exercise(
    path: Path, variables: list[str], time_dim: str, require_time: bool, constants: list[str]
) -> None:
    """Everything a user's data goes through before training starts."""
    ds = _clean(
        "open",
        lambda: open_source(path, variables, time_dim, role="truth", require_time=require_time),
    )
    if ds is not None:
        try:
            for v in variables:
                _clean("read", lambda v=v: load_values(ds[v], path))
        finally:
            ds.close()
    source = {"path": str(path), "variables": variables, "time_dim": time_dim}
    common = {
        "patch_size": 4,
        "transforms": {v: {"log1p": True, "norm": "max"} for v in variables[:1]},
        "sampling": {
            "candidate_stride": 2,
            "thresholds": [0.1],
            "weights": [0.5, 0.5],
            "min_valid_fraction": 0.2,
        },
        "split": {"group_by": "all", "holdout_fraction": 0.25},
    }
    configs = {
        "autocoarsen": DataConfig(truth=source, autocoarsen=True, factor=2, **common),
        "input+constants": DataConfig(
            truth=source,
            input=source,
            constants={"path": str(path) if constants else None, "variables": constants},
            factor=1,
            **common,
        ),
    }
    for kind, cfg in configs.items():
        data = _clean(f"from_config {kind}", lambda cfg=cfg: DownscalingData.from_config(cfg))
        if data is None:
            continue
        norm = _clean("statistics", data.compute_normalisation)
        if norm is None:
            continue
        if _clean("candidates", data.candidates) is not None:
            item = _clean("item", lambda data=data, norm=norm: data.patch_dataset(norm, seed=1)[0])
            assert item is None or set(item) >= {"input", "target", "constants", "mask"}
        _clean("field", lambda data=data, norm=norm: data.field(0, norm))


@FUZZ
@given(datasets(), st.data())
def test_generated_netcdf_files_work_or_raise_a_clear_error(tmp_path, generated, data):
    ds, encoding, fmt, zero_dims = generated
    path = tmp_path / f"fuzz{next(_counter)}.nc"
    if not _write(ds, encoding, fmt, zero_dims, path):
        reject()
    names = [str(v) for v in ds.data_vars] + ["missing_var"]
    variables = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    others = [n for n in names if n not in variables]
    constants = data.draw(st.sampled_from([[], others[:1]]))
    time_dim = data.draw(st.sampled_from(["time", "time", "t"]))
    require_time = data.draw(st.sampled_from([True, True, False]))
    _exercise(path, variables, time_dim, require_time, constants)


# ----------------------------------------------------------------- damaged bytes
@functools.cache
def _valid_bytes(fmt: str) -> bytes:
    import tempfile

    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "precip": (
                ("time", "lat", "lon"),
                rng.gamma(0.5, 2.0, (4, 8, 8)).astype("float32"),
                {"units": "mm/h"},
            )
        },
        coords={
            "time": pd.date_range("2021-06-01", periods=4, freq="3h"),
            "lat": np.linspace(52, 51, 8),
            "lon": np.linspace(4, 5, 8),
        },
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.nc"
        ds.to_netcdf(path, format=fmt)
        return path.read_bytes()


SIGNATURES = [b"", b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n", b"GRIB"]


@st.composite
def damaged_files(draw):
    if draw(st.booleans()):
        body = draw(st.sampled_from(SIGNATURES)) + draw(st.binary(max_size=1024))
        return body, draw(st.sampled_from([".nc", ".nc4", ".grib", ".zarr", ".dat", ""]))
    data = bytearray(_valid_bytes(draw(st.sampled_from(["NETCDF4", "NETCDF3_64BIT"]))))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data) - 1))]
    for _ in range(draw(st.integers(0 if len(data) < 9 else 1, 6))):
        if data:
            pos = draw(st.integers(0, len(data) - 1))
            data[pos] = draw(st.integers(0, 255))
    return bytes(data), ".nc"


@FUZZ
@given(damaged_files())
def test_damaged_files_work_or_raise_a_clear_error(tmp_path, damaged):
    body, suffix = damaged
    path = tmp_path / f"damaged{next(_counter)}{suffix}"
    path.write_bytes(body)
    _exercise(path, ["precip"], "time", require_time=True, constants=[])


# A corrupt 64-bit-offset NetCDF header found by this fuzzing: the netCDF-C library
# segfaults on it; geogan reads classic files with scipy, which raises instead.
SEGFAULTS_NETCDF_C = bytes.fromhex(
    "43444602c00000000000000a7d0000030000000474696d6500000004000000036c61740000000008"
    "000000036c6f6e000000000800000000000000000000000b000000040000000670726563697000"
    "00000000030000000000000001000000"
)


def test_corrupt_classic_header_that_crashes_netcdf_c(tmp_path):
    path = tmp_path / "crash.nc"
    path.write_bytes(SEGFAULTS_NETCDF_C)
    with pytest.raises(DataError, match="could not be read as NetCDF"):
        open_source(path, ["precip"])


def test_files_are_closed_and_opened_once(tmp_path):
    """Found by fuzzing: netCDF-C segfaults when a file with a string variable, still open in
    one handle, is opened and closed in a second one and then opened again. Closing the
    Dataset ``open_source`` returns must close the file, and ``from_config`` opens a file
    named as truth, input and constants only once."""
    labels = pd.date_range("2021-06-04", periods=9, freq="h").strftime("%Y-%m-%dT%H:%M:%S.%f")
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            "precip": (("time", "lat", "lon"), rng.gamma(0.5, 2.0, (4, 8, 8)), {"units": "mm/h"}),
            "orog": (("lat", "lon"), rng.normal(size=(8, 8)), {"units": "m"}),
        },
        coords={
            "time": pd.date_range("2021-06-01", periods=4, freq="3h"),
            "label": ("label", np.asarray(labels, dtype=object)),  # a string (vlen) variable
        },
    )
    path = tmp_path / "strings.nc"
    ds.to_netcdf(path, format="NETCDF4")
    kept = []  # closed but still referenced, as a caller may do
    for _ in range(2):
        kept.append(open_source(path, ["orog"], require_time=False))
        kept[-1].close()
        with pytest.raises(DataError):
            open_source(path, ["precip"], require_time=False)  # fails after opening the file
    source = {"path": str(path), "variables": ["precip"]}
    cfg = DataConfig(
        truth=source,
        input=source,
        constants={"path": str(path), "variables": ["orog"]},
        factor=1,
        patch_size=4,
        sampling={"candidate_stride": 2, "thresholds": [0.1], "weights": [0.5, 0.5]},
        split={"group_by": "all"},
    )
    for _ in range(2):
        data = DownscalingData.from_config(cfg)
    assert data.truth_shape == (8, 8) and data.constant_vars == ["orog"]
