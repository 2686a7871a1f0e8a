"""Vector-aware augmentation: recipe-1 compatibility, physics reference, coarse rolls, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from geogan.config.schema import AugmentConfig, VectorConfig
from geogan.core.errors import ConfigError, DataError
from geogan.data.augment import Augmentation, draw_augmentation


class OldAugmentation:
    """Recipe 1's original flip/rot90 augmentation, kept here as the reference it must match."""

    def __init__(self, flip_lr=False, flip_ud=False, k=0):
        self.flip_lr, self.flip_ud, self.k = flip_lr, flip_ud, k

    def apply(self, x):
        if self.flip_lr:
            x = x[..., :, ::-1]
        if self.flip_ud:
            x = x[..., ::-1, :]
        if self.k:
            x = np.rot90(x, self.k, axes=(-2, -1))
        return np.ascontiguousarray(x)


def old_draw(rng, cfg, square):
    flips = rng.integers(0, 2, size=2)
    k = int(rng.integers(0, 4))
    return OldAugmentation(
        bool(cfg.flip and flips[0]), bool(cfg.flip and flips[1]), k if (cfg.rot90 and square) else 0
    )


UV = VectorConfig(components=["u", "v"], axes=["x", "y"])
UVW = VectorConfig(components=["u", "v", "w"], axes=["x", "y", "z"])


# --------------------------------------------------------------------------- (a) recipe 1


@pytest.mark.parametrize(
    "cfg",
    [AugmentConfig(), AugmentConfig(flip=False), AugmentConfig(rot90=False)],
    ids=["default", "no-flip", "no-rot90"],
)
@pytest.mark.parametrize("shape", [(8, 8), (8, 6)], ids=["square", "oblong"])
def test_bitwise_compatible_with_recipe_1(cfg, shape):
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    seen = set()
    for seed in range(200):
        old_rng, new_rng = np.random.default_rng(seed), np.random.default_rng(seed)
        old = old_draw(old_rng, cfg, square=shape[0] == shape[1])
        new = draw_augmentation(new_rng, cfg, shape)
        # same draws consumed: the generators are in the same state afterwards
        assert old_rng.integers(0, 2**62) == new_rng.integers(0, 2**62)
        assert (new.flip_lr, new.flip_ud, new.k) == (old.flip_lr, old.flip_ud, old.k)
        out = new.apply(x)
        ref = old.apply(x)
        assert out.dtype == ref.dtype and out.flags.c_contiguous
        np.testing.assert_array_equal(out, ref)
        seen.add((old.flip_lr, old.flip_ud, old.k))
    n_k = 4 if (cfg.rot90 and shape[0] == shape[1]) else 1
    assert len(seen) == (4 if cfg.flip else 1) * n_k  # every combination was exercised


def test_every_old_augmentation_reproduced_exactly():
    x = np.arange(2 * 5 * 5, dtype=np.float64).reshape(2, 5, 5)
    for flip_lr, flip_ud, k in itertools.product([False, True], [False, True], range(4)):
        new = Augmentation(shape=(5, 5), flips=(flip_ud, flip_lr), k=k)
        np.testing.assert_array_equal(new.apply(x), OldAugmentation(flip_lr, flip_ud, k).apply(x))


# --------------------------------------------------------------------------- (b) physics


