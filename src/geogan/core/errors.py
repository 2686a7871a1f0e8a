"""User-facing errors.

Every error a user can cause by bad input or configuration is a
:class:`GeoganError`. The CLI prints its message as one line and exits with
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class GeoganError(Exception):
    """A problem the user can fix. The message says what is wrong and how to fix it."""

    exit_code = 2


class ConfigError(GeoganError):
    """Invalid configuration: unknown key, wrong type, impossible value."""


class DataError(GeoganError):
    """Invalid or inconsistent input data: missing file or variable, grids that do not nest."""


class CheckpointError(GeoganError):
    """A checkpoint that cannot be loaded safely or does not match the run."""


class OutputExistsError(GeoganError):
    """An output path exists and ``--overwrite`` was not given."""


class OutputWriteError(GeoganError):
    """An output could not be written: disk full, quota exceeded, file too large, no permission."""


class TrainingDivergedError(GeoganError):
    """Training produced non-finite values too many times in a row."""
