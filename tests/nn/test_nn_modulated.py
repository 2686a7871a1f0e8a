"""Modulated convolution against the per-sample formula of StyleGAN2 (eq. 1-3), in 2D and 3D,
and the equalised-learning-rate layers against their definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from geogan.core.errors import ConfigError
from geogan.nn.modulated import EqualConv, EqualLinear, ModulatedConv, bias_leaky_relu
from geogan.nn.upfirdn import fir_kernel, upfirdn


def per_sample_reference(m: ModulatedConv, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One convolution per sample with its own modulated, demodulated weight (the paper's
    formula, as the fused/grouped implementations compute it)."""
    dims = m.dims
    conv = F.conv2d if dims == 2 else F.conv3d
    conv_t = F.conv_transpose2d if dims == 2 else F.conv_transpose3d
    s = m.modulation.weight @ w.t() * m.modulation.scale + m.modulation.bias.view(-1, 1)  # [I, B]
    out = []
    for b in range(x.shape[0]):
        wb = m.weight * m.scale * s[:, b].view(1, -1, *([1] * dims))  # w'_{o,i,k}
        if m.demodulate:
            wb = wb / torch.sqrt(wb.square().flatten(1).sum(1) + m.eps).view(
                -1, *([1] * (dims + 1))
            )
        xb = x[b : b + 1]
        if m.up > 1:
            y = conv_t(xb, wb.transpose(0, 1), stride=2)
            k = fir_kernel(m.blur.taps, dims, gain=2.0).to(x.dtype)
            y = upfirdn(y, k, pad=m.blur.pad)
        elif m.down > 1:
            k = fir_kernel(m.blur.taps, dims).to(x.dtype)
            y = conv(upfirdn(xb, k, pad=m.blur.pad), wb, stride=2)
        else:
            y = conv(xb, wb, padding=m.kernel_size // 2)
        out.append(y)
    return torch.cat(out)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("demodulate", [True, False])
def test_matches_the_per_sample_formula(dims, up, down, demodulate):
    torch.manual_seed(0)
    m = ModulatedConv(dims, 5, 4, 3, 8, up=up, down=down, demodulate=demodulate).double()
    with torch.no_grad():
        m.modulation.bias.add_(torch.randn(5, dtype=torch.float64) * 0.3)
    size = [6] * dims if dims == 3 else [6, 10]
    x = torch.randn(3, 5, *size, dtype=torch.float64)
    w = torch.randn(3, 8, dtype=torch.float64)
    out = m(x, w)
    ref = per_sample_reference(m, x, w)
    expect = [n * up // down for n in size]
    assert list(out.shape) == [3, 4, *expect]
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_demodulation_restores_unit_variance():
    # for unit-variance i.i.d. input the demodulated output has unit variance whatever the style
    torch.manual_seed(1)
    m = ModulatedConv(2, 64, 32, 3, 16)
    x = torch.randn(4, 64, 32, 32)
    w = torch.randn(4, 16) * 5
    y = m(x, w)[:, :, 1:-1, 1:-1]
    assert y.std().item() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("up,down", [(1, 1), (2, 1), (1, 2)])
def test_circular_longitude_commutes_with_rolls(up, down):
    torch.manual_seed(2)
    m = ModulatedConv(2, 3, 4, 3, 8, up=up, down=down, padding_mode=["zeros", "circular"]).double()
    x = torch.randn(2, 3, 8, 12, dtype=torch.float64)
    w = torch.randn(2, 8, dtype=torch.float64)
    y = m(x, w)
    torch.testing.assert_close(m(torch.roll(x, 2, -1), w), torch.roll(y, 2 * up // down, -1))
    zeros = ModulatedConv(2, 3, 4, 3, 8, up=up, down=down).double()
    zeros.load_state_dict(m.state_dict())
    tiled = zeros(torch.cat([x, x, x], -1), w)
    n = y.shape[-1]
    torch.testing.assert_close(y, tiled[..., n : 2 * n])


def test_equalised_layers_and_activation():
    torch.manual_seed(3)
    lin = EqualLinear(16, 8, lr_mul=0.01, bias_init=0.5)
    x = torch.randn(4, 16)
    ref = x @ (lin.weight * 0.01 / 4).t() + lin.bias * 0.01
    torch.testing.assert_close(lin(x), ref)
    conv = EqualConv(2, 3, 5, 3, activation=True)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 3, 8, 8)
    pre = F.conv2d(x, conv.weight / math.sqrt(27), padding=1) + conv.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(conv(x), F.leaky_relu(pre, 0.2) * math.sqrt(2))
    down = EqualConv(2, 3, 5, 3, down=2, activation=False)
    assert down(x).shape == (2, 5, 4, 4)
    # the fused activation is twice differentiable (R1 and path length need it)
    t = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, c: bias_leaky_relu(a * 1.0, c), (t, b))


def test_rejects_bad_factors_and_inputs():
    with pytest.raises(ConfigError):
        ModulatedConv(2, 3, 4, 3, 8, up=2, down=2)
    with pytest.raises(ConfigError):
        ModulatedConv(2, 3, 4, 3, 8, up=4)
    with pytest.raises(ValueError, match="expects"):
        ModulatedConv(2, 3, 4, 3, 8)(torch.zeros(1, 2, 4, 4), torch.zeros(1, 8))
