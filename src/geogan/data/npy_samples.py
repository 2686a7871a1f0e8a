"""A folder of ``.npy`` samples indexed by a metadata CSV (ensembles of NWP fields, crops).

The layout is the one of Météo-France's GAN ensemble work: one array per sample in a
folder, and a CSV (default ``labels.csv`` in that folder) with one row per sample and
the columns

============  ==============================================================
``Name``      file of the sample in the folder: a stem (``_sample0``, read as
              ``_sample0.npy``) or a file name (``_sample0.npy``); may name a
              sub-folder (``2021/_sample0``)
``Importance`` importance-sampling weight of the crop (kept, not used here)
``PosX``      column of the crop's origin in the full domain (kept, not used)
``PosY``      row of the crop's origin in the full domain (kept, not used)
``Date``      forecast base date/time, anything :func:`pandas.to_datetime` parses
              (time-zone aware dates are converted to naive UTC)
``LeadTime``  lead time in hours (a number, may be fractional)
``Member``    ensemble member (an integer)
============  ==============================================================

Other columns are kept in :attr:`NpySampleIndex.frame`.

Use::

    index = NpySampleIndex("data/samples")                       # reads data/samples/labels.csv
    subset = index.select(start="2021-01-01", end="2021-01-31", lead_times=[6, 12], members=range(8))
    ds = subset.dataset(variables=["u", "v", "t2m"], channels=["t2m"], crop=(0, 64, 0, 64))
    ds[0]["fields"]                                              # FloatTensor [1, 64, 64]
    for group in ds.ensembles():                                 # members of one (Date, LeadTime)
        fields = ds.stack(group)                                 # FloatTensor [M, 1, 64, 64]

or from a config section (:class:`NpySamplesConfig`, embedded by recipes in their schema):
``NpySampleDataset.from_config(cfg)``.

Arrays are read with ``np.load(mmap_mode="r", allow_pickle=False)``: only the selected
channels and the crop are read from disk, and no pickled object is ever loaded.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, PositiveFloat, ValidationError, field_validator, model_validator
from torch.utils.data import Dataset

from geogan.config.schema import Section
from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import closest

__all__ = [
    "REQUIRED_COLUMNS",
    "DateRangeConfig",
    "EnsembleGroup",
    "LeadTimeRangeConfig",
    "NpySampleDataset",
    "NpySampleIndex",
    "NpySamplesConfig",
    "group_ensembles",
]

REQUIRED_COLUMNS = ("Name", "Importance", "PosX", "PosY", "Date", "LeadTime", "Member")
"""Columns every metadata CSV must have (names are case-sensitive)."""

DEFAULT_CSV = "labels.csv"
_NPY = ".npy"
_SHOW = 3  # names quoted in an error message about many rows
_DATE_ONLY = re.compile(r"^\s*\d{4}-\d{1,2}-\d{1,2}\s*$")


# --------------------------------------------------------------------------- config


def _iso(value: Any) -> Any:
    """YAML reads ``2021-01-01`` as a date: keep configs JSON-able by storing ISO strings."""
    if isinstance(value, (_dt.date, _dt.datetime, pd.Timestamp)):
        return value.isoformat()
    return value


class DateRangeConfig(Section):
    """Dates kept, both ends inclusive; either end may be left out.

    An end given as a date without a time (``2021-01-31``) covers that whole day, as in
    pandas' partial-string indexing.
    """

    start: str | None = None
    end: str | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _to_text(cls, value: Any) -> Any:
        return _iso(value)

    @field_validator("start", "end")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                bad = pd.isna(pd.Timestamp(value))  # "" and "NaT" parse to NaT
            except (ValueError, TypeError):
                bad = True
            if bad:
                raise ValueError(
                    f"{value!r} is not a date (use e.g. 2021-01-31 or 2021-01-31T06:00)"
                )
        return value

    @model_validator(mode="after")
    def _ordered(self) -> DateRangeConfig:
        if self.start is not None and self.end is not None:
            if _naive_utc(_range_end(self.end)) < _naive_utc(pd.Timestamp(self.start)):
                raise ValueError(f"dates.start {self.start} is after dates.end {self.end}")
        return self


class LeadTimeRangeConfig(Section):
    """Lead times ``start, start + step, ...`` below ``stop`` (hours), like Python's ``range``:
    ``{start: 0, stop: 24, step: 6}`` keeps 0, 6, 12 and 18 (not 24)."""

    start: float = 0.0
    stop: float
    step: PositiveFloat = 1.0

    @model_validator(mode="after")
    def _ordered(self) -> LeadTimeRangeConfig:
        if self.stop <= self.start:
            raise ValueError(
                f"lead_times.stop ({self.stop}) must be above lead_times.start ({self.start}); "
                "stop is excluded, as in range()"
            )
        return self


class NpySamplesConfig(Section):
    """A folder of ``.npy`` samples with a metadata CSV, and the selection read from it.

    ``variables`` names the channels stored in every array, in order (so their number is
    known); ``channels`` picks the channels returned, by name (needs ``variables``) or by
    position. ``crop`` is ``[y0, y1, x0, x1]`` in pixels, half-open (rows ``y0..y1-1``).
    ``channels_last_on_disk``: ``true`` for arrays stored ``[H, W, C]``, ``false`` for
    ``[C, H, W]``, ``null`` to decide from the number of ``variables`` (see
    :class:`NpySampleDataset`).
    """

    path: str
    csv: str = DEFAULT_CSV
    variables: list[str] | None = None
    channels: list[int | str] | None = None
    crop: tuple[int, int, int, int] | None = None
    channels_last_on_disk: bool | None = None
    dates: DateRangeConfig | None = None
    lead_times: list[float] | LeadTimeRangeConfig | None = None
    members: list[int] | None = Field(default=None, min_length=1)

    @field_validator("crop")
    @classmethod
    def _crop(cls, crop: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if crop is not None:
            _check_crop_order(crop, ValueError)
        return crop

    @field_validator("variables")
    @classmethod
    def _unique(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            if not names:
                raise ValueError("variables must name at least one channel (or be left out)")
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"variables are named twice: {', '.join(dup)}")
        return names

    def csv_path(self) -> Path:
        """The CSV file: ``csv`` relative to ``path`` unless absolute."""
        csv = Path(self.csv).expanduser()
        return csv if csv.is_absolute() else Path(self.path).expanduser() / csv


# --------------------------------------------------------------------------- index


def _range_end(end: Any) -> pd.Timestamp:
    """The last instant kept by an inclusive ``end``: a bare date covers its whole day."""
    end = _iso(end)
    stamp = pd.Timestamp(end)
    if isinstance(end, str) and _DATE_ONLY.match(end):
        return stamp + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return stamp


def _naive_utc(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _check_crop_order(crop: Sequence[int], error: type[Exception]) -> None:
    if len(crop) != 4:
        raise error(f"crop must be (y0, y1, x0, x1), got {tuple(crop)}")
    y0, y1, x0, x1 = (int(v) for v in crop)
    if min(y0, x0) < 0 or y1 <= y0 or x1 <= x0:
        raise error(
            f"crop (y0, y1, x0, x1) = {tuple(crop)} is empty or negative; "
            "use 0 <= y0 < y1 and 0 <= x0 < x1 (pixels, end excluded)"
        )


def _names_list(names: Iterable[str]) -> str:
    names = list(names)
    more = f" and {len(names) - _SHOW} more" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


@dataclass(frozen=True)
class EnsembleGroup:
    """The samples of one ensemble: one (Date, LeadTime), members sorted ascending.

    ``rows`` are positions in the index (and in a dataset made from it), one per member.
    ``key`` holds the values of every grouping column (``Date``, ``LeadTime`` and any extra).
    """

    date: pd.Timestamp
    lead_time: float
    members: tuple[int, ...]
    rows: tuple[int, ...]
    key: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.rows)


def group_ensembles(
    frame: pd.DataFrame, by: Sequence[str] = ("Date", "LeadTime"), *, source: str = "the index"
) -> list[EnsembleGroup]:
    """Group the rows of an index frame into ensembles (one group per value of ``by``).

    ``by`` must include ``Date`` and ``LeadTime``; add ``PosX``/``PosY`` when one date holds
    crops at several positions. Groups are sorted by their key; a member appearing twice in
    one group is a :class:`DataError` (the grouping is then missing a column).
    """
    by = list(by)
    for col in ("Date", "LeadTime"):
        if col not in by:
            raise ConfigError(f"ensembles are grouped by Date and LeadTime; add {col!r} to by={by}")
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise ConfigError(
            f"cannot group by {', '.join(missing)}: not a column of {source} "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    groups = []
    positions = pd.Series(np.arange(len(frame)), index=frame.index)
    for key, part in frame.groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        order = np.argsort(part["Member"].to_numpy(), kind="stable")
        members = part["Member"].to_numpy()[order]
        if np.any(members[1:] == members[:-1]):
            dup = int(members[1:][members[1:] == members[:-1]][0])
            what = ", ".join(f"{c}={v}" for c, v in zip(by, key))
            raise DataError(
                f"member {dup} appears twice in the ensemble {what} of {source}; "
                "remove the duplicate rows or group by more columns (e.g. by=[Date, LeadTime, PosX, PosY])"
            )
        values = dict(zip(by, key))
        groups.append(
            EnsembleGroup(
                date=pd.Timestamp(values["Date"]),
                lead_time=float(values["LeadTime"]),
                members=tuple(int(m) for m in members),
                rows=tuple(int(r) for r in positions.loc[part.index].to_numpy()[order]),
                key=tuple(key),
            )
        )
    return groups


class NpySampleIndex:
    """The metadata CSV of a folder of ``.npy`` samples, validated, with selections.

    Args:
        folder: folder holding the ``.npy`` files.
        csv: the CSV file; default ``labels.csv`` in ``folder`` (a relative path is taken
            relative to ``folder``).
        check_files: check that every row's ``.npy`` file exists (one directory listing).

    Raises:
        DataError: the CSV is missing or unreadable, lacks a required column, has empty or
            unparsable ``Date``/``LeadTime``/``Member`` values, or names files that are missing.

    Attributes:
        frame: one row per sample with the CSV's columns (``Date`` as datetime64,
            ``LeadTime`` float hours, ``Member`` int64) plus ``path`` (the ``.npy`` file).
            Row order is the CSV's.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        csv: str | os.PathLike | None = None,
        *,
        check_files: bool = True,
    ) -> None:
        self.folder = Path(folder).expanduser()
        csv_path = Path(csv).expanduser() if csv is not None else Path(DEFAULT_CSV)
        self.csv = csv_path if csv_path.is_absolute() else self.folder / csv_path
        if not self.folder.is_dir():
            raise DataError(
                f"sample folder {self.folder} not found; check the path of the .npy folder"
            )
        self.frame = _read_csv(self.csv, self.folder)
        if check_files:
            _check_files(self.frame, self.csv)

    @classmethod
    def _from_frame(cls, parent: NpySampleIndex, frame: pd.DataFrame) -> NpySampleIndex:
        index = cls.__new__(cls)
        index.folder, index.csv = parent.folder, parent.csv
        index.frame = frame.reset_index(drop=True)
        return index

    @classmethod
    def from_config(cls, cfg: NpySamplesConfig, *, check_files: bool = True) -> NpySampleIndex:
        """The index of ``cfg.path`` with the selection of ``cfg`` (dates, lead times, members)."""
        index = cls(cfg.path, cfg.csv_path(), check_files=check_files)
        lead: Any = cfg.lead_times
        dates = cfg.dates or DateRangeConfig()
        return index.select(start=dates.start, end=dates.end, lead_times=lead, members=cfg.members)

    def __len__(self) -> int:
        return len(self.frame)

    def __repr__(self) -> str:
        return f"NpySampleIndex({self.csv}, {len(self)} samples)"

    def select(
        self,
        *,
        start: str | _dt.date | None = None,
        end: str | _dt.date | None = None,
        lead_times: Iterable[float] | range | LeadTimeRangeConfig | Mapping | None = None,
        members: Iterable[int] | None = None,
        allow_empty: bool = False,
    ) -> NpySampleIndex:
        """The rows whose Date, LeadTime and Member match; ``None`` keeps everything.

        Args:
            start, end: inclusive date bounds (strings or datetimes). An ``end`` written as a
                bare date (``"2021-01-31"``) covers that whole day.
            lead_times: hours: values (a list or tuple), a ``range``, or a mapping /
                :class:`LeadTimeRangeConfig` ``{start, stop, step}`` read like ``range``
                (stop excluded; floats allowed, e.g. ``{start: 0, stop: 3, step: 1.5}``).
            members: member numbers to keep.
            allow_empty: an empty selection is a :class:`DataError` unless True.

        Returns:
            A new index (row order kept) over the same folder.
        """
        frame = self.frame
        keep = np.ones(len(frame), dtype=bool)
        dates = frame["Date"]
        if start is not None:
            keep &= (dates >= _naive_utc(pd.Timestamp(_iso(start)))).to_numpy()
        if end is not None:
            keep &= (dates <= _naive_utc(_range_end(end))).to_numpy()
        lead = frame["LeadTime"].to_numpy(dtype=np.float64)
        if lead_times is not None:
            if not isinstance(lead_times, (range, Mapping, LeadTimeRangeConfig)):
                lead_times = list(lead_times)  # a generator is read once
            keep &= _lead_mask(lead, lead_times)
        if members is not None:
            members = [int(m) for m in members]
            keep &= frame["Member"].isin(members).to_numpy()
        if not keep.any() and not allow_empty and len(frame):
            raise DataError(
                f"no sample of {self.csv} matches the selection "
                f"(dates {start or '..'}..{end or '..'}, lead times {_show(lead_times)}, "
                f"members {_show(members)}); the CSV holds dates {_span(frame['Date'])}, "
                f"lead times {_show(sorted(set(lead.tolist())))}, "
                f"members {_show(sorted(set(frame['Member'].tolist())))}"
            )
        return self._from_frame(self, frame[keep])

    def ensembles(self, by: Sequence[str] = ("Date", "LeadTime")) -> list[EnsembleGroup]:
        """The samples grouped into ensembles: see :func:`group_ensembles`."""
        return group_ensembles(self.frame, by, source=str(self.csv))

    def dataset(
        self,
        *,
        variables: Sequence[str] | None = None,
        channels: Sequence[int | str] | None = None,
        crop: Sequence[int] | None = None,
        channels_last_on_disk: bool | None = None,
    ) -> NpySampleDataset:
        """A torch Dataset over these rows (arguments: :class:`NpySampleDataset`)."""
        return NpySampleDataset(
            self,
            variables=variables,
            channels=channels,
            crop=crop,
            channels_last_on_disk=channels_last_on_disk,
        )


