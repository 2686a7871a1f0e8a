"""Benchmark 1: one training iteration of recipe 1 (critic steps with gradient penalty, then a
generator step with the ensemble content loss), through the real phases and the real
``Trainer._train_step`` (optimizer steps, finiteness checks, EMA update, logging values).

Batches are synthetic random tensors, prepared before timing and already in the
Trainer's memory format, so the data pipeline (benchmark 3) is not part of this
number. Warm-up iterations are excluded; FLOPs are counted once, during the
first warm-up iteration, with ``torch.utils.flop_counter.FlopCounterMode``.

Configurations:

- ``P1``: the paper configuration of Harris et al. (2022): input 20x20 with 9
  forecast channels, 2 constant fields at 200x200, 4 noise channels, x10
  (stages [5, 2]), forceconv, filters_gen 128, filters_disc 512, batch 2,
  ensemble-mean MSE content loss over 8 members, 5 critic steps.
- ``P1-ref``: P1 at equal work with the reference code (``dsrnngan``,
  ``ljharris23/public-downscaling-cgan``, ``gan.py`` + ``models.py``): the critic exactly as
  it builds it (``DownscalingCritic(style="dsrnngan")``: constants to low resolution by
  ReLU patchify convolutions, 2 joint residual blocks, dense 64; 65.7M parameters), scored
  on the real, generated and interpolated images in three full passes (no shared
  low-resolution stream), and the generator step drawing 8 ensemble members plus a
  separate adversarial sample per condition (9 x batch 2 = 18 generator samples, where P1
  draws 16).
- ``R8``: the radar preset: x8 (stages [2, 2, 2]) of radar rain rate with
  autocoarsen (1 input channel, no constants), patch 128 (input 16x16),
  forceconv, filters 64/64, batch 8, CRPS over 8 members, 5 critic steps. When
  ``configs/downscaling/radar_knmi_x8.yaml`` exists its settings are used
  (and the result says so).

``quick=True`` shrinks both to toy sizes (for smoke tests).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import REPO_ROOT, peak_rss_mb, summarise

R8_CONFIG_CANDIDATES = (
    REPO_ROOT / "src" / "geogan" / "recipes" / "downscaling" / "presets" / "radar_knmi_x8.yaml",
)

P1 = {
    "name": "P1",
    "description": "paper configuration (Harris et al. 2022): 20x20x9 -> 200x200, x10 [5,2], "
    "2 constants, forceconv, filters 128/512, batch 2, ensemble-mean MSE over 8 members",
    "in_channels": 9,
    "out_channels": 1,
    "constant_channels": 2,
    "noise_channels": 4,
    "low": 20,
    "factors": [5, 2],
    "arch": "forceconv",
    "filters_gen": 128,
    "filters_disc": 512,
    "batch_size": 2,
    "members": 8,
    "content": "ensemble_mse",
    "critic_steps": 5,
    "gp_weight": 10.0,
    "padding_mode": "reflect",
    "output_activation": "softplus",
    "residual_input": False,
    "conserve_mean": "none",
    "mask": "ones",
    "source": "built in",
}

P1_REF = {
    **P1,
    "name": "P1-ref",
    "description": "P1 at equal work with dsrnngan: its critic (style dsrnngan, 65.7M "
    "parameters, 3 full critic passes per critic step) and its generator step (8 ensemble "
    "members + 1 separate adversarial sample, x batch 2 = 18 samples)",
    "critic_style": "dsrnngan",
    "share_low_features": False,
    "separate_adversarial": True,
    "source": "built in (ljharris23/public-downscaling-cgan dsrnngan/models.py, gan.py)",
}

R8 = {
    "name": "R8",
    "description": "radar x8 with the numbers of issue 5: 16x16x1 -> 128x128, x8 [2,2,2], autocoarsen "
    "(no constants), forceconv, filters 64/64, batch 8, 5 critic steps, CRPS over 8 members",
    "in_channels": 1,
    "out_channels": 1,
    "constant_channels": 0,
    "noise_channels": 4,
    "low": 16,
    "factors": [2, 2, 2],
    "arch": "forceconv",
    "filters_gen": 64,
    "filters_disc": 64,
    "batch_size": 8,
    "members": 8,
    "content": "crps",
    "critic_steps": 5,
    "gp_weight": 10.0,
    "padding_mode": "reflect",
    "output_activation": "softplus",
    "residual_input": False,
    "conserve_mean": "none",
    "mask": "disc",
    "source": "built in (the numbers of issue 5)",
}


def r8_from_yaml(path: Path) -> dict[str, Any]:
    """R8 with the model/training settings of the radar preset ``path``."""
    from geogan.recipes.config import load_run_config as load_config
    from geogan.recipes.downscaling.build import factorise

    cfg = load_config(path)
    d, m, t = cfg.data, cfg.model, cfg.train
    factors = list(m.upsampling_factors or factorise(d.factor))
    n_in = len(d.truth.variables) if d.autocoarsen else len(d.input.variables)
    n_const = len(d.constants.variables) if d.constants.path else 0
    return {
        **R8,
        "in_channels": n_in,
        "out_channels": len(d.truth.variables),
        "constant_channels": n_const,
        "noise_channels": m.noise_channels if t.mode == "gan" else 0,
        "low": d.patch_size // d.factor,
        "factors": factors,
        "arch": m.arch,
        "filters_gen": m.filters_gen,
        "filters_disc": m.filters_disc,
        "batch_size": t.batch_size,
        "members": t.content.members,
        "content": t.content.kind,
        "critic_steps": t.critic_steps,
        "gp_weight": t.gp_weight,
        "padding_mode": m.padding_mode,
        "output_activation": m.output_activation,
        "residual_input": m.residual_input,
        "conserve_mean": m.conserve_mean,
        "precision_in_preset": t.precision,
        "channels_last_in_preset": t.channels_last,
        "num_workers": d.num_workers,
        "prefetch_factor": d.prefetch_factor,
        "source": str(path.relative_to(REPO_ROOT)),
    }


TRAIN_CONFIGS = ("P1", "P1-ref", "R8", "R8-issue")


def get_config(name: str, quick: bool = False) -> dict[str, Any]:
    """A benchmark configuration (toy sizes with ``quick``).

    ``P1``; ``R8`` (the radar preset's settings when the preset file exists, else the
    issue's numbers); ``R8-issue`` (always the issue's numbers: filters 64/64, 5 critic
    steps, 8 members).
    """
    if name == "P1":
        spec = dict(P1)
    elif name == "P1-ref":
        spec = dict(P1_REF)
    elif name == "R8-issue":
        spec = {**R8, "name": "R8-issue"}
    elif name == "R8":
        spec = dict(R8)
        for path in R8_CONFIG_CANDIDATES:
            if path.is_file():
                spec = r8_from_yaml(path)
                spec["description"] = (
                    f"radar preset {spec['source']}: {spec['low']}x{spec['low']}x{spec['in_channels']} -> "
                    f"x{math.prod(spec['factors'])} {spec['factors']}, {spec['constant_channels']} constants, "
                    f"{spec['arch']}, filters {spec['filters_gen']}/{spec['filters_disc']}, batch "
                    f"{spec['batch_size']}, {spec['critic_steps']} critic steps, {spec['content']} over "
                    f"{spec['members']} members"
                )
                break
    else:
        raise ValueError(f"unknown training configuration {name!r} ({', '.join(TRAIN_CONFIGS)})")
    if quick:
        spec.update(
            low=4,
            filters_gen=8,
            filters_disc=8 if name == "R8" else 16,
            batch_size=2,
            members=2,
            quick=True,
        )
    return spec


def _batches(spec: dict[str, Any], n: int, memory_format, seed: int = 0) -> list[dict]:
    """``n`` distinct synthetic batches shaped like dataset items of ``spec``."""
    g = torch.Generator().manual_seed(seed)
    b, low, f = spec["batch_size"], spec["low"], math.prod(spec["factors"])
    high = low * f
    out = []
    for _ in range(n):
        if spec.get("mask") == "disc":  # radar-like: valid inside a disc
            yy, xx = torch.meshgrid(torch.arange(high), torch.arange(high), indexing="ij")
            r = (yy - high / 2 + 0.5) ** 2 + (xx - high / 2 + 0.5) ** 2
            mask = (r <= (0.55 * high) ** 2).float().expand(b, 1, high, high).clone()
        else:
            mask = torch.ones(b, 1, high, high)
        target = torch.relu(torch.randn(b, spec["out_channels"], high, high, generator=g)) * mask
        batch = {
            "input": torch.randn(b, spec["in_channels"], low, low, generator=g),
            "target": target,
            "constants": torch.randn(b, spec["constant_channels"], high, high, generator=g),
            "mask": mask,
        }
        out.append({k: v.contiguous(memory_format=memory_format) for k, v in batch.items()})
    return out


def build_trainer(
    spec: dict[str, Any], precision: str, channels_last: bool, run_dir: str | Path, seed: int = 0
):
    """A real :class:`~geogan.training.trainer.Trainer` over recipe 1's models and phases,
    fed synthetic batches instead of a DataLoader."""
    from geogan.config.schema import OptimConfig
    from geogan.models.downscaling import DownscalingCritic, DownscalingGenerator
    from geogan.recipes.downscaling.phases import CriticPhase, GeneratorPhase
    from geogan.training.optim import build_optimizer
    from geogan.training.phases import TrainingSetup
    from geogan.training.trainer import Trainer

    torch.manual_seed(seed)
    common = {
        "dims": 2,
        "in_channels": spec["in_channels"],
        "constant_channels": spec["constant_channels"],
        "padding_mode": spec["padding_mode"],
        "arch": spec["arch"],
        "batch_norm": False,
    }
    g = DownscalingGenerator(
        **common,
        out_channels=spec["out_channels"],
        filters=spec["filters_gen"],
        noise_channels=spec["noise_channels"],
        upsampling_factors=spec["factors"],
        output_activation=spec["output_activation"],
        residual_input=spec.get("residual_input", False),
        conserve_mean=spec.get("conserve_mean", "none"),
    )
    d = DownscalingCritic(
        **common,
        out_channels=spec["out_channels"],
        filters=spec["filters_disc"],
        downsampling_factors=spec["factors"],
        style=spec.get("critic_style", "geogan"),
    )
    o = OptimConfig()
    setup = TrainingSetup(
        models={"generator": g, "critic": d},
        optimizers={
            "generator": build_optimizer({"generator": g}, o),
            "critic": build_optimizer({"critic": d}, o),
        },
        phases=[
            CriticPhase(
                repeats=spec["critic_steps"],
                mode="gan",
                adversarial="wgan",
                gp_weight=spec["gp_weight"],
                share_low_features=spec.get("share_low_features", True),
            ),
            GeneratorPhase(
                mode="gan",
                adversarial="wgan",
                content_kind=spec["content"],
                content_weight=1.0,
                members=spec["members"],
                kl_weight=0.0,
                separate_adversarial=spec.get("separate_adversarial", False),
            ),
        ],
        dataset=torch.utils.data.TensorDataset(torch.zeros(1)),  # never read: batches are synthetic
    )

    class SyntheticTrainer(Trainer):
        def _next_batch(self):  # the DataLoader is benchmarked separately
            batch = self._synthetic[self.batches_consumed % len(self._synthetic)]
            self.batches_consumed += 1
            return batch

    trainer = SyntheticTrainer(
        setup,
        run_dir=run_dir,
        steps=10**9,
        batch_size=spec["batch_size"],
        device=torch.device("cpu"),
        seed=seed,
        precision=precision,
        channels_last=channels_last,
        tensorboard=False,
        progress=False,
    )
    trainer._synthetic = _batches(spec, spec["critic_steps"] + 1, trainer.memory_format, seed)
    return trainer


def iteration(trainer) -> dict[str, float]:
    """One training step (all phases), as ``Trainer.fit`` runs it."""
    logs = trainer._train_step()
    trainer.step += 1
    return logs


class _GlobalOnly:
    """Stand-in for FlopCounterMode's ModuleTracker: every op counts towards "Global" only."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


