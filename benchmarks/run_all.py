"""Run the geogan performance benchmarks and write ``results.json`` + ``results.md``.

    python benchmarks/run_all.py --out benchmarks/results            # everything, full size
    python benchmarks/run_all.py --out /tmp/bench --quick            # toy sizes (smoke test)
    python benchmarks/run_all.py --out /tmp/bench --only train-P1 --precisions bf16

Benchmarks (``--only`` takes names or prefixes, comma-separated or repeated):

- ``roofline``: the machine's conv GFLOP/s (fp32, bf16; forward and forward+backward).
- ``train-P1``, ``train-P1-ref``, ``train-R8``, ``train-R8-issue``: one training iteration
  of recipe 1 (critic steps with gradient penalty + generator step with the ensemble content
  loss) through the real phases and ``Trainer._train_step``; s/iteration, samples/s, peak
  RSS (fresh process per configuration and precision), FLOPs and achieved GFLOP/s, printed
  side by side. ``P1-ref`` is P1 at equal work with the reference code (its critic and its
  generator passes; see ``train_step.py``).
- ``generation``: members/s for a tiled 512x512 x8 domain with the R8 generator.
- ``data``: DataLoader samples/s from NetCDF and from a Zarr patch store, and the peak
  memory of ``prepare`` on 1x and 10x records.

No reference time is built in: a ratio to the reference code (dsrnngan's TensorFlow/Keras
training step) is printed only when its time is given, measured in the same session on the
same machine (``--reference-s-per-iter S --reference-source "what, where, when"``), e.g.
from interleaved rounds of both codes; results.md names that source beside the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_info, run_isolated  # noqa: E402

TRAIN_CONFIGS = ("P1", "P1-ref", "R8", "R8-issue")
BENCHMARKS = ("roofline", *(f"train-{c}" for c in TRAIN_CONFIGS), "generation", "data")
TARGETS = {
    "P1_peak_rss_gib": 6.0,
    # achieved GFLOP/s over the roofline's conv peak, bf16 (issue: at least 0.8x)
    "ratio_bf16_P1": 0.8,
    "ratio_bf16_R8": 0.8,
    "loader_over_consumption": 5.0,
    "prepare_memory_ratio": 1.2,
}


JEMALLOC_PATHS = (
    "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
    "/usr/lib64/libjemalloc.so.2",
    "/usr/lib/libjemalloc.so.2",
    "/usr/local/lib/libjemalloc.so.2",
)


def set_allocator(kind: str, jemalloc: str | None = None) -> None:
    """Environment of the benchmark subprocesses for the allocator ``kind``."""
    os.environ.pop("GEOGAN_MALLOC_TUNING", None)
    if kind == "glibc-tuned":
        os.environ["GEOGAN_MALLOC_TUNING"] = "1"
    elif kind == "jemalloc":
        path = jemalloc or next((p for p in JEMALLOC_PATHS if Path(p).is_file()), None)
        if path is None or not Path(path).is_file():
            raise SystemExit(
                "--allocator jemalloc: libjemalloc.so.2 not found; pass --jemalloc PATH"
            )
        os.environ["LD_PRELOAD"] = path
        os.environ["MALLOC_CONF"] = "dirty_decay_ms:-1,muzzy_decay_ms:-1"
    os.environ["GEOGAN_BENCH_ALLOCATOR"] = kind


def select(only: list[str] | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    wanted = [w.strip() for item in only for w in item.split(",") if w.strip()]
    chosen = [b for b in BENCHMARKS if any(b == w or b.startswith(w) for w in wanted)]
    unknown = [w for w in wanted if not any(b == w or b.startswith(w) for b in BENCHMARKS)]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    return chosen


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = select(args.only)
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    results: dict[str, Any] = {
        "machine": machine_info(),
        "quick": args.quick,
        "command": " ".join(sys.argv),
        "allocator": os.environ.get("GEOGAN_BENCH_ALLOCATOR", "default"),
        "reference": {
            "P1_ref_s_per_iter": args.reference_s_per_iter,
            "source": args.reference_source,
        },
        "targets": TARGETS,
        "benchmarks": {},
    }
    out = results["benchmarks"]
    t_start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        if name == "roofline":
            out[name] = run_isolated("roofline", {"quick": args.quick})
        elif name.startswith("train-"):
            config = name[len("train-") :]
            out[name] = {}
            for precision in precisions:
                iters = args.iters or (1 if args.quick else 2)
                out[name][precision] = run_isolated(
                    "train",
                    {
                        "name": config,
                        "precision": precision,
                        "channels_last": not args.no_channels_last,
                        "iters": iters,
                        "warmup": args.warmup,
                        "quick": args.quick,
                    },
                )
        elif name == "generation":
            out[name] = {
                p: run_isolated("generation", {"precision": p, "quick": args.quick})
                for p in precisions
            }
        elif name == "data":
            import data_pipeline

            out[name] = data_pipeline.run(quick=args.quick, workdir=args.tmp)
        print(
            f"[bench] {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True
        )
    results["derived"] = derive(results)
    results["total_s"] = round(time.perf_counter() - t_start, 1)
    return results


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def derive(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios and target checks that combine benchmarks (None where a part is missing)."""
    b = results["benchmarks"]
    peak = _get(b, "roofline", "peak_gflops") or {}
    derived: dict[str, Any] = {"achieved_over_peak": {}}
    for config in TRAIN_CONFIGS:
        for precision, r in (b.get(f"train-{config}") or {}).items():
            if isinstance(r, dict) and r.get("achieved_gflops") and peak.get(precision):
                derived["achieved_over_peak"][f"{config}/{precision}"] = (
                    r["achieved_gflops"] / peak[precision]
                )
    consumption = {}
    for config in ("R8", "R8-issue"):
        for precision, r in (b.get(f"train-{config}") or {}).items():
            if isinstance(r, dict) and r.get("samples_per_s"):
                consumption[f"{config}/{precision}"] = r["samples_per_s"]
    derived["training_consumes_samples_per_s"] = consumption
    loader = _get(b, "data", "loader") or {}
    ratios = {}
    for key, r in consumption.items():
        for lname, lr in loader.items():
            if isinstance(lr, dict) and lr.get("samples_per_s"):
                ratios[f"{lname} / {key}"] = lr["samples_per_s"] / r
    derived["loader_over_consumption"] = ratios
    checks: dict[str, Any] = {}
    reference = results.get("reference") or {}
    if not results.get("quick"):
        p1 = _get(b, "train-P1", "bf16")
        if isinstance(p1, dict) and "s_per_iter" in p1:
            checks["P1 bf16 peak RSS <= 6 GiB"] = (
                p1["peak_rss_mb"] / 1024 <= TARGETS["P1_peak_rss_gib"]
            )
        ref = _get(b, "train-P1-ref", "bf16")
        if isinstance(ref, dict) and "s_per_iter" in ref and reference.get("P1_ref_s_per_iter"):
            checks[
                f"P1-ref bf16 speed-up over the reference ({reference.get('source') or 'source not given'})"
            ] = round(reference["P1_ref_s_per_iter"] / ref["s_per_iter"], 2)
        for key, target in (
            ("P1/bf16", "ratio_bf16_P1"),
            ("P1-ref/bf16", "ratio_bf16_P1"),
            ("R8/bf16", "ratio_bf16_R8"),
            ("R8-issue/bf16", "ratio_bf16_R8"),
        ):
            if key in derived["achieved_over_peak"]:
                checks[f"{key} achieved/peak >= {TARGETS[target]}"] = (
                    derived["achieved_over_peak"][key] >= TARGETS[target]
                )
        for key, ratio in ratios.items():
            if "default" in key:
                checks[f"loader {key} >= 5x"] = ratio >= TARGETS["loader_over_consumption"]
        mem = _get(b, "data", "prepare_memory")
        if isinstance(mem, dict) and "ratio_10x_to_1x" in mem:
            checks["prepare peak RSS 10x/1x <= 1.2"] = (
                mem["ratio_10x_to_1x"] <= TARGETS["prepare_memory_ratio"]
            )
    derived["checks"] = checks
    return derived


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def markdown(results: dict[str, Any]) -> str:
    b, d, m = results["benchmarks"], results.get("derived", {}), results["machine"]
    lines = [
        "# geogan benchmark results",
        "",
        f"Command: `{results['command']}`{' (QUICK: toy sizes, not representative)' if results['quick'] else ''}",
        "",
        f"Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs, torch {m['torch']} "
        f"({m['torch_threads']} threads, {m['cpu_capability']}, AVX-512 BF16: {_fmt(m['avx512_bf16'])}); "
        f"load average at start {m['load_average_at_start']}; {m['time']}; total {results.get('total_s')} s; "
        f"allocator: {results.get('allocator', 'default')}.",
        "",
    ]
    roof = b.get("roofline")
    if isinstance(roof, dict) and "rows" in roof:
        lines += [
            "## Roofline: conv throughput",
            "",
            "| precision | pass | shape | GFLOP/s (best) |",
            "|---|---|---|---|",
        ]
        for r in roof["rows"]:
            lines.append(f"| {r['precision']} | {r['pass']} | {r['shape']} | {r['gflops']:.1f} |")
        lines.append("")
    elif roof:
        lines += ["## Roofline", "", f"error: {roof.get('error')}", ""]
    train_rows = []
    for config in TRAIN_CONFIGS:
        for precision, r in (b.get(f"train-{config}") or {}).items():
            if "error" in r:
                train_rows.append(
                    f"| {config} | {precision} | error: {r['error'][:120]} | | | | | | | |"
                )
                continue
            ratio = d.get("achieved_over_peak", {}).get(f"{config}/{precision}")
            params = r.get("parameters") or {}
            train_rows.append(
                f"| {config} | {precision} | {r['s_per_iter']:.3g} | "
                f"{_fmt((r.get('flops_per_iter') or 0) / 1e12)} | "
                f"{_fmt(r.get('achieved_gflops'))} | {_fmt(ratio)} | {r['samples_per_s']:.3g} | "
                f"{r['peak_rss_mb'] / 1024:.2f} | "
                f"{_fmt(params.get('generator', 0) / 1e6)} / {_fmt(params.get('critic', 0) / 1e6)} | "
                f"{_fmt(r.get('generator_step_samples'))} |"
            )
    if train_rows:
        lines += [
            "## Training iteration (critic steps + generator step)",
            "",
            "s/iteration: median of the timed iterations after warm-up; samples/s = batch x (critic steps + 1) / s;"
            " peak RSS of a fresh process per row; TFLOP per iteration by FlopCounterMode; ratio = achieved / roofline peak"
            " of the same precision.",
            "",
            "| config | precision | s/iter | TFLOP/iter | achieved GFLOP/s | achieved/peak | samples/s |"
            " peak RSS (GiB) | params G / D (M) | generator-step samples |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *train_rows,
            "",
        ]
        specs = {c: (b.get(f"train-{c}") or {}) for c in TRAIN_CONFIGS}
        for c, per in specs.items():
            for r in per.values():
                if isinstance(r, dict) and "spec" in r:
                    lines.append(
                        f"- **{c}** ({r['spec'].get('source')}): {r['spec'].get('description')}"
                    )
                    break
        lines.append("")
    gen = b.get("generation")
    if gen:
        lines += [
            "## Generation (512x512 at x8, tiled)",
            "",
            "| precision | members | tile (low-res) | overlap | s | members/s |",
            "|---|---|---|---|---|---|",
        ]
        for p, r in gen.items():
            if "error" in r:
                lines.append(f"| {p} | error: {r['error'][:120]} | | | | |")
            else:
                lines.append(
                    f"| {p} | {r['members']} | {r['tile_lowres']} | {r['overlap_lowres']} | {r['seconds']:.3g} | {r['members_per_s']:.3g} |"
                )
        lines.append("")
    data = b.get("data")
    if data:
        lines += [
            "## Data pipeline",
            "",
            "| loader | workers | prefetch | samples/s |",
            "|---|---|---|---|",
        ]
        for name, r in (data.get("loader") or {}).items():
            if "error" in r:
                lines.append(f"| {name} | error: {r['error'][:120]} | | |")
            else:
                lines.append(
                    f"| {name} | {r['num_workers']} | {r['prefetch_factor']} | {r['samples_per_s']:.4g} |"
                )
        lines.append("")
        cons = d.get("training_consumes_samples_per_s") or {}
        if cons:
            lines.append(
                "Training consumes (batch x (critic steps + 1) / s per iteration): "
                + ", ".join(f"{k} {v:.3g} samples/s" for k, v in cons.items())
                + "."
            )
            lines.append("")
        mem = data.get("prepare_memory") or {}
        if mem:
            lines += [
                "| prepare (statistics + candidates) | times | peak RSS (MiB) | s |",
                "|---|---|---|---|",
            ]
            for label in ("1x", "10x"):
                r = mem.get(label) or {}
                lines.append(
                    f"| {label} | {r.get('times', '-')} | {_fmt(r.get('peak_rss_mb'))} | {_fmt(r.get('seconds'))} |"
                )
            lines.append(f"\n10x / 1x peak RSS: {_fmt(mem.get('ratio_10x_to_1x'))}")
            lines.append("")
    checks = d.get("checks") or {}
    if checks:
        lines += ["## Targets (issue 5)", "", "| check | result |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in checks.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", required=True, help="folder for results.json and results.md")
    ap.add_argument(
        "--quick", action="store_true", help="toy sizes: checks the code, not the machine"
    )
    ap.add_argument(
        "--only",
        action="append",
        help=f"benchmarks to run (names or prefixes): {', '.join(BENCHMARKS)}",
    )
    ap.add_argument(
        "--precisions",
        default="fp32,bf16",
        help="training/generation precisions (default fp32,bf16)",
    )
    ap.add_argument(
        "--iters", type=int, default=None, help="timed training iterations (default 2; quick 1)"
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed training iterations (>= 1; the first counts FLOPs)",
    )
    ap.add_argument(
        "--no-channels-last", action="store_true", help="train in contiguous (NCHW) layout"
    )
    ap.add_argument(
        "--tmp", default=None, help="folder for the synthetic data files (default: system temp)"
    )
    ap.add_argument(
        "--allocator",
        choices=("default", "glibc-tuned", "jemalloc"),
        default="default",
        help="memory allocator of the benchmark processes: glibc as is (what users get), glibc "
        "with GEOGAN_MALLOC_TUNING=1, or jemalloc by LD_PRELOAD (see --jemalloc)",
    )
    ap.add_argument(
        "--jemalloc", default=None, help="path of libjemalloc.so.2 for --allocator jemalloc"
    )
    ap.add_argument(
        "--reference-s-per-iter",
        type=float,
        default=None,
        help="s/iteration of the reference code at P1, measured in the same session on the "
        "same machine (gives the P1-ref speed-up; nothing is built in)",
    )
    ap.add_argument(
        "--reference-source",
        default=None,
        help="where that reference time comes from (code, commit, machine, date), printed "
        "beside the ratio",
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    set_allocator(args.allocator, args.jemalloc)
    results = run(args)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(results) + "\n")
    print(markdown(results))
    errors = [k for k, v in results["benchmarks"].items() if isinstance(v, dict) and "error" in v]
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