def _lead_mask(lead: np.ndarray, lead_times: Any) -> np.ndarray:
    """Rows of ``lead`` (hours) kept by a list of lead times or a ``{start, stop, step}`` range."""
    if isinstance(lead_times, Mapping):
        try:
            lead_times = LeadTimeRangeConfig(**lead_times)
        except ValidationError as exc:
            raise ConfigError(
                f"lead_times {dict(lead_times)} is not a range {{start, stop, step}}: "
                f"{exc.errors()[0]['msg']}"
            ) from None
    if isinstance(lead_times, range):
        if lead_times.step <= 0:
            raise ConfigError(f"lead time range {lead_times} must have a positive step")
        lead_times = LeadTimeRangeConfig(
            start=lead_times.start, stop=lead_times.stop, step=lead_times.step
        )
    if isinstance(lead_times, LeadTimeRangeConfig):
        lo, hi, step = lead_times.start, lead_times.stop, lead_times.step
        k = (lead - lo) / step
        # Float lead times (1.5 h) would miss exact equality: compare to 1e-6 of a step.
        on_grid = np.abs(k - np.round(k)) < 1e-6
        return (k > -1e-6) & (lead < hi - 1e-6 * step) & on_grid
    wanted = np.asarray([float(v) for v in lead_times], dtype=np.float64)
    return np.isclose(lead[:, None], wanted[None, :], rtol=0, atol=1e-6).any(axis=1)


