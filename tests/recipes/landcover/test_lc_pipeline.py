"""Train (segmenter, pix2pix, MixLC with both style-feature paths), generate, evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr
from PIL import Image
from safetensors.torch import save_file

from geogan.core.errors import CheckpointError, OutputExistsError
from geogan.losses.style import EncoderFeatures, VGG16Features
from geogan.recipes import get_recipe
from geogan.recipes.config import load_run_config
from geogan.recipes.landcover.build import STYLE_FILE, build_training, style_features
from geogan.recipes.run import train_from_config


def _train(preset, overrides, run_dir, steps=2, *more):
    cfg = load_run_config(f"landcover/{preset}", [*overrides, f"train.steps={steps}", *more])
    return train_from_config(cfg, run_dir=run_dir, progress=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from lc_helpers import tiny_overrides, write_image_list

    root = tmp_path_factory.mktemp("lc")
    over = tiny_overrides(write_image_list(root / "tiles"), root / "runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for preset, steps in (("segmenter", 4), ("pix2pix", 2), ("mixlc", 2)):
            _train(preset, over, root / preset, steps)
    finally:
        # later tests (pinned losses) depend on the thread count
        torch.set_num_threads(threads)
    return root, over


def test_style_features_from_a_vgg16_file_or_a_trained_classifier(overrides, tmp_path):
    cfg = load_run_config("landcover/mixlc", overrides)
    feats = style_features(cfg, None, tmp_path, torch.device("cpu"))
    assert isinstance(feats, EncoderFeatures)
    assert (tmp_path / STYLE_FILE).is_file()  # the trained feature net is kept with the run
    again = style_features(cfg, None, tmp_path, torch.device("cpu"))  # resume: same weights
    x = torch.rand(1, 3, 16, 16)
    for a, b in zip(feats(x), again(x)):
        torch.testing.assert_close(a, b)
    torch.manual_seed(0)
    path = tmp_path / "vgg16.safetensors"
    save_file(VGG16Features().state_dict(), str(path))
    vgg = load_run_config("landcover/mixlc", [*overrides, f"train.style.vgg16_weights={path}"])
    assert isinstance(style_features(vgg, None, None, torch.device("cpu")), VGG16Features)
    missing = load_run_config("landcover/mixlc", [*overrides, "train.style.features=vgg16"])
    with pytest.raises(CheckpointError, match="vgg16_weights is not set"):
        style_features(missing, None, None, torch.device("cpu"))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(1)}, str(wrong))
    bad = load_run_config("landcover/mixlc", [*overrides, f"train.style.vgg16_weights={wrong}"])
    with pytest.raises(CheckpointError, match="not torchvision's VGG16 layout"):
        build_training(bad, device=torch.device("cpu"), run_dir=None)


def test_phases_log_every_loss(overrides, tmp_path):
    summary = _train("mixlc", overrides, tmp_path / "run", 2)
    assert summary["steps"] == 2
    stats = [
        json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()
    ]
    keys = set().union(*stats)
    for part in ("adv", "pixel", "style", "identity", "local", "aux_ce", "spectral"):
        assert f"generator/{part}" in keys
    assert "discriminator/aux_ce" in keys
    assert all(s["generator/spectral"] >= 0 for s in stats if "generator/spectral" in s)


def test_spectral_weight_zero_leaves_the_term_out(overrides, tmp_path):
    _train("mixlc", overrides, tmp_path / "run", 1, "train.weights.spectral=0")
    stats = (tmp_path / "run" / "stats.jsonl").read_text()
    assert "generator/pixel" in stats and "generator/spectral" not in stats


def test_generate_and_evaluate(trained, tmp_path):
    root, _ = trained
    recipe = get_recipe("landcover")
    ens = tmp_path / "ens.nc"
    over = [
        f"evaluate.classifier={root / 'segmenter' / 'model.safetensors'}",
        f"evaluate.pix2pix={root / 'pix2pix' / 'model.safetensors'}",
    ]
    out = recipe.generate(root / "mixlc" / "model.safetensors", out=ens, overrides=over, members=3)
    assert out["members"] == 3 and out["mode"] == "eval_samples"
    with xr.open_dataset(ens) as ds:
        gen = ds["generated"].values
        assert gen.shape[:3] == (3, ds.sizes["sample"], 3) and gen.min() >= 0 and gen.max() <= 1
        assert not np.allclose(gen[0], gen[1])  # members differ (dropout kept on)
    with pytest.raises(OutputExistsError):
        recipe.generate(root / "mixlc" / "model.safetensors", out=ens)
    summary = recipe.evaluate(ens, out=tmp_path / "report")
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"mixlc", "pix2pix", "class_mean", "real"}
    for key in ("miou", "l1", "ssim", "lsd_db", "fd_classifier", "identity_l1", "miou_ratio"):
        assert np.isfinite(metrics["methods"]["mixlc"][key]), key
    assert set(metrics["targets"]) >= {"miou_at_least_0.9x_real", "fd_below_pix2pix", "all_met"}
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Fréchet distance" in html and "data:image/png;base64" in html
    assert "Scenario" in html  # the fixture has forest tiles: forest box -> cropland
    assert summary["report"].endswith("report.html")


def test_generate_from_files_is_tiled(trained, tmp_path):
    root, _ = trained
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    Image.fromarray(np.full((40, 56), 12, np.uint8)).save(tmp_path / "lc.png")
    out = tmp_path / "gen.nc"
    get_recipe("landcover").generate(
        root / "mixlc" / "model.safetensors",
        out=out,
        overrides=[
            f"generate.image={tmp_path / 'img.png'}",
            f"generate.landcover={tmp_path / 'lc.png'}",
        ],
        members=2,
    )
    with xr.open_dataset(out) as ds:
        assert ds["generated"].shape == (2, 3, 40, 56)
        assert np.isfinite(ds["generated"].values).all()


def test_classifier_export_is_not_a_generator(trained, tmp_path):
    from geogan.core.errors import ConfigError

    root, _ = trained
    with pytest.raises(ConfigError, match="without a generator"):
        get_recipe("landcover").generate(
            root / "segmenter" / "model.safetensors", out=tmp_path / "x.nc"
        )
    assert not (tmp_path / "x.nc").exists()
