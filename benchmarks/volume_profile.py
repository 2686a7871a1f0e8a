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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import volume_speed as vs  # noqa: E402
from common import profile_ops, profile_table  # noqa: E402


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

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    base, cmin, cmax = (int(c) for c in a.channels.split(","))
    variant = vs.VARIANTS[a.variant]
    setup, _ = vs.geogan_setup(vs.CONFIGS[a.config], base, cmin, cmax, variant)
    trainer = vs.geogan_trainer(setup, variant)
    trainer._train_step()  # warm-up: oneDNN primitives, allocator
    trainer.step += 1

    def step():
        trainer._train_step()
        trainer.step += 1

    rows = profile_ops(step, a.steps, a.top)
    print(profile_table(rows))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"config": a.config, "variant": a.variant, "channels": [base, cmin, cmax]}
        a.out.write_text(json.dumps({**meta, "steps": a.steps, "top": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
