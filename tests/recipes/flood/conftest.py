"""Fixtures of the flood recipe tests: tiny rendered tiles in the ``geogan index`` layout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from flood_fixtures import make_lists, tiny_config  # noqa: E402


@pytest.fixture
def tiny_lists(tmp_path):
    """``(train list, test list)`` of 3 (train) / 2 (test) 32x32 tiles per domain."""
    return make_lists(tmp_path / "data")


@pytest.fixture
def tiny_cfg(tiny_lists, tmp_path):
    """A validated tiny flood config (trains 4 steps: 2 representation, 2 translation)."""
    from geogan.recipes.config import run_config_from_dict

    def make(**extra):
        return run_config_from_dict(tiny_config(*tiny_lists, tmp_path / "runs", **extra))

    return make
