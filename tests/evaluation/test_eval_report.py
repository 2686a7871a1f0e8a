"""Figures and the self-contained HTML report with metrics.json."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from PIL import Image

from geogan.config.schema import EvaluateConfig
from geogan.evaluation import evaluate, interpolate, scoring_mask, write_report
from geogan.evaluation.plots import make_figures, plot_sample_maps
from geogan.evaluation.report import best_direction, to_jsonable


@pytest.fixture(scope="module")
def result_and_sample():
    rng = np.random.default_rng(0)
    factor, t = 4, 3
    coarse = rng.gamma(0.6, 2.0, (t, 8, 8)).astype(np.float32)
    coarse[:, 0, 0] = np.nan
    truth = np.clip(
        interpolate(coarse, factor, "bilinear") + rng.normal(0, 0.3, (t, 32, 32)), 0, None
    )
    ens = np.clip(np.nan_to_num(truth)[None] + rng.normal(0, 0.5, (4, t, 32, 32)), 0, None)
    valid = scoring_mask(truth, coarse, factor)
    cfg = EvaluateConfig(fss_scales=[1, 4], pool_windows=[(4, 2)])
    result = evaluate(
        truth, {"gan": ens}, valid, cfg, coarse=coarse, factor=factor, nonnegative=True
    )
    sample = {"coarse": coarse[0], "truth": truth[0], "members": ens[:, 0], "valid": valid[0]}
    return result, sample


def test_figures_are_pngs(tmp_path, result_and_sample):
    result, sample = result_and_sample
    figures = make_figures(tmp_path, result, sample=sample, units="mm/h")
    assert set(figures) == {
        "sample_maps",
        "rank_histogram",
        "rank_histogram_nonzero",
        "rapsd",
        "fss",
        "scores",
    }
    for path in figures.values():
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_sample_maps_nan_is_grey(tmp_path):
    truth = np.ones((16, 16))
    truth[4:12, 4:12] = np.nan  # a hole inside the valid area -> grey
    members = np.stack([truth, truth + 1, truth + 2])
    path = plot_sample_maps(tmp_path / "maps.png", np.ones((4, 4)), truth, members)
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    grey = (pixels == [0xBD, 0xBD, 0xBD]).all(axis=1)
    assert grey.sum() > 100


def test_report_html_and_metrics_json(tmp_path, result_and_sample):
    result, sample = result_and_sample
    figures = make_figures(tmp_path / "fig", result, sample=sample, units="mm/h")
    path = write_report(
        tmp_path / "out", result, figures, title="test <run>", notes=["made by a test"]
    )
    page = path.read_text()
    assert path.name == "report.html"
    assert '<table id="metrics">' in page and "<th>crps</th>" in page and "<th>lanczos</th>" in page
    assert (
        "scored on exactly this set of pixels" in page
        and "ecdf" in page
        and "made by a test" in page
    )
    assert "test &lt;run&gt;" in page  # escaped
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(figures)
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    # self-contained: nothing fetched from elsewhere
    assert (
        "<script" not in page
        and "<link" not in page
        and "http://" not in page
        and "https://" not in page
    )
    loaded = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert loaded == to_jsonable(result)
    assert loaded["methods"]["gan"]["crps"] == pytest.approx(
        result["methods"]["gan"]["crps"], rel=0, abs=0
    )


def test_best_value_per_row_is_highlighted(tmp_path):
    methods = {
        "a": {
            "crps": 1.0,
            "ssr": 0.5,
            "bias": -0.1,
            "fss_1_4px": 0.7,
            "n_valid": 10,
            "x": float("nan"),
        },
        "b": {
            "crps": 2.0,
            "ssr": 1.1,
            "bias": 0.2,
            "fss_1_4px": 0.9,
            "n_valid": 10,
            "x": float("nan"),
        },
    }
    page = write_report(tmp_path, {"methods": methods}, {}, title="t").read_text()
    rows = dict(re.findall(r"<tr><th>([^<]+)</th>(.*?)</tr>", page))
    best = {k: re.findall(r'<td class="best">([^<]+)</td>', v) for k, v in rows.items()}
    assert best["crps"] == ["1"] and best["ssr"] == ["1.1"] and best["bias"] == ["-0.1"]
    assert best["fss_1_4px"] == ["0.9"] and best["n_valid"] == [] and best["x"] == []
    assert "&ndash;" in rows["x"]
    loaded = json.loads((tmp_path / "metrics.json").read_text())
    assert loaded["methods"]["a"]["x"] is None  # NaN -> null: strict JSON
    assert [best_direction(k) for k in ("crps_pool4s2", "lsd_db", "rank_max_ratio", "spread")] == [
        "min",
        "min",
        "one",
        None,
    ]


def test_sample_maps_crop_to_valid_area_and_zoom_on_the_core(tmp_path):
    from geogan.evaluation.plots import _core_window, _valid_box

    factor, n = 8, 320
    yy, xx = np.mgrid[:n, :n]
    disc = (yy - 170) ** 2 + (xx - 150) ** 2 < 100**2  # a radar disc inside a larger grid
    truth = np.where(disc, np.exp(-((yy - 200) ** 2 + (xx - 120) ** 2) / 50.0) * 20, np.nan)
    rows, cols = _valid_box(disc, factor)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (64, 272, 48, 256)
    assert disc[rows, cols].sum() == disc.sum()  # nothing valid cut off
    zr, zc = _core_window(truth, 96, factor)
    assert zr.stop - zr.start == 96 and zc.stop - zc.start == 96
    assert zr.start % factor == 0 and zc.start % factor == 0
    assert zr.start <= 200 < zr.stop and zc.start <= 120 < zc.stop  # the core is in the window
    members = np.stack([np.nan_to_num(truth) * s for s in (0.9, 1.0, 1.1)])
    coarse = np.nan_to_num(truth).reshape(n // factor, factor, n // factor, factor).mean((1, 3))
    one = plot_sample_maps(tmp_path / "one.png", coarse, truth, members, zoom=None)
    two = plot_sample_maps(
        tmp_path / "two.png", coarse, truth, members, baselines={"bicubic": members[1]}
    )
    with Image.open(one) as a, Image.open(two) as b:
        assert b.size[1] >= 2 * a.size[1] - 10  # a second row: the zoom on the core
        assert b.size[0] > a.size[0]  # one more panel: the baseline


def test_rank_histogram_at_precision_figure_for_quantised_truth(tmp_path):
    rng = np.random.default_rng(1)
    truth = np.rint(rng.exponential(1.0, (2, 32, 32)) / 0.3) * 0.3  # BoM-like 0.3 mm/h steps
    ens = rng.exponential(1.0, (4, 2, 32, 32))
    cfg = EvaluateConfig(fss_scales=[1], pool_windows=[(4, 2)])
    result = evaluate(truth, {"gan": ens}, None, cfg)
    figures = make_figures(tmp_path, result, units="mm/h")
    assert "rank_histogram_nonzero_at_precision" in figures
    with Image.open(figures["rank_histogram_nonzero_at_precision"]) as im:
        assert im.format == "PNG" and im.size[0] > 100
