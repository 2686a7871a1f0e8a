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


TRAIN_CONFIGS = ("P1", "R8", "R8-issue")


def get_config(name: str, quick: bool = False) -> dict[str, Any]:
    """A benchmark configuration (toy sizes with ``quick``).

    ``P1``; ``R8`` (the radar preset's settings when the preset file exists, else the
    issue's numbers); ``R8-issue`` (always the issue's numbers: filters 64/64, 5 critic
    steps, 8 members).
    """
    if name == "P1":
        spec = dict(P1)
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
            ),
            GeneratorPhase(
                mode="gan",
                adversarial="wgan",
                content_kind=spec["content"],
                content_weight=1.0,
                members=spec["members"],
                kl_weight=0.0,
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

            with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                iteration(trainer)
            Path(profile).write_text(
                prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
                + "\n"
                + prof.key_averages(group_by_input_shape=True).table(
                    sort_by="self_cpu_time_total", row_limit=40
                )
            )
            profile_summary = summarise_profile(prof)
        finite = all(math.isfinite(v) for v in last_logs.values())
    stats = summarise(times)
    s_per_iter = stats["median_s"]
    batches = spec["critic_steps"] + 1
    result = {
        "config": name,
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
        "generator_iters_per_s": 1.0 / s_per_iter,
        "losses_finite": finite,
        **({"profile": profile_summary} if profile else {}),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if total_flops is not None:
        result["flops_per_iter"] = total_flops
        result["achieved_gflops"] = total_flops / s_per_iter / 1e9
        top = sorted(by_op.items(), key=lambda kv: -kv[1])[:8]
        result["flops_by_op"] = {k: round(v / total_flops, 4) for k, v in top}
    return result
