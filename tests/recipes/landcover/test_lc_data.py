"""Samples of the land-cover recipe: mixing, flips, one-hot, determinism, sources, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from geogan.core.errors import DataError
from geogan.recipes.config import load_run_config
from geogan.recipes.landcover.config import MixConfig
from geogan.recipes.landcover.data import (
    MixDataset,
    class_mean_colours,
    draw_box,
    eval_samples,
    load_source,
    mix_sample,
    one_hot,
)


def _cfg(overrides, *more):
    return load_run_config("landcover/mixlc", [*overrides, *more])


def test_mix_sample_pastes_box_of_b_into_a():
    rgb_a, rgb_b = np.zeros((3, 8, 8), np.float32), np.ones((3, 8, 8), np.float32)
    lc_a, lc_b = np.full((8, 8), 2), np.full((8, 8), 12)
    s = mix_sample(rgb_a, lc_a, rgb_b, lc_b, (1, 2, 3, 4))
    inside = np.zeros((8, 8), bool)
    inside[1:4, 2:6] = True
    assert (s["lc_ab"][inside] == 12).all() and (s["lc_ab"][~inside] == 2).all()
    assert (s["rgb_ab"][:, inside] == 1).all() and (s["rgb_ab"][:, ~inside] == 0).all()
    assert (s["box"][0] == inside).all()
    assert (s["rgb_a"] == 0).all() and (s["lc_a"] == 2).all()  # a itself untouched
    same = mix_sample(rgb_a, lc_a, rgb_b, lc_b, None)
    assert (same["lc_ab"] == lc_a).all() and same["box"].sum() == 0


def test_box_placement_random_or_centred():
    rng = np.random.default_rng(0)
    centre = MixConfig(box_min=0.5, box_max=0.5, placement="centre")
    assert draw_box(rng, 16, centre) == (4, 4, 8, 8)
    rand = MixConfig(box_min=0.25, box_max=0.5, placement="random")
    boxes = [draw_box(rng, 16, rand) for _ in range(200)]
    assert len({b[:2] for b in boxes}) > 20  # many positions
    assert all(4 <= h <= 8 and 4 <= w <= 8 and r + h <= 16 and c + w <= 16 for r, c, h, w in boxes)


def test_one_hot_handles_absent_classes_and_nodata():
    lc = torch.tensor([[[0, 3], [17, 3]]])  # 17 = no data (ignore index) with 17 classes
    x = one_hot(lc, 17)
    assert x.shape == (1, 17, 2, 2)
    assert x[0, :, 1, 0].sum() == 0  # no data: all zero
    assert x[0, 3].sum() == 2 and x[0, 0, 0, 0] == 1
    assert x[0, 5:].sum() == 0  # absent classes are zero channels


def test_dataset_items_are_pure_functions_of_seed_and_index(overrides):
    cfg = _cfg(overrides)
    src = load_source(cfg.data, "train")
    ds = MixDataset(src, cfg.data, seed=3)
    a, b, c = ds[5], ds[5], ds[6]
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert not torch.equal(a["rgb_ab"], c["rgb_ab"])
    assert a["rgb_a"].shape == (3, 16, 16) and a["lc_ab"].dtype == torch.int64
    assert a["rgb_a"].min() >= -1 and a["rgb_a"].max() <= 1
    assert a["box"].shape == (1, 16, 16) and 16 <= a["box"].sum() <= 64
    # where the box is 0, ab equals a
    outside = a["box"][0] == 0
    assert torch.equal(a["lc_ab"][outside], a["lc_a"][outside])


def test_flips_with_probability_one_half(overrides):
    """Horizontal flips of tile a: count them through a fixed asymmetric tile."""
    cfg = _cfg(overrides)
    src = load_source(cfg.data, "train")
    ramp = np.tile(np.linspace(0, 1, 48, dtype=np.float32), (3, 48, 1))
    for s in src.scenes:
        s.rgb = ramp.copy()
    ds = MixDataset(src, cfg.data, seed=0)
    flipped = 0
    n = 400
    for i in range(n):
        x = ds.sample(i)["rgb_a"][0]
        flipped += bool(x[0, 0] > x[0, -1])
    assert 0.4 < flipped / n < 0.6


def test_eval_samples_and_class_means(overrides):
    cfg = _cfg(overrides)
    test = load_source(cfg.data, "test")
    s = eval_samples(test, cfg.data, 6, seed=0)
    t = eval_samples(test, cfg.data, 6, seed=0)
    assert s["rgb_ab"].shape == (6, 3, 16, 16) and s["lc_ab"].shape == (6, 16, 16)
    np.testing.assert_array_equal(s["rgb_ab"], t["rgb_ab"])
    colours = class_mean_colours(load_source(cfg.data, "train"))
    assert colours.shape == (17, 3)
    assert colours[2, 1] > colours[2, 0]  # forest fixture colour is green-dominated
    np.testing.assert_allclose(colours[12] * 255, (150, 120, 80), atol=4)  # fixture cropland


def test_class_map_on_another_grid(overrides, image_list):
    """Without regridding: one line naming both sizes; with it, nearest/majority work."""
    Image.fromarray(np.zeros((24, 24), np.uint8)).save(image_list.parent / "s0.png")
    cfg = _cfg(overrides, "data.regrid=null")
    with pytest.raises(DataError, match="24x24 but the image is 48x48") as info:
        load_source(cfg.data, "train")
    assert "\n" not in str(info.value)
    assert load_source(_cfg(overrides, "data.regrid=nearest").data, "train").scenes[0].lc.shape == (
        48,
        48,
    )


def test_class_values_out_of_range(overrides, image_list):
    bad = np.full((48, 48), 40, np.uint8)
    Image.fromarray(bad).save(image_list.parent / "s1.png")
    with pytest.raises(DataError, match=r"class values 40 outside \[0, 17\)"):
        load_source(_cfg(overrides).data, "train")


def test_missing_image_file(overrides, image_list):
    (image_list.parent / "x2.png").unlink()
    with pytest.raises(DataError, match="x2.png not found"):
        load_source(_cfg(overrides).data, "train")


def test_bluemarble_without_regridding_is_refused():
    cfg = load_run_config("landcover/mixlc", ["data.regrid=null"])
    with pytest.raises(DataError, match="set data.regrid: majority"):
        load_source(cfg.data, "train")
