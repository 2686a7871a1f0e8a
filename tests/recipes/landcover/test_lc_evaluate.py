"""Scores and target checks of the land-cover evaluation, on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geogan.evaluation.image_metrics import image_lsd
from geogan.recipes.landcover.evaluate import _class_mean_images, score_methods, targets


class _PerfectSeg(torch.nn.Module):
    """Labels a pixel by its nearest colour in a 2-class palette; features = the image."""

    def forward(self, x):
        red = x[:, :1] > 0
        return torch.cat([(~red).float(), red.float()], 1)

    def encode(self, x):
        return [x, x[:, :, ::2, ::2], x[:, :, ::4, ::4]]


def test_score_methods_by_hand():
    rng = np.random.default_rng(0)
    lc = rng.integers(0, 2, (4, 16, 16))
    target = np.stack([np.stack([lc * 0.9 + 0.05, 0.5 - 0 * lc, 0.5 - 0 * lc])], 0)[0]
    target = np.moveaxis(target, 0, 1).astype(np.float32) + rng.normal(0, 0.01, (4, 3, 16, 16))
    box = np.zeros((4, 16, 16))
    box[:, 4:8, 4:8] = 1
    wrong = target.copy()
    wrong[:, 0] = 1 - wrong[:, 0]  # swaps the classes everywhere
    methods = {"real": target, "good": target + 0.01, "wrong": wrong.astype(np.float32)}
    table, curves = score_methods(methods, target, lc, box, 2, _PerfectSeg(), 1, ["a", "b"])
    assert table["real"]["miou"] == pytest.approx(1.0)
    assert table["good"]["miou_ratio"] == pytest.approx(1.0)
    assert table["wrong"]["miou"] == pytest.approx(0.0)
    assert table["good"]["l1"] == pytest.approx(0.01, rel=1e-4)
    assert table["good"]["lsd_db"] == pytest.approx(image_lsd(target, target + 0.01))
    assert table["good"]["fd_classifier"] < table["wrong"]["fd_classifier"]
    assert table["good"]["ssim"] > table["wrong"]["ssim"]
    assert curves["per_class"]["real"]["iou"] == [1.0, 1.0]


def test_class_mean_images_and_targets():
    colours = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], np.float32)
    img = _class_mean_images(np.array([[[0, 1, 2]]]), colours)  # 2 = no data: mean colour
    np.testing.assert_allclose(img[0, :, 0], [[0, 1, 0.5], [0, 0, 0], [1, 0, 0.5]])
    table = {
        "mixlc": {
            "miou_ratio": 0.95,
            "miou": 0.5,
            "fd_classifier": 1.0,
            "lsd_db": 1.0,
            "identity_l1": 0.01,
        },
        "pix2pix": {"miou": 0.4, "fd_classifier": 2.0, "lsd_db": 3.0},
        "class_mean": {"fd_classifier": 5.0, "lsd_db": 4.0, "identity_l1": 0.08},
    }
    t = targets(table, "mixlc")
    assert t["all_met"] and len(t) == 8
    table["mixlc"]["lsd_db"] = 3.5
    t = targets(table, "mixlc")
    assert not t["lsd_below_pix2pix"] and t["lsd_below_class_mean"] and not t["all_met"]
