"""``geogan index FOLDER``: write an image list (JSON/YAML) for a folder of images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geogan.core.atomic import atomic_write_text, check_writable
from geogan.data.image_list import build_index, list_format


def index_command(
    folder: Path,
    out: Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Index ``folder`` (one sub-folder per key, optionally inside domain folders) into a list.

    Example::

        geogan index data/floods --out data/floods/index.yaml --val-fraction 0.2 --seed 1

    The layouts accepted are those of :func:`geogan.data.image_list.build_index`. Writes the
    list (default ``FOLDER/index.json``) and, beside it, ``<list>.summary.json``; both are
    written atomically and neither is replaced unless ``overwrite``.

    Returns:
        The summary: ``{"output", "entries", "keys" (files per key), "domains", "train",
        "val", "val_fraction", "seed"}``.
    """
    folder = Path(folder)
    out = Path(out) if out is not None else folder / "index.json"
    list_format(out)  # a bad suffix is reported before anything is scanned
    summary_path = Path(f"{out}.summary.json")
    # Both outputs are checked first, so a refusal leaves neither half-replaced.
    check_writable(out, overwrite)
    check_writable(summary_path, overwrite)
    doc = build_index(
        folder, out, val_fraction=val_fraction, seed=seed, overwrite=overwrite, progress=not quiet
    )
    splits = [e.get("split") for e in doc["entries"]]
    summary = {
        "output": str(out),
        "entries": len(doc["entries"]),
        "keys": doc["counts"],
        "domains": doc["domains"],
        "train": splits.count("train"),
        "val": splits.count("val"),
        "val_fraction": val_fraction,
        "seed": seed,
    }
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")
    return summary
