"""ResidualBlock: shapes, skip paths, structure."""

import pytest
import torch
from torch import nn

from geogan.nn import ResidualBlock


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("stride", [1, 2])
def test_residual_block_shapes(dims, stride):
    block = ResidualBlock(dims, 3, 5, stride=stride)
    x = torch.randn(2, 3, *([5] * dims))
    size = 5 if stride == 1 else 3  # ceil(5 / 2): conv and pooled skip agree
    assert block(x).shape == (2, 5, *([size] * dims))


@pytest.mark.parametrize(
    ("in_ch", "out_ch", "stride", "force", "has_conv"),
    [
        (4, 4, 1, False, False),
        (4, 4, 1, True, True),
        (3, 4, 1, False, True),
        (4, 4, 2, False, True),
    ],
)
def test_skip_has_1x1_conv_only_when_needed(in_ch, out_ch, stride, force, has_conv):
    block = ResidualBlock(2, in_ch, out_ch, stride=stride, force_1x1_skip=force)
    assert block.has_1x1_skip is has_conv
    if has_conv:
        assert block.skip_conv.kernel_size == (1, 1)


def test_identity_skip_adds_input():
    torch.manual_seed(0)
    block = ResidualBlock(2, 4, 4)
    nn.init.zeros_(block.conv2.weight)
    nn.init.zeros_(block.conv2.bias)
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(block(x), x)


def test_activation_comes_first():
    # A pre-activation block sees LeakyReLU(x): for x <= 0 the main path is
    # driven by 0.2 * x, so scaling negative inputs scales the first conv's input.
    torch.manual_seed(0)
    block = ResidualBlock(2, 2, 2, negative_slope=0.2)
    seen = []
    block.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = -torch.rand(1, 2, 4, 4)
    block(x)
    torch.testing.assert_close(seen[0], 0.2 * x)


@pytest.mark.parametrize("dims", [2, 3])
def test_batch_norm_option(dims):
    block = ResidualBlock(dims, 2, 2, batch_norm=True)
    norm_cls = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
    assert isinstance(block.norm1, norm_cls) and isinstance(block.norm2, norm_cls)
    assert isinstance(ResidualBlock(dims, 2, 2).norm1, nn.Identity)
