"""Typed configuration: pydantic schemas and the YAML loader (``defaults:``, overrides)."""

from geogan.config.loader import (
    CONFIG_FILENAME,
    config_from_dict,
    config_to_yaml,
    list_presets,
    load_config,
    packaged_presets_dir,
    parse_override,
    save_resolved_config,
)
from geogan.config.schema import RunConfig

__all__ = [
    "CONFIG_FILENAME",
    "RunConfig",
    "config_from_dict",
    "config_to_yaml",
    "list_presets",
    "load_config",
    "packaged_presets_dir",
    "parse_override",
    "save_resolved_config",
]