def _show(values: Any) -> str:
    if values is None:
        return "all"
    if isinstance(values, range):
        return f"range({values.start}, {values.stop}, {values.step})"
    if isinstance(values, LeadTimeRangeConfig):
        values = values.model_dump()
    if isinstance(values, Mapping):
        return "{" + ", ".join(f"{k}: {v}" for k, v in values.items()) + "}"
    values = list(values)
    text = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values[:8])
    return f"[{text}{', ...' if len(values) > 8 else ''}]"


def _span(dates: pd.Series) -> str:
    if dates.empty:
        return "none"
    return f"{dates.min().isoformat()}..{dates.max().isoformat()}"


def _read_csv(csv: Path, folder: Path) -> pd.DataFrame:
    if not csv.is_file():
        raise DataError(
            f"metadata CSV {csv} not found; put {DEFAULT_CSV} in the sample folder or name the CSV"
        )
    try:
        # Names are kept as text ("001" must not become 1).
        frame = pd.read_csv(csv, dtype={"Name": str}, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{csv} could not be read as CSV ({first}); check the file") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{csv} lacks the column(s) {', '.join(missing)}; a sample CSV needs "
            f"{', '.join(REQUIRED_COLUMNS)} (found: {', '.join(frame.columns) or 'none'})"
        )
    for col in ("Name", "Date", "LeadTime", "Member"):
        empty = frame[col].isna()
        if empty.any():
            rows = np.flatnonzero(empty.to_numpy())
            raise DataError(
                f"{csv} has {len(rows)} row(s) with an empty {col} (first data row: {rows[0] + 1}); "
                "fill in or remove those rows"
            )
    frame["Name"] = frame["Name"].str.strip()
    frame["Date"] = _parse_dates(frame["Date"], csv)
    for col in ("LeadTime", "Member"):
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.astype(np.float64))
        if col == "Member":
            bad |= values.astype(np.float64) % 1 != 0
        if bad.any():
            first = frame[col][bad].iloc[0]
            first = repr(first) if isinstance(first, str) else str(first)  # not np.float64(...)
            kind = "an integer" if col == "Member" else "a number of hours"
            raise DataError(
                f"{csv} has {int(bad.sum())} {col} value(s) that are not {kind} "
                f"(first: {first}); fix the column"
            )
        frame[col] = values.astype(np.int64 if col == "Member" else np.float64)
    frame["path"] = [folder / (n if n.lower().endswith(_NPY) else n + _NPY) for n in frame["Name"]]
    return frame


