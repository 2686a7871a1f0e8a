"""The MixLC generator: shapes in 2D and 3D, direct composition, inference noise, export."""

from __future__ import annotations

import pytest
import torch

from geogan.core.checkpoint import module_tensors, save_checkpoint
from geogan.core.errors import ConfigError, DataError
from geogan.core.modules import model_spec
from geogan.inference.export import load_export
from geogan.recipes.landcover.models import MixLCGenerator


def _gen(**kw):
    torch.manual_seed(0)
    base = dict(n_classes=5, filters=4, depth=3, dropout=0.5)
    return MixLCGenerator(**{**base, **kw})


@pytest.mark.parametrize("dims", [2, 3])
def test_shapes(dims):
    g = _gen(dims=dims)
    size = (16,) * dims
    y = g(torch.rand(2, 3, *size) * 2 - 1, torch.rand(2, 5, *size))
    assert y.shape == (2, 3, *size) and y.abs().max() <= 1


def test_equals_composition_of_its_parts():
    g = _gen(dropout=0.0).eval()
    rgb, lc = torch.rand(1, 3, 16, 16), torch.rand(1, 5, 16, 16)
    h = torch.cat([g.rgb_net(rgb), g.lc_net(lc)], 1)
    want = torch.tanh(g.out(torch.nn.functional.leaky_relu(g.block(h), 0.2)))
    torch.testing.assert_close(g(rgb, lc), want)
    # branches are separate: the image branch never sees the map and vice versa
    assert g.rgb_net.in_channels == 3 and g.lc_net.in_channels == 5


def test_members_differ_through_dropout_and_explicit_noise():
    rgb, lc = torch.rand(1, 3, 16, 16), torch.rand(1, 5, 16, 16)
    g = _gen(dropout_at_inference=True).eval()
    with torch.no_grad():
        assert not torch.allclose(g(rgb, lc), g(rgb, lc))
    noisy = _gen(dropout=0.0, noise_channels=2).eval()
    with torch.no_grad():
        a = noisy(rgb, lc, torch.randn(1, 2, 16, 16))
        b = noisy(rgb, lc, torch.randn(1, 2, 16, 16))
    assert not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="needs noise"):
        noisy(rgb, lc)
    with pytest.raises(DataError, match="landcover"):
        g(rgb, torch.rand(1, 4, 16, 16))


def test_export_round_trip(tmp_path):
    g = _gen(dropout=0.0).eval()
    save_checkpoint(
        tmp_path / "g.safetensors",
        module_tensors("generator", g),
        {"kind": "export", "format": "landcover/1", "models": {"generator": model_spec(g)}},
    )
    models, _ = load_export(tmp_path / "g.safetensors", format_prefix="landcover")
    rgb, lc = torch.rand(2, 3, 16, 16), torch.rand(2, 5, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(models["generator"](rgb, lc), g(rgb, lc))


def test_residual_output_starts_from_the_input_image():
    g = _gen(dropout=0.0, residual=True).eval()
    torch.nn.init.zeros_(g.out.weight)
    torch.nn.init.zeros_(g.out.bias)
    rgb = torch.rand(1, 3, 16, 16) * 1.6 - 0.8
    torch.testing.assert_close(g(rgb, torch.rand(1, 5, 16, 16)), rgb, atol=1e-5, rtol=0)
