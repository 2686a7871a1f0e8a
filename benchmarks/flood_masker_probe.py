"""A short time-limited masker probe: train ``flood/masker64`` with overrides, score the water
and land-cover metrics on the held-out tiles, append one JSON line.

For comparing masker settings at equal (short) training time before a full
``flood_skill.py`` run. The data is a bundle ``flood_skill.py`` (or ``geogan flood-data``)
wrote: ``DATA/train.json`` and ``DATA/test.json``.

Usage::

    python benchmarks/flood_masker_probe.py --data bench/flood/data --minutes 3 \\
        --name bn --out bench/probes.jsonl model.encoder.norm=batch
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def probe(data: Path, minutes: float, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    import torch

    from geogan.recipes.config import load_run_config
    from geogan.recipes.flood.data import load_list
    from geogan.recipes.flood.evaluate import load_tiles, masker_scores
    from geogan.recipes.flood.generate import load_flood_export
    from geogan.recipes.run import train_from_config

    torch.set_num_threads(int(os.environ.get("GEOGAN_BENCH_THREADS", "2")))
    ov = [
        f"data.list_path={data / 'train.json'}",
        f"data.test_list_path={data / 'test.json'}",
        f"train.time_limit_minutes={minutes}",
        f"run_root={run_dir.parent}",
        *overrides,
    ]
    cfg = load_run_config("flood/masker64", ov)
    summary = train_from_config(cfg, run_dir=run_dir, progress=False)
    model = load_flood_export(run_dir / "model.safetensors")
    d, e = cfg.data, cfg.evaluate
    entries = load_list(d.test_list_path, "data.test_list_path").entries
    test = load_tiles(entries, d.n_classes, d.ignore_index)
    scores = masker_scores(
        model.predict,
        test,
        n_classes=d.n_classes,
        ignore=d.ignore_index,
        may_band=e.may_band,
        threshold=e.threshold,
    )
    keep = ("f05", "precision", "tpr", "fpr", "error", "miou", "lc_accuracy")
    return {
        "minutes": minutes,
        "steps": summary["steps"],
        "overrides": overrides,
        **{k: scores.get(k) for k in keep},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="bundle folder (train/test.json)")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, required=True, help="JSON-lines file to append to")
    p.add_argument("overrides", nargs="*", help="config overrides KEY=VALUE")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        res = {"name": a.name, **probe(a.data, a.minutes, a.overrides, Path(tmp) / a.name)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with a.out.open("a") as f:
        f.write(json.dumps(res) + "\n")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
