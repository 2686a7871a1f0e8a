#!/usr/bin/env python
"""Where one recipe-2 WGAN-GP iteration spends its time: torch.profiler's table by op.

The same setup as ``benchmarks/volume_speed.py`` (its ``geogan_setup``: srsgan-sized
generator and critic, 3 in / 3 out channels, the recipe's critic and generator phases in
``Trainer._train_step``), profiled over ``--steps`` iterations after a warm-up::

    python benchmarks/volume_profile.py --config x8 --variant issue --steps 2

Prints the top ops by self CPU time and writes them to ``--out`` (JSON). Share of time is
what matters here, so the table is meaningful on a loaded machine too; absolute times are not.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import volume_speed as vs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="x8", choices=list(vs.CONFIGS))
    p.add_argument("--variant", default="issue", choices=list(vs.VARIANTS))
    p.add_argument("--channels", default="512,64,512", help="base,min,max")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    import torch
    from torch.profiler import ProfilerActivity, profile

    from geogan.training.trainer import Trainer

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    base, cmin, cmax = (int(c) for c in a.channels.split(","))
    variant = vs.VARIANTS[a.variant]
    setup, _ = vs.geogan_setup(vs.CONFIGS[a.config], base, cmin, cmax, variant)
    trainer = Trainer(
        setup,
        run_dir=tempfile.mkdtemp(),
        device=torch.device("cpu"),
        progress=False,
        steps=10**6,
        batch_size=1,
        tensorboard=False,
        precision=variant.get("precision", "fp32"),
    )
    trainer._train_step()  # warm-up: oneDNN primitives, allocator
    trainer.step += 1
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            trainer._train_step()
            trainer.step += 1
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = [
        {
            "op": e.key,
            "self_cpu_s_per_step": e.self_cpu_time_total / 1e6 / a.steps,
            "share": e.self_cpu_time_total / total,
            "calls_per_step": e.count / a.steps,
        }
        for e in events[: a.top]
    ]
    print(f"{'op':40s} {'s/step':>8s} {'share':>6s} {'calls':>6s}")
    for r in rows:
        print(
            f"{r['op'][:40]:40s} {r['self_cpu_s_per_step']:8.3f} {r['share']:6.1%} "
            f"{r['calls_per_step']:6.0f}"
        )
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"config": a.config, "variant": a.variant, "channels": [base, cmin, cmax]}
        a.out.write_text(json.dumps({**meta, "steps": a.steps, "top": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
