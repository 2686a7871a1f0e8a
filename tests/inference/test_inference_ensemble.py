"""Ensembles: one seed per member, independent of batch composition, tiling and member count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geogan.core.errors import ConfigError, DataError
from geogan.core.seeding import derive_seed
from geogan.inference.ensemble import (
    gaussian_noise,
    generate_ensemble,
    member_noise,
    member_seed,
)
from geogan.inference.tiling import TileSpec
from geogan.nn import conv_nd

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


# --- keyed call: the caller supplies forward(batch) and says how keys are cut ------------------


def _keyed(gen):
    def forward(batch):
        return gen(batch["input"], batch["constants"], batch["noise"])

    return forward


def test_keyed_call_equals_three_argument_call_bitwise(gen, field):
    spec = TileSpec((8, 8), (4, 4), FACTOR, margin_lowres=2)
    for tiles in (None, spec):
        legacy = _run(gen, field, spec=tiles, batch_size=5)
        keyed = generate_ensemble(
            _keyed(gen),
            field,
            4,
            7,
            spec=tiles,
            lowres_keys=["input", "noise"],
            highres_keys=["constants"],
            noise={"noise": (2, 20, 18)},
            batch_size=5,
        )
        assert torch.equal(keyed, legacy)


def test_gaussian_noise_spec_draws_every_key_from_the_member_seed(gen, field):
    seen = []

    def forward(batch):
        seen.append({k: v.clone() for k, v in batch.items()})
        up = F.interpolate(batch["a"], scale_factor=FACTOR)
        return up + batch["fine"] + batch["z"].sum(1)[:, None, None, None]

    shapes = {"a": (1, 20, 18), "fine": (1, 40, 36), "z": (3,)}
    out = generate_ensemble(
        forward,
        field,
        2,
        seed=3,
        lowres_keys=["input"],  # "a", "fine", "z" are placed by their shapes
        noise=shapes,
        spec=TileSpec((8, 8), (4, 4), FACTOR, margin_lowres=2),
        member_offset=5,
    )
    for m in range(2):
        drawn = gaussian_noise(member_seed(3, 5 + m), shapes)
        ref = F.interpolate(drawn["a"][None], scale_factor=FACTOR)[0] + drawn["fine"]
        assert torch.allclose(out[m], ref + drawn["z"].sum(), atol=1e-5)
    # one key: the same draw as member_noise (what the three-argument call uses)
    assert torch.equal(
        gaussian_noise(member_seed(3, 1), {"n": (2, 4)})["n"], member_noise(3, 1, (2, 4))
    )
    assert set(seen[0]) == {"input", "a", "fine", "z"}  # field keys not listed are not passed
    assert seen[0]["a"].shape[2:] == (8, 8) and seen[0]["fine"].shape[2:] == (16, 16)
    assert seen[0]["z"].shape == (seen[0]["a"].shape[0], 3)


def test_keyed_noise_fn_returns_a_dict_and_sees_the_field_on_device(gen, field):
    calls = []

    def noise_fn(s, f):
        calls.append(s)
        assert set(f) == {"input", "constants"} and f["input"].dtype == torch.float32
        return {"noise": torch.full((2, 20, 18), float(len(calls)))}

    out = generate_ensemble(
        _keyed(gen),
        field,
        3,
        7,
        lowres_keys=["input", "noise"],
        highres_keys=["constants"],
        noise_fn=noise_fn,
        member_offset=2,
    )
    assert calls == [member_seed(7, 2), member_seed(7, 3), member_seed(7, 4)]
    with torch.no_grad():
        ref = gen(field["input"][None], field["constants"][None], torch.full((1, 2, 20, 18), 2.0))
    assert torch.allclose(out[1], ref[0], atol=1e-6)


class _CircularNet(nn.Module):
    """Same-grid (factor 1) translation net, circular along the last axis, reflect on the first."""

    def __init__(self):
        super().__init__()
        self.a = conv_nd(2, 3, 4, 3, padding_mode=("reflect", "circular"))
        self.b = conv_nd(2, 4, 1, 3, padding_mode=("reflect", "circular"))

    def forward(self, batch):
        return self.b(torch.tanh(self.a(torch.cat([batch["image"], batch["noise"]], 1))))


def test_factor_one_periodic_ensemble_tiled_equals_untiled():
    torch.manual_seed(0)
    net = _CircularNet().eval()
    image = torch.randn(2, 21, 30, generator=torch.Generator().manual_seed(2))
    kw = {"lowres_keys": ["image", "noise"], "noise": {"noise": (1, 21, 30)}, "batch_size": 4}
    whole = generate_ensemble(net, {"image": image}, 3, 1, **kw)
    spec = TileSpec((10, 10), (4, 4), 1, margin_lowres=2, periodic=(False, True))
    tiled = generate_ensemble(net, {"image": image}, 3, 1, spec=spec, **kw)
    assert tiled.shape == whole.shape == (3, 1, 21, 30)
    assert (tiled - whole).abs().max() < 1e-5
    flat = TileSpec((10, 10), (4, 4), 1, margin_lowres=2)  # periodic off: seams at lon 0
    assert (
        generate_ensemble(net, {"image": image}, 3, 1, spec=flat, **kw) - whole
    ).abs().max() > 1e-3


@pytest.mark.parametrize("tiled", [False, True])
def test_sink_streams_the_same_members(gen, field, tiled):
    spec = TileSpec((8, 8), (4, 4), FACTOR, margin_lowres=2) if tiled else None
    kw = {
        "lowres_keys": ["input", "noise"],
        "highres_keys": ["constants"],
        "noise": {"noise": (2, 20, 18)},
        "spec": spec,
        "postprocess": lambda t: t * 3 + 1,
    }
    whole = generate_ensemble(_keyed(gen), field, 3, 9, **kw)
    blocks = []
    assert (
        generate_ensemble(
            _keyed(gen), field, 3, 9, sink=lambda rows, b: blocks.append((rows, b)), **kw
        )
        is None
    )
    assert sorted(r for r, _ in blocks)[0][0] == 0 and (len(blocks) > 1) == tiled
    streamed = torch.cat([b for _, b in sorted(blocks, key=lambda rb: rb[0])], dim=2)
    assert (streamed - whole).abs().max() < 1e-6


def test_keyed_call_errors(gen, field):
    keyed = {"lowres_keys": ["input", "noise"], "highres_keys": ["constants"]}
    with pytest.raises(DataError, match="noise"):  # nothing draws "noise"
        generate_ensemble(_keyed(gen), field, 2, 0, **keyed)
    with pytest.raises(ConfigError, match="not both"):
        generate_ensemble(
            _keyed(gen),
            field,
            2,
            0,
            noise={"noise": (2, 20, 18)},
            noise_fn=lambda s, f: {},
            **keyed,
        )
    with pytest.raises(ConfigError, match="noise_channels"):
        generate_ensemble(_keyed(gen), field, 2, 0, noise_channels=2, **keyed)
    with pytest.raises(ConfigError, match="lowres_keys"):
        generate_ensemble(_keyed(gen), field, 2, 0, noise={"noise": (2, 20, 18)})
    with pytest.raises(ConfigError, match="twice"):
        generate_ensemble(_keyed(gen), field, 2, 0, lowres_keys=["input"], shared_keys=["input"])
    with pytest.raises(ConfigError, match="dict"):
        generate_ensemble(
            _keyed(gen), field, 2, 0, noise_fn=lambda s, f: torch.zeros(2, 20, 18), **keyed
        )
    with pytest.raises(ConfigError, match="field keys"):
        generate_ensemble(
            _keyed(gen), field, 2, 0, noise={"input": (2, 20, 18)}, lowres_keys=["input"]
        )
    with pytest.raises(DataError, match="noise"):  # on neither grid
        generate_ensemble(
            _keyed(gen),
            field,
            2,
            0,
            noise={"noise": (2, 7, 7)},
            spec=TileSpec((8, 8), 4, FACTOR),
            **keyed,
        )
