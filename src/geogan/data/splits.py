"""Time axes: train/test splits, selections (``--times``), and calendar-independent keys.

Times are ``datetime64`` (standard calendar) or ``cftime`` objects (``noleap``,
``360_day``, ``all_leap``, ``julian``, ...), as xarray decodes them; everything here works
on both, and keeps the calendar: nothing is converted to the standard calendar.
"""

from __future__ import annotations

import math
import re

import numpy as np

from geogan.config.schema import SplitConfig
from geogan.core.errors import ConfigError, DataError

__all__ = ["day_keys", "is_dates", "parse_time", "select_times", "split_times", "time_seconds"]

_ISO = re.compile(
    r"^\s*(-?\d{1,4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2})(?::(\d{1,2})(?::(\d{1,2}(?:\.\d*)?))?)?)?\s*$"
)


def _is_cftime(t: object) -> bool:
    return hasattr(t, "calendar") and hasattr(t, "timetuple")


def is_dates(times: np.ndarray) -> bool:
    """Whether a time axis holds dates (datetime64 or cftime), not plain numbers."""
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        return True
    return times.dtype == object and times.size > 0 and all(_is_cftime(t) for t in times.flat)


def day_keys(times: np.ndarray) -> np.ndarray:
    """An integer per time that is the same for times of the same calendar day (``[T]``)."""
    times = np.asarray(times)
    if np.issubdtype(times.dtype, np.datetime64):
        return times.astype("datetime64[D]").astype(np.int64)
    if is_dates(times):
        return np.array([t.year * 10_000 + t.month * 100 + t.day for t in times], dtype=np.int64)
    raise DataError(f"the time axis is not dates ({times.dtype})")


def time_seconds(t: object) -> int:
    """Seconds since 1970-01-01 in the time's own calendar (a stable integer key per time)."""
    if isinstance(t, np.datetime64):
        return int(np.datetime64(t, "s").astype(np.int64))
    if _is_cftime(t):
        import cftime

        return int(round(cftime.date2num(t, "seconds since 1970-01-01", calendar=t.calendar)))
    return int(t)  # a numeric time axis


def split_times(times: np.ndarray, split: SplitConfig) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices into sorted ``times`` (``[T]``): the last share of each group is test.

    ``group_by: day`` groups by calendar day (datetime64 or cftime times, in their own
    calendar); ``all`` is one group. A group of ``n`` times holds out its last
    ``floor(n * holdout_fraction + 0.5)``.
    """
    times = np.asarray(times)
    if split.group_by == "day":
        if not is_dates(times):
            raise DataError(
                f"data.split.group_by is 'day' but the time axis is not dates ({times.dtype}); "
                "use data.split.group_by: all"
            )
        _, group = np.unique(day_keys(times), return_inverse=True)
    else:
        group = np.zeros(times.size, dtype=np.int64)
    train, test = [], []
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        n_test = int(math.floor(members.size * split.holdout_fraction + 0.5))
        train.append(members[: members.size - n_test])
        test.append(members[members.size - n_test :])
    train_idx = np.sort(np.concatenate(train)) if train else np.zeros(0, dtype=np.int64)
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, dtype=np.int64)
    return train_idx.astype(np.int64), test_idx.astype(np.int64)


def parse_time(text: str, like: object) -> object:
    """``YYYY-MM-DD[THH[:MM[:SS]]]`` as a time comparable with ``like`` (datetime64 or cftime
    of ``like``'s calendar, so ``2001-02-30`` is a valid 360_day date)."""
    match = _ISO.match(str(text))
    if match is None:
        raise ConfigError(
            f"cannot read {text!r} as a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS]"
        )
    year, month, day, hour, minute, second = match.groups()
    sec = float(second or 0)
    fields = [int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(sec)]
    if _is_cftime(like):
        try:
            return type(like)(*fields, calendar=like.calendar)
        except ValueError as exc:
            raise ConfigError(
                f"{text!r} is not a date of the {like.calendar} calendar ({exc})"
            ) from None
    try:
        return np.datetime64(
            f"{fields[0]:04d}-{fields[1]:02d}-{fields[2]:02d}T{fields[3]:02d}:{fields[4]:02d}:{fields[5]:02d}",
            "s",
        )
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not a valid date ({exc})") from None


_DATE_ONLY = re.compile(r"^\s*-?\d{1,4}-\d{1,2}-\d{1,2}\s*$")


def select_times(
    times: np.ndarray, spec: str, train_index: np.ndarray, test_index: np.ndarray
) -> np.ndarray:
    """Indices into ``times`` chosen by a ``--times`` spec (sorted, unique).

    ``test`` / ``train``: the config's split; ``all``; ``START/END``: every time in the
    inclusive range (an END given as a date alone covers that whole day; either end may be
    empty: ``/2021-06-02``); ``T1,T2,...``: exactly these times (each must exist).
    """
    spec = str(spec).strip()
    times = np.asarray(times)
    if spec == "test":
        idx = np.asarray(test_index)
    elif spec == "train":
        idx = np.asarray(train_index)
    elif spec == "all":
        idx = np.arange(times.size)
    elif not is_dates(times):
        raise ConfigError(
            f"--times {spec!r}: the time axis is not dates, so only test, train or all apply"
        )
    elif "/" in spec:
        start, _, end = spec.partition("/")
        like = times.flat[0]
        keep = np.ones(times.size, dtype=bool)
        if start.strip():
            keep &= times >= parse_time(start, like)
        if end.strip():
            stop = parse_time(end, like)
            if _DATE_ONLY.match(end):
                keep &= day_keys(times) <= day_keys(np.array([stop]))[0]
            else:
                keep &= times <= stop
        idx = np.flatnonzero(keep)
    elif "," in spec or _ISO.match(spec):
        like = times.flat[0]
        idx = []
        for part in [p for p in spec.split(",") if p.strip()]:
            t = parse_time(part, like)
            hits = np.flatnonzero(times == t)
            if hits.size == 0:
                raise ConfigError(
                    f"--times: {part.strip()!r} is not one of the data's times "
                    f"({_describe(times)}); give a range START/END instead"
                )
            idx.extend(hits.tolist())
        idx = np.asarray(sorted(set(idx)), dtype=np.int64)
    else:
        raise ConfigError(
            f"--times must be test, train, all, a range START/END or a list T1,T2; got {spec!r}"
        )
    if len(idx) == 0:
        raise ConfigError(
            f"--times {spec!r} selects no time of the data ({_describe(times)}); use --times all"
        )
    return np.asarray(idx, dtype=np.int64)


def _describe(times: np.ndarray) -> str:
    return f"{times.flat[0]} .. {times.flat[-1]}, {times.size} times" if times.size else "no times"
