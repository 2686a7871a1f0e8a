"""Masker and painter models of the flood recipe: construction, 2D/3D shapes, export round trip,
and checks against direct formulas (downsampling factor, channel plan, classifier head)."""

import pytest
import torch

import geogan.models  # noqa: F401  (registers the models)
from geogan.core.checkpoint import module_tensors, save_checkpoint
from geogan.core.errors import ConfigError
from geogan.core.modules import model_spec
from geogan.inference.export import load_export
from geogan.models.omni import OmniClassifier, OmniDecoder, OmniEncoder, OmniPainter

SPATIAL = {2: (16, 24), 3: (8, 8, 16)}


def omni_cases(dims):
    """Tiny ``{name: (kwargs, inputs, output shape)}``; also usable by the registry test."""
    s = SPATIAL[dims]
    low = tuple(n // 4 for n in s)
    return {
        "omni_encoder": (
            dict(dims=dims, dim=4, n_downsample=2, n_res=1),
            (torch.randn(2, 3, *s),),
            (2, 16, *low),
        ),
        "omni_decoder": (
            dict(dims=dims, in_channels=16, out_channels=5, n_upsample=2, n_res=1),
            (torch.randn(2, 16, *low),),
            (2, 5, *s),
        ),
        "omni_classifier": (
            dict(dims=dims, in_channels=16, n_domains=4, filters=8),
            (torch.randn(2, 16, *low),),
            (2, 4),
        ),
        "omni_painter": (
            dict(
                dims=dims, z_channels=16, cond_channels=5, n_up=2, noise_channels=2, spade_hidden=8
            ),
            (torch.randn(2, 16, *low), torch.randn(2, 5, *s), torch.randn(2, 2, *low)),
            (2, 3, *s),
        ),
    }


CLASSES = {
    "omni_encoder": OmniEncoder,
    "omni_decoder": OmniDecoder,
    "omni_classifier": OmniClassifier,
    "omni_painter": OmniPainter,
}


@pytest.mark.parametrize("name", sorted(CLASSES))
@pytest.mark.parametrize("dims", [2, 3])
def test_shapes_and_gradients(name, dims):
    torch.manual_seed(0)
    kwargs, inputs, shape = omni_cases(dims)[name]
    model = CLASSES[name](**kwargs)
    out = model(*inputs)
    assert out.shape == shape and torch.isfinite(out).all()
    out.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("dims", [2, 3])
def test_export_round_trip_gives_identical_outputs(tmp_path, dims):
    torch.manual_seed(1)
    models = {n: CLASSES[n](**kw) for n, (kw, _, _) in omni_cases(dims).items()}
    tensors = {}
    for n, m in models.items():
        tensors.update(module_tensors(n, m))
    path = save_checkpoint(
        tmp_path / "export.safetensors",
        tensors,
        {
            "kind": "export",
            "format": "flood/1",
            "models": {n: model_spec(m) for n, m in models.items()},
        },
    )
    loaded, meta = load_export(path, format_prefix="flood/")
    assert meta["format"] == "flood/1"
    for n, (_, inputs, _) in omni_cases(dims).items():
        models[n].eval()
        torch.testing.assert_close(loaded[n](*inputs), models[n](*inputs), rtol=0, atol=0)


def test_encoder_matches_munit_plan():
    enc = OmniEncoder(dim=8, n_downsample=3, n_res=2)
    assert enc.out_channels == 64 and enc.factor == 8
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv2d)]
    # projection 7x7, three strided 4x4, then 2 blocks of two 3x3
    assert [tuple(c.kernel_size) for c in convs] == [(7, 7)] + [(4, 4)] * 3 + [(3, 3)] * 4
    assert [c.stride[0] for c in convs[:4]] == [1, 2, 2, 2]
    assert enc(torch.randn(1, 3, 40, 40)).shape == (1, 64, 5, 5)


def test_painter_channel_plan_and_output_range():
    p = OmniPainter(z_channels=32, cond_channels=4, n_up=4, spade_hidden=8)
    # the first two SPADE blocks keep z's channels, each later one halves them
    assert [(b.conv_0.in_channels, b.conv_1.out_channels) for b in p.blocks] == [
        (32, 32),
        (32, 32),
        (32, 16),
        (16, 8),
    ]
    y = p(torch.randn(1, 32, 2, 2), torch.randn(1, 4, 32, 32))
    assert y.shape == (1, 3, 32, 32) and y.abs().max() <= 1  # tanh image layer