def _parse_dates(column: pd.Series, csv: Path) -> pd.Series:
    text = column.astype(str).str.strip()
    try:
        dates = pd.to_datetime(text, utc=True)
    except (ValueError, TypeError):
        # pandas infers one format from the first value; mixed but valid formats still parse.
        try:
            dates = pd.to_datetime(text, utc=True, format="mixed")
        except (ValueError, TypeError):
            for value in text:
                try:
                    pd.Timestamp(value)
                except (ValueError, TypeError):
                    raise DataError(
                        f"{csv} has a Date that is not a date: {value!r}; "
                        "use e.g. 2021-01-31 or 2021-01-31T06:00"
                    ) from None
            raise DataError(f"{csv} has Dates pandas cannot parse; use ISO dates") from None
    # Everything is compared as naive UTC: offsets in the CSV are honoured, then dropped.
    return dates.dt.tz_convert("UTC").dt.tz_localize(None)


def _check_files(frame: pd.DataFrame, csv: Path) -> None:
    listings: dict[Path, set[str]] = {}
    missing = []
    for name, path in zip(frame["Name"], frame["path"]):
        parent = path.parent
        if parent not in listings:
            try:
                # One listing per folder instead of one stat per row: CSVs can hold 10^5 rows.
                listings[parent] = {e.name for e in os.scandir(parent) if e.is_file()}
            except OSError:
                listings[parent] = set()
        if path.name not in listings[parent]:
            missing.append(name)
    if missing:
        raise DataError(
            f"{len(missing)} of {len(frame)} samples in {csv} have no .npy file in "
            f"{frame['path'].iloc[0].parent if len(frame) else csv.parent} "
            f"(e.g. {_names_list(missing)}); copy the files or remove their rows"
        )


