"""Recipe-aware configuration: the ``recipe:`` key selects the schema that validates a config.

Use these instead of :func:`geogan.config.load_config` wherever a run config is read
(CLI, sweeps, checkpoints): they pick the schema the recipe registers, migrate keys of
older versions of that recipe, and find the presets every recipe ships, by
``<recipe>/<preset>`` (``geogan train downscaling/radar_knmi_x8``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from geogan.config.loader import PresetDirs, load_tree, tree_from_dict, validate_tree
from geogan.config.schema import RunConfig
from geogan.core.errors import ConfigError
from geogan.core.registry import RECIPES
from geogan.recipes import all_recipes, get_recipe, load_recipes

log = logging.getLogger(__name__)

__all__ = [
    "absolute_paths",
    "expand_sweep",
    "load_run_config",
    "preset_dirs",
    "run_config_from_dict",
    "validate_run_tree",
]


def preset_dirs() -> dict[str, Path]:
    """``{recipe name: its presets folder}`` for every recipe that ships presets."""
    return {r.name: d for r in all_recipes() if (d := r.presets_dir()) is not None}


def validate_run_tree(
    tree: dict[str, Any], prov: dict | None = None, top: list[str] | None = None
) -> RunConfig:
    """Validate a merged config tree with the schema of the recipe it names."""
    load_recipes()
    name = tree.get("recipe")
    if name is None:
        raise ConfigError(
            "the config does not say which recipe it is for; add a top-level "
            f"'recipe:' key (one of: {', '.join(RECIPES.names())})"
        )
    recipe = get_recipe(name)
    for note in recipe.migrate_config(tree):
        log.warning("config: %s (renamed; update the config file)", note)
    return validate_tree(tree, recipe.schema(), prov, top)


def load_run_config(
    path: str | os.PathLike | None,
    overrides: Iterable[str] = (),
    *,
    preset_dir: PresetDirs = None,
) -> RunConfig:
    """Read, merge, override and validate a run config with its recipe's schema.

    ``path``: a YAML file or a recipe preset (``downscaling/radar_knmi_x8``).
    ``preset_dir`` replaces the recipes' preset folders (for tests).
    Raises :class:`~geogan.core.errors.ConfigError` (one line) for every user mistake.
    """
    dirs = preset_dirs() if preset_dir is None else preset_dir
    tree, prov, top = load_tree(path, list(overrides), preset_dir=dirs)
    return validate_run_tree(tree, prov, top)


def run_config_from_dict(
    data: Mapping[str, Any], *, source: str | None = None, overrides: Iterable[str] = ()
) -> RunConfig:
    """Validate a plain mapping (e.g. a config stored in a checkpoint) with its recipe's schema."""
    tree, prov = tree_from_dict(data, source=source, overrides=list(overrides))
    return validate_run_tree(tree, prov)


def expand_sweep(path: str | os.PathLike) -> list:
    """The runs of an experiment file (:mod:`geogan.config.sweep`), each config validated with
    its recipe's schema."""
    from geogan.config.sweep import expand_experiment

    return expand_experiment(
        path, resolver=lambda defaults, dotted: load_run_config(defaults, dotted)
    )


def _is_path_key(key: str) -> bool:
    return key == "path" or key.endswith(("_path", "_store", "_file", "_dir"))


def absolute_paths(cfg: RunConfig, base: str | os.PathLike | None = None) -> RunConfig:
    """``cfg`` with every relative file path made absolute (against ``base``, default the
    working directory), so that a run's saved config and its exports do not depend on the
    folder they are used from. Path fields are ``path``, ``*_path``, ``*_store``, ``*_file``
    and ``*_dir`` keys, wherever they are (data sources, statistics, patch stores,
    ``init_from``); URLs (``s3://...``) are left as they are."""
    root = Path(base or os.getcwd())

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if isinstance(k, str) and _is_path_key(k) and isinstance(v, str) and v:
                    if "://" not in v and not Path(v).expanduser().is_absolute():
                        v = str((root / Path(v).expanduser()).resolve())
                    out[k] = v
                else:
                    out[k] = walk(v)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return type(cfg).model_validate(walk(cfg.model_dump(mode="json")))
