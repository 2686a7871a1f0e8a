"""Tiling: tile placement, blend weights, and tiled == untiled for local operators."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError, DataError
from geogan.inference.tiling import (
    TileSpec,
    blend_weights,
    generate_tiled,
    generate_tiled_many,
    generate_tiled_streaming,
    tile_starts,
    tile_weights,
)
from geogan.nn import conv_nd

# --- tile_starts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "patch", "overlap"),
    [
        (s, p, o)
        for s, p, o in itertools.product(
            [1, 3, 7, 8, 9, 16, 17, 33, 100], [1, 4, 8, 9], [0, 1, 3, 7]
        )
        if o < p
    ],
)
def test_tile_starts_cover_axis_with_flush_last_tile(size, patch, overlap):
    starts = tile_starts(size, patch, overlap)
    length = min(patch, size)
    assert starts[0] == 0
    assert starts[-1] + length == size  # last tile flush with the end
    assert starts == sorted(set(starts))
    covered = torch.zeros(size, dtype=torch.int64)
    for s in starts:
        assert 0 <= s and s + length <= size
        covered[s : s + length] += 1
    assert bool((covered >= 1).all())
    for a, b in zip(starts, starts[1:]):
        assert b - a <= patch - overlap  # neighbours overlap by at least `overlap`


def test_tile_starts_examples_and_small_domain():
    assert tile_starts(10, 4, 1) == [0, 3, 6]
    assert tile_starts(13, 5, 2) == [0, 3, 6, 8]
    assert tile_starts(12, 4, 0) == [0, 4, 8]
    assert tile_starts(3, 8, 2) == [0]  # smaller than a patch: one tile, whole axis
    assert tile_starts(8, 8, 2) == [0]


@pytest.mark.parametrize(
    ("size", "patch", "overlap"), [(0, 4, 1), (10, 0, 0), (10, 4, 4), (10, 4, -1)]
)
def test_tile_starts_rejects_bad_arguments(size, patch, overlap):
    with pytest.raises(ValueError):
        tile_starts(size, patch, overlap)


# --- TileSpec ----------------------------------------------------------------------------------


def test_tilespec_validation_and_conversions():
    spec = TileSpec((16, 12), 4, 3)
    assert spec.overlap_lowres == (4, 4)
    assert spec.margin_lowres == (1, 1)  # default overlap // 4
    assert spec.patch_highres == (48, 36) and spec.overlap_highres == (12, 12)
    assert spec.margin_highres == (3, 3) and spec.ndim == 2
    assert TileSpec.from_highres(64, 16, 4) == TileSpec((16, 16), (4, 4), 4)
    assert TileSpec.from_highres(64, 10, 4).overlap_lowres == (3, 3)  # rounded up
    assert TileSpec.from_highres((8, 8, 8), 4, 2, ndim=3).patch_lowres == (4, 4, 4)
    with pytest.raises(ConfigError):
        TileSpec((8, 8), (8, 8), 2)  # overlap == patch
    with pytest.raises(ConfigError):
        TileSpec((8, 8), (4, 4), 2, margin_lowres=3)  # margin > overlap / 2
    with pytest.raises(ConfigError):
        TileSpec((8, 8), (4, 4, 4), 2)
    with pytest.raises(ConfigError):
        TileSpec((8, 8), 2, 0)
    with pytest.raises(ConfigError):
        TileSpec.from_highres(30, 4, 4)
    assert spec.periodic == (False, False)
    assert TileSpec((8, 8), 2, 2, periodic=True).periodic == (True, True)
    assert TileSpec.from_highres(16, 4, 2, periodic=(False, True)).periodic == (False, True)
    with pytest.raises(ConfigError, match="periodic"):
        TileSpec((8, 8), 2, 2, periodic=(True,))
    with pytest.raises(ConfigError, match="periodic"):
        TileSpec((8, 8), 2, 2, periodic=(1, 0))


# --- weights -----------------------------------------------------------------------------------


def test_blend_weights_positive_one_inside_smooth_ramp():
    w = blend_weights((20, 14), (6, 4))
    assert w.shape == (20, 14) and w.dtype == torch.float32
    assert bool((w > 0).all())
    assert torch.equal(w[6:14, 4:10], torch.ones(8, 6))  # interior
    assert float(w.max()) == 1.0
    # separable, symmetric, monotone ramp
    assert torch.allclose(w, w[:, 7:8] * w[10:11, :] / w[10, 7])
    assert torch.allclose(w, w.flip(0)) and torch.allclose(w, w.flip(1))
    ramp = w[:6, 7]
    assert bool((ramp[1:] > ramp[:-1]).all())
    # tiny tile (ramps longer than half the tile): still positive everywhere
    assert bool((blend_weights((3, 3, 3), 8) > 0).all())
    assert blend_weights((4, 5, 6), 1).shape == (4, 5, 6)


def _accumulate_weights(domain_lo, spec, dtype=torch.float64):
    """Sum of every tile's weights over the high-res domain, wrapping round periodic axes
    with index arithmetic (independent of the module's own wrap code)."""
    tile_lo = tuple(min(p, s) for p, s in zip(spec.patch_lowres, domain_lo))
    tile_hi = tuple(t * spec.factor for t in tile_lo)
    dom_hi = tuple(s * spec.factor for s in domain_lo)
    total = torch.zeros(dom_hi, dtype=dtype)
    axes = [
        tile_starts(s, p, o, per)
        for s, p, o, per in zip(domain_lo, spec.patch_lowres, spec.overlap_lowres, spec.periodic)
    ]
    for start in itertools.product(*axes):
        hs = tuple(s * spec.factor for s in start)
        w = tile_weights(hs, tile_hi, dom_hi, spec, dtype)
        assert bool((w >= 0).all())
        index = torch.meshgrid(
            *[(a + torch.arange(n)) % size for a, n, size in zip(hs, tile_hi, dom_hi)],
            indexing="ij",
        )
        total.index_put_(index, w, accumulate=True)
    return total


@pytest.mark.parametrize("margin", [0, 1, 2])
def test_regular_tiling_weights_are_a_partition_of_unity(margin):
    # domain = patch + k * step: every overlap is exactly `overlap` wide, where the
    # rising and falling raised-cosine ramps sum to 1.
    spec = TileSpec((8, 10), (4, 4), 2, margin_lowres=margin)
    total = _accumulate_weights((8 + 2 * 4, 10 + 3 * 6), spec)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12, rtol=0)


