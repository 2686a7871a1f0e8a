"""Lower layers never import higher ones (DESIGN.md), checked on the source with ast."""

from __future__ import annotations

import ast
from pathlib import Path

import geogan

SRC = Path(geogan.__file__).parent
ALLOWED = {
    "core": {"core"},
    "config": {"core", "config"},
    "nn": {"core", "nn"},
    "models": {"core", "nn", "models"},
    "losses": {"core", "nn", "models", "losses"},
    "data": {"core", "config", "data"},
    "training": {"core", "config", "training"},
    "inference": {"core", "inference"},
    "evaluation": {"core", "config", "evaluation"},
}


def _geogan_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "geogan" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_layers_import_only_lower_layers():
    violations = []
    for layer, allowed in ALLOWED.items():
        for path in (SRC / layer).rglob("*.py"):
            bad = _geogan_imports(path) - allowed - {"__init__"}
            if bad:
                violations.append(f"{path.relative_to(SRC)} imports {sorted(bad)}")
    assert not violations, "\n".join(violations)
