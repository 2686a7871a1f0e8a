"""SPADE and SPADEResnetBlock: shapes in 2D and 3D, the formula, shortcuts, condition resizing."""

import pytest
import torch
import torch.nn.functional as F

from geogan.core.errors import ConfigError
from geogan.nn.spade import SPADE, SPADEResnetBlock, param_free_norm, resize_like

SHAPES = {2: (8, 12), 3: (4, 6, 8)}


@pytest.mark.parametrize("dims", [2, 3])
def test_spade_shapes_and_formula(dims):
    torch.manual_seed(0)
    s = SPADE(dims, 5, 3, hidden=6)
    x = torch.randn(2, 5, *SHAPES[dims])
    cond = torch.randn(2, 3, *SHAPES[dims])
    out = s(x, cond)
    assert out.shape == x.shape
    # direct formula: instance norm without affine, then (1 + gamma) * . + beta from the condition
    axes = tuple(range(2, 2 + dims))
    norm = (x - x.mean(axes, keepdim=True)) / torch.sqrt(
        x.var(axes, unbiased=False, keepdim=True) + 1e-5
    )
    h = torch.relu(s.shared[0](cond))
    ref = norm * (1 + s.gamma(h)) + s.beta(h)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_spade_resizes_the_condition_by_nearest_neighbour():
    torch.manual_seed(1)
    s = SPADE(2, 4, 1, hidden=4)
    x = torch.randn(1, 4, 4, 4)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    small = F.interpolate(mask, size=(4, 4), mode="nearest")
    assert set(resize_like(mask, x).unique().tolist()) == {0.0, 1.0}  # stays binary
    torch.testing.assert_close(s(x, mask), s(x, small))


@pytest.mark.parametrize("dims", [2, 3])
def test_resnet_block_shapes_and_shortcut(dims):
    torch.manual_seed(2)
    same = SPADEResnetBlock(dims, 6, 6, 2, hidden=4)
    change = SPADEResnetBlock(dims, 6, 3, 2, hidden=4)
    x, cond = torch.randn(2, 6, *SHAPES[dims]), torch.randn(2, 2, *SHAPES[dims])
    assert not same.learned_shortcut and change.learned_shortcut
    assert same(x, cond).shape == x.shape
    assert change(x, cond).shape == (2, 3, *SHAPES[dims])
    # with the main path's last convolution zeroed, an identity-shortcut block returns x
    with torch.no_grad():
        same.conv_1.weight.zero_()
        same.conv_1.bias.zero_()
    torch.testing.assert_close(same(x, cond), x)


def test_resnet_block_gradients_reach_every_parameter():
    torch.manual_seed(3)
    block = SPADEResnetBlock(2, 4, 2, 3, hidden=4)
    block(torch.randn(2, 4, 6, 6), torch.randn(2, 3, 6, 6)).sum().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_norm_choices_and_errors():
    assert isinstance(param_free_norm(2, 3, "batch"), torch.nn.BatchNorm2d)
    assert isinstance(param_free_norm(3, 3, "instance"), torch.nn.InstanceNorm3d)
    assert not list(param_free_norm(2, 3, "batch").parameters())  # no affine
    with pytest.raises(ConfigError, match="unknown SPADE normalisation"):
        param_free_norm(2, 3, "group")
    with pytest.raises(ConfigError):
        SPADE(2, 3, 0)
    with pytest.raises(ValueError, match="expects x and cond"):
        SPADE(2, 3, 1)(torch.randn(1, 3, 4, 4, 4), torch.randn(1, 1, 4, 4))


def test_channels_last_matches():
    torch.manual_seed(4)
    block = SPADEResnetBlock(2, 4, 4, 2, hidden=4)
    x, c = torch.randn(2, 4, 8, 8), torch.randn(2, 2, 8, 8)
    ref = block(x, c)
    cl = block.to(memory_format=torch.channels_last)
    out = cl(
        x.contiguous(memory_format=torch.channels_last),
        c.contiguous(memory_format=torch.channels_last),
    )
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
