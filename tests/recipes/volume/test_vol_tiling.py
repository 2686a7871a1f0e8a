"""Whole-volume generation: position-hashed noise, folding, and tiles that assemble exactly
(periodic axes and per-axis factors included), streamed or in memory."""

from __future__ import annotations

import pytest
import torch

from geogan.core.errors import ConfigError, DataError
from geogan.models.srsgan import SRSGANGenerator
from geogan.recipes.volume.generate import fold, generate_volume, tile_spec, unfold
from geogan.recipes.volume.noise import hashed_normal, tile_noise


def test_hashed_noise_is_standard_normal_and_a_function_of_position():
    c = [torch.arange(40), torch.arange(50), torch.arange(60)]
    z = hashed_normal(11, 0, c).double()
    assert z.shape == (40, 50, 60)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs((z > 2).double().mean() - 0.02275) < 0.002  # the normal tail
    sub = hashed_normal(11, 0, [c[0][5:9], c[1][10:30], c[2][:7]])
    torch.testing.assert_close(sub, z[5:9, 10:30, :7].float())
    other = hashed_normal(12, 0, c).double()
    stream = hashed_normal(11, 1, c).double()
    for w in (other, stream):
        assert abs(torch.corrcoef(torch.stack([z.flatten(), w.flatten()]))[0, 1]) < 0.01
    lag = torch.corrcoef(torch.stack([z[:, :, 1:].flatten(), z[:, :, :-1].flatten()]))[0, 1]
    assert abs(lag) < 0.01


def test_tile_noise_covers_the_fine_voxels_of_a_tile():
    grids = torch.meshgrid(*[torch.arange(n) for n in (6, 7, 8)], indexing="ij")
    coords = torch.stack(grids)
    whole = tile_noise(3, coords, [(1, 1, 1), (2, 2, 4)])
    assert [tuple(n.shape) for n in whole] == [(1, 1, 6, 7, 8), (1, 1, 12, 14, 32)]
    part = tile_noise(3, coords[:, 2:5, 1:4, 3:8], [(1, 1, 1), (2, 2, 4)])
    torch.testing.assert_close(part[0], whole[0][:, :, 2:5, 1:4, 3:8])
    torch.testing.assert_close(part[1], whole[1][:, :, 4:10, 2:8, 12:32])


def test_fold_is_a_pixel_unshuffle_and_unfold_inverts_it():
    y = torch.randn(2, 3, 4, 6, 8)
    x = fold(y, (2, 3, 4))
    assert x.shape == (2, 3 * 24, 2, 2, 2)
    # channel c * 24 + (i * 3 + j) * 4 + k holds y[c, 2a + i, 3b + j, 4e + k] at (a, b, e)
    assert x[1, 2 * 24 + (1 * 3 + 2) * 4 + 3, 1, 0, 1] == y[1, 2, 3, 2, 7]
    torch.testing.assert_close(unfold(x, (2, 3, 4), 3), y)


def _model(factor, modes="zeros", dtype=torch.float32):
    torch.manual_seed(0)
    g = (
        SRSGANGenerator(
            dims=3,
            in_channels=2,
            out_channels=2,
            factor=factor,
            chan_base=8,
            chan_min=4,
            chan_max=8,
            padding_mode=modes,
        )
        .eval()
        .to(dtype)
    )
    with torch.no_grad():
        for block in g.blocks:  # noise scales start at 0: make the noise count
            block.noise1.inject.weight.fill_(0.5)
            block.noise2.inject.weight.fill_(0.5)
    return g


CASES = [
    ((4, 4, 4), (True, True, True), (4, 8, 5), (4, 7, 5)),
    ((2, 2, 4), (False, True, False), (9, 9, 6), (7, 7, 6)),
    ((1, 2, 2), (False, False, True), (4, 11, 12), (4, 9, 8)),
]


@pytest.mark.parametrize("factor,periodic,shape,tile", CASES)
def test_tiled_volume_equals_untiled_to_1e_5(factor, periodic, shape, tile):
    g = _model(list(factor))
    x = torch.randn(2, *shape)
    with torch.no_grad():
        whole = generate_volume(g, x, factor=factor, seed=4, member=2, spec=None, periodic=periodic)
        spec = tile_spec(g, shape, tile, periodic)
        tiled = generate_volume(g, x, factor=factor, seed=4, member=2, spec=spec, periodic=periodic)
        slabs = {}
        generate_volume(
            g,
            x,
            factor=factor,
            seed=4,
            member=2,
            spec=spec,
            periodic=periodic,
            sink=lambda rows, b: slabs.__setitem__(rows, b),
        )
    assert whole.shape == (2, *(n * f for n, f in zip(shape, factor)))
    assert (tiled - whole).abs().max() <= 1e-5
    streamed = torch.cat([slabs[r][0] for r in sorted(slabs)], dim=1)
    assert sum(b - a for a, b in slabs) == whole.shape[1]
    assert (streamed - whole).abs().max() <= 1e-5


def test_a_periodic_volume_rolls_with_its_input():
    """On periodic axes the generator sees a circle: rolling the input rolls the output
    (noise is a function of position, so roll it too by rolling the coordinates' origin)."""
    g = _model([2, 2, 2])
    with torch.no_grad():
        for block in g.blocks:
            block.noise1.inject.weight.zero_()
            block.noise2.inject.weight.zero_()
    x = torch.randn(2, 6, 8, 7)
    per = (True, True, True)
    with torch.no_grad():
        y = generate_volume(g, x, factor=(2, 2, 2), seed=0, member=0, spec=None, periodic=per)
        xr = torch.roll(x, shifts=(2, 3, 1), dims=(1, 2, 3))
        yr = generate_volume(g, xr, factor=(2, 2, 2), seed=0, member=0, spec=None, periodic=per)
    torch.testing.assert_close(
        yr, torch.roll(y, shifts=(4, 6, 2), dims=(1, 2, 3)), atol=1e-5, rtol=1e-5
    )


def test_members_differ_and_repeat_with_their_seed():
    g = _model([2, 2, 2])
    x = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        a = generate_volume(g, x, factor=(2, 2, 2), seed=0, member=0, spec=None)
        b = generate_volume(g, x, factor=(2, 2, 2), seed=0, member=1, spec=None)
        c = generate_volume(g, x, factor=(2, 2, 2), seed=0, member=1, spec=None)
    assert not torch.allclose(a, b)
    torch.testing.assert_close(b, c)


def test_a_volume_smaller_than_a_tile_or_a_tile_within_its_margins_is_refused():
    g = _model([4, 4, 4])
    with pytest.raises(DataError, match="smaller than a tile"):
        tile_spec(g, (8, 8, 4), (8, 8, 8), (False,) * 3)
    with pytest.raises(ConfigError, match="receptive radius"):
        tile_spec(g, (20, 20, 20), (6, 6, 6), (False,) * 3)
    assert tile_spec(g, (8, 8, 8), None, (False,) * 3) is None