def test_painter_noise_defaults_to_zeros():
    torch.manual_seed(2)
    p = OmniPainter(z_channels=8, cond_channels=2, n_up=1, noise_channels=3, spade_hidden=4)
    z, c = torch.randn(1, 8, 4, 4), torch.randn(1, 2, 8, 8)
    torch.testing.assert_close(p(z, c), p(z, c, torch.zeros(1, 3, 4, 4)))
    assert not torch.allclose(
        p(z, c), p(z, c, torch.randn(1, 3, 4, 4))
    )  # constants are normalised away


def test_classifier_is_pooled_features_then_linear():
    torch.manual_seed(3)
    c = OmniClassifier(in_channels=6, n_domains=2, filters=5, n_layers=1)
    z = torch.randn(3, 6, 8, 8)
    ref = c.head(torch.nn.functional.leaky_relu(c.features[0](z), 0.2).mean(dim=(2, 3)))
    torch.testing.assert_close(c(z), ref)


def test_decoder_activation_and_kernels():
    d = OmniDecoder(
        in_channels=8,
        out_channels=3,
        n_upsample=1,
        n_res=0,
        activation="tanh",
        up_kernel=3,
        out_kernel=3,
    )
    ks = [tuple(m.kernel_size) for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert ks == [(3, 3), (3, 3)]
    assert d(torch.randn(1, 8, 4, 4) * 100).abs().max() <= 1
    with pytest.raises(ConfigError, match="decoder activation"):
        OmniDecoder(activation="relu6")
    with pytest.raises(ConfigError, match="normalisation"):
        OmniEncoder(norm="group")


@pytest.mark.parametrize("dims", [2, 3])
def test_encoder_skips_are_the_inputs_of_its_strided_convs(dims):
    torch.manual_seed(2)
    enc = OmniEncoder(dims=dims, dim=4, n_downsample=2, n_res=1).eval()
    x = torch.randn(2, 3, *SPATIAL[dims])
    z, skips = enc(x, return_skips=True)
    torch.testing.assert_close(z, enc(x), rtol=0, atol=0)
    # direct: the projection's output (full grid) and the first strided conv's (1/2 grid)
    full = enc.net[0](x)
    half = enc.net[1](full)
    assert enc.skip_channels == [8, 4]
    assert [tuple(s.shape) for s in skips] == [tuple(half.shape), tuple(full.shape)]
    torch.testing.assert_close(skips[0], half, rtol=0, atol=0)
    torch.testing.assert_close(skips[1], full, rtol=0, atol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_skip_decoder_concatenates_the_encoder_features(dims):
    torch.manual_seed(3)
    s = SPATIAL[dims]
    enc = OmniEncoder(dims=dims, dim=4, n_downsample=2, n_res=1)
    dec = OmniDecoder(
        dims=dims,
        in_channels=16,
        out_channels=5,
        n_upsample=2,
        n_res=0,
        norm="none",  # no layer norm: its global statistics would hide the locality below
        skip_channels=enc.skip_channels,
    )
    x = torch.randn(2, 3, *s)
    z, skips = enc(x, return_skips=True)
    out = dec(z, skips)
    assert out.shape == (2, 5, *s)
    # the first upsampling conv sees [upsampled z, 1/2-grid skip]: 16 + 8 input channels
    convs = [m for m in dec.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    assert [c.in_channels for c in convs] == [16 + 8, 8 + 4, 8]
    # the full-grid skip enters after the last upsampling: a change at one voxel moves the
    # output only within the reach of the last two convolutions (5x5 then 7x7: radius 2 + 3)
    bumped = [skips[0], skips[1].clone()]
    centre = tuple(n // 2 for n in s)
    bumped[1][(0, slice(None), *centre)] += 10.0
    diff = (dec(z, bumped) - out).abs().amax(dim=(0, 1))
    changed = torch.nonzero(diff > 0)
    assert len(changed) and (changed - torch.tensor(centre)).abs().max() <= 5
    # gradients reach the encoder through the skips too
    out.sum().backward()
    assert enc.net[0][0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="skips"):
        dec(z)
    with pytest.raises(ConfigError, match="one entry per upsampling stage"):
        OmniDecoder(dims=dims, in_channels=16, n_upsample=2, skip_channels=[8])


def test_decoder_without_skips_ignores_them_and_keeps_its_layout():
    torch.manual_seed(4)
    dec = OmniDecoder(in_channels=16, out_channels=2, n_upsample=2, n_res=1)
    z = torch.randn(1, 16, 4, 4)
    torch.testing.assert_close(dec(z, [torch.zeros(1, 8, 8, 8)]), dec(z), rtol=0, atol=0)
    assert dec.skip_channels == []
