"""Benchmark 4 (part): the machine's convolution throughput, measured here.

A large ``Conv2d(128, 128, 3, padding=1)`` on ``[8, 128, 128, 128]`` in channels_last,
timed forward only and forward + backward (input and weight gradients), in float32 and
under bf16 autocast, on as many threads as torch uses. FLOPs: ``2 * 9 * C_in * C_out * H * W
* B`` forward, three times that forward + backward. The best of ``repeats`` runs is the
*peak*: what the hardware and oneDNN deliver on an ideal layer. The training benchmark
divides its achieved GFLOP/s (FLOPs counted by ``FlopCounterMode``) by it.
"""

from __future__ import annotations

import time
from typing import Any

import torch


def conv_gflops(
    precision: str,
    backward: bool,
    batch: int = 8,
    channels: int = 128,
    size: int = 128,
    repeats: int = 5,
) -> dict[str, Any]:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(memory_format=torch.channels_last)
    x = torch.randn(batch, channels, size, size).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(backward)
    flops = 2 * 9 * channels * channels * size * size * batch * (3 if backward else 1)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            y = conv(x)
        if backward:
            y.backward(torch.ones_like(y))
            conv.weight.grad = conv.bias.grad = x.grad = None

    step()  # oneDNN primitive creation, first-touch of memory
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "precision": precision,
        "pass": "forward+backward" if backward else "forward",
        "shape": [batch, channels, size, size],
        "gflop": flops / 1e9,
        "best_s": best,
        "median_s": sorted(times)[len(times) // 2],
        "gflops": flops / best / 1e9,
    }


def run(quick: bool = False, repeats: int | None = None) -> dict[str, Any]:
    """Peak conv GFLOP/s per precision and pass; ``peak_gflops[precision]`` is the larger of the two passes."""
    from geogan.training.trainer import keep_freed_memory

    keep_freed_memory()  # the same allocator behaviour as the Trainer's
    kw: dict[str, Any] = {"repeats": repeats or (2 if quick else 5)}
    if quick:
        kw.update(batch=2, channels=32, size=32)
    rows = [conv_gflops(p, b, **kw) for p in ("fp32", "bf16") for b in (False, True)]
    peak = {p: max(r["gflops"] for r in rows if r["precision"] == p) for p in ("fp32", "bf16")}
    return {"quick": quick, "threads": torch.get_num_threads(), "rows": rows, "peak_gflops": peak}
