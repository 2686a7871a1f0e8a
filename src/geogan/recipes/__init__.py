"""Recipes: plug-ins that each build their models, data, phases and commands from a config.

Built-in recipes are the sub-packages of this package; third-party packages add recipes
through the ``geogan.recipes`` entry-point group (``name = "package.module:RecipeClass"``
or a module that registers itself on import). See :mod:`geogan.recipes.base`.
"""

from __future__ import annotations

import importlib
import json
import logging
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from geogan.core.errors import CheckpointError, ConfigError, DataError
from geogan.core.registry import RECIPES
from geogan.recipes.base import Recipe

__all__ = [
    "Recipe",
    "all_recipes",
    "get_recipe",
    "load_recipes",
    "recipe_for_checkpoint",
    "recipe_for_ensemble",
]

ENTRY_POINT_GROUP = "geogan.recipes"
log = logging.getLogger(__name__)
_LOADED = False
_NOT_RECIPES = {"base", "config", "run"}  # modules of this package that are not recipes


def load_recipes(*, force: bool = False) -> None:
    """Import every built-in recipe package and every ``geogan.recipes`` entry point once."""
    global _LOADED
    if _LOADED and not force:
        return
    _LOADED = True
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg and info.name not in _NOT_RECIPES:
            importlib.import_module(f"{__name__}.{info.name}")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in RECIPES:
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plug-in must not break every other recipe
            log.warning("recipe plug-in %r (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        if isinstance(obj, type) and issubclass(obj, Recipe) and ep.name not in RECIPES:
            RECIPES.register(ep.name)(obj)


def get_recipe(name: str) -> Recipe:
    """A fresh instance of the recipe registered as ``name`` (ConfigError naming the closest)."""
    load_recipes()
    if not isinstance(name, str):
        raise ConfigError(f"recipe must be a name, got {name!r}")
    return RECIPES.get(name)()


def all_recipes() -> list[Recipe]:
    """One instance of every registered recipe, sorted by name."""
    load_recipes()
    return [cls() for _, cls in RECIPES.items()]


def _recipe_of_config(cfg: Any, where: str) -> Recipe:
    name = cfg.get("recipe") if isinstance(cfg, dict) else None
    if not name:
        raise ConfigError(f"{where} does not say which recipe made it (no 'recipe' in its config)")
    return get_recipe(name)


def recipe_for_checkpoint(path: str | Path) -> Recipe:
    """The recipe that wrote a checkpoint (from its stored config; the header alone is read)."""
    from geogan.core.checkpoint import read_metadata

    meta = read_metadata(path)  # header only; sizes and the metadata checksum verified
    if meta.get("kind") not in ("export", "resume"):
        raise CheckpointError(
            f"{path} is not a geogan checkpoint (kind={meta.get('kind')!r}); use "
            "<run>/model.safetensors or checkpoints/export_*.safetensors"
        )
    return _recipe_of_config(meta.get("config"), f"checkpoint {path}")


def recipe_for_ensemble(path: str | Path) -> Recipe:
    """The recipe that wrote an output file (from its ``geogan_config`` attribute)."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise DataError(f"ensemble {path} not found; run 'geogan generate' first or check the path")
    try:
        engine = "zarr" if path.is_dir() or path.suffix == ".zarr" else None
        with xr.open_dataset(path, engine=engine) as ds:
            cfg = json.loads(ds.attrs.get("geogan_config", "{}"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read ensemble {path}: {exc}") from None
    return _recipe_of_config(cfg, f"ensemble {path}")
