"""Numbered run directories: ``<root>/00003-<name>/``."""

from __future__ import annotations

import re
from pathlib import Path

_NUMBERED = re.compile(r"^(\d{5})-(.+)$")


def next_run_dir(root: str | Path, name: str) -> Path:
    """Create and return ``root/NNNNN-name`` with NNNNN one more than the largest present."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := _NUMBERED.match(p.name))]
    n = max(numbers, default=-1) + 1
    while True:
        path = root / f"{n:05d}-{name}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # another process took this number
            n += 1


def latest_run_dir(root: str | Path, name: str | None = None) -> Path | None:
    """The highest-numbered run directory (optionally with this name), or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    runs = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := _NUMBERED.match(p.name)) and (name is None or m.group(2) == name)
    ]
    return max(runs)[1] if runs else None
