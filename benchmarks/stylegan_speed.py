"""Recipe 5 speed: StyleGAN2 training iteration, inference and inversion, geogan against
rosinality/stylegan2-pytorch's CPU path at equal work.

Configurations (the issue's): ``64`` = 64x64, channel multiplier 2, batch 4; ``256`` =
256x256, channel multiplier 2, batch 4; both latent 512, 8 mapping layers, style mixing
0.9, R1 (gamma 10) every 16 steps, path length (weight 2) every 4 steps on batch // 2,
EMA after the generator step. Both implementations build the same architecture (the
parameter counts and forward FLOPs are printed side by side) and run the same passes:

- one amortised iteration = D step + G step + EMA + (R1 step) / 16 + (path-length step) / 4,
  from the median times of the three kinds of iteration (steps 1, 4 and 16 of the schedule:
  ``t(4) - t(1)`` is the path-length step, ``t(16) - t(4)`` the R1 step);
- inference: images/s of the EMA generator at batch 4 (no gradients);
- inversion (geogan): members per minute at 1000 steps (20 timed steps extrapolated), W+.

geogan runs through the recipe's real phases and ``Trainer._train_step`` (optimizer
steps, finiteness checks, EMA); the reference runs its own ``Generator``/``Discriminator``
(``model.py`` of a checkout given with ``--reference-dir``; its CUDA-extension loader is
stubbed, so its CPU fallbacks run, as on a machine without CUDA) in a loop that repeats
``train.py``'s sequence of passes (no torchvision needed). Every measurement runs in a
fresh process (peak RSS = that process's ``ru_maxrss``), with ``--threads`` threads.

    python benchmarks/stylegan_speed.py --reference-dir /path/to/stylegan2-pytorch   # ~25 min
    python benchmarks/stylegan_speed.py --configs 64 --precisions fp32 bf16
    python benchmarks/stylegan_speed.py --quick                                        # ~1 min

Writes ``--out`` (default ``benchmarks/results/stylegan_speed.json``) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import flops  # noqa: E402
from common import machine_info, peak_rss_mb  # noqa: E402

RESULT = "@@STYLEGAN_SPEED@@ "

#: the issue's measurements of the reference on the issue's machine (2 threads)
ISSUE_REFERENCE = {
    "64": {"s_per_iter": 12.3, "images_per_s": 3.35, "peak_rss_gib": 5.6},
    "256": {"s_per_iter": 71.1, "images_per_s": 1.04, "peak_rss_gib": 8.6},
}

CONFIGS = {
    "64": {"size": 64, "channel_multiplier": 2, "batch": 4, "latent": 512, "n_mlp": 8},
    "256": {"size": 256, "channel_multiplier": 2, "batch": 4, "latent": 512, "n_mlp": 8},
    "quick": {
        "size": 16,
        "channel_multiplier": 1,
        "batch": 4,
        "latent": 32,
        "n_mlp": 2,
        "channel_max": 32,
    },
}
SCHEDULE = {
    "r1": 10.0,
    "d_reg_every": 16,
    "path_regularize": 2.0,
    "g_reg_every": 4,
    "path_batch_shrink": 2,
    "mixing": 0.9,
    "lr": 0.002,
}


# --------------------------------------------------------------------------- geogan


def _geogan_trainer(spec: dict, precision: str, channels_last: bool, tmp: str):
    import torch

    from geogan.config.schema import OptimConfig
    from geogan.models.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
    from geogan.recipes.stylegan.phases import (
        DiscriminatorPhase,
        GeneratorPhase,
        PathLengthPhase,
        R1Phase,
    )
    from geogan.training.optim import build_optimizers
    from geogan.training.phases import TrainingSetup
    from geogan.training.trainer import Trainer

    torch.manual_seed(0)
    common = {
        "dims": 2,
        "size": spec["size"],
        "base_size": 4,
        "channel_multiplier": spec["channel_multiplier"],
        "channel_max": spec.get("channel_max", 512),
    }
    g = StyleGAN2Generator(
        **common, out_channels=3, latent_dim=spec["latent"], n_mlp=spec["n_mlp"], use_noise=True
    )
    d = StyleGAN2Discriminator(**common, in_channels=3)
    models = {"generator": g, "discriminator": d}
    s = SCHEDULE
    cg, cd = s["g_reg_every"] / (s["g_reg_every"] + 1), s["d_reg_every"] / (s["d_reg_every"] + 1)
    optim = {
        "generator": OptimConfig(lr=s["lr"] * cg, betas=(0.0, 0.99**cg)),
        "discriminator": OptimConfig(lr=s["lr"] * cd, betas=(0.0, 0.99**cd)),
    }
    opts = build_optimizers(
        models, {"generator": ["generator"], "discriminator": ["discriminator"]}, optim
    )

    class Fields(torch.utils.data.Dataset):
        def __len__(self):
            return 2**62

        def __getitem__(self, i):
            gen = torch.Generator().manual_seed(int(i) % 64)
            return {"fields": torch.randn((3, spec["size"], spec["size"]), generator=gen)}

    phases = [
        DiscriminatorPhase(s["mixing"]),
        R1Phase(s["r1"], s["d_reg_every"]),
        GeneratorPhase(s["mixing"]),
        PathLengthPhase(
            s["path_regularize"], s["g_reg_every"], s["path_batch_shrink"], s["mixing"], 0.01
        ),
    ]
    for p, every in zip(phases, (1, s["d_reg_every"], 1, s["g_reg_every"])):
        if every > 1:
            p.every = every
    setup = TrainingSetup(
        models=models, optimizers=opts, phases=phases, dataset=Fields(), ema_model="generator"
    )
    return Trainer(
        setup,
        run_dir=tmp,
        device=torch.device("cpu"),
        steps=10**9,
        batch_size=spec["batch"],
        precision=precision,
        channels_last=channels_last,
        tensorboard=False,
        progress=False,
        ema_decay=0.5 ** (32 / 10000),
    )


def _geogan_step(trainer, step: int) -> None:
    trainer.step = step
    trainer._train_step()


# --------------------------------------------------------------------------- reference


def _import_reference(ref_dir: str):
    """rosinality's ``model`` module with its CUDA-extension builds stubbed out (as on a
    machine without CUDA/ninja: their CPU fallbacks run)."""
    import torch.utils.cpp_extension as cpp

    cpp.load = lambda *a, **k: None  # the op/ modules call load() at import time
    sys.path.insert(0, str(ref_dir))
    import model  # type: ignore[import-not-found]

    return model


class _Reference:
    """train.py's passes on rosinality's models (our loop, their networks and losses' maths)."""

    def __init__(self, spec: dict, ref_dir: str) -> None:
        import copy

        import torch

        M = _import_reference(ref_dir)
        torch.manual_seed(0)
        size, cm = spec["size"], spec["channel_multiplier"]
        self.g = M.Generator(size, spec["latent"], spec["n_mlp"], channel_multiplier=cm)
        self.d = M.Discriminator(size, channel_multiplier=cm)
        self.g_ema = copy.deepcopy(self.g).eval()
        s = SCHEDULE
        cg = s["g_reg_every"] / (s["g_reg_every"] + 1)
        cd = s["d_reg_every"] / (s["d_reg_every"] + 1)
        self.g_optim = torch.optim.Adam(
            self.g.parameters(), lr=s["lr"] * cg, betas=(0**cg, 0.99**cg)
        )
        self.d_optim = torch.optim.Adam(
            self.d.parameters(), lr=s["lr"] * cd, betas=(0**cd, 0.99**cd)
        )
        self.spec = spec
        self.mean_path_length = 0.0
        self.batches = [torch.randn(spec["batch"], 3, size, size) for _ in range(4)]
        self.rng = torch.Generator().manual_seed(1)

    def _noise(self, batch):
        import torch

        s = SCHEDULE
        lat = self.spec["latent"]
        if float(torch.rand((), generator=self.rng)) < s["mixing"]:
            return list(torch.randn(2, batch, lat, generator=self.rng).unbind(0))
        return [torch.randn(batch, lat, generator=self.rng)]

    @staticmethod
    def _requires_grad(model, flag):
        for p in model.parameters():
            p.requires_grad = flag

    def step(self, i: int) -> None:
        import torch
        import torch.nn.functional as F

        s = SCHEDULE
        real = self.batches[i % 4]
        b = real.shape[0]
        self._requires_grad(self.g, False)
        self._requires_grad(self.d, True)
        fake, _ = self.g(self._noise(b))
        loss = F.softplus(self.d(fake)).mean() + F.softplus(-self.d(real)).mean()
        self.d.zero_grad()
        loss.backward()
        self.d_optim.step()
        if i % s["d_reg_every"] == 0:
            real = real.clone().requires_grad_(True)
            pred = self.d(real)
            (grad,) = torch.autograd.grad(pred.sum(), real, create_graph=True)
            r1 = grad.pow(2).reshape(b, -1).sum(1).mean()
            self.d.zero_grad()
            (s["r1"] / 2 * r1 * s["d_reg_every"] + 0 * pred[0]).backward()
            self.d_optim.step()
        self._requires_grad(self.g, True)
        self._requires_grad(self.d, False)
        fake, _ = self.g(self._noise(b))
        loss = F.softplus(-self.d(fake)).mean()
        self.g.zero_grad()
        loss.backward()
        self.g_optim.step()
        if i % s["g_reg_every"] == 0:
            n = max(1, b // s["path_batch_shrink"])
            fake, latents = self.g(self._noise(n), return_latents=True)
            y = torch.randn(fake.shape, generator=self.rng) / math.sqrt(
                fake.shape[2] * fake.shape[3]
            )
            (grad,) = torch.autograd.grad((fake * y).sum(), latents, create_graph=True)
            lengths = torch.sqrt(grad.pow(2).sum(2).mean(1))
            mean = self.mean_path_length + 0.01 * (lengths.mean() - self.mean_path_length)
            penalty = (lengths - mean).pow(2).mean()
            self.mean_path_length = mean.detach()
            self.g.zero_grad()
            (s["path_regularize"] * s["g_reg_every"] * penalty + 0 * fake[0, 0, 0, 0]).backward()
            self.g_optim.step()
        decay = 0.5 ** (32 / 10000)
        ema, src = dict(self.g_ema.named_parameters()), dict(self.g.named_parameters())
        for k in ema:
            ema[k].data.mul_(decay).add_(src[k].data, alpha=1 - decay)


# --------------------------------------------------------------------------- tasks


CPU_TIMES: dict[int, float] = {}


def _median_times(fn, steps: list[int], repeats: int) -> dict[int, float]:
    """Median wall seconds per kind of iteration (CPU seconds of this process go to
    ``CPU_TIMES``: with one thread they are robust to other jobs on a shared machine)."""
    out = {}
    for s in steps:
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            fn(s)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        out[s] = statistics.median(times)
        CPU_TIMES[s] = statistics.median(cpu)
    return out


def _amortised(t: dict[int, float]) -> dict[str, float]:
    """Iteration kinds 1 (D + G), 4 (+ path length), 16 (+ R1) -> amortised seconds."""
    s = SCHEDULE
    pl = max(t[4] - t[1], 0.0)
    r1 = max(t[16] - t[4], 0.0)
    return {
        "s_dg": t[1],
        "s_path_length_step": pl,
        "s_r1_step": r1,
        "s_per_iter": t[1] + pl / s["g_reg_every"] + r1 / s["d_reg_every"],
    }


def count_flops(fn) -> float:
    """FLOPs of ``fn()`` (``benchmarks/flops.py``: torch's formulas, grouped weight
    gradients corrected; rosinality's modulated convolutions are grouped)."""
    return flops.count_flops(fn)


def _flops(fn, steps=(1, 4, 16)) -> dict[str, float]:
    out = {s: count_flops(lambda s=s: fn(s)) for s in steps}
    a = _amortised(out)
    return {"flops_per_iter": a["s_per_iter"], "flops_by_kind": {str(k): v for k, v in out.items()}}


def task_train(
    impl: str,
    config: str,
    precision: str,
    repeats: int,
    channels_last: bool,
    reference_dir: str | None,
    flops: bool,
) -> dict[str, Any]:
    import torch

    spec = CONFIGS[config]
    with tempfile.TemporaryDirectory(prefix="geogan-sg-") as tmp:
        if impl == "geogan":
            tr = _geogan_trainer(spec, precision, channels_last, tmp)

            def fn(s):
                _geogan_step(tr, s)

            g, d = tr.models["generator"], tr.models["discriminator"]
        else:
            if precision != "fp32":
                raise SystemExit("the reference runs in fp32 only")
            ref = _Reference(spec, reference_dir)
            fn = ref.step
            g, d = ref.g, ref.d
        params = {
            "generator": sum(p.numel() for p in g.parameters()),
            "discriminator": sum(p.numel() for p in d.parameters()),
        }
        fn(1)  # warm-up (allocator, oneDNN primitives)
        fl = _flops(fn) if flops else {}
        times = _median_times(fn, [1, 4, 16], repeats)
        finite = all(torch.isfinite(p).all() for p in g.parameters())
    a = _amortised(times)
    out = {
        "impl": impl,
        "config": config,
        "precision": precision,
        "channels_last": channels_last,
        "threads": torch.get_num_threads(),
        "params": params,
        **a,
        **fl,
        "times_by_kind": {str(k): v for k, v in times.items()},
        "weights_finite": bool(finite),
        "cpu_s_per_iter": _amortised(dict(CPU_TIMES))["s_per_iter"],
        "load_average": os.getloadavg(),
    }
    if fl:
        out["achieved_gflops"] = fl["flops_per_iter"] / a["s_per_iter"] / 1e9
    return out


def task_inference(
    impl: str,
    config: str,
    precision: str,
    repeats: int,
    channels_last: bool,
    reference_dir: str | None,
) -> dict[str, Any]:
    import torch

    spec = CONFIGS[config]
    b = spec["batch"]
    torch.manual_seed(0)
    if impl == "geogan":
        from geogan.inference.ensemble import autocast_context
        from geogan.models.stylegan2 import StyleGAN2Generator

        g = StyleGAN2Generator(
            dims=2,
            size=spec["size"],
            base_size=4,
            out_channels=3,
            latent_dim=spec["latent"],
            n_mlp=spec["n_mlp"],
            channel_multiplier=spec["channel_multiplier"],
            channel_max=spec.get("channel_max", 512),
        ).eval()
        if channels_last:
            g = g.to(memory_format=torch.channels_last)
        ctx = autocast_context(torch.device("cpu"), precision)

        def fn():
            with torch.no_grad(), ctx:
                return g(torch.randn(b, spec["latent"]))
    else:
        M = _import_reference(reference_dir)
        g = M.Generator(
            spec["size"],
            spec["latent"],
            spec["n_mlp"],
            channel_multiplier=spec["channel_multiplier"],
        ).eval()

        def fn():
            with torch.no_grad():
                return g([torch.randn(b, spec["latent"])])[0]

    fn()
    flops = count_flops(fn)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    return {
        "impl": impl,
        "config": config,
        "precision": precision,
        "batch": b,
        "s_per_batch": s,
        "images_per_s": b / s,
        "flops_per_image": flops / b,
        "params": sum(p.numel() for p in g.parameters()),
    }


def task_inversion(config: str, precision: str, timed_steps: int, batch: int) -> dict[str, Any]:
    import torch

    from geogan.models.stylegan2 import StyleGAN2Generator
    from geogan.recipes.stylegan.config import InvertConfig
    from geogan.recipes.stylegan.inversion import invert_fields

    spec = CONFIGS[config]
    torch.manual_seed(0)
    g = StyleGAN2Generator(
        dims=2,
        size=spec["size"],
        base_size=4,
        out_channels=3,
        latent_dim=spec["latent"],
        n_mlp=spec["n_mlp"],
        channel_multiplier=spec["channel_multiplier"],
        channel_max=spec.get("channel_max", 512),
    ).eval()
    targets = torch.randn(batch, 3, spec["size"], spec["size"])
    cfg = InvertConfig(
        steps=timed_steps + 2, save_steps=[timed_steps + 2], batch_size=batch, mean_latents=1000
    )
    marks = []

    def progress(_n):
        marks.append(time.perf_counter())

    invert_fields(g, targets, cfg, progress=progress)
    per_step = (marks[-1] - marks[1]) / (len(marks) - 2)  # the first step is warm-up
    return {
        "config": config,
        "batch": batch,
        "s_per_step": per_step,
        "members_per_minute_at_1000_steps": batch / (per_step * 1000) * 60,
    }


# --------------------------------------------------------------------------- driver


def _run_task(args: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--task", *args]
    env = dict(os.environ)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s", "args": args}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-4:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail), "args": args}


def _task_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind")
    p.add_argument("--impl", default="geogan")
    p.add_argument("--config", default="64")
    p.add_argument("--precision", default="fp32")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--reference-dir")
    p.add_argument("--no-flops", action="store_true")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    if a.kind == "train":
        r = task_train(
            a.impl,
            a.config,
            a.precision,
            a.repeats,
            a.channels_last,
            a.reference_dir,
            not a.no_flops,
        )
    elif a.kind == "inference":
        r = task_inference(
            a.impl, a.config, a.precision, a.repeats, a.channels_last, a.reference_dir
        )
    else:
        r = task_inversion(a.config, a.precision, a.steps, a.batch)
    r["peak_rss_mb"] = round(peak_rss_mb(), 1)
    print(RESULT + json.dumps(r), flush=True)


def run(
    configs: list[str],
    precisions: list[str],
    reference_dir: str | None,
    repeats: int,
    threads: int,
    channels_last: bool,
    timeout: float,
    inversion_steps: int = 20,
    log=print,
) -> dict[str, Any]:
    """Every measurement in a fresh process; returns the results (``--out`` holds them)."""
    results: dict[str, Any] = {"machine": machine_info(), "threads": threads, "runs": []}
    common = ["--threads", str(threads), "--repeats", str(repeats)]
    if channels_last:
        common.append("--channels-last")
    for config in configs:
        for prec in precisions:
            for kind in ("train", "inference"):
                r = _run_task(
                    [kind, "--impl", "geogan", "--config", config, "--precision", prec, *common],
                    timeout,
                )
                log(json.dumps(r))
                results["runs"].append(r)
        if reference_dir:
            for kind in ("train", "inference"):
                args = [
                    kind,
                    "--impl",
                    "reference",
                    "--config",
                    config,
                    "--reference-dir",
                    reference_dir,
                    *common,
                ]
                if channels_last:
                    args.remove("--channels-last")
                r = _run_task(args, timeout)
                log(json.dumps(r))
                results["runs"].append(r)
        r = _run_task(
            [
                "inversion",
                "--config",
                config,
                "--threads",
                str(threads),
                "--steps",
                str(inversion_steps),
                "--batch",
                "8",
            ],
            timeout,
        )
        log(json.dumps(r))
        results["runs"].append(r)
    results["table"] = table(results)
    return results


def table(results: dict[str, Any]) -> str:
    rows = [
        "| config | impl | precision | s/iter (amortised) | GFLOP/iter | GFLOP/s | images/s "
        "| peak RSS GiB (train) | params G / D |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    runs = [r for r in results["runs"] if "error" not in r]
    for r in runs:
        if "s_per_iter" not in r:
            continue
        inf = next(
            (
                x
                for x in runs
                if x.get("images_per_s")
                and x["impl"] == r["impl"]
                and x["config"] == r["config"]
                and x["precision"] == r["precision"]
            ),
            {},
        )
        rows.append(
            f"| {r['config']} | {r['impl']} | {r['precision']} | {r['s_per_iter']:.3f} | "
            f"{r.get('flops_per_iter', float('nan')) / 1e9:.1f} | "
            f"{r.get('achieved_gflops', float('nan')):.1f} | {inf.get('images_per_s', float('nan')):.2f} | "
            f"{r['peak_rss_mb'] / 1024:.2f} | {r['params']['generator'] / 1e6:.2f}M / "
            f"{r['params']['discriminator'] / 1e6:.2f}M |"
        )
    for r in runs:
        if "members_per_minute_at_1000_steps" in r:
            rows.append(
                f"\ninversion {r['config']}: {r['members_per_minute_at_1000_steps']:.2f} "
                f"members/min at 1000 steps (batch {r['batch']}, {r['s_per_step']:.3f} s/step)"
            )
    for cfg, ref in ISSUE_REFERENCE.items():
        rows.append(
            f"\nissue's reference numbers at {cfg}: {ref['s_per_iter']} s/iter, "
            f"{ref['images_per_s']} images/s, {ref['peak_rss_gib']} GiB"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--task":
        _task_main(argv[1:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["64", "256"], choices=["64", "256", "quick"])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--reference-dir", help="checkout of rosinality/stylegan2-pytorch")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--quick", action="store_true", help="toy sizes, 1 repeat (smoke test)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "stylegan_speed.json")
    a = p.parse_args(argv)
    configs, repeats, precisions = a.configs, a.repeats, a.precisions
    steps = 20
    if a.quick:
        configs, repeats, precisions, steps = ["quick"], 1, ["fp32"], 3
    results = run(
        configs,
        precisions,
        a.reference_dir,
        repeats,
        a.threads,
        not a.no_channels_last,
        a.timeout,
        steps,
    )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(a.out)
    print(results["table"])


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
