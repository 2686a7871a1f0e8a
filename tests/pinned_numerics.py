"""Bitwise pins that depend on the CPU: which set of pinned values applies on this machine.

CPU kernels (oneDNN, MKL, ATen's vectorised loops) pick code paths by instruction set and
vendor, and those paths reduce in different orders, so the same fp32 computation can differ
in the last bits between, e.g., an AMD AVX2 and an Intel AVX-512 machine. Pinned values are
therefore stored per ``numerics_key()``. On a machine whose key has pins, the comparison is
bitwise; on any other, the values must agree with the first pinned set to ``rtol`` (the
rounding differences of a few kernels, after a few steps), and the test says which key it
lacked so the pins for it can be added.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch


def numerics_key() -> str:
    """``"<cpu vendor>/<ATen CPU capability>"``, e.g. ``"AuthenticAMD/AVX2"``."""
    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{vendor}/{torch.backends.cpu.get_cpu_capability()}"


def pins_for_this_machine(pins: dict[str, object]) -> tuple[object, bool]:
    """``(pinned values, exact)``: this machine's own set (exact) or the first set (not exact)."""
    key = numerics_key()
    if key in pins:
        return pins[key], True
    first = next(k for k in pins if not k.startswith("_"))
    return pins[first], False


def assert_close_values(got, want, rtol: float, what: str) -> None:
    """Every float of ``got`` (nested lists/dicts) within ``rtol`` of ``want``; same structure."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), what
        for k in want:
            assert_close_values(got[k], want[k], rtol, f"{what}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close_values(g, w, rtol, f"{what}[{i}]")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=rtol, abs_tol=rtol * 1e-3), (what, got, want)
    else:
        assert got == want, (what, got, want)
