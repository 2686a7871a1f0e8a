#!/usr/bin/env python
"""Speed of geogan's plain pix2pix against the pix2pix reference, at equal work.

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, ``--model pix2pix --netG unet_256
--netD basic --norm batch``, 256x256, measured on the 2-core development machine with
2 threads: 0.483 s per training iteration at batch 1 and 1.251 s at batch 4; 15.9 and
21.9 images/s in inference. Target: geogan at least 1.3x faster in both.

Equal work: the same networks (geogan's ``UNet(filters=64, depth=8, norm="batch",
dropout=0.5)`` is ``unet_256`` layer for layer: 54.414 M parameters; ``PatchGAN(filters=64,
n_layers=3)`` is ``basic``: 2.769 M, 30x30 patches), the same sizes and batch, and the same
passes per training iteration as pix2pix's ``optimize_parameters``: one generator forward
(with gradients; the fake is reused), the discriminator on (A, fake.detach()) and (A, B)
with 0.5 x the sum of the two BCE losses, its backward and Adam step, then the
discriminator on (A, fake) without weight gradients, BCE + 100 x L1, the generator's
backward and Adam step. FLOPs of one iteration are counted with
``torch.utils.flop_counter.FlopCounterMode`` for geogan and, with ``--reference``, for the
reference too, and printed beside the timings.

Variants timed for geogan: fp32 contiguous, fp32 channels_last, and bf16 autocast +
channels_last when the CPU has native bf16 (AVX-512 BF16 / AMX; ``--bf16 on`` forces it);
the fastest is compared. The FLOPs are the same in every variant (bf16 changes the
precision of the same operations, not their number).

Inference: generator forward without gradients, dropout on (pix2pix's noise). The
reference's test script keeps the networks in train mode unless ``--eval``; geogan's
inference uses eval mode (batch-norm running statistics): both are timed for geogan
(``eval`` and ``train`` columns) so the equal-work comparison is the ``train`` one.

``--reference PATH``: a checkout of the reference repository; its ``models/networks.py``
is imported and timed here under the same conditions (same process, threads, inputs).
Without it, the recorded reference numbers above are used.

    python benchmarks/landcover_speed.py                  # full: about 3-4 minutes quiet
    python benchmarks/landcover_speed.py --quick          # tiny sizes, seconds (tests)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REFERENCE = {
    "train_s_per_iter": {1: 0.483, 4: 1.251},
    "infer_images_per_s": {1: 15.9, 4: 21.9},
}
TARGET_SPEEDUP = 1.3


def geogan_models(size: int, quick: bool):
    from geogan.models.patchgan import PatchGAN
    from geogan.models.unet import UNet

    f, depth = (8, 4) if quick else (64, 8)
    g = UNet(
        in_channels=3,
        out_channels=3,
        filters=f,
        depth=depth,
        norm="batch",
        dropout=0.5,
        dropout_at_inference=True,
    )
    d = PatchGAN(in_channels=3, cond_channels=3, filters=f, n_layers=3, norm="batch", tail="valid")
    return g, d


def reference_models(path: str):
    """The reference's networks (define_G / define_D from its models/networks.py)."""
    spec = importlib.util.spec_from_file_location(
        "ref_networks", Path(path) / "models" / "networks.py"
    )
    mod = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(None):
        spec.loader.exec_module(mod)
        g = mod.define_G(3, 3, 64, "unet_256", norm="batch", use_dropout=True)
        d = mod.define_D(6, 64, "basic", norm="batch")
    return g, d


def make_step(g, d, *, channels_last: bool, conditional_d_args: bool):
    """One pix2pix iteration (module docstring). ``conditional_d_args``: geogan's PatchGAN
    takes (image, cond); the reference's D takes cat(cond, image)."""
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=channels_last)
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=channels_last)
    bce = F.binary_cross_entropy_with_logits

    def disc(image, cond):
        return d(image, cond) if conditional_d_args else d(torch.cat([cond, image], 1))

    def step(a, b):
        fake = g(a)
        opt_d.zero_grad(set_to_none=True)
        p_fake, p_real = disc(fake.detach(), a), disc(b, a)
        loss_d = 0.5 * (
            bce(p_fake, torch.zeros_like(p_fake)) + bce(p_real, torch.ones_like(p_real))
        )
        loss_d.backward()
        opt_d.step()
        for p in d.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        p = disc(fake, a)
        loss_g = bce(p, torch.ones_like(p)) + 100.0 * (fake - b).abs().mean()
        loss_g.backward()
        for p_ in d.parameters():
            p_.requires_grad_(True)
        opt_g.step()

    return step


def _inputs(batch: int, size: int, channels_last: bool):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    b = torch.rand(batch, 3, size, size, generator=gen) * 2 - 1
    if channels_last:
        a, b = (
            a.contiguous(memory_format=torch.channels_last),
            b.contiguous(memory_format=torch.channels_last),
        )
    return a, b


