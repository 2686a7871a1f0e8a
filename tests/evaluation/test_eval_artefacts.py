"""The block-artefact metric: lattice bins, Parseval, masking, and lattices it must see."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from geogan.core.errors import ConfigError, DataError
from geogan.core.registry import METRICS
from geogan.evaluation import evaluate, interpolate
from geogan.evaluation.artefacts import BlockArtefacts, lattice_orders


def _pool(x, f):
    t, h, w = x.shape
    return x.reshape(t, h // f, f, w // f, f).mean(axis=(2, 4))


def _blocks(x, f):
    return np.repeat(np.repeat(x, f, axis=-2), f, axis=-1)


def _smooth_field(seed, shape, sigma):
    x = gaussian_filter(np.random.default_rng(seed).normal(size=shape), (0, sigma, sigma))
    return x / x.std()


def test_lattice_orders():
    orders = lattice_orders((16, 16), (4, 4), 0)
    assert (orders > 0).sum() == 4 * 4 - 1  # every multiple of 16 / 4 = 4 bins but DC
    assert orders[4, 0] == orders[0, 12] == 1 and orders[8, 4] == 2 and orders[0, 0] == 0
    wide = lattice_orders((32, 32), (4, 4), 1)
    assert wide[7, 0] == wide[9, 1] == 1 and wide[0, 0] == 0 and wide[4, 4] == 0
    assert METRICS.get("block_artefacts") is BlockArtefacts
    with pytest.raises(ConfigError, match="needs the resolution factor"):
        BlockArtefacts()
    with pytest.raises(ConfigError, match="multiple of the factor"):
        BlockArtefacts(factor=4, tile=10)


def test_truth_is_one_and_parseval_for_a_sinusoid_at_the_coarse_frequency():
    f, a, size = 8, 0.7, 128
    truth = _smooth_field(0, (2, size, size), 4)
    m = BlockArtefacts(factor=f)
    m.update(truth, np.stack([truth, truth]))
    out = m.finalize()
    assert out["block_power_ratio"] == pytest.approx(1.0)
    assert out["block_tiles"] == (size // 64) ** 2
    # a cosine at 1 / f cycles per pixel: all of its (Hann-windowed) energy lies on the
    # lattice's order-1 bins, so Parseval gives L^2 a^2 / 2 there (L = tile edge = 8 f)
    x = np.arange(size)
    wave = np.broadcast_to(a * np.cos(2 * np.pi * x / f), (2, size, size)).copy()
    m = BlockArtefacts(factor=f)
    m.update(truth, wave[None])
    curve = m.finalize()["block_artefacts"]
    assert curve["order"][0] == 1
    assert curve["power"][0] == pytest.approx((8 * f) ** 2 * a**2 / 2, rel=1e-9)
    assert sum(curve["power"][1:]) == pytest.approx(0.0, abs=1e-9)


def test_masked_tiles_are_skipped_and_chunks_and_merge_agree():
    f = 4
    truth = _smooth_field(1, (3, 64, 64), 3)
    ens = truth[None] + 0.3 * np.random.default_rng(2).normal(size=(2, *truth.shape))
    valid = np.ones(truth.shape, bool)
    valid[:, 5, 40] = False  # one pixel kills the tile (rows 0-31, columns 32-63)
    truth_nan = np.where(valid, truth, np.nan)
    one = BlockArtefacts(factor=f)
    one.update(truth_nan, ens, valid)
    res = one.finalize()
    assert res["block_tiles"] == 3 and np.isfinite(res["block_power_ratio"])
    a, b = BlockArtefacts(factor=f), BlockArtefacts(factor=f)
    a.update(truth_nan[:1], ens[:, :1], valid[:1])
    b.update(truth_nan[1:], ens[:, 1:], valid[1:])
    a.merge(b)
    assert a.finalize()["block_power_ratio"] == pytest.approx(res["block_power_ratio"], rel=1e-12)
    with pytest.raises(DataError, match="one shape"):
        one.update(truth[:, :16, :16], ens[:, :, :16, :16])  # 16 px tiles, not 32
    tiny = BlockArtefacts(factor=f)
    tiny.update(truth[:, :3, :3], ens[:, :, :3, :3])  # smaller than one coarse pixel
    assert np.isnan(tiny.finalize()["block_power_ratio"])


def test_block_constant_correction_is_a_lattice_and_smooth_fields_are_not():
    """The ``conserve_mean: additive`` correction (each block shifted to its coarse mean) on
    a field that is smooth where the truth is not: its lattice power is several times the
    truth's; the same field without the correction, or nearest-neighbour upsampling's
    opposite (no lattice power at all: smooth interpolations), is far below."""
    f = 8
    truth = _smooth_field(3, (2, 256, 256), 6) + 0.3 * _smooth_field(4, (2, 256, 256), 1.5)
    coarse = _pool(truth, f)
    smooth = [
        gaussian_filter(truth, (0, 8, 8)) + 0.5 * _smooth_field(10 + i, truth.shape, 10)
        for i in range(3)
    ]
    additive = [y + _blocks(coarse - _pool(y, f), f) for y in smooth]
    detail = [y + 0.3 * _smooth_field(20 + i, truth.shape, 1.5) for i, y in enumerate(smooth)]

    def ratio(members):
        m = BlockArtefacts(factor=f)
        m.update(truth, np.stack(members))
        return m.finalize()["block_power_ratio"]

    assert ratio(additive) > 1.5
    assert ratio([d + _blocks(coarse - _pool(d, f), f) for d in detail]) > 2.0
    assert ratio(detail) == pytest.approx(1.0, abs=0.2)
    assert ratio([_blocks(coarse, f)]) > 2.0  # nearest neighbour: the lattice itself
    assert ratio([interpolate(coarse, f, "bicubic")]) < 0.2


def test_in_evaluate_and_3d():
    f = 2
    rng = np.random.default_rng(6)
    truth3 = gaussian_filter(rng.normal(size=(2, 16, 16, 16)), (0, 1, 1, 1))
    m = BlockArtefacts(factor=f, dims=3)
    m.update(truth3, np.stack([truth3, truth3 + 0.1 * rng.normal(size=truth3.shape)]))
    out = m.finalize()
    assert out["block_tiles"] == 1 and out["block_power_ratio"] > 1.0  # white noise added
    assert out["block_artefacts"]["order"] == [1]
    truth = _smooth_field(7, (2, 32, 32), 2)
    coarse = _pool(truth, 4)
    res = evaluate(
        truth,
        {"gan": truth[None] + 0.01},
        None,
        metrics=[{"block_artefacts": {"factor": 4}}],
        coarse=coarse,
        factor=4,
    )
    assert res["methods"]["gan"]["block_power_ratio"] == pytest.approx(1.0)
    assert res["methods"]["bilinear"]["block_power_ratio"] < 1.0
