"""User mistakes give one line and exit code 2, with nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from geogan.cli.main import main


def _run(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


def test_class_map_grid_mismatch(capsys, overrides, image_list, tmp_path):
    Image.fromarray(np.zeros((24, 24), np.uint8)).save(image_list.parent / "s0.png")
    run_dir = tmp_path / "run"
    code, err = _run(
        capsys,
        ["train", "landcover/segmenter", *overrides, "data.regrid=null", "--run-dir", str(run_dir)],
    )
    assert code == 2 and len(err.splitlines()) == 1 and "data.regrid" in err
    assert not run_dir.exists()


def test_class_values_out_of_range(capsys, overrides, image_list, tmp_path):
    Image.fromarray(np.full((48, 48), 99, np.uint8)).save(image_list.parent / "s1.png")
    run_dir = tmp_path / "run"
    code, err = _run(
        capsys, ["train", "landcover/segmenter", *overrides, "--run-dir", str(run_dir)]
    )
    assert code == 2 and "outside [0, 17)" in err and len(err.splitlines()) == 1
    assert not run_dir.exists()


def test_vgg_weights_of_the_wrong_layout(capsys, overrides, tmp_path):
    wrong = tmp_path / "resnet.safetensors"
    save_file({"conv1.weight": torch.zeros(2, 3, 1, 1)}, str(wrong))
    run_dir = tmp_path / "run"
    code, err = _run(
        capsys,
        [
            "train",
            "landcover/mixlc",
            *overrides,
            f"train.style.vgg16_weights={wrong}",
            "--run-dir",
            str(run_dir),
        ],
    )
    assert code == 2 and "VGG16 layout" in err and len(err.splitlines()) == 1
    assert not run_dir.exists()


def test_image_list_entry_with_missing_file(capsys, overrides, image_list, tmp_path):
    (image_list.parent / "x0.png").unlink()
    run_dir = tmp_path / "run"
    code, err = _run(capsys, ["train", "landcover/pix2pix", *overrides, "--run-dir", str(run_dir)])
    assert code == 2 and "x0.png not found" in err and len(err.splitlines()) == 1
    assert not run_dir.exists()


@pytest.mark.parametrize("key", ["generate.image", "generate.landcover"])
def test_generate_with_a_missing_checkpoint(capsys, tmp_path, key):
    # a checkpoint is needed before the config is read: a missing one is one line too
    code, err = _run(
        capsys,
        [
            "generate",
            str(tmp_path / "none.safetensors"),
            f"{key}=x.png",
            "--out",
            str(tmp_path / "o.nc"),
        ],
    )
    assert code == 2 and len(err.splitlines()) == 1
    assert not (tmp_path / "o.nc").exists()
