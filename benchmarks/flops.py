"""FLOP counting shared by the speed benchmarks: ``torch.utils.flop_counter``'s formulas,
with its grouped-convolution weight gradient corrected.

Why not ``FlopCounterMode`` itself: its module tracker cannot follow the ``autograd.grad``
calls of gradient penalties (R1, WGAN-GP, path length), so the counters here are plain
dispatch modes that apply the same formula table.

Why a correction: torch's ``conv_backward_flop`` (torch 2.13) computes the weight gradient as
``conv(inp^T, grad_out^T)`` and ignores ``groups``. For a grouped convolution with ``G``
groups it counts ``G`` times the true weight-gradient work. That matters for StyleGAN2 as
rosinality writes it: its modulated convolutions run as one convolution with
``groups = batch`` (per-sample weights), so its counted backward was inflated by the batch
size on every generator layer (the same defect pytorch/pytorch PR #183405 addresses in
torch itself). The true count of a weight gradient is that of the forward
convolution (each product of an input and a weight is done once more), which is what
:func:`conv_backward_flops` uses.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any


def _shape(x: Any) -> list[int]:
    return list(x.shape)


def conv_backward_flops(
    grad_out,
    x,
    w,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _out_pad,
    _groups,
    mask,
    out_val=None,
) -> int:
    """FLOPs of ``aten.convolution_backward`` (multiply-adds x 2, bias ignored as torch does):
    the input gradient by torch's formula (correct for groups), the weight gradient as the
    forward convolution's count (torch's own formula for it is ``groups`` times too large)."""
    from torch.utils.flop_counter import conv_flop_count

    flops = 0
    if mask[0]:
        flops += conv_flop_count(_shape(grad_out), _shape(w), _shape(x), not transposed)
    if mask[1]:
        flops += conv_flop_count(_shape(x), _shape(w), _shape(grad_out), transposed)
    return flops


def formula_for(func) -> Callable[..., int] | None:
    """The FLOP formula of an aten op (``None`` when it is not counted)."""
    import torch
    from torch.utils.flop_counter import flop_registry

    packet = func._overloadpacket
    if packet is torch.ops.aten.convolution_backward:
        return conv_backward_flops
    return flop_registry.get(packet)


def count_by_key(fn: Callable[[], Any], key: Callable[[Any, tuple], str]) -> dict[str, float]:
    """FLOPs of ``fn()`` summed per ``key(func, args)``."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: dict[str, float] = collections.defaultdict(float)

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = formula_for(func)
            if formula is not None:
                counts[key(func, args)] += float(formula(*args, **kwargs, out_val=out))
            return out

    with _Count():
        fn()
    return dict(counts)


def count_flops(fn: Callable[[], Any]) -> float:
    """Total FLOPs of ``fn()``."""
    return sum(count_by_key(fn, lambda func, args: "total").values())


def op_and_shapes(func, args: tuple) -> str:
    """Key ``"op|[shapes of the first three tensor arguments]"``."""
    shapes = [tuple(a.shape) for a in args[:3] if hasattr(a, "shape")]
    return f"{func._overloadpacket.__name__}|{shapes}"
