"""Every model registered by geogan.models: 2D and 3D construction and shapes, gradient
flow, checkpoint-spec round trip, bf16 autocast and channels_last.

A model added to geogan.models must get a tiny case in CASES.
"""

import pytest
import torch

import geogan.models  # noqa: F401  (registers the models)
from geogan.core.modules import build_model, model_spec
from geogan.core.registry import MODELS

LOW = {2: (3, 4), 3: (2, 3, 2)}  # low-resolution spatial shape per dims


def _high(dims, factor=4):
    return tuple(n * factor for n in LOW[dims])


def _generator_case(dims):
    kwargs = dict(dims=dims, in_channels=3, constant_channels=2, noise_channels=2, filters=4)
    inputs = (
        torch.randn(2, 3, *LOW[dims]),
        torch.randn(2, 2, *_high(dims)),
        torch.randn(2, 2, *LOW[dims]),
    )
    return kwargs, inputs, (2, 1, *_high(dims))


def _critic_case(dims):
    kwargs = dict(dims=dims, in_channels=3, constant_channels=2, out_channels=1, filters=4)
    inputs = (
        torch.randn(2, 3, *LOW[dims]),
        torch.randn(2, 2, *_high(dims)),
        torch.randn(2, 1, *_high(dims)),
    )
    return kwargs, inputs, (2, 1)


def _encoder_case(dims):
    kwargs = dict(dims=dims, in_channels=3, constant_channels=2, latent_variables=3, filters=4)
    inputs = (torch.randn(2, 3, *LOW[dims]), torch.randn(2, 2, *_high(dims)))
    return kwargs, inputs, (2, 3, *LOW[dims])


def _omni_case(name):
    from test_models_omni import omni_cases  # same folder, on sys.path under pytest

    return lambda dims: omni_cases(dims)[name]


def _unet_case(dims):
    # no dropout: the round-trip and layout checks compare two deterministic forwards
    kwargs = dict(dims=dims, in_channels=2, out_channels=3, filters=4, depth=3, dropout=0.0)
    return kwargs, (torch.randn(2, 2, *(8,) * dims),), (2, 3, *(8,) * dims)


def _patchgan_case(dims):
    kwargs = dict(dims=dims, in_channels=3, cond_channels=2, filters=4, n_layers=2, norm="none")
    n = 32
    # kernel 4: two stride-2 convs, then two stride-1 convs with padding 1 (pix2pix's "basic")
    out = ((n // 4) - 1) - 1
    inputs = (torch.randn(2, 3, *(n,) * dims), torch.randn(2, 2, *(n,) * dims))
    return kwargs, inputs, (2, 1, *(out,) * dims)


def _srsgan_generator_case(dims):
    kwargs = dict(
        dims=dims, in_channels=2, out_channels=2, factor=4, chan_base=8, chan_min=4, noise="none"
    )
    return kwargs, (torch.randn(2, 2, *LOW[dims]),), (2, 2, *_high(dims))


def _srsgan_critic_case(dims):
    kwargs = dict(
        dims=dims, condition_channels=3, image_channels=2, factor=2, chan_base=8, chan_min=4
    )
    inputs = (torch.randn(2, 3, *(8,) * dims), torch.randn(2, 2, *(16,) * dims))
    return kwargs, inputs, (2,)


def _stylegan2_generator_case(dims):
    kwargs = dict(
        dims=dims,
        size=8,
        base_size=2,
        out_channels=2,
        latent_dim=8,
        n_mlp=2,
        channel_max=8,
        use_noise=False,
    )
    return kwargs, (torch.randn(2, 8),), (2, 2, *(8,) * dims)


def _stylegan2_discriminator_case(dims):
    kwargs = dict(dims=dims, size=8, base_size=2, in_channels=2, channel_max=8)
    return kwargs, (torch.randn(2, 2, *(8,) * dims),), (2, 1)


CASES = {
    "downscaling_generator": _generator_case,
    "downscaling_critic": _critic_case,
    "downscaling_encoder": _encoder_case,
    **{
        n: _omni_case(n)
        for n in ("omni_encoder", "omni_decoder", "omni_classifier", "omni_painter")
    },
    "unet": _unet_case,
    "patchgan": _patchgan_case,
    "srsgan_generator": _srsgan_generator_case,
    "srsgan_critic": _srsgan_critic_case,
    "stylegan2_generator": _stylegan2_generator_case,
    "stylegan2_discriminator": _stylegan2_discriminator_case,
}


def _geogan_models():
    # Only this package's models: tests elsewhere may register throwaway ones.
    return [n for n, cls in MODELS.items() if cls.__module__.startswith("geogan.models")]


def _outputs(out):
    return list(out) if isinstance(out, tuple) else [out]


def _build(name, dims, seed=0):
    torch.manual_seed(seed)
    kwargs, inputs, shape = CASES[name](dims)
    return MODELS.get(name)(**kwargs), inputs, shape


def test_every_registered_model_has_a_case():
    missing = sorted(set(_geogan_models()) - set(CASES))
    assert not missing, f"add tiny cases for {missing}"
    assert set(CASES) <= set(_geogan_models())


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dims", [2, 3])
def test_output_shapes(name, dims):
    model, inputs, shape = _build(name, dims)
    for out in _outputs(model(*inputs)):
        assert out.shape == shape
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dims", [2, 3])
def test_gradients_reach_every_parameter(name, dims):
    model, inputs, _ = _build(name, dims)
    sum(o.sum() for o in _outputs(model(*inputs))).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dims", [2, 3])
def test_spec_round_trip_gives_identical_output(name, dims):
    model, inputs, _ = _build(name, dims, seed=1)
    spec = model_spec(model)
    assert spec["name"] == name
    torch.manual_seed(123)  # different init, overwritten by the weights
    rebuilt = build_model(spec)
    rebuilt.load_state_dict(model.state_dict())
    for a, b in zip(_outputs(model(*inputs)), _outputs(rebuilt(*inputs))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dims", [2, 3])
def test_bf16_autocast_is_close_to_fp32(name, dims):
    model, inputs, _ = _build(name, dims)
    with torch.no_grad():
        ref = _outputs(model(*inputs))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = _outputs(model(*inputs))
    for a, b in zip(low, ref):
        assert torch.isfinite(a).all()
        # bf16 keeps ~3 significant digits; a few layers deep, a few percent of the scale.
        scale = b.abs().max().clamp_min(1e-3)
        assert (a.float() - b).abs().max() / scale < 0.05


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("dims", [2, 3])
def test_channels_last_matches_contiguous(name, dims):
    model, inputs, _ = _build(name, dims)
    fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
    with torch.no_grad():
        ref = _outputs(model(*inputs))
        model = model.to(memory_format=fmt)
        # only spatial inputs have a layout (a latent vector [B, D] stays as it is)
        spatial = [x.contiguous(memory_format=fmt) if x.ndim == dims + 2 else x for x in inputs]
        out = _outputs(model(*spatial))
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
