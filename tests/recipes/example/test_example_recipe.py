"""The example recipe proves the plug-in contract: a recipe is one folder, found by discovery,
with its own schema, presets and commands; a third-party package adds one by entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import geogan
from geogan.cli.main import main
from geogan.core.errors import ConfigError
from geogan.recipes import get_recipe
from geogan.recipes.config import load_run_config
from geogan.recipes.example.fields import random_field

SRC = Path(geogan.__file__).parent
FOLDER = SRC / "recipes" / "example"


def test_adding_the_recipe_touched_no_file_outside_its_folder():
    # nothing in the package outside recipes/example/ imports it or names it as a recipe
    pattern = re.compile(r"recipes[./]example|recipe\s*[:=]\s*['\"]?example|\"example\"|'example'")
    offenders = [
        str(p.relative_to(SRC))
        for p in SRC.rglob("*")
        if p.is_file()
        and p.suffix in {".py", ".yaml", ".yml", ".toml", ".txt", ".sbatch"}
        and FOLDER not in p.parents
        and pattern.search(p.read_text(errors="ignore"))
    ]
    assert offenders == []
    pyproject = (SRC.parents[1] / "pyproject.toml").read_text()
    assert "example" not in pyproject  # no entry point or package data needed for it


def test_discovered_with_schema_presets_and_commands():
    recipe = get_recipe("example")
    assert recipe.presets_dir() == FOLDER / "presets"
    cfg = load_run_config("example/fields32", ["data.size=16"])
    assert type(cfg).__name__ == "ExampleConfig" and cfg.data.size == 16
    assert cfg.train.optimizers["generator"].lr == pytest.approx(2e-4)
    with pytest.raises(ConfigError, match="data.sise"):  # the recipe's own keys are checked
        load_run_config("example/fields32", ["data.sise=16"])
    assert "example-fields" in recipe.commands()


def test_truth_fields_have_the_power_law_spectrum():
    from geogan.evaluation.metrics import rapsd

    fields = np.stack([random_field(64, 3.0, s) for s in range(20)])
    p = rapsd(fields)
    k = np.arange(4, 25)
    slope = np.polyfit(np.log(k), np.log(p[k]), 1)[0]
    assert slope == pytest.approx(-3.0, abs=0.3)
    assert fields.std(axis=(1, 2)) == pytest.approx(np.ones(20), abs=1e-5)


def test_train_generate_evaluate_and_extra_command_through_the_cli(tmp_path):
    run = tmp_path / "run"
    args = ["-q", "train", "example/fields32", "--run-dir", str(run)]
    assert main([*args, "train.steps=3", "train.time_limit_minutes=null", "data.size=16"]) == 0
    assert (
        main(
            [
                "-q",
                "generate",
                str(run / "model.safetensors"),
                "--out",
                str(tmp_path / "m.nc"),
                "--members",
                "3",
            ]
        )
        == 0
    )
    with xr.open_dataset(tmp_path / "m.nc") as ds:
        assert ds["field"].shape == (3, 16, 16) and np.isfinite(ds["field"].values).all()
        assert json.loads(ds.attrs["geogan_config"])["recipe"] == "example"
    assert main(["-q", "evaluate", str(tmp_path / "m.nc"), "--out", str(tmp_path / "rep")]) == 0
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert metrics["members"] == 3 and metrics["lsd_db"] > 0
    assert main(["-q", "example-fields", "--out", str(tmp_path / "f.nc"), "--n", "2"]) == 0
    with xr.open_dataset(tmp_path / "f.nc") as ds:
        np.testing.assert_array_equal(ds["field"].values[0], random_field(32, 3.0, _seed(0)))


def _seed(i: int) -> int:
    from geogan.core.seeding import derive_seed

    return derive_seed(0, i)


def test_third_party_recipe_found_through_an_entry_point(tmp_path):
    pkg = tmp_path / "site" / "thirdparty_recipe"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """
            from geogan.recipes.base import Recipe

            class ThirdRecipe(Recipe):
                name = "third"
                description = "a recipe from another package"
            """
        )
    )
    dist = tmp_path / "site" / "thirdparty_recipe-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-recipe\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[geogan.recipes]\nthird = thirdparty_recipe:ThirdRecipe\n"
    )
    code = (
        "import json; from geogan.recipes import get_recipe, all_recipes;"
        "r = get_recipe('third');"
        "print(json.dumps([r.description, sorted(x.name for x in all_recipes())]))"
    )
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    description, names = json.loads(out.stdout)
    assert description == "a recipe from another package"
    assert {"third", "downscaling", "example"} <= set(names)
