"""The ``prepare`` step of recipe 1: statistics once, and optionally a Zarr store of patches.

Every output is written atomically (temporary name, then rename) and an
existing output is refused unless ``overwrite``; both outputs are checked
before any work starts, so a refusal costs nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from geogan.core.atomic import check_writable
from geogan.core.errors import ConfigError, DataError
from geogan.data.normalisation import Normalisation
from geogan.data.patch_store import ZarrPatchDataset, write_patch_store
from geogan.recipes.downscaling.config import DataConfig
from geogan.recipes.downscaling.data import DownscalingData
from geogan.recipes.downscaling.samples import PatchDataset

__all__ = ["ZarrPatchDataset", "patch_store_attrs", "prepare"]


def patch_store_attrs(dataset: PatchDataset) -> dict[str, Any]:
    """What a recipe-1 patch store records besides the arrays: variables, factor, normalisation."""
    v = dataset.variables
    norm = dataset.normalisation
    return {
        "input_vars": list(v.input),
        "target_vars": list(v.target),
        "constant_vars": list(v.constants),
        "factor": int(dataset.factor),
        "patch_size": int(dataset.patch_size),
        "seed": int(dataset.seed),
        "normalisation": norm.to_dict() if isinstance(norm, Normalisation) else None,
    }


def _from_cfg(path: str | None, base_dir: Path | None) -> Path | None:
    if path is None:
        return None
    p = Path(path).expanduser()
    return p if p.is_absolute() or base_dir is None else base_dir / p


def prepare(
    cfg: DataConfig,
    base_dir: str | os.PathLike | None,
    stats_path: str | os.PathLike | None,
    patch_store: str | os.PathLike | None,
    n_patches: int,
    seed: int,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Compute normalisation statistics (training times only), save them, optionally write patches.

    Args:
        cfg: the ``data`` section; relative paths in it are resolved against ``base_dir``.
        stats_path: JSON file for the statistics (None: ``cfg.stats_path``).
        patch_store: Zarr folder for ``n_patches`` training patches (None: ``cfg.patch_store``;
            both None: no patches).
        n_patches: number of patches (items ``0 .. n_patches - 1`` of the patch dataset with ``seed``).
        seed: seed of the patch dataset.
        overwrite: replace existing outputs instead of refusing them.
        progress: ``progress(done, total)`` while patches are written.

    Returns:
        A JSON-able summary: paths, time counts, class counts, variables, shapes, seconds.
    """
    base = Path(base_dir) if base_dir is not None else None
    stats_file = Path(stats_path) if stats_path is not None else _from_cfg(cfg.stats_path, base)
    if stats_file is None:
        raise ConfigError(
            "no path for the normalisation statistics: set data.stats_path or pass --stats"
        )
    store_path = Path(patch_store) if patch_store is not None else _from_cfg(cfg.patch_store, base)
    if store_path is not None and n_patches <= 0:
        raise DataError(f"a patch store needs a positive number of patches, got {n_patches}")
    check_writable(stats_file, overwrite)
    if store_path is not None:
        check_writable(store_path, overwrite)

    started = time.perf_counter()
    # lazy: statistics, candidates and patches stream over time from the files, so the
    # memory prepare needs does not grow with the length of the record
    data = DownscalingData.from_config(cfg, base_dir=base, lazy=True)
    try:
        return _prepare(data, cfg, stats_file, store_path, n_patches, seed, progress, started)
    finally:
        data.close()


def _prepare(
    data: DownscalingData,
    cfg: DataConfig,
    stats_file: Path,
    store_path: Path | None,
    n_patches: int,
    seed: int,
    progress: Callable[[int, int], None] | None,
    started: float,
) -> dict[str, Any]:
    """The work of :func:`prepare` on opened data (statistics, candidates, patches)."""
    built = time.perf_counter()
    # counted over one pass (the statistics over the training times), not every later read
    data.reset_value_counts()
    norm = data.compute_normalisation()
    values = data.value_counts()
    data.report_values()
    data.candidates()  # fail here, not at training, when no patch can be sampled
    norm.save(stats_file)
    data.normalisation = norm
    summary: dict[str, Any] = {
        "stats_path": str(stats_file),
        "patch_store": str(store_path) if store_path is not None else None,
        "n_patches": 0,
        "seed": int(seed),
        **data.summary(),
        "values": values,
        "normalisation": norm.to_dict(),
    }
    if store_path is not None:
        dataset = data.patch_dataset(norm, seed=seed, length=n_patches)
        write_patch_store(
            store_path,
            dataset.sample,
            n_patches,
            attrs=patch_store_attrs(dataset),
            binary_keys=["mask"],
            progress=progress,
        )
        summary["n_patches"] = int(n_patches)
    summary["seconds"] = {
        "load": round(built - started, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    return summary
