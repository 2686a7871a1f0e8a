"""conv_nd and Pad: shapes, equality with torch's own padding, per-axis and small-axis padding."""

import numpy as np
import pytest
import torch
from torch import nn

from geogan.core.errors import ConfigError
from geogan.nn import Pad, conv_nd, same_padding


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv_nd_is_torch_conv_with_same_padding(dims, mode):
    torch.manual_seed(0)
    conv = conv_nd(dims, 2, 3, kernel_size=3, padding_mode=mode)
    assert isinstance(conv, nn.Conv2d if dims == 2 else nn.Conv3d)
    assert set(conv.state_dict()) == {"weight", "bias"}
    native_cls = nn.Conv2d if dims == 2 else nn.Conv3d
    native = native_cls(2, 3, 3, padding=1, padding_mode=mode)
    native.load_state_dict(conv.state_dict())
    x = torch.randn(2, 2, *([5] * dims))
    torch.testing.assert_close(conv(x), native(x))


@pytest.mark.parametrize("dims", [2, 3])
def test_conv_nd_stride_and_even_kernel_shapes(dims):
    x = torch.randn(1, 2, *([7] * dims))
    assert conv_nd(dims, 2, 4, stride=2)(x).shape == (1, 4, *([4] * dims))  # ceil(7 / 2)
    assert conv_nd(dims, 2, 4, kernel_size=4)(x).shape == (1, 4, *([7] * dims))
    assert conv_nd(dims, 2, 4, kernel_size=2, stride=2, padding="valid")(x).shape == (
        1,
        4,
        *([3] * dims),
    )
    assert same_padding(4) == (1, 2)


def test_conv_nd_reflect_survives_one_pixel_axes():
    # torch's own reflect padding raises on an axis not longer than the pad.
    conv = conv_nd(2, 1, 1, kernel_size=3, padding_mode="reflect")
    x = torch.randn(1, 1, 1, 4)
    with pytest.raises(RuntimeError):
        nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    assert conv(x).shape == (1, 1, 1, 4)


def test_pad_per_axis_matches_numpy():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    out = Pad(2, 2, ("reflect", "circular"))(x)
    # Pads are separable: wrap along longitude (W) then reflect along latitude (H).
    expected = np.pad(x.numpy(), [(0, 0), (0, 0), (0, 0), (2, 2)], mode="wrap")
    expected = np.pad(expected, [(0, 0), (0, 0), (2, 2), (0, 0)], mode="reflect")
    np.testing.assert_array_equal(out.numpy(), expected)


def test_pad_3d_asymmetric_pairs_match_numpy():
    x = torch.randn(1, 2, 3, 4, 5)
    out = Pad(3, [(1, 0), (0, 2), (1, 1)], ("zeros", "replicate", "circular"))(x)
    e = np.pad(x.numpy(), [(0, 0), (0, 0), (0, 0), (0, 0), (1, 1)], mode="wrap")
    e = np.pad(e, [(0, 0), (0, 0), (0, 0), (0, 2), (0, 0)], mode="edge")
    e = np.pad(e, [(0, 0), (0, 0), (1, 0), (0, 0), (0, 0)], mode="constant")
    np.testing.assert_allclose(out.numpy(), e)


def test_pad_small_axes_fall_back():
    x = torch.randn(1, 1, 1, 2)
    reflect = Pad(2, 2, "reflect")(x)
    np.testing.assert_array_equal(
        reflect.numpy(), np.pad(x.numpy(), [(0, 0)] * 2 + [(2, 2)] * 2, mode="edge")
    )
    circular = Pad(2, 3, "circular")(x)  # pad 3 > width 2: wraps more than once
    np.testing.assert_array_equal(
        circular.numpy(), np.pad(x.numpy(), [(0, 0)] * 2 + [(3, 3)] * 2, mode="wrap")
    )


def test_pad_and_conv_reject_bad_arguments():
    with pytest.raises(ConfigError, match="padding mode"):
        conv_nd(2, 1, 1, padding_mode="symmetricx")
    with pytest.raises(ConfigError, match="one value per spatial axis"):
        Pad(2, 1, ("reflect", "circular", "zeros"))
    with pytest.raises(ConfigError, match="dims must be 2 or 3"):
        conv_nd(4, 1, 1)
    with pytest.raises(ValueError, match="expects"):
        Pad(3, 1)(torch.randn(1, 1, 4, 4))
