"""Recipe 1 data: aligned truth, input and constant fields, split, statistics and datasets.

:meth:`DownscalingData.from_config` turns a :class:`~geogan.recipes.downscaling.config.DataConfig`
into fields on one pair of nested grids:

1. Open the truth (``[T, H, W]`` per target variable, physical units, NaN = missing),
   the input (``[T, h, w]`` per input variable) and the constants (``[H', W']``
   on their own grid); see :func:`geogan.data.sources.open_source`.
2. Times: the intersection of the truth and input times (sorted); none in common
   is a :class:`DataError`.
3. Grids: with ``autocoarsen`` the truth is cropped at the bottom/right to a
   multiple of ``factor`` and the input is its block mean (any NaN in a block ->
   NaN); otherwise the input grid must nest exactly (``H = factor * h``). An input
   with 1D coordinates running the other way to the truth's (e.g. latitude
   ascending vs descending) is flipped to match; an input whose lat/lon dims come
   in the other order, e.g. ``(time, lon, lat)``, is transposed to match. A
   same-named input and truth variable must have the same units (``K`` vs
   ``degC`` or ``mm/h`` vs ``kg m-2 s-1`` is a :class:`DataError`; spellings such
   as ``mm/h`` and ``mm h-1`` agree; a missing units attribute is not checked).
4. Constants on a regular lat/lon grid are interpolated onto the (cropped) truth
   grid (``regrid_method``), outside-domain points filled with the nearest valid
   value; constants already on the truth grid (same dims and shape) are used as they are.
5. Split (``data.split``): within each UTC day (``group_by: day``) or over the whole
   record (``all``), the last ``round(n * holdout_fraction)`` times are test times.

Variables with the same name in the input and the truth (always so with
``autocoarsen``) denote the same quantity and share the truth's statistics, so
the coarse input and the generated output live on one scale.

Fields are held in memory as float32 NumPy arrays behind a
:class:`~geogan.recipes.downscaling.store.FieldStore` (the 765x700x92 KNMI file is ~200 MB);
everything else reads through the store, so an out-of-core store can replace it.
"""

from __future__ import annotations

import logging
import time as _time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from geogan.core.errors import DataError
from geogan.data.grids import (
    check_nesting,
    coarsen,
    cropped_shape,
    fill_nearest,
    find_latlon,
    is_lat,
    is_lon,
    regrid_to,
)
from geogan.data.normalisation import Normalisation
from geogan.data.sources import (
    ValuePolicy,
    describe_times,
    load_values,
    normalise_dataset,
    open_source,
    spatial_dims,
    value_policy,
)
from geogan.data.splits import split_times
from geogan.data.units import same_units
from geogan.recipes.downscaling.config import DataConfig
from geogan.recipes.downscaling.samples import PatchDataset, Variables, assemble, to_tensors
from geogan.recipes.downscaling.sampling import Candidates, build_candidates
from geogan.recipes.downscaling.store import FieldStore, LazyStore, MemoryStore

log = logging.getLogger(__name__)

TIME_CHUNK = 8  # time steps read (and reduced for statistics) at once


def _resolve(path: str | None, base_dir: Path | None, role: str, required: bool) -> Path | None:
    if path is None:
        if required:
            extra = (
                ", or set data.autocoarsen: true to make the input from the truth"
                if role == "input"
                else ""
            )
            raise DataError(
                f"data.{role}.path is not set; set it to a NetCDF/Zarr/GRIB source{extra}"
            )
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() or base_dir is None else Path(base_dir) / p


