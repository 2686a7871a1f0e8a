"""Ensembles: one seed per member, independent of batch composition, tiling and member count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError, DataError
from geogan.core.seeding import derive_seed
from geogan.inference.ensemble import generate_ensemble, member_noise, member_seed
from geogan.inference.tiling import TileSpec

FACTOR = 2


class ToyGenerator(nn.Module):
    """generator(input [B,C,h,w], constants [B,K,H,W] | None, noise [B,N,h,w] | None) -> [B,1,H,W]."""

    def __init__(self, c_in=2, k=1, n=2):
        super().__init__()
        self.lo = nn.Conv2d(c_in + n, 4, 3, padding=1, padding_mode="reflect")
        self.hi = nn.Conv2d(4 + k, 1, 3, padding=1, padding_mode="reflect")
        self.calls: list[tuple] = []

    def forward(self, x, constants, noise):
        self.calls.append((x.shape[0], constants is None, noise is None))
        h = torch.cat([x, noise], 1) if noise is not None else x
        h = F.interpolate(torch.tanh(self.lo(h)), scale_factor=FACTOR, mode="nearest")
        if constants is not None:
            h = torch.cat([h, constants], 1)
        return self.hi(h)


@pytest.fixture
def field():
    g = torch.Generator().manual_seed(42)
    return {
        "input": torch.randn(2, 20, 18, generator=g),
        "constants": torch.randn(1, 40, 36, generator=g),
    }


@pytest.fixture
def gen():
    torch.manual_seed(0)
    return ToyGenerator().eval()


def _run(gen, field, **kw):
    kw.setdefault("n_members", 4)
    kw.setdefault("seed", 7)
    kw.setdefault("noise_channels", 2)
    return generate_ensemble(gen, field, **kw)


def test_same_seed_same_members_different_members_differ(gen, field):
    a = _run(gen, field)
    b = _run(gen, field)
    assert a.shape == (4, 1, 40, 36) and a.dtype == torch.float32
    assert torch.equal(a, b)
    for i in range(4):
        for j in range(i + 1, 4):
            assert (a[i] - a[j]).abs().max() > 1e-3
    c = _run(gen, field, seed=8)
    assert (a - c).abs().max() > 1e-3


def test_member_independent_of_count_batch_size_and_offset(gen, field):
    four = _run(gen, field, n_members=4, batch_size=4)
    eight = _run(gen, field, n_members=8, batch_size=3)
    singles = _run(gen, field, n_members=8, batch_size=1)
    tail = _run(gen, field, n_members=4, member_offset=4, batch_size=2)
    assert torch.allclose(eight[:4], four, atol=1e-6, rtol=0)
    assert torch.allclose(singles, eight, atol=1e-6, rtol=0)
    assert torch.allclose(tail, eight[4:], atol=1e-6, rtol=0)


def test_noise_is_member_seeded_over_whole_domain_even_when_tiled():
    # An "echo" generator returns its noise upsampled: the blended output must be the
    # member's whole-domain noise, i.e. every tile got its cut of the same draw.
    def echo(x, constants, noise):
        return F.interpolate(noise, scale_factor=FACTOR, mode="nearest")

    field = {"input": torch.zeros(1, 21, 17)}
    spec = TileSpec((8, 8), (4, 4), FACTOR)
    out = generate_ensemble(echo, field, 3, seed=5, spec=spec, noise_channels=2, member_offset=10)
    for m in range(3):
        expected = member_noise(5, 10 + m, (2, 21, 17))
        assert torch.allclose(
            out[m], F.interpolate(expected[None], scale_factor=FACTOR)[0], atol=1e-6
        )
    assert member_seed(5, 12) == derive_seed(5, 12)


def test_tiled_ensemble_equals_untiled(gen, field):
    whole = _run(gen, field, batch_size=2)
    spec = TileSpec((8, 8), (4, 4), FACTOR, margin_lowres=2)
    tiled = _run(gen, field, spec=spec, batch_size=5)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-5
    # tiles of several members share batches: 4 members x 4 x 4 tiles in batches of 5
    assert max(c[0] for c in gen.calls) == 5


def test_no_constants_no_noise_pass_none():
    torch.manual_seed(0)
    g = ToyGenerator(c_in=2, k=0, n=0).eval()
    field = {"input": torch.randn(2, 6, 6), "constants": torch.zeros(0, 12, 12)}
    out = generate_ensemble(g, field, 3, seed=0, noise_channels=0)
    assert all(c[1] and c[2] for c in g.calls)
    assert torch.equal(out[0], out[2])  # deterministic model: members identical
    g.calls.clear()
    generate_ensemble(g, {"input": field["input"]}, 2, seed=0, spec=TileSpec((4, 4), 2, FACTOR))
    assert g.calls and all(c[1] and c[2] for c in g.calls)


def test_noise_fn_overrides_gaussian(gen, field):
    seen = []

    def noise_fn(seed, f):
        seen.append(seed)
        assert set(f) == {"input", "constants"}
        return torch.full((2, *f["input"].shape[1:]), float(len(seen)))

    out = _run(gen, field, n_members=3, noise_fn=noise_fn, member_offset=2)
    assert seen == [member_seed(7, 2), member_seed(7, 3), member_seed(7, 4)]
    x = field["input"][None]
    c = field["constants"][None]
    with torch.no_grad():
        ref = gen(x, c, torch.full((1, 2, 20, 18), 2.0))[0]
    assert torch.allclose(out[1], ref, atol=1e-6)


def test_vector_noise_is_shared_by_all_tiles():
    def gen(x, constants, noise):  # noise [B, N] is a global latent
        assert noise.dim() == 2
        up = F.interpolate(x, scale_factor=FACTOR)
        return up + noise.sum(1)[:, None, None, None]

    field = {"input": torch.randn(1, 10, 10)}
    out = generate_ensemble(
        gen, field, 2, seed=1, spec=TileSpec((4, 4), 2, FACTOR), noise_shape_fn=lambda s: (3,)
    )
    for m in range(2):
        shift = member_noise(1, m, (3,)).sum()
        ref = F.interpolate(field["input"][None], scale_factor=FACTOR)[0] + shift
        assert torch.allclose(out[m], ref, atol=1e-5)


def test_precision_and_postprocess(gen, field):
    fp32 = _run(gen, field)
    bf16 = _run(gen, field, precision="bf16", postprocess=lambda t: t * 2)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    assert not torch.equal(bf16, 2 * fp32)  # autocast really ran in bfloat16
    assert torch.allclose(bf16, 2 * fp32, atol=0.1)
    with pytest.raises(ConfigError, match="precision"):
        _run(gen, field, precision="fp8")


def test_bad_arguments(gen, field):
    with pytest.raises(ConfigError):
        _run(gen, field, n_members=0)
    with pytest.raises(DataError):
        _run(gen, {"constants": field["constants"]})
    with pytest.raises(DataError, match="noise"):
        _run(gen, field, spec=TileSpec((8, 8), 4, FACTOR), noise_shape_fn=lambda s: (2, 5, 5))