def count_flops(trainer) -> tuple[int, dict[str, int]]:
    """FLOPs of one iteration (forward, backward and the penalty's double backward), by operator."""
    from torch.utils.flop_counter import FlopCounterMode

    fc = FlopCounterMode(display=False)
    # FlopCounterMode's per-module tracking hooks fail inside autograd.grad (the gradient
    # penalty); the global count needs none of them.
    fc.mod_tracker = _GlobalOnly()
    with fc:
        iteration(trainer)
    by_op = {str(k): int(v) for k, v in fc.get_flop_counts().get("Global", {}).items()}
    return int(fc.get_total_flops()), by_op


_CATEGORIES = (
    ("convolution (forward)", ("mkldnn_convolution", "_convolution", "convolution_overrideable")),
    ("convolution (backward)", ("convolution_backward",)),
    ("padding", ("reflection_pad", "replication_pad", "constant_pad", "pad")),
    ("activation", ("leaky_relu", "softplus", "relu")),
    ("dtype casts / copies", ("copy_", "_to_copy", "clone", "contiguous")),
    ("fill / zeros", ("fill_", "zero_", "zeros")),
    ("optimizer", ("_foreach", "adam", "lerp")),
    ("resampling", ("upsample", "avg_pool", "interpolate")),
    (
        "elementwise / reductions",
        (
            "add",
            "mul",
            "sub",
            "sum",
            "mean",
            "where",
            "sort",
            "abs",
            "norm",
            "pow",
            "square",
            "div",
            "cat",
            "lerp",
        ),
    ),
)


