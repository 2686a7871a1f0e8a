"""Recipe 2 speed, side by side with map2map's ``srsgan`` at the same configuration.

The reference is a re-implementation, written for this benchmark from reading map2map
(``map2map/models/srsgan.py``, ``resample.py``, ``narrow.py``, ``wasserstein.py`` and the
adversarial loop of ``train.py`` at commit 4ebc835), of ``srsgan.G`` and ``srsgan.D``:
unpadded 3^3 convolutions, trilinear resampling that trims its edges, StyleGAN2 "H" blocks,
``AddNoise`` with a per-channel std, ``narrow_cast`` of input/output/target, the critic on
``cat(upsampled input, image)``. One WGAN-GP iteration is map2map's loop with
``wgan_grad_penalty``: the generator runs once; the critic steps on the detached output
and the target, plus the penalty; then the generator steps through the frozen critic.

geogan runs the same sizes through its own code: :class:`SRSGANGenerator` /
:class:`SRSGANCritic` and the recipe's ``critic`` and ``generator`` phases inside the
engine's ``Trainer._train_step`` (optimizer steps, finiteness checks, EMA). Its generator
pads ("same") instead of trimming, so it needs no input context; the variants (``VARIANTS``)
give it none (the issue's 16^3 crop to 32^3) or 1 coarse voxel (the closest to the
reference's work, which needs ``in_pad`` 2 at x2 and 3 at x8). FLOPs of both
(``torch.utils.flop_counter.FlopCounterMode``) are printed beside the timings, so the
reader sees how much of a speed difference is less work and how much is faster work.

Configurations (3 in / 3 out channels, channels 512 base / 64 min, batch 1):

- ``x2``: a 16^3 crop (+ input pad) to 32^3;
- ``x8``: 5^3 to 40^3.

Every measurement runs in a fresh process (its own peak RSS). ``--quick``: 32/8 channels.

    python benchmarks/volume_speed.py [--quick] [--threads 2] [--repeats 3] [--variants ...] [--out f.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import flops  # noqa: E402

RESULT = "@@VOLUME_SPEED@@ "

VARIANTS = {
    # the configuration done geogan's way: the 16^3 crop without context (the
    # generator pads), one generator forward per iteration as map2map's loop
    "issue": {"pad": 0, "share_fake": True},
    # the closest to equal work: 1 coarse voxel of context (the reference needs 2 or 3)
    "equal_work": {"pad": 1, "share_fake": True},
    # the engine's default loop: the critic phase runs the generator again, without grads
    "engine": {"pad": 1, "share_fake": False},
    "channels_last": {
        "pad": 0,
        "share_fake": True,
        "channels_last": True,
        "explicit_padding": False,
    },
    "bf16": {"pad": 0, "share_fake": True, "precision": "bf16"},
}
"""geogan variants: input context ``pad`` (coarse voxels), ``share_fake`` (train.share_fake),
activation layout, precision (bf16 needs AVX-512 BF16 or AMX to be fast)."""

CONFIGS = {
    "x2": {"factor": 2, "crop": 16, "out": 32, "ref_pad": 2},
    "x8": {"factor": 8, "crop": 5, "out": 40, "ref_pad": 3},
}


# --------------------------------------------------------------------------- reference


def reference_models(factor: int, base: int, cmin: int, cmax: int, channels: int = 3):
    """map2map's srsgan.G and srsgan.D (re-implemented; same layers and sizes)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    def trim(x, c):
        return x[(slice(None), slice(None)) + (slice(c, -c),) * (x.dim() - 2)]

    class Resample(nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            x = F.interpolate(x, scale_factor=self.scale, mode="trilinear", align_corners=False)
            if self.scale > 1:
                x = trim(x, max(round(self.scale) // 2, 1))
            return x

    class AddNoise(nn.Module):
        def __init__(self, chan):
            super().__init__()
            self.std = nn.Parameter(torch.zeros([chan]))

        def forward(self, x):
            noise = torch.randn_like(x[:, :1])
            return x + self.std.view(-1, 1, 1, 1) * noise

    class HBlock(nn.Module):
        def __init__(self, prev, nxt, out):
            super().__init__()
            self.upsample = Resample(2)
            self.conv = nn.Sequential(
                AddNoise(prev),
                self.upsample,
                nn.Conv3d(prev, nxt, 3),
                nn.LeakyReLU(0.2, True),
                AddNoise(nxt),
                nn.Conv3d(nxt, nxt, 3),
                nn.LeakyReLU(0.2, True),
            )
            self.proj = nn.Sequential(nn.Conv3d(nxt, out, 1), nn.LeakyReLU(0.2, True))

        def forward(self, x, y):
            x = self.conv(x)
            y = trim(self.upsample(y), 2) + self.proj(x)
            return x, y

    def chan(b):
        c = base >> b if b >= 0 else base << -b
        return min(max(c, cmin), cmax)

    n = round(math.log2(factor))

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale_factor = factor
            self.block0 = nn.Sequential(nn.Conv3d(channels, chan(0), 1), nn.LeakyReLU(0.2, True))
            self.blocks = nn.ModuleList(HBlock(chan(b), chan(b + 1), channels) for b in range(n))

        def forward(self, x):
            y, x = x, self.block0(x)
            for block in self.blocks:
                x, y = block(x, y)
            return y

    class ResBlock(nn.Module):
        def __init__(self, prev, nxt):
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv3d(prev, prev, 3),
                nn.LeakyReLU(0.2, True),
                nn.Conv3d(prev, nxt, 3),
                nn.LeakyReLU(0.2, True),
            )
            self.skip = nn.Conv3d(prev, nxt, 1)
            self.downsample = Resample(0.5)

        def forward(self, x):
            y = self.conv(x)
            x = trim(self.skip(x), 2) + y
            return self.downsample(x)

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.block0 = nn.Sequential(
                nn.Conv3d(2 * channels, chan(n), 1), nn.LeakyReLU(0.2, True)
            )
            self.blocks = nn.Sequential(
                *[ResBlock(chan(b + 1), chan(b)) for b in reversed(range(n))]
            )
            self.block9 = nn.Sequential(
                nn.Conv3d(chan(0), chan(-1), 1), nn.LeakyReLU(0.2, True), nn.Conv3d(chan(-1), 1, 1)
            )

        def forward(self, x):
            return self.block9(self.blocks(self.block0(x)))

    return G(), D()


def reference_iteration(g, d, opt_g, opt_d, x, target, factor):
    """One WGAN-GP iteration of map2map's loop (critic step, then generator step)."""
    import torch
    import torch.nn.functional as F

    def narrow_cast(*tensors):
        shape = [min(t.shape[a] for t in tensors) for a in range(2, tensors[0].dim())]
        out = []
        for t in tensors:
            for a, n in enumerate(shape):
                w = t.shape[2 + a] - n
                t = t.narrow(2 + a, w // 2, n)
            out.append(t)
        return out

    output = g(x)
    inp = F.interpolate(x, scale_factor=factor, mode="trilinear", align_corners=False)
    inp, output, tgt = narrow_cast(inp, output, target)
    fake_in, real_in = torch.cat([inp, output], 1), torch.cat([inp, tgt], 1)
    for p in d.parameters():
        p.requires_grad_(True)
    opt_d.zero_grad()
    score_fake = d(fake_in.detach())
    score_fake.mean().backward()  # wasserstein_distance_loss(score, fake=0) = mean(score)
    score_real = d(real_in)
    (-score_real.mean()).backward()
    alpha = torch.rand(1, 1, 1, 1, 1)
    xy = (alpha * real_in + (1 - alpha) * fake_in.detach()).requires_grad_(True)
    score = d(xy).flatten(1).mean(1).sum()
    (grad,) = torch.autograd.grad(score, xy, retain_graph=True, create_graph=True)
    penalty = 10 * ((grad.flatten(1).norm(p=2, dim=1) - 1) ** 2).mean()
    penalty.backward()
    opt_d.step()
    for p in d.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad()
    (-d(fake_in).mean()).backward()
    opt_g.step()


def map2map_models(ref_dir: str, factor: int, base: int, cmin: int, cmax: int, channels: int = 3):
    """map2map's own ``srsgan.G`` / ``srsgan.D`` from a checkout at ``ref_dir`` (its
    ``map2map`` package on the path; the critic sees ``cat(input, image)`` as with ``--cgan``)."""
    sys.path.insert(0, str(ref_dir))
    from map2map.models.srsgan import D, G  # type: ignore[import-not-found]

    kw = {"scale_factor": factor, "chan_base": base, "chan_min": cmin, "chan_max": cmax}
    return G(channels, channels, **kw), D(2 * channels, 1, **kw)


def map2map_iteration(g, d, opt_g, opt_d, x, target, factor):
    """One iteration of map2map's ``train.py`` loop with its own functions (``resample``,
    ``narrow_cast``, ``wasserstein_distance_loss``), the critic's penalty being its
    ``wgan_grad_penalty`` (the issue's WGAN-GP iteration) in place of the loop's R1."""
    import torch
    from map2map.models import (  # type: ignore[import-not-found]
        narrow_cast,
        resample,
        wasserstein_distance_loss,
        wgan_grad_penalty,
    )

    output = g(x)
    inp = resample(x, factor, narrow=False)
    inp, output, target = narrow_cast(inp, output, target)
    output = torch.cat([inp, output], dim=1)
    target = torch.cat([inp, target], dim=1)
    for p in d.parameters():
        p.requires_grad_(True)
    score_out = d(output.detach())
    loss_fake = wasserstein_distance_loss(score_out, torch.zeros_like(score_out))
    opt_d.zero_grad()
    loss_fake.backward()
    score_tgt = d(target)
    loss_real = wasserstein_distance_loss(score_tgt, torch.ones_like(score_tgt))
    loss_real.backward()
    wgan_grad_penalty(d, target, output).backward()
    opt_d.step()
    for p in d.parameters():
        p.requires_grad_(False)
    score_out = d(output)
    loss_adv = wasserstein_distance_loss(score_out, torch.ones_like(score_out))
    opt_g.zero_grad()
    loss_adv.backward()
    opt_g.step()


# --------------------------------------------------------------------------- geogan


def geogan_setup(cfg: dict, base: int, cmin: int, cmax: int, variant: dict):
    """The recipe's models and phases in a TrainingSetup, and a batch."""
    import torch

    from geogan.models.srsgan import SRSGANCritic, SRSGANGenerator
    from geogan.recipes.volume.phases import CriticPhase, GeneratorPhase, SharedFake
    from geogan.training.optim import build_optimizers
    from geogan.training.phases import TrainingSetup

    f, crop = cfg["factor"], cfg["crop"]
    g = SRSGANGenerator(
        dims=3,
        in_channels=3,
        out_channels=3,
        factor=f,
        chan_base=base,
        chan_min=cmin,
        chan_max=cmax,
        noise="add",
        explicit_padding=variant.get("explicit_padding", True),
    )
    d = SRSGANCritic(
        dims=3,
        condition_channels=3,
        image_channels=3,
        factor=f,
        chan_base=base,
        chan_min=cmin,
        chan_max=cmax,
        padding="valid",
    )
    models = {"generator": g, "critic": d}
    opts = build_optimizers(models, {"generator": ["generator"], "critic": ["critic"]}, {})
    pad = int(variant["pad"])
    pads = (pad,) * 3
    fine = tuple(p * f for p in pads)
    cl = bool(variant.get("channels_last", False))
    shared = SharedFake() if variant.get("share_fake") else None
    phases = [
        CriticPhase(
            repeats=1,
            adversarial="wgan",
            gp_weight=10.0,
            pad_fine=fine,
            pad_coarse=pads,
            channels_last=cl,
            shared=shared,
        ),
        GeneratorPhase(
            adversarial="wgan",
            content_weight=0.0,
            spectral=None,
            spectral_weight=0.0,
            pad_fine=fine,
            pad_coarse=pads,
            channels_last=cl,
            shared=shared,
        ),
    ]
    n = crop + 2 * pad
    batch = {
        "input": torch.randn(1, 3, n, n, n),
        "target": torch.randn(1, 3, *(crop * f,) * 3),
        "mask": torch.ones(1, 1, *(crop * f,) * 3),
    }

    class Fixed(torch.utils.data.Dataset):
        def __len__(self):
            return 2**62

        def __getitem__(self, i):
            return {k: v[0] for k, v in batch.items()}

    setup = TrainingSetup(models=models, optimizers=opts, phases=phases, dataset=Fixed())
    return setup, batch


def geogan_trainer(setup, variant: dict[str, Any]):
    """The engine's Trainer on ``setup`` (CPU, batch 1, no logging) in the variant's precision."""
    import tempfile

    import torch

    from geogan.training.trainer import Trainer

    return Trainer(
        setup,
        run_dir=tempfile.mkdtemp(),
        device=torch.device("cpu"),
        progress=False,
        steps=10**6,
        batch_size=1,
        tensorboard=False,
        precision=variant.get("precision", "fp32"),
    )


# --------------------------------------------------------------------------- workers


def _flops(fn) -> float:
    """FLOPs of ``fn()`` (``benchmarks/flops.py``: torch's formulas without FlopCounterMode's
    module hooks, which refuse the double backward of the reference's gradient penalty)."""
    return flops.count_flops(fn)


def worker(task: str, args: dict[str, Any]) -> dict[str, Any]:

    import torch
    from common import peak_rss_mb, summarise

    torch.set_num_threads(int(args["threads"]))
    torch.manual_seed(0)
    cfg = CONFIGS[args["config"]]
    base, cmin, cmax = args["channels"]
    f, crop, repeats = cfg["factor"], cfg["crop"], int(args["repeats"])
    out: dict[str, Any] = {"task": task, "config": args["config"]}
    if task.startswith("ref"):
        ref_dir = args.get("map2map_dir")
        if ref_dir:
            g, d = map2map_models(ref_dir, f, base, cmin, cmax)
            iteration = map2map_iteration
            out["reference"] = f"map2map checkout {ref_dir}"
        else:
            g, d = reference_models(f, base, cmin, cmax)
            iteration = reference_iteration
            out["reference"] = "re-implementation of map2map srsgan (this file)"
        pad = cfg["ref_pad"]
        x = torch.randn(1, 3, *(crop + 2 * pad,) * 3)
        target = torch.randn(1, 3, *(cfg["out"],) * 3)
        out["params"] = {
            "G": sum(p.numel() for p in g.parameters()),
            "D": sum(p.numel() for p in d.parameters()),
        }
        out["input"] = list(x.shape)
        if task == "ref_train":
            opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.9))
            opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.5, 0.9))

            def step():
                iteration(g, d, opt_g, opt_d, x, target, f)
        else:
            g.eval()

            def step():
                with torch.no_grad():
                    y = g(x)
                assert y.shape[2] >= cfg["out"]
    else:
        variant = args.get("variant", {})
        setup, batch = geogan_setup(cfg, base, cmin, cmax, variant)
        g, d = setup.models["generator"], setup.models["critic"]
        out["params"] = {
            "G": sum(p.numel() for p in g.parameters()),
            "D": sum(p.numel() for p in d.parameters()),
        }
        out["input"] = list(batch["input"].shape)
        out["variant"] = variant
        if task == "geo_train":
            trainer = geogan_trainer(setup, variant)

            def step():
                trainer._train_step()
                trainer.step += 1
        else:
            from geogan.models.srsgan import narrow

            g.eval()
            x = batch["input"]
            if variant.get("channels_last"):
                x = x.contiguous(memory_format=torch.channels_last_3d)
            noise_shapes = g.noise_shapes(x.shape)
            pad_fine = (int(variant["pad"]) * f,) * 3
            dtype = torch.bfloat16 if variant.get("precision") == "bf16" else None

            def step():
                with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                    noise = [torch.randn(s) for s in noise_shapes]
                    y = narrow(g(x, noise), pad_fine)
                assert y.shape[2] == cfg["out"]

    out["flops"] = _flops(step)  # also the warm-up
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    out["time"] = summarise(times)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def run_isolated(task: str, args: dict[str, Any], timeout: float) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args["threads"]))
    cmd = [sys.executable, __file__, "--worker", task, json.dumps(args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"task": task, "error": f"timed out after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    return {"task": task, "error": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy channels (smoke test)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default="x2,x8")
    parser.add_argument(
        "--variants",
        default="issue,equal_work,engine",
        help=f"comma-separated, of: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument(
        "--map2map-dir",
        help="a checkout of eelregit/map2map: time its own srsgan.G/D and loss functions "
        "instead of this file's re-implementation",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.worker:
        task, args = ns.worker
        print(RESULT + json.dumps(worker(task, json.loads(args))), flush=True)
        return {}
    from common import machine_info

    channels = (32, 8, 32) if ns.quick else (512, 64, 512)
    variants = VARIANTS
    chosen = [v for v in ns.variants.split(",") if v]
    unknown = sorted(set(chosen) - set(variants))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(variants)}")
    results: dict[str, Any] = {"machine": machine_info(), "channels": channels, "configs": {}}
    for name in ns.configs.split(","):
        base_args = {
            "config": name,
            "threads": ns.threads,
            "repeats": ns.repeats,
            "channels": channels,
        }
        ref_args = {**base_args, "map2map_dir": ns.map2map_dir}
        entry: dict[str, Any] = {}
        entry["reference_train"] = run_isolated("ref_train", ref_args, ns.timeout)
        entry["reference_infer"] = run_isolated("ref_infer", ref_args, ns.timeout)
        for v in chosen:
            args = {**base_args, "variant": variants[v]}
            entry[f"geogan_train_{v}"] = run_isolated("geo_train", args, ns.timeout)
            entry[f"geogan_infer_{v}"] = run_isolated("geo_infer", args, ns.timeout)
        summary = {}
        for kind in ("train", "infer"):
            ref = entry[f"reference_{kind}"]
            for v in chosen:
                ours = entry[f"geogan_{kind}_{v}"]
                if "error" in ref or "error" in ours:
                    continue
                t_ref, t_geo = ref["time"]["median_s"], ours["time"]["median_s"]
                summary[f"{kind}_{v}"] = {
                    "reference_s": t_ref,
                    "geogan_s": t_geo,
                    "speedup": t_ref / t_geo,
                    "reference_gflop": ref["flops"] / 1e9,
                    "geogan_gflop": ours["flops"] / 1e9,
                    "work_ratio_geogan_over_reference": ours["flops"] / ref["flops"],
                    # > 1: geogan does each FLOP faster; speedup / this = the share from less work
                    "speedup_per_flop": (ours["flops"] / t_geo) / (ref["flops"] / t_ref),
                    "reference_peak_rss_mb": ref["peak_rss_mb"],
                    "geogan_peak_rss_mb": ours["peak_rss_mb"],
                }
        entry["summary"] = summary
        results["configs"][name] = entry
        print(json.dumps({name: summary}, indent=2), flush=True)
    if ns.out:
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
