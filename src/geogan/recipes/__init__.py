"""Recipes: each builds models, losses, phases and datasets from a RunConfig.

A recipe is an object registered in ``geogan.core.registry.RECIPES`` with
methods ``prepare``, ``build_training``, ``generate`` and ``evaluate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geogan.core.errors import DataError
from geogan.core.registry import RECIPES


def _load_all() -> None:
    # Importing registers; recipes import lazily so `geogan info` stays fast.
    from geogan.recipes import downscaling  # noqa: F401


def get_recipe(name: str) -> Any:
    _load_all()
    return RECIPES.get(name)()


def recipe_for_checkpoint(path: str | Path) -> Any:
    """The recipe that wrote an export checkpoint (from its stored config)."""
    from geogan.core.checkpoint import load_checkpoint

    _, meta = load_checkpoint(path)
    return get_recipe(meta.get("config", {}).get("recipe", "downscaling"))


def recipe_for_ensemble(path: str | Path) -> Any:
    """The recipe that wrote an ensemble file (from its ``geogan_config`` attribute)."""
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
    return get_recipe(cfg.get("recipe", "downscaling"))
