"""Shared helpers of the geogan benchmarks: timing, fresh-subprocess runs, peak memory, machine facts.

Every benchmark function returns a JSON-able dict. Anything whose peak memory is
reported runs in a fresh Python process (:func:`run_isolated`), so one
configuration's allocations cannot raise another's ``ru_maxrss``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULT_PREFIX = "@@BENCH_RESULT@@ "


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def current_rss_mb() -> float:
    """Resident set size now, in MiB (Linux /proc; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return summarise(times)


def summarise(times: list[float]) -> dict[str, float]:
    """Median (the headline), min, max and all samples of a list of durations."""
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "samples_s": [round(t, 6) for t in times],
    }


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "load_average_at_start": load,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_isolated(task: str, args: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run ``worker.py task`` with JSON ``args`` in a fresh interpreter; its result dict.

    The worker prints one line ``@@BENCH_RESULT@@ {json}``; everything else it prints
    (progress, warnings) is passed through to stderr. A failing worker gives
    ``{"error": ...}`` rather than an exception, so one broken benchmark does not
    lose the others' results.
    """
    cmd = [sys.executable, str(BENCH_DIR / "worker.py"), task, json.dumps(args)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(BENCH_DIR), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO_ROOT)
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
        else:
            print(line, file=sys.stderr)
    if proc.stderr:
        sys.stderr.write(proc.stderr[-4000:])
    if proc.returncode != 0 or result is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"error": f"worker {task} exited with {proc.returncode}: " + " | ".join(tail)}
    return result


def emit(result: dict[str, Any]) -> None:
    """Worker side of :func:`run_isolated`: print the result line (peak RSS added)."""
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# ------------------------------------------------------------- resumable skill benchmarks
def prepare_out(out: Path, *, resume: bool, overwrite: bool) -> Path:
    """The output folder of a resumable benchmark: refused if it exists (one-line error),
    kept with ``resume``, emptied with ``overwrite``."""
    from geogan.core.errors import OutputExistsError

    out = Path(out)
    if out.exists() and not (resume or overwrite):
        raise OutputExistsError(
            f"{out} exists; continue it with --resume or replace it with --overwrite"
        )
    if out.exists() and overwrite and not resume:
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def stage_done(folder: Path, stage: str) -> dict[str, Any] | None:
    """What a finished stage recorded (``<stage>.done.json``), or None if it has not finished."""
    marker = Path(folder) / f"{stage}.done.json"
    return json.loads(marker.read_text()) if marker.is_file() else None


def mark_stage(folder: Path, stage: str, info: dict[str, Any]) -> None:
    """Record a finished stage atomically (``--resume`` then skips it)."""
    from geogan.core.atomic import atomic_write_text

    atomic_write_text(Path(folder) / f"{stage}.done.json", json.dumps(info, indent=2, default=str))


def run_reporting_errors(run: Callable[[Any], dict[str, Any]], args: Any) -> dict[str, Any] | None:
    """``run(args)``, or None after printing a user-fixable error (GeoganError) in one line;
    the script then exits 2."""
    from geogan.core.errors import GeoganError

    try:
        return run(args)
    except GeoganError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def profile_ops(fn: Callable[[], Any], steps: int, top: int = 15) -> list[dict[str, Any]]:
    """torch.profiler's ops by self CPU time over ``steps`` calls of ``fn`` (warm it up
    first): per op, seconds per call of ``fn``, share of the total and calls per ``fn``.
    Shares are meaningful on a loaded machine too; absolute seconds are not."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            fn()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [
        {
            "op": e.key,
            "self_cpu_s_per_step": e.self_cpu_time_total / 1e6 / steps,
            "share": e.self_cpu_time_total / total,
            "calls_per_step": e.count / steps,
        }
        for e in events[:top]
    ]


def profile_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`profile_ops` as a fixed-width table."""
    lines = [f"{'op':40s} {'s/step':>8s} {'share':>6s} {'calls':>6s}"]
    for r in rows:
        lines.append(
            f"{r['op'][:40]:40s} {r['self_cpu_s_per_step']:8.3f} {r['share']:6.1%} "
            f"{r['calls_per_step']:6.0f}"
        )
    return "\n".join(lines)
