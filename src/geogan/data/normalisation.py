"""Normalisation statistics: computed by streaming, stored as a small JSON file.

Statistics (mean, std, min, max, count of finite values) are of the
*pre-transformed* values (after ``log1p`` when configured, before
normalisation), ignoring NaN and +-inf. They are accumulated chunk by chunk
(Chan et al. parallel update of count/mean/M2 in float64, plus min/max), so
memory stays at one chunk however long the record is, and partial results from
several workers or ranks can be merged.

Degenerate fields:
- zero variance (a constant field, e.g. a land-sea mask that is all land): std
  is stored as 1 with a warning, so the field normalises to 0 instead of NaN;
  ``minmax``/``max`` with a zero range likewise divide by 1 (see transforms);
- no finite value at all: a :class:`DataError` (the variable or the selected
  times are wrong; normalising it would only produce NaN).

File format (``save``/``load``, JSON)::

    {"format": "geogan-normalisation", "version": 1,
     "variables": {"precip": {"transform": {"log1p": true, "log1p_scale": 1.0, "norm": "zscore"},
                              "mean": ..., "std": ..., "min": ..., "max": ..., "count": ...}}}
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geogan.config.schema import TransformConfig
from geogan.core.atomic import atomic_write_text
from geogan.core.errors import DataError
from geogan.data.transforms import DEFAULT_TRANSFORM, Transforms, VariableTransform, pre_forward

FORMAT = "geogan-normalisation"
VERSION = 1


@dataclass(frozen=True)
class VarStats:
    """Statistics of one variable's pre-transformed values (physical units, or log1p of them)."""

    mean: float
    std: float
    min: float
    max: float
    count: int


class StatsAccumulator:
    """Streaming count/mean/variance/min/max of finite values (float64), one chunk at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf

    def update(self, chunk: np.ndarray) -> StatsAccumulator:
        """Add the finite values of ``chunk`` (any shape)."""
        values = np.asarray(chunk)
        values = values[np.isfinite(values)].astype(np.float64, copy=False)
        if values.size == 0:
            return self
        other = StatsAccumulator()
        other.count = int(values.size)
        other.mean = float(values.mean())
        other.m2 = float(np.square(values - other.mean).sum())
        other.min = float(values.min())
        other.max = float(values.max())
        return self.merge(other)

    def merge(self, other: StatsAccumulator) -> StatsAccumulator:
        """Fold ``other`` into this accumulator (Chan's parallel update)."""
        if other.count == 0:
            return self
        n = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / n
        self.m2 += other.m2 + delta * delta * self.count * other.count / n
        self.count = n
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def result(self, name: str = "variable") -> VarStats:
        """Final statistics (population std); zero variance gives std 1 with a warning."""
        if self.count == 0:
            raise DataError(
                f"{name!r} has no finite values in the selected (training) times; "
                "check the variable, its missing-value encoding and the time range"
            )
        std = math.sqrt(max(self.m2 / self.count, 0.0))
        if std == 0.0:
            warnings.warn(
                f"{name!r} is constant ({self.mean:g}) over the training data; using std=1 so it normalises to a constant",
                stacklevel=2,
            )
            std = 1.0
        return VarStats(mean=self.mean, std=std, min=self.min, max=self.max, count=self.count)


class Normalisation(Transforms):
    """Per-variable statistics plus transform settings: ``forward(x, var)`` / ``inverse(y, var)``.

    Args:
        stats: statistics per variable name.
        transforms: transform settings per variable; variables without one use zscore.
    """

    def __init__(
        self, stats: Mapping[str, VarStats], transforms: Mapping[str, TransformConfig] | None = None
    ) -> None:
        transforms = dict(transforms or {})
        self.stats = dict(stats)
        self.transforms = {v: transforms.get(v, DEFAULT_TRANSFORM) for v in self.stats}
        super().__init__(
            {
                v: VariableTransform(
                    self.transforms[v], mean=s.mean, std=s.std, min=s.min, max=s.max
                )
                for v, s in self.stats.items()
            }
        )

    @classmethod
    def compute(
        cls,
        chunks: Mapping[str, Iterable[np.ndarray]],
        transforms: Mapping[str, TransformConfig] | None = None,
    ) -> Normalisation:
        """Statistics from an iterable of chunks per variable (physical units, any shapes).

        Only one chunk per variable is held at a time, so memory does not grow with the record.
        """
        transforms = dict(transforms or {})
        stats = {}
        for var, var_chunks in chunks.items():
            cfg = transforms.get(var, DEFAULT_TRANSFORM)
            acc = StatsAccumulator()
            for chunk in var_chunks:
                acc.update(pre_forward(np.asarray(chunk), cfg))
            stats[var] = acc.result(var)
        return cls(stats, transforms)

    def check_compatible(
        self, variables: Iterable[str], transforms: Mapping[str, TransformConfig]
    ) -> None:
        """DataError unless these statistics cover ``variables`` with the same transform settings."""
        for var in variables:
            if var not in self.stats:
                raise DataError(
                    f"normalisation statistics have no entry for {var!r} (they cover {', '.join(self.stats)}); "
                    "rerun prepare with --overwrite for the current variables"
                )
            want = transforms.get(var, DEFAULT_TRANSFORM)
            if want != self.transforms[var]:
                raise DataError(
                    f"normalisation statistics for {var!r} were computed with {self.transforms[var].model_dump()} "
                    f"but the config says {want.model_dump()}; rerun prepare with --overwrite"
                )

    def subset(self, variables: Iterable[str]) -> Normalisation:
        """The statistics of ``variables`` only."""
        variables = list(variables)
        return Normalisation(
            {v: self.stats[v] for v in variables}, {v: self.transforms[v] for v in variables}
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the file format in the module docstring)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "variables": {
                v: {"transform": self.transforms[v].model_dump(), **asdict(s)}
                for v, s in self.stats.items()
            },
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Normalisation:
        """Inverse of :meth:`to_dict`; a DataError for anything that is not geogan statistics."""
        if not isinstance(obj, Mapping) or obj.get("format") != FORMAT:
            raise DataError(
                "not a geogan normalisation file (missing 'format': 'geogan-normalisation')"
            )
        if int(obj.get("version", 0)) > VERSION:
            raise DataError(
                f"normalisation format version {obj['version']} is newer than this geogan reads ({VERSION}); upgrade geogan"
            )
        try:
            stats, transforms = {}, {}
            for var, entry in obj["variables"].items():
                entry = dict(entry)
                transforms[var] = TransformConfig(**entry.pop("transform", {}))
                stats[var] = VarStats(
                    mean=float(entry["mean"]),
                    std=float(entry["std"]),
                    min=float(entry["min"]),
                    max=float(entry["max"]),
                    count=int(entry["count"]),
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"normalisation statistics are malformed ({exc})") from None
        return cls(stats, transforms)

    def to_json(self) -> str:
        """The statistics as a JSON string."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Normalisation:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"normalisation statistics are not valid JSON ({exc})") from None
        return cls.from_dict(obj)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON file atomically (a crash never leaves a partial file)."""
        path = Path(path)
        atomic_write_text(path, self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Normalisation:
        path = Path(path)
        if not path.is_file():
            raise DataError(
                f"normalisation statistics {path} not found; run `geogan prepare` first or check data.stats_path"
            )
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Normalisation):
            return NotImplemented
        return self.stats == other.stats and self.transforms == other.transforms

    def __repr__(self) -> str:
        parts = ", ".join(f"{v}: mean={s.mean:.4g} std={s.std:.4g}" for v, s in self.stats.items())
        return f"Normalisation({parts})"