@pytest.mark.parametrize("domain", [(21, 17), (9, 30), (3, 5), (8, 8)])
@pytest.mark.parametrize("margin", [0, 1, 2])
def test_irregular_tiling_weights_positive_and_reconstruct_constant(domain, margin):
    spec = TileSpec((8, 8), (4, 4), 3, margin_lowres=margin)
    assert bool((_accumulate_weights(domain, spec) > 0).all())
    # tiles of a constant field blend back to the constant
    x = torch.zeros(1, *domain)
    out = generate_tiled(
        lambda b: torch.full((b["input"].shape[0], 2, *(3 * s for s in b["input"].shape[2:])), 2.5),
        {"input": x},
        ["input"],
        [],
        spec,
        batch_size=5,
    )
    assert out.shape == (2, 3 * domain[0], 3 * domain[1])
    assert torch.allclose(out, torch.full_like(out, 2.5), atol=1e-6, rtol=0)


# --- tiled == untiled --------------------------------------------------------------------------


def _nearest_generator(factor):
    """A purely local 'generator': nearest upsampling of input + noise, plus the constants."""

    def fn(batch):
        lo = batch["input"] + batch["noise"][:, :1]
        up = F.interpolate(lo, scale_factor=factor, mode="nearest")
        return up + batch["constants"].sum(1, keepdim=True)

    return fn


@pytest.mark.parametrize("domain", [(16, 16), (21, 17), (5, 30)])
def test_tiled_equals_untiled_for_nearest_upsampling(domain):
    g = torch.Generator().manual_seed(0)
    f = 3
    inputs = {
        "input": torch.randn(2, *domain, generator=g),
        "noise": torch.randn(1, *domain, generator=g),  # drawn once over the whole domain
        "constants": torch.randn(2, *(f * s for s in domain), generator=g),
    }
    fn = _nearest_generator(f)
    full = fn({k: v[None] for k, v in inputs.items()})[0]
    spec = TileSpec((8, 8), (2, 2), f)
    tiled = generate_tiled(fn, inputs, ["input", "noise"], ["constants"], spec, batch_size=4)
    assert tiled.shape == full.shape == (2, f * domain[0], f * domain[1])
    assert torch.allclose(tiled, full, atol=1e-5, rtol=0)