# --------------------------------------------------------------------------- dataset


def _open(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(
            f"sample {path} not found; it was removed after the index was read"
        ) from None
    except (ValueError, OSError, EOFError) as exc:
        # allow_pickle=False: an object array raises ValueError here instead of unpickling.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path} could not be read as a .npy array ({first[:200]}); the file may be corrupt"
        ) from None


class NpySampleDataset(Dataset):
    """Samples of an :class:`NpySampleIndex` as tensors.

    Item ``i`` (row ``i`` of ``index.frame``)::

        {"fields": FloatTensor [C, H, W],     # selected channels, cropped, float32
         "lead_time": float64 tensor [],       # hours
         "member": int64 tensor [],
         "date": str,                          # ISO 8601, naive UTC
         "name": str}                          # the CSV's Name

    Layout on disk: arrays are ``[C, H, W]`` or ``[H, W, C]`` (a 2D array ``[H, W]`` is one
    channel). ``channels_last_on_disk=True``/``False`` states it. With ``None`` (default) it
    is decided from the first file and the number of declared ``variables``: ``[C, H, W]``
    if the first axis has ``len(variables)`` entries, ``[H, W, C]`` if only the last one
    has; if both or neither match it is a :class:`DataError` asking for the flag. Without
    ``variables`` and without the flag, arrays are taken to be ``[C, H, W]``.

    Args:
        index: the rows to serve.
        variables: names of the channels stored in each array, in order.
        channels: channels to return, by name (needs ``variables``) or position (default all).
        crop: ``(y0, y1, x0, x1)`` in pixels, end excluded, within the stored field.
        channels_last_on_disk: layout on disk (see above).

    Every array must have the shape of the first one (checked when read: a different
    shape is a :class:`DataError` naming the file).
    """

    def __init__(
        self,
        index: NpySampleIndex,
        *,
        variables: Sequence[str] | None = None,
        channels: Sequence[int | str] | None = None,
        crop: Sequence[int] | None = None,
        channels_last_on_disk: bool | None = None,
    ) -> None:
        if len(index) == 0:
            raise DataError(f"no samples selected from {index.csv}; widen the selection")
        self.index = index
        frame = index.frame
        self._paths = [Path(p) for p in frame["path"]]
        self._names = frame["Name"].tolist()
        self._dates = [t.isoformat() for t in frame["Date"]]
        self._lead = frame["LeadTime"].to_numpy(dtype=np.float64)
        self._member = frame["Member"].to_numpy(dtype=np.int64)

        first = _open(self._paths[0])
        self.disk_shape = tuple(int(s) for s in first.shape)
        self.channels_last = self._layout(first.shape, variables, channels_last_on_disk)
        c, h, w = self._chw(first.shape)
        if variables is not None and len(variables) != c:
            raise DataError(
                f"{self._paths[0]} holds {c} channel(s) (shape {first.shape}) but "
                f"{len(variables)} variables are declared ({', '.join(variables)}); fix variables"
            )
        self._channels = self._resolve_channels(channels, variables, c)
        self.variables = [variables[i] for i in self._channels] if variables is not None else None
        if crop is None:
            crop = (0, h, 0, w)
        _check_crop_order(crop, ConfigError)
        y0, y1, x0, x1 = (int(v) for v in crop)
        if y1 > h or x1 > w:
            raise DataError(
                f"crop (y0, y1, x0, x1) = {(y0, y1, x0, x1)} is outside the {h} x {w} field of "
                f"{self._paths[0]}; use y1 <= {h} and x1 <= {w}"
            )
        self.crop = (y0, y1, x0, x1)
        self.shape = (len(self._channels), y1 - y0, x1 - x0)
        """Shape ``(C, H, W)`` of ``item["fields"]``."""

    @classmethod
    def from_config(cls, cfg: NpySamplesConfig, *, check_files: bool = True) -> NpySampleDataset:
        """The dataset a config section describes (folder, CSV, selection, channels, crop)."""
        index = NpySampleIndex.from_config(cfg, check_files=check_files)
        return cls(
            index,
            variables=cfg.variables,
            channels=cfg.channels,
            crop=cfg.crop,
            channels_last_on_disk=cfg.channels_last_on_disk,
        )

    def _layout(self, shape: tuple[int, ...], variables, flag: bool | None) -> bool:
        path = self._paths[0]
        if len(shape) == 2:
            return False
        if len(shape) != 3:
            raise DataError(
                f"{path} has shape {shape}; a sample must be [C, H, W], [H, W, C] or [H, W]"
            )
        if flag is not None:
            return bool(flag)
        if variables is None:
            return False
        n = len(variables)
        first, last = shape[0] == n, shape[-1] == n
        if first != last:
            return last
        raise DataError(
            f"cannot tell whether {path} (shape {shape}) is [C, H, W] or [H, W, C] with "
            f"{n} variables; set channels_last_on_disk to true or false"
        )

    def _chw(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        if len(shape) == 2:
            return 1, int(shape[0]), int(shape[1])
        if self.channels_last:
            return int(shape[2]), int(shape[0]), int(shape[1])
        return int(shape[0]), int(shape[1]), int(shape[2])

    def _resolve_channels(self, channels, variables, c: int) -> list[int]:
        if channels is None:
            return list(range(c))
        if isinstance(channels, (str, int)):
            channels = [channels]
        out = []
        for ch in channels:
            if isinstance(ch, str):
                if variables is None:
                    raise ConfigError(
                        f"channel {ch!r} is selected by name but no variables are declared; "
                        "declare variables (channel names in file order) or select by position"
                    )
                if ch not in variables:
                    hint = closest(ch, list(variables))
                    raise ConfigError(
                        f"channel {ch!r} is not a declared variable"
                        f"{f'; did you mean {hint!r}?' if hint else ''} (variables: {', '.join(variables)})"
                    )
                out.append(list(variables).index(ch))
            else:
                i = int(ch)
                if not -c <= i < c:
                    raise ConfigError(
                        f"channel {i} is out of range: the samples have {c} channel(s) (0..{c - 1})"
                    )
                out.append(i % c)
        if not out:
            raise ConfigError("channels selects nothing; leave it out to keep every channel")
        return out

    def __len__(self) -> int:
        return len(self._paths)

    def read(self, i: int) -> np.ndarray:
        """The selected, cropped channels of sample ``i`` as float32 ``[C, H, W]``."""
        path = self._paths[i]
        arr = _open(path)
        if tuple(arr.shape) != self.disk_shape:
            raise DataError(
                f"{path} has shape {tuple(arr.shape)} but {self._paths[0]} has {self.disk_shape}; "
                "every sample of a folder must have the same shape"
            )
        if arr.dtype.kind not in "biuf":
            raise DataError(f"{path} holds {arr.dtype} values; samples must be numeric arrays")
        y0, y1, x0, x1 = self.crop
        if arr.ndim == 2:
            view = arr[None, y0:y1, x0:x1]
        elif self.channels_last:
            view = np.moveaxis(arr[y0:y1, x0:x1, :], -1, 0)
        else:
            view = arr[:, y0:y1, x0:x1]
        # Fancy indexing on the memory map reads only the selected channels of the crop.
        try:
            return np.ascontiguousarray(view[self._channels], dtype=np.float32)
        except (OSError, ValueError) as exc:  # a file truncated after its header
            raise DataError(f"could not read {path} ({exc}); the file may be truncated") from None

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range ({len(self)} samples)")
        i = i % len(self)
        return {
            "fields": torch.from_numpy(self.read(i)),
            "lead_time": torch.tensor(self._lead[i], dtype=torch.float64),
            "member": torch.tensor(self._member[i], dtype=torch.int64),
            "date": self._dates[i],
            "name": self._names[i],
        }

    def ensembles(self, by: Sequence[str] = ("Date", "LeadTime")) -> list[EnsembleGroup]:
        """The items grouped by (Date, LeadTime): ``group.rows`` are item indices of this dataset."""
        return self.index.ensembles(by)

    def stack(self, group: EnsembleGroup | Sequence[int]) -> torch.Tensor:
        """The fields of a group's members (or of the given item indices): ``[M, C, H, W]``."""
        rows = group.rows if isinstance(group, EnsembleGroup) else list(group)
        return torch.from_numpy(np.stack([self.read(int(r)) for r in rows]))
