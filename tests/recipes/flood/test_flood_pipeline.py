"""The flood recipe end to end on tiny rendered tiles: stages, exact resume, generate, evaluate,
user masks through ``geogan flood-paint``, the U-Net baseline."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from PIL import Image

from geogan.core.checkpoint import load_checkpoint
from geogan.recipes import get_recipe
from geogan.recipes.run import train_from_config


def _train(cfg, run_dir, **kw):
    return train_from_config(cfg, run_dir=run_dir, progress=False, **kw)


def _tensors(path, prefix):
    t, _ = load_checkpoint(path)
    return {k: v for k, v in t.items() if k.startswith(prefix)}


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_representation_then_translation_freezes_the_encoder(tiny_cfg, tmp_path, norm):
    # batch norm: the frozen encoder's running statistics must not move either (eval mode)
    cfg = tiny_cfg(**{"model.encoder.norm": norm, "model.decoder.skip": norm == "batch"})
    summary = _train(cfg, tmp_path / "run")
    assert summary["steps"] == 4 and summary["stage"] == "translation"
    ck = tmp_path / "run" / "checkpoints"
    mid, end = ck / "resume_000000002.safetensors", ck / "resume_000000004.safetensors"
    for frozen in ("model/encoder/", "model/decoder_s/", "model/adapt_r/", "model/classifier/"):
        a, b = _tensors(mid, frozen), _tensors(end, frozen)
        assert a and all(torch.equal(a[k], b[k]) for k in a), frozen
    a, b = _tensors(mid, "model/painter/"), _tensors(end, "model/painter/")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the painter learns in translation
    stats = [
        json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()
    ]
    assert "masker/loss" in stats[0] and "painter/loss" not in stats[0]
    assert "painter/loss" in stats[-1] and "masker/loss" not in stats[-1]


def test_encoder_at_a_learning_rate_factor(tiny_cfg, tmp_path):
    from geogan.core.distributed import DistInfo
    from geogan.recipes.flood.build import build_training
    from geogan.training.trainer import Trainer

    cfg = tiny_cfg(**{"train.encoder_in_translation": 0.1, "train.steps": 3})
    setup = build_training(cfg, device=torch.device("cpu"), run_dir=tmp_path, dist_info=DistInfo())
    trainer = Trainer(
        setup, run_dir=tmp_path / "run", device=torch.device("cpu"), train=cfg.train, progress=False
    )
    trainer.fit()
    groups = {g["model"]: g for g in trainer.optimizers["painter"].param_groups}
    assert groups["encoder"]["lr"] == pytest.approx(0.1 * groups["painter"]["lr"])
    assert [s.name for s in trainer.stages] == ["representation", "translation"]


def test_resume_is_exact(tiny_cfg, tmp_path):
    straight = _train(tiny_cfg(), tmp_path / "a")
    cfg2 = tiny_cfg(**{"train.steps": 2})
    _train(cfg2, tmp_path / "b")
    _train(tiny_cfg(), tmp_path / "b", resume="auto")
    a = _tensors(tmp_path / "a" / "model.safetensors", "painter/")
    b = _tensors(tmp_path / "b" / "model.safetensors", "painter/")
    assert straight["steps"] == 4 and a and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def trained(tiny_cfg, tmp_path):
    _train(tiny_cfg(), tmp_path / "run")
    return tmp_path / "run" / "model.safetensors"


def test_generate_and_evaluate(trained, tmp_path):
    recipe = get_recipe("flood")
    out = tmp_path / "painted.nc"
    g = recipe.generate(trained, out=out, progress=False, overrides=["generate.mask=label"])
    assert g["samples"] == 4 and g["mask"] == "label"
    with xr.open_dataset(out) as ds:
        image, mask, painted = ds["image"].values, ds["mask"].values, ds["painted"].values
    assert painted.shape == (4, 1, 3, 32, 32)
    outside = np.broadcast_to(mask[:, None, None] == 0, painted.shape)
    np.testing.assert_array_equal(
        painted[outside], np.broadcast_to(image[:, None], painted.shape)[outside]
    )
    assert (mask.reshape(4, -1).sum(1) > 0).sum() == 2  # the two flooded test tiles
    report = recipe.evaluate(out, out=tmp_path / "report", progress=False)
    assert Path(report["report"]).is_file()
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert {"geogan masker", "colour threshold"} <= set(metrics["masker"])
    assert {"geogan painter", "mean-colour fill", "Telea inpainting"} <= set(metrics["painter"])
    assert metrics["painter"]["geogan painter"]["l1_outside"] == 0.0
    assert metrics["targets"]["l1_outside_below_1_255"]["met"] is True
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Held-out flooded tiles" in html and "data:image/png;base64" in html
    with pytest.raises(Exception, match="exists"):
        recipe.evaluate(out, out=tmp_path / "report", progress=False)


def test_flood_paint_with_user_masks(trained, tmp_path, tiny_lists):
    from geogan.cli.main import main

    image = sorted((tiny_lists[1].parent / "test" / "rn" / "x").glob("*.png"))[0]
    x = np.asarray(Image.open(image))
    mask = np.zeros(x.shape[:2], np.uint8)
    mask[8:20, 4:16] = 255
    Image.fromarray(mask).save(tmp_path / "user.png")
    xr.Dataset({"m": (("y", "x"), (mask > 0).astype(np.float32))}).to_netcdf(tmp_path / "user.nc")
    elev = np.where(mask > 0, 1.0, 50.0).astype(np.float32)
    np.save(tmp_path / "dem.npy", elev)
    for i, extra in enumerate(
        (
            ["--mask", str(tmp_path / "user.png")],
            ["--mask", str(tmp_path / "user.nc")],
            ["--elevation", str(tmp_path / "dem.npy"), "--below-m", "5"],
        )
    ):
        out = tmp_path / f"p{i}.png"
        rc = main(
            [
                "--quiet",
                "flood-paint",
                str(trained),
                "--image",
                str(image),
                "--out",
                str(out),
                *extra,
            ]
        )
        assert rc == 0
        p = np.asarray(Image.open(out))
        np.testing.assert_array_equal(p[mask == 0], x[mask == 0])  # unchanged outside, bit for bit
        assert json.loads(out.with_suffix(".json").read_text())["mask_fraction"] == pytest.approx(
            (mask > 0).mean()
        )
    rc = main(
        [
            "--quiet",
            "flood-paint",
            str(trained),
            "--image",
            str(image),
            "--out",
            str(tmp_path / "noarg.png"),
        ]
    )
    assert rc == 0  # the masker's prediction


def test_wrong_size_user_mask_is_exit_2_and_writes_nothing(trained, tmp_path, tiny_lists, capsys):
    from geogan.cli.main import main

    image = sorted((tiny_lists[1].parent / "test" / "rf" / "x").glob("*.png"))[0]
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "small.png")
    out = tmp_path / "p.png"
    rc = main(
        [
            "flood-paint",
            str(trained),
            "--image",
            str(image),
            "--mask",
            str(tmp_path / "small.png"),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "16x16 but the image is 32x32" in err and len(err.splitlines()) == 1
    assert (
        not out.exists()
        and not (tmp_path / "p_mask.png").exists()
        and not (tmp_path / "p.json").exists()
    )


def test_unet_baseline_trains_and_predicts(tiny_cfg, tmp_path):
    from geogan.recipes.flood.generate import load_flood_export

    cfg = tiny_cfg(
        **{
            "model.kind": "unet",
            "model.unet": {"filters": 4, "depth": 2},
            "data.domains": ["rf", "rn", "sf"],
        }
    )
    _train(cfg, tmp_path / "unet")
    m = load_flood_export(tmp_path / "unet" / "model.safetensors")
    classes, water = m.predict(np.random.default_rng(0).random((3, 32, 32)).astype(np.float32))
    assert classes.shape == (32, 32) and water.shape == (32, 32) and not m.can_paint
    assert m.meta["domains"] == ["rf", "rn"]  # real domains only


def test_skip_task_decoders_train_export_and_predict(tiny_cfg, tmp_path):
    from geogan.recipes.flood.build import predict
    from geogan.recipes.flood.generate import load_flood_export

    cfg = tiny_cfg(**{"model.decoder.skip": True})
    _train(cfg, tmp_path / "skip")
    m = load_flood_export(tmp_path / "skip" / "model.safetensors")
    enc = m.models["encoder"]
    for task in ("s", "w"):
        assert m.models[f"decoder_{task}"].skip_channels == enc.skip_channels
    x = np.random.default_rng(1).random((3, 32, 32)).astype(np.float32)
    classes, water = m.predict(x)
    assert classes.shape == (32, 32) and water.shape == (32, 32)
    # the prediction is the skip decoders' output on the encoder's skips (direct composition)
    t = torch.from_numpy(x)[None] * 2 - 1
    z, skips = enc(t, return_skips=True)
    want = m.models["decoder_w"](z, skips).float()[:, 0].sigmoid()
    torch.testing.assert_close(predict(m.models, t)[1], want)
    # the painter stays on the code alone
    assert "skip_channels" not in m.meta["models"]["painter"]["kwargs"]