class _LocalNet(nn.Module):
    """Low-res conv -> nearest upsample -> two high-res convs (with constants).

    An output pixel depends on inputs within < 2 low-res pixels (4 high-res pixels at
    factor 2), so a margin of 2 low-res pixels makes tiling exact.
    """

    def __init__(self, padding_mode, dims=2):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.lo = conv(3, 4, 3, padding=1, padding_mode=padding_mode)
        self.hi1 = conv(5, 4, 3, padding=1, padding_mode=padding_mode)
        self.hi2 = conv(4, 2, 3, padding=1, padding_mode=padding_mode)

    def forward(self, batch):
        h = torch.tanh(self.lo(torch.cat([batch["input"], batch["noise"]], 1)))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = torch.tanh(self.hi1(torch.cat([h, batch["constants"]], 1)))
        return self.hi2(h)


def _net_inputs(domain, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {
        "input": torch.randn(2, *domain, generator=g),
        "noise": torch.randn(1, *domain, generator=g),
        "constants": torch.randn(1, *(2 * s for s in domain), generator=g),
    }


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate"])
@pytest.mark.parametrize("domain", [(24, 20), (19, 23)])
def test_tiled_equals_untiled_for_local_conv_net_everywhere(padding_mode, domain):
    torch.manual_seed(0)
    net = _LocalNet(padding_mode).eval()
    inputs = _net_inputs(domain)
    with torch.no_grad():
        full = net({k: v[None] for k, v in inputs.items()})[0]
        spec = TileSpec((8, 8), (4, 4), 2, margin_lowres=2)
        tiled = generate_tiled(net, inputs, ["input", "noise"], ["constants"], spec, batch_size=3)
    # The padding at tile edges on the domain border is the same as untiled, so the
    # equality holds at the borders too, not only in the interior.
    assert (tiled - full).abs().max() < 1e-5


def test_margin_is_what_makes_conv_net_tiling_exact():
    # Negative control: without a margin the padded tile edges leak into the blend.
    torch.manual_seed(0)
    net = _LocalNet("reflect").eval()
    inputs = _net_inputs((24, 20))
    with torch.no_grad():
        full = net({k: v[None] for k, v in inputs.items()})[0]
        spec = TileSpec((8, 8), (4, 4), 2, margin_lowres=0)
        tiled = generate_tiled(net, inputs, ["input", "noise"], ["constants"], spec, batch_size=8)
    err = (tiled - full).abs()
    assert err.max() > 1e-3
    # ...but only near tile edges: pixels covered by a single tile interior are exact.
    assert err[:, :4, :4].max() < 1e-5


def test_tiled_independent_of_batch_size_and_many_matches_single():
    torch.manual_seed(0)
    net = _LocalNet("zeros").eval()
    items = [_net_inputs((19, 13), seed=s) for s in (1, 2)]
    spec = TileSpec((8, 8), (4, 4), 2)
    with torch.no_grad():
        one = [generate_tiled(net, it, ["input", "noise"], ["constants"], spec, 1) for it in items]
        calls = []
        many = generate_tiled_many(
            net,
            items,
            ["input", "noise"],
            ["constants"],
            spec,
            batch_size=7,
            progress=lambda d, t: calls.append((d, t)),
        )
    assert many.shape == (2, 2, 38, 26)
    for n in range(2):
        assert torch.allclose(many[n], one[n], atol=1e-6, rtol=0)
    assert calls[-1][0] == calls[-1][1] == 2 * 4 * 3  # 2 items x (4 x 3 tiles)


def test_small_domain_single_tile_equals_untiled():
    torch.manual_seed(0)
    net = _LocalNet("reflect").eval()
    inputs = _net_inputs((5, 6))
    seen = []

    def fn(batch):
        seen.append(tuple(batch["input"].shape))
        return net(batch)

    with torch.no_grad():
        full = net({k: v[None] for k, v in inputs.items()})[0]
        tiled = generate_tiled(
            fn, inputs, ["input", "noise"], ["constants"], TileSpec((8, 8), 4, 2), 4
        )
    assert seen == [(1, 2, 5, 6)]  # one tile of the whole (smaller) domain
    assert torch.allclose(tiled, full, atol=1e-6, rtol=0)


# --- 3D ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "margin"), [("nearest", 0), ("trilinear", 1)])
def test_3d_tiling_with_upsampler(mode, margin):
    # trilinear (align_corners=False) reads +-1 low-res neighbours and clamps at edges:
    # exact with a 1-pixel margin; nearest is pointwise, exact with no margin.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 11, 9, 14, generator=g)

    def up(batch):
        return F.interpolate(batch["input"], scale_factor=2, mode=mode)

    full = up({"input": x[None]})[0]
    spec = TileSpec((6, 6, 6), (2, 2, 2), 2, margin_lowres=margin)
    tiled = generate_tiled(up, {"input": x}, ["input"], [], spec, batch_size=5)
    assert tiled.shape == (2, 22, 18, 28)
    assert (tiled - full).abs().max() < 1e-5


def test_3d_conv_net_tiling_exact():
    torch.manual_seed(0)
    net = _LocalNet("zeros", dims=3).eval()
    inputs = _net_inputs((10, 13, 9))
    with torch.no_grad():
        full = net({k: v[None] for k, v in inputs.items()})[0]
        spec = TileSpec((6, 6, 6), (4, 4, 4), 2, margin_lowres=2)
        tiled = generate_tiled(net, inputs, ["input", "noise"], ["constants"], spec, batch_size=8)
    assert (tiled - full).abs().max() < 1e-5


# --- errors ------------------------------------------------------------------------------------


def test_shape_errors_say_what_was_expected():
    spec = TileSpec((4, 4), 2, 2)
    x = torch.zeros(1, 8, 8)
    with pytest.raises(DataError, match="expected"):
        generate_tiled(
            lambda b: b, {"input": x, "c": torch.zeros(1, 15, 16)}, ["input"], ["c"], spec, 2
        )
    with pytest.raises(DataError, match="expected"):
        generate_tiled(
            lambda b: b, {"input": x, "n": torch.zeros(1, 8, 7)}, ["input", "n"], [], spec, 2
        )
    with pytest.raises(ValueError, match="expected"):
        generate_tiled(lambda b: b["input"], {"input": x}, ["input"], [], spec, 2)  # not upsampled
    with pytest.raises(ValueError):
        generate_tiled(lambda b: b["input"], {"input": torch.zeros(8, 8)}, ["input"], [], spec, 2)


# --- periodic axes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "patch", "overlap"),
    [
        (s, p, o)
        for s, p, o in itertools.product([1, 7, 8, 9, 16, 17, 24, 33, 100], [4, 8, 9], [0, 1, 3])
        if o < p
    ],
)
def test_periodic_tile_starts_go_round_the_circle(size, patch, overlap):
    starts = tile_starts(size, patch, overlap, periodic=True)
    if size <= patch:
        assert starts == [0]  # one tile, the whole axis: the model's padding wraps it
        return
    step = patch - overlap
    assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < size
    assert len(starts) == math.ceil(size / step)
    gaps = [b - a for a, b in zip(starts, starts[1:] + [starts[0] + size])]
    assert max(gaps) <= step  # every neighbour pair overlaps by >= overlap, wrap included
    assert max(gaps) - min(gaps) <= math.gcd(size, patch, overlap)  # evenly spread
    covered = torch.zeros(size, dtype=torch.int64)
    for s in starts:
        covered[(s + torch.arange(patch)) % size] += 1
    assert bool((covered >= 1).all())
    q = math.gcd(size, patch, overlap)
    assert all(s % q == 0 for s in starts)  # strides dividing size/patch/overlap stay aligned