def _potential(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A smooth periodic scalar field: a few random Fourier modes."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) / n for n in shape], indexing="ij")
    phi = np.zeros(shape)
    for _ in range(5):
        waves = rng.integers(-3, 4, size=len(shape))
        phase = rng.uniform(0, 2 * np.pi)
        phi += rng.normal() * np.cos(2 * np.pi * sum(k * g for k, g in zip(waves, grids)) + phase)
    return phi


def _gradient(phi: np.ndarray) -> np.ndarray:
    """Central differences with periodic wrap: ``[ndim, *S]`` components ordered x, y, z."""
    comps = [(np.roll(phi, -1, axis=a) - np.roll(phi, 1, axis=a)) / 2 for a in range(phi.ndim)]
    return np.stack(comps[::-1])  # axis -1 is x, so the x component comes first


def _all_2d() -> list[Augmentation]:
    return [
        Augmentation(shape=(12, 12), flips=(fy, fx), k=k, shifts=(sy, sx))
        for fy, fx, k in itertools.product([False, True], [False, True], range(4))
        for sy, sx in [(0, 0), (5, 2)]
    ]


@pytest.mark.parametrize("aug", _all_2d(), ids=str)
def test_gradient_of_augmented_potential_equals_augmented_gradient_2d(aug):
    phi = _potential((12, 12), seed=1)
    grad = _gradient(phi)  # [u, v]
    channels = ["phi", "u", "v", "mask"]
    sample = np.concatenate([phi[None], grad, np.ones((1, 12, 12))])
    out = aug.apply(sample, channels, [UV])
    np.testing.assert_array_equal(out[1:3], _gradient(out[0]))
    # the vector on its own, with components listed in another order
    vu = aug.apply(grad[::-1], ["v", "u"], [VectorConfig(components=["v", "u"], axes=["y", "x"])])
    np.testing.assert_array_equal(vu[::-1], out[1:3])
    np.testing.assert_array_equal(out[3], 1.0)
    linear = Augmentation(shape=aug.shape, flips=aug.flips, k=aug.k)
    if not np.array_equal(linear.apply(phi), phi):  # not the identity (flips of both + k=2 is)
        assert not np.array_equal(out[1:3], aug.apply(grad))  # the vector rule did something


def _all_3d() -> list[Augmentation]:
    return [
        Augmentation(shape=(6, 6, 6), flips=flips, k=k, perm=perm, shifts=shifts)
        for flips in itertools.product([False, True], repeat=3)
        for perm in itertools.permutations(range(3))
        for k, shifts in [(0, None), (1, (1, 2, 3))]
    ]


@pytest.mark.parametrize("aug", _all_3d(), ids=str)
def test_gradient_of_augmented_potential_equals_augmented_gradient_3d(aug):
    phi = _potential((6, 6, 6), seed=2)
    grad = _gradient(phi)  # [u, v, w]
    sample = np.concatenate([phi[None], grad])
    out = aug.apply(sample, ["phi", "u", "v", "w"], [UVW])
    np.testing.assert_array_equal(out[1:], _gradient(out[0]))


def test_random_draws_3d_cover_flips_and_all_permutations():
    cfg = AugmentConfig(permute=True, roll_axes=["x", "z"])
    phi = _potential((4, 4, 4), seed=3)
    sample = np.concatenate([phi[None], _gradient(phi)])
    perms, flips = set(), set()
    for seed in range(300):
        aug = draw_augmentation(np.random.default_rng(seed), cfg, (4, 4, 4))
        perms.add(aug.perm or (0, 1, 2))
        flips.add(aug.flips)
        assert aug.shifts is None or aug.shifts[1] == 0  # y is not rolled
        out = aug.apply(sample, ["phi", "u", "v", "w"], [UVW])
        np.testing.assert_array_equal(out[1:], _gradient(out[0]))
    assert len(perms) == 6 and len(flips) == 8


def test_torch_tensors_match_numpy():
    phi = _potential((6, 6, 6), seed=4)
    sample = np.concatenate([phi[None], _gradient(phi)])[None]  # [B, C, D, H, W]
    cfg = AugmentConfig(permute=True, roll_axes=["x", "y", "z"])
    for seed in range(20):
        aug = draw_augmentation(np.random.default_rng(seed), cfg, (6, 6, 6))
        ref = aug.apply(sample, ["phi", "u", "v", "w"], [UVW])
        out = aug.apply(torch.from_numpy(sample), ["phi", "u", "v", "w"], [UVW])
        assert isinstance(out, torch.Tensor) and out.is_contiguous()
        np.testing.assert_array_equal(out.numpy(), ref)


# --------------------------------------------------------------------------- (c) coarse rolls


def _coarsen(x: np.ndarray, f: int) -> np.ndarray:
    """Block mean of ``[C, H, W]`` over ``f x f`` blocks."""
    c, h, w = x.shape
    return x.reshape(c, h // f, f, w // f, f).mean(axis=(2, 4))


def test_rolls_consistent_between_fine_and_coarse():
    f = 4
    rng = np.random.default_rng(5)
    fine = rng.integers(0, 50, size=(2, 16, 24)).astype(np.float64)  # exact block sums
    coarse = _coarsen(fine, f)
    cfg = AugmentConfig(rot90=False, roll_axes=["x", "y"])
    shifts = set()
    for seed in range(60):
        aug = draw_augmentation(np.random.default_rng(seed), cfg, (16, 24), roll_multiple=f)
        assert all(s % f == 0 for s in aug.shifts or ())
        shifts.add(aug.shifts)
        # roll then coarsen == coarsen then roll (and the same for flips)
        np.testing.assert_array_equal(_coarsen(aug.apply(fine), f), aug.apply(coarse))
    assert len(shifts) > 10
    # per-axis multiples: y in steps of 2, x in steps of 8
    aug = draw_augmentation(
        np.random.default_rng(1),
        AugmentConfig(roll_axes=["x", "y"]),
        (16, 24),
        roll_multiple=(2, 8),
    )
    assert aug.shifts[0] % 2 == 0 and aug.shifts[1] % 8 == 0


def test_roll_without_multiple_cannot_apply_to_coarse():
    aug = Augmentation(shape=(16, 16), flips=(False, False), shifts=(0, 3))
    with pytest.raises(DataError, match="roll_multiple=4"):
        aug.apply(np.zeros((1, 4, 4)))
    with pytest.raises(DataError, match="integer coarsening"):
        aug.apply(np.zeros((1, 5, 16)))


# --------------------------------------------------------------------------- (d) scalars


def test_scalar_channels_transform_as_scalars():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 8, 8))
    for seed in range(30):
        aug = draw_augmentation(np.random.default_rng(seed), AugmentConfig(), (8, 8))
        plain = aug.apply(x)
        with_vec = aug.apply(x, ["t", "u", "v", "q"], [UV])
        np.testing.assert_array_equal(with_vec[[0, 3]], plain[[0, 3]])
        # the vector channels hold the same values up to sign and order
        assert {tuple(np.abs(c).ravel()) for c in with_vec[1:3]} == {
            tuple(np.abs(c).ravel()) for c in plain[1:3]
        }
        # an array without any component (a mask) is fine and unchanged by the vector rule
        np.testing.assert_array_equal(aug.apply(x[:1], ["mask"], [UV]), plain[:1])