def summarise_profile(prof) -> dict[str, float]:
    """Share of self CPU time per operator category (aten ops only; sums to ~1)."""
    totals: dict[str, float] = {}
    all_time = 0.0
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::"):
            continue
        t = evt.self_cpu_time_total
        all_time += t
        op = evt.key[len("aten::") :]
        for cat, needles in _CATEGORIES:  # noqa: B007 (cat is used after the loop)
            if any(n in op for n in needles):
                break
        else:
            cat = "other"
        totals[cat] = totals.get(cat, 0.0) + t
    return {k: round(v / all_time, 4) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def _conv_flops(input_shape, weight_shape, stride, padding, dilation, groups) -> int | None:
    """FLOPs (2 per multiply-add) of one forward convolution from its argument shapes."""
    try:
        n, _, *spatial = (int(v) for v in input_shape)
        cout, cin_g, *kernel = (int(v) for v in weight_shape)
    except (TypeError, ValueError):
        return None
    dims = len(kernel)

    def per_axis(v, default):
        v = list(v) if isinstance(v, (list, tuple)) and v else [default] * dims
        return (v * dims)[:dims] if len(v) == 1 else v

    stride, padding, dilation = per_axis(stride, 1), per_axis(padding, 0), per_axis(dilation, 1)
    if min(stride) < 1:
        return None
    out = [
        (s + 2 * p - d * (k - 1) - 1) // st + 1
        for s, p, d, k, st in zip(spatial, padding, dilation, kernel, stride)
    ]
    return 2 * n * cout * math.prod(out) * cin_g * math.prod(kernel)


def conv_rates(prof, top: int = 25) -> dict[str, Any]:
    """Per convolution call signature (forward or backward, input and weight shapes): calls,
    CPU time (inclusive), FLOPs and GFLOP/s, sorted by time -- what separates the iteration
    from the roofline's conv peak -- and the time per convolution kernel (oneDNN or the slow
    fallback). Backward FLOPs are 2x the forward's (input and weight gradients; 1x when only
    one of them is needed, e.g. the first layer's)."""
    rows: dict[tuple, dict[str, Any]] = {}
    kernels: dict[str, float] = {}
    for evt in prof.events():
        if evt.name in _CONV_KERNELS:  # which implementation ran (oneDNN or the slow path)
            kernels[evt.name] = kernels.get(evt.name, 0.0) + evt.self_cpu_time_total / 1e3
    for evt in prof.events():
        name = evt.name
        if name not in ("aten::convolution", "aten::convolution_backward"):
            continue
        shapes = evt.input_shapes or []
        backward = name.endswith("backward")
        x_shape, w_shape = (shapes[1], shapes[2]) if backward else (shapes[0], shapes[1])
        args = list(getattr(evt, "concrete_inputs", []) or [])
        if backward:
            # (grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,
            #  output_padding, groups, output_mask)
            a = args + [None] * 11
            stride, padding, dilation, groups = a[4], a[5], a[6], a[9]
            mask = a[10] or [True, True, True]
            factor = int(bool(mask[0])) + int(bool(mask[1]))
        else:
            # (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
            a = args + [None] * 9
            stride, padding, dilation, groups = a[3], a[4], a[5], a[8]
            factor = 1
        flops = _conv_flops(x_shape, w_shape, stride, padding, dilation, groups or 1)
        key = (name.split("::")[1], tuple(x_shape), tuple(w_shape))
        row = rows.setdefault(
            key,
            {
                "op": key[0],
                "input": list(x_shape),
                "weight": list(w_shape),
                "calls": 0,
                "ms": 0.0,
                "gflop": 0.0,
            },
        )
        row["calls"] += 1
        row["ms"] += evt.cpu_time_total / 1e3  # inclusive: the kernels run inside
        row["gflop"] += (flops or 0) * factor / 1e9
    out = sorted(rows.values(), key=lambda r: -r["ms"])
    total = sum(r["ms"] for r in out) or 1.0
    for r in out:
        r["share_of_conv_time"] = round(r["ms"] / total, 4)
        r["gflops"] = round(r["gflop"] / (r["ms"] / 1e3), 1) if r["ms"] else None
        r["ms"] = round(r["ms"], 1)
        r["gflop"] = round(r["gflop"], 2)
    return {
        "by_shape": out[:top],
        "kernels_ms": {k: round(v, 1) for k, v in sorted(kernels.items(), key=lambda kv: -kv[1])},
        "total_conv_ms": round(total, 1),
        "total_conv_gflop": round(sum(r["gflop"] for r in out), 2),
    }


#: convolution kernels by implementation: oneDNN (fast) or ATen's im2col fallback (slow; bf16
#: takes it on CPUs without native bf16, e.g. AVX2-only machines)
_CONV_KERNELS = (
    "aten::mkldnn_convolution",
    "aten::_slow_conv2d_forward",
    "aten::_slow_conv2d_backward",
    "aten::slow_conv3d_forward",
    "aten::_slow_conv3d_backward",
    "aten::slow_conv_dilated2d",
)


def run(
    name: str,
    precision: str = "bf16",
    channels_last: bool = True,
    iters: int = 3,
    warmup: int = 1,
    quick: bool = False,
    flops: bool = True,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time ``iters`` iterations of configuration ``name`` after ``warmup`` (>= 1) untimed ones.

    ``profile``: write a torch.profiler table of one extra iteration to this path.
    ``overrides``: change entries of the configuration (e.g. a smaller batch for profiling).
    """
    spec = get_config(name, quick)
    if overrides:
        spec.update(overrides)
        spec["overridden"] = sorted(overrides)
    with tempfile.TemporaryDirectory(prefix="geogan-bench-") as tmp:
        t0 = time.perf_counter()
        trainer = build_trainer(spec, precision, channels_last, tmp)
        build_s = time.perf_counter() - t0
        params = {
            k: sum(p.numel() for p in m.parameters()) for k, m in trainer.setup.models.items()
        }
        total_flops, by_op = None, None
        warm_times = []
        for i in range(max(1, warmup)):
            t0 = time.perf_counter()
            if i == 0 and flops:
                total_flops, by_op = count_flops(trainer)
            else:
                iteration(trainer)
            warm_times.append(time.perf_counter() - t0)
        times = []
        last_logs: dict[str, float] = {}
        for _ in range(iters):
            t0 = time.perf_counter()
            last_logs = iteration(trainer)
            times.append(time.perf_counter() - t0)
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            with torch_profile(
                activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True
            ) as prof:
                iteration(trainer)
            Path(profile).write_text(
                prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
                + "\n"
                + prof.key_averages(group_by_input_shape=True).table(
                    sort_by="self_cpu_time_total", row_limit=40
                )
            )
            profile_summary = summarise_profile(prof)
            profile_convs = conv_rates(prof)
        finite = all(math.isfinite(v) for v in last_logs.values())
    stats = summarise(times)
    s_per_iter = stats["median_s"]
    batches = spec["critic_steps"] + 1
    result = {
        "config": name,
        "parameters": params,
        "spec": spec,
        "precision": precision,
        "channels_last": channels_last,
        "iters": iters,
        "warmup": max(1, warmup),
        "build_s": round(build_s, 3),
        "warmup_s": [round(t, 3) for t in warm_times],
        "s_per_iter": s_per_iter,
        "timing": stats,
        "samples_per_s": spec["batch_size"] * batches / s_per_iter,
        # generator samples of the generator step: ensemble members (+ a separate one for the
        # critic, as dsrnngan draws it) per condition
        "generator_step_samples": spec["batch_size"]
        * (spec["members"] + (1 if spec.get("separate_adversarial") else 0)),
        "generator_iters_per_s": 1.0 / s_per_iter,
        "losses_finite": finite,
        **({"profile": profile_summary, "profile_convs": profile_convs} if profile else {}),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if total_flops is not None:
        result["flops_per_iter"] = total_flops
        result["achieved_gflops"] = total_flops / s_per_iter / 1e9
        top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
        result["flops_by_op"] = {k: round(v / total_flops, 4) for k, v in top}
    return result


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/train_step.py P1 --precision bf16 --profile p1.txt``: one
    configuration, printed as JSON (with ``--profile``: the torch.profiler tables in that
    file, and per convolution shape its time, FLOPs and GFLOP/s in the JSON)."""
    import argparse
    import json

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("config", choices=TRAIN_CONFIGS)
    ap.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--quick", action="store_true", help="toy sizes")
    ap.add_argument("--profile", default=None, help="write torch.profiler tables here")
    ap.add_argument("--batch-size", type=int, default=None, help="override the batch")
    ap.add_argument("--out", default=None, help="write the JSON result here too")
    args = ap.parse_args(argv)
    result = run(
        args.config,
        precision=args.precision,
        channels_last=not args.no_channels_last,
        iters=args.iters,
        warmup=args.warmup,
        quick=args.quick,
        profile=args.profile,
        overrides={"batch_size": args.batch_size} if args.batch_size else None,
    )
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