def test_periodic_tile_starts_examples():
    assert tile_starts(24, 8, 2, periodic=True) == [0, 6, 12, 18]  # regular: step 6
    assert tile_starts(10, 4, 1, periodic=True) == [0, 2, 5, 7]  # 4 tiles, gaps 2-3
    assert tile_starts(12, 4, 0, periodic=True) == [0, 4, 8]
    assert tile_starts(8, 8, 2, periodic=True) == [0]


@pytest.mark.parametrize("margin", [0, 1, 2])
def test_periodic_regular_tiling_weights_are_a_partition_of_unity(margin):
    # periodic axis of 4 steps of 6: every overlap, the wrap-round one included, is 4 wide
    spec = TileSpec((8, 10), (4, 4), 2, margin_lowres=margin, periodic=(False, True))
    total = _accumulate_weights((8 + 2 * 4, 24), spec)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12, rtol=0)
    # every tile on the periodic axis has a dead band and a ramp on both sides
    w = tile_weights((0, 0), (16, 20), (32, 48), spec, torch.float64)
    lon = w[0]  # latitude row 0 is on the (non-periodic) border: weight 1 along latitude
    dead = 2 * margin
    assert torch.equal(lon, lon.flip(0))  # the tile at lon = 0 has neighbours on both sides
    assert bool((lon[:dead] == 0).all()) and bool((lon[dead : 20 - dead] > 0).all())
    assert float(lon[9]) == 1.0
    ramp = 2 * (4 - 2 * margin)  # high-res pixels
    assert bool((lon[dead : dead + ramp] < 1).all()) and float(lon[dead + ramp]) == 1.0


