#!/usr/bin/env python
"""Where one StyleGAN2 training iteration spends its time, geogan against rosinality's.

The setups of ``benchmarks/stylegan_speed.py`` (same networks, batch, schedule), profiled
with torch.profiler per iteration kind (1: D + G; 4: + path length; 16: + R1), after one
warm-up iteration of each kind::

    python benchmarks/stylegan_profile.py --config 64 --reference-dir /path/to/stylegan2-pytorch

Prints the top ops by self CPU time per implementation and kind and writes ``--out`` (JSON).
Shares are meaningful on a loaded machine too; absolute seconds are not. Also reports the
minor page faults of each implementation's profiled iterations (``getrusage``): the issue
names fresh allocations as a cost of the reference.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stylegan_speed as sp  # noqa: E402
from common import machine_info, profile_ops, profile_table  # noqa: E402

KINDS = (1, 4, 16)


def profile_impl(impl: str, config: str, reference_dir: str | None, top: int) -> dict[str, Any]:
    """Per iteration kind, the top ops and the minor page faults of one iteration."""
    spec = sp.CONFIGS[config]
    with tempfile.TemporaryDirectory(prefix="geogan-sgprof-") as tmp:
        if impl == "geogan":
            tr = sp._geogan_trainer(spec, "fp32", True, tmp)

            def step(s: int) -> None:
                sp._geogan_step(tr, s)
        else:
            step = sp._Reference(spec, reference_dir).step
        out: dict[str, Any] = {"impl": impl, "config": config, "kinds": {}}
        for kind in KINDS:
            step(kind)  # warm-up of this kind (oneDNN primitives, allocator pools)
            faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            rows = profile_ops(lambda kind=kind: step(kind), steps=1, top=top)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
            out["kinds"][str(kind)] = {"top": rows, "minor_page_faults": faults}
            print(f"\n== {impl} {config}, iteration kind {kind} ({faults} minor page faults)")
            print(profile_table(rows))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="64", choices=list(sp.CONFIGS))
    p.add_argument("--reference-dir", help="checkout of rosinality/stylegan2-pytorch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    results = [profile_impl("geogan", a.config, None, a.top)]
    if a.reference_dir:
        results.append(profile_impl("reference", a.config, a.reference_dir, a.top))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"machine": machine_info(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
