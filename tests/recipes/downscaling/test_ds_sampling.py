"""Class-balanced patch sampling, determinism, alignment and augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from geogan.config.schema import AugmentConfig
from geogan.core.errors import DataError
from geogan.data.augment import Augmentation
from geogan.data.grids import coarsen
from geogan.data.normalisation import Normalisation
from geogan.recipes.downscaling.config import SamplingConfig
from geogan.recipes.downscaling.data import DownscalingData
from geogan.recipes.downscaling.samples import PatchDataset, Variables
from geogan.recipes.downscaling.sampling import (
    assign_classes,
    build_candidates,
    candidate_corners,
    effective_stride,
)
from geogan.recipes.downscaling.store import MemoryStore, valid_mask

# wet pixels per 16x16 block -> wet fraction 0, 13/256 (~0.05), 51/256 (~0.2), 128/256
WET_PIXELS = {0: 0, 1: 13, 2: 51, 3: 128}


def _known_store(pattern: np.ndarray, times: int = 2) -> MemoryStore:
    """Truth ``[T, 1, 64, 64]``: block (i, j) of 16x16 has ``WET_PIXELS[pattern[i, j]]`` wet pixels."""
    truth = np.zeros((times, 1, 64, 64), dtype=np.float32)
    for i in range(4):
        for j in range(4):
            block = np.zeros(256, dtype=np.float32)
            block[: WET_PIXELS[int(pattern[i, j])]] = 2.0
            truth[:, 0, 16 * i : 16 * i + 16, 16 * j : 16 * j + 16] = block.reshape(16, 16)
    return MemoryStore(truth, coarsen(truth, 4), np.zeros((0, 64, 64), dtype=np.float32), 4)


def _dataset(store, sampling, weights, seed=0, augment=None):
    cands = build_candidates(store, np.arange(store.n_times), 16, sampling)
    norm = Normalisation.compute({"precip": [store.truth(0)]})
    return PatchDataset(
        store,
        Variables(["precip"], ["precip"], []),
        cands,
        norm,
        weights,
        augment or AugmentConfig(),
        seed,
        10_000,
    )


def test_candidates_have_the_known_classes():
    pattern = np.arange(16).reshape(4, 4) % 4
    store = _known_store(pattern)
    sampling = SamplingConfig(candidate_stride=16, min_valid_fraction=0.5, wet_threshold=0.1)
    cands = build_candidates(store, np.arange(2), 16, sampling)
    assert len(cands) == 32
    expected = pattern[cands.rows // 16, cands.cols // 16]
    np.testing.assert_array_equal(cands.classes, expected)
    np.testing.assert_allclose(
        cands.wet_fraction, [WET_PIXELS[int(k)] / 256 for k in expected], rtol=1e-6
    )
    assert cands.class_counts() == [8, 8, 8, 8]


def test_sampled_class_frequencies_follow_weights():
    store = _known_store(np.arange(16).reshape(4, 4) % 4)
    weights = [0.1, 0.2, 0.3, 0.4]
    ds = _dataset(store, SamplingConfig(candidate_stride=16), weights)
    n = 4000
    counts = np.bincount([ds.locate(i).cls for i in range(n)], minlength=4)
    assert chisquare(counts, np.asarray(weights) * n).pvalue > 1e-3
    # the drawn patch really has the drawn class
    for i in range(50):
        loc = ds.locate(i)
        wet = (
            store.truth(loc.time_index)[0, loc.row : loc.row + 16, loc.col : loc.col + 16] > 0.1
        ).mean()
        assert assign_classes(np.array([wet]), [0.01, 0.1, 0.3])[0] == loc.cls


def test_empty_class_weights_are_renormalised():
    pattern = np.array([[0, 1, 3, 3]] * 4)  # no class-2 patch
    store = _known_store(pattern)
    ds = _dataset(store, SamplingConfig(candidate_stride=16), [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(ds.sampler.probabilities, [1 / 7, 2 / 7, 0.0, 4 / 7])
    n = 3500
    counts = np.bincount([ds.locate(i).cls for i in range(n)], minlength=4)
    assert counts[2] == 0
    assert chisquare(counts[[0, 1, 3]], np.array([1, 2, 4]) / 7 * n).pvalue > 1e-3


def test_low_valid_fraction_discarded_and_no_candidates_error():
    store = _known_store(np.zeros((4, 4), dtype=int))
    truth = store.truth(slice(None)).copy()
    truth[:, :, :40, :] = np.nan  # rows 0..39 invalid: corners at rows 0, 16 have < 50% valid
    store = MemoryStore(truth, coarsen(truth, 4), np.zeros((0, 64, 64), np.float32), 4)
    cands = build_candidates(store, np.arange(2), 16, SamplingConfig(candidate_stride=8))
    assert cands.valid_fraction.min() >= 0.5
    assert set(np.unique(cands.rows)) == {32, 40, 48}  # 32: rows 40..47 valid = 50%
    empty = MemoryStore(
        np.full_like(truth, np.nan), coarsen(truth, 4) * np.nan, store.constants(), 4
    )
    cands = build_candidates(empty, np.arange(2), 16, SamplingConfig())
    with pytest.raises(DataError, match="no candidate patches"):
        _ = PatchDataset(
            empty, Variables(["p"], ["p"], []), cands, None, [1, 1, 1, 1], AugmentConfig(), 0, 1
        )


def test_stride_and_corners_align_with_factor():
    assert (
        effective_stride(16, 8) == 16
        and effective_stride(4, 8) == 8
        and effective_stride(10, 4) == 12
    )
    np.testing.assert_array_equal(candidate_corners(40, 16, 8), [0, 8, 16, 24])
    assert candidate_corners(10, 16, 8).size == 0


@pytest.fixture
def radar_data(radar_nc, synth):
    return DownscalingData.from_config(synth.autocoarsen_config(radar_nc))


def test_items_are_deterministic_in_seed_and_index(radar_data):
    norm = radar_data.compute_normalisation()
    a = radar_data.patch_dataset(norm, seed=7, length=100)
    b = radar_data.patch_dataset(norm, seed=7, length=100)
    c = radar_data.patch_dataset(norm, seed=8, length=100)
    assert len(a) == 100
    for i in (0, 5, 99, 12345):
        x, y = a[i], b[i]
        assert set(x) == {"input", "target", "constants", "mask"}
        for key in x:
            assert x[key].dtype == torch.float32
            assert torch.equal(x[key], y[key])
    assert torch.equal(a[3]["target"], a[3]["target"])  # reading twice changes nothing
    differ = sum(not torch.equal(a[i]["target"], c[i]["target"]) for i in range(10))
    assert differ >= 8


def test_item_shapes_mask_and_nan_handling(radar_data):
    norm = radar_data.compute_normalisation()
    ds = radar_data.patch_dataset(norm, seed=0, length=50)
    for i in range(20):
        item = ds[i]
        assert item["input"].shape == (1, 4, 4)
        assert item["target"].shape == (1, 16, 16)
        assert item["constants"].shape == (0, 16, 16)
        assert item["mask"].shape == (1, 16, 16)
        raw = ds.sample(i, normalise=False)
        expected_mask = valid_mask(raw["target"], raw["input"], 4)
        np.testing.assert_array_equal(item["mask"][0].numpy(), expected_mask)
        assert torch.isfinite(item["target"]).all() and torch.isfinite(item["input"]).all()
        assert (item["target"][item["mask"] == 0] == 0).all()
        np.testing.assert_allclose(
            item["target"].numpy()[:, expected_mask],
            norm.forward(raw["target"], "precip")[:, expected_mask],
            rtol=1e-6,
        )


def test_low_and_high_res_patches_align_with_augmentation(radar_data):
    norm = radar_data.compute_normalisation()
    ds = radar_data.patch_dataset(norm, seed=1, length=200)
    seen = set()
    for i in range(60):
        loc = ds.locate(i)
        seen.add((loc.augmentation.flip_lr, loc.augmentation.flip_ud, loc.augmentation.k))
        assert loc.row % 4 == 0 and loc.col % 4 == 0
        raw = ds.sample(i, normalise=False)
        np.testing.assert_allclose(
            coarsen(raw["target"], 4), raw["input"], rtol=1e-6, equal_nan=True
        )
    assert len(seen) >= 8  # flips and rotations were exercised


def test_augmentation_keeps_alignment_and_is_identical_across_arrays():
    rng = np.random.default_rng(0)
    high = rng.random((2, 16, 16)).astype(np.float32)
    low = coarsen(high, 4)
    for flip_lr in (False, True):
        for flip_ud in (False, True):
            for k in range(4):
                aug = Augmentation(shape=(16, 16), flips=(flip_ud, flip_lr), k=k)
                np.testing.assert_allclose(coarsen(aug.apply(high), 4), aug.apply(low), rtol=1e-6)
    aug = Augmentation(shape=(16, 16), flips=(False, True), k=1)
    np.testing.assert_array_equal(aug.apply(high)[0], np.rot90(high[0][:, ::-1]))


def test_augmentation_off_means_no_flip(radar_data):
    norm = radar_data.compute_normalisation()
    ds = radar_data.patch_dataset(norm, seed=0, length=10)
    ds.augment = AugmentConfig(flip=False, rot90=False)
    for i in range(10):
        aug = ds.locate(i).augmentation
        assert not any(aug.flips) and aug.k == 0


def test_dataloader_workers_give_the_same_items(radar_data):
    norm = radar_data.compute_normalisation()
    ds = radar_data.patch_dataset(norm, seed=3, length=8)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    batches = list(loader)
    expected = torch.stack([ds[i]["target"] for i in range(8)])
    assert torch.equal(torch.cat([b["target"] for b in batches]), expected)