@pytest.mark.parametrize("domain", [(21, 17), (9, 30), (3, 5), (8, 9)])
@pytest.mark.parametrize("periodic", [(False, True), (True, True), (True, False)])
def test_periodic_weights_positive_and_reconstruct_constant(domain, periodic):
    spec = TileSpec((8, 8), (4, 4), 3, margin_lowres=2, periodic=periodic)
    assert bool((_accumulate_weights(domain, spec) > 0).all())
    x = torch.zeros(1, *domain)
    out = generate_tiled(
        lambda b: torch.full((b["input"].shape[0], 2, *(3 * s for s in b["input"].shape[2:])), 2.5),
        {"input": x},
        ["input"],
        [],
        spec,
        batch_size=5,
    )
    assert torch.allclose(out, torch.full_like(out, 2.5), atol=1e-6, rtol=0)


def test_wrapping_tiles_read_inputs_modulo_the_axis():
    # An identity "generator" on coordinate fields: every tile must receive the inputs
    # at (start + i) mod size, and the blend must put every value back in its place.
    lat, lon = torch.meshgrid(torch.arange(9.0), torch.arange(13.0), indexing="ij")
    x = torch.stack([lat, lon])
    seen = set()

    def ident(batch):
        for tile in batch["input"]:
            seen.add(tuple(int(v) for v in tile[1, 0]))  # the longitudes of this tile
        return batch["input"]

    spec = TileSpec((4, 6), (2, 2), 1, margin_lowres=1, periodic=(False, True))
    out = generate_tiled(ident, {"input": x}, ["input"], [], spec, batch_size=3)
    assert torch.equal(out, x)
    starts = tile_starts(13, 6, 2, periodic=True)
    assert starts[-1] + 6 > 13  # the last tile crosses the seam
    assert seen == {tuple((s + i) % 13 for i in range(6)) for s in starts}


class _PeriodicNet(nn.Module):
    """Like :class:`_LocalNet`, padding each axis with its own mode (circular where periodic).

    Receptive half-width: 1 low-res pixel (first conv) + 2 high-res pixels, so a
    margin of 2 low-res pixels (factor 2) or 3 (factor 1) makes tiling exact.
    """

    def __init__(self, modes, factor=2, constants=1):
        super().__init__()
        dims = len(modes)
        self.factor = factor
        self.lo = conv_nd(dims, 3, 4, 3, padding_mode=modes)
        self.hi1 = conv_nd(dims, 4 + constants, 4, 3, padding_mode=modes)
        self.hi2 = conv_nd(dims, 4, 2, 3, padding_mode=modes)

    def forward(self, batch):
        h = torch.tanh(self.lo(torch.cat([batch["input"], batch["noise"]], 1)))
        if self.factor > 1:
            h = F.interpolate(h, scale_factor=self.factor, mode="nearest")
        if "constants" in batch:
            h = torch.cat([h, batch["constants"]], 1)
        return self.hi2(torch.tanh(self.hi1(h)))


