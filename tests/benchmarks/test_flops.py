"""benchmarks/flops.py: a grouped convolution's backward counts as much as the same work done
as one ungrouped convolution per group, and ungrouped counts equal torch's own formulas."""

from __future__ import annotations

import flops
import pytest
import torch
import torch.nn.functional as F


def _grouped_and_split(groups: int, transposed: bool) -> tuple[float, float]:
    torch.manual_seed(0)
    b, cin, cout, k, n = 1, 3, 5, 3, 9
    x = torch.randn(b, cin * groups, n, n, requires_grad=True)
    if transposed:
        w = torch.randn(cin * groups, cout, k, k, requires_grad=True)
    else:
        w = torch.randn(cout * groups, cin, k, k, requires_grad=True)
    conv = F.conv_transpose2d if transposed else F.conv2d

    def grouped():
        conv(x, w, stride=2 if transposed else 1, groups=groups).square().sum().backward()

    def split():
        for g in range(groups):
            xg = x[:, g * cin : (g + 1) * cin].detach().requires_grad_(True)
            if transposed:
                wg = w[g * cin : (g + 1) * cin].detach().requires_grad_(True)
            else:
                wg = w[g * cout : (g + 1) * cout].detach().requires_grad_(True)
            conv(xg, wg, stride=2 if transposed else 1).square().sum().backward()

    return flops.count_flops(grouped), flops.count_flops(split)


@pytest.mark.parametrize("transposed", [False, True])
def test_grouped_backward_counts_as_the_split_convolutions(transposed):
    grouped, split = _grouped_and_split(4, transposed)
    assert grouped == pytest.approx(split, rel=1e-12)


def test_ungrouped_counts_equal_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    w = torch.randn(6, 4, 3, 3, requires_grad=True)

    def fn():
        F.conv2d(x, w, padding=1).sum().backward()

    with FlopCounterMode(display=False) as fc:
        fn()
    assert flops.count_flops(fn) == fc.get_total_flops()


def test_weight_gradient_equals_the_forward_count():
    # direct formula: conv forward = 2 * B * C_out * C_in * k^2 * H_out * W_out multiply-adds
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)  # no input gradient: only the weight gradient is computed
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    total = flops.count_flops(lambda: F.conv2d(x, w).sum().backward())
    forward = 2 * 2 * 6 * 4 * 9 * 6 * 6
    assert total == 2 * forward
