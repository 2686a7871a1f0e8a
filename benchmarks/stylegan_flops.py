#!/usr/bin/env python
"""Where the FLOPs of one StyleGAN2 training iteration go, geogan against rosinality's.

``benchmarks/stylegan_speed.py`` counts both implementations' FLOPs per amortised iteration
(the same schedule: D + G every step, path length every 4, R1 every 16) with the formulas of
``torch.utils.flop_counter``. This script splits those totals by aten op and by operand
shapes, so that a difference between the two can be traced to the layers that cause it
before a timing is called equal work::

    python benchmarks/stylegan_flops.py --reference-dir /path/to/stylegan2-pytorch --config 64

It runs one iteration of each kind (steps 1, 4 and 16) per implementation in this process
(no timing) and writes ``--out`` (JSON: per implementation the amortised GFLOP by op and by
op + shapes) and a table of the op totals side by side.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flops  # noqa: E402
import stylegan_speed as sp  # noqa: E402


def count_by_op(fn) -> dict[str, float]:
    """FLOPs of ``fn()`` per ``"aten op|operand shapes"`` (grouped weight gradients corrected,
    see ``benchmarks/flops.py``)."""
    return flops.count_by_key(fn, flops.op_and_shapes)


def amortised_by_key(by_kind: dict[int, dict[str, float]]) -> dict[str, float]:
    """Per key, FLOPs of one amortised iteration from iteration kinds 1, 4 and 16 (the
    schedule of :func:`stylegan_speed._amortised`)."""
    keys = set().union(*by_kind.values())
    out = {}
    for k in keys:
        t = {s: by_kind[s].get(k, 0.0) for s in by_kind}
        out[k] = sp._amortised(t)["s_per_iter"]
    return out


def measure(impl: str, config: str, reference_dir: str | None) -> dict[str, Any]:
    import tempfile

    spec = sp.CONFIGS[config]
    with tempfile.TemporaryDirectory(prefix="geogan-sgflops-") as tmp:
        if impl == "geogan":
            tr = sp._geogan_trainer(spec, "fp32", False, tmp)

            def fn(s):
                sp._geogan_step(tr, s)
        else:
            ref = sp._Reference(spec, reference_dir)
            fn = ref.step
        by_kind = {s: count_by_op(lambda s=s: fn(s)) for s in (1, 4, 16)}
    by_key = amortised_by_key(by_kind)
    by_op: dict[str, float] = collections.defaultdict(float)
    for k, v in by_key.items():
        by_op[k.split("|")[0]] += v
    return {
        "impl": impl,
        "config": config,
        "total_gflop": sum(by_key.values()) / 1e9,
        "gflop_by_op": {k: v / 1e9 for k, v in sorted(by_op.items())},
        "gflop_by_op_and_shapes": {
            k: v / 1e9 for k, v in sorted(by_key.items(), key=lambda kv: -kv[1])
        },
    }


def table(results: list[dict[str, Any]]) -> str:
    ops = sorted(set().union(*(r["gflop_by_op"] for r in results)))
    head = "| op | " + " | ".join(r["impl"] for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for op in ops:
        lines.append(
            f"| {op} | " + " | ".join(f"{r['gflop_by_op'].get(op, 0):.1f}" for r in results) + " |"
        )
    lines.append("| total | " + " | ".join(f"{r['total_gflop']:.1f}" for r in results) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="64", choices=list(sp.CONFIGS))
    p.add_argument("--reference-dir", help="checkout of rosinality/stylegan2-pytorch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="benchmarks/results/stylegan_flops.json")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    results = [measure("geogan", a.config, None)]
    if a.reference_dir:
        results.append(measure("reference", a.config, a.reference_dir))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": sp.machine_info(), "results": results}, indent=2))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