def _periodic_case(modes, domain, factor=2):
    torch.manual_seed(0)
    net = _PeriodicNet(modes, factor).eval()
    g = torch.Generator().manual_seed(4)
    inputs = {
        "input": torch.randn(2, *domain, generator=g),
        "noise": torch.randn(1, *domain, generator=g),  # drawn once over the whole domain
        "constants": torch.randn(1, *(factor * s for s in domain), generator=g),
    }
    with torch.no_grad():
        full = net({k: v[None] for k, v in inputs.items()})[0]
    return net, inputs, full


@pytest.mark.parametrize(
    "domain",
    [(19, 23), (13, 16), (16, 9), (9, 7), (12, 8)],  # odd, even split, lon < / == patch
)
def test_periodic_longitude_tiled_equals_untiled_everywhere(domain):
    # [lat, lon]: reflect in latitude (non-periodic), circular in longitude (periodic)
    net, inputs, full = _periodic_case(("reflect", "circular"), domain)
    spec = TileSpec((8, 8), (4, 4), 2, margin_lowres=2, periodic=(False, True))
    with torch.no_grad():
        tiled = generate_tiled(net, inputs, ["input", "noise"], ["constants"], spec, batch_size=3)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < 1e-5  # the seam at lon = 0 included


def test_periodic_flag_is_what_makes_a_circular_model_exact():
    # Negative control: the same circular model tiled WITHOUT the periodic flag sees its
    # own tile wrapped round at the domain's west/east edges instead of the far side.
    net, inputs, full = _periodic_case(("reflect", "circular"), (12, 20))
    spec = TileSpec((8, 8), (4, 4), 2, margin_lowres=2)
    with torch.no_grad():
        tiled = generate_tiled(net, inputs, ["input", "noise"], ["constants"], spec, batch_size=4)
    err = (tiled - full).abs()
    assert err[..., :2].max() > 1e-3 and err[..., -2:].max() > 1e-3
    assert err[..., 8:-8].max() < 1e-5  # away from the seam it is still exact


@pytest.mark.parametrize(
    ("modes", "periodic", "domain"),
    [
        (("circular",) * 3, (True,) * 3, (9, 11, 7)),  # a box periodic on every axis
        (("circular",) * 3, (True,) * 3, (12, 6, 13)),
        (("reflect", "reflect", "circular"), (False, False, True), (7, 10, 11)),
    ],
)
def test_periodic_3d_tiled_equals_untiled(modes, periodic, domain):
    net, inputs, full = _periodic_case(modes, domain)
    spec = TileSpec((6, 6, 6), (4, 4, 4), 2, margin_lowres=2, periodic=periodic)
    with torch.no_grad():
        tiled = generate_tiled(net, inputs, ["input", "noise"], ["constants"], spec, batch_size=8)
    assert (tiled - full).abs().max() < 1e-5


@pytest.mark.parametrize("domain", [(25, 31), (20, 20)])
def test_factor_one_translation_tiled_equals_untiled(domain):
    # same-grid image-to-image: every key on one grid, receptive half-width 3 pixels
    net, inputs, full = _periodic_case(("zeros", "circular"), domain, factor=1)
    spec = TileSpec((10, 10), (6, 6), 1, margin_lowres=3, periodic=(False, True))
    with torch.no_grad():
        tiled = generate_tiled(net, inputs, ["input", "noise"], ["constants"], spec, batch_size=4)
    assert (tiled - full).abs().max() < 1e-5


# --- streaming ---------------------------------------------------------------------------------


class _Collect:
    """A sink that stores the blocks and checks each high-res row is handed over once."""

    def __init__(self, rows):
        self.out = [None] * rows
        self.calls = []

    def __call__(self, rows, block):
        start, stop = rows
        assert block.shape[2] == stop - start and block.dtype == torch.float32
        for r in range(start, stop):
            assert self.out[r] is None, f"row {r} handed over twice"
            self.out[r] = block[:, :, r - start]
        self.calls.append(rows)

    def result(self):
        assert all(r is not None for r in self.out), "rows never handed over"
        return torch.stack(self.out, dim=2)


