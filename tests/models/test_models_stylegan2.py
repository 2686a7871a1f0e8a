"""StyleGAN2 generator and discriminator: construction, shapes (square, non-square, 3D),
rosinality's channel table and parameter counts, style mixing, noise, tanh, a direct
formula check of a base-resolution generator and the minibatch-stddev layer, and a
checkpoint round trip through ``load_export``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geogan.core.checkpoint import module_tensors, save_checkpoint
from geogan.core.errors import ConfigError
from geogan.core.modules import model_spec
from geogan.inference.export import load_export
from geogan.models.stylegan2 import (
    StyleGAN2Discriminator,
    StyleGAN2Generator,
    level_channels,
    levels_for,
)
from geogan.nn.modulated import bias_leaky_relu

SMALL = {"latent_dim": 16, "n_mlp": 2, "channel_max": 16}


def test_rosinality_channel_table_and_parameter_counts():
    assert level_channels(4, 2, 16384, 512) == [512] * 5  # 4 .. 64 px
    assert level_channels(6, 2, 16384, 512) == [512] * 5 + [256, 128]  # .. 256 px
    assert level_channels(6, 1, 16384, 512) == [512] * 4 + [256, 128, 64]
    # rosinality Generator(64, 512, 8, channel_multiplier=2) / Discriminator(64, 2)
    g = StyleGAN2Generator(size=64)
    d = StyleGAN2Discriminator(size=64)
    assert sum(p.numel() for p in g.parameters()) == 27_032_600
    assert sum(p.numel() for p in d.parameters()) == 26_488_833
    assert g.n_latent == 10


@pytest.mark.parametrize("size,base", [(16, 4), ([16, 32], [4, 8]), ([12, 24], [3, 6])])
def test_shapes_2d_square_and_non_square(size, base):
    g = StyleGAN2Generator(size=size, base_size=base, out_channels=3, **SMALL)
    d = StyleGAN2Discriminator(size=size, base_size=base, in_channels=3, channel_max=16)
    z = torch.randn(4, 16)
    x = g(z)
    expect = [size] * 2 if isinstance(size, int) else size
    assert list(x.shape) == [4, 3, *expect]
    assert d(x).shape == (4, 1)
    assert g.n_latent == 2 * levels_for(expect, [base] * 2 if isinstance(base, int) else base) + 2


def test_shapes_3d():
    g = StyleGAN2Generator(dims=3, size=8, base_size=2, out_channels=2, **SMALL)
    d = StyleGAN2Discriminator(dims=3, size=8, base_size=2, in_channels=2, channel_max=16)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, 2, 8, 8, 8) and d(x).shape == (2, 1)
    assert [tuple(s) for s in g.noise_shapes(2)][-1] == (2, 1, 8, 8, 8)


def test_sizes_that_do_not_nest_are_config_errors():
    with pytest.raises(ConfigError, match="power of 2"):
        StyleGAN2Generator(size=[60, 120], base_size=[4, 8], **SMALL)
    with pytest.raises(ConfigError, match="same number of doublings"):
        StyleGAN2Generator(size=[16, 64], base_size=[4, 8], **SMALL)


def test_style_mixing_noise_and_tanh():
    torch.manual_seed(0)
    g = StyleGAN2Generator(size=16, out_channels=2, **SMALL)
    with torch.no_grad():
        for m in g.modules():
            if hasattr(m, "noise") and m.noise is not None:
                m.noise.weight.fill_(0.5)
    z1, z2 = torch.randn(2, 16), torch.randn(2, 16)
    noise = g.make_noise(2, torch.Generator().manual_seed(1))
    _, ws = g(z1, mix_z=z2, mix_index=3, noise=noise, return_ws=True)
    w1, w2 = g.mapping(z1), g.mapping(z2)
    assert torch.equal(ws[:, 2], w1) and torch.equal(ws[:, 3], w2) and torch.equal(ws[:, -1], w2)
    # noise: same noise, same output; other noise, other output
    a = g(z1, noise=noise)
    assert torch.equal(a, g(z1, noise=noise))
    assert not torch.allclose(a, g(z1, noise=g.make_noise(2, torch.Generator().manual_seed(2))))
    quiet = StyleGAN2Generator(size=16, out_channels=2, use_noise=False, tanh_output=True, **SMALL)
    assert quiet.noise_shapes(2) == []
    y = quiet(z1 * 100)
    assert torch.equal(y, quiet(z1 * 100)) and y.abs().max() < 1


def test_base_resolution_generator_equals_the_direct_formula():
    """levels = 0: output = toRGB(conv1(const)) with the modulated-conv formula written out."""
    torch.manual_seed(3)
    g = StyleGAN2Generator(size=[4, 6], base_size=[4, 6], out_channels=2, use_noise=False, **SMALL)
    g = g.double()
    z = torch.randn(3, 16, dtype=torch.float64)
    w = g.mapping(z)

    def modconv(conv, x, wv, demod):
        s = conv.modulation.weight @ wv * conv.modulation.scale + conv.modulation.bias
        weight = conv.weight * conv.scale * s.view(1, -1, 1, 1)
        if demod:
            weight = weight / torch.sqrt(weight.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        return torch.nn.functional.conv2d(x, weight, padding=weight.shape[-1] // 2)

    out = []
    for b in range(3):
        x = modconv(g.conv1.conv, g.const, w[b], True)
        x = torch.nn.functional.leaky_relu(x + g.conv1.bias.view(1, -1, 1, 1), 0.2) * math.sqrt(2)
        y = modconv(g.out1.conv, x, w[b], False) + g.out1.bias.view(1, -1, 1, 1)
        out.append(y)
    torch.testing.assert_close(g(z), torch.cat(out))
    assert torch.equal(
        bias_leaky_relu(torch.ones(1, 2, 1, 1), torch.zeros(2)),
        torch.full((1, 2, 1, 1), math.sqrt(2)),
    )


def test_minibatch_stddev_formula():
    d = StyleGAN2Discriminator(size=8, base_size=4, in_channels=1, channel_max=4, mbstd_group=2)
    x = torch.randn(4, 4, 4, 4, dtype=torch.float64)
    y = d.minibatch_stddev(x)
    xn = x.numpy().reshape(2, 2, 4, 4, 4)  # [group, B/group, C, H, W]
    sd = np.sqrt(xn.var(axis=0) + 1e-8).mean(axis=(1, 2, 3))  # [B/group]
    expect = np.tile(sd, 2)  # sample b uses the statistic of column b % (B / group)
    np.testing.assert_allclose(y[:, -1, 0, 0].numpy(), expect, rtol=1e-6)
    assert y.shape == (4, 5, 4, 4)
    # a batch that the group size does not divide falls back to a divisor
    assert d.minibatch_stddev(torch.randn(3, 4, 4, 4)).shape == (3, 5, 4, 4)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(4)
    g = StyleGAN2Generator(
        size=[8, 16], base_size=[4, 8], out_channels=3, padding_mode=["zeros", "circular"], **SMALL
    )
    d = StyleGAN2Discriminator(size=[8, 16], base_size=[4, 8], in_channels=3, channel_max=16)
    path = tmp_path / "model.safetensors"
    tensors = {**module_tensors("generator", g), **module_tensors("discriminator", d)}
    meta = {
        "kind": "export",
        "format": "stylegan/1",
        "models": {"generator": model_spec(g), "discriminator": model_spec(d)},
    }
    save_checkpoint(path, tensors, meta)
    models, loaded = load_export(path, format_prefix="stylegan/")
    z = torch.randn(2, 16)
    noise = g.make_noise(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = g(z, noise=noise)
        torch.testing.assert_close(models["generator"](z, noise=noise), x)
        torch.testing.assert_close(models["discriminator"](x), d(x))
    assert loaded["format"] == "stylegan/1"
