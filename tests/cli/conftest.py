"""Fixtures of the CLI tests: a tiny data set and a config that trains on it in seconds."""

from __future__ import annotations

import pytest
import yaml
from tiny_data import base_config, make_constants, make_rain


@pytest.fixture()
def tiny(tmp_path):
    """Paths of a tiny data set and a config file that trains on it in seconds."""
    truth = make_rain(tmp_path / "rain.nc")
    constants = make_constants(tmp_path / "constants.nc")
    cfg = base_config(truth, constants, tmp_path / "runs")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return {"dir": tmp_path, "truth": truth, "constants": constants, "config": cfg_path, "cfg": cfg}