def _time(fn, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(sorted(times)[len(times) // 2])  # median


def flops_of(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def measure(
    g,
    d,
    batch: int,
    size: int,
    *,
    channels_last: bool,
    geogan: bool,
    warmup: int,
    iters: int,
    bf16: bool = False,
) -> dict[str, Any]:
    mf = torch.channels_last if channels_last else torch.contiguous_format
    g, d = g.to(memory_format=mf).train(), d.to(memory_format=mf).train()
    a, b = _inputs(batch, size, channels_last)
    raw = make_step(g, d, channels_last=channels_last, conditional_d_args=geogan)
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def step(x, y):
        with amp():
            raw(x, y)

    out: dict[str, Any] = {"batch": batch, "channels_last": channels_last, "bf16": bf16}
    out["train_flops"] = flops_of(lambda: step(a, b))
    out["train_s_per_iter"] = _time(lambda: step(a, b), warmup, iters)

    @torch.no_grad()
    def infer():
        with amp():
            g(a)

    out["infer_flops"] = flops_of(infer)
    g.train()
    out["infer_images_per_s_train_mode"] = batch / _time(infer, warmup, iters)
    g.eval()
    out["infer_images_per_s_eval_mode"] = batch / _time(infer, warmup, iters)
    g.train()
    return out


def run(args) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = 32 if args.quick else 256
    batches = [1, 2] if args.quick else [1, 4]
    warmup, iters = (1, 2) if args.quick else (args.warmup, args.iters)
    g, d = geogan_models(size, args.quick)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": args.threads,
        "torch": torch.__version__,
        "size": size,
        "quick": args.quick,
        "params_geogan": {
            "G": sum(p.numel() for p in g.parameters()),
            "D": sum(p.numel() for p in d.parameters()),
        },
        "geogan": [],
        "reference_recorded": REFERENCE,
    }
    from geogan.training.trainer import bf16_supported_on_cpu

    variants = [(False, False), (True, False)]
    if args.bf16 == "on" or (args.bf16 == "auto" and bf16_supported_on_cpu()):
        variants.append((True, True))  # bf16 autocast: native on AVX-512 BF16 / AMX only
    result["bf16_native"] = bf16_supported_on_cpu()
    for batch in batches:
        for cl, bf in variants:
            result["geogan"].append(
                measure(
                    g,
                    d,
                    batch,
                    size,
                    channels_last=cl,
                    geogan=True,
                    warmup=warmup,
                    iters=iters,
                    bf16=bf,
                )
            )
    if args.reference:
        rg, rd = reference_models(args.reference)
        result["params_reference"] = {
            "G": sum(p.numel() for p in rg.parameters()),
            "D": sum(p.numel() for p in rd.parameters()),
        }
        result["reference_measured"] = [
            measure(
                rg, rd, batch, size, channels_last=False, geogan=False, warmup=warmup, iters=iters
            )
            for batch in batches
        ]
    result["comparison"] = compare(result, batches)
    return result


def compare(result: dict[str, Any], batches: list[int]) -> list[dict[str, Any]]:
    rows = []
    measured = {r["batch"]: r for r in result.get("reference_measured", [])}
    for batch in batches:
        best = min(
            (r for r in result["geogan"] if r["batch"] == batch),
            key=lambda r: r["train_s_per_iter"],
        )
        ref = measured.get(batch)
        ref_train = ref["train_s_per_iter"] if ref else REFERENCE["train_s_per_iter"].get(batch)
        ref_infer = (
            ref["infer_images_per_s_train_mode"]
            if ref
            else REFERENCE["infer_images_per_s"].get(batch)
        )
        row = {
            "batch": batch,
            "channels_last": best["channels_last"],
            "bf16": best["bf16"],
            "geogan_train_s": best["train_s_per_iter"],
            "reference_train_s": ref_train,
            "geogan_infer_img_s_train_mode": best["infer_images_per_s_train_mode"],
            "geogan_infer_img_s_eval_mode": best["infer_images_per_s_eval_mode"],
            "reference_infer_img_s": ref_infer,
            "geogan_train_gflop": best["train_flops"] / 1e9,
            "reference_train_gflop": ref["train_flops"] / 1e9 if ref else None,
            "reference_source": "measured here"
            if ref
            else "recorded (2-core dev machine, 2 threads)",
        }
        if ref_train and not result["quick"]:
            row["train_speedup"] = ref_train / best["train_s_per_iter"]
            row["infer_speedup_equal_work"] = best["infer_images_per_s_train_mode"] / ref_infer
            row["meets_1.3x"] = (
                row["train_speedup"] >= TARGET_SPEEDUP
                and row["infer_speedup_equal_work"] >= TARGET_SPEEDUP
            )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument(
        "--bf16",
        choices=["auto", "on", "off"],
        default="auto",
        help="also time bf16 autocast (auto: when the CPU has native bf16)",
    )
    p.add_argument(
        "--reference", default=None, help="checkout of junyanz/pytorch-CycleGAN-and-pix2pix"
    )
    p.add_argument("--out", default=None, help="write the JSON result here")
    args = p.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        from geogan.core.atomic import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
