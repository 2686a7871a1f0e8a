"""Recipe-aware configuration: the ``recipe:`` key selects the schema that validates a config.

Use these instead of :func:`geogan.config.load_config` wherever a run config is read
(CLI, sweeps, checkpoints): they pick the schema the recipe registers and find the
presets every recipe ships (``geogan train downscaling/radar_knmi_x8``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from geogan.config import config_from_dict, load_config
from geogan.config.schema import RunConfig


def load_run_config(
    path: str | os.PathLike | None, overrides: Iterable[str] = (), **kwargs: Any
) -> RunConfig:
    """Read, merge, override and validate a run config with its recipe's schema.

    ``path``: a YAML file or a packaged preset name (``downscaling/radar_knmi_x8``).
    Raises :class:`~geogan.core.errors.ConfigError` (one line) for every user mistake.
    """
    return load_config(path, list(overrides), **kwargs)


def run_config_from_dict(
    data: Mapping[str, Any], *, source: str | None = None, overrides: Iterable[str] = ()
) -> RunConfig:
    """Validate a plain mapping (e.g. a config stored in a checkpoint) with its recipe's schema."""
    return config_from_dict(data, source=source, overrides=list(overrides))
