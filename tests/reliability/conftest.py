"""Fixtures for the reliability tests (issue 4): the CLI's tiny data set and a trained model."""

from __future__ import annotations

import pytest
from rel_helpers import make_tiny, one_thread


@pytest.fixture()
def tiny(tmp_path):
    """Paths of the tiny data set and a config that trains on it in seconds (as in tests/cli)."""
    return make_tiny(tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained one step on the tiny data, shared by a module's tests (do not modify it)."""
    from geogan.cli.main import main

    tiny = make_tiny(tmp_path_factory.mktemp("trained"))
    run = tiny["dir"] / "run"
    with one_thread():
        code = main(
            ["--quiet", "train", str(tiny["config"]), "--run-dir", str(run), "train.steps=1"]
        )
    assert code == 0
    return {**tiny, "run": run, "model": run / "model.safetensors"}
