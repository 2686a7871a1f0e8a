"""Fixtures of the land-cover recipe tests (helpers in ``lc_helpers``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from lc_helpers import tiny_overrides, write_image_list  # noqa: E402


@pytest.fixture()
def image_list(tmp_path):
    return write_image_list(tmp_path / "tiles")


@pytest.fixture()
def overrides(image_list, tmp_path):
    return tiny_overrides(image_list, tmp_path / "runs")