class DownscalingData:
    """Aligned fields of a downscaling data set, split into train/test times (module docstring).

    Attributes:
        times: ``[T]`` aligned times (sorted); ``train_index``/``test_index`` index them.
        input_vars, target_vars, constant_vars: channel names in order.
        units: units per variable (``""`` when the source has none).
        factor: downscaling factor; ``truth_shape = factor * input_shape``.
        normalisation: statistics given to :meth:`from_config`, or None.
    """

    def __init__(
        self,
        *,
        cfg: DataConfig,
        store: FieldStore,
        times: np.ndarray,
        variables: Variables,
        units: dict[str, str],
        var_attrs: dict[str, dict],
        template: xr.Dataset,
        normalisation: Normalisation | None = None,
        policies: dict[str, ValuePolicy] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.times = np.asarray(times)
        self.variables = variables
        self.units = dict(units)
        self.var_attrs = dict(var_attrs)
        self._template = template
        self.factor = int(cfg.factor)
        self.patch_size = int(cfg.patch_size)
        self.train_index, self.test_index = split_times(self.times, cfg.split)
        if self.train_index.size == 0:
            raise DataError(
                f"no training times: all {self.times.size} times are held out; lower data.split.holdout_fraction "
                "or use data.split.group_by: all"
            )
        self.normalisation = normalisation
        self.policies = policies or {}
        self.build_seconds = 0.0  # wall time of from_config/from_datasets
        if normalisation is not None:
            normalisation.check_compatible(self.all_vars, cfg.transforms)
        self._candidates: Candidates | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_config(
        cls,
        cfg: DataConfig,
        base_dir: Path | str | None = None,
        stats: Normalisation | None = None,
        lazy: bool = False,
    ) -> DownscalingData:
        """Open the sources named in ``cfg`` (relative paths resolved against ``base_dir``) and align them.

        Args:
            cfg: the ``data`` section.
            base_dir: folder that relative paths in ``cfg`` are relative to (e.g. the config's folder).
            stats: normalisation statistics to attach (checked against the variables and transforms).
            lazy: leave the fields in the files and read them on demand (memory independent of
                the record's length; the files stay open until :meth:`close`). Otherwise they
                are loaded into memory and the files closed.
        """
        base = Path(base_dir) if base_dir is not None else None
        truth_path = _resolve(cfg.truth.path, base, "truth", required=True)
        input_path = _resolve(cfg.input.path, base, "input", required=not cfg.autocoarsen)
        const_path = _resolve(cfg.constants.path, base, "constants", required=False)
        if cfg.autocoarsen and input_path is not None:
            warnings.warn(
                "data.autocoarsen is true: data.input is ignored (the input is made from the truth)",
                stacklevel=2,
            )
            input_path = None
        opened: dict[Path, xr.Dataset] = {}  # one handle per file, even if named twice
        try:
            truth = open_source(
                truth_path,
                cfg.truth.variables,
                cfg.truth.time_dim,
                role="truth",
                opened=opened,
                rename=cfg.truth.rename,
            )
            inputs = None
            if input_path is not None:
                inputs = open_source(
                    input_path,
                    cfg.input.variables,
                    cfg.input.time_dim,
                    role="input",
                    opened=opened,
                    rename=cfg.input.rename,
                )
            constants = None
            if const_path is not None:
                constants = open_source(
                    const_path,
                    cfg.constants.variables,
                    cfg.constants.time_dim,
                    role="constants",
                    require_time=False,
                    opened=opened,
                    rename=cfg.constants.rename,
                )
            data = cls.from_datasets(
                cfg,
                truth,
                inputs,
                constants,
                stats=stats,
                paths={"truth": truth_path, "input": input_path, "constants": const_path},
                normalised=True,
                lazy=lazy,
            )
            if lazy:
                data.store.keep_open(list(opened.values()))
                opened = {}  # the store closes them (DownscalingData.close)
            return data
        finally:
            for ds in opened.values():
                ds.close()

    @classmethod
    def from_datasets(
        cls,
        cfg: DataConfig,
        truth: xr.Dataset,
        inputs: xr.Dataset | None = None,
        constants: xr.Dataset | None = None,
        stats: Normalisation | None = None,
        paths: dict[str, Path | None] | None = None,
        normalised: bool = False,
        lazy: bool = False,
    ) -> DownscalingData:
        """Build from opened (or in-memory) Datasets; variables are taken from ``cfg``.

        ``lazy``: keep the fields in the sources and read them on demand (a
        :class:`~geogan.recipes.downscaling.store.LazyStore`; the Datasets must stay open while the
        data are used), so memory does not grow with the record; otherwise they are
        loaded into memory (a :class:`~geogan.recipes.downscaling.store.MemoryStore`, fast random access).

        Unless ``normalised`` (they come from :func:`open_source`), the Datasets are
        brought to the common layout here (time renamed/sorted, dims ordered).
        ``paths`` name the sources in error messages.
        """
        started = _time.perf_counter()
        paths = paths or {}
        where = {
            k: str(paths.get(k) or f"the {k} dataset") for k in ("truth", "input", "constants")
        }
        if not cfg.autocoarsen and inputs is None:
            raise DataError("data.input.path is not set; set it, or set data.autocoarsen: true")
        if cfg.autocoarsen:
            inputs = None
        if not normalised:
            truth = normalise_dataset(
                truth,
                cfg.truth.variables,
                cfg.truth.time_dim,
                role="truth",
                path=where["truth"],
                rename=cfg.truth.rename,
            )
            if inputs is not None:
                inputs = normalise_dataset(
                    inputs,
                    cfg.input.variables,
                    cfg.input.time_dim,
                    role="input",
                    path=where["input"],
                    rename=cfg.input.rename,
                )
            if constants is not None:
                constants = normalise_dataset(
                    constants,
                    cfg.constants.variables,
                    cfg.constants.time_dim,
                    role="constants",
                    path=where["constants"],
                    require_time=False,
                    rename=cfg.constants.rename,
                )
        target_vars = list(cfg.truth.variables)
        input_vars = list(target_vars if cfg.autocoarsen else cfg.input.variables)
        constant_vars = list(cfg.constants.variables) if constants is not None else []
        clash = set(constant_vars) & (set(input_vars) | set(target_vars))
        if clash:
            raise DataError(
                f"constant variable(s) {sorted(clash)} share a name with an input/target variable; "
                "rename them (statistics are kept per variable name)"
            )
        f = int(cfg.factor)

        # Times
        truth_times = truth["time"].values
        if inputs is None:
            times, t_pos, i_pos = truth_times, np.arange(truth_times.size), None
        else:
            input_times = inputs["time"].values
            try:
                times, t_pos, i_pos = np.intersect1d(truth_times, input_times, return_indices=True)
            except TypeError:
                times = np.zeros(0)
            if times.size == 0:
                raise DataError(
                    f"no overlapping times between input ({describe_times(input_times)}) and truth "
                    f"({describe_times(truth_times)}); check data.input.path and data.truth.path"
                )
            if times.size < max(truth_times.size, input_times.size):
                log.info(
                    "using %d common times (truth has %d, input %d)",
                    times.size,
                    truth_times.size,
                    input_times.size,
                )

        # Grids
        ydim, xdim = spatial_dims(truth[target_vars[0]])
        full_shape = (truth.sizes[ydim], truth.sizes[xdim])
        if cfg.autocoarsen:
            big_h, big_w = cropped_shape(full_shape, f)
            if big_h == 0 or big_w == 0:
                raise DataError(
                    f"truth grid {full_shape[0]}x{full_shape[1]} is smaller than data.factor {f}"
                )
            if (big_h, big_w) != full_shape:
                log.warning(
                    "autocoarsen: truth grid cropped from %dx%d to %dx%d (a multiple of data.factor "
                    "%d): %d rows at the bottom and %d columns at the right are not used",
                    *full_shape,
                    big_h,
                    big_w,
                    f,
                    full_shape[0] - big_h,
                    full_shape[1] - big_w,
                )
        else:
            inputs = _match_axis_order(truth, inputs, where["input"])
            big_h, big_w = full_shape
            iy, ix = spatial_dims(inputs[input_vars[0]])
            check_nesting((inputs.sizes[iy], inputs.sizes[ix]), full_shape, f)
        if big_h < cfg.patch_size or big_w < cfg.patch_size:
            raise DataError(
                f"data.patch_size {cfg.patch_size} is larger than the truth grid {big_h}x{big_w}; lower it"
            )

        # Unit conversion and the rules for infinite and negative values, per variable
        policies: dict[str, ValuePolicy] = {}
        units: dict[str, str] = {}
        for var in target_vars:
            policies[var], units[var] = value_policy(
                cfg.truth, var, dict(truth[var].attrs), "truth", where["truth"]
            )
        input_policies = [policies[v] for v in input_vars] if cfg.autocoarsen else []
        if not cfg.autocoarsen:
            input_units = {}
            for var in input_vars:
                pol, input_units[var] = value_policy(
                    cfg.input, var, dict(inputs[var].attrs), "input", where["input"]
                )
                input_policies.append(pol)
                policies.setdefault(var, pol)
            _check_units(units, input_units, where)
            units = {**input_units, **units}

        # Fields: in memory, or (``lazy``) read from the open sources on demand
        if not lazy:
            truth_arr = np.empty((times.size, len(target_vars), big_h, big_w), dtype=np.float32)
            for c, var in enumerate(target_vars):
                _load_field(
                    truth[var],
                    t_pos,
                    truth_arr[:, c],
                    (big_h, big_w),
                    where["truth"],
                    policies[var],
                )
            if cfg.autocoarsen:
                input_arr = np.empty(
                    (times.size, len(input_vars), big_h // f, big_w // f), dtype=np.float32
                )
                for start in range(0, times.size, TIME_CHUNK):
                    input_arr[start : start + TIME_CHUNK] = coarsen(
                        truth_arr[start : start + TIME_CHUNK], f
                    )
            else:
                iy, ix = spatial_dims(inputs[input_vars[0]])
                small = (inputs.sizes[iy], inputs.sizes[ix])
                input_arr = np.empty((times.size, len(input_vars), *small), dtype=np.float32)
                for c, var in enumerate(input_vars):
                    _load_field(
                        inputs[var],
                        i_pos,
                        input_arr[:, c],
                        small,
                        where["input"],
                        input_policies[c],
                    )
                flip_y, flip_x = _orientation(truth, inputs, f)
                if flip_y:
                    input_arr = np.ascontiguousarray(input_arr[..., ::-1, :])
                if flip_x:
                    input_arr = np.ascontiguousarray(input_arr[..., :, ::-1])

        template = _template(truth, ydim, xdim, big_h, big_w)
        const_arr = np.zeros((len(constant_vars), big_h, big_w), dtype=np.float32)
        for k, var in enumerate(constant_vars):
            const_arr[k] = _constant_on_truth_grid(constants[var], truth, template, ydim, xdim, cfg)

        if lazy:
            flips = (False, False) if cfg.autocoarsen else _orientation(truth, inputs, f)
            store: FieldStore = LazyStore(
                [
                    truth[v].isel({ydim: slice(0, big_h), xdim: slice(0, big_w)})
                    for v in target_vars
                ],
                None if cfg.autocoarsen else [inputs[v] for v in input_vars],
                const_arr,
                f,
                truth_positions=t_pos,
                input_positions=i_pos,
                flips=flips,
                paths=(where["truth"], where["input"]),
                policies=([policies[v] for v in target_vars], input_policies),
            )
        else:
            store = MemoryStore(truth_arr, input_arr, const_arr, f)

        var_attrs = {}
        for var in target_vars:
            var_attrs[var] = dict(truth[var].attrs)
        if inputs is not None:
            for var in input_vars:
                var_attrs.setdefault(var, dict(inputs[var].attrs))
        for var in constant_vars:
            var_attrs[var] = dict(constants[var].attrs)
        for var, attrs in var_attrs.items():
            units.setdefault(var, str(attrs.get("units", "")))

        data = cls(
            cfg=cfg,
            store=store,
            policies=policies,
            times=times,
            variables=Variables(input=input_vars, target=target_vars, constants=constant_vars),
            units=units,
            var_attrs=var_attrs,
            template=template,
            normalisation=stats,
        )
        data.build_seconds = _time.perf_counter() - started
        if not lazy:
            data.report_values()
        return data

    def close(self) -> None:
        """Close the sources a lazy store reads from (nothing to do for in-memory fields)."""
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ properties
    @property
    def input_vars(self) -> list[str]:
        return list(self.variables.input)

    @property
    def target_vars(self) -> list[str]:
        return list(self.variables.target)

    @property
    def constant_vars(self) -> list[str]:
        return list(self.variables.constants)

    @property
    def all_vars(self) -> list[str]:
        """Every variable that needs statistics (input, target, constants; no repeats)."""
        return list(dict.fromkeys(self.target_vars + self.input_vars + self.constant_vars))

    @property
    def train_times(self) -> np.ndarray:
        return self.times[self.train_index]

    @property
    def test_times(self) -> np.ndarray:
        return self.times[self.test_index]

    @property
    def truth_shape(self) -> tuple[int, int]:
        """``(H, W)`` of the (cropped) truth grid."""
        return self.store.truth_shape

    @property
    def input_shape(self) -> tuple[int, int]:
        """``(h, w) = (H / factor, W / factor)``."""
        return self.store.input_shape

    def truth_template(self) -> xr.Dataset:
        """An empty Dataset on the truth grid: its spatial coordinates (1D y/x, 2D lat/lon), the
        grid-mapping variable (``crs``) and the truth file's global attributes. Outputs written
        from it land on the truth grid (cropped at the bottom/right with ``autocoarsen``)."""
        return self._template.copy(deep=True)

    # ------------------------------------------------------------------ statistics and items
    def compute_normalisation(self, chunk_size: int = TIME_CHUNK) -> Normalisation:
        """Statistics of every variable over the training times, streamed ``chunk_size`` times at a time."""
        chunks: dict[str, object] = {}
        for c, var in enumerate(self.target_vars):
            chunks[var] = self.store.chunks("truth", c, self.train_index, chunk_size)
        for c, var in enumerate(self.input_vars):
            if var not in chunks:  # same name as a target: shares the truth's statistics
                chunks[var] = self.store.chunks("input", c, self.train_index, chunk_size)
        for k, var in enumerate(self.constant_vars):
            chunks[var] = [self.store.constants()[k]]
        return Normalisation.compute(chunks, self.cfg.transforms)

    def _norm(self, normalisation: Normalisation | None) -> Normalisation:
        norm = normalisation if normalisation is not None else self.normalisation
        if norm is None:
            raise DataError(
                "no normalisation statistics: run `geogan prepare` or pass compute_normalisation()"
            )
        if norm is not self.normalisation:
            norm.check_compatible(self.all_vars, self.cfg.transforms)
        return norm

    def candidates(self) -> Candidates:
        """Candidate training patches (computed once, cached)."""
        if self._candidates is None:
            wet_var = self.cfg.sampling.variable or self.target_vars[0]
            if wet_var not in self.target_vars:
                raise DataError(
                    f"data.sampling.variable {wet_var!r} is not a target variable ({', '.join(self.target_vars)})"
                )
            self._candidates = build_candidates(
                self.store,
                self.train_index,
                self.patch_size,
                self.cfg.sampling,
                wet_channel=self.target_vars.index(wet_var),
            )
        return self._candidates

    def patch_dataset(
        self, normalisation: Normalisation | None = None, seed: int = 0, length: int = 1_000_000
    ) -> PatchDataset:
        """Class-balanced training patches; item ``i`` depends only on ``(seed, i)``.

        Items: ``input [C_in, P/f, P/f]``, ``target [C_out, P, P]``, ``constants [K, P, P]``,
        ``mask [1, P, P]`` with ``P = data.patch_size``.
        """
        return PatchDataset(
            self.store,
            self.variables,
            self.candidates(),
            self._norm(normalisation),
            self.cfg.sampling.weights,
            self.cfg.augment,
            seed,
            length,
        )

    def field(self, t_index: int, normalisation: Normalisation | None = None) -> dict:
        """Full domain at time ``self.times[t_index]`` as a normalised item of torch tensors
        (``input [C_in, h, w]``, ``target [C_out, H, W]``, ``constants [K, H, W]``, ``mask [1, H, W]``)."""
        big_h, big_w = self.truth_shape
        item = assemble(
            self.store, self.variables, int(t_index), 0, 0, big_h, big_w, self._norm(normalisation)
        )
        return to_tensors(item)

    def raw_field(self, t_index: int) -> dict[str, np.ndarray]:
        """Like :meth:`field` but NumPy arrays in physical units, NaN where missing."""
        big_h, big_w = self.truth_shape
        return assemble(self.store, self.variables, int(t_index), 0, 0, big_h, big_w, None)

    def value_counts(self) -> dict[str, dict]:
        """Per variable: infinite values masked (``on_nonfinite: mask``) and negative values
        clipped (``on_negative: clip``) among the values read so far, with the policies."""
        return {
            var: {
                "infinite_masked": p.counts["nonfinite"],
                "negative_clipped": p.counts["negative"],
                "on_nonfinite": p.nonfinite,
                "on_negative": p.negative,
            }
            for var, p in self.policies.items()
        }

    def reset_value_counts(self) -> None:
        for p in self.policies.values():
            p.counts.update(nonfinite=0, negative=0)

    def report_values(self) -> None:
        """One warning per variable whose values were masked or clipped (never silent)."""
        for var, c in self.value_counts().items():
            if c["infinite_masked"] or c["negative_clipped"]:
                log.warning(
                    "variable %r: %d infinite values treated as missing, %d negative values "
                    "clipped to 0",
                    var,
                    c["infinite_masked"],
                    c["negative_clipped"],
                )

    def summary(self) -> dict:
        """Sizes and counts, JSON-able."""
        out = {
            "times": int(self.times.size),
            "train_times": int(self.train_index.size),
            "test_times": int(self.test_index.size),
            "time_span": describe_times(self.times),
            "input_vars": self.input_vars,
            "target_vars": self.target_vars,
            "constant_vars": self.constant_vars,
            "units": self.units,
            "factor": self.factor,
            "patch_size": self.patch_size,
            "truth_shape": list(self.truth_shape),
            "input_shape": list(self.input_shape),
            "values": self.value_counts(),
        }
        if self._candidates is not None:
            out["candidates"] = len(self._candidates)
            out["class_counts"] = self._candidates.class_counts()
        return out

    def __repr__(self) -> str:
        return (
            f"DownscalingData(truth {self.truth_shape[0]}x{self.truth_shape[1]} {self.target_vars}, "
            f"input {self.input_shape[0]}x{self.input_shape[1]} {self.input_vars}, constants {self.constant_vars}, "
            f"factor {self.factor}, times {self.train_index.size} train / {self.test_index.size} test)"
        )


# ---------------------------------------------------------------------- helpers
def _load_field(
    da: xr.DataArray,
    positions: np.ndarray,
    out: np.ndarray,
    shape: tuple[int, int],
    path: str,
    policy: ValuePolicy | None = None,
) -> None:
    """Read ``da[positions, :H, :W]`` into ``out [n, H, W]`` a few time steps at a time
    (units converted and values checked by ``policy``)."""
    positions = np.asarray(positions)
    big_h, big_w = shape
    da = da.isel({da.dims[-2]: slice(0, big_h), da.dims[-1]: slice(0, big_w)})
    for start in range(0, positions.size, TIME_CHUNK):
        pos = positions[start : start + TIME_CHUNK]
        contiguous = pos.size > 0 and np.all(np.diff(pos) == 1)
        sel = slice(int(pos[0]), int(pos[-1]) + 1) if contiguous else pos
        load_values(da.isel(time=sel), path, out[start : start + pos.size], policy)


def _axis_kind(name: str, coord: xr.DataArray) -> str:
    if is_lat(name, coord):
        return "lat"
    if is_lon(name, coord):
        return "lon"
    return name


def _match_axis_order(truth: xr.Dataset, inputs: xr.Dataset, where: str) -> xr.Dataset:
    """The input with its two spatial dims swapped when they come in the other order to the
    truth's (e.g. input ``(time, lon, lat)``, truth ``(time, lat, lon)``); unchanged otherwise.

    Axes are matched by kind (latitude, longitude, or the same dim name), so only an
    unambiguous swap is undone.
    """
    kinds_t = [_axis_kind(d, truth[d]) for d in spatial_dims(truth)]
    iy, ix = spatial_dims(inputs)
    kinds_i = [_axis_kind(iy, inputs[iy]), _axis_kind(ix, inputs[ix])]
    if kinds_i[0] != kinds_i[1] and kinds_i == kinds_t[::-1]:
        log.info("input %s: dims (%s, %s) transposed to match the truth's order", where, iy, ix)
        return inputs.transpose("time", ix, iy, ...)
    return inputs


def _check_units(
    truth_units: dict[str, str], input_units: dict[str, str], where: dict[str, str]
) -> None:
    """A same-named input and target variable share statistics, so their units (after any
    conversion to the expected units) must agree."""
    for var, u_in in input_units.items():
        if var not in truth_units:
            continue
        u_truth = truth_units[var]
        if same_units(u_in, u_truth) is False:
            raise DataError(
                f"variable {var!r} has units {u_in!r} in the input ({where['input']}) but {u_truth!r} in the truth "
                f"({where['truth']}); convert one file to the other's units (same-named variables share "
                "normalisation statistics) or give the input variable another name"
            )


def _orientation(truth: xr.Dataset, inputs: xr.Dataset, factor: int) -> tuple[bool, bool]:
    """Whether to flip the input rows/columns so its 1D coordinates run like the truth's.

    Only axes where both grids have numeric 1D coordinates of the same kind (lat, lon,
    or the same name) are compared; warns if the nested pixel centres disagree by more
    than half a truth pixel after flipping.
    """
    flips = []
    for t_dim, i_dim in zip(spatial_dims(truth), spatial_dims(inputs)):
        tc, ic = truth.coords.get(t_dim), inputs.coords.get(i_dim)
        flip = False
        if (
            tc is not None
            and ic is not None
            and tc.ndim == ic.ndim == 1
            and np.issubdtype(tc.dtype, np.number)
            and np.issubdtype(ic.dtype, np.number)
            and tc.size > 1
            and ic.size > 1
            and _axis_kind(t_dim, tc) == _axis_kind(i_dim, ic)
        ):
            tv, iv = tc.values.astype(np.float64), ic.values.astype(np.float64)
            flip = bool(np.sign(tv[-1] - tv[0]) != np.sign(iv[-1] - iv[0]))
            if flip:
                iv = iv[::-1]
            expected = tv[: iv.size * factor].reshape(iv.size, factor).mean(axis=1)
            step = abs(float(tv[1] - tv[0]))
            err = float(np.max(np.abs(expected - iv)))
            if err > 0.5 * step:
                warnings.warn(
                    f"input coordinate {i_dim!r} is off the truth's {t_dim!r} by up to {err:g} "
                    f"(truth spacing {step:g}): the grids have the right shapes but may not be aligned",
                    stacklevel=4,
                )
        flips.append(flip)
    return flips[0], flips[1]


def _template(truth: xr.Dataset, ydim: str, xdim: str, big_h: int, big_w: int) -> xr.Dataset:
    """Coordinates of the (cropped) truth grid and its grid-mapping variable, loaded into memory."""
    spatial = {ydim, xdim}
    coords = {}
    for name, coord in truth.coords.items():
        if name == "time" or not set(coord.dims) <= spatial:
            continue
        coords[name] = coord
    template = xr.Dataset(coords=coords, attrs=dict(truth.attrs))
    template = template.isel(
        {d: slice(0, n) for d, n in ((ydim, big_h), (xdim, big_w)) if d in template.dims}
    )
    return template.load()


def _constant_on_truth_grid(
    da: xr.DataArray, truth: xr.Dataset, template: xr.Dataset, ydim: str, xdim: str, cfg: DataConfig
) -> np.ndarray:
    """``[H, W]`` float32 constant on the (cropped) truth grid, without NaN."""
    big_h, big_w = template.sizes.get(ydim), template.sizes.get(xdim)
    name = str(da.name)
    cy, cx = spatial_dims(da)
    same_grid = (cy, cx) == (ydim, xdim) and (da.sizes[cy], da.sizes[cx]) == (
        truth.sizes[ydim],
        truth.sizes[xdim],
    )
    if same_grid:  # already on the truth grid: no interpolation
        values = load_values(da.isel({cy: slice(0, big_h), cx: slice(0, big_w)}), "constants")
        return fill_nearest(values, name=name)
    latlon = find_latlon(template)
    if latlon is None:
        raise DataError(
            f"the truth grid has no latitude/longitude coordinates, so constant {name!r} cannot be regridded; "
            "add lat/lon to the truth file or give the constants on the truth grid"
        )
    lat, lon = xr.broadcast(*latlon)
    lat, lon = lat.transpose(ydim, xdim), lon.transpose(ydim, xdim)
    da = da.load()
    if not np.isfinite(da.values).any():
        raise DataError(f"constant {name!r} has no finite values; check the constants file")
    return regrid_to(da, lat, lon, cfg.regrid_method).values.astype(np.float32)
