"""Speed benchmark of the ``flood`` recipe: one training iteration of the masker and of the painter.

An iteration is one Trainer step of a stage, with every phase of that stage, on a
multi-domain batch of 256x256 tiles, ``batch`` tiles per domain (rf, rn, sf, sn):

- ``masker``: the representation stage: masker (encoder, task decoders s/w/h, adaptation
  decoders, classifier fooling), domain classifier, adaptation discriminators;
- ``painter``: the translation stage: painter (encoder frozen), translation discriminators.

Per part and precision: seconds per iteration (median of ``iters`` after a warm-up), peak
RSS (each part in a fresh process), FLOPs of one iteration (``FlopCounterMode``: forward,
backward), achieved GFLOP/s and its ratio to the machine's bf16 conv peak
(:mod:`roofline`, the same measure recipe 1's benchmark uses), the parameters of every
model, and (``--profile``) a torch.profiler table.

Model sizes: ``--size default`` is the recipe's schema defaults (MUNIT-sized: encoder dim 32,
4 residual blocks, 5x5/7x7 decoder convolutions, SPADE hidden 64); ``--size preset`` the
``flood/bluemarble64`` preset (dim 16, 3x3 decoders), the one the skill benchmark trains.

Usage::

    python benchmarks/flood_speed.py --out bench/flood_speed.json        # ~12 min on 2 cores
    python benchmarks/flood_speed.py --quick --out /tmp/fs.json          # smoke (64x64, tiny)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
RESULT = "@@FLOOD_SPEED@@ "


def model_config(size: str, quick: bool) -> dict[str, Any]:
    """The ``model`` and ``train`` sections measured."""
    from geogan.recipes.config import load_run_config

    if size == "preset":
        cfg = load_run_config("flood/bluemarble64")
    else:
        from geogan.recipes.flood.config import FloodConfig

        cfg = FloodConfig(model={"tasks": ["s", "w", "h"]})
    tree = cfg.model_dump(mode="json")
    if quick:
        tree["model"]["encoder"]["dim"] = 4
        tree["model"]["painter"]["spade_hidden"] = 8
        tree["model"]["discriminator"]["filters"] = 4
        tree["model"]["classifier"]["filters"] = 8
    return tree


def synthetic_batches(
    n: int, batch: int, size: int, n_classes: int, memory_format, seed: int = 0
) -> list[dict]:
    """``n`` multi-domain batches: images in [-1, 1], land cover, water from smooth noise, height."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        item = {}
        for d in ("rf", "rn", "sf", "sn"):
            smooth = F.interpolate(
                torch.randn(batch, 1, size // 8, size // 8, generator=g),
                size=(size, size),
                mode="bilinear",
            )
            w = (smooth[:, 0] > (0.3 if d[1] == "f" else 9.0)).long()
            sample = {
                "x": (torch.rand(batch, 3, size, size, generator=g) * 2 - 1).contiguous(
                    memory_format=memory_format
                ),
                "s": torch.randint(0, n_classes, (batch, size, size), generator=g),
                "w": w,
            }
            if d[0] == "s":
                sample["h"] = torch.randn(batch, 1, size, size, generator=g).contiguous(
                    memory_format=memory_format
                )
            item[d] = sample
        out.append(item)
    return out


def build_trainer(
    part: str,
    tree: dict[str, Any],
    batch: int,
    size: int,
    precision: str,
    channels_last: bool,
    run_dir: str,
):
    """A real Trainer over the recipe's models and phases of one stage, fed synthetic batches."""
    import torch

    from geogan.recipes.config import run_config_from_dict
    from geogan.recipes.flood import build as B
    from geogan.recipes.flood.phases import (
        ClassifierPhase,
        DiscriminatorPhase,
        MaskerPhase,
        PainterPhase,
    )
    from geogan.training.optim import build_optimizers
    from geogan.training.phases import TrainingSetup
    from geogan.training.trainer import Trainer

    tree = json.loads(json.dumps(tree))
    tree["data"]["tile_size"] = size
    cfg = run_config_from_dict(tree)
    domains = ["rf", "rn", "sf", "sn"]
    torch.manual_seed(0)
    models = B.build_models(B.model_kwargs(cfg, domains))
    t, m = cfg.train, cfg.model
    ig = cfg.data.ignore_index
    if part == "masker":
        phases = [
            MaskerPhase(
                tasks=m.tasks,
                losses=t.losses,
                ignore_index=ig,
                adaptation="adapt_r" in models,
                classifier=m.classifier.domains if "classifier" in models else None,
                log_level=0,
            ),
            ClassifierPhase(losses=t.losses, mode=m.classifier.domains, log_level=0),
            DiscriminatorPhase(
                losses=t.losses,
                ignore_index=ig,
                mask_dilate=1,
                active={"s": ["a"]},
                noise_channels=0,
                log_level=0,
            ),
        ]
        frozen = {"painter": "frozen", "disc_t_f": "frozen", "disc_t_n": "frozen"}
    else:
        phases = [
            PainterPhase(
                losses=t.losses,
                ignore_index=ig,
                mask_dilate=1,
                unflood=m.painter.unflood,
                noise_channels=m.painter.noise_channels,
                log_level=0,
            ),
            DiscriminatorPhase(
                losses=t.losses,
                ignore_index=ig,
                mask_dilate=1,
                active={"s": ["t"]},
                noise_channels=m.painter.noise_channels,
                log_level=0,
            ),
        ]
        frozen = {
            n: "frozen"
            for n in models
            if n.startswith(("decoder_", "adapt_", "disc_a_")) or n in ("encoder", "classifier")
        }
    plan = {
        "masker": ["encoder"] + [n for n in models if n.startswith(("decoder_", "adapt_"))],
        "painter": ["painter", "encoder"],
        "discriminators": [n for n in models if n.startswith("disc_")],
        "classifier": ["classifier"],
        "segmenter": [],
    }
    setup = TrainingSetup(
        models=models,
        optimizers=build_optimizers(models, plan, t.optimizers),
        phases=phases,
        dataset=torch.utils.data.TensorDataset(torch.zeros(1)),
        ema_model="painter",
        stages=[{"name": "s", "phases": [p.name for p in phases], "models": frozen}],
    )

    class SyntheticTrainer(Trainer):
        def _next_batch(self):
            b = self._synthetic[self.batches_consumed % len(self._synthetic)]
            self.batches_consumed += 1
            return b

    trainer = SyntheticTrainer(
        setup,
        run_dir=run_dir,
        steps=10**9,
        batch_size=batch,
        device=torch.device("cpu"),
        precision=precision,
        channels_last=channels_last,
        tensorboard=False,
        progress=False,
    )
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    trainer._synthetic = synthetic_batches(len(phases), batch, size, cfg.data.n_classes, fmt)
    return trainer


def measure(
    part: str,
    size_name: str,
    precision: str,
    batch: int,
    size: int,
    iters: int,
    quick: bool,
    channels_last: bool = True,
    profile: str | None = None,
) -> dict[str, Any]:
    """One part in this process (call it in a fresh one for the peak RSS: :func:`isolated`)."""
    import torch
    from common import peak_rss_mb
    from train_step import count_flops, iteration, summarise_profile

    torch.set_num_threads(int(os.environ.get("GEOGAN_BENCH_THREADS", "2")))
    tree = model_config(size_name, quick)
    with tempfile.TemporaryDirectory(prefix="geogan-flood-") as tmp:
        trainer = build_trainer(part, tree, batch, size, precision, channels_last, tmp)
        params = {
            k: sum(p.numel() for p in mm.parameters()) for k, mm in trainer.setup.models.items()
        }
        t0 = time.perf_counter()
        flops, by_op = count_flops(trainer)  # also the warm-up iteration
        warm = time.perf_counter() - t0
        times, logs = [], {}
        for _ in range(iters):
            t0 = time.perf_counter()
            logs = iteration(trainer)
            times.append(time.perf_counter() - t0)
        prof_summary = None
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                iteration(trainer)
            Path(profile).write_text(
                prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
            )
            prof_summary = summarise_profile(prof)
    times.sort()
    s = times[len(times) // 2]
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:6]
    return {
        "part": part,
        "size": size_name,
        "precision": precision,
        "tile": size,
        "batch_per_domain": batch,
        "images_per_iter": 4 * batch,
        "s_per_iter": s,
        "min_s": times[0],
        "warmup_s": warm,
        "flops_per_iter": flops,
        "achieved_gflops": flops / s / 1e9,
        "flops_by_op": {k: round(v / max(flops, 1), 4) for k, v in top},
        "params": params,
        "losses_finite": all(v == v and abs(v) != float("inf") for v in logs.values()),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": torch.get_num_threads(),
        "profile": prof_summary,
    }


def isolated(args: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter (so its peak RSS is its own)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(args)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=str(BENCH_DIR.parent)
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}


def run(
    quick: bool = False,
    sizes=("default", "preset"),
    precisions=("bf16", "fp32"),
    iters: int = 3,
    profile_dir: str | None = None,
) -> dict[str, Any]:
    import roofline
    from common import machine_info

    size, batch = (64, 1) if quick else (256, 2)
    if profile_dir:  # the workers write their tables there: a missing folder lost every row
        Path(profile_dir).mkdir(parents=True, exist_ok=True)
    rows = []
    for size_name in sizes:
        for precision in precisions:
            for part in ("masker", "painter"):
                prof = (
                    str(Path(profile_dir) / f"flood_{part}_{size_name}_{precision}.txt")
                    if profile_dir
                    else None
                )
                args = {
                    "part": part,
                    "size_name": size_name,
                    "precision": precision,
                    "batch": batch,
                    "size": size,
                    "iters": 1 if quick else iters,
                    "quick": quick,
                    "profile": prof,
                }
                rows.append(isolated(args))
    peak = roofline.run(quick=quick)
    for r in rows:
        if "achieved_gflops" in r:
            r["peak_gflops"] = peak["peak_gflops"][r["precision"]]
            r["peak_ratio"] = r["achieved_gflops"] / r["peak_gflops"]
    return {"machine": machine_info(), "quick": quick, "roofline": peak, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--size", action="append", choices=("default", "preset"))
    p.add_argument("--precision", action="append", choices=("bf16", "fp32"))
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--profile-dir")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(RESULT + json.dumps(measure(**json.loads(a.worker))), flush=True)
        return 0
    res = run(
        a.quick,
        tuple(a.size or ("default", "preset")),
        tuple(a.precision or ("bf16", "fp32")),
        a.iters,
        a.profile_dir,
    )
    text = json.dumps(res, indent=2)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")
    for r in res["rows"]:
        print(
            {
                k: r.get(k)
                for k in (
                    "part",
                    "size",
                    "precision",
                    "s_per_iter",
                    "peak_rss_mb",
                    "achieved_gflops",
                    "peak_ratio",
                    "error",
                )
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