@pytest.mark.parametrize(
    ("domain", "periodic"),
    [
        ((30, 17), (False, False)),
        ((30, 17), (False, True)),
        ((29, 17), (True, False)),  # periodic first axis: the wrapped rows come last
        ((5, 17), (False, False)),  # first axis shorter than a patch: one block
        ((13, 11, 9), (False, True, True)),
        ((13, 11, 9), (True, True, True)),
    ],
)
def test_streamed_blocks_equal_in_memory_result(domain, periodic):
    d = len(domain)
    factor = 2
    g = torch.Generator().manual_seed(0)
    items = [
        {
            "input": torch.randn(2, *domain, generator=g),
            "noise": torch.randn(1, *domain, generator=g),
            "constants": torch.randn(1, *(factor * s for s in domain), generator=g),
        }
        for _ in range(3)
    ]
    fn = _nearest_generator(factor)  # the same terms on every path: bitwise comparable
    spec = TileSpec((6,) * d, (2,) * d, factor, margin_lowres=1, periodic=periodic)
    keys = (["input", "noise"], ["constants"])
    whole = generate_tiled_many(fn, items, *keys, spec, batch_size=4)
    sink = _Collect(whole.shape[2])
    progress = []
    generate_tiled_streaming(
        fn,
        items,
        *keys,
        spec,
        batch_size=4,
        sink=sink,
        progress=lambda done, total: progress.append((done, len(sink.calls))),
    )
    assert torch.equal(sink.result(), whole)
    if domain[0] > 6:
        assert len(sink.calls) > 2
        assert progress[len(progress) // 2][1] >= 1  # blocks leave before the work is done
    if not periodic[0]:
        assert [c[0] for c in sink.calls] == sorted(c[0] for c in sink.calls)
    else:
        assert sink.calls[0][0] > 0  # row 0 waits for the wrapping last tile row


def test_streamed_conv_net_equals_in_memory_and_untiled():
    net, inputs, full = _periodic_case(("reflect", "circular"), (22, 15))
    items = [inputs, {**inputs, "noise": -inputs["noise"]}]
    spec = TileSpec((8, 8), (4, 4), 2, margin_lowres=2, periodic=(False, True))
    keys = (["input", "noise"], ["constants"])
    with torch.no_grad():
        whole = generate_tiled_many(net, items, *keys, spec, batch_size=1)
        sink = _Collect(whole.shape[2])
        generate_tiled_streaming(net, items, *keys, spec, batch_size=1, sink=sink)
        streamed = sink.result()
        batched = _Collect(whole.shape[2])
        generate_tiled_streaming(net, items, *keys, spec, batch_size=5, sink=batched)
    assert torch.equal(streamed, whole)  # one tile per call: the same operations, same order
    assert (batched.result() - whole).abs().max() < 1e-6
    assert (streamed[0] - full).abs().max() < 1e-5


def test_streaming_holds_only_a_few_tile_rows():
    # One tile per row of tiles and per batch: after batch k the tiles have touched the
    # high-res rows up to 2 * (starts[k] + 6); everything handed over is below that.
    domain = (60, 8)
    spec = TileSpec((6, 8), (2, 2), 2, margin_lowres=1)
    starts = tile_starts(60, 6, 2)
    handed = []
    held = []

    def progress(done, total):
        touched = 2 * (starts[done - 1] + 6)
        held.append(touched - sum(b - a for a, b in handed))

    generate_tiled_streaming(
        lambda b: F.interpolate(b["input"], scale_factor=2),
        [{"input": torch.zeros(1, *domain)}],
        ["input"],
        [],
        spec,
        batch_size=1,
        sink=lambda rows, block: handed.append(rows),
        progress=progress,
    )
    assert sum(b - a for a, b in handed) == 120 and held[-1] == 0
    assert max(held) <= 2 * 6  # never more than one tile row (high-res) waiting
