"""Upsample, Downsample, NoiseInjection, PixelShuffle in 2D and 3D."""

import pytest
import torch
import torch.nn.functional as F

from geogan.core.errors import ConfigError
from geogan.nn import Downsample, NoiseInjection, PixelShuffle, Upsample


@pytest.mark.parametrize("dims", [2, 3])
def test_upsample_nearest_repeats_pixels(dims):
    x = torch.randn(1, 2, *([3] * dims))
    out = Upsample(dims, 2)(x)
    expected = x
    for axis in range(2, 2 + dims):
        expected = expected.repeat_interleave(2, dim=axis)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("dims", [2, 3])
def test_upsample_linear_keeps_constant_and_mean(dims):
    const = torch.full((1, 1, *([3] * dims)), 2.5)
    torch.testing.assert_close(
        Upsample(dims, 3, "bilinear")(const), torch.full((1, 1, *([9] * dims)), 2.5)
    )
    up = Upsample(dims, 2, "bilinear")
    assert up._torch_mode == ("bilinear" if dims == 2 else "trilinear")


def test_upsample_per_axis_factors_and_bad_mode():
    assert Upsample(3, (1, 2, 3))(torch.randn(1, 1, 2, 2, 2)).shape == (1, 1, 2, 4, 6)
    with pytest.raises(ConfigError, match="upsampling mode"):
        Upsample(2, 2, "cubic-ish")


@pytest.mark.parametrize("dims", [2, 3])
def test_downsample_averages_blocks(dims):
    x = torch.randn(2, 3, *([4] * dims))
    out = Downsample(dims, 2)(x)
    blocks = x.reshape(2, 3, *[s for _ in range(dims) for s in (2, 2)])
    expected = blocks.mean(dim=tuple(range(3, 3 + 2 * dims, 2)))
    torch.testing.assert_close(out, expected)
    assert Downsample(dims, 2)(torch.randn(1, 1, *([5] * dims))).shape[2:] == (3,) * dims


def test_noise_injection():
    torch.manual_seed(0)
    layer = NoiseInjection(2, 3)
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(layer(x), x)  # starts as the identity
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.0, 1.0, 2.0]))
    noise = torch.randn(2, 1, 4, 4)
    torch.testing.assert_close(
        layer(x, noise), x + torch.tensor([0.0, 1.0, 2.0]).reshape(1, 3, 1, 1) * noise
    )
    a = layer(x, generator=torch.Generator().manual_seed(5))
    b = layer(x, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="noise has shape"):
        layer(x, torch.randn(2, 2, 4, 4))


def test_noise_injection_3d_gets_gradient():
    layer = NoiseInjection(3, 2)
    layer(torch.randn(1, 2, 3, 3, 3)).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_pixel_shuffle_2d_matches_torch():
    x = torch.randn(2, 12, 3, 4)
    torch.testing.assert_close(PixelShuffle(2, 2)(x), F.pixel_shuffle(x, 2))


def test_pixel_shuffle_3d_layout():
    r = 2
    x = torch.randn(1, 2 * r**3, 2, 3, 2)
    out = PixelShuffle(3, r)(x)
    assert out.shape == (1, 2, 4, 6, 4)
    c, i, j, k, d, h, w = 1, 1, 0, 1, 1, 2, 0
    assert (
        out[0, c, d * r + i, h * r + j, w * r + k] == x[0, c * r**3 + (i * r + j) * r + k, d, h, w]
    )
