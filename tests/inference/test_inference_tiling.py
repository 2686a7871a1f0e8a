"""Tiling: tile placement, blend weights, and tiled == untiled for local operators."""

from __future__ import annotations

import itertools

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
    tile_starts,
    tile_weights,
)

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
    tile_lo = tuple(min(p, s) for p, s in zip(spec.patch_lowres, domain_lo))
    tile_hi = tuple(t * spec.factor for t in tile_lo)
    dom_hi = tuple(s * spec.factor for s in domain_lo)
    total = torch.zeros(dom_hi, dtype=dtype)
    axes = [
        tile_starts(s, p, o) for s, p, o in zip(domain_lo, spec.patch_lowres, spec.overlap_lowres)
    ]
    for start in itertools.product(*axes):
        hs = tuple(s * spec.factor for s in start)
        w = tile_weights(hs, tile_hi, dom_hi, spec, dtype)
        assert bool((w >= 0).all())
        total[tuple(slice(a, a + n) for a, n in zip(hs, tile_hi))] += w
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
