"""Per-level normalisation (data.normalise_per_level): the profile against a direct per-level
mean/std, exact round trips (also for level subsets, as crops and output slabs use them), the
training items' levels, the config's refusals and an end-to-end run whose output keeps the
strong vertical profile of the input."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml
from vol_helpers import ocean_config, validated, write_ocean

from geogan.cli.main import main
from geogan.data.normalisation import Normalisation
from geogan.recipes.volume.build import volume_normaliser
from geogan.recipes.volume.data import VolumeDataset, load_volumes
from geogan.recipes.volume.levels import LevelProfile, VolumeNormaliser


def _profiled_file(tmp_path):
    """An ocean-like file whose theta falls by 20 degC from the top level to the bottom."""
    path = write_ocean(tmp_path / "ocean.nc", faces=3, depth=5, n=16)
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    ds["theta"] = ds["theta"] * 0.05 + xr.DataArray(np.linspace(25.0, 5.0, 5), dims="depth").astype(
        "f4"
    )
    ds.to_netcdf(tmp_path / "profiled.nc")
    return tmp_path / "profiled.nc"


def _norm(variables):
    chunks = {v: [np.array([0.0, 2.0])] for v in variables}
    return Normalisation.compute(chunks, {})


def test_profile_is_the_per_level_mean_and_std_of_valid_normalised_values():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 3, 4, 5)).astype(np.float32) + np.arange(3)[None, :, None, None]
    valid = rng.random((3, 4, 5)) > 0.3
    valid[2] = False  # a level without a valid voxel
    norm = _norm(["a", "b"])
    prof = LevelProfile.compute([(data, valid)], norm, ["a", "b"])
    x = norm.forward_stack(data, ["a", "b"], channel_axis=0)
    for c in range(2):
        for z in range(2):
            vals = x[c, z][valid[z]]
            assert prof.mean[c, z] == pytest.approx(vals.mean(), rel=1e-6)
            assert prof.std[c, z] == pytest.approx(vals.std(), rel=1e-5)
    np.testing.assert_array_equal(prof.mean[:, 2], 0.0)
    np.testing.assert_array_equal(prof.std[:, 2], 1.0)
    again = LevelProfile.from_dict(prof.to_dict())
    np.testing.assert_array_equal(again.mean, prof.mean)


def test_round_trip_whole_and_for_a_subset_of_levels():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(2, 6, 3, 3)) * 10 + np.arange(6)[None, :, None, None] * 100
    norm = _norm(["a", "b"])
    prof = LevelProfile.compute([(data, np.ones((6, 3, 3), bool))], norm, ["a", "b"])
    vn = VolumeNormaliser(norm, prof)
    y = vn.forward_stack(data, ["a", "b"], 0)
    # every level standardised on its own
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0.0, atol=1e-9)
    np.testing.assert_allclose(y.std(axis=(2, 3)), 1.0, rtol=1e-9)
    np.testing.assert_allclose(vn.inverse_stack(y, ["a", "b"], 0), data, rtol=1e-12)
    part = vn.forward_stack(data[:, 2:5], ["a", "b"], 0, levels=np.arange(2, 5))
    np.testing.assert_allclose(part, y[:, 2:5], rtol=1e-12)
    back = vn.inverse_stack(part, ["a", "b"], 0, levels=[2, 3, 4])
    np.testing.assert_allclose(back, data[:, 2:5], rtol=1e-12)
    # without a profile it is the engine's normalisation
    plain = VolumeNormaliser(norm)
    np.testing.assert_array_equal(
        plain.forward_stack(data, ["a", "b"], 0), norm.forward_stack(data, ["a", "b"], 0)
    )


def test_training_items_are_standardised_per_level(tmp_path):
    tree = ocean_config(tmp_path, _profiled_file(tmp_path), normalise_per_level=True)
    cfg = validated(tree)
    vs = load_volumes(cfg.data, "train")
    from geogan.recipes.volume.data import compute_normalisation

    vn = volume_normaliser(cfg, vs, compute_normalisation(cfg.data, vs))
    assert vn.profile is not None and vn.profile.levels == 5
    ds = VolumeDataset(cfg.data, vs, vn, seed=0)
    items = [ds[i] for i in range(8)]
    tgt = np.stack([it["target"][0].numpy() for it in items])  # theta [N, D, H, W]
    mask = np.stack([it["mask"][0].numpy() for it in items]) > 0
    for z in range(5):
        vals = tgt[:, z][mask[:, z]]
        # the 20 degC profile is gone: each level is near mean 0, std 1
        assert abs(vals.mean()) < 0.3 and 0.6 < vals.std() < 1.4
    plain = VolumeDataset(cfg.data, vs, compute_normalisation(cfg.data, vs), seed=0)
    t0 = np.stack([plain[i]["target"][0].numpy() for i in range(8)])
    # with one std per variable the levels stay far apart
    assert t0[:, 0][mask[:, 0]].mean() - t0[:, 4][mask[:, 4]].mean() > 2


@pytest.mark.parametrize(
    "data, words",
    [
        ({"factor": [2, 4, 4], "crop": [4, 16, 16]}, "factor 1 along z"),
        (
            {"augment": {"flip": True, "rot90": False, "flip_axes": ["x", "z"]}},
            "leave z alone",
        ),
        ({"augment": {"flip": False, "permute": True}}, "leave z alone"),
    ],
)
def test_config_refuses_what_would_mix_levels(tmp_path, data, words):
    tree = ocean_config(tmp_path, tmp_path / "x.nc", normalise_per_level=True)
    tree["data"].update(data)
    with pytest.raises(Exception, match=words):
        validated(tree)


def test_train_generate_keeps_the_vertical_profile(tmp_path):
    tree = ocean_config(tmp_path, _profiled_file(tmp_path), normalise_per_level=True)
    tree["generate"] = {"members": 2, "tile": None}
    tree["model"]["critic_padding"] = "same"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tree))
    run = tmp_path / "run"
    assert main(["--quiet", "train", str(cfg), "--run-dir", str(run)]) == 0
    out = tmp_path / "ens.nc"
    assert main(["--quiet", "generate", str(run / "model.safetensors"), "--out", str(out)]) == 0
    with xr.open_dataset(out) as ds:
        theta = ds["theta"].values  # [member, face, depth, j, i]
    level_means = np.nanmean(theta, axis=(0, 1, 3, 4))
    # the input's profile (25 -> 5 degC) comes back level by level in physical units
    np.testing.assert_allclose(level_means, np.linspace(25.0, 5.0, 5), atol=1.0)
    assert np.isnan(theta[:, :, :, :3, :3]).all()
