"""Volumes, coarsening, training crops (periodic, context, augmentation), file sources."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from vol_helpers import ocean_config, tiny_config, validated, write_ocean

from geogan.core.errors import ConfigError, DataError
from geogan.recipes.volume.data import (
    VolumeDataset,
    coarsen,
    compute_normalisation,
    load_volumes,
)


def test_coarsen_is_the_mean_of_valid_voxels():
    fine = np.arange(2 * 4 * 4 * 2, dtype=np.float32).reshape(2, 4, 4, 2)
    valid = np.ones((4, 4, 2), bool)
    valid[0, 0, 0] = False
    coarse, frac = coarsen(fine, valid, (2, 2, 2))
    assert coarse.shape == (2, 2, 2, 1) and frac.shape == (2, 2, 1)
    block = fine[:, :2, :2, :2].reshape(2, -1)
    keep = valid[:2, :2, :2].reshape(-1)
    np.testing.assert_allclose(coarse[:, 0, 0, 0], block[:, keep].mean(axis=1))
    assert frac[0, 0, 0] == pytest.approx(7 / 8) and frac[1, 1, 0] == 1
    valid[:2, :2, :2] = False
    coarse, frac = coarsen(fine, valid, (2, 2, 2))
    assert np.isnan(coarse[:, 0, 0, 0]).all() and frac[0, 0, 0] == 0
    with pytest.raises(DataError, match="multiples of the factor"):
        coarsen(fine, valid, (3, 2, 2))


def _dataset(tmp_path, **data):
    cfg = validated(tiny_config(tmp_path, data=data))
    vs = load_volumes(cfg.data, "train")
    return cfg, vs, VolumeDataset(cfg.data, vs, compute_normalisation(cfg.data, vs), seed=0)


def test_items_have_context_and_are_pure_functions_of_the_index(tmp_path):
    cfg, vs, ds = _dataset(tmp_path)
    item = ds[5]
    assert item["input"].shape == (4, 6, 6, 6)  # 16 / 4 + 2 x 1 context
    assert item["target"].shape == (4, 16, 16, 16) and item["mask"].shape == (1, 16, 16, 16)
    for k, v in ds[5].items():
        torch.testing.assert_close(v, item[k])
    assert not torch.equal(ds[6]["target"], item["target"])
    # the coarse input is the block mean of the (normalised-back) truth of its centre
    norm = ds.norm
    phys_t = norm.inverse_stack(item["target"].numpy(), vs.variables, channel_axis=0)
    phys_in = norm.inverse_stack(item["input"].numpy(), vs.variables, channel_axis=0)
    coarse, _ = coarsen(phys_t, np.ones((16,) * 3, bool), (4, 4, 4))
    np.testing.assert_allclose(phys_in[:, 1:-1, 1:-1, 1:-1], coarse, rtol=1e-4, atol=1e-5)


def test_crops_wrap_round_the_periodic_volume(tmp_path):
    cfg, vs, ds = _dataset(tmp_path, augment={"flip": False, "rot90": False, "permute": False})
    norm = ds.norm
    for i in range(4):
        t = norm.inverse_stack(ds[i]["target"].numpy(), vs.variables, channel_axis=0)
        # find the crop's first voxel in a training volume, then compare the wrapped crop
        hits = [
            (k, np.argwhere(np.abs(v.data[0] - t[0, 0, 0, 0]) < 1e-6))
            for k, v in enumerate(vs.volumes)
        ]
        k, where = next((k, w) for k, w in hits if len(w))
        start = where[0]
        idx = [np.arange(s, s + 16) % 16 for s in start]
        np.testing.assert_allclose(
            vs.volumes[k].data[np.ix_(range(4), *idx)], t, rtol=1e-5, atol=1e-6
        )


def _spectral_divergence(vel):
    f = np.meshgrid(*[np.fft.fftfreq(n) for n in vel.shape[1:]], indexing="ij")
    total = sum(2j * np.pi * f[2 - c] * np.fft.fftn(vel[c]) for c in range(3))
    return np.abs(np.fft.ifftn(total).real).mean()


def test_flips_and_permutations_transform_the_velocity_as_a_vector(tmp_path):
    """Whole periodic volumes as crops: a vector-aware flip/permutation/roll keeps the velocity
    divergence-free; transforming its components as scalars would not."""
    cfg, vs, ds = _dataset(tmp_path, input_pad=0, crop=None)
    raw = [v.data[1:].astype(np.float64) for v in vs.volumes]
    scale = np.abs(np.gradient(raw[0][0], axis=2)).mean()
    assert max(_spectral_divergence(r) for r in raw) < 1e-4 * scale
    changed = 0
    for i in range(8):
        vel = ds.norm.inverse_stack(ds[i]["target"].numpy(), vs.variables, 0)[1:].astype(np.float64)
        assert _spectral_divergence(vel) < 1e-4 * scale
        changed += not any(np.allclose(vel, r, atol=1e-4) for r in raw)
    assert changed >= 6
    # the same flip along x applied to the components as scalars (u not negated) breaks it
    assert _spectral_divergence(np.flip(raw[0], axis=3)) > 0.1 * scale


def test_a_crop_larger_than_the_volume_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="smaller than a training crop"):
        _dataset(tmp_path, crop=32)


def test_a_factor_that_does_not_divide_the_crop_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not divide data.crop"):
        validated(tiny_config(tmp_path, data={"crop": 18}))


def test_file_volumes_faces_masks_and_splits(tmp_path):
    path = write_ocean(tmp_path / "ocean.nc")
    cfg = validated(ocean_config(tmp_path, path))
    train, test = load_volumes(cfg.data, "train"), load_volumes(cfg.data, "test")
    assert len(train.volumes) == 2 and len(test.volumes) == 1
    assert [v.label for v in test.volumes] == [3]
    assert train.dims == ("depth", "j", "i") and train.sample_dim == "face"
    assert train.units == {"theta": "degC", "u": "m s-1", "v": "m s-1"}
    vol = train.volumes[0]
    assert vol.data.shape == (3, 5, 16, 16) and not vol.valid[0, 0, 0] and vol.valid[0, 5, 5]
    ds = VolumeDataset(cfg.data, train, compute_normalisation(cfg.data, train), seed=1)
    assert ds.with_mask and ds.input_channels() == 4
    item = ds[0]
    assert item["input"].shape == (4, 5, 4, 4) and item["target"].shape == (3, 5, 16, 16)
    assert item["mask"].sum() < item["mask"].numel()
    assert (
        torch.isfinite(item["target"]).all()
        and (item["target"][:, ~item["mask"][0].bool()] == 0).all()
    )


def test_vector_components_missing_from_the_file_are_named(tmp_path):
    path = write_ocean(tmp_path / "ocean.nc")
    tree = ocean_config(tmp_path, path)
    tree["data"]["augment"]["vectors"] = [{"components": ["uvel", "vvel"], "axes": ["x", "y"]}]
    with pytest.raises(DataError, match=r"components \['uvel', 'vvel'\] that are not in"):
        load_volumes(validated(tree).data, "train")


def test_periodic_axes_need_evenly_spaced_coordinates_round_the_circle(tmp_path):
    uneven = write_ocean(tmp_path / "regional.nc", lon_step=2.0)  # 16 x 2 degrees: not a circle
    tree = ocean_config(tmp_path, uneven, periodic_axes=["x"])
    with pytest.raises(DataError, match="not the 360 round the circle"):
        load_volumes(validated(tree).data, "train")
    good = write_ocean(tmp_path / "global.nc", lon_step=22.5)
    assert load_volumes(validated(ocean_config(tmp_path, good, periodic_axes=["x"])).data, "train")


def test_unknown_variables_and_ranges_are_data_errors(tmp_path):
    path = write_ocean(tmp_path / "ocean.nc")
    tree = ocean_config(tmp_path, path)
    tree["data"]["file"]["variables"] = ["theta", "salt"]
    with pytest.raises(DataError, match=r"\['salt'\] are not in"):
        load_volumes(validated(tree).data, "train")
    tree = ocean_config(tmp_path, path)
    tree["data"]["file"]["train"] = {"face": [0, 9]}
    with pytest.raises(DataError, match="outside its 3 entries"):
        load_volumes(validated(tree).data, "train")