def test_flip_axes_restricts_flips():
    cfg = AugmentConfig(flip_axes=["x"], rot90=False)
    flips = {draw_augmentation(np.random.default_rng(s), cfg, (4, 4, 4)).flips for s in range(50)}
    assert flips == {(False, False, False), (False, False, True)}


# --------------------------------------------------------------------------- (e) errors


def test_errors():
    aug = Augmentation(shape=(8, 8), flips=(False, True))
    x = np.zeros((3, 8, 8))
    with pytest.raises(ConfigError, match=r"\['v'\] missing from the channels \['t', 'u', 'q'\]"):
        aug.apply(x, ["t", "u", "q"], [UV])
    with pytest.raises(ConfigError, match="channel names"):
        aug.apply(x, None, [UV])
    with pytest.raises(DataError, match="2 channel names"):
        aug.apply(x, ["u", "v"], [UV])
    with pytest.raises(DataError, match="fewer dims"):
        aug.apply(np.zeros(8))
    # a vector missing the component that a rotation would bring in
    rot = Augmentation(shape=(8, 8), flips=(False, False), k=1)
    u_only = VectorConfig(components=["u"], axes=["x"])
    with pytest.raises(ConfigError, match="no component along y"):
        rot.apply(np.zeros((1, 8, 8)), ["u"], [u_only])
    # but flips alone are fine for it: flipping x negates u, flipping y leaves it
    np.testing.assert_array_equal(aug.apply(np.ones((1, 8, 8)), ["u"], [u_only]), -1.0)
    flip_y = Augmentation(shape=(8, 8), flips=(True, False))
    np.testing.assert_array_equal(flip_y.apply(np.ones((1, 8, 8)), ["u"], [u_only]), 1.0)
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="'z' does not exist"):
        draw_augmentation(rng, AugmentConfig(roll_axes=["z"]), (8, 8))
    with pytest.raises(ConfigError, match="'z' does not exist"):
        draw_augmentation(rng, AugmentConfig(vectors=[UVW]), (8, 8))
    with pytest.raises(DataError, match="equal extents"):
        draw_augmentation(rng, AugmentConfig(permute=True), (4, 8, 8))
    with pytest.raises(DataError, match="multiple"):
        draw_augmentation(rng, AugmentConfig(roll_axes=["x"]), (8, 10), roll_multiple=4)
    with pytest.raises(ConfigError, match="roll_multiple"):
        draw_augmentation(rng, AugmentConfig(), (8, 8), roll_multiple=(2, 2, 2))
