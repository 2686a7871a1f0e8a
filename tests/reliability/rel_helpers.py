"""Helpers for the reliability tests (issue 4); not a test module.

The CLI's tiny radar-like data set and config come from ``tests/tiny_data.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import tiny_data as cli_data
import torch
import xarray as xr
import yaml


def write_config(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def make_tiny(folder: Path) -> dict:
    """The tiny data set (rain.nc, constants.nc) and config (cfg.yaml) in ``folder``."""
    truth = cli_data.make_rain(folder / "rain.nc")
    constants = cli_data.make_constants(folder / "constants.nc")
    cfg = cli_data.base_config(truth, constants, folder / "runs")
    return {
        "dir": folder,
        "truth": truth,
        "constants": constants,
        "config": write_config(cfg, folder / "cfg.yaml"),
        "cfg": cfg,
    }


class one_thread:
    """Torch on one thread inside the block: fast on a shared 2-core machine, and the same
    thread count as a subprocess started with OMP_NUM_THREADS=1 (for bitwise comparisons)."""

    def __enter__(self):
        self._threads = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self._threads)


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """``geogan <argv>`` in this process on one thread: (exit code, stderr stripped)."""
    from geogan.cli.main import main

    with one_thread():
        code = main(["--quiet", *argv])
    return code, capsys.readouterr().err.strip()


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    """Exit code 2 and a single ``error: ...`` line on stderr naming ``words``."""
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


def load_truth(tiny) -> xr.Dataset:
    """The tiny data set's truth file, loaded into memory (to modify and write elsewhere)."""
    with xr.open_dataset(tiny["truth"]) as ds:
        return ds.load()


def config_with_truth(tiny, ds: xr.Dataset, name: str, **source) -> dict:
    """The tiny config reading the truth from ``ds`` written to ``name`` (``source``: more
    ``data.truth`` keys)."""
    path = tiny["dir"] / name
    ds.to_netcdf(path)
    cfg = json.loads(json.dumps(tiny["cfg"]))
    cfg["data"]["truth"].update({"path": str(path), **source})
    return cfg
